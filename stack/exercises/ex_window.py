"""Exercise 8: the sender's usable window (RFC 5681 2 and 3.1, RFC 9293 3.8.6.2.1). Lab 3.

The reference is the stack's own ``stack.tcp.window.usable_window``, which
``ConnectionOutput._send_one`` (stack/tcp/output.py) asks, outside SACK recovery, how many
new octets may go out: a student's part installed through the seam decides what the stack sends.
"""
from __future__ import annotations

from types import SimpleNamespace

from ..tcp.config import TcpConfig
from ..tcp.window import usable_window
from .framework import Check, Exercise
from .scenarios import Peer, transfer


def reference():
    return SimpleNamespace(usable_window=usable_window)


def replacements(part) -> dict:
    return {"window.usable_window": part.usable_window}


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


TOP = 2**32


def _data_segments(p, iss) -> list:
    """(offset from ISS, length) of each data segment the stack sent since the last look."""
    return [((s.seq - iss) % TOP, len(s.payload)) for _, s, _ in p.take() if s.payload]


def _sent(t, p, iss, what: str, first: int, count: int, mss: int = 536) -> None:
    """Expect ``count`` full segments from offset ``first`` (the segments themselves are in the trace)."""
    segs = _data_segments(p, iss)
    t.expect(f"{what}: (segments, octets)", (len(segs), sum(n for _, n in segs)), (count, count * mss))
    t.expect("their offsets from ISS", [off for off, _ in segs], [first + mss * i for i in range(count)])


def _connection(t, peer_window: int, iss: int):
    """A connection accepted by the stack (MSS 536: the peer's SYN carries no MSS option), the peer
    advertising ``peer_window``; the application then writes 6000 bytes (more than cwnd)."""
    irs = 9000
    # IW pinned at 10 segments (RFC 6928, Linux's start): these checks are about which of cwnd and the
    # peer's window limits the sender, so cwnd must stand above a 4-segment peer window
    p = Peer(t, iss=iss, config=TcpConfig(window_scaling=False, timestamps=False, sack=False, initial_window=10))
    lst = p.listen()
    p.send("S", irs)
    p.send("A", irs + 1, iss + 1, window=peer_window)
    conn = lst.accept()
    p.take()
    if conn is None:
        t.fail("the handshake did not complete")
    t.note(f"SMSS {conn.eff_mss}, cwnd {conn.cc.cwnd} (initial window pinned at 10), SND.WND {peer_window}; "
           f"the application writes 6000 bytes")
    conn.send(b"x" * 6000, p.now)
    p.host.tcp.touch(conn, p.now)
    p._collect()
    return p, conn, irs


def check_peer_window_limits_through_stack(part, t, o):
    """RFC 9293 3.8.6.2.1 through the stack: a peer window (2144 = 4 segments) below cwnd limits what
    is sent; an ACK of two segments lets exactly two more go. SND.NXT wraps past 2**32 on the way."""
    from .seams import swapped
    iss = TOP - 1000
    with swapped({} if o["part_is_reference"] else replacements(part)):
        p, conn, irs = _connection(t, 2144, iss)
        _sent(t, p, iss, "data sent", 1, 4)
        p.send("A", irs + 1, (iss + 1 + 1072) % TOP, window=2144, at=0.05, note="  (two segments acknowledged)")
        _sent(t, p, iss, "data sent after the ACK", 2145, 2)


def check_cwnd_limits_through_stack(part, t, o):
    """RFC 5681 3.1 through the stack: the peer offers 65535 bytes, cwnd (10 segments) limits what is sent."""
    from .seams import swapped
    iss = 5000
    with swapped({} if o["part_is_reference"] else replacements(part)):
        p, conn, irs = _connection(t, 65535, iss)
        _sent(t, p, iss, "data sent", 1, 10)


def check_transfer_under_loss(part, t, o):
    """End to end: a byte-exact transfer through 5 % loss each way with your usable window deciding
    what the sender puts out (slow start, congestion avoidance and loss recovery around it)."""
    from .seams import swapped
    with swapped({} if o["part_is_reference"] else replacements(part)):
        transfer(t, o["e2e_bytes"])


EXERCISE = Exercise(
    number=8, slug="window", title="The sender's usable window", lab="docs/labs/03-flow-control.md",
    clauses=["RFC 9293 3.8.6.2.1", "RFC 5681 2 (FlightSize), 3.1", "RFC 9293 3.4"],
    filename="window.py", names=["usable_window"], skeleton=SKELETON, reference=reference,
    replacements=replacements,
    wiring="installed for usable_window in stack.tcp.window and stack.tcp.output (ConnectionOutput._send_one, "
           "outside SACK recovery)",
    checks=[
        Check("nothing_in_flight", "unit", check_nothing_in_flight.__doc__, check_nothing_in_flight),
        Check("in_flight_uses_window", "unit", check_in_flight.__doc__, check_in_flight),
        Check("cwnd_limits", "unit", check_cwnd_limits.__doc__, check_cwnd_limits),
        Check("never_negative", "unit", check_never_negative.__doc__, check_never_negative),
        Check("wraparound", "unit", check_wraparound.__doc__, check_wraparound),
        Check("peer_window_limits_through_stack", "packet", check_peer_window_limits_through_stack.__doc__,
              check_peer_window_limits_through_stack),
        Check("cwnd_limits_through_stack", "packet", check_cwnd_limits_through_stack.__doc__,
              check_cwnd_limits_through_stack),
        Check("transfer_under_loss", "e2e", check_transfer_under_loss.__doc__, check_transfer_under_loss),
    ],
)
