"""Every header we build equals scapy's bytes exactly (DESIGN.md, tests layer 1).

For TCP, scapy is given the options in the order ``encode_options`` put them (its Linux
layout); what is compared is every header field, the option layout, padding, data offset
and the checksum, byte for byte.
"""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, TCP, UDP
from scapy.packet import Raw
from scapy.utils import checksum as scapy_checksum

from stack.wire import icmp, tcp, udp
from stack.wire.checksum import IPPROTO_TCP, IPPROTO_UDP, ones_sum, pseudo_header_sum

from wire_helpers import (WIRE, build_ip, icmp_plain_types, ip_fields, kernel_finish, options_len, payloads,
                          scapy_ip, scapy_options_from_bytes, tcp_segments, u8, u16, u32,
                          with_payload)


@WIRE
@given(ip_fields(), u8, st.integers(0, 65535 - 20))
def test_ipv4_header_equals_scapy(f, proto, payload_len):
    ours = build_ip(f, proto, payload_len)
    theirs = bytes(scapy_ip(f, proto, len=20 + payload_len))
    assert ours == theirs


@WIRE
@given(ip_fields(), tcp_segments())
def test_tcp_segment_equals_scapy(f, seg):
    opts = tcp.encode_options(seg) if (seg.mss is not None or seg.wscale is not None or seg.sack_perm
                                       or seg.sack or seg.tsval is not None) else b""
    assert len(opts) % 4 == 0 and len(opts) <= 40
    assert len(opts) == (options_len(seg.mss, seg.wscale, seg.sack_perm, seg.tsval,
                                     len(seg.sack or ())) + 3) // 4 * 4
    scapy_opts = scapy_options_from_bytes(opts)

    # The named options scapy is given carry exactly the segment's option values.
    names = [name for name, _ in scapy_opts if name != "NOP"]
    assert len(names) == len(set(names))
    values = dict(o for o in scapy_opts if o[0] != "NOP")
    assert values.get("MSS") == seg.mss
    assert values.get("WScale") == seg.wscale
    assert ("SAckOK" in values) == seg.sack_perm
    assert values.get("Timestamp") == (None if seg.tsval is None else (seg.tsval, seg.tsecr or 0))
    assert values.get("SAck") == (tuple(x for block in seg.sack for x in block) if seg.sack else None)

    ours = tcp.build_tcp(seg, f["src"], f["dst"])
    layer = TCP(sport=seg.sport, dport=seg.dport, seq=seg.seq, ack=seg.ack, flags=seg.flags,
                window=seg.window, urgptr=seg.urg, options=scapy_opts)
    theirs = bytes(with_payload(scapy_ip(f, IPPROTO_TCP) / layer, seg.payload))[20:]
    assert ours == theirs


@WIRE
@given(ip_fields(), tcp_segments())
def test_tcp_packet_ip_plus_tcp_equals_scapy(f, seg):
    segment = tcp.build_tcp(seg, f["src"], f["dst"])
    ours = build_ip(f, IPPROTO_TCP, len(segment)) + segment
    # the header alone, the payload as Raw: scapy dissects a payload by port (139: NetBIOS session)
    # and may rebuild it differently
    theirs = TCP(bytes(segment[:len(segment) - len(seg.payload)]))
    del theirs.chksum  # scapy recomputes it over its own pseudo-header
    assert ours == bytes(with_payload(scapy_ip(f, IPPROTO_TCP) / theirs, seg.payload))


@pytest.mark.parametrize("seg, layout", [
    (tcp.TcpSegment(mss=1460, sack_perm=True, tsval=1, tsecr=0, wscale=7),   # Linux SYN
     [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1, 0)), ("NOP", None), ("WScale", 7)]),
    (tcp.TcpSegment(tsval=5, tsecr=6, sack=[(1, 2)]),
     [("NOP", None), ("NOP", None), ("Timestamp", (5, 6)),
      ("NOP", None), ("NOP", None), ("SAck", (1, 2))]),
    (tcp.TcpSegment(sack_perm=True), [("NOP", None), ("NOP", None), ("SAckOK", b"")]),
    (tcp.TcpSegment(mss=536), [("MSS", 536)]),
    (tcp.TcpSegment(wscale=14), [("NOP", None), ("WScale", 14)]),
    (tcp.TcpSegment(sack=[(1, 2), (3, 4), (5, 6), (7, 8)]),
     [("NOP", None), ("NOP", None), ("SAck", (1, 2, 3, 4, 5, 6, 7, 8))]),
])
def test_encode_options_layout(seg, layout):
    """The documented Linux order, spelled out once by hand."""
    assert scapy_options_from_bytes(tcp.encode_options(seg)) == layout
    assert tcp.encode_options(seg) == bytes(TCP(options=layout))[20:]


def test_build_tcp_without_options_has_offset_5():
    seg = tcp.TcpSegment(sport=1, dport=2, flags=tcp.ACK, window=100, payload=b"x")
    out = tcp.build_tcp(seg, b"\x01\x02\x03\x04", b"\x05\x06\x07\x08")
    assert out[12] >> 4 == 5 and len(out) == 21


