"""Exercise 7: the segment acceptability test (RFC 9293 3.10.7.4, first check). Lab 3.

The reference is the stack's own ``stack.tcp.seq.acceptable``, which
``Connection._check_sequence`` (stack/tcp/input.py) calls for every arriving segment: a
student's part installed through the seam decides what the stack accepts.
"""
from __future__ import annotations

from types import SimpleNamespace

from ..tcp.config import TcpConfig
from ..tcp.seq import acceptable
from .framework import Check, Exercise
from .scenarios import Peer, transfer


def reference():
    return SimpleNamespace(acceptable=acceptable)


def replacements(part) -> dict:
    return {"acceptability.acceptable": part.acceptable}


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


def check_window_edges_through_stack(part, t, o):
    """RFC 9293 3.10.7.4: with your test in the stack, a segment that starts at the right edge of the
    receive window is answered with an ACK (RCV.NXT) and not delivered; one at RCV.NXT is delivered."""
    from .seams import swapped
    iss, irs = 5000, 9000
    config = TcpConfig(rcvbuf=2000, window_scaling=False, timestamps=False, sack=False)
    with swapped({} if o["part_is_reference"] else replacements(part)):
        p = Peer(t, iss=iss, config=config)
        lst = p.listen()
        p.send("S", irs)
        out = p.take()
        t.expect("the stack answers the SYN with one segment", len(out), 1)
        win = out[0][1].window if out else 0
        p.send("A", irs + 1, iss + 1)
        conn = lst.accept()
        p.send("PA", irs + 1 + win, iss + 1, b"x" * 10, note="starts at RCV.NXT+RCV.WND: outside")
        t.expect("(ACK bit, ack) of what the stack answers", [(bool(s.flags & 0x10), s.ack) for _, s, _ in p.take()],
                 [(True, irs + 1)])
        t.expect("bytes delivered to the application", conn.recv(100, p.now) if conn else None, b"")
        p.send("PA", irs + 1, iss + 1, b"y" * 10, note="at RCV.NXT")
        p.advance_to(0.5)
        t.expect("bytes delivered after a segment at RCV.NXT", conn.recv(100, p.now) if conn else None, b"y" * 10)


def check_transfer_under_loss(part, t, o):
    """End to end: a byte-exact transfer through 5 % loss each way (duplicates and retransmissions
    arrive outside the window all the time) with your test deciding what the receiver accepts."""
    from .seams import swapped
    with swapped({} if o["part_is_reference"] else replacements(part)):
        transfer(t, o["e2e_bytes"])


EXERCISE = Exercise(
    number=7, slug="acceptable", title="Segment acceptability (the first check)", lab="docs/labs/03-flow-control.md",
    clauses=["RFC 9293 3.10.7.4 (first check, the four cases)", "RFC 9293 3.3 figure 5", "RFC 9293 3.4"],
    filename="acceptable.py", names=["acceptable"], skeleton=SKELETON, reference=reference,
    replacements=replacements,
    wiring="installed for acceptable in stack.tcp.seq and stack.tcp.input (Connection._check_sequence)",
    checks=[
        Check("case1_zero_len_zero_window", "unit", check_case1.__doc__, check_case1),
        Check("case2_zero_len_open_window", "unit", check_case2.__doc__, check_case2),
        Check("case3_data_zero_window", "unit", check_case3.__doc__, check_case3),
        Check("case4_data_open_window", "unit", check_case4.__doc__, check_case4),
        Check("wraparound", "unit", check_wraparound.__doc__, check_wraparound),
        Check("window_edges_through_stack", "packet", check_window_edges_through_stack.__doc__,
              check_window_edges_through_stack),
        Check("transfer_under_loss", "e2e", check_transfer_under_loss.__doc__, check_transfer_under_loss),
    ],
)
