"""Exercise 8: the sender's usable window (RFC 5681 2 and 3.1, RFC 9293 3.8.6.2.1). Lab 3.

Wired after the core merge: the sender asks ``usable_window`` how much it may send now.
"""
from __future__ import annotations

from types import SimpleNamespace

from .framework import Check, Exercise

MASK = 0xFFFFFFFF


def usable_window(snd_una: int, snd_nxt: int, snd_wnd: int, cwnd: int) -> int:
    """Bytes that may be sent now: min(SND.WND, cwnd) minus what is in flight, never below 0."""
    flight = (snd_nxt - snd_una) & MASK  # RFC 5681 2: FlightSize = SND.NXT - SND.UNA (mod 2**32)
    window = min(snd_wnd, cwnd)  # RFC 5681 3.1: never more than min(cwnd, rwnd) outstanding
    return max(0, window - flight)  # RFC 9293 3.8.6.2.1: usable window U = SND.UNA + SND.WND - SND.NXT


def reference():
    return SimpleNamespace(usable_window=usable_window)


SKELETON = '''"""Exercise 8 -- the sender's usable window: how many bytes may go out now?

Read: RFC 9293 3.8.6.2.1 (the usable window U = SND.UNA + SND.WND - SND.NXT);
      RFC 5681 2 (FlightSize) and 3.1 ("a TCP MUST NOT send data with a sequence number
      higher than the sum of the highest acknowledged sequence number and the minimum of
      cwnd and rwnd"); RFC 9293 3.4 (sequence numbers are modulo 2**32).
Lab:  docs/labs/03-flow-control.md (the peer's window) and docs/labs/02-loss-and-retransmission.md (cwnd).

Check your work:  tunstack exercise check 8 DIR
"""

MOD = 2**32


def usable_window(snd_una: int, snd_nxt: int, snd_wnd: int, cwnd: int) -> int:
    """Return how many new bytes may be sent now (an int >= 0).

    snd_una: oldest unacknowledged sequence number; snd_nxt: next sequence number to send
    (both modulo 2**32); snd_wnd: the peer's advertised window (bytes); cwnd: the
    congestion window (bytes).
    """
    # TODO 1: bytes in flight (mind the wrap).
    # TODO 2: the window that limits us.
    # TODO 3: what is left of it (never negative).
    raise NotImplementedError("usable_window")
'''


def _rows(t, part, rows) -> None:
    for una, nxt, wnd, cwnd, want in rows:
        t.expect(f"usable_window(snd_una={una}, snd_nxt={nxt}, snd_wnd={wnd}, cwnd={cwnd})",
                 part.usable_window(una, nxt, wnd, cwnd), want)


def check_nothing_in_flight(part, t, o):
    """RFC 5681 3.1: with nothing outstanding, min(cwnd, rwnd) may be sent."""
    _rows(t, part, [(1000, 1000, 65535, 14600, 14600), (1000, 1000, 8000, 14600, 8000)])


def check_in_flight(part, t, o):
    """RFC 9293 3.8.6.2.1: what is in flight uses up the window, byte for byte."""
    _rows(t, part, [(1000, 5000, 65535, 14600, 10600), (1000, 1001, 10, 100, 9), (1000, 1010, 10, 100, 0)])


def check_cwnd_limits(part, t, o):
    """RFC 5681 3.1: the congestion window limits even when the peer offers more."""
    _rows(t, part, [(0, 2920, 1_000_000, 4380, 1460), (0, 0, 1_000_000, 1460, 1460)])


def check_never_negative(part, t, o):
    """RFC 9293 3.8.6.2.1: the peer shrank its window (or cwnd fell) below what is in flight: 0, not negative."""
    _rows(t, part, [(1000, 9000, 4000, 65535, 0), (1000, 9000, 65535, 2920, 0), (1000, 1000, 0, 14600, 0)])


def check_wraparound(part, t, o):
    """RFC 9293 3.4: SND.NXT has wrapped past 0 while SND.UNA has not."""
    top = 2**32
    _rows(t, part, [(top - 1000, 1000, 65535, 14600, 12600), (top - 100, top - 100, 5000, 14600, 5000),
                    (top - 1, 0, 2, 100, 1)])


EXERCISE = Exercise(
    number=8, slug="window", title="The sender's usable window", lab="docs/labs/03-flow-control.md",
    clauses=["RFC 9293 3.8.6.2.1", "RFC 5681 2 (FlightSize), 3.1", "RFC 9293 3.4"],
    filename="window.py", names=["usable_window"], skeleton=SKELETON, reference=reference, wired=False,
    wiring="after the core merge: the sender's output path asks usable_window(snd_una, snd_nxt, snd_wnd, cwnd) "
           "how much it may send (one call site); then the end-to-end run grades it inside the stack",
    checks=[
        Check("nothing_in_flight", "unit", check_nothing_in_flight.__doc__, check_nothing_in_flight),
        Check("in_flight_uses_window", "unit", check_in_flight.__doc__, check_in_flight),
        Check("cwnd_limits", "unit", check_cwnd_limits.__doc__, check_cwnd_limits),
        Check("never_negative", "unit", check_never_negative.__doc__, check_never_negative),
        Check("wraparound", "unit", check_wraparound.__doc__, check_wraparound),
    ],
)
