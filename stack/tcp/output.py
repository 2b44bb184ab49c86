"""Sending for ``Connection``: ACK generation (RFC 9293 3.8.6.3, RFC 5681 4.2), the advertised
window (RFC 9293 3.8.6.2.2), what the windows, Nagle and SWS avoidance let out (RFC 9293
3.8.6.2.1, RFC 896), tail loss probes (RFC 8985 7), persist (RFC 9293 3.8.6.1) and retransmission.

A mixin: ``ConnectionOutput`` holds no state of its own; it works on the connection's
attributes (``connection.py`` creates them).
"""
from __future__ import annotations

from ..wire.tcp import ACK, FIN, PSH, SYN, TcpSegment
from ..wire.tcpip import SegmentTrain
from .congestion.base import CongestionControl
from .memory import GUARANTEED
from .seq import HALF, MASK, seq_add, seq_diff, seq_ge, seq_gt, seq_le, seq_lt
from .states import FIN_QUEUED, FIN_RECEIVED, FIN_SENT, State
from .window import usable_window

TSO_MAX = 65535 - 20 - 60  # a TSO super-segment must fit one IPv4 datagram
# a tuple, not a set: membership by identity, without Enum.__hash__ (Python code) on every output decision
_CAN_SEND = (State.ESTABLISHED, State.CLOSE_WAIT, State.FIN_WAIT_1, State.CLOSING, State.LAST_ACK)
_TRAIN_STATES = (State.ESTABLISHED, State.CLOSE_WAIT)
# the reference functions a train may assume (kept in a tuple: a seam swap rebinds module names only)
_REFERENCE = (usable_window, CongestionControl.on_packet_sent)


