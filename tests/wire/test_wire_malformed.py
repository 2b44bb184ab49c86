"""Bad input raises exactly MalformedPacket with the expected reason, and nothing else ever
escapes the parsers, whatever the bytes (DESIGN.md: every drop has a named reason)."""
from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import TCP

from stack.wire import MalformedPacket, icmp, ipv4, tcp, udp
from stack.wire.checksum import IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, checksum, pseudo_header_sum

from wire_helpers import (FUZZ, WIRE, addrs, options_as_fields, payloads, scapy_ip_layers,
                          scapy_option_lists, u8, u16, with_payload)

SRC, DST = b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02"


def raises(reason: str, parse, *args):
    """Assert that ``parse(*args)`` raises MalformedPacket (that very type) with ``reason``."""
    with pytest.raises(MalformedPacket) as info:
        parse(*args)
    assert type(info.value) is MalformedPacket
    assert info.value.reason == reason, f"{info.value!r} instead of {reason}"
    return info.value


def ip_header(ver_ihl=0x45, total=20, options=b"", tos=0, ident=1, flags_off=0, ttl=64, proto=253,
              fix_checksum=True) -> bytes:
    hdr = bytearray(struct.pack("!BBHHHBBH4s4s", ver_ihl, tos, total, ident, flags_off, ttl, proto, 0,
                                SRC, DST) + options)
    if fix_checksum:
        hdr[10:12] = checksum(hdr).to_bytes(2, "big")
    return bytes(hdr)


# ---------------------------------------------------------------- IPv4, one case per reason

@pytest.mark.parametrize("packet, reason", [
    (b"", "ip_short"),
    (b"\x45", "ip_short"),
    (ip_header()[:19], "ip_short"),
    (ip_header(ver_ihl=0x65), "ip_version"),
    (ip_header(ver_ihl=0x05), "ip_version"),
    (ip_header(ver_ihl=0xF5), "ip_version"),
    (ip_header(ver_ihl=0x44), "ip_ihl"),
    (ip_header(ver_ihl=0x40), "ip_ihl"),
    (ip_header(ver_ihl=0x46, total=24), "ip_ihl"),            # 24-byte header, 20 bytes captured
    (ip_header(ver_ihl=0x4F, total=60, options=bytes(36)), "ip_ihl"),
    (ip_header(total=19), "ip_length"),                        # shorter than the header
    (ip_header(ver_ihl=0x46, total=20, options=b"\x01" * 4), "ip_length"),
    (ip_header(total=21), "ip_length"),                        # longer than what was captured
    (ip_header(total=0xFFFF) + bytes(100), "ip_length"),
    (ip_header(fix_checksum=False, ident=0x1234), "ip_checksum"),
    (ip_header()[:10] + b"\x00\x00" + ip_header()[12:], "ip_checksum"),
])
def test_ipv4_reasons(packet, reason):
    raises(reason, ipv4.parse_ipv4, packet)


@WIRE
@given(scapy_ip_layers(proto=253, fragments=True), payloads, st.data())
def test_ipv4_any_truncation_names_its_reason(layer, payload, data):
    wire = bytes(with_payload(layer, payload))
    hlen = (wire[0] & 0x0F) * 4
    cut = data.draw(st.integers(0, len(wire) - 1), label="cut")
    reason = "ip_short" if cut < 20 else "ip_ihl" if cut < hlen else "ip_length"
    raises(reason, ipv4.parse_ipv4, wire[:cut])


@WIRE
@given(scapy_ip_layers(proto=253, fragments=True), st.integers(0, 15).filter(lambda v: v != 4))
def test_ipv4_any_other_version(layer, version):
    wire = bytearray(bytes(layer))
    wire[0] = (version << 4) | (wire[0] & 0x0F)
    wire[10:12] = b"\0\0"
    wire[10:12] = checksum(wire[:(wire[0] & 0x0F) * 4]).to_bytes(2, "big")
    raises("ip_version", ipv4.parse_ipv4, bytes(wire))


