"""TCP demultiplexing and the per-stack parts of TCP: ports, listeners, timers, closed-port RSTs.

Sans-I/O like the connections: ``segment_arrives(src, dst, seg, now)`` in; output is PULLED:
``segments_to_send(now)`` -> [(src, dst, seg)] drains the ``outq`` of every connection that has
work, in the order the segments were produced; ``next_deadline()``/``on_timers(now)``.

After anything happens to a connection the layer runs the same named steps (what ``touch`` did
in one go before):

- ``conn.flush(now)``      send what became due (an ACK owed now);
- ``_note_output(conn)``   remember that its ``outq`` holds segments, in production order;
- ``_settle(conn, now)``   forget it when CLOSED, admit it to the TIME-WAIT table, re-arm its timer.

``after_user_call(conn, now)`` runs all three after a user call; segment arrival skips the flush
(ACKs owed by a batch of input are sent once, at the end of the batch, like GRO).
An exception inside one connection's code is isolated: logged once, counted as ``internal_error``,
and that connection is reset (``_internal_error``).
"""
from __future__ import annotations

import errno
import heapq
import logging
import random
from itertools import count

from ..ratelimit import TokenBucket
from ..trace import NULL_TRACER, Tracer
from ..wire.tcp import ACK, RST, SYN, TcpSegment
from .config import TcpConfig
from .connection import Connection
from .isn import IsnGenerator
from .listener import Listener
from .seq import seq_add, seq_gt, seq_lt
from .states import State

