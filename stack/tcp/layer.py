"""TCP demultiplexing and the per-stack parts of TCP: ports, listeners, timers, closed-port RSTs.

Sans-I/O like the connections: ``segment_arrives(src, dst, seg, now)`` in,
``take_output()`` -> [(src, dst, seg)] out, ``next_deadline()``/``on_timers(now)``.
"""
from __future__ import annotations

import errno
import heapq
import random
from itertools import count

from ..trace import NULL_TRACER, Tracer
from ..wire.tcp import ACK, RST, SYN, TcpSegment
from .config import TcpConfig
from .connection import Connection
from .isn import IsnGenerator
from .listener import Listener
from .seq import seq_add, seq_gt, seq_lt
from .states import State

EPHEMERAL = (32768, 60999)  # Linux's default ip_local_port_range


class TcpLayer:
    def __init__(self, mss_limit: int, config: TcpConfig | None = None, tracer: Tracer = NULL_TRACER,
                 rng: random.Random | None = None, isn=None):
        self.config = config or TcpConfig()
        self.mss_limit = self.config.mss or mss_limit
        self.tracer = tracer
        self.rng = rng or random.Random()
        self.isn = isn or IsnGenerator(self.rng)
        self.conns: dict[tuple, Connection] = {}
        self.listeners: dict[tuple[bytes, int], Listener] = {}
        self.bound: dict[tuple[bytes, int], int] = {}  # bind(2) reservations
        self.out: list[tuple[bytes, bytes, TcpSegment]] = []
        self.stats: dict[str, int] = {}
        self._timers: list = []
        self._tick = count()
        self._dirty: set[Connection] = set()
        self._time_wait: set[Connection] = set()  # bounded by config.max_time_wait
        self._next_port = self.rng.randint(*EPHEMERAL)
        self._challenge_tokens = float(self.config.challenge_ack_limit)
        self._challenge_time = 0.0
        self.on_new_connection = None  # runtime hook: called with each Connection created
        self.tso = False               # the link splits super-segments (TUN offload): send up to 64 KiB at once

    # ------------------------------------------------------------ counters
    def count(self, reason: str, n: int = 1) -> None:
        self.stats[reason] = self.stats.get(reason, 0) + n

    # ------------------------------------------------------------ user side
    def listen(self, addr: bytes, port: int, backlog: int, reserved: bool = False) -> Listener:
        """Passive open. ``reserved``: the caller's own bind() reservation of this port does not count."""
        key = (addr, port)
        if reserved:
            self.unbind(key)
        try:
            if key in self.listeners or self.port_in_use(addr, port):
                raise OSError(errno.EADDRINUSE, "Address already in use")
        finally:
            if reserved:
                self.bind(key)
        lst = Listener(key, backlog, self.config.syn_backlog)
        self.listeners[key] = lst
        return lst

    def unlisten(self, lst: Listener, now: float) -> None:
        """Close a listening socket: reset every connection not yet accepted (as Linux does)."""
        self.listeners.pop(lst.local, None)
        lst.closed = True
        for conn in lst.pending():
            conn.abort(now, "listener closed")
            self.touch(conn, now)

    def bind(self, local: tuple[bytes, int]) -> None:
        """Reserve a local address and port for a socket (bind(2)); released by ``unbind``."""
        self.bound[local] = self.bound.get(local, 0) + 1

    def unbind(self, local: tuple[bytes, int]) -> None:
        n = self.bound.get(local, 0) - 1
        if n > 0:
            self.bound[local] = n
        else:
            self.bound.pop(local, None)

    def port_in_use(self, addr: bytes, port: int) -> bool:
        wild = bytes(4)
        for a, p in list(self.listeners) + list(self.bound):
            if p == port and (a == addr or a == wild or addr == wild):
                return True
        return False

    def allocate_port(self, local_addr: bytes, remote: tuple[bytes, int]) -> int:
        lo, hi = EPHEMERAL
        for _ in range(hi - lo + 1):
            port = self._next_port
            self._next_port = lo if port >= hi else port + 1
            if (local_addr, port, remote[0], remote[1]) not in self.conns and not self.port_in_use(local_addr, port):
                return port
        raise OSError(errno.EADDRNOTAVAIL, "no free ephemeral port")

    def connect(self, local: tuple[bytes, int], remote: tuple[bytes, int], now: float, setup=None) -> Connection:
        """Active open (RFC 9293 3.10.1). ``setup(conn)`` may adjust options before the SYN goes out."""
        key = (local[0], local[1], remote[0], remote[1])
        if key in self.conns:
            raise OSError(errno.EADDRINUSE, "Address already in use")
        conn = self._new_connection(local, remote, now)
        if setup:
            setup(conn)
        conn.open_active(now)
        self.touch(conn, now)
        return conn

    def _new_connection(self, local, remote, now: float, min_iss: int | None = None) -> Connection:
        iss = self.isn(local, remote, now)
        if min_iss is not None and seq_lt(iss, min_iss):
            iss = min_iss
        conn = Connection(local, remote, iss, now, self.config, self.mss_limit,
                          self.tracer, ts_offset=self.rng.getrandbits(32), challenge_ack=self._challenge_ok)
        conn.tso = self.tso
        self.conns[(local[0], local[1], remote[0], remote[1])] = conn
        if self.on_new_connection:
            self.on_new_connection(conn)
        return conn

    # ------------------------------------------------------------ arrival
    def segment_arrives(self, src: bytes, dst: bytes, seg: TcpSegment, now: float) -> None:
        conn = self.conns.get((dst, seg.dport, src, seg.sport))
        min_iss = None
        if conn is not None:
            if conn.state is State.TIME_WAIT and self._reopen_from_time_wait(conn, seg, now):
                min_iss = seq_add(conn.snd_max, 1 << 16)  # RFC 9293 3.6.1: above the old incarnation's
                conn = None
            else:
                conn.segment_arrives(seg, now)
                self._dirty.add(conn)
                self.touch(conn, now, flush=False)
                return
        lst = self.listeners.get((dst, seg.dport)) or self.listeners.get((bytes(4), seg.dport))
        if lst is not None:
            self._listen_arrives(lst, src, dst, seg, now, min_iss)
        else:
            self._closed_arrives(src, dst, seg, now)

    def _reopen_from_time_wait(self, conn: Connection, seg: TcpSegment, now: float) -> bool:
        """RFC 9293 3.10.7.4 / RFC 6191: a new SYN above RCV.NXT may end TIME-WAIT early."""
        listening = (conn.local[0], conn.local[1]) in self.listeners or (bytes(4), conn.local[1]) in self.listeners
        if listening and seg.flags & (SYN | ACK | RST) == SYN and seq_gt(seg.seq, conn.rcv_nxt):
            conn._drop(now, "new SYN in TIME-WAIT")
            self.touch(conn, now)
            return True
        return False

    def _closed_arrives(self, src: bytes, dst: bytes, seg: TcpSegment, now: float) -> None:
        """RFC 9293 3.10.7.1 CLOSED: drop RSTs; otherwise answer with a RST that the sender will accept."""
        self.count("closed_port")
        if seg.flags & RST:
            return
        if seg.flags & ACK:
            rst = TcpSegment(seg.dport, seg.sport, seg.ack, 0, RST, 0)
        else:
            rst = TcpSegment(seg.dport, seg.sport, 0, seq_add(seg.seq, seg.seg_len), RST | ACK, 0)
        self.count("rst_sent")
        if self.tracer.enabled:
            self.tracer.emit("rst", now, why="closed port", dport=seg.dport)
        self.out.append((dst, src, rst))

    def _listen_arrives(self, lst: Listener, src: bytes, dst: bytes, seg: TcpSegment, now: float,
                        min_iss: int | None = None) -> None:
        """RFC 9293 3.10.7.2 LISTEN."""
        if seg.flags & RST:
            return  # first check: RST -> ignore
        if seg.flags & ACK:
            self.count("listen_ack_rst")  # second check: ACK -> RST <SEQ=SEG.ACK>
            self.out.append((dst, src, TcpSegment(seg.dport, seg.sport, seg.ack, 0, RST, 0)))
            return
        if not seg.flags & SYN:
            self.count("listen_no_syn")  # fourth: other text or control -> drop
            return
        if not lst.can_take_syn():
            self.count("listen_overflow")
            return
        conn = self._new_connection((dst, seg.dport), (src, seg.sport), now, min_iss)
        lst.add_embryo(conn)
        conn.open_passive(seg, now)
        self.touch(conn, now)

    # ------------------------------------------------------------ output and timers
    def touch(self, conn: Connection, now: float, flush: bool = True) -> None:
        """After anything happened to ``conn``: collect its output, reschedule its timer, forget it if CLOSED."""
        if flush:
            conn.flush(now)
        if conn.outq:
            local, remote = conn.local[0], conn.remote[0]
            self.out.extend((local, remote, s) for s in conn.outq)
            conn.outq.clear()
        if conn.state is State.CLOSED:
            self._forget(conn)
            return
        if conn.state is State.TIME_WAIT and conn not in self._time_wait:
            if len(self._time_wait) >= self.config.max_time_wait:
                self.count("time_wait_overflow")  # as Linux: "time wait bucket table overflow"
                conn._drop(now, "TIME-WAIT table full")
                self._forget(conn)
                return
            self._time_wait.add(conn)
        deadline = conn.next_deadline()
        scheduled = conn._scheduled
        if deadline is not None and (scheduled is None or deadline < scheduled):
            # only an earlier deadline needs a new heap entry: a later one is found when the
            # earlier entry fires and the connection reports nothing due (lazy re-arming)
            conn._scheduled = deadline
            heapq.heappush(self._timers, (deadline, next(self._tick), conn))

    def _forget(self, conn: Connection) -> None:
        self._time_wait.discard(conn)
        key = (conn.local[0], conn.local[1], conn.remote[0], conn.remote[1])
        if self.conns.get(key) is conn:
            del self.conns[key]
        if conn.listener is not None:
            conn.listener.embryo_closed(conn)  # one in the accept queue stays: accept() reports its error
        conn._scheduled = None

    def flush(self, now: float) -> None:
        """End of an input batch: send the ACKs that became due (coalesced, like GRO)."""
        dirty, self._dirty = self._dirty, set()
        for conn in dirty:
            self.touch(conn, now)

    def take_output(self) -> list[tuple[bytes, bytes, TcpSegment]]:
        out, self.out = self.out, []
        return out

    def next_deadline(self) -> float | None:
        timers = self._timers
        while timers:
            deadline, _, conn = timers[0]
            if conn._scheduled == deadline:
                return deadline
            heapq.heappop(timers)  # stale entry
        return None

    def on_timers(self, now: float) -> None:
        timers = self._timers
        while timers and timers[0][0] <= now:
            deadline, _, conn = heapq.heappop(timers)
            if conn._scheduled != deadline:
                continue
            conn._scheduled = None
            conn.on_timer(now)
            self.touch(conn, now)

    def _challenge_ok(self, now: float) -> bool:
        """RFC 5961 7: at most ``challenge_ack_limit`` challenge ACKs per second (token bucket)."""
        limit = self.config.challenge_ack_limit
        self._challenge_tokens = min(limit, self._challenge_tokens + (now - self._challenge_time) * limit)
        self._challenge_time = now
        if self._challenge_tokens >= 1:
            self._challenge_tokens -= 1
            return True
        self.count("challenge_ack_limited")
        return False
