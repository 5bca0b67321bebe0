"""Reading job logs as UTF-8 text in pieces that never split a character.

Logs are read by byte offset (clients resume where they stopped), but handed
out as text; every reader here keeps a multi-byte character whole, so chunks
concatenate to the file's text.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel


class LogChunk(BaseModel):
    """Bytes of a job's log from an offset."""

    text: str
    offset: int
    next_offset: int


def complete_utf8_prefix(data: bytes) -> int:
    """Length of ``data`` without a trailing, incomplete UTF-8 sequence."""
    size = len(data)
    # the lead byte of the last sequence is at most 4 bytes from the end
    for back in range(1, min(4, size) + 1):
        byte = data[size - back]
        if 0x80 <= byte < 0xC0:  # continuation byte: keep looking for its lead
            continue
        if byte < 0x80:
            return size
        if byte < 0xE0:
            needed = 2
        elif byte < 0xF0:
            needed = 3
        elif byte < 0xF8:
            needed = 4
        else:  # not a lead byte: invalid input, decoded as U+FFFD
            return size
        return size if back >= needed else size - back
    return size


def utf8_chunk(data: bytes, offset: int) -> LogChunk:
    """``data`` read at ``offset`` as a chunk, a trailing cut character left for the next read.

    When the cut character is all there is, it is kept (decoded as U+FFFD) so
    that a reader always advances.
    """
    keep = complete_utf8_prefix(data) or len(data)
    data = data[:keep]
    return LogChunk(
        text=data.decode("utf-8", errors="replace"), offset=offset, next_offset=offset + len(data)
    )


def read_log_chunk(path: Path, offset: int, limit: int) -> LogChunk:
    """Read up to ``limit`` bytes of ``path`` from ``offset`` as UTF-8 text.

    A multi-byte character is never split across chunks: a trailing incomplete
    sequence is left for the next read (``next_offset`` stops before it),
    unless it is all this read could return. Invalid bytes decode to U+FFFD.
    A missing file (the job has not started) reads as empty, and so does an
    offset at or past its end.
    """
    offset = max(offset, 0)
    limit = max(limit, 1)
    try:
        with path.open("rb") as handle:
            # an offset past the end reads nothing; checked first because a huge
            # one makes seek() itself fail
            if offset >= os.fstat(handle.fileno()).st_size:
                return LogChunk(text="", offset=offset, next_offset=offset)
            handle.seek(offset)
            data = handle.read(limit)
            if data and complete_utf8_prefix(data) == 0:
                # limit smaller than one character: read the rest of it
                data += handle.read(3)
    except FileNotFoundError:
        return LogChunk(text="", offset=offset, next_offset=offset)
    return utf8_chunk(data, offset)


def utf8_tail(text: str, limit: int) -> str:
    """The last ``limit`` bytes of ``text`` at most, starting on a whole character."""
    data = text.encode()[-limit:]
    start = 0
    while start < len(data) and data[start] & 0xC0 == 0x80:  # inside a UTF-8 character
        start += 1
    return data[start:].decode()