EPHEMERAL = (32768, 60999)  # Linux's default ip_local_port_range
log = logging.getLogger(__name__)


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
        self.stats: dict[str, int] = {}
        self._timers: list = []
        self._tick = count()
        # the send order: (conn, n) = conn.outq up to its n-th segment; (None, (src, dst, seg)) = a
        # reply that belongs to no connection (a RST). Drained by segments_to_send.
        self._send_order: list[tuple] = []
        # got input this batch: may owe a (coalesced) ACK; a dict for a deterministic order
        self._acks_due: dict[Connection, None] = {}
        self._time_wait: set[Connection] = set()  # bounded by config.max_time_wait
        self._next_port = self.rng.randint(*EPHEMERAL)
        limit = self.config.challenge_ack_limit
        self._challenge_bucket = TokenBucket(limit, limit)  # RFC 5961 7: per stack, not per connection
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
            self.after_user_call(conn, now)

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
        self.after_user_call(conn, now)
        return conn

    def _new_connection(self, local, remote, now: float, min_iss: int | None = None) -> Connection:
        iss = self.isn(local, remote, now)
        if min_iss is not None and seq_lt(iss, min_iss):
            iss = min_iss
        conn = Connection(local, remote, iss, now, self.config, self.mss_limit,
                          self.tracer, ts_offset=self.rng.getrandbits(32), challenge_ack=self._challenge_ok)
        conn.tso = self.tso
        self.conns[(local[0], local[1], remote[0], remote[1])] = conn
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
                try:
                    conn.segment_arrives(seg, now)
                except Exception as exc:  # a bug in one connection must not take the stack down
                    self._internal_error(conn, now, exc, f"segment {seg!r}")
                    return
                self._acks_due[conn] = None
                self._note_output(conn)
                self._settle(conn, now)
                return
        lst = self.listeners.get((dst, seg.dport)) or self.listeners.get((bytes(4), seg.dport))
        if lst is not None:
            self._listen_arrives(lst, src, dst, seg, now, min_iss)
        else:
            self._closed_arrives(src, dst, seg, now)

    def icmp_error(self, local: tuple[bytes, int], remote: tuple[bytes, int], seq: int, type_: int,
                   code: int, mtu: int, now: float) -> None:
        """An ICMP error about a segment we sent (RFC 9293 3.9.1.3, MUST-54): to its connection, which
        checks the quoted SEQ (RFC 5927 4.1); ``mtu``: the next-hop MTU of "fragmentation needed"."""
        conn = self.conns.get((local[0], local[1], remote[0], remote[1]))
        if conn is None:
            self.count("icmp_no_connection")
            return
        try:
            taken = conn.icmp_error(type_, code, seq, mtu, now)
        except Exception as exc:  # a bug in one connection must not take the stack down
            self._internal_error(conn, now, exc, f"ICMP type {type_} code {code}")
            return
        self.count("icmp_error" if taken else "icmp_bad_seq")
        self.after_user_call(conn, now)

    def _reopen_from_time_wait(self, conn: Connection, seg: TcpSegment, now: float) -> bool:
        """RFC 9293 3.10.7.4 / RFC 6191: a new SYN above RCV.NXT may end TIME-WAIT early."""
        listening = (conn.local[0], conn.local[1]) in self.listeners or (bytes(4), conn.local[1]) in self.listeners
        if listening and seg.flags & (SYN | ACK | RST) == SYN and seq_gt(seg.seq, conn.rcv_nxt):
            conn._drop(now, "new SYN in TIME-WAIT")
            self.after_user_call(conn, now)
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
        self._send_order.append((None, (dst, src, rst)))

    def _listen_arrives(self, lst: Listener, src: bytes, dst: bytes, seg: TcpSegment, now: float,
                        min_iss: int | None = None) -> None:
        """RFC 9293 3.10.7.2 LISTEN."""
        if seg.flags & RST:
            return  # first check: RST -> ignore
        if seg.flags & ACK:
            self.count("listen_ack_rst")  # second check: ACK -> RST <SEQ=SEG.ACK>
            self._send_order.append((None, (dst, src, TcpSegment(seg.dport, seg.sport, seg.ack, 0, RST, 0))))
            return
        if not seg.flags & SYN:
            self.count("listen_no_syn")  # fourth: other text or control -> drop
            return
        if not lst.can_take_syn():
            self.count("listen_overflow")
            return
        conn = self._new_connection((dst, seg.dport), (src, seg.sport), now, min_iss)
        lst.add_embryo(conn)
        try:
            conn.open_passive(seg, now)
        except Exception as exc:
            self._internal_error(conn, now, exc, f"SYN {seg!r}")
            return
        self.after_user_call(conn, now)

    # ------------------------------------------------------------ after an event: the named steps
    def after_user_call(self, conn: Connection, now: float) -> None:
        """After a user call (or a timer) changed ``conn``: send what is due, note its output, settle it."""
        conn.flush(now)
        self._note_output(conn)
        self._settle(conn, now)

    touch = after_user_call  # the old name (tests and labs drive connections by hand with it)

    def _note_output(self, conn: Connection) -> None:
        """Remember, in production order, that ``conn.outq`` holds segments up to its current length."""
        n = len(conn.outq)
        if n:
            order = self._send_order
            if order and order[-1][0] is conn:
                order[-1] = (conn, n)
            else:
                order.append((conn, n))

    def _settle(self, conn: Connection, now: float) -> None:
        """Forget ``conn`` once CLOSED; admit it to the (bounded) TIME-WAIT table; re-arm its timer."""
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
        self._arm_timer(conn)

    def _arm_timer(self, conn: Connection) -> None:
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

    # ------------------------------------------------------------ output (pulled)
    def segments_to_send(self, now: float) -> list[tuple[bytes, bytes, TcpSegment]]:
        """End of an input batch or of a user call: every segment to send, in the order produced.

        First the ACKs that became due over the batch (coalesced, like GRO), then each
        connection's ``outq`` is drained in the order its segments were noted."""
        if self._acks_due:
            due, self._acks_due = self._acks_due, {}
            for conn in due:
                self.after_user_call(conn, now)
        order = self._send_order
        if not order:
            return []
        self._send_order = []
        out: list[tuple[bytes, bytes, TcpSegment]] = []
        taken: dict[Connection, int] = {}
        for conn, upto in order:
            if conn is None:
                out.append(upto)  # a reply without a connection: (src, dst, seg)
                continue
            start = taken.get(conn, 0)
            if upto > start:
                local, remote = conn.local[0], conn.remote[0]
                out.extend((local, remote, s) for s in conn.outq[start:upto])
                taken[conn] = upto
        for conn, n in taken.items():
            del conn.outq[:n]
        return out

    # ------------------------------------------------------------ timers
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
            try:
                conn.on_timer(now)
            except Exception as exc:  # a bug in one connection must not take the stack down
                self._internal_error(conn, now, exc, "timer")
                continue
            self.after_user_call(conn, now)

    # ------------------------------------------------------------ isolation and limits
    def _internal_error(self, conn: Connection, now: float, exc: Exception, what: str) -> None:
        """An unexpected exception in ``conn``'s code: log it once, count it, reset that connection."""
        self.count("internal_error")
        log.error("tcp: internal error in %s while processing %s: %r", conn.name, what, exc, exc_info=exc)
        if self.tracer.enabled:
            self.tracer.emit("internal_error", now, conn=conn.name, what=what, error=repr(exc))
        try:
            conn.abort(now, "internal error")  # RFC 9293 3.10.5: RST in synchronized states
            conn.error = conn.error or errno.ECONNRESET
            conn.notify("error")
            self._note_output(conn)
        except Exception:  # too broken even to abort: no RST, but its socket still learns of the reset
            try:
                conn._drop(now, "internal error", errno.ECONNRESET)
            except Exception:
                pass
        self._forget(conn)

    def _challenge_ok(self, now: float) -> bool:
        """RFC 5961 7: at most ``challenge_ack_limit`` challenge ACKs per second (token bucket)."""
        if self._challenge_bucket.take(now):
            return True
        self.count("challenge_ack_limited")
        return False
