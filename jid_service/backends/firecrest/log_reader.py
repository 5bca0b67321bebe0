"""Reading a remote log's exact bytes through FirecREST's ``ops/view`` and ``ops/download``.

``GET /filesystem/{system}/ops/view?path=&size=&offset=`` runs ``dd bs=size
skip=offset//size count=2`` (``2 x size`` bytes from the block holding
``offset``), decodes them with ``errors="replace"`` and returns the
*characters* ``[offset % size : offset % size + size]``; a command output over
the gateway's buffer (5 MiB by default) is a 413. So the reader

- asks only for whole blocks (``offset`` a multiple of ``size``), where
  character and byte positions agree, and keeps only the block's first
  ``size`` bytes (the second block may end inside a character);
- sizes blocks so that ``2 x size`` fits the buffer, halving them on a 413;
- turns the text back into bytes: a block that starts inside a character
  begins with one U+FFFD per cut-off byte (at most 3), counted as one byte each;
- falls back to ``ops/download`` (raw bytes) when the text has other U+FFFD
  (a log that is not UTF-8), and when that file is too large for a download,
  counts each such U+FFFD as one byte (right for single invalid bytes, as in
  Latin-1 text).

Logs only grow, so bytes once read stay valid: one downloaded file is kept
for the following chunks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from jid_service.backends.base import BackendError
from jid_service.backends.firecrest.decode import error_text, json_body, view_text
from jid_service.backends.firecrest.transport import FirecrestTransport
from jid_service.log_text import LogChunk, complete_utf8_prefix, utf8_chunk

log = logging.getLogger(__name__)

VIEW_SIZE_LIMIT = 5 * 1024 * 1024
"""FirecREST's largest ``ops/view`` ``size`` (a larger one is a 400)."""
MAX_BLOCK = 2 * 1024 * 1024
"""The largest block asked for: ``2 x MAX_BLOCK`` fits the default 5 MiB output buffer."""
MIN_BLOCK = 4096
"""A 413 halves the block down to this; below it the read fails."""
SMALL_BLOCK = 64 * 1024
"""The smallest block a read uses (small reads need not fetch 2 MiB)."""

_REPLACEMENT = "\ufffd"
_STRAY = b"\x80"  # a lone continuation byte: decodes to U+FFFD, as the lost byte did


class ViewTooLarge(Exception):  # noqa: N818 - a signal between two functions of this module
    """The gateway's output buffer refused the block (413)."""


def cut_bytes(tail: bytes) -> int:
    """How many bytes of the character that ``tail`` ends inside are still to come."""
    have = len(tail) - complete_utf8_prefix(tail)
    if have == 0:
        return 0
    lead = tail[-have]
    needed = 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4
    return needed - have


def block_bytes(content: str, block: int, cut: int) -> bytes | None:
    """The exact first ``block`` bytes (or fewer, at the end of the file) of a view.

    ``cut``: at most this many leading U+FFFD are bytes of a character the block
    start cut (one byte each). None when other U+FFFD make the byte count uncertain.
    """
    lead = 0
    while lead < min(cut, len(content)) and content[lead] == _REPLACEMENT:
        lead += 1
    rest = content[lead:]
    encoded = _STRAY * lead + rest.encode("utf-8")
    if _REPLACEMENT not in rest:
        return encoded[:block]
    # the second block may end inside a character: harmless past the first block
    clean = rest.rstrip(_REPLACEMENT)
    if _REPLACEMENT not in clean and lead + len(clean.encode("utf-8")) >= block:
        return encoded[:block]
    return None


def approximate_bytes(content: str, block: int) -> bytes:
    """A view's bytes with every U+FFFD counted as one byte (the last resort)."""
    return _STRAY.join(part.encode("utf-8") for part in content.split(_REPLACEMENT))[:block]


@dataclass
class _Download:
    path: str
    data: bytes


