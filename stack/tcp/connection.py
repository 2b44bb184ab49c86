"""One TCP connection: the RFC 9293 state machine, sans-I/O.

Inputs: ``segment_arrives(seg, now)``, the user calls (``send``, ``recv``,
``close``, ``shutdown``, ``abort``) and ``on_timer(now)``. Outputs: segments
appended to ``self.outq`` (the layer drains it), ``next_deadline()``, and
``notify(what)`` callbacks that the runtime turns into wake-ups.

Sequence variables carry their RFC 9293 3.3.1 names and live modulo 2**32.
Loss recovery (which bytes to resend) lives in ``recovery.py``; how much may be
in flight lives in ``congestion/``; RTT and RTO in ``rtt.py``.
"""
from __future__ import annotations

import errno
from typing import Callable

from ..trace import NULL_TRACER, Tracer
from ..wire.tcp import ACK, FIN, PSH, RST, SYN, URG, TcpSegment
from . import congestion
from .config import TcpConfig
from .reassembly import Reassembler
from .recovery import LossRecovery, SendView
from .rtt import RttEstimator, RttSampler
from .seq import MASK, seq_add, seq_diff, seq_ge, seq_gt, seq_in, seq_le, seq_lt
from .states import Closing, State
from .timers import Timer, Timers

DEFAULT_MSS = 536  # RFC 9293 3.7.1: assume 536 when the peer sends no MSS option
TSO_MAX = 65535 - 20 - 60  # a TSO super-segment must fit one IPv4 datagram


