"""The IP layer (stack/ip): validation, ICMP echo and errors, UDP port unreachable, fragment
reassembly with its bounds, in virtual time, with scapy as the oracle."""
from __future__ import annotations

import random
import socket

import pytest
from scapy.all import ICMP, IP, TCP, UDP, fragment, raw
from scapy.utils import checksum as scapy_checksum

from stack.netstack import NetStack as Host
from stack.ip.reassembly import Reassembler
from stack.wire.ipv4 import aton, parse_ipv4

ME, PEER = "192.0.2.2", "192.0.2.1"


@pytest.fixture
def host():
    return Host(aton(ME), mtu=1500, rng=random.Random(1))


def _out(host, now=0.0):
    return [IP(p) for p in host.take_output(now)]


def test_echo_request_gets_reply_with_same_id_seq_data(host):
    """RFC 792: echo reply mirrors identifier, sequence number and data; checksums valid (scapy)."""
    host.receive(raw(IP(src=PEER, dst=ME) / ICMP(type=8, id=0x1234, seq=7) / b"ping data"), 0.0)
    [reply] = _out(host)
    assert (reply.src, reply.dst) == (ME, PEER)
    assert (reply[ICMP].type, reply[ICMP].id, reply[ICMP].seq) == (0, 0x1234, 7)
    assert bytes(reply[ICMP].payload) == b"ping data"
    assert scapy_checksum(raw(reply)[:20]) == 0 and scapy_checksum(raw(reply[ICMP])) == 0  # both valid


def test_udp_to_closed_port_gets_port_unreachable_quoting_header_and_8_octets(host):
    """RFC 1122 3.2.2 / 4.1.3.1: ICMP port unreachable, quoting the IP header and the UDP header."""
    dgram = raw(IP(src=PEER, dst=ME, id=99) / UDP(sport=5555, dport=9) / b"hello")
    host.receive(dgram, 0.0)
    [err] = _out(host)
    assert (err[ICMP].type, err[ICMP].code) == (3, 3)
    quoted = bytes(err[ICMP].payload)
    assert quoted == dgram[:28]
    assert host.drops["udp_port_unreachable"] == 1


def test_port_unreachable_is_rate_limited(host):
    """RFC 1812 4.3.2.8: ICMP errors are rate-limited (token bucket: burst 20, then 100/s)."""
    for i in range(100):
        host.receive(raw(IP(src=PEER, dst=ME) / UDP(sport=5000 + i, dport=9)), 0.0)
    assert len(_out(host)) == 20
    assert host.stats["icmp_error_rate_limited"] == 80
    for i in range(10):
        host.receive(raw(IP(src=PEER, dst=ME) / UDP(sport=6000 + i, dport=9)), 0.05)
    assert len(_out(host, 0.05)) == 5  # 0.05 s at 100/s refills 5 tokens


def test_udp_handler_receives_and_can_answer(host):
    got = []
    host.udp_handlers[7] = lambda src, sport, dst, dport, payload, now: got.append((socket.inet_ntoa(src), sport, payload))
    host.receive(raw(IP(src=PEER, dst=ME) / UDP(sport=1234, dport=7) / b"x"), 0.0)
    assert got == [(PEER, 1234, b"x")]
    host.send_udp(7, aton(PEER), 1234, b"y", 0.0)
    [pkt] = _out(host)
    assert (pkt[UDP].sport, pkt[UDP].dport, bytes(pkt[UDP].payload)) == (7, 1234, b"y")


def test_unknown_protocol_gets_protocol_unreachable(host):
    host.receive(raw(IP(src=PEER, dst=ME, proto=200) / b"abcdefgh"), 0.0)
    [err] = _out(host)
    assert (err[ICMP].type, err[ICMP].code) == (3, 2)
    assert host.drops["ip_unknown_protocol"] == 1


@pytest.mark.parametrize("src", ["127.0.0.1", "0.0.0.0", "224.0.0.1", "255.255.255.255"])
def test_martian_sources_dropped_silently(host, src):
    """RFC 1122 3.2.1.3: such sources are discarded, no answer (no RST, no ICMP)."""
    host.receive(raw(IP(src=src, dst=ME) / TCP(dport=80, flags="S")), 0.0)
    assert _out(host) == [] and host.drops["ip_bad_source"] == 1


def test_fragments_in_any_order_are_reassembled(host):
    """RFC 791 3.2: fragments reassembled whatever their order; the answer to a big echo is fragmented."""
    frags = [raw(f) for f in fragment(IP(src=PEER, dst=ME, id=4242) / ICMP(type=8, id=1, seq=1) / (b"z" * 5000),
                                      fragsize=1480)]
    random.Random(3).shuffle(frags)
    for f in frags:
        host.receive(f, 0.0)
    out = _out(host)
    assert len(out) >= 4 and all(len(raw(p)) <= 1500 for p in out)
    whole = b"".join(bytes(p.payload) for p in sorted(out, key=lambda p: p.frag))
    assert whole[0] == 0 and whole[8:] == b"z" * 5000  # echo reply, same data
    assert host.stats["ip_reassembled"] == 1


def test_reassembly_timeout_sends_time_exceeded_for_first_fragment(host):
    """RFC 792 / RFC 1122 3.3.2: an incomplete datagram is dropped after the timeout; if its first
    fragment arrived, ICMP time exceeded (code 1) tells the sender."""
    frags = fragment(IP(src=PEER, dst=ME, id=7) / UDP(sport=1, dport=2) / (b"q" * 3000), fragsize=1480)
    host.receive(raw(frags[0]), 0.0)
    assert host.next_deadline() == pytest.approx(30.0)
    host.on_timers(30.0)
    [err] = _out(host, 30.0)
    assert (err[ICMP].type, err[ICMP].code) == (11, 1)
    assert host.drops["frag_timeout"] == 1


def test_reassembly_bounds_hold():
    """Bounded in datagrams and bytes: a flood of first fragments cannot grow memory without limit."""
    drops = []
    r = Reassembler(max_datagrams=4, max_bytes=10_000)
    for ident in range(10):
        hdr, payload = parse_ipv4(raw(IP(src=PEER, dst=ME, id=ident, flags="MF") / (b"a" * 2000)))
        r.add(hdr, payload, 0.0, drops.append)
    assert len(r.pending) <= 4 and r.nbytes <= 10_000
    assert "frag_table_full" in drops or "frag_memory_full" in drops


def test_overlapping_fragments_drop_the_datagram(host):
    """Overlapping fragments that are not exact duplicates: the datagram is discarded (counted)."""
    host.receive(raw(IP(src=PEER, dst=ME, id=9, proto=17, flags="MF", frag=0) / (b"A" * 16)), 0.0)
    host.receive(raw(IP(src=PEER, dst=ME, id=9, proto=17, flags="MF", frag=1) / (b"B" * 16)), 0.0)  # octets 8-23
    assert host.drops["frag_overlap"] == 1
    assert host.reassembler.pending == {}
