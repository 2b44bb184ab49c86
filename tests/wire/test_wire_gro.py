"""GRO chains (stack/wire/gro.py): which packets merge, and what the merged segment is (Linux
net/ipv4/tcp_offload.c tcp_gro_receive's rules)."""
from __future__ import annotations

import pytest

from hypothesis import given
from hypothesis import strategies as st

from stack.wire.gro import GRO_MAX_SIZE, chain_start
from stack.wire.tcp import ACK, FIN, PSH, RST, SYN, URG, TcpSegment
from stack.wire.tcpip import parse_ipv4_tcp_fields, template_for

from wire_helpers import WIRE

SRC, DST = bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2])
MSS = 1448


def packet(seq, size=MSS, flags=ACK, ack=7, window=500, tsval=10, tsecr=20, sport=40000, src=SRC, dst=DST,
           ident=1, ttl=None):
    seg = TcpSegment(sport, 9, seq & 0xFFFFFFFF, ack, flags, window, bytes([seq & 0xFF]) * size,
                     tsval=tsval, tsecr=tsecr)
    raw = template_for(src, dst).build(seg, ident)
    assert parse_ipv4_tcp_fields(raw) is not None
    return raw


def merge(chain, raw) -> bool:
    """As NetStack.receive_batch offers a packet: ``take`` without a parse, else parse and ``offer``."""
    if chain.take(raw):
        return True
    fields = parse_ipv4_tcp_fields(raw)
    return fields is not None and chain.offer(fields, raw)


def start(raw):
    return chain_start(parse_ipv4_tcp_fields(raw), raw)


def chain_of(*packets):
    chain = start(packets[0])
    assert chain is not None
    return chain, [merge(chain, p) for p in packets[1:]]


def test_in_sequence_full_sized_segments_merge_into_one():
    chain, merged = chain_of(*(packet(1000 + i * MSS, ident=i) for i in range(5)))
    assert merged == [True] * 4 and len(chain) == 5
    seg = chain.segment()
    assert (seg.seq, seg.ack, seg.flags, seg.window, seg.tsval, seg.tsecr) == (1000, 7, ACK, 500, 10, 20)
    assert seg.payload == b"".join(packet(1000 + i * MSS)[52:] for i in range(5))
    assert seg.gso_size == MSS
    assert [s.seq for s in chain.segments()] == [1000 + i * MSS for i in range(5)]
    assert all(s.gso_size == 0 and len(s.payload) == MSS for s in chain.segments())


def test_a_lone_packet_is_its_own_segment():
    chain, _ = chain_of(packet(1000))
    seg = chain.segment()
    assert seg.gso_size == 0 and seg.payload == packet(1000)[52:] and seg.seq == 1000


def test_the_sequence_space_wraps_inside_a_chain():
    first = 0xFFFFFFFF - 100
    chain, merged = chain_of(packet(first), packet(first + MSS))
    assert merged == [True] and chain.segments()[1].seq == (first + MSS) & 0xFFFFFFFF


@pytest.mark.parametrize("other", [
    dict(seq=1000 + 2 * MSS),               # a gap
    dict(seq=1000),                         # a retransmission (overlap)
    dict(ack=8), dict(window=501),          # another ACK number, window
    dict(tsval=11), dict(tsecr=21),         # another timestamp option (Linux: the option bytes differ)
    dict(tsval=None, tsecr=None),           # the option dropped
    dict(sport=40001), dict(src=bytes([192, 0, 2, 3])), dict(dst=bytes([192, 0, 2, 3])),  # another flow
    dict(size=0),                           # a pure ACK (a duplicate ACK counts: never merged)
    dict(size=MSS + 1),                     # longer than the chain's MSS
    dict(flags=ACK | FIN), dict(flags=ACK | RST), dict(flags=ACK | SYN), dict(flags=ACK | URG),
    dict(flags=ACK | 0x40), dict(flags=ACK | 0x80),  # ECE, CWR
], ids=repr)
def test_a_packet_that_differs_completes_the_chain(other):
    second = {"seq": 1000 + MSS, **other}
    chain, merged = chain_of(packet(1000), packet(**second))
    assert merged == [False] and len(chain) == 1


@pytest.mark.parametrize("last", [dict(flags=ACK | PSH), dict(size=100)], ids=["PSH", "short"])
def test_psh_or_a_short_segment_is_merged_and_closes_the_chain(last):
    second = packet(1000 + MSS, **last)
    chain, merged = chain_of(packet(1000), second, packet(1000 + MSS + len(second) - 52))
    assert merged == [True, False] and len(chain) == 2
    assert chain.segment().flags == last.get("flags", ACK)


@pytest.mark.parametrize("head", [dict(flags=ACK | PSH), dict(size=0), dict(flags=SYN | ACK), dict(flags=FIN | ACK)],
                         ids=["PSH", "pure ACK", "SYN,ACK", "FIN"])
def test_only_plain_data_heads_a_chain(head):
    assert start(packet(1000, **head)) is None


