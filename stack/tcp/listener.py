"""A listening socket's TCB: the SYN queue (SYN-RECEIVED) and the accept queue (ESTABLISHED).

Sized as Linux sizes them: ``listen(backlog)`` is clamped to ``somaxconn``; the accept queue
holds ``backlog`` connections and the SYN queue ``min(backlog, max_syn_backlog)`` (Linux's
``inet_csk_reqsk_queue_is_full`` compares with the same backlog; ``tcp_max_syn_backlog`` caps it).
Under pressure the SYN-ACK retries shrink for old half-open entries (``synack_retries``), and
the layer answers SYNs that find the SYN queue full with SYN cookies (``stack/tcp/syncookies.py``).
"""
from __future__ import annotations

from collections import deque
from typing import Callable

from .states import State


def clamp_backlog(backlog: int, somaxconn: int) -> int:
    """Linux ``listen()``: ``(unsigned) backlog > somaxconn`` -> somaxconn (so a negative one too);
    at least 1 here (this stack's accept queue holds exactly ``backlog``, Linux's ``backlog + 1``)."""
    if backlog < 0 or backlog > somaxconn:
        backlog = somaxconn
    return max(1, backlog)


class Listener:
    def __init__(self, local: tuple[bytes, int], backlog: int, syn_backlog: int, somaxconn: int = 4096):
        self.local = local
        self.somaxconn = somaxconn
        self.max_syn_backlog = syn_backlog
        self.backlog = backlog                      # clamped by the property below
        self.syn_queue: dict = {}                   # connections in SYN-RECEIVED, oldest first
        self.young: set = set()                     # those whose SYN-ACK has not timed out yet (Linux qlen_young)
        self.accept_queue: deque = deque()          # ESTABLISHED (or later), not yet accepted
        self.notify: Callable[[str], None] = lambda what: None
        self.setup: Callable = lambda conn: None   # the listening socket's options, onto each new connection
        self.closed = False
        self.last_cookie_at: float | None = None    # when a SYN was last answered with a cookie
        # SO_RCVBUF / SO_SNDBUF set on the listening socket (payload octets; None: as the config): its
        # connections get them from the SYN on, as Linux's children inherit sk_rcvbuf and the locks
        self.rcvbuf: int | None = None
        self.sndbuf: int | None = None
        self.stats = {"syns": 0, "accept_overflow": 0, "syn_overflow": 0, "ack_overflow": 0,
                      "syncookies_sent": 0, "syncookies_recv": 0, "syncookies_failed": 0, "synack_pruned": 0}

    def inherit_buffers(self, conn) -> None:
        """A new connection takes the listener's fixed buffer sizes, before its SYN-ACK."""
        if self.rcvbuf is not None:
            conn.lock_rcvbuf(self.rcvbuf)
        if self.sndbuf is not None:
            conn.lock_sndbuf(self.sndbuf)

    # ------------------------------------------------------------ sizes
    @property
    def backlog(self) -> int:
        return self._backlog

    @backlog.setter
    def backlog(self, value: int) -> None:
        """listen(2) again on a listening socket changes the backlog: clamped the same way."""
        self._backlog = clamp_backlog(value, self.somaxconn)

    @property
    def syn_backlog(self) -> int:
        """The SYN queue's size: the backlog, at most ``max_syn_backlog`` (Linux's bound)."""
        return max(1, min(self._backlog, self.max_syn_backlog))

    def accept_full(self) -> bool:
        return len(self.accept_queue) >= self._backlog

    def syn_full(self) -> bool:
        return len(self.syn_queue) >= self.syn_backlog

    def synack_retries(self, max_retries: int) -> int:
        """Linux ``reqsk_timer_handler``: when the SYN queue is more than half full, fewer SYN-ACK
        retries (down to 2) unless enough entries are young ("we reserve half of room for young
        embryos; and abort old ones without pity, if old ones are about to clog our table")."""
        qlen = len(self.syn_queue)
        if qlen * 2 > max(8, self._backlog):
            young = len(self.young) * 2
            while max_retries > 2:
                if qlen < young:
                    break
                max_retries -= 1
                young *= 2
        return max_retries

    # ------------------------------------------------------------ the queues
    def add_embryo(self, conn, from_cookie: bool = False) -> None:
        if not from_cookie:
            self.stats["syns"] += 1
        conn.listener = self
        self.syn_queue[conn] = None
        self.young.add(conn)

    def synack_timed_out(self, conn) -> None:
        """The embryo's SYN-ACK timed out once: it is no longer young."""
        self.young.discard(conn)

    def connection_established(self, conn, now: float) -> None:
        """The handshake completed: move from the SYN queue to the accept queue, wake accept()."""
        self.syn_queue.pop(conn, None)
        self.young.discard(conn)
        self.accept_queue.append(conn)
        self.notify("readable")

    def embryo_closed(self, conn) -> None:
        self.syn_queue.pop(conn, None)
        self.young.discard(conn)

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
