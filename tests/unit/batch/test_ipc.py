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


def _result_round_trip(tmp_path, payload):
    from lute.execution.ipc import handed_over_payload, payload_path, send_result

    prefix = tmp_path / "payloads" / "run000001_T"
    parent, child = socket_pair()
    thread = threading.Thread(
        target=lambda: (
            send_result(
                Channel(child), {"type": "result", "payload_name": "d.bin"}, payload, prefix
            ),
            child.close(),
        )
    )
    thread.start()
    frame = Channel(parent).receive(blob_sink=lambda m, s: payload_path(prefix, m["payload_name"]))
    thread.join()
    parent.close()
    if "payload_file" in frame.message:
        return "file", *handed_over_payload(frame.message, prefix)
    return "inline", frame.blob_path, frame.blob_bytes


def test_small_results_are_inline_and_large_ones_handed_over(tmp_path):
    from lute.execution.ipc import INLINE_LIMIT

    small = os.urandom(1000)
    kind, path, size = _result_round_trip(tmp_path, small)
    assert (kind, size) == ("inline", 1000) and path.read_bytes() == small
    large = os.urandom(INLINE_LIMIT + 1)
    kind, path, size = _result_round_trip(tmp_path, large)
    assert (kind, size) == ("file", len(large)) and path.read_bytes() == large
    assert path.name == "run000001_T_d.bin"
    assert not list(path.parent.glob("*.part"))


def test_handed_over_payload_is_checked(tmp_path):
    from lute.execution.ipc import handed_over_payload

    prefix = tmp_path / "run000001_T"
    good = tmp_path / "run000001_T_d.bin"
    good.write_bytes(b"12345")
    msg = {"payload_name": "d.bin", "payload_file": str(good), "payload_bytes": 5}
    assert handed_over_payload(msg, prefix) == (good, 5)
    with pytest.raises(ValueError, match="announced 6"):
        handed_over_payload({**msg, "payload_bytes": 6}, prefix)
    elsewhere = tmp_path / "other.bin"
    elsewhere.write_bytes(b"12345")
    with pytest.raises(ValueError, match="not the expected"):
        handed_over_payload({**msg, "payload_file": str(elsewhere)}, prefix)
