"""Reno (RFC 5681): slow start, congestion avoidance, fast retransmit, fast recovery.

Growth and decrease are the shared Reno-family rules of ``base``. What makes it
Reno rather than NewReno is loss recovery, which lives in the connection: with
``partial_ack_recovery = False`` the connection leaves fast recovery on the first
ACK of new data (RFC 5681 3.2 step 6) and calls ``on_exit_recovery``, which
deflates cwnd to ssthresh. A second loss in the same window then needs a new
round of three duplicate ACKs, or an RTO.
"""
from __future__ import annotations

from .base import CongestionControl


class Reno(CongestionControl):
    name = "reno"
    partial_ack_recovery = False  # RFC 5681 3.2 step 6: first new ACK ends recovery

    def on_exit_recovery(self, now: float, in_flight: int) -> None:
        """First ACK of new data: deflate the window."""
        self._require(self.in_recovery, "on_exit_recovery outside recovery")
        self.in_recovery = False
        self._bytes_acked = 0
        self.cwnd = self.ssthresh  # RFC 5681 3.2 step 6: cwnd = ssthresh
