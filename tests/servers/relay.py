"""A TCP relay on loopback between closeloop and a real server, for faults the servers cannot stage themselves.

The relay forwards bytes both ways. ``freeze()`` turns every open connection into a dead one (no byte passes,
nothing is closed: the peer sees silence, as behind a NAT that forgot the flow) while new connections still
go through; ``cut()`` resets every open connection; ``go_down()``/``come_up()`` stop and restart listening on
the same port (the server is unreachable, then back).
"""

import contextlib
import select
import socket
import struct
import threading

from . import free_port


class TcpRelay:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self.target = (target_host, target_port)
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._pairs: list[_Pair] = []
        self._threads: list[threading.Thread] = []
        self.accepted = 0

    def __enter__(self) -> "TcpRelay":
        self.come_up()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.go_down()
        for thread in self._threads:
            thread.join(timeout=5)

    # faults --------------------------------------------------------------------------------------------------

    def come_up(self) -> None:
        """Listen (again) on ``port``."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(16)
        with self._lock:
            self._listener = listener
        self._spawn(self._accept_loop, listener)

    def go_down(self) -> None:
        """Stop listening and reset every open connection: the server is unreachable."""
        with self._lock:
            listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        self.cut()

    def freeze(self) -> None:
        """Stop forwarding on the open connections without closing them; new connections work."""
        with self._lock:
            for pair in self._pairs:
                pair.frozen = True

    def cut(self) -> None:
        """Reset every open connection (RST), as a crashed server or a NAT timeout does."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            pair.close(reset=True)

    @property
    def connections(self) -> int:
        with self._lock:
            return len([p for p in self._pairs if not p.closed])

    # plumbing ------------------------------------------------------------------------------------------------

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        thread.start()
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]

    def _accept_loop(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            pair = _Pair(client, server)
            with self._lock:
                if self._listener is not listener:
                    pair.close(reset=True)
                    return
                self._pairs.append(pair)
                self.accepted += 1
            self._spawn(pair.pump)


class _Pair:
    def __init__(self, client: socket.socket, server: socket.socket) -> None:
        self.client, self.server = client, server
        self.frozen = False
        self.closed = False

    def pump(self) -> None:
        sockets = [self.client, self.server]
        while not self.closed:
            if self.frozen:
                select.select([], [], [], 0.1)
                continue
            try:
                readable, _, _ = select.select(sockets, [], [], 0.1)
                for sock in readable:
                    if self.frozen:
                        break
                    data = sock.recv(65536)
                    if not data:
                        self.close(reset=False)
                        return
                    (self.server if sock is self.client else self.client).sendall(data)
            except (OSError, ValueError):
                self.close(reset=False)
                return

    def close(self, *, reset: bool) -> None:
        if self.closed:
            return
        self.closed = True
        for sock in (self.client, self.server):
            if reset:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            with contextlib.suppress(OSError):
                sock.close()
