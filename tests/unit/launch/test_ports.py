"""Port picking for local servers: free, below the ephemeral range, checked by binding."""

import socket

import pytest

from lute.launch import ports
from lute.launch.stack import Stack, StackError


@pytest.fixture
def listener():
    """A socket listening on a free loopback port (what another program would hold)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", ports.free_port_block()))
    sock.listen()
    yield sock.getsockname()[1]
    sock.close()


def test_picked_blocks_are_free_and_below_the_ephemeral_range():
    start = ports.ephemeral_start()
    for _ in range(20):
        base = ports.free_port_block(3)
        assert base >= ports.LOWEST and base + 2 < start
        assert ports.busy_ports(range(base, base + 3)) == []


def test_a_listening_port_is_busy_and_never_picked(listener, monkeypatch):
    assert not ports.port_is_free(listener)
    assert ports.busy_ports([listener]) == [listener]
    # with the search narrowed to the held port and its neighbour, only the neighbour fits
    monkeypatch.setattr(ports, "LOWEST", listener)
    monkeypatch.setattr(ports, "ephemeral_start", lambda: listener + 2)
    assert ports.free_port_block(1) == listener + 1
    with pytest.raises(RuntimeError, match="no 2 consecutive"):
        ports.free_port_block(2)


def test_excluded_ports_are_not_picked(monkeypatch):
    monkeypatch.setattr(ports, "ephemeral_start", lambda: ports.LOWEST + 10)
    for _ in range(20):
        base = ports.free_port_block(2, exclude=range(ports.LOWEST, ports.LOWEST + 8))
        assert base == ports.LOWEST + 8


def test_stack_refuses_a_taken_port_before_starting_anything(tmp_path, listener):
    stack = Stack(tmp_path / "st", airflow_port=ports.free_port_block(3), jid_port=listener)
    with pytest.raises(StackError, match=rf"{listener} \(JID \(--jid-port\)\)"):
        stack.start()
    assert stack.running() == []
    assert not (tmp_path / "st" / "pids").exists()


def test_stack_refuses_a_jid_port_inside_the_airflow_block(tmp_path):
    base = ports.free_port_block(3)
    with pytest.raises(StackError, match="overlaps the Airflow ports"):
        Stack(tmp_path / "st", airflow_port=base, jid_port=base + 2).start()