@WIRE
@given(scapy_ip_layers(proto=253, fragments=True), payloads, st.data())
def test_ipv4_any_header_bit_flip_fails_checksum_or_a_check_before_it(layer, payload, data):
    wire = bytes(with_payload(layer, payload))
    hlen = (wire[0] & 0x0F) * 4
    bit = data.draw(st.integers(0, hlen * 8 - 1), label="bit")
    bad = bytearray(wire)
    bad[bit // 8] ^= 0x80 >> (bit % 8)
    with pytest.raises(MalformedPacket) as info:
        ipv4.parse_ipv4(bytes(bad))
    if bit // 8 not in (0, 2, 3):  # version/ihl and total length are checked before the checksum
        assert info.value.reason == "ip_checksum"


# ---------------------------------------------------------------- TCP

def tcp_header(offset_words=5, options=b"", payload=b"", src=SRC, dst=DST) -> bytes:
    seg = bytearray(struct.pack("!HHIIBBHHH", 1000, 80, 1, 2, offset_words << 4, tcp.ACK, 512, 0, 0)
                    + options + payload)
    seg[16:18] = checksum(seg, pseudo_header_sum(src, dst, IPPROTO_TCP, len(seg))).to_bytes(2, "big")
    return bytes(seg)


def with_options(options: bytes) -> bytes:
    assert len(options) % 4 == 0
    return tcp_header(5 + len(options) // 4, options, b"data")


@pytest.mark.parametrize("segment, reason", [
    (b"", "tcp_short"),
    (tcp_header()[:19], "tcp_short"),
    (tcp_header(offset_words=0), "tcp_offset"),
    (tcp_header(offset_words=4), "tcp_offset"),
    (tcp_header(offset_words=6), "tcp_offset"),                  # offset past the segment's end
    (tcp_header(offset_words=15, options=bytes(36))[:59], "tcp_offset"),
    (tcp_header()[:16] + b"\x00\x01" + tcp_header()[18:], "tcp_checksum"),
    (tcp_header(payload=b"x")[:-1] + b"y", "tcp_checksum"),
    # RFC 9293 3.1: kinds other than 0 and 1 carry a length octet counting kind and length.
    (with_options(b"\x13\x00\x00\x00"), "tcp_option_length"),   # length zero
    (with_options(b"\x13\x01\x00\x00"), "tcp_option_length"),   # length one
    (with_options(b"\x02\x00\x05\xb4"), "tcp_option_length"),   # MSS with length zero
    (with_options(b"\x01\x01\x01\x13"), "tcp_option_truncated"),  # kind in the last octet
    (with_options(b"\x01\x01\x01\x02"), "tcp_option_truncated"),  # MSS kind in the last octet
    (with_options(b"\x01\x01\x1e\x03"), "tcp_option_length"),   # runs past the option area
    (with_options(b"\x13\x05ab"), "tcp_option_length"),
    (with_options(b"\x02\x03\x05\x00"), "tcp_option_length"),   # MSS must be 4
    (with_options(b"\x02\x05\x05\xb4\x00\x00\x00\x00"), "tcp_option_length"),
    (with_options(b"\x03\x04\x07\x00"), "tcp_option_length"),   # window scale must be 3
    (with_options(b"\x04\x03\x00\x00"), "tcp_option_length"),   # SACK-permitted must be 2
    (with_options(b"\x08\x08" + bytes(6)), "tcp_option_length"),  # timestamps must be 10
    (with_options(b"\x08\x0b" + bytes(10)), "tcp_option_length"),
    (with_options(b"\x05\x09" + bytes(7) + b"\x00\x00\x00"), "tcp_option_length"),  # SACK 8n+2
    (with_options(b"\x05\x0b" + bytes(9) + b"\x00"), "tcp_option_length"),
    (with_options(b"\x05\x11" + bytes(15) + b"\x00\x00\x00"), "tcp_option_length"),
    (with_options(b"\x05\x06" + bytes(4) + b"\x00\x00"), "tcp_option_length"),
])
def test_tcp_reasons(segment, reason):
    raises(reason, tcp.parse_tcp, segment, SRC, DST)
    if reason.startswith("tcp_option") or reason in ("tcp_short", "tcp_offset"):
        raises(reason, tcp.parse_tcp, segment)  # no checksum check: same reason


def test_tcp_option_list_ends_at_eol():
    """RFC 9293 3.1: EOL ends the option list; what follows it is padding, never parsed."""
    seg = tcp.parse_tcp(with_options(b"\x02\x04\x05\xb4\x00\x13\x00\x05"), SRC, DST)
    assert seg.mss == 1460 and seg.payload == b"data"


def test_tcp_checksum_not_checked_without_addresses():
    bad = tcp_header(payload=b"x")[:-1] + b"y"
    assert tcp.parse_tcp(bad).payload == b"y"


def reference_option_error(opts: bytes) -> str | None:
    """An independent reading of RFC 9293 3.1 / RFC 7323 / RFC 2018 option syntax."""
    fixed = {2: 4, 3: 3, 4: 2, 8: 10}
    i = 0
    while i < len(opts):
        if opts[i] == 0:
            return None
        if opts[i] == 1:
            i += 1
            continue
        if i + 1 == len(opts):
            return "tcp_option_truncated"
        kind, length = opts[i], opts[i + 1]
        if length < 2 or i + length > len(opts) or fixed.get(kind, length) != length:
            return "tcp_option_length"
        if kind == 5 and (length - 2) % 8:
            return "tcp_option_length"
        i += length
    return None


# Option areas that are mostly almost right: a few valid or damaged options, random octets.
_valid_atoms = st.one_of(
    st.sampled_from([b"\x00", b"\x01", b"\x04\x02"]),
    st.binary(min_size=2, max_size=2).map(lambda v: b"\x02\x04" + v),
    st.binary(min_size=1, max_size=1).map(lambda v: b"\x03\x03" + v),
    st.binary(min_size=8, max_size=8).map(lambda v: b"\x08\x0a" + v),
    st.integers(1, 4).map(lambda n: bytes([5, 2 + 8 * n]) + bytes(range(8 * n))),
    st.tuples(st.sampled_from([6, 19, 30, 254]), st.binary(max_size=8)).map(
        lambda t: bytes([t[0], 2 + len(t[1])]) + t[1]),
)
_damaged_atoms = st.tuples(st.sampled_from([2, 3, 4, 5, 8, 19, 30, 254]), st.integers(0, 40),
                           st.binary(max_size=40)).map(lambda t: bytes(t[:2]) + t[2][:max(0, t[1] - 2)])
_option_atoms = st.one_of(_valid_atoms, _valid_atoms, _valid_atoms, _damaged_atoms,
                          st.binary(min_size=1, max_size=3))

@st.composite
def option_areas(draw):
    """Up to 40 octets, a multiple of 4, padded with EOL, NOP or an unknown kind (which then
    sits in the last octet without its length: truncated)."""
    area = b"".join(draw(st.lists(_option_atoms, max_size=8)))
    fill = draw(st.sampled_from([b"\x00", b"\x01", b"\x13"]))
    return (area + fill * (-len(area) % 4))[:40]



@FUZZ
@given(option_areas())
def test_tcp_options_raise_the_reference_reason_or_agree_with_scapy(opts):
    segment = with_options(opts)
    expected = reference_option_error(opts)
    if expected:
        raises(expected, tcp.parse_tcp, segment, SRC, DST)
        return
    seg = tcp.parse_tcp(segment, SRC, DST)
    theirs = options_as_fields(TCP(segment).options)
    got = dict(mss=seg.mss, wscale=seg.wscale, sack_perm=seg.sack_perm,
               sack=[tuple(b) for b in seg.sack] if seg.sack is not None else None,
               tsval=seg.tsval, tsecr=seg.tsecr)
    assert got == theirs


# ---------------------------------------------------------------- UDP and ICMP

def udp_datagram(length=None, payload=b"abc", csum=None) -> bytes:
    n = 8 + len(payload)
    d = bytearray(struct.pack("!HHHH", 53, 5353, n if length is None else length, 0) + payload)
    value = checksum(d, pseudo_header_sum(SRC, DST, IPPROTO_UDP, n)) if csum is None else csum
    d[6:8] = value.to_bytes(2, "big")
    return bytes(d)


@pytest.mark.parametrize("datagram, reason", [
    (b"", "udp_short"),
    (udp_datagram()[:7], "udp_short"),
    (udp_datagram(length=0), "udp_length"),
    (udp_datagram(length=7), "udp_length"),
    (udp_datagram(length=12), "udp_length"),    # one more than the 11 octets present
    (udp_datagram(length=0xFFFF), "udp_length"),
    (udp_datagram(csum=0x1234), "udp_checksum"),
    (udp_datagram()[:-1] + b"d", "udp_checksum"),
])
def test_udp_reasons(datagram, reason):
    raises(reason, udp.parse_udp, datagram, SRC, DST)


def test_udp_zero_checksum_means_none():
    """RFC 768: an all-zero checksum field means the sender computed none."""
    assert udp.parse_udp(udp_datagram(csum=0), SRC, DST).payload == b"abc"


@pytest.mark.parametrize("message, reason", [
    (b"", "icmp_short"),
    (icmp.build_icmp(8, 0, 1)[:7], "icmp_short"),
    (icmp.build_icmp(8, 0, 1, b"ping")[:-1] + b"h", "icmp_checksum"),
    (b"\x08\x00\x00\x00\x00\x01\x00\x01", "icmp_checksum"),
])
def test_icmp_reasons(message, reason):
    raises(reason, icmp.parse_icmp, message)


@WIRE
@given(u16, u16, st.binary(max_size=1000), st.data())
def test_udp_any_length_field_outside_8_to_captured(sport, dport, body, data):
    length = data.draw(st.integers(0, 7) | st.integers(8 + len(body) + 1, 0xFFFF), label="length")
    raises("udp_length", udp.parse_udp, struct.pack("!HHHH", sport, dport, length, 0) + body, SRC, DST)


# ---------------------------------------------------------------- fuzz: only MalformedPacket

def parse_chain(packet) -> None:
    """What IP input does: parse_ipv4, then the protocol parser, with and without checksums."""
    try:
        hdr, payload = ipv4.parse_ipv4(packet)
    except MalformedPacket:
        return
    for parse in {IPPROTO_TCP: (tcp.parse_tcp,), IPPROTO_UDP: (udp.parse_udp,)}.get(hdr.proto, ()):
        for args in ((hdr.src, hdr.dst), ()):
            try:
                parse(payload, *args)
            except MalformedPacket:
                pass
    if hdr.proto == IPPROTO_ICMP:
        try:
            icmp.parse_icmp(payload)
        except MalformedPacket:
            pass


@FUZZ
@given(st.binary(max_size=120), st.sampled_from([bytes, bytearray, memoryview]))
def test_fuzz_arbitrary_bytes(packet, buf):
    parse_chain(buf(bytearray(packet)))


@st.composite
def nearly_valid_packets(draw):
    """An IPv4 header that passes (version 4, checksum fixed, length mostly right) over random
    transport bytes whose TCP data offset and UDP length are often plausible."""
    proto = draw(st.sampled_from([IPPROTO_TCP, IPPROTO_TCP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP, 253]))
    body = bytearray(draw(st.binary(min_size=20 if proto == IPPROTO_TCP and draw(st.booleans()) else 0,
                                    max_size=80)))
    if proto == IPPROTO_TCP and len(body) > 12:
        body[12] = (draw(st.integers(0, 15)) << 4) | (body[12] & 0x0F)
        if len(body) > 20 and draw(st.booleans()):
            opts = draw(option_areas())
            body[20:20 + len(opts)] = opts
    if proto == IPPROTO_UDP and len(body) > 6 and draw(st.booleans()):
        body[4:6] = draw(st.integers(0, len(body) + 2)).to_bytes(2, "big")
    ihl = draw(st.sampled_from([5, 5, 5, 5, 5, 6, 15, 4, 0]))
    options = draw(st.binary(min_size=4 * max(0, ihl - 5), max_size=4 * max(0, ihl - 5)))
    total = 4 * max(ihl, 5) + len(body) + draw(st.sampled_from([0, 0, 0, 0, 0, 0, -1, 1, -25]))
    hdr = bytearray(struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, draw(u8), max(0, min(total, 0xFFFF)), draw(u16),
                                draw(u16), draw(u8), proto, 0, draw(addrs), draw(addrs)) + options)
    hdr[10:12] = checksum(hdr).to_bytes(2, "big")
    return bytes(hdr) + bytes(body) + draw(st.binary(max_size=4))


@FUZZ
@given(nearly_valid_packets(), st.sampled_from([bytes, bytearray, memoryview]))
def test_fuzz_nearly_valid_packets(packet, buf):
    parse_chain(buf(bytearray(packet)))


@FUZZ
@given(st.binary(min_size=20, max_size=20), st.integers(0, 15), option_areas(), st.binary(max_size=20))
def test_fuzz_tcp_headers_and_options(header, offset, opts, payload):
    segment = bytearray(header + opts + payload)
    segment[12] = (offset << 4) | (segment[12] & 0x0F)
    for args in ((), (SRC, DST)):
        try:
            tcp.parse_tcp(bytes(segment), *args)
        except MalformedPacket:
            pass


@WIRE
@given(scapy_ip_layers(proto=IPPROTO_TCP), u16, u16, scapy_option_lists(), payloads, st.data())
def test_fuzz_scapy_segments_with_one_corrupted_octet(layer, sport, dport, options, payload, data):
    wire = bytearray(bytes(with_payload(layer / TCP(sport=sport, dport=dport, options=options), payload)))
    where = data.draw(st.integers(0, len(wire) - 1), label="where")
    wire[where] = data.draw(u8, label="value")
    parse_chain(bytes(wire))
