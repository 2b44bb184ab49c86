"""The IPv4+TCP fast paths (stack/wire/tcpip.py) against the general code and scapy.

Output: every datagram ``DatagramTemplate.build`` makes is byte for byte what
``build_ipv4`` + ``build_tcp_after`` make of the same segment, and what scapy makes.
Input: whenever ``parse_ipv4_tcp`` accepts a packet, ``parse_ipv4`` + ``parse_tcp`` accept
it too and give the same addresses and segment; it accepts every valid packet of the
common shape, and nothing that the general path would drop.
"""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP

from stack.wire import tcp
from stack.wire.checksum import IPPROTO_TCP
from stack.wire.errors import MalformedPacket
from stack.wire.ipv4 import build_ipv4, parse_ipv4
from stack.wire import vnet
from stack.wire.tcpip import (DatagramTemplate, SegmentTrain, parse_ipv4_tcp, parse_ipv4_tcp_fields, segment_of,
                              template_for)

from wire_helpers import (FUZZ, WIRE, addrs, kernel_finish, ntoa, payloads, scapy_ip_layers, scapy_option_lists,
                          tcp_segments, u8, u16, u32, with_payload)

SLOTS = tcp.TcpSegment.__slots__


def general(src, dst, seg, ident) -> bytes:
    """What stack/netstack.py builds without the fast path."""
    tcp_len = tcp.tcp_header_len(seg) + len(seg.payload)
    return bytes(tcp.build_tcp_after(build_ipv4(src, dst, IPPROTO_TCP, tcp_len, ident), seg, src, dst))


def same_segment(a: tcp.TcpSegment, b: tcp.TcpSegment) -> bool:
    return all(getattr(a, k) == getattr(b, k) for k in SLOTS) and type(a.payload) is type(b.payload)


@st.composite
def common_segments(draw):
    """Segments of the fast path's shape (no options, or timestamps only), every field random,
    the payload as bytes, bytearray (a send-buffer slice) or memoryview."""
    tsval = draw(st.none() | u32)
    payload = draw(payloads)
    payload = draw(st.sampled_from([bytes, bytearray, memoryview]))(payload)
    return tcp.TcpSegment(sport=draw(u16), dport=draw(u16), seq=draw(u32), ack=draw(u32), flags=draw(u8),
                          window=draw(u16), urg=draw(u16), payload=payload, tsval=tsval,
                          tsecr=draw(st.none() | u32) if tsval is not None else None)


# ------------------------------------------------------------------ output

@WIRE
@given(addrs, addrs, u16, common_segments())
def test_fast_build_equals_the_general_builder(src, dst, ident, seg):
    assert DatagramTemplate(src, dst).build(seg, ident) == general(src, dst, seg, ident)


@WIRE
@given(addrs, addrs, u16, tcp_segments())
def test_any_segment_is_built_identically_or_refused(src, dst, ident, seg):
    built = DatagramTemplate(src, dst).build(seg, ident)
    other_options = seg.mss is not None or seg.wscale is not None or seg.sack_perm or bool(seg.sack)
    if other_options:
        assert built is None
    else:
        assert built == general(src, dst, seg, ident)


@WIRE
@given(addrs, addrs, u16, common_segments())
def test_fast_build_equals_scapy(src, dst, ident, seg):
    options = [("NOP", None), ("NOP", None), ("Timestamp", (seg.tsval, seg.tsecr or 0))] \
        if seg.tsval is not None else []
    layer = (IP(src=ntoa(src), dst=ntoa(dst), id=ident, ttl=64, flags=2, proto=IPPROTO_TCP)
             / TCP(sport=seg.sport, dport=seg.dport, seq=seg.seq, ack=seg.ack, flags=seg.flags,
                   window=seg.window, urgptr=seg.urg, options=options))
    assert DatagramTemplate(src, dst).build(seg, ident) == bytes(with_payload(layer, bytes(seg.payload)))


@pytest.mark.parametrize("options", [dict(mss=1460), dict(wscale=7), dict(sack_perm=True),
                                     dict(sack=[(1, 2)], tsval=1, tsecr=2)])
def test_segments_with_other_options_are_left_to_the_general_builder(options):
    seg = tcp.TcpSegment(1, 2, 3, 4, tcp.ACK, 5, b"data", **options)
    assert DatagramTemplate(b"\x01\x02\x03\x04", b"\x05\x06\x07\x08").build(seg, 9) is None


@st.composite
def trains(draw):
    """Segment trains as a sender makes them: ACK (maybe with other flags), timestamps or none, 1-4
    payloads of one size (any size, the last one too), SEQ anywhere (wrapping too)."""
    size = draw(st.integers(1, 1460))
    count = draw(st.integers(1, 4))
    payloads = [bytes(draw(st.binary(min_size=size, max_size=size))) for _ in range(count)]
    tsval = draw(st.none() | u32)
    return SegmentTrain(draw(u16), draw(u16), draw(u32), draw(u32), draw(st.sampled_from([tcp.ACK, tcp.ACK | tcp.ECE])),
                        draw(u16), tsval, draw(u32) if tsval is not None else None, payloads, draw(st.booleans()))


