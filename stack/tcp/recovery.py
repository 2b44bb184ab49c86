"""Loss recovery: what to resend, and when. Apart from congestion control (how much).

- Duplicate ACKs per RFC 5681 2 and fast retransmit on the third (RFC 5681 3.2).
- Limited transmit (RFC 3042): up to two new segments on the first two duplicate ACKs.
- NewReno partial ACKs (RFC 6582) or Reno's exit on the first new ACK, as the
  congestion control's ``partial_ack_recovery`` says.
- With SACK negotiated, a scoreboard and conservative recovery (RFC 6675): holes
  judged lost by IsLost are resent first, ``pipe`` replaces cwnd inflation.
- After an RTO: go back to SND.UNA and resend in order (RFC 5681 3.1, RFC 6582 4).

Recovery never holds the connection: every event brings a ``SendView`` (the sequence numbers and
MSS it needs), retransmissions go out through a ``send(seq, why, limit)`` callback, and the
congestion controller it drives (``self.cc``, which it owns as aioquic's recovery does) is told
what happened through its hooks. It is the one owner of "in recovery".
"""
from __future__ import annotations

from typing import Callable, NamedTuple

from ..wire.tcp import FIN, SYN
from .congestion import CongestionControl, RateSample
from .seq import seq_add, seq_diff, seq_ge, seq_gt, seq_le, seq_lt

DUP_THRESH = 3  # RFC 5681 2 / RFC 6675 2: DupThresh


class SendView(NamedTuple):
    """The numbers recovery reads, copied from the connection at each call (it never holds one)."""
    snd_una: int
    snd_nxt: int
    snd_max: int
    smss: int                      # effective send MSS
    sack: bool                     # SACK negotiated
    snd_wnd: int = 0               # the peer's window, scaled
    snd_wscale: int = 0            # the shift the peer applies to its window field
    persist: bool = False          # the persist timer is armed (zero-window probing)
    tlp_high: int | None = None    # RFC 8985: SND.MAX when the tail loss probe went out
    srtt: float | None = None
    rtt: float | None = None       # the RTT sample this ACK gave, if any

    @property
    def flight_size(self) -> int:
        return seq_diff(self.snd_max, self.snd_una)


#: send(seq, why, limit) -> octets resent: the one thing recovery asks of the sender (aioquic's send_probe)
Retransmit = Callable[[int, str, "int | None"], int]


def _no_trace(ev: str, now: float, **fields) -> None:
    pass


