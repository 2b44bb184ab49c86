"""Compact TIME-WAIT records (Linux's ``inet_timewait_sock``).

A connection in TIME-WAIT has nothing left to send or receive: it only has to answer a
retransmitted FIN and refuse old duplicates for 2 MSL (RFC 9293 3.3.2, 3.10.7.4). Once its
final ACK is out, the layer replaces the ``Connection`` (buffers, RTT estimator, congestion
control, recovery: some 10 KB) in its table by a ``TimeWaitRecord`` holding only what the
TIME-WAIT rules read: the 4-tuple, SND.NXT, RCV.NXT, the receive window, the timestamp state
and the deadline (under 1 KB; ``tests/tcp/test_timewait_record.py`` measures it).

The record keeps a weak reference to the connection: while a socket still holds it (an
application that has not closed yet), its state follows the record (CLOSED when TIME-WAIT
ends, through ``Connection._delete_tcb``, which traces and wakes the socket); once nobody holds it,
it is freed and the record answers alone.

Sans-I/O like the rest: ``segment_arrives(seg, now, challenge_ok, msl2)`` returns the reply
(or None), whether TIME-WAIT ended, and the name of a drop; the layer queues, counts and forgets.
"""
from __future__ import annotations

import socket as _socket
import weakref

from ..wire.tcp import ACK, FIN, RST, SYN, TcpSegment
from .seq import MASK, seq_add, seq_diff, seq_gt, seq_in, seq_le, seq_lt
from .states import State


