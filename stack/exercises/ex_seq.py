"""Exercise 2: sequence-number comparison modulo 2**32 (RFC 9293 3.4, RFC 1982). Lab 1. Wired."""
from __future__ import annotations

from types import SimpleNamespace

from ..tcp import seq as _S
from .framework import Check, Exercise
from .scenarios import Peer, transfer

NAMES = ["seq_lt", "seq_le", "seq_gt", "seq_ge"]
_REF = {n: getattr(_S, n) for n in NAMES}  # captured before any installation
TOP = 2**32


def reference():
    return SimpleNamespace(**_REF)


def replacements(part) -> dict:
    return {f"seq.{n}": getattr(part, n) for n in NAMES}


SKELETON = '''"""Exercise 2 -- comparing sequence numbers modulo 2**32.

Read: RFC 9293 3.4 (sequence numbers: "all arithmetic dealing with sequence numbers
      must be performed modulo 2**32"); RFC 1982 3.2 (serial number comparison).
Lab:  docs/labs/01-handshake.md -- the ISN is random, so sequence numbers wrap in any connection.

Sequence numbers are 32-bit and wrap: 0xffffff00 comes BEFORE 0x00000010 (0x110 bytes
earlier), because a TCP window is always far smaller than 2**31. So "a < b" means: going
forward from a, you reach b in fewer than 2**31 steps.

Check your work:  tunstack exercise check 2 DIR
"""

MOD = 2**32
HALF = 2**31


def seq_lt(a: int, b: int) -> bool:
    """a < b modulo 2**32: b lies less than 2**31 ahead of a (a != b).

    seq_lt(1, 2) is True; seq_lt(0xffffff00, 0x10) is True; seq_lt(0x10, 0xffffff00) is False.
    """
    # TODO: compute the distance from a to b modulo 2**32 and compare it with HALF.
    raise NotImplementedError("seq_lt")


def seq_le(a: int, b: int) -> bool:
    """a <= b modulo 2**32."""
    # TODO
    raise NotImplementedError("seq_le")


def seq_gt(a: int, b: int) -> bool:
    """a > b modulo 2**32."""
    # TODO
    raise NotImplementedError("seq_gt")


def seq_ge(a: int, b: int) -> bool:
    """a >= b modulo 2**32."""
    # TODO
    raise NotImplementedError("seq_ge")
'''


def _table(t, part, rows) -> None:
    for name, a, b, want in rows:
        t.expect(f"{name}(0x{a:08x}, 0x{b:08x})", getattr(part, name)(a, b), want)


def _all_four(a: int, b: int, rel: str):
    """rows for the four functions given the true relation of a and b ('<', '=', '>')."""
    return [("seq_lt", a, b, rel == "<"), ("seq_le", a, b, rel in "<="),
            ("seq_gt", a, b, rel == ">"), ("seq_ge", a, b, rel in ">=")]


def check_plain_order(part, t, o):
    """RFC 9293 3.4: far from the wrap, the order is the integers' order."""
    _table(t, part, _all_four(1, 2, "<") + _all_four(2, 1, ">") + _all_four(1000, 1000, "="))


def check_across_the_wrap(part, t, o):
    """RFC 9293 3.4: 0xffffff00 is before 0x00000010 (the wrap lies between them)."""
    _table(t, part, _all_four(0xFFFFFF00, 0x10, "<") + _all_four(0x10, 0xFFFFFF00, ">")
           + _all_four(TOP - 1, 0, "<") + _all_four(0, TOP - 1, ">"))


def check_equal_values(part, t, o):
    """RFC 1982 3.2: a number equals itself; lt/gt false, le/ge true, at 0 and at 2**32-1 too."""
    _table(t, part, _all_four(0, 0, "=") + _all_four(TOP - 1, TOP - 1, "=") + _all_four(0x80000000, 0x80000000, "="))


def check_half_way(part, t, o):
    """RFC 1982 3.2: a distance just under 2**31 still orders; 0x7fffffff ahead is 'after'."""
    _table(t, part, _all_four(0, 0x7FFFFFFF, "<") + _all_four(0x7FFFFFFF, 0, ">")
           + _all_four(0x90000000, 0x10000000 - 1, "<"))