class LogReader:
    """Reads byte ranges of remote files of one system through ``ops/view``."""

    def __init__(self, transport: FirecrestTransport, system: str) -> None:
        self._transport = transport
        self._system = system
        self.block = MAX_BLOCK
        """The block size in use (smaller after a 413)."""
        self._download: _Download | None = None
        self._too_large: set[str] = set()

    async def read(self, tool_id: str, path: str, offset: int, limit: int) -> LogChunk:
        """Up to ``limit`` bytes from ``offset`` as text; never splits a character."""
        data = await self.read_bytes(tool_id, path, offset, limit + 3)
        piece = data[:limit]
        if piece and complete_utf8_prefix(piece) == 0:
            piece = data  # limit smaller than one character: give the whole character
        return utf8_chunk(piece, offset)

    async def read_bytes(self, tool_id: str, path: str, offset: int, want: int) -> bytes:
        """Up to ``want`` bytes of ``path`` from ``offset`` (fewer at the end of the file)."""
        cached = self._download
        if cached is not None and cached.path == path and offset + want <= len(cached.data):
            return cached.data[offset : offset + want]
        out = bytearray()
        position = offset
        while len(out) < want:
            block = self._block_for(want - len(out))
            start = position - position % block
            try:
                content = await self._view(tool_id, path, start, block)
            except ViewTooLarge:
                if block <= MIN_BLOCK:
                    raise BackendError(
                        f"FirecREST log read of job {tool_id}: the gateway refuses even "
                        f"{MIN_BLOCK}-byte views (output buffer too small)"
                    ) from None
                self.block = max(MIN_BLOCK, block // 2)
                log.info("FirecREST ops/view: 413 at %d bytes, using %d", block, self.block)
                continue
            if content is None:  # no such file yet
                break
            # the previous block's tail tells how many bytes of a character this
            # one starts with; for the first block, up to 3 when it starts before
            # the asked offset
            cut = cut_bytes(bytes(out[-4:])) if out else (3 if position > start else 0)
            exact = block_bytes(content, block, cut)
            if exact is None:  # not UTF-8 (or a genuine U+FFFD): the raw bytes, if they fit
                data = await self._download_file(tool_id, path)
                if data is not None:
                    return data[offset : offset + want]
                exact = approximate_bytes(content, block)
            out += exact[position - start :][: want - len(out)]
            if len(exact) < block:  # the file ends inside this block
                break
            position = start + block
        return bytes(out)

    def _block_for(self, want: int) -> int:
        block = SMALL_BLOCK
        while block < want and block < self.block:
            block *= 2
        return min(block, self.block)

    async def _view(self, tool_id: str, path: str, offset: int, size: int) -> str | None:
        """One view's text; None for a missing file; ViewTooLarge on a 413."""
        params = {"path": path, "size": size, "offset": offset}
        send = self._transport.get(f"/filesystem/{self._system}/ops/view", params)
        resp = await self._transport.call("log read", send)
        if resp.status_code == 404:
            return None
        if resp.status_code == 413:
            raise ViewTooLarge
        if resp.status_code != 200:
            raise BackendError(f"FirecREST log read of job {tool_id}: {error_text(resp)}")
        return view_text(json_body("log read", resp))

    async def _download_file(self, tool_id: str, path: str) -> bytes | None:
        """The whole file's raw bytes (kept for the next reads); None when it is too large."""
        if path in self._too_large:
            return None
        send = self._transport.get(f"/filesystem/{self._system}/ops/download", {"path": path})
        resp = await self._transport.call("log download", send)
        if resp.status_code == 200:
            self._download = _Download(path, resp.content)
            return resp.content
        if resp.status_code in (400, 413):
            log.info("FirecREST log of job %s is not UTF-8 and too large to download: "
                     "each undecodable byte counts as one", tool_id)
            self._too_large.add(path)  # logs only grow
            return None
        raise BackendError(f"FirecREST log download of job {tool_id}: {error_text(resp)}")
