"""The congestion-control interface and the Reno-family machinery it shares.

Congestion control decides *how much* may be in flight: ``cwnd`` and ``ssthresh``,
in bytes. It does not decide *what* to send: detecting loss, counting duplicate
ACKs, the ``recover`` point of NewReno, the SACK scoreboard and every retransmission
belong to loss recovery (``stack/tcp/recovery.py``), which owns the controller and tells it
what happened, one hook per event. The per-packet hooks are the interface any algorithm
implements (pacing or BBR would start from them):

    a segment left (new data or resent)  on_packet_sent(now, seq, length, in_flight)
    ACK of new data, not in recovery     on_ack_sample(RateSample(now, delivered, in_flight, srtt, rtt))
    loss detected (fast retransmit)      on_congestion_event(now, in_flight, sack=...)
    retransmission timeout               on_rto(now, in_flight, during_recovery=...)
    about to send after idling           on_idle(now, idle_time, rto)
    MSS negotiated, PMTU changed         set_mss(mss)
    switched to (TCP_CONGESTION)         inherit(previous)

The Reno family implements them with these (also called directly by tests and labs):

    ACK of new data, not in recovery   on_ack(acked, now, rtt, in_flight)
    third duplicate ACK                on_enter_recovery(now, in_flight)
    each further duplicate ACK         on_dupack_in_recovery()
    partial ACK (NewReno, CUBIC)       on_partial_ack(acked)
    full ACK (Reno: first new ACK)     on_exit_recovery(now, in_flight)

``in_recovery`` here is the window's phase, for these checks and ``phase``; loss recovery owns
the decision to enter and leave (``LossRecovery.in_recovery``).

``in_flight`` is always FlightSize (RFC 5681 2): bytes sent and not yet cumulatively
acknowledged (SND.NXT - SND.UNA) at the moment of the call; in ``on_ack`` and
``on_exit_recovery`` that is *after* the ACK moved SND.UNA, before anything new is sent.
``now`` is virtual time in seconds; nothing here reads a clock.

Methods raise ``RuntimeError`` when called out of order (for instance
``on_dupack_in_recovery`` outside recovery): that is a bug in the caller.
"""
from __future__ import annotations

from typing import NamedTuple

INFINITE_SSTHRESH = 0x7FFFFFFF  # RFC 5681 3.1: initial ssthresh "arbitrarily high" (Linux: same value)


def rfc6928_initial_window(mss: int) -> int:
    """IW in bytes per RFC 6928 2: min(10*MSS, max(2*MSS, 14600))."""
    return min(10 * mss, max(2 * mss, 14600))


def rfc5681_initial_window(mss: int) -> int:
    """IW in bytes per RFC 5681 3.1 (the same rule as RFC 3390)."""
    if mss > 2190:
        return 2 * mss  # RFC 5681 3.1: SMSS > 2190 -> at most 2 segments
    if mss > 1095:
        return 3 * mss  # RFC 5681 3.1: 1095 < SMSS <= 2190 -> at most 3 segments
    return 4 * mss  # RFC 5681 3.1: SMSS <= 1095 -> at most 4 segments


class RateSample(NamedTuple):
    """What one ACK of new data tells the controller."""
    now: float
    delivered: int            # octets newly acknowledged (cumulatively)
    in_flight: int            # FlightSize after the ACK moved SND.UNA
    srtt: float | None        # smoothed RTT (seconds), None before the first sample
    rtt: float | None = None  # the RTT sample this ACK gave, if any