def check_data_across_wrap_through_stack(part, t, o):
    """RFC 9293 3.4 / 3.10.7.4 / 3.10.7.4 fifth check: with your comparisons in the stack, data
    across 2**32 is accepted and acknowledged, an old duplicate is not delivered again, and the
    stack's own data across 2**32 is taken as acknowledged (no retransmission)."""
    from .seams import swapped
    iss, irs = TOP - 100, TOP - 50
    with swapped({} if o["part_is_reference"] else replacements(part)):
        p = Peer(t, iss=iss)
        lst = p.listen()
        p.send("S", irs)
        out = p.take()
        t.expect("the stack answers the SYN with one segment", len(out), 1)
        t.expect("its acknowledgment number (IRS+1)", out[0][1].ack, irs + 1)
        p.send("A", irs + 1, iss + 1)
        conn = lst.accept()
        p.send("PA", irs + 1, iss + 1, b"a" * 40)       # 0xffffffcf .. 0xfffffff6
        p.send("PA", irs + 41, iss + 1, b"b" * 40)      # straddles 2**32
        p.send("PA", (irs + 81) % TOP, iss + 1, b"c" * 40)
        p.advance_to(0.3)
        acks = [s.ack for _, s, _ in p.take() if s.flags & 0x10]
        t.expect("the last ACK the stack sent (RCV.NXT after 120 bytes, past the wrap)",
                 acks[-1] if acks else None, (irs + 121) % TOP)
        got = conn.recv(1000, p.now)
        t.expect("bytes delivered to the application", got, b"a" * 40 + b"b" * 40 + b"c" * 40)
        p.send("PA", irs + 1, iss + 1, b"a" * 40)       # an old duplicate, from before the wrap
        p.advance_to(0.6)
        t.expect("bytes delivered after an old duplicate arrives", conn.recv(1000, p.now), b"")
        p.take()
        conn.send(b"z" * 200, p.now)                      # our SND.NXT crosses 2**32 too
        p.host.tcp.touch(conn, p.now)
        p._collect()
        sent = sum(len(s.payload) for _, s, _ in p.take())
        t.expect("bytes the stack sends at once", sent, 200)
        p.send("A", (irs + 121) % TOP, (iss + 201) % TOP, at=0.65)  # the ACK of all 200, past the wrap
        t.expect("SND.UNA after the ACK (0x{:08x})".format((iss + 201) % TOP), conn.snd_una, (iss + 201) % TOP)
        p.advance_to(3.0)
        t.expect("segments retransmitted after all was acknowledged", len(p.take()), 0)


def check_transfer_across_wrap(part, t, o):
    """End to end: a byte-exact transfer through 5 % loss each way while the sender's sequence numbers wrap."""
    from .seams import swapped
    n = o["e2e_bytes"]
    with swapped({} if o["part_is_reference"] else replacements(part)):
        transfer(t, n, iss_a=(TOP - n // 2) % TOP)


def check_real_tun_curl(part, t, o):
    """End to end over a real TUN (root only): curl downloads from the stack with your part in it, through
    5 % loss each way; the kernel is the peer and drops what it finds wrong."""
    from .tun_e2e import real_curl_check
    real_curl_check(EXERCISE, part, t, o, iss=(TOP - o["e2e_bytes"] // 2) % TOP)


EXERCISE = Exercise(
    number=2, slug="seq", title="Sequence-number comparison modulo 2**32", lab="docs/labs/01-handshake.md",
    clauses=["RFC 9293 3.4", "RFC 1982 3.2"], filename="seq.py", names=NAMES, skeleton=SKELETON,
    reference=reference, replacements=replacements,
    wiring="installed for seq_lt/le/gt/ge in stack.tcp.seq and every module that imported them "
           "(connection, layer, recovery)",
    checks=[
        Check("plain_order", "unit", check_plain_order.__doc__, check_plain_order),
        Check("across_the_wrap", "unit", check_across_the_wrap.__doc__, check_across_the_wrap),
        Check("equal_values", "unit", check_equal_values.__doc__, check_equal_values),
        Check("half_way", "unit", check_half_way.__doc__, check_half_way),
        Check("data_across_wrap_through_stack", "packet", check_data_across_wrap_through_stack.__doc__,
              check_data_across_wrap_through_stack),
        Check("transfer_across_wrap", "e2e", check_transfer_across_wrap.__doc__, check_transfer_across_wrap,
              weight=2, timeout=120.0),
        Check("real_tun_curl", "e2e", check_real_tun_curl.__doc__, check_real_tun_curl, weight=2,
              timeout=150.0),
    ],
)
