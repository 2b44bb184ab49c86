"""Every scapy-built packet parses to the field values scapy reports (DESIGN.md, tests layer 1)."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP

from stack.wire import icmp, ipv4, tcp, udp
from stack.wire.checksum import IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP

from wire_helpers import (WIRE, icmp_plain_types, options_as_fields, payloads, scapy_ip_layers,
                          scapy_option_lists, u8, u16, u32, with_payload)

buffer_types = st.sampled_from([bytes, bytearray, memoryview])


def check_ip(hdr: ipv4.IPv4Header, theirs: IP):
    assert hdr.ihl == theirs.ihl
    assert hdr.header_len == theirs.ihl * 4
    assert hdr.tos == theirs.tos
    assert hdr.total_length == theirs.len
    assert hdr.ident == theirs.id
    assert hdr.df == bool(theirs.flags.DF)
    assert hdr.mf == bool(theirs.flags.MF)
    assert hdr.frag_offset == theirs.frag * 8
    assert hdr.is_fragment == (bool(theirs.flags.MF) or theirs.frag != 0)
    assert hdr.ttl == theirs.ttl
    assert hdr.proto == theirs.proto
    assert hdr.checksum == theirs.chksum
    assert ipv4.ntoa(hdr.src) == theirs.src
    assert ipv4.ntoa(hdr.dst) == theirs.dst
    assert hdr.options == bytes(theirs)[20:theirs.ihl * 4]


@WIRE
@given(scapy_ip_layers(proto=253, fragments=True), payloads, st.binary(max_size=8), buffer_types)
def test_ipv4_parses_to_scapy_fields(layer, payload, padding, buf):
    wire = bytes(with_payload(layer, payload))
    theirs = IP(wire)
    hdr, body = ipv4.parse_ipv4(buf(bytearray(wire + padding)))  # link padding after total_length
    check_ip(hdr, theirs)
    assert bytes(body) == payload


@WIRE
@given(scapy_ip_layers(proto=IPPROTO_TCP), u16, u16, u32, u32, st.integers(0, 0x1FF), st.integers(0, 7),
       u16, u16, scapy_option_lists(), payloads, buffer_types)
def test_tcp_parses_to_scapy_fields(layer, sport, dport, seq, ack, flags, reserved, window, urg, options,
                                    payload, buf):
    pkt = layer / TCP(sport=sport, dport=dport, seq=seq, ack=ack, flags=flags, reserved=reserved,
                      window=window, urgptr=urg, options=options)
    wire = bytes(with_payload(pkt, payload))
    theirs = IP(wire)
    hdr, body = ipv4.parse_ipv4(buf(bytearray(wire)))
    check_ip(hdr, theirs)
    seg = tcp.parse_tcp(body, hdr.src, hdr.dst)  # checksum verified against scapy's
    t = theirs[TCP]
    assert (seg.sport, seg.dport, seg.seq, seg.ack) == (t.sport, t.dport, t.seq, t.ack)
    assert seg.flags == int(t.flags) & 0xFF
    assert (seg.window, seg.urg, seg.checksum) == (t.window, t.urgptr, t.chksum)
    assert seg.payload == payload == bytes(t.payload)
    assert seg.seg_len == len(payload) + bool(flags & tcp.SYN) + bool(flags & tcp.FIN)
    expected = options_as_fields(t.options)
    assert expected == options_as_fields(options)  # scapy reports what it was given
    got = dict(mss=seg.mss, wscale=seg.wscale, sack_perm=seg.sack_perm,
               sack=[tuple(b) for b in seg.sack] if seg.sack is not None else None,
               tsval=seg.tsval, tsecr=seg.tsecr)
    assert got == expected


@WIRE
@given(scapy_ip_layers(proto=IPPROTO_UDP), u16, u16, payloads, st.booleans(), st.binary(max_size=6))
def test_udp_parses_to_scapy_fields(layer, sport, dport, payload, no_checksum, trailer):
    pkt = with_payload(layer / UDP(sport=sport, dport=dport, chksum=0 if no_checksum else None), payload)
    wire = bytes(pkt)
    theirs = IP(wire)
    hdr, body = ipv4.parse_ipv4(wire)
    check_ip(hdr, theirs)
    d = udp.parse_udp(body, hdr.src, hdr.dst)
    u = theirs[UDP]
    assert (d.sport, d.dport, d.length, d.checksum) == (u.sport, u.dport, u.len, u.chksum)
    assert d.payload == payload
    if no_checksum:
        assert d.checksum == 0
    # Octets after the UDP length (inside the IP payload) are not UDP data (RFC 768).
    assert udp.parse_udp(bytes(body) + trailer, hdr.src, hdr.dst).payload == payload


@WIRE
@given(scapy_ip_layers(proto=IPPROTO_ICMP), st.sampled_from([icmp.ECHO_REPLY, icmp.ECHO_REQUEST]),
       u8, u16, u16, payloads)
def test_icmp_echo_parses_to_scapy_fields(layer, type_, code, ident, seq, payload):
    wire = bytes(with_payload(layer / ICMP(type=type_, code=code, id=ident, seq=seq), payload))
    theirs = IP(wire)
    hdr, body = ipv4.parse_ipv4(wire)
    m = icmp.parse_icmp(body)
    i = theirs[ICMP]
    assert (m.type, m.code, m.checksum, m.ident, m.sequence) == (i.type, i.code, i.chksum, i.id, i.seq)
    assert m.payload == payload


@WIRE
@given(scapy_ip_layers(proto=IPPROTO_ICMP), icmp_plain_types.filter(bool), u8, u32, payloads)
def test_icmp_any_type_parses_to_scapy_fields(layer, type_, code, rest, payload):
    """Any type: scapy names the 4 'rest' octets per type (id/seq, gw, unused, mtu...), so
    those are compared raw; scapy computes the checksum."""
    message = ICMP(bytes([type_, code, 0, 0]) + rest.to_bytes(4, "big"))
    del message.chksum
    wire = bytes(with_payload(layer / message, payload))
    hdr, body = ipv4.parse_ipv4(wire)
    m = icmp.parse_icmp(body)
    i = IP(wire)[ICMP]
    assert (m.type, m.code, m.checksum) == (i.type, i.code, i.chksum)
    assert m.rest == rest == int.from_bytes(bytes(i)[4:8], "big")
    assert m.payload == payload


@WIRE
@given(scapy_ip_layers(proto=IPPROTO_UDP), u16, u16, st.binary(min_size=0, max_size=20))
def test_header_of_reencodes_the_parsed_header(layer, sport, dport, payload):
    """header_of(parse) gives back the header as received (options included), for headers
    whose reserved flag bit is clear."""
    layer.flags = int(layer.flags) & 3
    wire = bytes(layer / UDP(sport=sport, dport=dport) / payload)
    hdr, _ = ipv4.parse_ipv4(wire)
    assert ipv4.header_of(hdr) == wire[:hdr.header_len]


@WIRE
@given(payloads, st.sampled_from(["bytes", "view_of_bytes", "view_of_bytearray"]))
def test_tcp_payload_is_a_view_only_of_an_immutable_packet(payload, kind):
    """parse_tcp(view=True) keeps a view of a packet read as ``bytes`` (the receive buffer then holds
    it without a copy); any other buffer, which its owner may reuse, is copied; without ``view``
    the payload is always ``bytes``."""
    raw = bytes(TCP(sport=1, dport=2, flags="A") / payload)
    data = {"bytes": raw, "view_of_bytes": memoryview(raw),
            "view_of_bytearray": memoryview(bytearray(raw))}[kind]
    seg = tcp.parse_tcp(data, view=True)
    assert seg.payload == payload and tcp.parse_tcp(data).payload == payload
    assert type(tcp.parse_tcp(data).payload) is bytes
    if kind == "view_of_bytes":
        assert type(seg.payload) is memoryview and seg.payload.obj is raw
    else:
        assert type(seg.payload) is bytes
        if kind == "view_of_bytearray":
            data[20:] = bytes(len(payload))  # the owner reuses its buffer: the segment keeps its octets
            assert seg.payload == payload
