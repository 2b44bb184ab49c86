"""GRO chains (stack/wire/gro.py): which packets merge, and what the merged segment is (Linux
net/ipv4/tcp_offload.c tcp_gro_receive's rules)."""
from __future__ import annotations

import pytest

from stack.wire.gro import GRO_MAX_SIZE, chain_start
from stack.wire.tcp import ACK, FIN, PSH, RST, SYN, URG, TcpSegment
from stack.wire.tcpip import parse_ipv4_tcp_fields, template_for

SRC, DST = bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2])
MSS = 1448


def fields(seq, size=MSS, flags=ACK, ack=7, window=500, tsval=10, tsecr=20, sport=40000, src=SRC):
    seg = TcpSegment(sport, 9, seq & 0xFFFFFFFF, ack, flags, window, bytes([seq & 0xFF]) * size,
                     tsval=tsval, tsecr=tsecr)
    f = parse_ipv4_tcp_fields(template_for(src, DST).build(seg, 1))
    assert f is not None
    return f


def chain_of(*packets):
    chain = chain_start(packets[0])
    assert chain is not None
    return chain, [chain.offer(p) for p in packets[1:]]


def test_in_sequence_full_sized_segments_merge_into_one():
    chain, merged = chain_of(*(fields(1000 + i * MSS) for i in range(5)))
    assert merged == [True] * 4 and len(chain) == 5
    seg = chain.segment()
    assert (seg.seq, seg.ack, seg.flags, seg.window, seg.tsval, seg.tsecr) == (1000, 7, ACK, 500, 10, 20)
    assert seg.payload == b"".join(fields(1000 + i * MSS)[12] for i in range(5))
    assert seg.gso_size == MSS
    assert [s.seq for s in chain.segments()] == [1000 + i * MSS for i in range(5)]
    assert all(s.gso_size == 0 and len(s.payload) == MSS for s in chain.segments())


def test_a_lone_packet_is_its_own_segment():
    chain, _ = chain_of(fields(1000))
    seg = chain.segment()
    assert seg.gso_size == 0 and seg.payload == fields(1000)[12] and seg.seq == 1000


def test_the_sequence_space_wraps_inside_a_chain():
    start = 0xFFFFFFFF - 100
    chain, merged = chain_of(fields(start), fields(start + MSS))
    assert merged == [True] and chain.segments()[1].seq == (start + MSS) & 0xFFFFFFFF


@pytest.mark.parametrize("other", [
    dict(seq=1000 + 2 * MSS),               # a gap
    dict(seq=1000),                         # a retransmission (overlap)
    dict(ack=8), dict(window=501),          # another ACK number, window
    dict(tsval=11), dict(tsecr=21),         # another timestamp option (Linux: the option bytes differ)
    dict(tsval=None, tsecr=None),           # the option dropped
    dict(sport=40001), dict(src=bytes([192, 0, 2, 3])),  # another flow
    dict(size=0),                           # a pure ACK (a duplicate ACK counts: never merged)
    dict(size=MSS + 1),                     # longer than the chain's MSS
    dict(flags=ACK | FIN), dict(flags=ACK | RST), dict(flags=ACK | SYN), dict(flags=ACK | URG),
    dict(flags=ACK | 0x40), dict(flags=ACK | 0x80),  # ECE, CWR
], ids=repr)
def test_a_packet_that_differs_completes_the_chain(other):
    second = {"seq": 1000 + MSS, **other}
    chain, merged = chain_of(fields(1000), fields(**second))
    assert merged == [False] and len(chain) == 1


@pytest.mark.parametrize("last", [dict(flags=ACK | PSH), dict(size=100)], ids=["PSH", "short"])
def test_psh_or_a_short_segment_is_merged_and_closes_the_chain(last):
    chain, merged = chain_of(fields(1000), fields(1000 + MSS, **last), fields(1000 + 2 * MSS + 100))
    assert merged == [True, False] and len(chain) == 2
    assert chain.segment().flags == last.get("flags", ACK)


@pytest.mark.parametrize("head", [dict(flags=ACK | PSH), dict(size=0), dict(flags=SYN | ACK), dict(flags=FIN | ACK)],
                         ids=["PSH", "pure ACK", "SYN,ACK", "FIN"])
def test_only_plain_data_heads_a_chain(head):
    assert chain_start(fields(1000, **head)) is None


def test_a_chain_stays_under_64_kib():
    chain = chain_start(fields(1000))
    seq, n = 1000 + MSS, 1
    while chain.offer(fields(seq)):
        seq, n = seq + MSS, n + 1
    assert n == (GRO_MAX_SIZE - 52 - 1) // MSS  # 45: the next one would make the datagram 65,536 bytes
    assert len(chain.segment().payload) + 52 < GRO_MAX_SIZE


def test_without_timestamps_too():
    chain, merged = chain_of(*(fields(1000 + i * 1460, size=1460, tsval=None, tsecr=None) for i in range(3)))
    assert merged == [True, True] and chain.segment().tsval is None
