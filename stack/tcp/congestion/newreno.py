"""NewReno (RFC 6582): Reno's growth and decrease, NewReno's fast recovery.

Window growth, ssthresh = max(FlightSize/2, 2*SMSS) and the RTO response are those
of Reno. The difference is in loss recovery, which the connection runs: with
``partial_ack_recovery = True`` it keeps fast recovery going until an ACK covers
``recover`` (the highest sequence sent when loss was detected). Each *partial* ACK
retransmits the next hole and calls ``on_partial_ack`` (deflate by the ACKed
bytes, add back one SMSS); the *full* ACK calls ``on_exit_recovery``, which sets
cwnd = min(ssthresh, max(FlightSize, SMSS) + SMSS) (RFC 6582 3.2 step 3, option 1)
so that leaving recovery does not release a burst. Several losses in one window
are thus repaired in one recovery episode, one per RTT.
"""
from __future__ import annotations

from .base import CongestionControl


class NewReno(CongestionControl):
    name = "newreno"
    partial_ack_recovery = True  # RFC 6582 3.2 step 3: partial ACKs keep recovery going
