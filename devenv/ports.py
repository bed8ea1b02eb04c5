"""Free TCP ports for the local servers of development and the tests."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now (bound, read, released): chosen at run time,
    never fixed, since other processes on the machine may hold the usual ones."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