@WIRE
@given(addrs, addrs, u16, trains())
def test_a_train_is_built_as_its_segments_are_one_by_one(src, dst, ident, train):
    """build_train equals build (and so the general builder) of each segment, Identifications in turn."""
    out = []
    last = DatagramTemplate(src, dst).build_train(train, ident, out)
    segs = train.segments()
    assert last == (ident + len(segs)) & 0xFFFF
    assert out == [general(src, dst, seg, (ident + 1 + i) & 0xFFFF) for i, seg in enumerate(segs)]
    assert [s.seq for s in segs] == [(train.seq + i * len(train.payloads[0])) & 0xFFFFFFFF for i in range(len(segs))]
    assert [bool(s.flags & tcp.PSH) for s in segs] == [train.psh and i == len(segs) - 1 for i in range(len(segs))]


@WIRE
@given(addrs, addrs, u16, trains())
def test_a_train_is_what_scapy_builds(src, dst, ident, train):
    out = []
    DatagramTemplate(src, dst).build_train(train, ident, out)
    for i, (seg, raw) in enumerate(zip(train.segments(), out)):
        options = [("NOP", None), ("NOP", None), ("Timestamp", (seg.tsval, seg.tsecr))] if seg.tsval is not None else []
        layer = (IP(src=ntoa(src), dst=ntoa(dst), id=(ident + 1 + i) & 0xFFFF, ttl=64, flags=2, proto=IPPROTO_TCP)
                 / TCP(sport=seg.sport, dport=seg.dport, seq=seg.seq, ack=seg.ack, flags=seg.flags,
                       window=seg.window, options=options))
        assert raw == bytes(with_payload(layer, seg.payload))


# ------------------------------------------------------------------ under TUN offloads

def layered_partial(src, dst, seg, ident) -> bytes:
    """What NetStack._wrap_segment writes under offloads: virtio-net header, IP, TCP with the
    pseudo-header sum in the checksum field, then the payload (a writev pair, joined here)."""
    tcp_len = tcp.tcp_header_len(seg) + len(seg.payload)
    head = vnet.gso_header(20, tcp_len - len(seg.payload), seg.gso_size, 20 + tcp_len)
    built = tcp.build_tcp_after(head + build_ipv4(src, dst, IPPROTO_TCP, tcp_len, ident), seg, src, dst, partial=True)
    return joined(built)


def joined(built) -> bytes:
    return b"".join(bytes(p) for p in built) if type(built) is tuple else bytes(built)


@WIRE
@given(addrs, addrs, u16, common_segments(), st.sampled_from([0, 536, 1448]))
def test_partial_build_equals_the_layered_offload_builder(src, dst, ident, seg, gso_size):
    seg.gso_size = gso_size
    built = DatagramTemplate(src, dst).build_partial(seg, ident)
    assert (type(built) is tuple) == bool(seg.payload)  # the payload goes by itself: one writev, no copy
    if seg.payload:
        assert built[1] is seg.payload
    assert joined(built) == layered_partial(src, dst, seg, ident)


@WIRE
@given(addrs, addrs, u16, tcp_segments())
def test_partial_build_refuses_other_options(src, dst, ident, seg):
    built = DatagramTemplate(src, dst).build_partial(seg, ident)
    other_options = seg.mss is not None or seg.wscale is not None or seg.sack_perm or bool(seg.sack)
    assert (built is None) == other_options
    if built is not None:
        assert joined(built) == layered_partial(src, dst, seg, ident)


@WIRE
@given(addrs, addrs, u16, common_segments())
def test_partial_build_finished_by_the_kernel_is_the_full_datagram(src, dst, ident, seg):
    """The kernel (NEEDS_CSUM) sums from csum_start with the field as it is, folds, inverts: the
    datagram ``build`` makes."""
    packet = joined(DatagramTemplate(src, dst).build_partial(seg, ident))
    flags, gso_type, _, _, csum_start, csum_offset = vnet.VNET_HDR.unpack_from(packet)
    assert flags == vnet.F_NEEDS_CSUM and gso_type == vnet.GSO_NONE and (csum_start, csum_offset) == (20, 16)
    ip_packet = packet[vnet.VNET_HDR_LEN:]
    finished = ip_packet[:csum_start] + kernel_finish(ip_packet[csum_start:], csum_offset)
    assert finished == DatagramTemplate(src, dst).build(seg, ident)