class TimeWaitRecord:
    __slots__ = ("key", "snd_nxt", "rcv_nxt", "rcv_wnd", "window", "max_snd_wnd", "ts_recent",
                 "ts_offset", "deadline", "sk_reuse", "_conn", "_scheduled")
    state = State.TIME_WAIT          # observers (ss view, counters) read it like a connection's
    listener = None
    sndbuf = rcvbuf = b""

    def __init__(self, key: tuple, snd_nxt: int, rcv_nxt: int, rcv_wnd: int, window: int, max_snd_wnd: int,
                 ts_recent: int, ts_offset: int | None, deadline: float, conn=None):
        self.key = key                       # (local addr, local port, remote addr, remote port)
        self.snd_nxt, self.rcv_nxt = snd_nxt, rcv_nxt
        self.rcv_wnd, self.window = rcv_wnd, window  # bytes (acceptability), the field we send
        self.max_snd_wnd = max_snd_wnd       # RFC 5961 5.2's lower bound for an acceptable ACK
        self.ts_recent = ts_recent
        self.ts_offset = ts_offset           # None: timestamps off (RFC 7323)
        self.deadline = deadline
        self.sk_reuse = bool(getattr(conn, "sk_reuse", False))  # SO_REUSEADDR, for bind()'s rules (tw_reuse)
        self._conn = weakref.ref(conn) if conn is not None else None
        self._scheduled: float | None = None  # the layer's timer-heap bookkeeping

    @classmethod
    def from_connection(cls, conn, key: tuple) -> TimeWaitRecord:
        """What ``conn`` (in TIME-WAIT, its last ACK sent) still needs."""
        return cls(key, conn.snd_nxt, conn.rcv_nxt, conn.rcv_wnd, min(conn.rcv_wnd >> conn.rcv_wscale, 0xFFFF),
                   conn.max_snd_wnd, conn.ts_recent, conn.ts_offset if conn.ts_enabled else None,
                   conn.timers.time_wait, conn)

    # ------------------------------------------------------------ what observers read
    @property
    def local(self) -> tuple[bytes, int]:
        return self.key[0], self.key[1]

    @property
    def remote(self) -> tuple[bytes, int]:
        return self.key[2], self.key[3]

    @property
    def snd_max(self) -> int:
        return self.snd_nxt  # everything we sent, our FIN included, is acknowledged

    @property
    def name(self) -> str:
        la, lp, ra, rp = self.key
        return f"{_socket.inet_ntoa(la)}:{lp}-{_socket.inet_ntoa(ra)}:{rp}"

    @property
    def connection(self):
        """The Connection this record replaced, while something else still holds it (else None)."""
        return self._conn() if self._conn is not None else None

    def next_deadline(self) -> float:
        return self.deadline

    def info(self) -> dict:
        local, remote = self.name.split("-")
        return {"state": "TIME_WAIT", "local": local, "remote": remote, "snd_una": self.snd_nxt,
                "snd_nxt": self.snd_nxt, "snd_wnd": 0, "rcv_nxt": self.rcv_nxt, "rcv_wnd": self.rcv_wnd,
                "mss": 0, "srtt": None, "rttvar": None, "rto": 0.0, "cc": "-", "cwnd": 0, "ssthresh": None,
                "unacked": 0, "sndbuf": 0, "rcvbuf": 0, "wscale": (0, 0), "ts": self.ts_offset is not None,
                "sack": False, "retrans": 0, "segs_out": 0, "segs_in": 0, "timer": self.deadline}

    # ------------------------------------------------------------ segment arrival
    def ack(self, now: float) -> TcpSegment:
        """<SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>, with our timestamp and the last TSval seen (RFC 7323)."""
        seg = TcpSegment(self.key[1], self.key[3], self.snd_nxt, self.rcv_nxt, ACK, self.window)
        if self.ts_offset is not None:
            seg.tsval, seg.tsecr = (round(now * 1000) + self.ts_offset) & MASK, self.ts_recent
        return seg

    def segment_arrives(self, seg: TcpSegment, now: float, challenge_ok, msl2: float) -> tuple:
        """RFC 9293 3.10.7.4 in TIME-WAIT: (the reply or None, True when TIME-WAIT ends here, the reason
        when the segment is dropped unanswered and uncounted elsewhere, else None).

        ``challenge_ok(now)`` is the stack's RFC 5961 7 rate limit; ``msl2`` the 2 MSL timeout.
        (A new SYN that may reopen the connection is the layer's: RFC 6191 needs the listener.)"""
        flags = seg.flags
        ts = self.ts_offset is not None
        # RFC 7323 5.3 PAWS: an older timestamp marks an old duplicate: ACK it, drop it
        if ts and seg.tsval is not None and not flags & RST and seq_lt(seg.tsval, self.ts_recent):
            return self.ack(now), False, None
        # first check: is the segment acceptable?
        seq, seg_len, wnd, nxt = seg.seq, seg.seg_len, self.rcv_wnd, self.rcv_nxt
        if seg_len == 0:
            ok = seq == nxt if wnd == 0 else seq_in(seq, nxt, seq_add(nxt, wnd))
        elif wnd == 0:
            ok = False
        else:
            right = seq_add(nxt, wnd)
            ok = seq_in(seq, nxt, right) or seq_in(seq_add(seq, seg_len - 1), nxt, right)
        owe_ack = False
        if not ok:
            if wnd == 0 and seq == nxt and flags & (ACK | RST) and not flags & SYN:
                if seg.payload or flags & FIN:  # zero window: only its ACK and RST count (RFC 9293 3.10.7.4)
                    flags &= ~FIN
                    owe_ack = True
            else:
                if flags & FIN:
                    self.deadline = now + msl2  # RFC 9293 3.10.7.4: restart the 2 MSL timeout
                if flags & RST:
                    return None, False, "rst_unacceptable"  # RFC 9293 3.10.7.4: an unacceptable RST is dropped
                return self.ack(now), False, None  # unacceptable -> <ACK>, drop
        elif seq_diff(nxt, seq) > 0 and flags & SYN:
            flags &= ~SYN  # the SYN lies before RCV.NXT: trimmed off with the old octets
        if ok and ts and seg.tsval is not None and seq_le(seq, nxt):
            self.ts_recent = seg.tsval  # RFC 7323 4.3 (2): Last.ACK.sent is RCV.NXT here
        # second check: RST (RFC 5961 3.2: only an exact one resets; in-window -> challenge ACK)
        if flags & RST:
            if seq != nxt:
                return (self.ack(now) if challenge_ok(now) else None), False, None
            return None, True, None  # TIME-WAIT: "enter the CLOSED state, delete the TCB, and return"
        # fourth check: SYN -> challenge ACK (RFC 5961 4.2)
        if flags & SYN:
            return (self.ack(now) if challenge_ok(now) else None), False, None
        if not flags & ACK:
            return None, False, "no_ack"  # fifth check: ACK bit off -> drop
        ack = seg.ack
        if seq_gt(ack, self.snd_nxt):
            return self.ack(now), False, None  # it acknowledges something not yet sent -> ACK, drop
        if seq_lt(ack, seq_add(self.snd_nxt, -max(self.max_snd_wnd, 1))):
            return (self.ack(now) if challenge_ok(now) else None), False, None  # RFC 5961 5.2: too old
        if flags & FIN:  # "the only thing that can arrive in this state is a retransmission of the remote FIN"
            self.deadline = now + msl2  # acknowledge it, and restart the 2 MSL timeout
            return self.ack(now), False, None
        if owe_ack:
            return self.ack(now), False, None
        # seventh check: "ignore the segment text" (a FIN was received); a pure ACK is simply taken
        return None, False, ("data_ignored" if seg.payload else None)

    def closed(self, now: float, why: str, tracer) -> None:
        """TIME-WAIT ended: the connection this stands for (if still held) goes CLOSED; traced either way."""
        conn = self.connection
        if conn is not None and conn.state is State.TIME_WAIT:
            conn._delete_tcb(now, why)
        elif tracer.enabled:
            tracer.emit("state", now, conn=self.name, old=State.TIME_WAIT.name, new=State.CLOSED.name, why=why)
