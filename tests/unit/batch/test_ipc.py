"""The framed socket channel: sizes far beyond a pipe buffer, files, truncation."""

from __future__ import annotations

import os
import threading

import pytest

from lute.execution.ipc import Channel, ChannelClosedError, socket_pair


def _sender(sock, frames):
    channel = Channel(sock)
    for message, blob in frames:
        channel.send(message, blob)
    channel.close()


def test_messages_and_blobs_round_trip(tmp_path):
    parent, child = socket_pair()
    big = os.urandom(3 * 1024 * 1024 + 17)  # far beyond a 64 KiB pipe
    frames = [({"type": "a", "n": 1}, None), ({"type": "b"}, big), ({"type": "c"}, b"xyz")]
    thread = threading.Thread(target=_sender, args=(child, frames))
    thread.start()
    receiver = Channel(parent)
    first = receiver.receive()
    assert first.message == {"type": "a", "n": 1} and first.blob is None
    second = receiver.receive(blob_sink=lambda msg, size: tmp_path / "sub" / f"{msg['type']}.bin")
    assert second.blob_bytes == len(big)
    assert second.blob_path is not None and second.blob_path.read_bytes() == big
    third = receiver.receive()
    assert third.blob == b"xyz"
    with pytest.raises(ChannelClosedError, match=r"^channel closed$"):
        receiver.receive()
    thread.join()
    parent.close()


def test_truncated_blob_is_an_error(tmp_path):
    parent, child = socket_pair()
    header_only = Channel(child)
    # announce 1000 blob bytes, send 10, then close
    import json
    import struct

    body = json.dumps({"type": "result"}).encode()
    child.sendall(struct.pack(">IQ", len(body), 1000) + body + b"0123456789")
    header_only.close()
    with pytest.raises(ChannelClosedError, match="990 of 1000"):
        Channel(parent).receive(blob_sink=lambda m, s: tmp_path / "x.bin")
    parent.close()


def test_numpy_array_is_sent_without_copy_semantics_issues():
    import numpy as np

    parent, child = socket_pair()
    arr = np.arange(200_000, dtype=np.float64)
    thread = threading.Thread(target=_sender, args=(child, [({"type": "r"}, arr)]))
    thread.start()
    frame = Channel(parent).receive()
    thread.join()
    assert np.array_equal(np.frombuffer(frame.blob, dtype=np.float64), arr)
    parent.close()
