"""TCP demultiplexing and the per-stack parts of TCP: ports, listeners, timers, closed-port RSTs.

Sans-I/O like the connections: ``segment_arrives(src, dst, seg, now)`` in; output is PULLED:
``segments_to_send(now)`` -> [(src, dst, seg)] drains the ``outq`` of every connection that has
work, in the order the segments were produced; ``next_deadline()``/``on_timers(now)``.

After anything happens to a connection the layer runs the same named steps (what ``touch`` did
in one go before):

- ``conn.flush(now)``      send what became due (an ACK owed now);
- ``_note_output(conn)``   remember that its ``outq`` holds segments, in production order;
- ``_settle(conn, now)``   forget it when CLOSED, replace it by a compact TIME-WAIT record once its
                           last ACK is out (``stack/tcp/timewait.py``), re-arm its timer.

``after_user_call(conn, now)`` runs all three after a user call; segment arrival skips the flush
(ACKs owed by a batch of input are sent once, at the end of the batch, like GRO).
An exception inside one connection's code is isolated: logged once, counted as ``internal_error``,
and that connection is reset (``_internal_error``).

Listeners follow Linux under load (``_listen_syn``, ``_cookie_ack``, ``_accept_overflow``,
``_prune_embryo``): SYN cookies once the SYN queue is full, the final ACK dropped while the accept
queue is full, fewer SYN-ACK retries for old half-open entries; at most ``max_connections`` full
connections. docs/design-notes.md explains the choices.
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
from .memory import TcpMemory
from .timewait import TimeWaitRecord
from .syncookies import COOKIE_LIFETIME, SynCookies, check_cookie_ack, cookie_syn_ack, open_from_cookie
from .seq import seq_add, seq_gt, seq_le, seq_lt
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
        # every connection by its 4-tuple (local addr, local port, remote addr, remote port); one in
        # TIME-WAIT is replaced by its compact record once its last ACK is out (stack/tcp/timewait.py)
        self.conns: dict[tuple, Connection | TimeWaitRecord] = {}
        self.listeners: dict[tuple[bytes, int], Listener] = {}
        self.bound: dict[tuple[bytes, int], int] = {}  # bind(2) reservations
        self.stats: dict[str, int] = {}
        self._timers: list = []  # heap of (deadline, tick, 4-tuple): no entry keeps an object alive
        self._tick = count()
        # the send order: (conn, n) = conn.outq up to its n-th segment; (None, (src, dst, seg)) = a
        # reply that belongs to no connection (a RST). Drained by segments_to_send.
        self._send_order: list[tuple] = []
        # got input this batch: may owe a (coalesced) ACK; a dict for a deterministic order
        self._acks_due: dict[Connection, None] = {}
        self._time_wait: dict[tuple, TimeWaitRecord] = {}  # bounded by config.max_time_wait
        self._next_port = self.rng.randint(*EPHEMERAL)
        limit = self.config.challenge_ack_limit
        self._challenge_bucket = TokenBucket(limit, limit)  # RFC 5961 7: per stack, not per connection
        self._cookies: SynCookies | None = None
        self.memory = TcpMemory(self.config.mem_limit)  # every connection's buffers (like tcp_mem)
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
        lst = Listener(key, backlog, self.config.syn_backlog, self.config.somaxconn)
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
        if not self._may_add_connection():
            raise OSError(errno.ENOBUFS, "too many connections (TcpConfig.max_connections)")
        conn = self._new_connection(local, remote, now)
        if setup:
            setup(conn)
        conn.open_active(now)
        self.after_user_call(conn, now)
        return conn

    def _new_connection(self, local, remote, now: float, min_iss: int | None = None, iss: int | None = None,
                        ts_offset: int | None = None) -> Connection:
        if iss is None:
            iss = self.isn(local, remote, now)
            if min_iss is not None and seq_lt(iss, min_iss):
                iss = min_iss
        if ts_offset is None:
            ts_offset = self.rng.getrandbits(32)
        conn = Connection(local, remote, iss, now, self.config, self.mss_limit,
                          self.tracer, ts_offset=ts_offset, challenge_ack=self._challenge_ok, memory=self.memory)
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
            elif type(conn) is TimeWaitRecord:
                self._time_wait_arrives(conn, seg, now)
                return
            elif conn.state is State.SYN_RECEIVED and self._accept_overflow(conn, seg):
                return
            else:
                try:
                    conn.segment_arrives(seg, now)
                except Exception as exc:  # a bug in one connection must not take the stack down
                    self._internal_error(conn, now, exc, f"segment {seg!r}")
                    return
                self._acks_due[conn] = None
                self._note_output(conn)
                if conn.state is not State.ESTABLISHED:  # settled after the batch by segments_to_send
                    self._settle(conn, now)           # (its timer: a new deadline is never already due)
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
        if conn is None or type(conn) is TimeWaitRecord:  # nothing left to tell in TIME-WAIT
            self.count("icmp_no_connection")
            return
        try:
            taken = conn.icmp_error(type_, code, seq, mtu, now)
        except Exception as exc:  # a bug in one connection must not take the stack down
            self._internal_error(conn, now, exc, f"ICMP type {type_} code {code}")
            return
        self.count("icmp_error" if taken else "icmp_bad_seq")
        self.after_user_call(conn, now)

    def _reopen_from_time_wait(self, tcb, seg: TcpSegment, now: float) -> bool:
        """RFC 9293 3.10.7.4 / RFC 6191: a new SYN above RCV.NXT may end TIME-WAIT early (``tcb``: a
        connection in TIME-WAIT or its record)."""
        listening = (tcb.local[0], tcb.local[1]) in self.listeners or (bytes(4), tcb.local[1]) in self.listeners
        if listening and seg.flags & (SYN | ACK | RST) == SYN and seq_gt(seg.seq, tcb.rcv_nxt):
            if type(tcb) is TimeWaitRecord:
                self._end_time_wait(tcb, now, "new SYN in TIME-WAIT")
            else:
                tcb._delete_tcb(now, "new SYN in TIME-WAIT")
                self.after_user_call(tcb, now)
            return True
        return False

    def _time_wait_arrives(self, rec: TimeWaitRecord, seg: TcpSegment, now: float) -> None:
        """RFC 9293 3.10.7.4 in TIME-WAIT, answered by the compact record."""
        reply, ended, dropped = rec.segment_arrives(seg, now, self._challenge_ok, 2 * self.config.msl)
        if dropped:
            self.count("time_wait_" + dropped)  # every drop has a name (time_wait_no_ack, ...)
        if reply is not None:
            self._send_order.append((None, (rec.key[0], rec.key[2], reply)))
        if ended:
            self._end_time_wait(rec, now, "RST")
        else:
            self._arm_timer(rec)

    def _end_time_wait(self, rec: TimeWaitRecord, now: float, why: str) -> None:
        key = rec.key
        if self._time_wait.get(key) is rec:
            del self._time_wait[key]
        if self.conns.get(key) is rec:
            del self.conns[key]
        rec._scheduled = None
        rec.closed(now, why, self.tracer)

    def _accept_overflow(self, conn: Connection, seg: TcpSegment) -> bool:
        """The ACK that would complete a passive open while the accept queue is full: drop it and keep the
        half-open connection (Linux tcp_check_req -> listen_overflow), so the peer's retransmission (or
        its answer to our SYN-ACK's) completes it once accept() made room; never a connection
        established and then never accepted."""
        lst = conn.listener
        if lst is None or not lst.accept_full() or seg.flags & (SYN | RST | ACK) != ACK:
            return False
        if not (seq_lt(conn.snd_una, seg.ack) and seq_le(seg.ack, conn.snd_max)):
            return False  # not the completing ACK: the connection answers it (RFC 9293 3.10.7.4)
        lst.stats["ack_overflow"] += 1
        self.count("listen_overflow")
        return True

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
            self.count("listen_rst")  # first check: RST -> ignore
            return
        if seg.flags & ACK:
            if seg.flags & SYN or not self._cookie_ack(lst, src, dst, seg, now):
                self._listen_rst(src, dst, seg)  # second check: ACK -> RST <SEQ=SEG.ACK>
            return
        if not seg.flags & SYN:
            self.count("listen_no_syn")  # fourth: other text or control -> drop
            return
        self._listen_syn(lst, src, dst, seg, now, min_iss)

    def _listen_rst(self, src: bytes, dst: bytes, seg: TcpSegment) -> None:
        """RFC 9293 3.10.7.2 second check: any acknowledgment is bad in LISTEN -> <SEQ=SEG.ACK><CTL=RST>."""
        self.count("listen_ack_rst")
        self._send_order.append((None, (dst, src, TcpSegment(seg.dport, seg.sport, seg.ack, 0, RST, 0))))

    def _listen_syn(self, lst: Listener, src: bytes, dst: bytes, seg: TcpSegment, now: float,
                    min_iss: int | None) -> None:
        """RFC 9293 3.10.7.2 third check, with Linux's queues (tcp_conn_request): a full SYN queue means
        a SYN cookie (RFC 4987 3.6) or a drop; a full accept queue a drop (the client retries)."""
        cookies = self.config.syncookies
        if cookies == 2 or lst.syn_full():
            if not cookies:
                lst.stats["syn_overflow"] += 1
                self.count("listen_overflow")
                return
            want_cookie = True
        else:
            want_cookie = False
        if lst.accept_full():
            lst.stats["accept_overflow"] += 1
            self.count("listen_overflow")
            return
        if want_cookie:
            self._send_cookie(lst, src, dst, seg, now)
            return
        if not self._may_add_connection():
            return
        conn = self._new_connection((dst, seg.dport), (src, seg.sport), now, min_iss)
        lst.inherit_buffers(conn)  # before the SYN-ACK: its window and window scale follow them
        lst.add_embryo(conn)
        try:
            lst.setup(conn)  # the listening socket's options (TCP_MAXSEG, IP_TTL, IP_TOS) before the SYN-ACK
            conn.open_passive(seg, now)
        except Exception as exc:
            self._internal_error(conn, now, exc, f"SYN {seg!r}")
            return
        self.after_user_call(conn, now)

    # ------------------------------------------------------------ SYN cookies (RFC 4987 3.6)
    @property
    def cookies(self) -> SynCookies:
        """The SYN cookie secret, drawn from the injected rng when first needed (seeded runs that never
        see a flood draw nothing more)."""
        if self._cookies is None:
            self._cookies = SynCookies(self.rng.getrandbits(128).to_bytes(16, "big"))
        return self._cookies

    def _send_cookie(self, lst: Listener, src: bytes, dst: bytes, seg: TcpSegment, now: float) -> None:
        """Answer the SYN with a SYN-ACK whose ISN (and TSval) carry what we would have kept; keep nothing."""
        reply = cookie_syn_ack(self.cookies, self.config, self.mss_limit, src, dst, seg, now)
        if lst.last_cookie_at is None:  # as Linux's tcp_syn_flood_action, once per listener
            log.warning("tcp: possible SYN flooding on port %d: sending cookies", seg.dport)
        lst.last_cookie_at = now
        lst.stats["syncookies_sent"] += 1
        self.count("syncookies_sent")
        if self.tracer.enabled:
            self.tracer.emit("syncookie", now, dport=seg.dport, sport=seg.sport, isn=reply.seq)
        self._send_order.append((None, (dst, src, reply)))

    def _cookie_ack(self, lst: Listener, src: bytes, dst: bytes, seg: TcpSegment, now: float) -> bool:
        """An ACK for nobody at a listener that sent cookies lately: if it returns a valid cookie, rebuild
        the connection (Linux cookie_v4_check). False: not a cookie, the RFC's RST follows."""
        if not self.config.syncookies or lst.last_cookie_at is None or now - lst.last_cookie_at > COOKIE_LIFETIME:
            return False  # Linux tcp_synq_no_recent_overflow: no cookie was sent lately
        found = check_cookie_ack(self.cookies, self.config, src, dst, seg, now)
        if found is None:
            lst.stats["syncookies_failed"] += 1
            self.count("syncookies_failed")
            return False
        lst.stats["syncookies_recv"] += 1
        self.count("syncookies_recv")
        if lst.accept_full():  # Linux: syn_recv_sock -> listen_overflow; the peer's retransmission retries
            lst.stats["ack_overflow"] += 1
            self.count("listen_overflow")
            return True
        if not self._may_add_connection():
            return True
        conn = self._new_connection((dst, seg.dport), (src, seg.sport), now, iss=seq_add(seg.ack, -1),
                                    ts_offset=self.cookies.ts_offset(src, seg.sport, dst, seg.dport))
        lst.inherit_buffers(conn)
        lst.add_embryo(conn, from_cookie=True)
        try:
            lst.setup(conn)
            open_from_cookie(conn, found, seg, now)
            conn.segment_arrives(seg, now)  # in SYN-RECEIVED: ESTABLISHED, onto the accept queue, its data taken
        except Exception as exc:
            self._internal_error(conn, now, exc, f"cookie ACK {seg!r}")
            return True
        self._acks_due[conn] = None
        self._note_output(conn)
        self._settle(conn, now)
        return True

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
        """Forget ``conn`` once CLOSED; replace it by a TIME-WAIT record once its last ACK is out; re-arm its timer."""
        self._charge(conn)
        if conn.state is State.CLOSED:
            self._forget(conn)
            return
        if conn.state is State.TIME_WAIT:
            key = _key(conn)
            if self.conns.get(key) is not conn:
                return  # already replaced by its record (a user call on the old connection)
            if not conn.ack_now:  # its ACK of the FIN is out (else: after the batch, in segments_to_send)
                self._enter_time_wait(conn, key, now)
                return
        self._arm_timer(conn)

    def _charge(self, conn: Connection) -> None:
        """Bring the memory budget up to date with what ``conn`` holds now (memory.py)."""
        held = conn.state is not State.CLOSED and self.conns.get(_key(conn)) is conn  # not replaced by a record
        used = conn.mem_usage() if held else 0
        if used != conn.mem_charged:
            self.memory.charge(used - conn.mem_charged)
            conn.mem_charged = used

    def _enter_time_wait(self, conn: Connection, key: tuple, now: float) -> None:
        """The table keeps a compact record instead of the connection (bounded like tcp_max_tw_buckets)."""
        if len(self._time_wait) >= self.config.max_time_wait:
            self.count("time_wait_overflow")  # as Linux: "time wait bucket table overflow"
            conn._delete_tcb(now, "TIME-WAIT table full")
            self._forget(conn)
            return
        self.memory.charge(-conn.mem_charged)  # the record keeps no buffers
        conn.mem_charged = 0
        rec = TimeWaitRecord.from_connection(conn, key)
        self.conns[key] = self._time_wait[key] = rec
        if conn.listener is not None:
            conn.listener.embryo_closed(conn)
        conn._scheduled = None
        _unhook(conn)
        self._arm_timer(rec)

    def _arm_timer(self, tcb) -> None:
        deadline = tcb.next_deadline()
        scheduled = tcb._scheduled
        if deadline is not None and (scheduled is None or deadline < scheduled):
            # only an earlier deadline needs a new heap entry: a later one is found when the
            # earlier entry fires and the connection reports nothing due (lazy re-arming)
            tcb._scheduled = deadline
            heapq.heappush(self._timers, (deadline, next(self._tick), _key(tcb)))

    def _forget(self, conn: Connection) -> None:
        self.memory.charge(-conn.mem_charged)
        conn.mem_charged = 0
        key = _key(conn)
        if self.conns.get(key) is conn:
            del self.conns[key]
        if conn.listener is not None:
            conn.listener.embryo_closed(conn)  # one in the accept queue stays: accept() reports its error
        conn._scheduled = None
        _unhook(conn)

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
                if conn.ip_fields is not None:  # IP_TTL / IP_TOS: carried to where the IP header is built
                    for s in conn.outq[start:upto]:
                        s.ip_fields = conn.ip_fields
                out += [(local, remote, s) for s in conn.outq[start:upto]]
                taken[conn] = upto
        for conn, n in taken.items():
            del conn.outq[:n]
        return out

    # ------------------------------------------------------------ timers
    def next_deadline(self) -> float | None:
        timers = self._timers
        conns = self.conns
        while timers:
            deadline, _, key = timers[0]
            tcb = conns.get(key)
            if tcb is not None and tcb._scheduled == deadline:
                if type(tcb) is TimeWaitRecord or tcb.listener is not None:
                    return deadline  # records and embryos: re-armed when the entry fires (on_timers)
                due = tcb.next_deadline()
                if due is not None and due <= deadline:
                    return deadline
                # lazy re-arming, done before the wake-up it would cost: the connection's timers
                # moved later (an ACK restarted the RTO or the PTO) or stopped since this entry
                tcb._scheduled = due
                if due is None:
                    heapq.heappop(timers)
                    continue
                heapq.heapreplace(timers, (due, next(self._tick), key))
                if timers[0][0] == due:
                    return due  # its new entry is (or ties) the earliest: valid, asked just now
                continue
            heapq.heappop(timers)  # stale entry
        return None

    def may_be_due(self, now: float) -> bool:
        """Whether ``on_timers`` may have work at ``now``, in two lookups: the earliest heap entry is due.
        False means ``next_deadline()`` is later than ``now`` (or None): it returns a heap entry's
        deadline, and entries only ever move later (lazy re-arming), so none is before the earliest."""
        timers = self._timers
        return bool(timers) and timers[0][0] <= now

    def on_timers(self, now: float) -> None:
        timers = self._timers
        conns = self.conns
        while timers and timers[0][0] <= now:
            deadline, _, key = heapq.heappop(timers)
            conn = conns.get(key)
            if conn is None or conn._scheduled != deadline:
                continue
            conn._scheduled = None
            if type(conn) is TimeWaitRecord:
                if now >= conn.deadline:
                    self._end_time_wait(conn, now, "2MSL timeout")
                else:
                    self._arm_timer(conn)  # restarted by a retransmitted FIN
                continue
            lst = conn.listener
            if conn.state is State.SYN_RECEIVED and lst is not None and self._prune_embryo(lst, conn, now):
                continue
            try:
                conn.on_timer(now)
            except Exception as exc:  # a bug in one connection must not take the stack down
                self._internal_error(conn, now, exc, "timer")
                continue
            if lst is not None and conn.retries:
                lst.synack_timed_out(conn)
            self.after_user_call(conn, now)

    def _prune_embryo(self, lst: Listener, conn: Connection, now: float) -> bool:
        """Linux reqsk_timer_handler: with the SYN queue more than half full of old entries, an embryo
        gets fewer SYN-ACK retries (``Listener.synack_retries``); this timeout would exceed them -> drop it."""
        due = conn.next_deadline()
        if due is None or due > now:
            return False  # not its SYN-ACK timeout yet (a stale heap entry)
        limit = lst.synack_retries(self.config.synack_retries)
        if limit >= self.config.synack_retries or conn.retries < limit:
            return False  # the connection's own limit applies
        lst.stats["synack_pruned"] += 1
        self.count("synack_pruned")
        conn._delete_tcb(now, "SYN-ACK retries cut: SYN queue under pressure")
        self.after_user_call(conn, now)
        return True

    # ------------------------------------------------------------ housekeeping
    def compact(self) -> None:
        """Size the tables to what they hold now (the runtime calls this once they drained: memtrim.py).

        A dict never shrinks as entries go: after 16,384 TIME-WAIT records, ``conns`` and ``_time_wait``
        would keep room for them (about 1 MiB) for good. Each is refilled from a copy sized to its
        contents (``shrink``): the tables stay the objects made at start-up, since a new object made
        after a burst would sit among the burst's freed memory and keep an allocator arena alive."""
        shrink(self.conns)
        shrink(self._time_wait)
        for lst in self.listeners.values():  # after a SYN flood the SYN queue would keep room for the flood
            shrink(lst.syn_queue)
            shrink(lst.young)

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
                conn._delete_tcb(now, "internal error", errno.ECONNRESET)
            except Exception:
                pass
        self._forget(conn)

    def _may_add_connection(self) -> bool:
        """The cap on full connections (``config.max_connections``; TIME-WAIT records do not count)."""
        if len(self.conns) - len(self._time_wait) < self.config.max_connections:
            return True
        self.count("conn_limit")
        return False

    def _challenge_ok(self, now: float) -> bool:
        """RFC 5961 7: at most ``challenge_ack_limit`` challenge ACKs per second (token bucket)."""
        if self._challenge_bucket.take(now):
            return True
        self.count("challenge_ack_limited")
        return False


def shrink(table: dict | set) -> None:
    """Give ``table`` (a dict or a set) room for what it holds only; the same object afterwards."""
    kept = table.copy()
    table.clear()      # frees the storage sized for the table's largest size
    table.update(kept)


def _untraced(*args, **fields) -> None:
    """What a forgotten connection's loss recovery traces with: nothing."""


def _unhook(conn: Connection) -> None:
    """The table forgets ``conn`` (CLOSED, or replaced by its TIME-WAIT record): its loss recovery, which
    no segment reaches any more, lets go of the connection's bound trace methods. That was a reference
    cycle: every connection waited for the garbage collector's next full pass (rare while thousands of
    TIME-WAIT records live), instead of going when its socket lets go of it."""
    conn.recovery.trace = conn.recovery.trace_cc = _untraced


def _key(tcb) -> tuple:
    """The table key of a connection or a TIME-WAIT record: (local addr, local port, remote addr, remote port)."""
    local, remote = tcb.local, tcb.remote
    return local[0], local[1], remote[0], remote[1]