class Connection:
    """A TCP connection between ``local`` and ``remote`` (each ``(addr_bytes, port)``)."""

    def __init__(self, local: tuple[bytes, int], remote: tuple[bytes, int], iss: int, now: float,
                 config: TcpConfig, mss_limit: int, tracer: Tracer = NULL_TRACER,
                 ts_offset: int = 0, challenge_ack: Callable[[float], bool] | None = None):
        self.local, self.remote, self.config, self.tracer = local, remote, config, tracer
        self.state = State.CLOSED
        self.outq: list[TcpSegment] = []
        self.notify: Callable[[str], None] = _ignore
        self.error: int = 0                       # errno the socket reports (ECONNRESET, ...)
        self._challenge_ack_allowed = challenge_ack or (lambda now: True)
        # RFC 9293 3.3.1 send sequence variables
        self.iss = iss
        self.snd_una = self.snd_nxt = iss
        self.snd_max = iss                        # highest sequence sent so far (snd_nxt rewinds on RTO)
        self.snd_wnd = 0
        self.snd_wl1 = self.snd_wl2 = 0
        self.max_snd_wnd = 0
        self.snd_wscale = 0                       # shift the peer applies to its window field
        # receive sequence variables
        self.irs = 0
        self.rcv_nxt = 0
        self.rcv_adv = 0                          # right edge we advertised: RCV.NXT + RCV.WND
        self.rcv_wscale = 0                       # shift we apply to our window field
        self.rcv_up = 0
        # options
        self.mss_limit = mss_limit                # our MSS (from the MTU or the config)
        self.snd_mss = DEFAULT_MSS                # peer's MSS, RFC 9293 3.7.1 default 536
        self.ts_enabled = self.sack_enabled = False
        self.eff_mss = min(DEFAULT_MSS, mss_limit)
        self.ts_recent = 0
        self.ts_offset = ts_offset
        self.last_ack_sent = 0
        # buffers: sndbuf[0] is the octet at snd_una (after the SYN)
        self.sndbuf = bytearray()
        self.rcvbuf = bytearray()
        self.reasm = Reassembler(config.ofo_max_segments)  # out-of-order data beyond rcv_nxt, SACK blocks
        self.closing = Closing.NONE               # FIN queued / sent / received, orphaned (states.Closing)
        self.fin_seq = 0
        self.nodelay = config.nodelay
        self.rcvbuf_cap, self.sndbuf_cap = config.rcvbuf, config.sndbuf
        # ACK generation
        self.ack_now = False
        self.unacked_segs = 0
        self.timers = Timers()                    # every deadline (absolute virtual times), one clear-all
        self.persist_backoff = 0
        self.tlp_high: int | None = None          # SND.MAX when the probe went out (one probe per episode)
        self.keepalive_enabled = False
        self.keepalive_idle = config.keepalive_idle
        self.keepalive_interval = config.keepalive_interval
        self.keepalive_count = config.keepalive_count
        self.keepalive_probes = 0
        self.retries = 0                          # consecutive RTO expirations
        self.last_recv_time = now
        self.last_send_time = now
        # RTT, congestion control, loss recovery
        self.rtt = RttEstimator(config.initial_rto, config.min_rto, config.max_rto)
        self.rtt_sampler = RttSampler(self.rtt)   # send times, Karn's rule, timestamp fallback
        self.rtt_sampler.on_syn_sent(now, True)
        self.stats = {"segs_out": 0, "segs_in": 0, "bytes_out": 0, "bytes_in": 0, "retrans": 0,
                      "retrans_bytes": 0, "dupacks_in": 0, "challenge_acks": 0, "drops": 0,
                      "zero_window_probes": 0}
        cc = congestion.create(config.congestion, DEFAULT_MSS, now, config.initial_window)
        self.recovery = LossRecovery(iss, cc, self.stats)  # owns cc; never sees the connection
        self.recovery.trace, self.recovery.trace_cc = self._trace, self._trace_cc
        self.listener = None                      # set for passive opens until accepted
        self.tso = False                          # may emit super-segments the link splits (TSO)
        self._pending_cc: str | None = None       # TCP_CONGESTION set during fast recovery
        self.resend_why = "rto"                   # why SND.NXT was last rewound: "rto" or "persist"
        self._scheduled: float | None = None      # the layer's timer-heap bookkeeping

    # ------------------------------------------------------------------ basics
    def _update_eff_mss(self) -> None:
        """RFC 9293 3.7.1 effective send MSS: peer MSS less the TCP options we put in every segment.
        Kept as a plain attribute (read several times per segment); call after options change."""
        self.eff_mss = min(self.snd_mss, self.mss_limit) - (12 if self.ts_enabled else 0)

    @property
    def cc(self) -> congestion.CongestionControl:
        """The congestion controller (loss recovery owns and drives it)."""
        return self.recovery.cc

    @cc.setter
    def cc(self, new: congestion.CongestionControl) -> None:
        self.recovery.cc = new

    def _send_view(self) -> SendView:
        """The numbers loss recovery works from, as they are now."""
        return SendView(self.snd_una, self.snd_nxt, self.snd_max, self.eff_mss, self.sack_enabled,
                        self.snd_wnd, self.snd_wscale, self.timers.persist is not None, self.tlp_high,
                        self.rtt.srtt)

    def _retransmit_for_recovery(self, now: float):
        return lambda seq, why, limit: self.retransmit_range(seq, now, why, limit=limit)

    @property
    def fin_queued(self) -> bool:
        """The user closed or shut down writing: a FIN follows the data."""
        return Closing.FIN_QUEUED in self.closing

    @property
    def fin_sent(self) -> bool:
        return Closing.FIN_SENT in self.closing

    @property
    def rcv_closed(self) -> bool:
        """The peer's FIN arrived: EOF after the receive buffer drains."""
        return Closing.FIN_RECEIVED in self.closing

    @property
    def user_closed(self) -> bool:
        """close() was called: the connection is orphaned."""
        return Closing.ORPHANED in self.closing

    @property
    def flight_size(self) -> int:
        return seq_diff(self.snd_max, self.snd_una)

    @property
    def rcv_wnd(self) -> int:
        return max(0, seq_diff(self.rcv_adv, self.rcv_nxt))

    def _set_state(self, new: State, now: float, why: str = "") -> None:
        """The one place a state changes (traced, like smoltcp's set_state)."""
        old, self.state = self.state, new
        if self.tracer.enabled:
            self.tracer.emit("state", now, conn=self.name, old=old.name, new=new.name, why=why)
        self.notify("state")

    @property
    def name(self) -> str:
        import socket as _s
        return (f"{_s.inet_ntoa(self.local[0])}:{self.local[1]}-"
                f"{_s.inet_ntoa(self.remote[0])}:{self.remote[1]}")

    def _trace(self, ev: str, now: float, **fields) -> None:
        if self.tracer.enabled:
            self.tracer.emit(ev, now, conn=self.name, **fields)

    def _trace_cc(self, now: float, why: str) -> None:
        if self.tracer.enabled:
            self.tracer.emit("cc", now, conn=self.name, why=why, **self.cc.state_dict(),
                             srtt=self.rtt.srtt, rto=self.rtt.current_rto(), flight=self.flight_size)

    # ------------------------------------------------------------------ opens
    def open_active(self, now: float) -> None:
        """RFC 9293 3.10.1 OPEN call, active: send SYN, enter SYN-SENT."""
        self._set_state(State.SYN_SENT, now, "connect")
        self._send_syn(now)

    def open_passive(self, syn: TcpSegment, now: float) -> None:
        """RFC 9293 3.10.7.2 LISTEN, third check: SYN -> SYN-RECEIVED, send SYN,ACK."""
        self.irs = syn.seq
        self.rcv_nxt = seq_add(syn.seq, 1)
        self._learn_syn_options(syn)
        self.snd_wnd = syn.window  # RFC 7323 2.2: the window in a SYN is never scaled
        self.max_snd_wnd = self.snd_wnd
        self.snd_wl1, self.snd_wl2 = syn.seq, self.iss
        self.rcv_adv = seq_add(self.rcv_nxt, min(self._free_space(), 0xFFFF))  # the SYN,ACK's window
        self._set_state(State.SYN_RECEIVED, now, "passive open")
        self._send_syn(now)

    def _learn_syn_options(self, syn: TcpSegment) -> None:
        """RFC 9293 3.7.1 MSS; RFC 7323 1.3: wscale and timestamps only when both sides offer."""
        if syn.mss is not None:
            self.snd_mss = max(syn.mss, 64)
        if self.config.window_scaling and syn.wscale is not None:
            self.snd_wscale = min(syn.wscale, 14)  # RFC 7323 2.3: values above 14 are taken as 14
            self.rcv_wscale = _wscale_for(self.rcvbuf_cap)
        else:
            self.snd_wscale = self.rcv_wscale = 0
        if self.config.timestamps and syn.tsval is not None:
            self.ts_enabled = True
            self.ts_recent = syn.tsval
        self.sack_enabled = self.config.sack and syn.sack_perm
        self._update_eff_mss()
        self.cc.set_mss(self.eff_mss)

    def _send_syn(self, now: float) -> None:
        """SYN or SYN,ACK with our options (RFC 9293 3.7.1, RFC 7323, RFC 2018)."""
        passive = self.state is State.SYN_RECEIVED
        seg = TcpSegment(self.local[1], self.remote[1], self.iss, self.rcv_nxt if passive else 0,
                         SYN | ACK if passive else SYN, min(self._free_space(), 0xFFFF))
        seg.mss = self.mss_limit
        if self.config.window_scaling and (not passive or self.rcv_wscale or self.snd_wscale):
            seg.wscale = self.rcv_wscale if passive else _wscale_for(self.rcvbuf_cap)
        if self.config.sack and (not passive or self.sack_enabled):
            seg.sack_perm = True
        if self.config.timestamps and (not passive or self.ts_enabled):
            seg.tsval, seg.tsecr = self._ts_val(now), (self.ts_recent if passive else 0)
        self.snd_nxt = self.snd_max = seq_add(self.iss, 1)
        self.rtt_sampler.on_syn_sent(now, self.retries == 0)
        if self.timers.rto is None:
            self.timers.rto = now + self.rtt.current_rto()
        self._emit(seg, now)

    # ------------------------------------------------------------------ user calls
    def send(self, data, now: float) -> int:
        """RFC 9293 3.10.2 SEND: queue as much as the send buffer takes; return the count."""
        if self.state in (State.SYN_SENT, State.SYN_RECEIVED, State.ESTABLISHED, State.CLOSE_WAIT):
            if self.fin_queued:
                return -errno.EPIPE
            room = self.sndbuf_cap - len(self.sndbuf)
            n = min(room, len(data))
            if n > 0:
                self.sndbuf += data[:n] if n < len(data) else data
                self._output(now)
            return n
        return -(self.error or errno.EPIPE)

    def send_space(self) -> int:
        return self.sndbuf_cap - len(self.sndbuf)

    def recv(self, n: int, now: float) -> bytes:
        """RFC 9293 3.10.3 RECEIVE: take up to n in-order octets; open the window if it grew enough."""
        with memoryview(self.rcvbuf) as view:
            data = bytes(view[:n])  # one copy (a bytearray slice and bytes() would be two)
        del self.rcvbuf[:n]
        if data:
            self._maybe_window_update(now)
        return data

    def recv_into(self, buffer: memoryview, now: float) -> int:
        """RECEIVE straight into the caller's buffer (socket.recv_into): one copy."""
        k = min(len(buffer), len(self.rcvbuf))
        if k:
            with memoryview(self.rcvbuf) as view:
                buffer[:k] = view[:k]
            del self.rcvbuf[:k]
            self._maybe_window_update(now)
        return k

    def readable_bytes(self) -> int:
        return len(self.rcvbuf)

    @property
    def at_eof(self) -> bool:
        return self.rcv_closed and not self.rcvbuf

    def shutdown_write(self, now: float) -> None:
        """shutdown(SHUT_WR): queue a FIN after the data (RFC 9293 3.10.4 CLOSE, half-close)."""
        if self.state in (State.ESTABLISHED, State.SYN_RECEIVED):
            self.closing |= Closing.FIN_QUEUED
            if self.state is State.ESTABLISHED:
                self._set_state(State.FIN_WAIT_1, now, "shutdown")
            self._output(now)
        elif self.state is State.CLOSE_WAIT:
            self.closing |= Closing.FIN_QUEUED
            self._set_state(State.LAST_ACK, now, "shutdown")
            self._output(now)
        elif self.state is State.SYN_SENT:
            self._drop(now, "close in SYN-SENT")

    def close(self, now: float) -> None:
        """RFC 9293 3.10.4 CLOSE. Unread data -> RST (RFC 9293 3.6, RFC 2525 2.17); else FIN."""
        self.closing |= Closing.ORPHANED
        if self.state in (State.CLOSED, State.LISTEN):
            return
        if self.rcvbuf or (self.state is State.CLOSE_WAIT and self.reasm):
            self.abort(now, "close with unread data")
            return
        self.shutdown_write(now)
        if self.state is State.FIN_WAIT_2:
            self.timers.fin_wait_2 = now + self.config.fin_timeout

    def abort(self, now: float, why: str = "abort") -> None:
        """RFC 9293 3.10.5 ABORT: send RST in synchronized states, then CLOSED."""
        if self.state in (State.SYN_RECEIVED, State.ESTABLISHED, State.FIN_WAIT_1, State.FIN_WAIT_2,
                          State.CLOSE_WAIT):
            self._emit(TcpSegment(self.local[1], self.remote[1], self.snd_nxt, 0, RST, 0), now)
        self._drop(now, why)

    def _drop(self, now: float, why: str, err: int = 0) -> None:
        """Enter CLOSED and forget everything (RFC 9293 'delete the TCB')."""
        if err:
            self.error = err
        self.timers.clear_all()
        self.ack_now = False
        if self.state is not State.CLOSED:
            self._set_state(State.CLOSED, now, why)

    # ------------------------------------------------------------------ segment arrival
    def segment_arrives(self, seg: TcpSegment, now: float) -> None:
        """RFC 9293 3.10.7: dispatch on state."""
        self.stats["segs_in"] += 1
        self.last_recv_time = now
        if self.state is State.ESTABLISHED and self._header_prediction(seg, now):
            pass
        elif self.state is State.SYN_SENT:
            self._arrive_syn_sent(seg, now)
        elif self.state is State.CLOSED:
            return
        else:
            self._arrive_synchronized(seg, now)
        if self.keepalive_enabled and self.state is State.ESTABLISHED:
            self.keepalive_probes = 0
            self.timers.keepalive = now + self.keepalive_idle

    def _header_prediction(self, seg: TcpSegment, now: float) -> bool:
        """Van Jacobson's header prediction (as in RFC 1323 and Linux's fast path): the next in-order
        segment of a bulk transfer, in ESTABLISHED, with nothing unusual, skips the general checks.

        Either pure in-order data that acknowledges nothing new, or a pure ACK of new data. It does
        exactly what the RFC 9293 3.10.7.4 steps would do for such a segment; anything else
        (options to look at, out-of-order data, recovery, window changes) takes the general path.
        """
        if (seg.flags & ~PSH) != ACK or seg.seq != self.rcv_nxt or seg.sack or self.recovery.in_recovery:
            return False
        if (seg.window << self.snd_wscale) != self.snd_wnd or self.reasm:
            return False
        ts = self.ts_enabled
        if ts and (seg.tsval is None or (seg.tsval - self.ts_recent) & MASK >= 0x80000000):
            return False  # no timestamp or PAWS would look at it
        payload = seg.payload
        if payload:
            if seg.ack != self.snd_una or len(payload) > self.rcv_wnd or self.user_closed:
                return False
            if ts and seg.seq == self.last_ack_sent:
                self.ts_recent = seg.tsval  # RFC 7323 4.3
            self._deliver(payload, False, now)
            self._schedule_ack(len(payload), now)
            return True
        ack = seg.ack
        if ack == self.snd_una or (ack - self.snd_una) & MASK > (self.snd_max - self.snd_una) & MASK:
            return False
        if ts and seg.seq == self.last_ack_sent:
            self.ts_recent = seg.tsval
        self._new_ack(seg, now)
        self.snd_wl1, self.snd_wl2 = seg.seq, ack  # RFC 9293 3.10.7.4: the window update bookkeeping
        self._output(now)
        return True

    def _arrive_syn_sent(self, seg: TcpSegment, now: float) -> None:
        """RFC 9293 3.10.7.3 SYN-SENT."""
        flags = seg.flags
        if flags & ACK:
            # first check: unacceptable ACK -> RST (unless RST), drop
            if seq_le(seg.ack, self.iss) or seq_gt(seg.ack, self.snd_max):
                if not flags & RST:
                    self._emit(TcpSegment(self.local[1], self.remote[1], seg.ack, 0, RST, 0), now)
                return
        if flags & RST:
            # second check: RST with acceptable ACK -> connection refused; without ACK -> drop
            if flags & ACK:
                self._drop(now, "RST in SYN-SENT", errno.ECONNREFUSED)
            return
        if not flags & SYN:
            return  # fifth check: neither SYN nor RST -> drop
        # fourth check: SYN
        self.irs = seg.seq
        self.rcv_nxt = seq_add(seg.seq, 1)
        self._learn_syn_options(seg)
        if self.ts_enabled and seg.tsval is None:
            self.ts_enabled = False
            self._update_eff_mss()
        if flags & ACK:
            self._ack_syn(seg, now)
            self.snd_wnd = seg.window  # RFC 7323 2.2: the window of a <SYN,ACK> is never scaled
            self.max_snd_wnd = self.snd_wnd
            self.snd_wl1, self.snd_wl2 = seg.seq, seg.ack
            self._set_rcv_adv_initial()
            self._set_state(State.ESTABLISHED, now, "SYN,ACK received")
            self.ack_now = True
            self._process_text(seg, now, skip_syn=True)
            self._output(now)
            self.notify("writable")
        else:
            # simultaneous open: SYN-RECEIVED, send SYN,ACK with the same ISS
            self.snd_wnd = seg.window
            self.snd_wl1 = seg.seq
            self.rcv_adv = seq_add(self.rcv_nxt, min(self._free_space(), 0xFFFF))
            self._set_state(State.SYN_RECEIVED, now, "simultaneous open")
            self._send_syn(now)

    def _ack_syn(self, seg: TcpSegment, now: float) -> None:
        """Our SYN is acknowledged: take the RTT sample (Karn: only if not retransmitted)."""
        self.snd_una = seg.ack
        # Karn: only an unretransmitted SYN is timed; else RFC 7323: the echo names the copy
        sample = self.rtt_sampler.on_syn_acked(self.retries > 0, seg.tsecr if self.ts_enabled else None,
                                               self._ts_val(now), now)
        if sample is not None:
            self._rtt_sample(now, sample)
        if self.retries:
            self.rtt.reset_for_data_after_syn_timeout()  # RFC 6298 5.7
        self.retries = 0
        self.timers.rto = None
        self.cc.set_mss(self.eff_mss)

    def _arrive_synchronized(self, seg: TcpSegment, now: float) -> None:
        """RFC 9293 3.10.7.4: the checks in order, each its own step."""
        if not self._check_paws(seg, now):
            return
        if not self._check_sequence(seg, now):
            return
        if seg.flags & RST:
            self._check_rst(seg, now)
            return
        if seg.flags & SYN:
            self._check_syn(seg, now)
            return
        if not seg.flags & ACK:
            return  # fifth check: ACK bit off -> drop
        if not self._check_ack(seg, now):
            return
        if self.state is State.CLOSED:
            return
        self._process_text(seg, now)
        self._check_fin_timers(now)
        self._output(now)

    def _check_paws(self, seg: TcpSegment, now: float) -> bool:
        """RFC 7323 5.3 PAWS: a segment with an older timestamp is a duplicate: ACK it, drop it."""
        if not self.ts_enabled or seg.tsval is None or seg.flags & RST:
            return True
        if seq_lt(seg.tsval, self.ts_recent) and self.state is not State.SYN_RECEIVED:
            self.stats["drops"] += 1
            self._trace("drop", now, reason="paws", seq=seg.seq)
            self.ack_now = True
            self._send_ack(now)
            return False
        return True

    def _check_sequence(self, seg: TcpSegment, now: float) -> bool:
        """RFC 9293 3.10.7.4 first check: the four acceptability cases; trim to the window."""
        if self.state is State.SYN_RECEIVED and seg.flags & SYN and seg.seq == self.irs and seg.flags & ACK:
            # RFC 9293 figure 7 line 6: in a simultaneous open the peer's SYN,ACK repeats its SYN
            # (SEG.SEQ = IRS); its SYN is old news, its ACK completes our handshake
            seg.flags &= ~SYN
            seg.seq = self.rcv_nxt
            self.ack_now = True  # and confirm it, in case our SYN,ACK was lost
        seg_len = seg.seg_len
        rcv_wnd = self.rcv_wnd
        seq = seg.seq
        if seg_len == 0:
            ok = seq == self.rcv_nxt if rcv_wnd == 0 else seq_in(seq, self.rcv_nxt, seq_add(self.rcv_nxt, rcv_wnd))
        elif rcv_wnd == 0:
            ok = False
        else:
            end = seq_add(seq, seg_len - 1)
            right = seq_add(self.rcv_nxt, rcv_wnd)
            ok = seq_in(seq, self.rcv_nxt, right) or seq_in(end, self.rcv_nxt, right)
        if not ok:
            if rcv_wnd == 0:
                self._trace("window_probe_in", now, seq=seq, len=seg_len)
            # zero window: still process ACK and RST of a segment at RCV.NXT (RFC 9293 3.10.7.4 note)
            if rcv_wnd == 0 and seq == self.rcv_nxt and seg.flags & (ACK | RST) and not seg.flags & SYN:
                if seg.payload or seg.flags & FIN:  # only the ACK (and RST) of it get through
                    seg.payload = b""
                    seg.flags &= ~(FIN | PSH)
                    self.ack_now = True
                return True
            if self.state is State.TIME_WAIT and seg.flags & FIN:
                self.timers.time_wait = now + 2 * self.config.msl  # RFC 9293 3.10.7.4: restart the 2 MSL timeout
            if not seg.flags & RST:
                self.stats["drops"] += 1
                self._trace("drop", now, reason="out_of_window", seq=seq, len=seg_len)
                self.ack_now = True  # an unacceptable segment is answered with an ACK
                self._send_ack(now)
            return False
        self._trim_to_window(seg)
        if self.ts_enabled and seg.tsval is not None and seq_le(seq, self.last_ack_sent):
            self.ts_recent = seg.tsval  # RFC 7323 4.3 (2)
        return True

    def _trim_to_window(self, seg: TcpSegment) -> None:
        """Keep only the part of the segment inside RCV.WND (RFC 9293 3.10.7.4)."""
        head = seq_diff(self.rcv_nxt, seg.seq)
        if head > 0:
            if seg.flags & SYN:
                seg.flags &= ~SYN
                head -= 1
                seg.seq = seq_add(seg.seq, 1)
            seg.payload = seg.payload[head:]
            seg.seq = seq_add(seg.seq, head)
        excess = len(seg.payload) - self.rcv_wnd
        if excess > 0:
            seg.payload = seg.payload[:self.rcv_wnd]
            seg.flags &= ~FIN

    def _check_rst(self, seg: TcpSegment, now: float) -> None:
        """RFC 9293 3.10.7.4 second check with RFC 5961 3.2: exact RST resets, in-window RST -> challenge ACK."""
        if seg.seq != self.rcv_nxt:
            self._challenge_ack(now, "rst_not_exact")
            return
        if self.state is State.SYN_RECEIVED and self.listener is not None:
            self._drop(now, "RST in SYN-RECEIVED (passive): back to LISTEN")
            return
        if self.state is State.SYN_RECEIVED:
            self._drop(now, "RST in SYN-RECEIVED", errno.ECONNREFUSED)
        elif self.state in (State.CLOSING, State.LAST_ACK, State.TIME_WAIT):
            self._drop(now, "RST")
        else:
            self.sndbuf.clear()
            self._drop(now, "RST received", errno.ECONNRESET)
        self.notify("error")

    def _check_syn(self, seg: TcpSegment, now: float) -> None:
        """RFC 9293 3.10.7.4 fourth check with RFC 5961 4.2: SYN in a synchronized state -> challenge ACK."""
        if self.state is State.SYN_RECEIVED and self.listener is not None:
            self._drop(now, "SYN in SYN-RECEIVED (passive): back to LISTEN")
            return
        self._challenge_ack(now, "syn_in_window")

    def _challenge_ack(self, now: float, why: str) -> None:
        """RFC 5961 3.2/4.2/5.2: an ACK for RCV.NXT, rate-limited (RFC 5961 7)."""
        if self._challenge_ack_allowed(now):
            self.stats["challenge_acks"] += 1
            self._trace("challenge_ack", now, why=why)
            self.ack_now = True
            self._send_ack(now)

    def _check_ack(self, seg: TcpSegment, now: float) -> bool:
        """RFC 9293 3.10.7.4 fifth check, per state, with RFC 5961 5.2's acceptable range."""
        ack = seg.ack
        if self.state is State.SYN_RECEIVED:
            if seq_lt(self.snd_una, ack) and seq_le(ack, self.snd_max):
                self._ack_syn(seg, now)
                self.snd_wnd = seg.window << self.snd_wscale
                self.max_snd_wnd = max(self.max_snd_wnd, self.snd_wnd)
                self.snd_wl1, self.snd_wl2 = seg.seq, ack
                self._set_rcv_adv_initial()
                if self.fin_queued:  # RFC 9293 3.10.4: a CLOSE in SYN-RECEIVED was queued until now
                    self._set_state(State.FIN_WAIT_1, now, "ACK of SYN,ACK; close pending")
                else:
                    self._set_state(State.ESTABLISHED, now, "ACK of SYN,ACK")
                if self.listener is not None:
                    self.listener.connection_established(self, now)
                self.notify("writable")
            else:
                self._emit(TcpSegment(self.local[1], self.remote[1], ack, 0, RST, 0), now)
                return False
        # RFC 5961 5.2: acceptable iff SND.UNA - MAX.SND.WND <= SEG.ACK <= SND.NXT
        if seq_gt(ack, self.snd_max):
            self._trace("drop", now, reason="ack_unsent", ack=ack)
            self.stats["drops"] += 1
            self.ack_now = True
            self._send_ack(now)  # RFC 9293: ACK of something not yet sent -> send ACK, drop
            return False
        if seq_lt(ack, seq_add(self.snd_una, -max(self.max_snd_wnd, 1))):
            self._challenge_ack(now, "ack_too_old")
            return False
        if seq_lt(self.snd_una, ack):
            self._new_ack(seg, now)
        else:
            self.recovery.on_old_ack(seg, self._send_view(), now)
        self._update_window(seg, now)
        return self._ack_state_transitions(seg, now)

    def _update_window(self, seg: TcpSegment, now: float) -> None:
        """RFC 9293 3.10.7.4 SND.WND update when the segment is newer (SND.WL1/SND.WL2)."""
        if seq_lt(self.snd_wl1, seg.seq) or (self.snd_wl1 == seg.seq and seq_le(self.snd_wl2, seg.ack)):
            wnd = seg.window << self.snd_wscale
            if wnd != self.snd_wnd:
                self._trace("snd_wnd", now, wnd=wnd)
            opened = wnd > self.snd_wnd
            self.snd_wnd = wnd
            self.max_snd_wnd = max(self.max_snd_wnd, wnd)
            self.snd_wl1, self.snd_wl2 = seg.seq, seg.ack
            if wnd and opened:
                if self.timers.persist is not None and seq_lt(self.snd_una, self.snd_nxt):
                    self.snd_nxt = self.snd_una  # an unanswered probe octet goes again with the data
                    self.resend_why = "persist"
                self.timers.persist = None
                self.persist_backoff = 0

    def _new_ack(self, seg: TcpSegment, now: float) -> None:
        """SND.UNA < SEG.ACK <= SND.NXT: drop acknowledged octets, sample RTT, grow cwnd, restart RTO."""
        ack = seg.ack
        acked = seq_diff(ack, self.snd_una)
        fin_acked = self.fin_sent and ack == seq_add(self.fin_seq, 1)
        data_acked = acked - (1 if fin_acked else 0)
        del self.sndbuf[:data_acked]
        self.snd_una = ack
        if seq_lt(self.snd_nxt, ack):
            self.snd_nxt = ack
        self.retries = 0
        # Karn (RFC 6298 5 note): the backed-off RTO stays until a valid sample resets it in sample()
        view = self._send_view()
        view.rtt = self._take_rtt_sample(seg, now)
        view.srtt = self.rtt.srtt
        self.recovery.on_new_ack(seg, acked, view, now)
        if self.tlp_high is not None and seq_ge(ack, self.tlp_high):
            self.tlp_high = None  # RFC 8985 7.4: the probe's episode is over
        if self._pending_cc and not self.recovery.in_recovery:
            self.set_congestion(self._pending_cc, now)
        # RFC 6298 5.2 / 5.3: stop the timer when all is acked, else restart it
        self.timers.rto = None if self.snd_una == self.snd_max else now + self.rtt.current_rto()
        if data_acked > 0:
            self.notify("writable")

    def _take_rtt_sample(self, seg: TcpSegment, now: float) -> float | None:
        """An RTT sample from this ACK (rtt.RttSampler: Karn's rule, timestamp fallback)."""
        sample = self.rtt_sampler.on_ack(seg.ack, seg.tsecr if self.ts_enabled else None, self._ts_val(now), now)
        return None if sample is None else self._rtt_sample(now, sample)

    def _rtt_sample(self, now: float, sample: float) -> float | None:
        if sample < 0:
            return None
        self.rtt.sample(sample)
        self._trace("rtt", now, sample=round(sample, 6), srtt=self.rtt.srtt, rttvar=self.rtt.rttvar,
                    rto=self.rtt.current_rto())
        return sample

    def _ack_state_transitions(self, seg: TcpSegment, now: float) -> bool:
        """RFC 9293 3.10.7.4 fifth check, the per-state part after the ACK is processed."""
        fin_acked = self.fin_sent and self.snd_una == seq_add(self.fin_seq, 1)
        st = self.state
        if st is State.FIN_WAIT_1 and fin_acked:
            self._set_state(State.FIN_WAIT_2, now, "FIN acked")
            if self.user_closed:
                self.timers.fin_wait_2 = now + self.config.fin_timeout
        elif st is State.CLOSING and fin_acked:
            self._enter_time_wait(now, "FIN acked in CLOSING")
            return False
        elif st is State.LAST_ACK and fin_acked:
            self._drop(now, "FIN acked in LAST-ACK")
            return False
        elif st is State.TIME_WAIT:
            if seg.flags & FIN:
                self.ack_now = True
                self._send_ack(now)
                self.timers.time_wait = now + 2 * self.config.msl  # restart the 2 MSL timeout
            return False
        return True

    def _enter_time_wait(self, now: float, why: str) -> None:
        self.timers.clear_all()  # the delayed ACK too: the FIN that brought us here was ACKed at once
        self.timers.time_wait = now + 2 * self.config.msl
        self._set_state(State.TIME_WAIT, now, why)

    # ------------------------------------------------------------------ data and FIN
    def _process_text(self, seg: TcpSegment, now: float, skip_syn: bool = False) -> None:
        """RFC 9293 3.10.7.4 sixth (URG), seventh (text) and eighth (FIN) checks."""
        if seg.flags & URG and seq_gt(seq_add(seg.seq, seg.urg), self.rcv_up):
            self.rcv_up = seq_add(seg.seq, seg.urg)  # urgent data is delivered inline (RFC 6093)
        st = self.state
        if st not in (State.ESTABLISHED, State.FIN_WAIT_1, State.FIN_WAIT_2):
            if seg.payload:
                return  # CLOSE-WAIT and later: the peer already sent FIN; ignore text
        payload, fin = seg.payload, bool(seg.flags & FIN)
        if not payload and not fin:
            return
        if payload and self.user_closed and st in (State.FIN_WAIT_1, State.FIN_WAIT_2):
            # nobody will read it: RFC 9293 3.10.4 / RFC 2525 2.17, as Linux does
            self.abort(now, "data after close")
            self.error = errno.ECONNRESET
            return
        seq = seg.seq
        if skip_syn and seg.flags & SYN:
            seq = seq_add(seq, 1)
        if seq == self.rcv_nxt:
            self._deliver(payload, fin, now)
            if self.reasm:
                self._drain_ofo(now)
                self._send_ack(now)  # RFC 5681 4.2: ACK at once when a gap is (partly) filled
                return
        else:
            self._queue_ofo(seq, payload, fin, now)
            self._send_ack(now)  # RFC 5681 4.2: out-of-order -> an immediate duplicate ACK, each one
            return
        self._schedule_ack(len(payload), now)

    def _deliver(self, payload, fin: bool, now: float) -> None:
        if payload:
            self.rcvbuf += payload
            self.rcv_nxt = seq_add(self.rcv_nxt, len(payload))
            self.stats["bytes_in"] += len(payload)
            self.notify("readable")
        if fin:
            self._fin_received(now)

    def _queue_ofo(self, seq: int, payload, fin: bool, now: float) -> None:
        """Keep out-of-order data in the reassembler (bounded in blocks, O(log n) per segment)."""
        pruned = self.reasm.pruned
        if not self.reasm.store(seq, payload, fin, self.rcv_nxt):
            self._trace("drop", now, reason="ofo_full", seq=seq)
            return
        if self.reasm.pruned != pruned:
            self._trace("drop", now, reason="ofo_prune", seq=seq)
        if self.tracer.enabled:
            self._trace("ofo", now, seq=seq, blocks=len(self.reasm))

    def _drain_ofo(self, now: float) -> None:
        """Move blocks that now start at or before RCV.NXT into the receive buffer."""
        while self.state is not State.CLOSED:
            chunk = self.reasm.pop_ready(self.rcv_nxt)
            if chunk is None:
                break
            self._deliver(chunk[0], chunk[1], now)

    def sack_blocks(self) -> list[tuple[int, int]]:
        """RFC 2018 4: most recent first; up to 3 with timestamps (option space), else 4."""
        return self.reasm.sack_blocks(3 if self.ts_enabled else 4)

    def _fin_received(self, now: float) -> None:
        """RFC 9293 3.10.7.4 eighth check: FIN."""
        self.rcv_nxt = seq_add(self.rcv_nxt, 1)
        self.closing |= Closing.FIN_RECEIVED
        self.ack_now = True
        self.reasm.clear()
        st = self.state
        if st in (State.SYN_RECEIVED, State.ESTABLISHED):
            self._set_state(State.CLOSE_WAIT, now, "FIN received")
        elif st is State.FIN_WAIT_1:
            if self.fin_sent and self.snd_una == seq_add(self.fin_seq, 1):
                self._enter_time_wait(now, "FIN received, our FIN acked")
            else:
                self._set_state(State.CLOSING, now, "simultaneous close")
        elif st is State.FIN_WAIT_2:
            self._enter_time_wait(now, "FIN received in FIN-WAIT-2")
        self.notify("readable")

    def _check_fin_timers(self, now: float) -> None:
        if self.state is not State.FIN_WAIT_2:
            self.timers.fin_wait_2 = None

    # ------------------------------------------------------------------ ACK generation
    def _schedule_ack(self, nbytes: int, now: float) -> None:
        """RFC 9293 3.8.6.3 / RFC 5681 4.2 delayed ACK: every second full segment, else within delack."""
        if nbytes:
            self.unacked_segs += nbytes // self.eff_mss if nbytes >= self.eff_mss - 1 else 0  # GRO/LRO: many
            if self.unacked_segs >= 2:
                self.ack_now = True
            elif self.timers.delack is None:
                self.timers.delack = now + self.config.delack
        if self.rcv_closed:
            self.ack_now = True

    def flush(self, now: float) -> None:
        """Send an ACK that is due now (called by the layer after a batch of input)."""
        if self.ack_now and self.state is not State.CLOSED:
            self._send_ack(now)

    def _send_ack(self, now: float) -> None:
        self._emit(TcpSegment(self.local[1], self.remote[1], self.snd_nxt, 0, ACK, 0), now)

    def _free_space(self) -> int:
        return max(0, self.rcvbuf_cap - len(self.rcvbuf))

    def _set_rcv_adv_initial(self) -> None:
        self.rcv_adv = seq_add(self.rcv_nxt, self._window_field_for(self._free_space()) << self.rcv_wscale)

    def _window_field_for(self, wnd: int) -> int:
        return min(wnd >> self.rcv_wscale, 0xFFFF)

    def _advertise(self, now: float) -> int:
        """The window field to send, with receiver SWS avoidance (RFC 9293 3.8.6.2.2); never shrinks."""
        free = self._free_space()
        right = seq_add(self.rcv_nxt, free)
        step = min(self.rcvbuf_cap // 2, self.eff_mss)
        if seq_diff(right, self.rcv_adv) >= step or (seq_gt(right, self.rcv_adv) and free == self.rcvbuf_cap):
            self.rcv_adv = right
        wnd = self.rcv_wnd
        ws = self.rcv_wscale
        field = min((wnd + (1 << ws) - 1) >> ws, 0xFFFF)  # round up: the right edge never moves left
        self.rcv_adv = seq_add(self.rcv_nxt, field << ws)
        if not field and self.tracer.enabled:
            self.tracer.emit("zero_window", now, conn=self.name, rcv_nxt=self.rcv_nxt)
        return field

    def _maybe_window_update(self, now: float) -> None:
        """After the user reads: tell the peer when the window opened by at least the SWS step."""
        if self.state not in (State.ESTABLISHED, State.FIN_WAIT_1, State.FIN_WAIT_2):
            return
        old = self.rcv_wnd
        if old >= self.rcvbuf_cap // 2:
            return
        free = self._free_space()
        if free - old >= min(self.rcvbuf_cap // 2, self.eff_mss) and (old < self.eff_mss or free >= 2 * old):
            self._trace("window_update", now, old=old, new=free)
            self.ack_now = True
            self._send_ack(now)

    # ------------------------------------------------------------------ sending
    def _emit(self, seg: TcpSegment, now: float) -> None:
        """Stamp ACK, window, timestamps and SACK on an outgoing segment and queue it."""
        if seg.flags & ACK:
            seg.ack = self.rcv_nxt
            if not seg.flags & SYN:
                seg.window = self._advertise(now)
            self.last_ack_sent = self.rcv_nxt
            self.ack_now = False
            self.timers.delack = None
            self.unacked_segs = 0
            if self.ts_enabled and not seg.flags & SYN:
                seg.tsval, seg.tsecr = self._ts_val(now), self.ts_recent
            if self.sack_enabled and self.reasm and not seg.flags & SYN:
                seg.sack = self.sack_blocks()
        self.stats["segs_out"] += 1
        self.last_send_time = now
        self.outq.append(seg)

    def _ts_val(self, now: float) -> int:
        return (round(now * 1000) + self.ts_offset) & MASK  # RFC 7323 5.4: a 1 ms clock (rounded)

    def _output(self, now: float) -> None:
        """Send what the windows, Nagle and SWS avoidance allow (RFC 9293 3.8.6.2.1, RFC 896)."""
        if self.state not in _CAN_SEND:
            return
        if self.snd_una == self.snd_max and len(self.sndbuf) > seq_diff(self.snd_nxt, self.snd_una):
            self.cc.on_idle(now, now - self.last_send_time, self.rtt.current_rto())  # RFC 5681 4.1
        self.recovery.retransmit_due(self._send_view, self._retransmit_for_recovery(now), now)
        while self._send_one(now):
            pass
        if self.timers.persist is not None:
            self.timers.rto = None  # RFC 9293 3.8.6.1: against a zero window only the persist timer runs
        elif self.snd_nxt != self.snd_max or seq_lt(self.snd_una, self.snd_max):
            if self.timers.rto is None:
                self.timers.rto = now + self.rtt.current_rto()  # RFC 6298 5.1
        self._arm_pto(now)

    def _send_one(self, now: float) -> bool:
        """Send the next new segment if allowed; True when one was sent."""
        off = seq_diff(self.snd_nxt, self.snd_una)
        avail = len(self.sndbuf) - off
        fin_pending = self.fin_queued and not (self.fin_sent and seq_gt(self.snd_nxt, self.fin_seq))
        if avail <= 0:
            if fin_pending and avail == 0:
                self._send_data(off, 0, now, fin=True)
                return False
            return False
        in_flight = self.recovery.pipe(self._send_view())
        # the peer's window bounds what is outstanding (RFC 9293 3.8.6); cwnd bounds pipe (RFC 6675),
        # which leaves SACKed octets out and so must never stretch the peer's window
        usable = min(self.snd_wnd - off, self.cc.cwnd + self.recovery.extra_cwnd(self.eff_mss) - in_flight)
        mss = self._data_room()
        n = min(avail, max(mss, TSO_MAX // mss * mss) if self.tso else mss, usable)
        if n <= 0:
            self._arm_persist(now, in_flight)
            return False
        if n < mss and not self._may_send_small(n, avail, in_flight):
            self._arm_persist(now, in_flight)
            return False
        self._send_data(off, n, now, fin=fin_pending and n == avail)
        return True

    def _data_room(self) -> int:
        """RFC 9293 3.7.1 (MUST-16): the data a segment may carry after *its* options; SACK blocks
        ride on data segments too while out-of-order data waits, and take room from the data."""
        if self.sack_enabled and self.reasm:
            blocks = min(len(self.reasm), 3 if self.ts_enabled else 4)
            return self.eff_mss - (4 + 8 * blocks)
        return self.eff_mss

    def _may_send_small(self, n: int, avail: int, in_flight: int) -> bool:
        """RFC 9293 3.8.6.2.1 sender SWS avoidance combined with Nagle (RFC 9293 3.7.4)."""
        idle = in_flight == 0 or self.nodelay
        if n == avail and idle:
            return True  # all queued data fits and nothing unacknowledged (or TCP_NODELAY)
        return idle and self.max_snd_wnd > 0 and n >= self.max_snd_wnd // 2

    def _arm_pto(self, now: float) -> None:
        """RFC 8985 7.2: with SACK, outside recovery, data in flight: probe after PTO = 2*SRTT
        (+ a delayed-ACK allowance for a single segment), unless the RTO would come first."""
        self.timers.pto = None
        if (not self.sack_enabled or self.recovery.in_recovery or self.tlp_high is not None
                or self.snd_una == self.snd_max or self.timers.rto is None or self.state not in _CAN_SEND):
            return
        srtt = self.rtt.srtt
        pto = 2 * srtt if srtt is not None else 1.0
        if self.flight_size <= self.eff_mss:
            pto += 0.2  # RFC 8985 7.2: WCDelAckT, the worst-case delayed ACK
        # RFC 8985 7.2 (as Linux): the probe goes out no later than the RTO would; if both are
        # due together the probe runs instead of the timeout (on_timer checks it first)
        self.timers.pto = min(now + max(pto, 0.01), self.timers.rto)

    def _on_pto(self, now: float) -> None:
        """RFC 8985 7.3: send one new segment if the peer's window allows, else resend the last one,
        so that its ACK (with SACK) reveals a lost tail without waiting for the RTO."""
        self.timers.pto = None
        if self.recovery.in_recovery or self.snd_una == self.snd_max or self.state not in _CAN_SEND:
            return
        off = seq_diff(self.snd_nxt, self.snd_una)
        avail = len(self.sndbuf) - off
        if avail > 0 and self.snd_wnd - self.flight_size >= min(avail, self.eff_mss):
            n = min(avail, self.eff_mss)
            self._trace("tlp", now, seq=self.snd_nxt, len=n, kind="new_data")
            self._send_data(off, n, now)
            self.tlp_high = seq_add(self.snd_una, off + n)
        else:
            data_end = self.fin_seq if self.fin_sent else self.snd_max
            last = seq_add(data_end, -min(self.eff_mss, seq_diff(data_end, self.snd_una)))
            self.retransmit_range(last, now, "tlp")
            self.tlp_high = data_end  # the probe's last octet + 1: a SACK reaching it means it arrived
        self.timers.rto = now + self.rtt.current_rto()

    def _arm_persist(self, now: float, in_flight: int) -> None:
        """RFC 9293 3.8.6.1: zero (or SWS-blocked) window with nothing in flight -> persist timer."""
        if in_flight == 0 and self.timers.persist is None and self.timers.rto is None:
            self.timers.persist = now + self._persist_interval()

    def _persist_interval(self) -> float:
        base = max(self.rtt.current_rto(), self.config.min_rto)
        return min(base * (1 << self.persist_backoff), self.config.persist_max)

    def _send_data(self, off: int, n: int, now: float, fin: bool = False, retransmit: bool = False,
                   probe: bool = False) -> None:
        """Emit sndbuf[off:off+n] at SND.UNA+off (and FIN when asked)."""
        seq = seq_add(self.snd_una, off)
        if not retransmit and not probe and n and seq_lt(seq, self.snd_max):
            retransmit = True  # resent in order after SND.NXT was rewound: a retransmission all the same
            self._trace("retransmit", now, seq=seq, len=n, why=self.resend_why)
        flags = ACK
        if n and off + n == len(self.sndbuf):
            flags |= PSH  # the last segment of what the user wrote carries PSH
        if fin:
            flags |= FIN
            self.closing |= Closing.FIN_SENT
            self.fin_seq = seq_add(seq, n)
        payload = self.sndbuf[off:off + n] if n else b""  # a bytearray copy; the buffer moves on
        seg = TcpSegment(self.local[1], self.remote[1], seq, 0, flags, 0, payload)
        room = self._data_room()
        if n > room:
            seg.gso_size = room  # TSO: the kernel cuts it into pieces of this size
        self._emit(seg, now)
        end = seq_add(seq, n + (1 if fin else 0))
        if seq_gt(end, self.snd_nxt):
            self.snd_nxt = end
        if seq_gt(end, self.snd_max):
            if not retransmit and n and seq_ge(seq, self.snd_max):
                self.rtt_sampler.on_send(end, now)  # first transmission: an RTT sample when ACKed
            self.stats["bytes_out"] += seq_diff(end, self.snd_max) - (1 if fin else 0)
            self.snd_max = end
        self.cc.on_packet_sent(now, seq, n, self.flight_size)
        if retransmit:
            self.stats["retrans"] += 1
            self.stats["retrans_bytes"] += n
            self.rtt_sampler.on_retransmit(seq)  # Karn's rule: never time a retransmitted segment
        if self.timers.rto is None:
            self.timers.rto = now + self.rtt.current_rto()

    def retransmit_range(self, seq: int, now: float, why: str, limit: int | None = None) -> int:
        """Resend one segment starting at ``seq``; returns the octets resent (loss recovery calls this)."""
        off = seq_diff(seq, self.snd_una)
        if off < 0:
            return 0
        n = min(len(self.sndbuf) - off, self._data_room() if limit is None else min(limit, self._data_room()))
        fin = self.fin_sent and seq_add(seq, max(n, 0)) == self.fin_seq
        if n <= 0 and not fin:
            return 0
        self._trace("retransmit", now, seq=seq, len=max(n, 0), why=why)
        self._send_data(off, max(n, 0), now, fin=fin, retransmit=True)
        if off == 0 and why != "rto":
            # as Linux does: resending the head restarts the RTO, so that the timer does not fire
            # while the fast retransmission is still on its way (RFC 6298 leaves this open)
            self.timers.rto = now + self.rtt.current_rto()
        return max(n, 0) + (1 if fin else 0)

    # ------------------------------------------------------------------ timers
    def next_deadline(self) -> float | None:
        return self.timers.next_deadline()

    def on_timer(self, now: float) -> None:
        """Run every timer that is due."""
        if self.timers.due(Timer.TIME_WAIT, now):
            self._drop(now, "2MSL timeout")
            return
        if self.timers.due(Timer.FIN_WAIT_2, now):
            self._drop(now, "FIN-WAIT-2 timeout")
            return
        if self.timers.due(Timer.PTO, now):
            self._on_pto(now)  # re-arms the RTO one RTO from now
        if self.timers.due(Timer.RTO, now):
            self._on_rto(now)
        if self.timers.due(Timer.PERSIST, now):
            self._on_persist(now)
        if self.timers.due(Timer.KEEPALIVE, now):
            self._on_keepalive(now)
        if self.timers.due(Timer.DELACK, now):
            self.timers.delack = None
            if self.state is not State.CLOSED:
                self._send_ack(now)

    def _on_rto(self, now: float) -> None:
        """RFC 6298 5.4-5.6: retransmit the earliest unacknowledged segment, back off, restart."""
        self.timers.rto = None
        self.retries += 1
        if self.snd_wnd == 0 and self.state.synchronized and now - self.last_recv_time <= 2 * self.config.max_rto:
            # the peer shrank its window to zero under data in flight: our retransmissions are
            # window probes now; it is alive while it answers (RFC 9293 3.8.6.1, MUST-35/37; Linux)
            self.retries = min(self.retries, 1)
        limit = {State.SYN_SENT: self.config.syn_retries,
                 State.SYN_RECEIVED: self.config.synack_retries}.get(self.state, self.config.retries2)
        if self.retries > limit:
            self._trace("timeout", now, retries=self.retries - 1)
            self._drop(now, "retransmission limit", errno.ETIMEDOUT)
            self.notify("error")
            return
        self.rtt.on_timeout()
        # Karn: nothing outstanding is timed; an ACK that echoes a timestamp from before this
        # timeout answers an earlier copy (its ACK was lost): it must not give an RTT sample
        self.rtt_sampler.on_timeout(self.snd_una, self._ts_val(now))
        if self.state in (State.SYN_SENT, State.SYN_RECEIVED):
            self._trace("retransmit", now, seq=self.iss, len=0, why="rto_syn", rto=self.rtt.current_rto())
            self.stats["retrans"] += 1
            self._send_syn(now)
            return
        if self.snd_una == self.snd_max:
            return
        self.recovery.on_rto(self._send_view(), now)
        self.snd_nxt = self.snd_una  # RFC 5681 3.1: go back to SND.UNA and resend in order
        self.resend_why = "rto"
        self.tlp_high = None
        self.timers.pto = None
        self._trace_cc(now, "rto")
        self.retransmit_range(self.snd_una, now, "rto")
        self.timers.rto = now + self.rtt.current_rto()

    def _on_persist(self, now: float) -> None:
        """RFC 9293 3.8.6.1: probe a zero window with one octet; back off; never give up while answered.

        The probe octet is the first unacknowledged one: a probe the peer did not take is sent
        again, rather than a new octet each time."""
        self.timers.persist = None
        if self.state not in _CAN_SEND or not self.sndbuf:
            return
        self.snd_nxt = self.snd_una
        n = 1 if self.snd_wnd == 0 else min(len(self.sndbuf), self.snd_wnd, self.eff_mss)
        self.stats["zero_window_probes"] += 1
        self._trace("persist_probe", now, seq=self.snd_nxt, len=n, backoff=self.persist_backoff)
        self._send_data(0, n, now, fin=False, probe=True)
        self.timers.rto = None  # the probe is timed by the persist timer, not the RTO
        self.persist_backoff += 1
        self.timers.persist = now + self._persist_interval()

    def _on_keepalive(self, now: float) -> None:
        """RFC 9293 3.8.4: after idle, probe with SEG.SEQ = SND.NXT-1; ETIMEDOUT after keepalive_count."""
        if self.state is not State.ESTABLISHED:
            self.timers.keepalive = None
            return
        if self.snd_una != self.snd_max or self.sndbuf:
            self.timers.keepalive = now + self.keepalive_idle  # MUST-26: no probe while data is outstanding
            return
        if self.keepalive_probes >= self.keepalive_count:
            self._drop(now, "keepalive timeout", errno.ETIMEDOUT)
            self.notify("error")
            return
        self.keepalive_probes += 1
        self._trace("keepalive_probe", now, n=self.keepalive_probes)
        self._emit(TcpSegment(self.local[1], self.remote[1], seq_add(self.snd_nxt, -1), 0, ACK, 0), now)
        self.timers.keepalive = now + self.keepalive_interval

    def set_keepalive(self, on: bool, now: float) -> None:
        self.keepalive_enabled = on
        self.keepalive_probes = 0
        self.timers.keepalive = now + self.keepalive_idle if on and self.state is State.ESTABLISHED else None

    def set_congestion(self, name: str, now: float) -> None:
        """TCP_CONGESTION: switch algorithm, keeping cwnd and ssthresh; deferred until fast recovery ends."""
        self._pending_cc = None
        if name == self.cc.name:
            return
        if self.recovery.in_recovery:
            self._pending_cc = name
            return
        new = congestion.create(name, self.eff_mss, now, self.config.initial_window)
        if self.state not in (State.CLOSED, State.SYN_SENT):
            new.inherit(self.cc)  # keep cwnd and ssthresh (and keep them across a later set_mss)
        self.cc = new
        self._trace_cc(now, "set_congestion")

    def info(self) -> dict:
        """What ``ss -ti`` shows: state, windows, cwnd, RTT, counters."""
        return {"state": self.state.name, "local": self.name.split("-")[0], "remote": self.name.split("-")[1],
                "snd_una": self.snd_una, "snd_nxt": self.snd_nxt, "snd_wnd": self.snd_wnd,
                "rcv_nxt": self.rcv_nxt, "rcv_wnd": self.rcv_wnd, "mss": self.eff_mss,
                "srtt": self.rtt.srtt, "rttvar": self.rtt.rttvar, "rto": self.rtt.current_rto(),
                "cc": self.cc.name, **self.cc.state_dict(), "unacked": self.flight_size,
                "sndbuf": len(self.sndbuf), "rcvbuf": len(self.rcvbuf), "wscale": (self.snd_wscale, self.rcv_wscale),
                "ts": self.ts_enabled, "sack": self.sack_enabled, **self.stats}


_CAN_SEND = frozenset({State.ESTABLISHED, State.CLOSE_WAIT, State.FIN_WAIT_1, State.CLOSING, State.LAST_ACK})


def _wscale_for(buf: int) -> int:
    """The smallest shift that lets the window field cover the buffer (RFC 7323 2.3, at most 14)."""
    shift = 0
    while (0xFFFF << shift) < buf and shift < 14:
        shift += 1
    return shift


def _ignore(_what: str) -> None:
    pass
