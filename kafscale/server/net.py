"""Socket helpers of the server layer."""

from __future__ import annotations

from curio import socket


def listen_socket(host: str, port: int, backlog: int) -> socket.socket:
    """A bound, listening TCP socket (port 0 picks a free one)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    return sock
