"""CUBIC (RFC 9438): cwnd grows as a cubic function of the time since the last loss.

Windows in the RFC's formulas are in segments and times in seconds; this class
keeps ``cwnd``/``ssthresh`` in bytes like every algorithm and its CUBIC state
(``w_max``, ``cwnd_epoch``, ``w_est``, ``cwnd_prior``) in segments, named after the
RFC's variables.

* Window increase (4.2): W_cubic(t) = C*(t - K)**3 + W_max with
  K = cbrt((W_max - cwnd_epoch) / C); t counts from the start of the current
  congestion-avoidance stage (``t_epoch``). On each ACK, target = W_cubic(t + RTT)
  clamped to [cwnd, 1.5*cwnd], and cwnd grows by (target - cwnd)/cwnd per segment
  ACKed (4.4 concave, 4.5 convex). When cwnd_epoch = beta*W_max (right after a
  loss), K = cbrt(W_max*(1 - beta)/C).
* Reno-friendly region (4.3): W_est starts at cwnd_epoch and grows by
  alpha_cubic * segments_acked / cwnd, alpha_cubic = 3*(1-beta)/(1+beta) (1 once
  W_est >= cwnd_prior). If W_cubic(t) < W_est, cwnd follows W_est.
* Multiplicative decrease (4.6) on fast retransmit and RTO:
  ssthresh = max(cwnd*beta, 2*SMSS), beta = 0.7. We reduce from cwnd as Linux and
  Windows do, not from flight_size; RFC 9438 4.6 then requires that cwnd not grow
  while application-limited, which ``is_cwnd_limited`` provides.
* Fast convergence (4.7): a loss below the previous W_max sets
  W_max = cwnd*(1+beta)/2 instead of cwnd. On by default (Linux's default);
  the RFC says to disable it for a lone flow: ``Cubic(..., fast_convergence=False)``.
* Timeout (4.8): the first congestion-avoidance stage after an RTO uses K = 0 and
  W_max = cwnd_epoch; so does a stage entered without any loss (4.10).
* Slow start (4.10): Reno's (RFC 5681 with ABC); no HyStart++.
* Application-limited (5.8): t excludes idle periods: ``on_idle`` moves
  ``t_epoch`` forward by the idle time (as Linux does on CA_EVENT_TX_START).

Implementation choices, as in Linux: the epoch starts at the first ACK in
congestion avoidance (``t_epoch = now``); growth is per segment ACKed rather than
per ACK, so delayed ACKs do not halve it. Fast recovery is NewReno's
(``partial_ack_recovery = True``); RFC 9438 4.2 leaves recovery unchanged.
"""
from __future__ import annotations

import math

from .base import CongestionControl

C = 0.4  # RFC 9438 5.1: C SHOULD be 0.4 (segments / second**3)
BETA_CUBIC = 0.7  # RFC 9438 4.6: beta_cubic SHOULD be 0.7


def alpha_cubic(beta: float = BETA_CUBIC) -> float:
    """RFC 9438 4.3: alpha_cubic = 3 * (1 - beta) / (1 + beta)."""
    return 3 * (1 - beta) / (1 + beta)


def cubic_k(w_max: float, cwnd_epoch: float, c: float = C) -> float:
    """RFC 9438 4.2 eq. 2: K = cbrt((W_max - cwnd_epoch) / C), in seconds (0 if at or above W_max)."""
    return math.cbrt(max(w_max - cwnd_epoch, 0.0) / c)


