"""A listening socket's TCB: the SYN queue (SYN-RECEIVED) and the accept queue (ESTABLISHED)."""
from __future__ import annotations

from collections import deque
from typing import Callable

from .states import State


class Listener:
    def __init__(self, local: tuple[bytes, int], backlog: int, syn_backlog: int):
        self.local = local
        self.backlog = max(1, backlog)
        self.syn_backlog = syn_backlog
        self.syn_queue: set = set()                 # connections in SYN-RECEIVED
        self.accept_queue: deque = deque()          # ESTABLISHED (or later), not yet accepted
        self.notify: Callable[[str], None] = lambda what: None
        self.closed = False
        self.stats = {"syns": 0, "accept_overflow": 0, "syn_overflow": 0}

    def can_take_syn(self) -> bool:
        """Linux-like: drop a SYN when the accept queue is full or the SYN queue is full."""
        if len(self.accept_queue) >= self.backlog:
            self.stats["accept_overflow"] += 1
            return False
        if len(self.syn_queue) >= self.syn_backlog:
            self.stats["syn_overflow"] += 1
            return False
        return True

    def add_embryo(self, conn) -> None:
        self.stats["syns"] += 1
        conn.listener = self
        self.syn_queue.add(conn)

    def connection_established(self, conn, now: float) -> None:
        """The handshake completed: move from the SYN queue to the accept queue, wake accept()."""
        self.syn_queue.discard(conn)
        self.accept_queue.append(conn)
        self.notify("readable")

    def embryo_closed(self, conn) -> None:
        self.syn_queue.discard(conn)

    def accept(self):
        """The oldest established connection, or None. Connections closed meanwhile are still returned
        (accept() then reads EOF/RST from them, as on Linux)."""
        if not self.accept_queue:
            return None
        conn = self.accept_queue.popleft()
        conn.listener = None
        return conn

    @property
    def readable(self) -> bool:
        return bool(self.accept_queue)

    def pending(self) -> list:
        return list(self.syn_queue) + list(self.accept_queue)

    def is_embryo(self, conn) -> bool:
        return conn.state is State.SYN_RECEIVED