def test_a_chain_stays_under_64_kib():
    chain = start(packet(1000))
    seq, n = 1000 + MSS, 1
    while merge(chain, packet(seq)):
        seq, n = seq + MSS, n + 1
    assert n == (GRO_MAX_SIZE - 52 - 1) // MSS  # 45: the next one would make the datagram 65,536 bytes
    assert len(chain.segment().payload) + 52 < GRO_MAX_SIZE


def test_without_timestamps_too():
    chain, merged = chain_of(*(packet(1000 + i * 1460, size=1460, tsval=None, tsecr=None) for i in range(3)))
    assert merged == [True, True] and chain.segment().tsval is None


edits = st.one_of(
    st.fixed_dictionaries({}, optional={
        "seq": st.sampled_from([1000 + MSS, 1000 + MSS - 1, 1000 + MSS + 1, 1000]),
        "size": st.sampled_from([MSS, MSS - 1, 1]), "flags": st.sampled_from([ACK, ACK | PSH, ACK | FIN, PSH]),
        "ack": st.sampled_from([7, 8]), "window": st.sampled_from([500, 501]), "tsval": st.sampled_from([10, 11]),
        "tsecr": st.sampled_from([20, 21]), "sport": st.sampled_from([40000, 40001]),
        "ident": st.integers(0, 0xFFFF)}),
    st.tuples(st.integers(0, 51) | st.integers(0, MSS + 51), st.integers(0, 255)))  # a byte of a valid next packet set


@WIRE
@given(st.lists(edits, min_size=1, max_size=4))
def test_take_merges_only_what_a_parse_and_offer_merge(steps):
    """GroChain.take (no parse: the header under a mask, the IP checksum from the first one's) merges a
    packet only if parse_ipv4_tcp_fields accepts it and offer does; every such packet of the chain's
    length without PSH it merges itself. Fed the same packets, a chain built the netstack's way (take,
    else parse and offer) and one built by offer alone hold the same packets."""
    netstack, offered = start(packet(1000)), start(packet(1000))
    for step in steps:
        if isinstance(step, dict):
            raw = packet(**{"seq": netstack.end, **step})
        else:
            raw = bytearray(packet(netstack.end))
            raw[step[0]] = step[1]
            raw = bytes(raw)
        fields = parse_ipv4_tcp_fields(raw)
        by_offer = fields is not None and offered.offer(fields, raw)
        room = netstack.room
        by_take = netstack.take(raw)
        assert not by_take or by_offer
        if len(raw) == netstack.length and room and not raw[33] & PSH:
            assert by_take == by_offer, (step, by_take, by_offer)
        if not by_take and fields is not None:
            netstack.offer(fields, raw)
        assert netstack.packets == offered.packets and netstack.room == offered.room
    assert netstack.segment().payload == offered.segment().payload


@WIRE
@given(st.lists(edits, min_size=1, max_size=6))
def test_take_from_merges_a_run_as_take_does_one_at_a_time(steps):
    """GroChain.take_from over an iterator (the runtime's read, as NetStack.receive_batch hands it
    over) merges what ``take`` merges one packet at a time, up to the first packet ``take`` refuses:
    it returns that one, and the iterator goes on right after it."""
    one, run = start(packet(1000)), start(packet(1000))
    raws, refused, end = [], None, one.end
    for step in steps:
        if isinstance(step, dict):
            raw = packet(**{"seq": end, **step})
        else:
            raw = bytearray(packet(end))
            raw[step[0]] = step[1]
            raw = bytes(raw)
        raws.append(raw)
        if refused is None:
            if one.take(raw):
                end = one.end
            else:
                refused = len(raws) - 1
    rest = iter(raws)
    got = run.take_from(rest)
    assert run.packets == one.packets and run.room == one.room and run.end == one.end
    if refused is None:
        assert got is None and list(rest) == []
    else:
        assert got is raws[refused] and list(rest) == raws[refused + 1:]


def test_take_from_stops_when_the_chain_is_full():
    chain = start(packet(1000))
    raws = [packet(1000 + i * MSS) for i in range(1, 50)]
    rest = iter(raws)
    assert chain.take_from(rest) is raws[44] and len(chain) == 45 and not chain.room
    assert next(rest) is raws[45]
    assert chain.take_from(iter(raws[44:])) is raws[44]  # full: not even the next packet is merged


def test_take_checks_the_ip_header_checksum_on_its_own():
    """A next packet whose IP Identification is off by one and whose TCP checksum field is off the other
    way sums to what a valid packet sums to, but its IP header checksum is wrong (RFC 791): refused."""
    chain = start(packet(1000))
    raw = bytearray(packet(1000 + MSS, ident=7))
    raw[4:6] = (int.from_bytes(raw[4:6], "big") + 1).to_bytes(2, "big")
    raw[36:38] = (int.from_bytes(raw[36:38], "big") - 1).to_bytes(2, "big")
    assert parse_ipv4_tcp_fields(bytes(raw)) is None
    assert not chain.take(bytes(raw)) and not merge(chain, bytes(raw))
    assert chain.take(packet(1000 + MSS, ident=8))
