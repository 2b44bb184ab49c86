"""Exercise 7: the segment acceptability test (RFC 9293 3.10.7.4, first check). Lab 3.

The reference is the pure function below; today ``Connection._check_sequence`` computes the
same thing inline. Wiring (after the core merge): the core calls ``acceptable`` (moved to
``stack/tcp/seq.py``), and this seam's home moves with it; see docs/exercises.md.
"""
from __future__ import annotations

from types import SimpleNamespace

from .framework import Check, Exercise

MASK = 0xFFFFFFFF


def _in(x: int, low: int, high: int) -> bool:
    """low <= x < high modulo 2**32."""
    return (x - low) & MASK < (high - low) & MASK


def acceptable(seg_seq: int, seg_len: int, rcv_nxt: int, rcv_wnd: int) -> bool:
    """RFC 9293 3.10.7.4 first check: may a segment occupying [seg_seq, seg_seq+seg_len) be accepted?"""
    right = (rcv_nxt + rcv_wnd) & MASK
    if seg_len == 0:
        if rcv_wnd == 0:
            return seg_seq == rcv_nxt  # case 1: SEG.SEQ = RCV.NXT
        return _in(seg_seq, rcv_nxt, right)  # case 2: RCV.NXT =< SEG.SEQ < RCV.NXT+RCV.WND
    if rcv_wnd == 0:
        return False  # case 3: not acceptable
    end = (seg_seq + seg_len - 1) & MASK  # case 4: the first or the last octet lies in the window
    return _in(seg_seq, rcv_nxt, right) or _in(end, rcv_nxt, right)


def reference():
    return SimpleNamespace(acceptable=acceptable)


SKELETON = '''"""Exercise 7 -- is this segment acceptable? (the first check on segment arrival)

Read: RFC 9293 3.10.7.4, "first check sequence number": the table of four cases
      (segment length 0 or > 0, receive window 0 or > 0); RFC 9293 3.4 for modulo-2**32
      arithmetic; RFC 9293 3.3 figure 5 (the receive sequence space).
Lab:  docs/labs/03-flow-control.md, section 2 (the receive window).

All arithmetic is modulo 2**32. SEG.LEN counts the data octets plus one each for SYN and FIN.

Check your work:  tunstack exercise check 7 DIR
"""

MOD = 2**32


def acceptable(seg_seq: int, seg_len: int, rcv_nxt: int, rcv_wnd: int) -> bool:
    """True when the segment [seg_seq, seg_seq + seg_len) is acceptable, per RFC 9293 3.10.7.4:

        Segment Length  Receive Window  Test
        0               0               SEG.SEQ = RCV.NXT
        0               >0              RCV.NXT =< SEG.SEQ < RCV.NXT+RCV.WND
        >0              0               not acceptable
        >0              >0              RCV.NXT =< SEG.SEQ < RCV.NXT+RCV.WND
                                        or RCV.NXT =< SEG.SEQ+SEG.LEN-1 < RCV.NXT+RCV.WND
    """
    # TODO: the four cases, every comparison modulo 2**32.
    raise NotImplementedError("acceptable")
'''


def _rows(t, part, rows) -> None:
    for seq, length, nxt, wnd, want in rows:
        t.expect(f"acceptable(seg_seq={seq}, seg_len={length}, rcv_nxt={nxt}, rcv_wnd={wnd})",
                 part.acceptable(seq, length, nxt, wnd), want)


def check_case1(part, t, o):
    """RFC 9293 3.10.7.4 case 1: length 0, window 0: only SEG.SEQ = RCV.NXT."""
    _rows(t, part, [(1000, 0, 1000, 0, True), (1001, 0, 1000, 0, False), (999, 0, 1000, 0, False)])


def check_case2(part, t, o):
    """RFC 9293 3.10.7.4 case 2: length 0, window > 0: RCV.NXT =< SEG.SEQ < RCV.NXT+RCV.WND (right edge excluded)."""
    _rows(t, part, [(1000, 0, 1000, 100, True), (1099, 0, 1000, 100, True), (1100, 0, 1000, 100, False),
                    (999, 0, 1000, 100, False)])


def check_case3(part, t, o):
    """RFC 9293 3.10.7.4 case 3: data into a zero window is not acceptable, even at RCV.NXT."""
    _rows(t, part, [(1000, 1, 1000, 0, False), (1000, 100, 1000, 0, False), (999, 2, 1000, 0, False)])


def check_case4(part, t, o):
    """RFC 9293 3.10.7.4 case 4: the first OR the last octet in the window; the edges exactly."""
    _rows(t, part, [(1000, 10, 1000, 100, True),     # starts at RCV.NXT
                    (1099, 10, 1000, 100, True),     # starts at the last octet of the window
                    (1100, 10, 1000, 100, False),    # starts at the right edge: outside
                    (990, 10, 1000, 100, False),     # ends at RCV.NXT-1: all old
                    (990, 11, 1000, 100, True),      # last octet at RCV.NXT: partly new
                    (950, 200, 1000, 100, False)])   # covers the window, neither end inside


def check_wraparound(part, t, o):
    """RFC 9293 3.4: the same tests when the window straddles 2**32."""
    top = 2**32
    _rows(t, part, [(top - 10, 0, top - 10, 100, True), (5, 0, top - 10, 100, True),
                    (89, 0, top - 10, 100, True), (90, 0, top - 10, 100, False),
                    (top - 20, 11, top - 10, 100, True), (top - 20, 10, top - 10, 100, False),
                    (80, 20, top - 10, 100, True), (top - 11, 0, top - 10, 100, False)])


EXERCISE = Exercise(
    number=7, slug="acceptable", title="Segment acceptability (the first check)", lab="docs/labs/03-flow-control.md",
    clauses=["RFC 9293 3.10.7.4 (first check, the four cases)", "RFC 9293 3.3 figure 5", "RFC 9293 3.4"],
    filename="acceptable.py", names=["acceptable"], skeleton=SKELETON, reference=reference, wired=False,
    wiring="after the core merge: Connection._check_sequence computes `ok = acceptable(seq, seg_len, "
           "self.rcv_nxt, rcv_wnd)` (one line replacing its if/elif/else); then a packet scenario and the "
           "end-to-end run grade it inside the stack",
    checks=[
        Check("case1_zero_len_zero_window", "unit", check_case1.__doc__, check_case1),
        Check("case2_zero_len_open_window", "unit", check_case2.__doc__, check_case2),
        Check("case3_data_zero_window", "unit", check_case3.__doc__, check_case3),
        Check("case4_data_open_window", "unit", check_case4.__doc__, check_case4),
        Check("wraparound", "unit", check_wraparound.__doc__, check_wraparound),
    ],
)
