"""Real servers on loopback for integration tests: Dovecot, an aiosmtpd sink, PostgreSQL databases."""

import socket


def free_port() -> int:
    """Ask the OS for a free loopback port.

    The port is released before the caller binds it, so another process could take it in between; on a
    test machine that race is rare enough to accept.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
