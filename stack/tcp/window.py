"""The sender's usable window: how many new octets may go out now (RFC 9293 3.8.6.2.1, RFC 5681 3.1).

``ConnectionOutput._send_one`` (output.py) asks it outside SACK recovery; exercise 8 replaces it.
"""
from __future__ import annotations

from .seq import MASK


def usable_window(snd_una: int, snd_nxt: int, snd_wnd: int, cwnd: int) -> int:
    """Bytes that may be sent now: min(SND.WND, cwnd) minus what is in flight, never below 0."""
    flight = (snd_nxt - snd_una) & MASK  # RFC 5681 2: FlightSize = SND.NXT - SND.UNA (mod 2**32)
    window = min(snd_wnd, cwnd)  # RFC 5681 3.1: never more than min(cwnd, rwnd) outstanding
    return max(0, window - flight)  # RFC 9293 3.8.6.2.1: usable window U = SND.UNA + SND.WND - SND.NXT