@WIRE
@given(addrs, addrs, u16, common_segments(), st.booleans())
def test_trusted_fast_parse_agrees_with_the_general_offload_parser(src, dst, ident, seg, corrupt):
    """What the kernel vouched for (NEEDS_CSUM or DATA_VALID) is not checksummed, by either path;
    the payload stays a view of the packet, as parse_tcp(view=True) keeps it."""
    packet = bytearray(general(src, dst, seg, ident))
    if corrupt:
        packet[36] ^= 0x5A  # the TCP checksum field: a partial one looks like this
    packet = bytes(packet)
    fields = parse_ipv4_tcp_fields(memoryview(packet), trusted=True, view=True)
    assert fields is not None
    hdr, payload = parse_ipv4(memoryview(packet))
    want = tcp.parse_tcp(payload, view=True)
    got = segment_of(fields)
    assert fields[:2] == (hdr.src, hdr.dst)
    assert all(getattr(got, k) == getattr(want, k) for k in SLOTS)
    assert type(got.payload) is type(want.payload) is memoryview
    assert (parse_ipv4_tcp_fields(packet) is None) == corrupt  # untrusted: still checked


def test_templates_are_cached_per_address_pair():
    a, b = b"\xc0\x00\x02\x02", b"\xc0\x00\x02\x01"
    assert template_for(a, b) is template_for(bytes(a), bytes(b))
    assert template_for(a, b) is not template_for(b, a)


# ------------------------------------------------------------------ input

def general_parse(packet):
    hdr, payload = parse_ipv4(packet)
    return hdr, tcp.parse_tcp(payload, hdr.src, hdr.dst)


def assert_agrees(packet: bytes) -> None:
    """The fast parser's answer, if any, is the general parser's."""
    fast = parse_ipv4_tcp(packet)
    if fast is None:
        return
    hdr, seg = general_parse(packet)  # must not raise: the fast path accepted the packet
    assert hdr.proto == IPPROTO_TCP and not hdr.is_fragment and not hdr.reserved and hdr.ihl == 5
    assert hdr.total_length == len(packet)
    assert fast[:2] == (hdr.src, hdr.dst)
    assert same_segment(fast[2], seg), (fast[2], seg)


@WIRE
@given(addrs, addrs, u16, common_segments())
def test_fast_parse_takes_every_common_datagram(src, dst, ident, seg):
    packet = general(src, dst, seg, ident)
    fast = parse_ipv4_tcp(packet)
    assert fast is not None
    assert_agrees(packet)


@WIRE
@given(addrs, addrs, u16, tcp_segments(), u8, u8, st.booleans())
def test_fast_parse_agrees_with_the_general_parser(src, dst, ident, seg, ttl, tos, df):
    segment = tcp.build_tcp(seg, src, dst)
    packet = build_ipv4(src, dst, IPPROTO_TCP, len(segment), ident, ttl=ttl, df=df, tos=tos) + segment
    fast = parse_ipv4_tcp(packet)
    options = tcp.tcp_header_len(seg) - 20
    assert (fast is None) == (options not in (0, 12) or seg.mss is not None or seg.wscale is not None
                              or seg.sack_perm or bool(seg.sack))
    assert_agrees(packet)


@FUZZ
@given(addrs, addrs, u16, common_segments(), st.lists(st.tuples(st.integers(0, 2100), u8), max_size=3),
       st.integers(-3, 3))
def test_fast_parse_never_accepts_what_the_general_path_drops(src, dst, ident, seg, edits, cut):
    """Corrupt bytes anywhere (checksums, lengths, version, offsets) or cut/pad the packet."""
    packet = bytearray(general(src, dst, seg, ident))
    for pos, value in edits:
        if pos < len(packet):
            packet[pos] = value
    if cut < 0:
        del packet[cut:]
    else:
        packet += b"\x00" * cut
    packet = bytes(packet)
    if parse_ipv4_tcp(packet) is None:
        return
    assert_agrees(packet)


@WIRE
@given(scapy_ip_layers(IPPROTO_TCP), u16, u16, u32, u32, u8, u16, scapy_option_lists(), payloads)
def test_fast_parse_of_scapy_packets(ip_layer, sport, dport, seq, ack, flags, window, options, payload):
    packet = bytes(with_payload(ip_layer / TCP(sport=sport, dport=dport, seq=seq, ack=ack, flags=flags,
                                               window=window, options=options), payload))
    assert_agrees(packet)


def test_fast_parse_rejects_a_bad_tcp_checksum_the_general_parser_drops():
    seg = tcp.TcpSegment(80, 1234, 1, 2, tcp.ACK | tcp.PSH, 100, b"hello", tsval=5, tsecr=6)
    packet = bytearray(general(b"\xc0\x00\x02\x01", b"\xc0\x00\x02\x02", seg, 7))
    assert parse_ipv4_tcp(bytes(packet)) is not None
    packet[-1] ^= 1
    assert parse_ipv4_tcp(bytes(packet)) is None
    with pytest.raises(MalformedPacket) as exc:
        general_parse(bytes(packet))
    assert exc.value.reason == "tcp_checksum"


def test_fast_parse_rejects_a_bad_header_checksum():
    seg = tcp.TcpSegment(80, 1234, 1, 2, tcp.ACK, 100, b"x")
    packet = bytearray(general(b"\xc0\x00\x02\x01", b"\xc0\x00\x02\x02", seg, 7))
    packet[10] ^= 0x10
    assert parse_ipv4_tcp(bytes(packet)) is None
    with pytest.raises(MalformedPacket):
        general_parse(bytes(packet))