class ConnectionOutput:
    """The sending half of ``Connection``."""

    # ------------------------------------------------------------------ ACK generation
    def _schedule_ack(self, nbytes: int, now: float) -> None:
        """RFC 9293 3.8.6.3 / RFC 5681 4.2 delayed ACK: every second full segment, else within delack."""
        if nbytes:
            self.unacked_segs += nbytes // self.eff_mss if nbytes >= self.eff_mss - 1 else 0  # GRO/LRO: many
            if self.unacked_segs >= 2:
                self.ack_now = True
            elif self.timers.delack is None:
                self.timers.delack = now + self.config.delack
        if self._closing & FIN_RECEIVED:
            self.ack_now = True

    def flush(self, now: float) -> None:
        """Send an ACK that is due now (called by the layer after a batch of input)."""
        if self.ack_now and self.state is not State.CLOSED:
            self._send_ack(now)

    def _send_ack(self, now: float) -> None:
        """A pure ACK, at a sequence number the peer accepts (Linux tcp_send_ack)."""
        self._emit(TcpSegment(self.local[1], self.remote[1], self._acceptable_seq(), 0, ACK, 0), now)

    def _acceptable_seq(self) -> int:
        """SEG.SEQ for a segment without data (pure ACK, RST) that the peer accepts (Linux
        tcp_acceptable_seq): SND.NXT if it is within the peer's window (RFC 9293 3.10.7.4 first
        check, or less than one window-scale unit beyond it), else its right edge SND.UNA+SND.WND:
        SND.NXT may lie beyond it after a retransmission into a shrunken window."""
        nxt = self.snd_nxt
        wnd_end = (self.snd_una + self.snd_wnd) & MASK
        if seq_le(nxt, wnd_end) or (nxt - wnd_end) & MASK < (1 << self.snd_wscale):
            return nxt
        return wnd_end

    def _free_space(self) -> int:
        """Receive-buffer room the window may offer. Under memory pressure the window grows by at most
        four segments past what is buffered (Linux caps rcv_ssthresh at 4 * advmss), and never beyond
        what the budget still holds: "advertise no more window than fits" (memory.py)."""
        free = max(0, self.rcvbuf_cap - len(self.rcvbuf))
        mem = self.memory
        if mem.pressure:
            free = min(free, 4 * self.eff_mss, max(mem.limit - mem.used, GUARANTEED - len(self.rcvbuf)))
        return free

    def _set_rcv_adv_initial(self) -> None:
        self.rcv_adv = seq_add(self.rcv_nxt, self._window_field_for(self._free_space()) << self.rcv_wscale)

    def _window_field_for(self, wnd: int) -> int:
        return min(wnd >> self.rcv_wscale, 0xFFFF)

    def _advertise(self, now: float) -> int:
        """The window field to send, with receiver SWS avoidance (RFC 9293 3.8.6.2.2); never shrinks."""
        field = self._window_field()
        if not field and self.tracer.enabled:
            self.tracer.emit("zero_window", now, conn=self.name, rcv_nxt=self.rcv_nxt)
        return field

    def _window_field(self) -> int:
        """``_advertise`` without the trace: moves RCV.ADV as the field sent now does (asking twice
        changes nothing)."""
        free = self._free_space()
        nxt, adv = self.rcv_nxt, self.rcv_adv
        right = (nxt + free) & MASK
        ahead = (right - adv) & MASK  # sequence arithmetic inline (it runs for every segment sent)
        # seq_diff(right, adv) >= the SWS step, or seq_gt(right, adv) with the whole buffer free
        if (ahead < HALF and ahead >= min(self.rcvbuf_cap // 2, self.eff_mss)) or (
                0 < ahead <= HALF and free == self.rcvbuf_cap):
            adv = right
        wnd = (adv - nxt) & MASK
        if wnd >= HALF:
            wnd = 0  # rcv_wnd: max(0, seq_diff(adv, nxt))
        ws = self.rcv_wscale
        field = min((wnd + (1 << ws) - 1) >> ws, 0xFFFF)  # round up: the right edge never moves left
        self.rcv_adv = (nxt + (field << ws)) & MASK
        return field

    def _maybe_window_update(self, now: float) -> None:
        """After the user reads: tell the peer when the window opened by at least the SWS step.

        The window compared is the one the field can carry (at most 65535 << RCV.WSCALE): without
        window scaling a large buffer's free space grows far beyond what can be advertised, and a
        read that changes nothing on the wire must not send an ACK."""
        if self.state not in (State.ESTABLISHED, State.FIN_WAIT_1, State.FIN_WAIT_2):
            return
        old = self.rcv_wnd
        if old >= self.rcvbuf_cap // 2:
            return
        free = min(self._free_space(), 0xFFFF << self.rcv_wscale)
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
            if self._peer_takes_ack(seg):
                self.last_ack_sent = self.rcv_nxt
                self.ack_now = False
                self.timers.delack = None
                self.unacked_segs = 0
            if self.ts_enabled and not seg.flags & SYN:
                seg.tsval, seg.tsecr = self._ts_val(now), self.ts_recent
            if self.sack_enabled and self.reasm.queue and not seg.flags & SYN:
                seg.sack = self.sack_blocks()
        self.stats["segs_out"] += 1
        self.last_send_time = now
        self.outq.append(seg)

    def _peer_takes_ack(self, seg: TcpSegment) -> bool:
        """Whether the peer will process this segment's ACK field. A receiver drops a segment outside
        its window, ACK included (RFC 9293 3.10.7.4 first check), and Linux 6.18 also drops one that
        merely *ends* beyond it. A segment that does not reach it leaves the ACK owed: ``flush`` (or
        the delayed-ACK timer) then sends a pure ACK at ``_acceptable_seq``."""
        if seg.flags & SYN:
            return True
        seq = seg.seq
        n = len(seg.payload) + (1 if seg.flags & FIN else 0)
        if not n:
            return not seq_lt(seq, self.snd_una)  # a probe at SND.UNA-1 is out of window on purpose
        return seq_le((seq + n) & MASK, (self.snd_una + self.snd_wnd) & MASK)

    def _ts_val(self, now: float) -> int:
        return (round(now * 1000) + self.ts_offset) & MASK  # RFC 7323 5.4: a 1 ms clock (rounded)

    def _output(self, now: float) -> None:
        """Send what the windows, Nagle and SWS avoidance allow (RFC 9293 3.8.6.2.1, RFC 896)."""
        if self.state not in _CAN_SEND:
            return
        if self.snd_una == self.snd_max and len(self.sndbuf) > seq_diff(self.snd_nxt, self.snd_una):
            self.recovery.cc.on_idle(now, now - self.last_send_time, self.rtt.current_rto())  # RFC 5681 4.1
        recovery = self.recovery
        if recovery.retransmit_pending:  # (no callback made when nothing is due)
            recovery.retransmit_due(self._send_view, self._retransmit_for_recovery(now), now)
        # after a train the rest is shorter than a segment (data or window) with data in flight: Nagle
        # and SWS avoidance hold it back (``_may_send_small``) unless TCP_NODELAY, or it ends with a FIN
        if not (self._send_train(now) and not self.nodelay and not self._closing & FIN_QUEUED):
            while self._send_one(now):
                pass
        if self.timers.persist is not None:
            self.timers.rto = self.rtx.stop()  # RFC 9293 3.8.6.1: against a zero window only the persist timer runs
        elif self.snd_nxt != self.snd_max or seq_lt(self.snd_una, self.snd_max):
            self.timers.rto = self.rtx.start(now)  # RFC 6298 5.1
        self._arm_pto(now)

    def _send_one(self, now: float) -> bool:
        """Send the next new segment if allowed; True when one was sent."""
        off = seq_diff(self.snd_nxt, self.snd_una)
        avail = len(self.sndbuf) - off
        closing = self._closing
        fin_pending = bool(closing & FIN_QUEUED) and not (closing & FIN_SENT and seq_gt(self.snd_nxt, self.fin_seq))
        if avail <= 0:
            if fin_pending and avail == 0:
                self._send_data(off, 0, now, fin=True)
                return False
            return False
        recovery = self.recovery
        if recovery.in_recovery:
            in_flight = recovery.pipe(self._send_view())  # RFC 6675 SetPipe()
            # the peer's window bounds what is outstanding (RFC 9293 3.8.6); cwnd bounds pipe (RFC 6675),
            # which leaves SACKed octets out and so must never stretch the peer's window
            usable = min(self.snd_wnd - off, recovery.cc.cwnd - in_flight)
        else:
            in_flight = off  # RFC 5681 2: FlightSize = SND.NXT - SND.UNA
            # RFC 3042 limited transmit: cwnd + 2*SMSS on the first two duplicate ACKs
            cwnd = recovery.cc.cwnd + recovery.extra_cwnd(self.eff_mss)
            usable = usable_window(self.snd_una, self.snd_nxt, self.snd_wnd, cwnd)
        mss = self._data_room()
        n = min(avail, max(mss, TSO_MAX // mss * mss) if self.tso else mss, usable)
        if n <= 0 or (n < mss and not self._may_send_small(n, avail, in_flight)):
            self._arm_persist(now, in_flight)
            return False
        self._send_data(off, n, now, fin=fin_pending and n == avail)
        return True

    def _send_train(self, now: float) -> bool:
        """The bulk sender's fast path: the full-sized segments of new data that ``_send_one`` would
        send one by one now, as one ``SegmentTrain``, with the same header fields and the same state
        left behind (RFC 9293 3.8.6.2.1 usable window, RFC 5681 3.1 cwnd). Only when nothing unusual
        is going on: ESTABLISHED or CLOSE-WAIT, all sent data new (SND.NXT = SND.MAX), no recovery,
        no SACK blocks to carry, no TSO, a window to advertise, the reference usable window and a
        congestion control that ignores sends. What is left (a short tail, FIN, persist) goes the
        general way. True when a train left."""
        mss = self.eff_mss
        cc = self.recovery.cc
        if (self.state not in _TRAIN_STATES or self.tso or self.snd_nxt != self.snd_max or self.recovery.in_recovery
                or (self.sack_enabled and self.reasm.queue) or usable_window is not _REFERENCE[0]
                or type(cc).on_packet_sent is not _REFERENCE[1]):
            return False
        snd_una, snd_nxt = self.snd_una, self.snd_nxt
        sndbuf = self.sndbuf
        off = (snd_nxt - snd_una) & MASK
        avail = len(sndbuf) - off
        usable = usable_window(snd_una, snd_nxt, self.snd_wnd, cc.cwnd + self.recovery.extra_cwnd(mss))
        count = min(avail, usable) // mss
        if count * mss == avail and self._closing & FIN_QUEUED:
            count -= 1  # the last segment carries the FIN: _send_one sends it
        if count < 2:
            return False
        window = self._window_field()
        if not window:
            return False  # a zero window is traced per segment (_advertise): the general path
        # RFC 9293 3.10.7.4: every segment lies inside the peer's window (usable <= SND.WND - flight),
        # so the peer takes this ACK: what _peer_takes_ack would record for the first
        self.last_ack_sent = self.rcv_nxt
        self.ack_now = False
        self.timers.delack = None
        self.unacked_segs = 0
        end_off = off + count * mss
        chunk = sndbuf.slice(off, end_off - off)  # one copy out of the buffer, then bytes slices (in C)
        payloads = [chunk[o:o + mss] for o in range(0, count * mss, mss)]
        self.outq.append(SegmentTrain(self.local[1], self.remote[1], snd_nxt, self.rcv_nxt, ACK, window,
                                      self._ts_val(now) if self.ts_enabled else None, self.ts_recent,
                                      payloads, end_off == len(sndbuf)))  # PSH: the end of what the user wrote
        stats = self.stats
        stats["segs_out"] += count
        stats["bytes_out"] += count * mss
        self.last_send_time = now
        end = (snd_nxt + count * mss) & MASK
        # RFC 6298 5.1: each new segment is timed (Karn: none is a retransmission); in one step when
        # the timer can (a timer of exercise 5 cannot: one by one)
        rtx = self.rtx
        run = getattr(rtx, "on_send_run", None)
        if run is not None:
            run([(snd_nxt + i * mss) & MASK for i in range(1, count + 1)], now)
        else:
            for i in range(count):
                rtx.on_send((snd_nxt + i * mss) & MASK, (snd_nxt + (i + 1) * mss) & MASK, now)
        self.snd_nxt = self.snd_max = end
        self.timers.rto = rtx.deadline
        return True

    def _data_room(self) -> int:
        """RFC 9293 3.7.1 (MUST-16): the data a segment may carry after *its* options; SACK blocks
        ride on data segments too while out-of-order data waits, and take room from the data."""
        if self.sack_enabled and self.reasm.queue:
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
            data_end = self.fin_seq if self._closing & FIN_SENT else self.snd_max
            last = seq_add(data_end, -min(self.eff_mss, seq_diff(data_end, self.snd_una)))
            self.retransmit_range(last, now, "tlp")
            self.tlp_high = data_end  # the probe's last octet + 1: a SACK reaching it means it arrived
        self.timers.rto = self.rtx.restart(now)

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
            self._closing |= FIN_SENT
            self.fin_seq = seq_add(seq, n)
        payload = self.sndbuf.slice(off, n) if n else b""  # immutable: the buffer's own bytes or one copy
        seg = TcpSegment(self.local[1], self.remote[1], seq, 0, flags, 0, payload)
        room = self._data_room()
        if n > room:
            seg.gso_size = room  # TSO: the kernel cuts it into pieces of this size
        self._emit(seg, now)
        end = seq_add(seq, n + (1 if fin else 0))
        if seq_gt(end, self.snd_nxt):
            self.snd_nxt = end
        first = not retransmit and n and seq_ge(seq, self.snd_max)  # timed: an RTT sample when ACKed
        if seq_gt(end, self.snd_max):
            self.stats["bytes_out"] += seq_diff(end, self.snd_max) - (1 if fin else 0)
            self.snd_max = end
        self.recovery.cc.on_packet_sent(now, seq, n, seq_diff(self.snd_max, self.snd_una))
        if retransmit:
            self.stats["retrans"] += 1
            self.stats["retrans_bytes"] += n
        if retransmit or first:  # RFC 6298 5.1, and 3 (Karn): never time a retransmitted segment
            self.rtx.on_send(seq, end, now, retransmission=retransmit)
            self.timers.rto = self.rtx.deadline
        else:
            self.timers.rto = self.rtx.start(now)  # RFC 6298 5.1 for a FIN alone or a window probe

    def retransmit_range(self, seq: int, now: float, why: str, limit: int | None = None) -> int:
        """Resend one segment starting at ``seq``; returns the octets resent (loss recovery calls this)."""
        off = seq_diff(seq, self.snd_una)
        if off < 0:
            return 0
        n = min(len(self.sndbuf) - off, self._data_room() if limit is None else min(limit, self._data_room()))
        fin = bool(self._closing & FIN_SENT) and seq_add(seq, max(n, 0)) == self.fin_seq
        if n <= 0 and not fin:
            return 0
        self._trace("retransmit", now, seq=seq, len=max(n, 0), why=why)
        self._send_data(off, max(n, 0), now, fin=fin, retransmit=True)
        if off == 0 and why != "rto":
            # as Linux does: resending the head restarts the RTO, so that the timer does not fire
            # while the fast retransmission is still on its way (RFC 6298 leaves this open)
            self.timers.rto = self.rtx.restart(now)
        return max(n, 0) + (1 if fin else 0)
