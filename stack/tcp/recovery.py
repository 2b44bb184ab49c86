"""Loss recovery: what to resend, and when. Apart from congestion control (how much).

- Duplicate ACKs per RFC 5681 2 and fast retransmit on the third (RFC 5681 3.2).
- Limited transmit (RFC 3042): up to two new segments on the first two duplicate ACKs.
- NewReno partial ACKs (RFC 6582) or Reno's exit on the first new ACK, as the
  congestion control's ``partial_ack_recovery`` says.
- With SACK negotiated, a scoreboard and conservative recovery (RFC 6675): holes
  judged lost by IsLost are resent first, ``pipe`` replaces cwnd inflation.
- After an RTO: go back to SND.UNA and resend in order (RFC 5681 3.1, RFC 6582 4).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..wire.tcp import FIN, SYN
from .seq import seq_add, seq_diff, seq_ge, seq_gt, seq_le, seq_lt

if TYPE_CHECKING:
    from .connection import Connection

DUP_THRESH = 3  # RFC 5681 2 / RFC 6675 2: DupThresh


class LossRecovery:
    def __init__(self, conn: "Connection"):
        self.c = conn
        self.dupacks = 0
        self.in_recovery = False
        self.recover = conn.iss            # RFC 6582 3.2 step 1: recover = ISS at start
        self.sacked: list[list[int]] = []  # RFC 6675 scoreboard: sorted, merged [left, right)
        self.high_rxt = conn.iss           # RFC 6675 HighRxt: highest octet retransmitted in recovery
        self.rxt_head = False              # fast retransmit / partial ACK: resend SND.UNA's segment
        self.fast_retransmits = 0
        self.rxt_marks: list[list[int]] = []  # [seq, end, SND.MAX then] of each retransmission (lost-rxt detection)
        self.resend: list[tuple[int, int]] = []  # retransmissions found lost, to send again
        self.lost_retransmits = 0
        self.after_rto = False             # RFC 6582 4: after a timeout, no fast retransmit below recover

    # ---------------------------------------------------------------- scoreboard
    def _update_scoreboard(self, seg) -> None:
        """RFC 2018 / RFC 6675 Update(): remember SACKed ranges above SND.UNA (D-SACK blocks ignored)."""
        c = self.c
        if seg.sack and c.sack_enabled:
            for left, right in seg.sack:
                if seq_le(right, c.snd_una) or seq_gt(right, c.snd_max) or not seq_lt(left, right):
                    continue
                if seq_lt(left, c.snd_una):
                    left = c.snd_una
                self._add_sacked(left, right)
        while self.sacked and seq_le(self.sacked[0][1], c.snd_una):
            self.sacked.pop(0)
        if self.sacked and seq_lt(self.sacked[0][0], c.snd_una):
            self.sacked[0][0] = c.snd_una

    def _add_sacked(self, left: int, right: int) -> None:
        merged = []
        for l, r in self.sacked:
            if seq_lt(r, left) or seq_gt(l, right):
                merged.append([l, r])
            else:
                left = l if seq_lt(l, left) else left
                right = r if seq_gt(r, right) else right
        merged.append([left, right])
        base = self.c.snd_una
        merged.sort(key=lambda b: seq_diff(b[0], base))
        self.sacked = merged

    def sacked_bytes(self) -> int:
        return sum(seq_diff(r, l) for l, r in self.sacked)

    def _is_lost(self, seq: int) -> bool:
        """RFC 6675 IsLost: DupThresh SACKed blocks above, or more than (DupThresh-1)*SMSS SACKed octets above."""
        above_blocks = above_bytes = 0
        for l, r in self.sacked:
            if seq_gt(r, seq):
                above_blocks += 1
                above_bytes += seq_diff(r, l if seq_gt(l, seq) else seq)
        return above_blocks >= DUP_THRESH or above_bytes > (DUP_THRESH - 1) * self.c.eff_mss

    def _holes(self) -> list[tuple[int, int, bool]]:
        """The unSACKed ranges below the highest SACKed octet, each with IsLost(its start), in one
        pass from the right (the SACKed blocks and octets above a hole accumulate): linear in the
        number of holes, not quadratic."""
        c = self.c
        sacked = self.sacked
        limit = (DUP_THRESH - 1) * c.eff_mss
        holes = []
        above_blocks = above_bytes = 0
        for i in range(len(sacked) - 1, -1, -1):
            l, r = sacked[i]
            above_blocks += 1
            above_bytes += seq_diff(r, l)
            start = sacked[i - 1][1] if i else c.snd_una
            if seq_lt(start, l):
                holes.append((start, l, above_blocks >= DUP_THRESH or above_bytes > limit))
        holes.reverse()
        return holes

    def _next_hole(self) -> tuple[int, int] | None:
        """RFC 6675 NextSeg() rule 1: the first unSACKed, lost octet range above HighRxt."""
        c = self.c
        start = c.snd_una if seq_lt(self.high_rxt, c.snd_una) else self.high_rxt
        for left, right, lost in self._holes():
            if seq_le(right, start):
                continue
            if not lost:
                return None
            begin = left if seq_gt(left, start) else start
            return begin, min(seq_diff(right, begin), c.eff_mss)
        return None

    # ---------------------------------------------------------------- pipe
    def pipe(self) -> int:
        """Octets in flight. Outside SACK recovery: SND.NXT - SND.UNA; in it, RFC 6675 SetPipe()."""
        c = self.c
        flight = seq_diff(c.snd_nxt, c.snd_una)
        if not (self.in_recovery and c.sack_enabled and self.sacked):
            return flight
        lost_not_resent = 0
        for left, right, lost in self._holes():
            if lost:
                resent_to = self.high_rxt if seq_gt(self.high_rxt, left) else left
                if seq_lt(resent_to, right):
                    lost_not_resent += seq_diff(right, resent_to)
        return max(0, flight - self.sacked_bytes() - lost_not_resent)

    def extra_cwnd(self) -> int:
        """RFC 3042 limited transmit: cwnd + 2*SMSS on the first two duplicate ACKs; Reno inflation is cc's."""
        if not self.in_recovery and 0 < self.dupacks < DUP_THRESH:
            return self.dupacks * self.c.eff_mss
        return 0

    # ---------------------------------------------------------------- ACK events
    def on_old_ack(self, seg, now: float) -> None:
        """SEG.ACK == SND.UNA: count duplicates and react.

        Without SACK: RFC 5681 2's definition (no data, no SYN/FIN, same window, data outstanding).
        With SACK: RFC 6675 2's, an ACK that SACKs new data (the window may change: the
        application reading at the receiver must not hide a loss).
        """
        c = self.c
        before = self.sacked_bytes() if c.sack_enabled else 0
        self._update_scoreboard(seg)
        self._detect_lost_retransmissions(now)
        if seg.ack != c.snd_una or c.snd_una == c.snd_max or seg.payload or seg.flags & (SYN | FIN):
            return
        if c.persist_at is not None or seg.window == 0:
            return  # an answer to a zero-window probe, not a sign of loss (as BSD: no RTO running)
        if c.sack_enabled and seg.sack:
            is_dup = self.sacked_bytes() > before
        else:
            is_dup = (seg.window << c.snd_wscale) == c.snd_wnd
        if not is_dup:
            return
        c.stats["dupacks_in"] += 1
        self.dupacks += 1
        c._trace("dupack", now, ack=seg.ack, n=self.dupacks, sack=seg.sack)
        if self.in_recovery:
            if not c.sack_enabled:
                c.cc.on_dupack_in_recovery()  # RFC 5681 3.2 step 4: inflate
            return
        if self.dupacks >= DUP_THRESH or (c.sack_enabled and self._is_lost(c.snd_una)):
            self._enter_recovery(now)  # RFC 5681 3.2 / RFC 6675 5 (IsLost(HighACK + 1))
        elif c.tlp_high is not None and self.sacked and seq_ge(self.sacked[-1][1], c.tlp_high):
            self._enter_recovery(now)  # RFC 8985 7.4 / 6.2: the probe, sent last, arrived; the hole before it is lost

    def _enter_recovery(self, now: float) -> None:
        """RFC 6582 3.2 step 2 / RFC 6675 5 (or RFC 5681 3.2 step 2-3)."""
        c = self.c
        guarded = c.cc.partial_ack_recovery or self.after_rto
        if guarded and not seq_gt(c.snd_una, self.recover) and self.recover != c.iss:
            return  # RFC 6582 3.2 step 2 / 4: the ACK does not cover recover: no new fast retransmit
        self.after_rto = False
        self.in_recovery = True
        self.recover = seq_add(c.snd_max, -1)
        self.high_rxt = c.snd_una
        self.rxt_marks.clear()
        self.resend.clear()
        self.fast_retransmits += 1
        c.cc.on_enter_recovery(now, c.flight_size, inflate=not c.sack_enabled)  # RFC 6675 5: pipe, no inflation
        c._trace_cc(now, "fast_retransmit")
        self.rxt_head = True

    def on_new_ack(self, seg, acked: int, now: float) -> None:
        """SND.UNA advanced by ``acked`` octets."""
        c = self.c
        self._update_scoreboard(seg)
        self._detect_lost_retransmissions(now)
        self.dupacks = 0
        if not self.in_recovery:
            c.cc.on_ack(acked, now, c.rtt.srtt, c.flight_size)
            if c.tracer.enabled:
                c._trace_cc(now, "ack")
            return
        if seq_gt(seg.ack, self.recover) or not c.cc.partial_ack_recovery:
            self.in_recovery = False  # RFC 6582 3.2 step 3: full ACK ends recovery (Reno: any new ACK)
            self.rxt_marks.clear()
            self.resend.clear()
            c.cc.on_exit_recovery(now, c.flight_size)
            c._trace_cc(now, "recovery_exit")
            return
        # RFC 6582 3.2 step 3: partial ACK -> resend the first unacknowledged segment, deflate
        if not c.sack_enabled:
            c.cc.on_partial_ack(acked)
            self.rxt_head = True
        c._trace_cc(now, "partial_ack")

    def _detect_lost_retransmissions(self, now: float) -> None:
        """RACK's rule (RFC 8985 6.2) by sequence instead of by clock: once data first sent after a
        retransmission has been SACKed, that retransmission, if its octets are still missing, was
        lost too (absent reordering); the holes are resent again from there instead of waiting
        for the RTO."""
        c = self.c
        marks = self.rxt_marks
        if not marks:
            return
        marks[:] = [m for m in marks if seq_lt(c.snd_una, m[1])]  # forget what is now acknowledged
        if not (self.in_recovery and self.sacked and marks):
            return
        highest = self.sacked[-1][1]
        lost = [m for m in marks if seq_gt(highest, m[2]) and not self._sacked_at(m[0])]
        if not lost:
            return
        self.lost_retransmits += len(lost)
        c._trace("lost_retransmit", now, seqs=[m[0] for m in lost])
        marks[:] = [m for m in marks if m not in lost]
        self.resend.extend((m[0], m[1]) for m in lost)  # only these go again, not every hole above

    def _sacked_at(self, seq: int) -> bool:
        return seq_lt(seq, self.c.snd_una) or any(seq_le(l, seq) and seq_lt(seq, r) for l, r in self.sacked)

    def _mark_retransmission(self, seq: int, sent: int) -> None:
        if sent > 0:
            self.rxt_marks.append([seq, seq_add(seq, sent), self.c.snd_max])

    def on_rto(self, now: float) -> None:
        """RFC 5681 3.1 / RFC 6582 4: after a timeout, resend from SND.UNA in order; no fast retransmit
        until the ACKs pass what was outstanding."""
        c = self.c
        ssthresh = c.cc.ssthresh
        c.cc.on_rto(now, c.flight_size)
        if self.in_recovery:
            c.cc.ssthresh = min(c.cc.ssthresh, ssthresh)  # the loss was already answered (as Linux)
        self.recover = seq_add(c.snd_max, -1)
        self.after_rto = True  # Reno too: dupacks from the go-back-N resends are not a new loss
        self.in_recovery = False
        self.dupacks = 0
        self.sacked.clear()  # RFC 2018 8: after a timeout, ignore SACK state (the receiver may renege)
        self.rxt_head = False
        self.rxt_marks.clear()
        self.resend.clear()
        c.snd_nxt = c.snd_una
        c.resend_why = "rto"

    # ---------------------------------------------------------------- sending
    def retransmit_due(self, now: float) -> None:
        """Before new data: the head after a fast retransmit/partial ACK, then lost SACK holes."""
        c = self.c
        if self.rxt_head:
            self.rxt_head = False
            sent = c.retransmit_range(c.snd_una, now, "sack" if c.sack_enabled else "fast")
            end = seq_add(c.snd_una, sent)
            if seq_gt(end, self.high_rxt):
                self.high_rxt = end
            self._mark_retransmission(c.snd_una, sent)
        if not (self.in_recovery and c.sack_enabled):
            return
        while self.resend and c.cc.cwnd - self.pipe() >= c.eff_mss:
            seq, end = self.resend.pop(0)
            if self._sacked_at(seq):
                continue  # arrived after all (or acknowledged meanwhile)
            sent = c.retransmit_range(seq, now, "sack", limit=seq_diff(end, seq))
            self._mark_retransmission(seq, sent)
        for _ in range(64):  # bounded: each pass resends one segment
            if c.cc.cwnd - self.pipe() < c.eff_mss:
                return
            hole = self._next_hole()
            if hole is None:
                return
            seq, n = hole
            sent = c.retransmit_range(seq, now, "sack", limit=n)
            if not sent:
                return
            self.high_rxt = seq_add(seq, sent)
            self._mark_retransmission(seq, sent)
