"""The Internet checksum (RFC 1071) against scapy's, and verify() against single-bit errors."""
from __future__ import annotations

from hypothesis import assume, given
from hypothesis import strategies as st
from scapy.layers.inet import TCP, UDP
from scapy.utils import checksum as scapy_checksum

from stack.wire import checksum as ck
from stack.wire.checksum import IPPROTO_TCP, IPPROTO_UDP, checksum, pseudo_header_sum, verify

from wire_helpers import WIRE, addrs, ip_fields, payloads, scapy_ip, u16, u32, with_payload

# Byte strings with at least one non-zero octet. The all-zero strings (and b"") are left
# out on purpose: checksum() returns 0 for them where RFC 1071 / scapy give 0xffff
# (reported to the wire owner; see the pending test in the report).
nonzero_bytes = st.one_of(payloads, st.binary(max_size=2001)).filter(any)


@WIRE
@given(nonzero_bytes)
def test_checksum_equals_scapy(data):
    assert checksum(data) == scapy_checksum(data)


@WIRE
@given(st.integers(1, 2001))
def test_checksum_all_ones_equals_scapy(n):
    data = b"\xff" * n
    assert checksum(data) == scapy_checksum(data)


@WIRE
@given(nonzero_bytes, st.binary(max_size=300))
def test_initial_residue_is_a_prefix_sum(head, tail):
    """checksum(tail, ones_sum(head)) is the checksum of head + tail when head is even-sized."""
    head = head if len(head) % 2 == 0 else head + b"\x00"
    # a residue cannot tell a sum of 0xffff from "nothing": such heads are outside the contract
    assume(not (ck.ones_sum(head) == 0 and any(head)))
    assert checksum(tail, ck.ones_sum(head)) == scapy_checksum(head + tail)


@WIRE
@given(nonzero_bytes)
def test_data_with_its_checksum_verifies(data):
    data = data if len(data) % 2 == 0 else data + b"\x00"
    csum = checksum(data)
    assert verify(data + csum.to_bytes(2, "big"))
    assert scapy_checksum(data + csum.to_bytes(2, "big")) == 0


@WIRE
@given(addrs, addrs, st.sampled_from([IPPROTO_TCP, IPPROTO_UDP]), u16)
def test_pseudo_header_sum_equals_scapy_pseudo_header(src, dst, proto, length):
    pseudo = src + dst + bytes([0, proto]) + length.to_bytes(2, "big")
    assert checksum(b"", pseudo_header_sum(src, dst, proto, length)) == scapy_checksum(pseudo)


def _flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 0x80 >> (bit % 8)
    return bytes(out)


@WIRE
@given(ip_fields(), payloads, st.data())
def test_ip_header_verifies_and_any_bit_flip_fails(f, payload, data):
    pkt = bytes(scapy_ip(f, 6, len=20 + len(payload)))[:20]
    assert verify(pkt)
    bit = data.draw(st.integers(0, 20 * 8 - 1), label="bit")
    assert not verify(_flip(pkt, bit))


@WIRE
@given(ip_fields(), u16, u16, u32, u32, payloads, st.data())
def test_tcp_segment_verifies_and_any_bit_flip_fails(f, sport, dport, seq, ack, payload, data):
    seg = bytes(with_payload(scapy_ip(f, 6) / TCP(sport=sport, dport=dport, seq=seq, ack=ack), payload))[20:]
    initial = pseudo_header_sum(f["src"], f["dst"], IPPROTO_TCP, len(seg))
    assert verify(seg, initial)
    bit = data.draw(st.integers(0, len(seg) * 8 - 1), label="bit")
    assert not verify(_flip(seg, bit), initial)


@WIRE
@given(ip_fields(), u16, u16, payloads, st.data())
def test_udp_datagram_verifies_and_any_bit_flip_fails(f, sport, dport, payload, data):
    dgram = bytes(with_payload(scapy_ip(f, 17) / UDP(sport=sport, dport=dport), payload))[20:]
    initial = pseudo_header_sum(f["src"], f["dst"], IPPROTO_UDP, len(dgram))
    assert verify(dgram, initial)
    bit = data.draw(st.integers(0, len(dgram) * 8 - 1), label="bit")
    assert not verify(_flip(dgram, bit), initial)


@WIRE
@given(st.integers(1, 255), st.integers(0, 255), u32, payloads, st.data())
def test_icmp_message_verifies_and_any_bit_flip_fails(type_, code, rest, payload, data):
    body = bytes([type_, code, 0, 0]) + rest.to_bytes(4, "big") + payload
    msg = body[:2] + scapy_checksum(body).to_bytes(2, "big") + body[4:]
    assert verify(msg)
    bit = data.draw(st.integers(0, len(msg) * 8 - 1), label="bit")
    assert not verify(_flip(msg, bit))


@WIRE
@given(st.one_of(st.binary(max_size=3000), st.integers(0, 66000).map(lambda n: b"\xff" * n)), st.booleans())
def test_residue_by_folding_equals_the_remainder(data, big):
    """checksum.residue folds halves at multiples of 16 bits: the same remainder as one division,
    for every length (all ones: each fold carries), either byte order."""
    value = int.from_bytes(data, "big" if big else "little")
    assert ck.residue(value, len(data)) == value % 0xFFFF


@WIRE
@given(payloads | st.integers(1, 2000).map(lambda n: b"\xff" * n))
def test_folded_sum_is_the_ones_sum(data):
    """The bulk sender's payload sum (residue of the little-endian value, times 256) agrees with
    ones_sum and with scapy."""
    folded = ck.residue(int.from_bytes(data, "little"), len(data)) * 256 % 0xFFFF
    assert folded == ck.ones_sum(data)
    if any(data):
        assert ck.finish(folded) == scapy_checksum(data)
