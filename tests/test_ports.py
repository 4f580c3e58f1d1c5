"""tests/fixtures/ports.py: the ports test servers bind are outside the kernel's ephemeral range."""

from __future__ import annotations

import socket

from tests.fixtures.ports import _ephemeral_start, free_port


def test_a_free_port_is_below_the_ephemeral_range_and_binds_on_every_address():
    ports = {free_port() for _ in range(20)}
    assert all(1024 < port < _ephemeral_start() for port in ports)
    assert len(ports) > 1  # chosen at random: two servers starting together rarely meet
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", ports.pop()))
