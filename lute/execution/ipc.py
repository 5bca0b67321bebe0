"""The channel between the Executor and its Task subprocess.

A Unix socketpair handed to the child as an extra file descriptor, carrying
frames of ``>IQ`` (JSON length, blob length), the JSON message, then the blob
bytes. There is no pipe-size limit: blobs of any size can be streamed, and the
receiver writes blobs straight to a file.

Result payloads above ``INLINE_LIMIT`` are not pushed through the socket at
all: the Task process writes them once, directly to their final file in the
work dir (given by the Executor), and hands the path over in the result
message. Streaming them would cost a second copy in the Executor; writing the
file once runs at local-disk speed. Log lines do not use this channel (they go
through stdout).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

_HEADER = struct.Struct(">IQ")
_CHUNK = 4 * 1024 * 1024
# larger kernel buffers cut the number of context switches for big results
_SOCKET_BUFFER = 4 * 1024 * 1024
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
INLINE_LIMIT = 1024 * 1024


class ChannelClosedError(EOFError):
    """The other end closed the channel (mid-frame, when raised while reading one)."""


@dataclass
class Frame:
    """One received frame: the message, and where its blob went (if it had one)."""

    message: dict[str, Any]
    blob_path: Path | None = None
    blob_bytes: int = 0
    blob: bytes | None = field(default=None, repr=False)


def socket_pair() -> tuple[socket.socket, socket.socket]:
    """A connected pair with large buffers; the second end is inheritable for the child."""
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    for sock in (parent, child):
        for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            # capped by net.core.*mem_max: the default size still works
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, opt, _SOCKET_BUFFER)
    child.set_inheritable(True)
    return parent, child


class Channel:
    """Framed messages (JSON) with optional binary blobs over a stream socket."""

    def __init__(self, sock: socket.socket):
        self.sock = sock

    def send(
        self, message: dict[str, Any], blob: bytes | bytearray | memoryview | None = None
    ) -> None:
        """Send one message, with a blob streamed after it."""
        body = json.dumps(message, default=str).encode()
        view = None if blob is None else memoryview(blob).cast("B")
        self.sock.sendall(_HEADER.pack(len(body), 0 if view is None else view.nbytes) + body)
        if view is not None and view.nbytes:
            self.sock.sendall(view)

    def receive(self, blob_sink: Callable[[dict[str, Any], int], Path] | None = None) -> Frame:
        """Receive one frame; raises ChannelClosedError at end of stream.

        ``blob_sink(message, size)`` names the file a blob is written to;
        without a sink the blob is returned in memory.
        """
        header = self._exactly(_HEADER.size, allow_eof=True)
        body_len, blob_len = _HEADER.unpack(header)
        if body_len > MAX_MESSAGE_BYTES:
            raise ValueError(f"message of {body_len} bytes exceeds the limit")
        message = json.loads(self._exactly(body_len))
        if not blob_len:
            return Frame(message)
        if blob_sink is None:
            return Frame(message, blob=self._exactly(blob_len), blob_bytes=blob_len)
        path = blob_sink(message, blob_len)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as out:
            self._copy(blob_len, out)
        return Frame(message, blob_path=path, blob_bytes=blob_len)

    def close(self) -> None:
        """Close this end."""
        self.sock.close()

    def _exactly(self, size: int, allow_eof: bool = False) -> bytes:
        buf = bytearray(size)
        view = memoryview(buf)
        got = 0
        while got < size:
            n = self.sock.recv_into(view[got:], size - got)
            if n == 0:
                if got == 0 and allow_eof:
                    raise ChannelClosedError("channel closed")
                raise ChannelClosedError(f"channel closed after {got} of {size} bytes")
            got += n
        return bytes(buf)

    def _copy(self, size: int, out: BinaryIO) -> None:
        buf = bytearray(min(_CHUNK, size))
        view = memoryview(buf)
        left = size
        while left:
            n = self.sock.recv_into(view, min(len(buf), left))
            if n == 0:
                raise ChannelClosedError(f"channel closed with {left} of {size} blob bytes unread")
            out.write(view[:n])
            left -= n


def payload_path(prefix: str | Path, name: str | None) -> Path:
    """Where a result payload is stored: the Executor's prefix plus the Task's file name."""
    prefix = Path(prefix)
    return prefix.with_name(f"{prefix.name}_{Path(name or 'payload.bin').name}")


def send_result(
    channel: Channel, message: dict[str, Any], payload: Any, prefix: str | Path
) -> None:
    """Task side: send a result, inline when small, else written to its file and handed over.

    ``payload`` is anything exposing the buffer protocol (bytes, numpy arrays)
    or None. The file is written under a temporary name and renamed, so the
    Executor never sees a partial payload.
    """
    if payload is None:
        channel.send({**message, "payload_name": None})
        return
    view = memoryview(payload).cast("B")
    if view.nbytes <= INLINE_LIMIT:
        channel.send(message, blob=view)
        return
    target = payload_path(prefix, message.get("payload_name"))
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    with open(partial, "wb") as fh:
        fh.write(view)
    os.replace(partial, target)
    channel.send({**message, "payload_file": str(target), "payload_bytes": view.nbytes})


def handed_over_payload(message: dict[str, Any], prefix: str | Path) -> tuple[Path, int]:
    """Executor side: check a payload handed over by path; returns (path, size).

    Raises ValueError if the path is not the one this run was given, or the
    file is missing or of the wrong size.
    """
    expected = payload_path(prefix, message.get("payload_name"))
    path = Path(str(message["payload_file"]))
    size = int(message.get("payload_bytes", -1))
    if path.resolve() != expected.resolve():
        raise ValueError(f"payload file {path} is not the expected {expected}")
    actual = path.stat().st_size if path.is_file() else None
    if actual != size:
        raise ValueError(f"payload file {path} has {actual} bytes, announced {size}")
    return path, size