class CongestionControl:
    """Shared Reno-family behaviour. Subclasses override growth and decrease.

    Class attributes the connection (or a lab) may read or override:

    * ``partial_ack_recovery``: True if loss recovery should stay in fast recovery
      on a partial ACK and call ``on_partial_ack`` (RFC 6582 NewReno); False if it
      should leave recovery on the first ACK of new data (RFC 5681 Reno).
    * ``abc_limit``: L of RFC 3465 2.2 in segments (2); after an RTO it is 1 (2.3).
    * ``grow_only_when_cwnd_limited``: do not grow cwnd on ACKs that arrive while
      the sender was not using its window (see ``is_cwnd_limited``).
    """

    name = "base"
    partial_ack_recovery = True
    abc_limit = 2  # RFC 3465 2.2: L = 2*SMSS
    grow_only_when_cwnd_limited = True

    def __init__(self, mss: int, now: float, initial_window: int | None = None) -> None:
        if mss <= 0:
            raise ValueError(f"mss must be positive, got {mss}")
        if initial_window is not None and initial_window < 1:
            raise ValueError(f"initial_window is in segments and must be >= 1, got {initial_window}")
        self.mss = mss
        self.initial_window_segments = initial_window
        self.initial_window = self._initial_window()
        self.cwnd = self.initial_window
        self.ssthresh = INFINITE_SSTHRESH
        self.in_recovery = False
        self._bytes_acked = 0  # RFC 3465 2.1: byte counter for congestion avoidance
        self._after_rto = False  # RFC 3465 2.3: L = 1*SMSS in the slow start after an RTO
        self._rto_repeated = False  # RFC 5681 3.1: next RTO retransmits the same segment
        self._untouched = True  # no ACK or loss yet: set_mss recomputes IW

    def _initial_window(self) -> int:
        """IW in bytes: RFC 5681 3.1 by default; ``initial_window`` segments when configured.

        Linux starts at 10 segments (RFC 6928, experimental; ``ip route ... initcwnd``);
        configure ``TcpConfig(initial_window=10)`` (``tunstack serve --iw 10``) to compare.
        """
        if self.initial_window_segments is not None:
            return self.initial_window_segments * self.mss  # configured, like Linux `initcwnd`
        return rfc5681_initial_window(self.mss)  # RFC 5681 3.1

    # ------------------------------------------------------------ per-packet hooks
    def on_packet_sent(self, now: float, seq: int, length: int, in_flight: int) -> None:
        """A segment left (``in_flight`` counts it). Reno-family: nothing to do."""

    def on_ack_sample(self, rs: RateSample) -> None:
        """ACK of new data outside recovery: Reno-family growth (slow start or congestion avoidance)."""
        self.on_ack(rs.delivered, rs.now, rs.srtt, rs.in_flight)

    def on_congestion_event(self, now: float, in_flight: int, *, sack: bool = False) -> None:
        """Loss detected by duplicate ACKs or SACK: fast recovery (RFC 5681 3.2; RFC 6675 5 with SACK)."""
        self.on_enter_recovery(now, in_flight, inflate=not sack)

    def inherit(self, previous: "CongestionControl") -> None:
        """TCP_CONGESTION switched to this algorithm mid-connection: keep the window it had."""
        self.cwnd, self.ssthresh = previous.cwnd, previous.ssthresh
        self._untouched = False  # keep the window across a later set_mss

    # ------------------------------------------------------------ growth (RFC 5681 3.1)

    def on_ack(self, acked: int, now: float, rtt: float | None, in_flight: int) -> None:
        """New data cumulatively ACKed outside recovery: slow start or congestion avoidance.

        ``rtt`` is the connection's smoothed RTT (seconds) or None; only CUBIC uses it.
        """
        self._require(not self.in_recovery, "on_ack during recovery: use on_partial_ack/on_exit_recovery")
        self._untouched = False
        self._rto_repeated = False  # new data ACKed: a later RTO is a new loss event
        if acked <= 0 or not self.is_cwnd_limited(acked, in_flight):
            return
        if self.cwnd < self.ssthresh:  # RFC 5681 3.1: cwnd < ssthresh -> slow start
            acked = self._slow_start(acked)
        if self.cwnd >= self.ssthresh:  # RFC 5681 3.1: cwnd >= ssthresh -> congestion avoidance
            self._after_rto = False
            if acked > 0:
                self._congestion_avoidance(acked, now, rtt)

    def is_cwnd_limited(self, acked: int, in_flight: int) -> bool:
        """Was the sender using its window when this ACK's data was outstanding?

        The flight before the ACK was ``in_flight + acked``; if one more full segment
        would still have fit under cwnd, the sender was application- or
        receive-window-limited and the ACK says nothing about the path's capacity.
        RFC 5681 grows cwnd regardless; RFC 7661, RFC 9438 5.8 and Linux
        (``tcp_is_cwnd_limited``) do not, and RFC 9438 4.6 requires it of a CUBIC
        that reduces from cwnd. Set ``grow_only_when_cwnd_limited = False`` for
        textbook RFC 5681.
        """
        if not self.grow_only_when_cwnd_limited:
            return True
        return in_flight + acked + self.mss > self.cwnd

    def _slow_start(self, acked: int) -> int:
        """Grow by min(acked, L), stopping at ssthresh. Returns the credit left for CA."""
        limit = (1 if self._after_rto else self.abc_limit) * self.mss  # RFC 3465 2.2/2.3
        credit = min(acked, limit)  # RFC 5681 3.1 eq. 2 with ABC (RFC 3465 2.2)
        if self.cwnd + credit < self.ssthresh:
            self.cwnd += credit
            return 0
        used = self.ssthresh - self.cwnd  # cap at ssthresh; the rest of the credit counts in CA (Linux)
        self.cwnd = self.ssthresh
        return credit - used

    def _congestion_avoidance(self, acked: int, now: float, rtt: float | None) -> None:
        """+1 SMSS per cwnd of ACKed bytes (RFC 5681 3.1, byte counting of RFC 3465 2.1)."""
        self._bytes_acked += acked
        if self._bytes_acked >= self.cwnd:
            self._bytes_acked -= self.cwnd  # RFC 3465 2.1: reduce by cwnd, then add SMSS
            self.cwnd += self.mss

    # ------------------------------------------------ fast retransmit / fast recovery

    def on_enter_recovery(self, now: float, in_flight: int, *, inflate: bool = True) -> None:
        """Third duplicate ACK: set ssthresh, then cwnd = ssthresh + 3*SMSS.

        ``inflate=False`` gives cwnd = ssthresh, for SACK-based recovery (RFC 6675 5
        step 4.2), which counts ``pipe`` from the scoreboard instead of inflating.
        """
        self._require(not self.in_recovery, "on_enter_recovery while already in recovery")
        self._untouched = False
        self.in_recovery = True
        self.ssthresh = self._ssthresh_after_loss(in_flight)  # RFC 5681 3.2 step 2
        self.cwnd = self.ssthresh + 3 * self.mss if inflate else self.ssthresh  # RFC 5681 3.2 step 3
        self._bytes_acked = 0
        self._after_rto = False

    def _ssthresh_after_loss(self, in_flight: int) -> int:
        return max(in_flight // 2, 2 * self.mss)  # RFC 5681 3.1 eq. 4

    def on_dupack_in_recovery(self) -> None:
        """Each further duplicate ACK: one segment left the network."""
        self._require(self.in_recovery, "on_dupack_in_recovery outside recovery")
        self.cwnd += self.mss  # RFC 5681 3.2 step 4: inflate by SMSS

    def on_partial_ack(self, acked: int) -> None:
        """NewReno partial ACK: deflate by the newly ACKed bytes, add back one SMSS."""
        self._require(self.in_recovery, "on_partial_ack outside recovery")
        self.cwnd -= acked  # RFC 6582 3.2 step 3: deflate by the amount of new data ACKed
        if acked >= self.mss:
            self.cwnd += self.mss  # RFC 6582 3.2 step 3: ...add back SMSS if >= SMSS was ACKed
        self.cwnd = max(self.cwnd, self.mss)  # never below one segment (left implicit by the RFC)

    def on_exit_recovery(self, now: float, in_flight: int) -> None:
        """Full ACK: leave fast recovery without a burst."""
        self._require(self.in_recovery, "on_exit_recovery outside recovery")
        self.in_recovery = False
        self._bytes_acked = 0
        # RFC 6582 3.2 step 3, option (1): cwnd = min(ssthresh, max(FlightSize, SMSS) + SMSS)
        self.cwnd = min(self.ssthresh, max(in_flight, self.mss) + self.mss)

    # ------------------------------------------------------------------ timeout, idle

    def on_rto(self, now: float, in_flight: int, *, during_recovery: bool = False) -> None:
        """Retransmission timeout: ssthresh per eq. 4 (once per loss), cwnd = LW = 1 SMSS.
        ``during_recovery``: the loss was already answered by fast recovery, so ssthresh does not
        rise above its value then (as Linux)."""
        before = self.ssthresh
        self._on_rto(now, in_flight)
        if during_recovery:
            self.ssthresh = min(self.ssthresh, before)

    def _on_rto(self, now: float, in_flight: int) -> None:
        self._untouched = False
        self.in_recovery = False  # an RTO ends any fast recovery
        if not self._rto_repeated:  # RFC 5681 3.1: ssthresh held constant on repeated RTOs
            self.ssthresh = self._ssthresh_after_loss(in_flight)
            self._rto_repeated = True
        self.cwnd = self.mss  # RFC 5681 3.1: loss window LW = 1 full-sized segment
        self._bytes_acked = 0
        self._after_rto = True

    def on_idle(self, now: float, idle_time: float, rto: float) -> None:
        """About to send after ``idle_time`` seconds without sending.

        RFC 5681 4.1 restart window: if idle longer than one RTO, cwnd = min(IW, cwnd).
        (Not RFC 7661, which preserves cwnd for rate-limited senders; Linux, with
        ``tcp_slow_start_after_idle``, halves cwnd per idle RTO instead.)
        """
        if idle_time > rto:
            self.cwnd = min(self.initial_window, self.cwnd)  # RFC 5681 4.1: RW = min(IW, cwnd)
            self._bytes_acked = 0

    def set_mss(self, mss: int) -> None:
        """The SMSS changed (negotiation, PMTU). Before any ACK: cwnd becomes the new
        IW. Afterwards cwnd and a finite ssthresh keep their size in segments, as
        Linux does by counting cwnd in packets."""
        if mss <= 0:
            raise ValueError(f"mss must be positive, got {mss}")
        old, self.mss = self.mss, mss
        self.initial_window = self._initial_window()
        self._bytes_acked = 0
        if self._untouched:
            self.cwnd = self.initial_window
            return
        self.cwnd = max(self.cwnd * mss // old, mss)
        if self.ssthresh != INFINITE_SSTHRESH:
            self.ssthresh = max(self.ssthresh * mss // old, 2 * mss)

    # ------------------------------------------------------------------ observability

    @property
    def phase(self) -> str:
        if self.in_recovery:
            return "recovery"
        return "slow_start" if self.cwnd < self.ssthresh else "congestion_avoidance"

    def state_dict(self) -> dict:
        """JSON-ready values for trace events and plots."""
        return {
            "algorithm": self.name,
            "cwnd": self.cwnd,
            "ssthresh": self.ssthresh,
            "mss": self.mss,
            "phase": self.phase,
        }

    @staticmethod
    def _require(condition: bool, message: str) -> None:
        if not condition:
            raise RuntimeError(message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(cwnd={self.cwnd}, ssthresh={self.ssthresh}, mss={self.mss})"