def test_build_tcp_refuses_options_over_40_bytes():
    """MSS + SACK-perm + timestamps + wscale leave room for 2 SACK blocks, not 4: building
    must fail rather than emit a header whose data offset lies."""
    seg = tcp.TcpSegment(mss=1460, sack_perm=True, tsval=1, tsecr=2, wscale=7,
                         sack=[(1, 2), (3, 4), (5, 6), (7, 8)])
    with pytest.raises(Exception):
        tcp.build_tcp(seg, b"\x01\x02\x03\x04", b"\x05\x06\x07\x08")


@WIRE
@given(ip_fields(), u16, u16, payloads)
def test_udp_datagram_equals_scapy(f, sport, dport, payload):
    ours = udp.build_udp(sport, dport, payload, f["src"], f["dst"])
    theirs = bytes(with_payload(scapy_ip(f, IPPROTO_UDP) / UDP(sport=sport, dport=dport), payload))[20:]
    assert ours == theirs


def _payload_summing_to_zero_checksum(sport, dport, body, src, dst) -> bytes:
    """Append a 16-bit word to an even-length body so the UDP checksum computes to 0."""
    length = 8 + len(body) + 2
    header = sport.to_bytes(2, "big") + dport.to_bytes(2, "big") + length.to_bytes(2, "big") + b"\0\0"
    s = (ones_sum(header) + ones_sum(body)
         + pseudo_header_sum(src, dst, IPPROTO_UDP, length)) % 0xFFFF
    return body + ((0xFFFF - s) % 0xFFFF).to_bytes(2, "big")


@WIRE
@given(ip_fields(), u16, u16, payloads)
def test_udp_zero_checksum_is_sent_as_all_ones(f, sport, dport, body):
    """RFC 768: a computed checksum of zero is transmitted as 0xffff (0 means 'none')."""
    body = body if len(body) % 2 == 0 else body[:-1]
    payload = _payload_summing_to_zero_checksum(sport, dport, body, f["src"], f["dst"])
    ours = udp.build_udp(sport, dport, payload, f["src"], f["dst"])
    assert ours[6:8] == b"\xff\xff"
    theirs = bytes(scapy_ip(f, IPPROTO_UDP) / UDP(sport=sport, dport=dport) / Raw(payload))[20:]
    assert ours == theirs
    parsed = udp.parse_udp(ours, f["src"], f["dst"])
    assert parsed.checksum == 0xFFFF and parsed.payload == payload


@WIRE
@given(icmp_plain_types.filter(bool), u8, u32, payloads)
def test_icmp_message_equals_scapy(type_, code, rest, payload):
    ours = icmp.build_icmp(type_, code, rest, payload)
    # scapy dissects our header, forgets the checksum and recomputes it over the same fields.
    theirs = ICMP(ours[:8])
    del theirs.chksum
    assert bytes(with_payload(theirs, payload)) == ours


@WIRE
@given(u16, u16, payloads.filter(any))
def test_icmp_echo_equals_scapy(ident, seq, payload):
    for type_ in (icmp.ECHO_REPLY, icmp.ECHO_REQUEST):
        ours = icmp.build_icmp(type_, 0, (ident << 16) | seq, payload)
        assert ours == bytes(with_payload(ICMP(type=type_, id=ident, seq=seq), payload))


@WIRE
@given(ip_fields(), tcp_segments())
def test_tcp_header_len_matches_the_encoding(f, seg):
    assert tcp.tcp_header_len(seg) == len(tcp.build_tcp(seg, f["src"], f["dst"])) - len(seg.payload)


@WIRE
@given(ip_fields(), tcp_segments(), st.binary(max_size=3))
def test_build_tcp_after_prefix_equals_scapy(f, seg, junk):
    """The one-pass hot path: IP header and segment in one buffer, checksum over the segment only."""
    ip_header = build_ip(f, IPPROTO_TCP, tcp.tcp_header_len(seg) + len(seg.payload))
    out = tcp.build_tcp_after(ip_header, seg, f["src"], f["dst"])
    assert isinstance(out, bytearray)
    assert bytes(out) == ip_header + tcp.build_tcp(seg, f["src"], f["dst"])
    theirs = TCP(bytes(out[20:]))
    del theirs.chksum
    assert bytes(out) == bytes(scapy_ip(f, IPPROTO_TCP) / theirs)
    # Whatever the prefix, only the segment is summed.
    assert tcp.build_tcp_after(junk, seg, f["src"], f["dst"])[len(junk):] == out[20:]


@WIRE
@given(ip_fields(), tcp_segments())
def test_partial_checksum_finished_by_the_kernel_equals_full(f, seg):
    """TUN offload (NEEDS_CSUM): the field holds the folded, uninverted pseudo-header sum."""
    partial = tcp.build_tcp(seg, f["src"], f["dst"], partial=True)
    full = tcp.build_tcp(seg, f["src"], f["dst"])
    assert partial[:16] == full[:16] and partial[18:] == full[18:]
    length = len(full)
    pseudo = f["src"] + f["dst"] + bytes([0, IPPROTO_TCP]) + length.to_bytes(2, "big")
    assert int.from_bytes(partial[16:18], "big") == 0xFFFF ^ scapy_checksum(pseudo)  # folded sum
    assert kernel_finish(partial) == full
