"""Helpers of the differential tests: the ``Net`` the fixture hands out, readiness probes."""
from __future__ import annotations

import select
import socket
import time

STACK_ADDR, HOST_ADDR = "198.51.100.2", "198.51.100.1"
IO_TIMEOUT = 5.0
STREAM = socket.SOCK_STREAM


class Net:
    """The socket factory under test and its kernel peer."""

    def __init__(self, kind: str, factory, local_host: str, peer_host: str):
        self.kind = kind
        self._factory = factory
        self.local_host = local_host    # where sockets under test bind / are reached
        self.peer_host = peer_host      # where the kernel peer lives
        self._closers: list = []

    # the socket under test
    def socket(self, type=STREAM, timeout: float | None = IO_TIMEOUT):
        s = self._factory(socket.AF_INET, type)
        self._closers.append(s)
        if timeout is not None:
            s.settimeout(timeout)
        return s

    # the kernel peer
    def peer_socket(self, type=STREAM):
        s = socket.socket(socket.AF_INET, type)
        s.settimeout(IO_TIMEOUT)
        self._closers.append(s)
        return s

    def peer_listener(self, backlog: int = 16):
        ls = self.peer_socket()
        ls.bind((self.peer_host, 0))
        ls.listen(backlog)
        return ls

    def closed_port(self) -> tuple[str, int]:
        """A peer address where nothing listens (the kernel answers a SYN with RST)."""
        s = socket.socket()
        s.bind((self.peer_host, 0))
        addr = s.getsockname()
        s.close()
        return addr

    def silent_peer(self) -> tuple[str, int]:
        """A peer address whose SYNs go unanswered: a kernel listener with a full accept queue."""
        ls = self.peer_socket()
        ls.bind((self.peer_host, 0))
        ls.listen(0)
        filler = self.peer_socket()
        filler.connect(ls.getsockname())
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:  # one connection fills a backlog-0 queue
            if select.select([ls], [], [], 0.01)[0]:
                break
        return ls.getsockname()

    def connected(self, timeout: float | None = IO_TIMEOUT):
        """(socket under test, connected by it; the peer's accepted socket)."""
        ls = self.peer_listener()
        s = self.socket(timeout=timeout)
        s.connect(ls.getsockname())
        p, _ = ls.accept()
        self._closers.append(p)
        p.settimeout(IO_TIMEOUT)
        return s, p

    def accepted(self):
        """(socket under test accepted from a kernel client, the kernel client, the listener under test)."""
        ls = self.listener()
        c = self.peer_socket()
        c.connect(ls.getsockname())
        s, _ = ls.accept()
        self._closers.append(s)
        s.settimeout(IO_TIMEOUT)
        return s, c, ls

    def listener(self, backlog: int = 16):
        ls = self.socket()
        ls.bind((self.local_host, 0))
        ls.listen(backlog)
        return ls

    def close_all(self) -> None:
        for s in reversed(self._closers):
            try:
                s.close()
            except OSError:
                pass


def wait_for(pred, timeout: float = 2.0, step: float = 0.005) -> bool:
    """Poll ``pred`` until true or ``timeout``; the result of the last call."""
    deadline = time.monotonic() + timeout
    while True:
        if pred():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(step)


def sel(s, timeout: float = 0.0) -> tuple[bool, bool]:
    """(readable, writable) as select.select sees ``s``."""
    r, w, _ = select.select([s], [s], [], timeout)
    return bool(r), bool(w)


def poll_mask(s, timeout_ms: int = 0) -> int:
    p = select.poll()
    p.register(s, select.POLLIN | select.POLLOUT | select.POLLRDHUP | select.POLLPRI)
    return dict(p.poll(timeout_ms)).get(s.fileno(), 0)