class Cubic(CongestionControl):
    name = "cubic"
    partial_ack_recovery = True  # NewReno recovery: RFC 9438 4.2 does not change it
    C = C
    BETA = BETA_CUBIC

    def __init__(
        self, mss: int, now: float, initial_window: int | None = None, *, fast_convergence: bool = True
    ) -> None:
        super().__init__(mss, now, initial_window)
        self.fast_convergence = fast_convergence  # RFC 9438 4.7
        self.w_max: float | None = None  # segments; None: no loss yet, or just after an RTO
        self.k = 0.0  # seconds
        self.t_epoch: float | None = None  # None: no congestion-avoidance stage running
        self.cwnd_epoch: float | None = None
        self.w_est: float | None = None
        self.cwnd_prior: float | None = None
        self._frac = 0.0  # growth below one byte, carried between ACKs...
        self._frac_cwnd = -1  # ...valid only while cwnd is still the value it was computed for

    @property
    def cwnd_segments(self) -> float:
        """cwnd in segments, including growth below one byte not yet in ``cwnd``."""
        frac = self._frac if self._frac_cwnd == self.cwnd else 0.0
        return (self.cwnd + frac) / self.mss

    def w_cubic(self, t: float) -> float:
        """RFC 9438 4.2 eq. 1: W_cubic(t) = C*(t - K)**3 + W_max, in segments."""
        return self.C * (t - self.k) ** 3 + self.w_max

    # ----------------------------------------------------------------- growth

    def _slow_start(self, acked: int) -> int:
        self.t_epoch = None  # RFC 9438 4.10: slow start; CA will start a new stage
        return super()._slow_start(acked)

    def _congestion_avoidance(self, acked: int, now: float, rtt: float | None) -> None:
        if self.t_epoch is None:
            self._start_epoch(now)
        w = self.cwnd_segments
        segments_acked = acked / self.mss  # RFC 9438 4.1: bytes ACKed in units of SMSS
        t = now - self.t_epoch  # RFC 9438 4.2: t = t_current - t_epoch
        self._update_w_est(segments_acked, w)
        if self.w_cubic(t) < self.w_est:  # RFC 9438 4.3: Reno-friendly region
            new_w = max(w, self.w_est)  # follow W_est, never lowering cwnd (as Linux)
        else:  # RFC 9438 4.4 concave (cwnd < W_max) / 4.5 convex: same increment
            target = self._target(t, rtt or 0.0, w)
            new_w = min(w + (target - w) / w * segments_acked, target)  # a stretch ACK stops at target
        self._set_cwnd_segments(new_w)

    def _start_epoch(self, now: float) -> None:
        w = self.cwnd / self.mss
        self.t_epoch, self.cwnd_epoch = now, w
        if self.w_max is None or self.w_max < w:
            self.w_max = w  # RFC 9438 4.8 (after RTO) / 4.10 (no loss yet): K = 0, W_max = cwnd_epoch
        self.k = cubic_k(self.w_max, w, self.C)  # RFC 9438 4.2 eq. 2
        self.w_est = w  # RFC 9438 4.3: W_est = cwnd_epoch at the start of the stage
        if self.cwnd_prior is None:
            self.cwnd_prior = w  # RFC 9438 4.10: first slow start ended without loss

    def _update_w_est(self, segments_acked: float, w: float) -> None:
        alpha = 1.0 if self.w_est >= self.cwnd_prior else alpha_cubic(self.BETA)  # RFC 9438 4.3
        self.w_est += alpha * segments_acked / w  # RFC 9438 4.3 eq. 4

    def _target(self, t: float, rtt: float, w: float) -> float:
        return min(max(self.w_cubic(t + rtt), w), 1.5 * w)  # RFC 9438 4.2: clamp to [cwnd, 1.5*cwnd]

    def _set_cwnd_segments(self, w: float) -> None:
        exact = w * self.mss
        self.cwnd = self._frac_cwnd = int(exact)
        self._frac = exact - self.cwnd

    # --------------------------------------------------------------- decrease

    def _ssthresh_after_loss(self, in_flight: int) -> int:
        """RFC 9438 4.6/4.7: remember W_max, ssthresh = max(cwnd*beta, 2*SMSS)."""
        w = self.cwnd / self.mss
        self.cwnd_prior = w  # RFC 9438 4.6: save cwnd
        if self.fast_convergence and self.w_max is not None and w < self.w_max:
            self.w_max = w * (1 + self.BETA) / 2  # RFC 9438 4.7: release bandwidth faster
        else:
            self.w_max = w  # RFC 9438 4.7: remember cwnd before the reduction
        self.t_epoch = None
        return max(round(self.cwnd * self.BETA), 2 * self.mss)  # RFC 9438 4.6

    def _on_rto(self, now: float, in_flight: int) -> None:
        super()._on_rto(now, in_flight)  # ssthresh via _ssthresh_after_loss, once per loss
        self.w_max = None  # RFC 9438 4.8: next stage uses K = 0, W_max = cwnd_epoch
        self.t_epoch = None

    def on_idle(self, now: float, idle_time: float, rto: float) -> None:
        super().on_idle(now, idle_time, rto)
        if self.t_epoch is not None:
            self.t_epoch += idle_time  # RFC 9438 5.8: t excludes application-limited periods

    def state_dict(self) -> dict:
        return {
            **super().state_dict(),
            "w_max": self.w_max,
            "k": self.k,
            "t_epoch": self.t_epoch,
            "cwnd_epoch": self.cwnd_epoch,
            "w_est": self.w_est,
            "cwnd_prior": self.cwnd_prior,
            "fast_convergence": self.fast_convergence,
        }
