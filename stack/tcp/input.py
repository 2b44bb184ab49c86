"""Segment arrival for ``Connection`` (RFC 9293 3.10.7): the checks in order, each its own step,
then the data, the FIN and the out-of-order queue (``reassembly.py``).

A mixin: ``ConnectionInput`` holds no state of its own; it works on the connection's
attributes (``connection.py`` creates them) and calls its output side (``output.py``).
"""
from __future__ import annotations

import errno

from ..wire.tcp import ACK, FIN, PSH, RST, SYN, URG, TcpSegment
from .memory import GUARANTEED
from .seq import MASK, acceptable, seq_add, seq_diff, seq_ge, seq_gt, seq_le, seq_lt
from .states import FIN_QUEUED, FIN_SENT, FIN_RECEIVED, ORPHANED, RCV_SHUT, State


class ConnectionInput:
    """The receiving half of ``Connection``."""

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

    def takes_whole(self, seg: TcpSegment) -> bool:
        """Whether a GRO segment (packets merged by ``stack.wire.gro``, ``gso_size`` set) may be taken
        whole: header prediction takes it, and doing so is exactly what taking its packets one by one
        would do. So its packets are full-sized (``gso_size`` is our MSS: ``_schedule_ack`` counts
        them as it would one by one) and in order (they fit the window together iff one by one;
        the state, the windows and the memory budget do not change in between: the layer settles an
        ESTABLISHED connection after the batch). Otherwise the netstack hands over the packets."""
        return seg.gso_size == self.eff_mss and self._predicted(seg)

    def _predicted(self, seg: TcpSegment) -> bool:
        """Van Jacobson's header prediction (as in RFC 1323 and Linux's fast path): the next in-order
        segment of a bulk transfer, in ESTABLISHED, with nothing unusual, may skip the general checks.

        Either pure in-order data with the same window that acknowledges nothing new, or a pure ACK
        with SND.UNA <= SEG.ACK <= SND.MAX, whatever its window (``_ack_prediction``). Anything else
        (options to look at, out-of-order data, recovery) takes the general path."""
        if (seg.flags & ~PSH) != ACK or seg.seq != self.rcv_nxt or seg.sack or self.recovery.in_recovery:
            return False
        if self.reasm.queue:
            return False
        if self.ts_enabled and (seg.tsval is None or (seg.tsval - self.ts_recent) & MASK >= 0x80000000):
            return False  # no timestamp or PAWS would look at it
        if seg.payload:  # the budget decides on the general path
            return not (seg.ack != self.snd_una or (seg.window << self.snd_wscale) != self.snd_wnd
                        or len(seg.payload) > self.rcv_wnd or self._closing & ORPHANED or self.memory.pressure)
        una = self.snd_una
        return (seg.ack - una) & MASK <= (self.snd_max - una) & MASK  # not beyond SND.MAX, not before SND.UNA

    def _header_prediction(self, seg: TcpSegment, now: float) -> bool:
        """Take a predicted segment (``_predicted``): exactly what the RFC 9293 3.10.7.4 steps would do
        for it. False: not predicted, the general path takes it."""
        if not self._predicted(seg):
            return False
        if self.ts_enabled and seg.seq == self.last_ack_sent:
            self.ts_recent = seg.tsval  # RFC 7323 4.3
        payload = seg.payload
        if payload:
            if seg.gso_size:  # GRO (takes_whole): the packets it came in count as segments
                self.stats["segs_in"] += (len(payload) - 1) // seg.gso_size
            self._deliver(payload, False, now)
            self._schedule_ack(len(payload), now)
            return True
        self._ack_prediction(seg, now)
        return True

    def _ack_prediction(self, seg: TcpSegment, now: float) -> None:
        """A predicted pure ACK: of RFC 9293 3.10.7.4's steps only the fifth check does anything for it
        (the others accept it and pass), so run that alone. The window may change (a slow reader's
        ACKs): the SND.WL1/SND.WL2 update is the general path's own ``_update_window``."""
        if seg.ack != self.snd_una:
            self._new_ack(seg, now)
        else:
            self.recovery.on_old_ack(seg, self._send_view(), now)  # a duplicate ACK or a window update
        self._update_window(seg, now)
        self._output(now)

    def _arrive_syn_sent(self, seg: TcpSegment, now: float) -> None:
        """RFC 9293 3.10.7.3 SYN-SENT."""
        flags = seg.flags
        if flags & ACK:
            # first check: unacceptable ACK -> RST (unless RST), drop
            if seq_le(seg.ack, self.iss) or seq_gt(seg.ack, self.snd_max):
                if not flags & RST:
                    self._emit(TcpSegment(self.local[1], self.remote[1], seg.ack, 0, RST, 0), now)
                else:
                    self._count_drop(seg, "rst_bad_ack", now)  # "if the RST bit is set, drop the segment"
                return
        if flags & RST:
            # second check: RST with acceptable ACK -> connection refused; without ACK -> drop
            if flags & ACK:
                self._delete_tcb(now, "RST in SYN-SENT", errno.ECONNREFUSED)
            else:
                self._count_drop(seg, "rst_without_ack", now)
            return
        if not flags & SYN:
            self._count_drop(seg, "no_syn_no_rst", now)  # fifth check: neither SYN nor RST -> drop
            return
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
        sample = self.rtx.on_syn_acked(self.retries > 0, seg.tsecr if self.ts_enabled else None,
                                       self._ts_val(now), now)
        if sample is not None and self.tracer.enabled:
            self._trace_rtt(now, sample)
        if self.retries:
            self.rtt.reset_for_data_after_syn_timeout()  # RFC 6298 5.7
        self.retries = 0
        self.timers.rto = self.rtx.stop()
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
            self._count_drop(seg, "ack_bit_off", now)  # fifth check: ACK bit off -> drop
            return
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
            self._count_drop(seg, "paws", now)
            self.ack_now = True
            self._send_ack(now)
            return False
        return True

    def _count_drop(self, seg: TcpSegment, reason: str, now: float) -> None:
        """Every dropped segment has a named reason, counted and traced (DESIGN: one home for it)."""
        self.stats["drops"] += 1
        self._trace("drop", now, reason=reason, seq=seg.seq, len=seg.seg_len)

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
        if not acceptable(seq, seg_len, self.rcv_nxt, rcv_wnd):
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
                self._count_drop(seg, "out_of_window", now)
                self.ack_now = True  # an unacceptable segment is answered with an ACK
                self._send_ack(now)
            else:
                self._count_drop(seg, "rst_out_of_window", now)  # RFC 9293 3.10.7.4 first check: RST -> drop
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
            self._delete_tcb(now, "RST in SYN-RECEIVED (passive): back to LISTEN")
            return
        if self.state is State.SYN_RECEIVED:
            self._delete_tcb(now, "RST in SYN-RECEIVED", errno.ECONNREFUSED)
        elif self.state in (State.CLOSING, State.LAST_ACK, State.TIME_WAIT):
            self._delete_tcb(now, "RST")
        else:
            self.sndbuf.clear()
            self._delete_tcb(now, "RST received", errno.ECONNRESET)
        self.notify("error")

    def _check_syn(self, seg: TcpSegment, now: float) -> None:
        """RFC 9293 3.10.7.4 fourth check with RFC 5961 4.2: SYN in a synchronized state -> challenge ACK."""
        if self.state is State.SYN_RECEIVED and self.listener is not None:
            self._delete_tcb(now, "SYN in SYN-RECEIVED (passive): back to LISTEN")
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
                if self._closing & FIN_QUEUED:  # RFC 9293 3.10.4: a CLOSE in SYN-RECEIVED was queued until now
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
        fin_acked = bool(self._closing & FIN_SENT) and ack == seq_add(self.fin_seq, 1)
        data_acked = acked - (1 if fin_acked else 0)
        del self.sndbuf[:data_acked]
        self.snd_una = ack
        if seq_lt(self.snd_nxt, ack):
            self.snd_nxt = ack
        self.retries = 0
        self.soft_error = 0  # the path works again (Linux tcp_ack clears sk_err_soft)
        # Karn (RFC 6298 5 note): the backed-off RTO stays until a valid sample resets it in sample()
        sample = self._take_rtt_sample(seg, now)
        self.recovery.on_new_ack(seg, acked, self._send_view(sample), now)
        if self.tlp_high is not None and seq_ge(ack, self.tlp_high):
            self.tlp_high = None  # RFC 8985 7.4: the probe's episode is over
        if self._pending_cc and not self.recovery.in_recovery:
            self.set_congestion(self._pending_cc, now)
        self.timers.rto = self.rtx.deadline  # RFC 6298 5.2 / 5.3: stopped or restarted by the ACK
        if data_acked > 0:
            self._sndbuf_expand()
            self._write_space()

    def _take_rtt_sample(self, seg: TcpSegment, now: float) -> float | None:
        """The retransmission timer sees the ACK: an RTT sample (Karn's rule, timestamp fallback) and
        RFC 6298 5.2 / 5.3 (rtt.RetransmissionTimer)."""
        sample = self.rtx.on_ack(seg.ack, now, self.snd_una == self.snd_max,
                                 seg.tsecr if self.ts_enabled else None, self._ts_val(now))
        if sample is not None and self.tracer.enabled:
            self._trace_rtt(now, sample)
        return sample

    def _trace_rtt(self, now: float, sample: float) -> None:
        # the caller checks tracer.enabled: the fields cost a round() and an RTO computation per ACK
        self._trace("rtt", now, sample=round(sample, 6), srtt=self.rtt.srtt, rttvar=self.rtt.rttvar,
                    rto=self.rtt.current_rto())

    def _ack_state_transitions(self, seg: TcpSegment, now: float) -> bool:
        """RFC 9293 3.10.7.4 fifth check, the per-state part after the ACK is processed."""
        fin_acked = bool(self._closing & FIN_SENT) and self.snd_una == seq_add(self.fin_seq, 1)
        st = self.state
        if st is State.FIN_WAIT_1 and fin_acked:
            self._set_state(State.FIN_WAIT_2, now, "FIN acked")
            if self._closing & ORPHANED:
                self.timers.fin_wait_2 = now + self.config.fin_timeout
        elif st is State.CLOSING and fin_acked:
            self._enter_time_wait(now, "FIN acked in CLOSING")
            return False
        elif st is State.LAST_ACK and fin_acked:
            self._delete_tcb(now, "FIN acked in LAST-ACK")
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
                self._count_drop(seg, "data_after_fin", now)  # CLOSE-WAIT and later: the peer sent FIN; ignore text
                return
        payload, fin = seg.payload, bool(seg.flags & FIN)
        if not payload and not fin:
            return
        if payload and self._closing & (ORPHANED | RCV_SHUT) and st in (State.FIN_WAIT_1, State.FIN_WAIT_2):
            # nobody will read it (closed, or reading shut too): RFC 1122 4.2.2.13 / RFC 2525 2.17 say
            # reset, as Linux's tcp_rcv_state_process() does for RCV_SHUTDOWN in FIN-WAIT-1/2
            self.abort(now, "data after close")
            self.error = errno.ECONNRESET
            self.notify("error")  # a socket that only shut down both ways is still there to be told
            return
        seq = seg.seq
        if skip_syn and seg.flags & SYN:
            seq = seq_add(seq, 1)
        if payload and self._refuse_for_memory(seg, seq, now):
            return
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

    def _refuse_for_memory(self, seg: TcpSegment, seq: int, now: float) -> bool:
        """The memory budget (memory.py) on arriving data: under pressure out-of-order data is pruned and
        not queued (RFC 2018 8 allows reneging; Linux tcp_prune_ofo_queue); above the limit new data
        is dropped (Linux tcp_try_rmem_schedule fails: TCPRCVQDROP), unless this connection holds less
        than the guaranteed minimum. The ACK field was already processed; an ACK tells the window."""
        mem = self.memory
        if not mem.pressure:
            return False
        if seq != self.rcv_nxt:
            if self.reasm:
                self.reasm.clear()
                self.ofo_bytes = 0
                self._trace("drop", now, reason="ofo_prune_pressure", seq=seq)
            self._count_drop(seg, "ofo_mem_pressure", now)
            self._send_ack(now)  # a duplicate ACK (RFC 5681 4.2), its SACK blocks now gone
            return True
        if mem.over_limit and len(self.rcvbuf) + len(seg.payload) > GUARANTEED:
            self._count_drop(seg, "mem_limit", now)
            self.ack_now = True
            return True
        return False

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
        # counted as stored (overlaps counted twice), bounded by the window the data must lie in
        self.ofo_bytes = min(self.ofo_bytes + len(payload), self.rcv_wnd)
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
            self.ofo_bytes = max(0, self.ofo_bytes - len(chunk[0])) if self.reasm else 0
            self._deliver(chunk[0], chunk[1], now)
        if not self.reasm:
            self.ofo_bytes = 0

    def sack_blocks(self) -> list[tuple[int, int]]:
        """RFC 2018 4: most recent first; up to 3 with timestamps (option space), else 4."""
        return self.reasm.sack_blocks(3 if self.ts_enabled else 4)

    def _fin_received(self, now: float) -> None:
        """RFC 9293 3.10.7.4 eighth check: FIN."""
        self.rcv_nxt = seq_add(self.rcv_nxt, 1)
        self._closing |= FIN_RECEIVED
        self.ack_now = True
        self.reasm.clear()
        self.ofo_bytes = 0
        st = self.state
        if st in (State.SYN_RECEIVED, State.ESTABLISHED):
            self._set_state(State.CLOSE_WAIT, now, "FIN received")
        elif st is State.FIN_WAIT_1:
            if (self._closing & FIN_SENT) and self.snd_una == seq_add(self.fin_seq, 1):
                self._enter_time_wait(now, "FIN received, our FIN acked")
            else:
                self._set_state(State.CLOSING, now, "simultaneous close")
        elif st is State.FIN_WAIT_2:
            self._enter_time_wait(now, "FIN received in FIN-WAIT-2")
        self.notify("readable")

    def _check_fin_timers(self, now: float) -> None:
        if self.state is not State.FIN_WAIT_2:
            self.timers.fin_wait_2 = None