class LossRecovery:
    def __init__(self, iss: int, cc: CongestionControl, stats: dict | None = None):
        self.cc = cc                       # the congestion controller this recovery drives
        self.stats = stats if stats is not None else {"dupacks_in": 0}
        self.trace: Callable[..., None] = _no_trace       # trace(ev, now, **fields)
        self.trace_cc: Callable[[float, str], None] = lambda now, why: None
        self.iss = iss
        self.dupacks = 0
        self.in_recovery = False
        self.recover = iss                 # RFC 6582 3.2 step 1: recover = ISS at start
        self.sacked: list[list[int]] = []  # RFC 6675 scoreboard: sorted, merged [left, right)
        self.high_rxt = iss                # RFC 6675 HighRxt: highest octet retransmitted in recovery
        self.rxt_head = False              # fast retransmit / partial ACK: resend SND.UNA's segment
        self.fast_retransmits = 0
        self.rxt_marks: list[list[int]] = []  # [seq, end, SND.MAX then] of each retransmission (lost-rxt detection)
        self.resend: list[tuple[int, int]] = []  # retransmissions found lost, to send again
        self.lost_retransmits = 0
        self.after_rto = False             # RFC 6582 4: after a timeout, no fast retransmit below recover

    def _trace(self, ev: str, now: float, **fields) -> None:
        self.trace(ev, now, **fields)

    # ---------------------------------------------------------------- scoreboard
    def _update_scoreboard(self, seg, s: SendView) -> None:
        """RFC 2018 / RFC 6675 Update(): remember SACKed ranges above SND.UNA (D-SACK blocks ignored)."""
        if seg.sack and s.sack:
            for left, right in seg.sack:
                if seq_le(right, s.snd_una) or seq_gt(right, s.snd_max) or not seq_lt(left, right):
                    continue
                if seq_lt(left, s.snd_una):
                    left = s.snd_una
                self._add_sacked(left, right, s.snd_una)
        while self.sacked and seq_le(self.sacked[0][1], s.snd_una):
            self.sacked.pop(0)
        if self.sacked and seq_lt(self.sacked[0][0], s.snd_una):
            self.sacked[0][0] = s.snd_una

    def _add_sacked(self, left: int, right: int, base: int) -> None:
        merged = []
        for l, r in self.sacked:
            if seq_lt(r, left) or seq_gt(l, right):
                merged.append([l, r])
            else:
                left = l if seq_lt(l, left) else left
                right = r if seq_gt(r, right) else right
        merged.append([left, right])
        merged.sort(key=lambda b: seq_diff(b[0], base))
        self.sacked = merged

    def sacked_bytes(self) -> int:
        return sum(seq_diff(r, l) for l, r in self.sacked)

    def _is_lost(self, seq: int, smss: int) -> bool:
        """RFC 6675 IsLost: DupThresh SACKed blocks above, or more than (DupThresh-1)*SMSS SACKed octets above."""
        above_blocks = above_bytes = 0
        for l, r in self.sacked:
            if seq_gt(r, seq):
                above_blocks += 1
                above_bytes += seq_diff(r, l if seq_gt(l, seq) else seq)
        return above_blocks >= DUP_THRESH or above_bytes > (DUP_THRESH - 1) * smss

    def _holes(self, s: SendView) -> list[tuple[int, int, bool]]:
        """The unSACKed ranges below the highest SACKed octet, each with IsLost(its start), in one
        pass from the right (the SACKed blocks and octets above a hole accumulate): linear in the
        number of holes, not quadratic."""
        sacked = self.sacked
        limit = (DUP_THRESH - 1) * s.smss
        holes = []
        above_blocks = above_bytes = 0
        for i in range(len(sacked) - 1, -1, -1):
            l, r = sacked[i]
            above_blocks += 1
            above_bytes += seq_diff(r, l)
            start = sacked[i - 1][1] if i else s.snd_una
            if seq_lt(start, l):
                holes.append((start, l, above_blocks >= DUP_THRESH or above_bytes > limit))
        holes.reverse()
        return holes

    def _next_hole(self, s: SendView) -> tuple[int, int] | None:
        """RFC 6675 NextSeg() rule 1: the first unSACKed, lost octet range above HighRxt."""
        start = s.snd_una if seq_lt(self.high_rxt, s.snd_una) else self.high_rxt
        for left, right, lost in self._holes(s):
            if seq_le(right, start):
                continue
            if not lost:
                return None
            begin = left if seq_gt(left, start) else start
            return begin, min(seq_diff(right, begin), s.smss)
        return None

    # ---------------------------------------------------------------- pipe
    def pipe(self, s: SendView) -> int:
        """Octets in flight. Outside SACK recovery: SND.NXT - SND.UNA; in it, RFC 6675 SetPipe()."""
        flight = seq_diff(s.snd_nxt, s.snd_una)
        if not (self.in_recovery and s.sack and self.sacked):
            return flight
        lost_not_resent = 0
        for left, right, lost in self._holes(s):
            if lost:
                resent_to = self.high_rxt if seq_gt(self.high_rxt, left) else left
                if seq_lt(resent_to, right):
                    lost_not_resent += seq_diff(right, resent_to)
        return max(0, flight - self.sacked_bytes() - lost_not_resent)

    def extra_cwnd(self, smss: int) -> int:
        """RFC 3042 limited transmit: cwnd + 2*SMSS on the first two duplicate ACKs; Reno inflation is cc's."""
        if not self.in_recovery and 0 < self.dupacks < DUP_THRESH:
            return self.dupacks * smss
        return 0

    # ---------------------------------------------------------------- ACK events
    def on_old_ack(self, seg, s: SendView, now: float) -> None:
        """SEG.ACK == SND.UNA: count duplicates and react.

        Without SACK: RFC 5681 2's definition (no data, no SYN/FIN, same window, data outstanding).
        With SACK: RFC 6675 2's, an ACK that SACKs new data (the window may change: the
        application reading at the receiver must not hide a loss).
        """
        before = self.sacked_bytes() if s.sack else 0
        self._update_scoreboard(seg, s)
        self._detect_lost_retransmissions(s, now)
        if seg.ack != s.snd_una or s.snd_una == s.snd_max or seg.payload or seg.flags & (SYN | FIN):
            return
        if s.persist or seg.window == 0:
            return  # an answer to a zero-window probe, not a sign of loss (as BSD: no RTO running)
        if s.sack and seg.sack:
            is_dup = self.sacked_bytes() > before
        else:
            is_dup = (seg.window << s.snd_wscale) == s.snd_wnd
        if not is_dup:
            return
        self.stats["dupacks_in"] += 1
        self.dupacks += 1
        self._trace("dupack", now, ack=seg.ack, n=self.dupacks, sack=seg.sack)
        if self.in_recovery:
            if not s.sack:
                self.cc.on_dupack_in_recovery()  # RFC 5681 3.2 step 4: inflate
            return
        if self.dupacks >= DUP_THRESH or (s.sack and self._is_lost(s.snd_una, s.smss)):
            self._enter_recovery(s, now)  # RFC 5681 3.2 / RFC 6675 5 (IsLost(HighACK + 1))
        elif s.tlp_high is not None and self.sacked and seq_ge(self.sacked[-1][1], s.tlp_high):
            self._enter_recovery(s, now)  # RFC 8985 7.4 / 6.2: the probe, sent last, arrived; the hole before it is lost

    def _enter_recovery(self, s: SendView, now: float) -> None:
        """RFC 6582 3.2 step 2 / RFC 6675 5 (or RFC 5681 3.2 step 2-3)."""
        guarded = self.cc.partial_ack_recovery or self.after_rto
        if guarded and not seq_gt(s.snd_una, self.recover) and self.recover != self.iss:
            return  # RFC 6582 3.2 step 2 / 4: the ACK does not cover recover: no new fast retransmit
        self.after_rto = False
        self.in_recovery = True
        self.recover = seq_add(s.snd_max, -1)
        self.high_rxt = s.snd_una
        self.rxt_marks.clear()
        self.resend.clear()
        self.fast_retransmits += 1
        self.cc.on_congestion_event(now, s.flight_size, sack=s.sack)  # RFC 6675 5: pipe, no inflation
        self.trace_cc(now, "fast_retransmit")
        self.rxt_head = True

    def on_new_ack(self, seg, acked: int, s: SendView, now: float) -> None:
        """SND.UNA advanced by ``acked`` octets (``s`` is after the move)."""
        if seg.sack or self.sacked:  # else the scoreboard is empty and stays so (a call less per ACK)
            self._update_scoreboard(seg, s)
        if self.rxt_marks:
            self._detect_lost_retransmissions(s, now)
        self.dupacks = 0
        if not self.in_recovery:
            self.cc.on_ack_sample(RateSample(now, acked, s.flight_size, s.srtt, s.rtt))
            self.trace_cc(now, "ack")
            return
        if seq_gt(seg.ack, self.recover) or not self.cc.partial_ack_recovery:
            self.in_recovery = False  # RFC 6582 3.2 step 3: full ACK ends recovery (Reno: any new ACK)
            self.rxt_marks.clear()
            self.resend.clear()
            self.cc.on_exit_recovery(now, s.flight_size)
            self.trace_cc(now, "recovery_exit")
            return
        # RFC 6582 3.2 step 3: partial ACK -> resend the first unacknowledged segment, deflate
        if not s.sack:
            self.cc.on_partial_ack(acked)
            self.rxt_head = True
        self.trace_cc(now, "partial_ack")

    def _detect_lost_retransmissions(self, s: SendView, now: float) -> None:
        """RACK's rule (RFC 8985 6.2) by sequence instead of by clock: once data first sent after a
        retransmission has been SACKed, that retransmission, if its octets are still missing, was
        lost too (absent reordering); the holes are resent again from there instead of waiting
        for the RTO."""
        marks = self.rxt_marks
        if not marks:
            return
        marks[:] = [m for m in marks if seq_lt(s.snd_una, m[1])]  # forget what is now acknowledged
        if not (self.in_recovery and self.sacked and marks):
            return
        highest = self.sacked[-1][1]
        lost = [m for m in marks if seq_gt(highest, m[2]) and not self._sacked_at(m[0], s.snd_una)]
        if not lost:
            return
        self.lost_retransmits += len(lost)
        self._trace("lost_retransmit", now, seqs=[m[0] for m in lost])
        marks[:] = [m for m in marks if m not in lost]
        self.resend.extend((m[0], m[1]) for m in lost)  # only these go again, not every hole above

    def _sacked_at(self, seq: int, snd_una: int) -> bool:
        return seq_lt(seq, snd_una) or any(seq_le(l, seq) and seq_lt(seq, r) for l, r in self.sacked)

    def _mark_retransmission(self, seq: int, sent: int, snd_max: int) -> None:
        if sent > 0:
            self.rxt_marks.append([seq, seq_add(seq, sent), snd_max])

    def on_rto(self, s: SendView, now: float) -> None:
        """RFC 5681 3.1 / RFC 6582 4: after a timeout, resend from SND.UNA in order (the caller sets
        SND.NXT = SND.UNA); no fast retransmit until the ACKs pass what was outstanding."""
        self.cc.on_rto(now, s.flight_size, during_recovery=self.in_recovery)
        self.recover = seq_add(s.snd_max, -1)
        self.after_rto = True  # Reno too: dupacks from the go-back-N resends are not a new loss
        self.in_recovery = False
        self.dupacks = 0
        self.sacked.clear()  # RFC 2018 8: after a timeout, ignore SACK state (the receiver may renege)
        self.rxt_head = False
        self.rxt_marks.clear()
        self.resend.clear()

    # ---------------------------------------------------------------- sending
    @property
    def retransmit_pending(self) -> bool:
        """Whether ``retransmit_due`` may have something to resend: the head after a fast retransmit
        or partial ACK, or lost SACK holes in recovery."""
        return self.rxt_head or self.in_recovery

    def retransmit_due(self, view: Callable[[], SendView], send: Retransmit, now: float) -> None:
        """Before new data: the head after a fast retransmit/partial ACK, then lost SACK holes.
        ``view()`` gives the numbers as they are now (each resend moves them)."""
        if not self.retransmit_pending:
            return  # nothing due (the common case: no view needed)
        s = view()
        if self.rxt_head:
            self.rxt_head = False
            sent = send(s.snd_una, "sack" if s.sack else "fast", None)
            end = seq_add(s.snd_una, sent)
            if seq_gt(end, self.high_rxt):
                self.high_rxt = end
            s = view()
            self._mark_retransmission(s.snd_una, sent, s.snd_max)
        if not (self.in_recovery and s.sack):
            return
        cc = self.cc
        while self.resend and cc.cwnd - self.pipe(s) >= s.smss:
            seq, end = self.resend.pop(0)
            if self._sacked_at(seq, s.snd_una):
                continue  # arrived after all (or acknowledged meanwhile)
            sent = send(seq, "sack", seq_diff(end, seq))
            s = view()
            self._mark_retransmission(seq, sent, s.snd_max)
        for _ in range(64):  # bounded: each pass resends one segment
            if cc.cwnd - self.pipe(s) < s.smss:
                return
            hole = self._next_hole(s)
            if hole is None:
                return
            seq, n = hole
            sent = send(seq, "sack", n)
            if not sent:
                return
            s = view()
            self.high_rxt = seq_add(seq, sent)
            self._mark_retransmission(seq, sent, s.snd_max)
