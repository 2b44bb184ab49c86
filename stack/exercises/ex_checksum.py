"""Exercise 1: the Internet checksum (RFC 1071). Lab 1. Wired: the stack's TCP, IPv4 and ICMP use it."""
from __future__ import annotations

import random
from types import SimpleNamespace

from ..wire import checksum as _C
from ..wire.tcp import TcpSegment, build_tcp
from .framework import Check, Exercise
from .scenarios import LOCAL, PEER, Peer, build_packet, oracle_packet_ok, transfer

_REF_ONES_SUM = _C.ones_sum  # captured before any installation: the reference never calls a seam


def _REF_CHECKSUM(data) -> int:
    """The stack's checksum, computed with the captured reference sum (RFC 1071)."""
    s = _REF_ONES_SUM(data) % 0xFFFF
    if s:
        return 0xFFFF - s
    return 0 if int.from_bytes(data, "big") else 0xFFFF  # a true sum of 0xffff, or +0


def reference():
    return SimpleNamespace(checksum=lambda data: _REF_CHECKSUM(bytes(data)))


def replacements(part) -> dict:
    """The stack sums through ``ones_sum`` (a residue mod 0xffff): derive it from the student's checksum."""
    student = part.checksum

    def ones_sum(data) -> int:
        return (0xFFFF - student(bytes(data))) % 0xFFFF

    return {"checksum.ones_sum": ones_sum}


SKELETON = '''"""Exercise 1 -- the Internet checksum.

Read: RFC 1071 sections 1 and 3 (computing the checksum, the worked example);
      RFC 9293 3.1 (the TCP checksum covers a pseudo-header, the header and the data).
Lab:  docs/labs/01-handshake.md -- every segment of the handshake carries this checksum.

Check your work:  tunstack exercise check 1 DIR
"""


def checksum(data: bytes) -> int:
    """Return the Internet checksum of ``data`` as an int in 0..0xffff.

    RFC 1071: treat ``data`` as a sequence of 16-bit big-endian words, add them with
    ones'-complement arithmetic (a carry out of bit 15 is added back in at bit 0: the
    "end-around carry"), and return the ones' complement of the sum.
    If ``data`` has an odd length, the last byte is the HIGH byte of a final word whose
    low byte is zero.

    Examples (RFC 1071 section 3):
        checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220d
        checksum(b"") == 0xffff
    """
    # TODO 1: add up the 16-bit words (mind an odd last byte).
    # TODO 2: fold every carry above 16 bits back into the low 16 bits, until none is left.
    # TODO 3: return the ones' complement of the 16-bit sum.
    raise NotImplementedError("checksum")
'''


def _cases(t, part, cases) -> None:
    for data, want in cases:
        shown = data.hex() if len(data) <= 16 else f"{data[:8].hex()}... ({len(data)} bytes)"
        t.expect(f"checksum({shown})" if data else "checksum(b'')", part.checksum(data), want, show=_hex)


def _hex(v) -> str:
    return f"0x{v:04x}" if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else repr(v)


def check_rfc1071_example(part, t, o):
    """RFC 1071 3: the worked example, words 0001 f203 f4f5 f6f7 sum to 0xddf2."""
    _cases(t, part, [(bytes.fromhex("0001f203f4f5f6f7"), 0x220D)])


def check_end_around_carry(part, t, o):
    """RFC 1071 1 (2): a carry out of the top bit is added back in at the bottom."""
    _cases(t, part, [(bytes.fromhex("ffff0001"), 0xFFFE), (bytes.fromhex("8000800080008000"), 0xFFFD),
                     (bytes.fromhex("ffff") * 300, 0x0000)])


def check_odd_length(part, t, o):
    """RFC 1071 1: an odd last byte is the high byte of a word padded with a zero."""
    _cases(t, part, [(bytes.fromhex("010203"), 0xFBFD), (bytes.fromhex("ff"), 0x00FF),
                     (bytes.fromhex("0001f203f4f5f6"), 0x2304)])


def check_zero_and_empty(part, t, o):
    """RFC 1071: the sum of nothing (or of zeros) is +0, so the checksum is 0xffff."""
    _cases(t, part, [(b"", 0xFFFF), (bytes(20), 0xFFFF)])


def check_ipv4_header(part, t, o):
    """RFC 791 3.1 / RFC 1071: a real header verifies (sum of all words, field included, gives 0)."""
    header = bytes.fromhex("450000730000400040110000c0a80001c0a800c7")
    t.expect("checksum(header with the checksum field zeroed)", part.checksum(header), 0xB861, show=_hex)
    filled = header[:10] + bytes.fromhex("b861") + header[12:]
    t.expect("checksum(the same header with 0xb861 filled in)", part.checksum(filled), 0, show=_hex)


def check_random_buffers(part, t, o):
    """Seeded random buffers (lengths 0..1501) against the reference, 300 of them."""
    rng = random.Random(1071)
    for _ in range(300):
        data = rng.randbytes(rng.randrange(0, 1502))
        got = part.checksum(data)
        want = _REF_CHECKSUM(data)
        if got != want:
            t.expect(f"checksum(<{len(data)} random bytes {data[:8].hex()}...>)", got, want, show=_hex)
    t.note("300 random buffers agree with the reference")


def check_segment_through_stack(part, t, o):
    """RFC 9293 3.1: with your checksum in the stack, the segments it builds verify by the reference."""
    from .seams import swapped
    with swapped({} if o["part_is_reference"] else replacements(part)):
        for payload in (b"", b"odd", b"even", bytes(range(256)) * 5 + b"!"):
            seg = TcpSegment(80, 40000, 0x12345678, 0x9ABCDEF0, 0x18, 65535, payload)
            built = build_tcp(seg, LOCAL, PEER)
            t.expect(f"the stack builds a segment with a {len(payload)}-byte payload; the reference verifies it",
                     oracle_packet_ok(_ipv4_around(built)), True)


def _ipv4_around(tcp: bytes) -> bytes:
    from ..wire.ipv4 import build_ipv4
    return build_ipv4(LOCAL, PEER, 6, len(tcp)) + tcp


def check_handshake_through_stack(part, t, o):
    """RFC 9293 3.1 / 3.10.7.2: a good SYN gets a SYN,ACK that verifies; a SYN with a bad checksum is dropped."""
    from .seams import swapped
    with swapped({} if o["part_is_reference"] else replacements(part)):
        p = Peer(t)
        p.listen()
        good = build_packet(TcpSegment(40000, 80, 5000, 0, 0x02, 65535))
        bad = bytearray(good)
        bad[-3] ^= 0x01  # a bit flipped in the checksum field (the TCP header's bytes 16-17)
        p.send("S", 5000, raw=bytes(bad), note="  (one bit of the checksum flipped)")
        t.expect("segments the stack sends back to a corrupted SYN", len(p.take()), 0)
        p.send("S", 5000, raw=good)
        out = p.take()
        t.expect("segments the stack sends back to a good SYN", len(out), 1)
        t.expect("the SYN,ACK's checksums verify by the reference", out[0][2], True)


def check_transfer_under_loss(part, t, o):
    """End to end: a byte-exact transfer through 5 % loss each way, every packet's checksum verified."""
    from .seams import swapped
    with swapped({} if o["part_is_reference"] else replacements(part)):
        transfer(t, o["e2e_bytes"], tap=True)


def check_real_tun_curl(part, t, o):
    """End to end over a real TUN (root only): curl downloads from the stack with your part in it, through
    5 % loss each way; the kernel is the peer and drops what it finds wrong."""
    from .tun_e2e import real_curl_check
    real_curl_check(EXERCISE, part, t, o)


EXERCISE = Exercise(
    number=1, slug="checksum", title="The Internet checksum", lab="docs/labs/01-handshake.md",
    clauses=["RFC 1071 1, 3", "RFC 9293 3.1 (pseudo-header)", "RFC 791 3.1"],
    filename="checksum.py", names=["checksum"], skeleton=SKELETON, reference=reference,
    replacements=replacements,
    wiring="installed for ones_sum in stack.wire.checksum (and every module that imported it): "
           "TCP segments built and verified, IPv4 options, ICMP",
    checks=[
        Check("rfc1071_example", "unit", check_rfc1071_example.__doc__, check_rfc1071_example),
        Check("end_around_carry", "unit", check_end_around_carry.__doc__, check_end_around_carry),
        Check("odd_length_padding", "unit", check_odd_length.__doc__, check_odd_length),
        Check("zero_and_empty", "unit", check_zero_and_empty.__doc__, check_zero_and_empty),
        Check("ipv4_header_verifies", "unit", check_ipv4_header.__doc__, check_ipv4_header),
        Check("random_buffers", "unit", check_random_buffers.__doc__, check_random_buffers),
        Check("segment_built_by_stack", "packet", check_segment_through_stack.__doc__, check_segment_through_stack),
        Check("handshake_through_stack", "packet", check_handshake_through_stack.__doc__,
              check_handshake_through_stack),
        Check("transfer_5pct_loss", "e2e", check_transfer_under_loss.__doc__, check_transfer_under_loss,
              weight=2, timeout=120.0),
        Check("real_tun_curl", "e2e", check_real_tun_curl.__doc__, check_real_tun_curl, weight=2,
              timeout=150.0),
    ],
)
