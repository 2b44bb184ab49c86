"""The UDP layer (stack/ip/udp.py) at the packet level, in virtual time, with scapy as the oracle:
delivery to the bound endpoint, checksums, the bind table, SO_RCVBUF drops, ICMP errors in and out."""
from __future__ import annotations

import errno
import random

import pytest
from scapy.all import ICMP, IP, UDP, defragment, fragment, raw

from stack.ip.udp import EPHEMERAL, MAX_PAYLOAD, TRUESIZE_OVERHEAD, UdpEndpoint
from stack.netstack import NetStack
from stack.wire.ipv4 import aton

ME, PEER = "192.0.2.2", "192.0.2.1"
ANY = bytes(4)


@pytest.fixture
def host():
    return NetStack(aton(ME), mtu=1500, rng=random.Random(7))


def _out(host, now=0.0):
    return [IP(p) for p in host.take_output(now)]


def _endpoint(host, port=5000, addr=ANY):
    ep = UdpEndpoint()
    woken = []
    ep.notify = woken.append
    host.udp.bind(ep, aton(addr) if isinstance(addr, str) else addr, port)
    return ep, woken


def _dgram(sport=4000, dport=5000, load=b"hello", src=PEER, **udp):
    return raw(IP(src=src, dst=ME) / UDP(sport=sport, dport=dport, **udp) / load)


def test_datagram_reaches_the_bound_endpoint_and_wakes_it(host):
    ep, woken = _endpoint(host)
    host.receive(_dgram(), 0.0)
    assert list(ep.rcvq) == [(aton(PEER), 4000, b"hello")]
    assert woken == ["readable"]
    assert _out(host) == []  # nothing answered
    assert host.stats["udp_delivered"] == 1


def test_sendto_emits_what_scapy_builds(host):
    """RFC 768: ports, length and checksum equal scapy's for the same datagram."""
    ep, _ = _endpoint(host, 5000)
    host.udp.sendto(ep, b"payload", (aton(PEER), 9999), 0.0)
    [pkt] = _out(host)
    assert (pkt.src, pkt.dst, pkt[UDP].sport, pkt[UDP].dport) == (ME, PEER, 5000, 9999)
    expected = UDP(raw(UDP(sport=5000, dport=9999) / b"payload"))
    ref = IP(raw(IP(src=ME, dst=PEER) / UDP(sport=5000, dport=9999) / b"payload"))
    assert pkt[UDP].len == expected.len == 15
    assert pkt[UDP].chksum == ref[UDP].chksum
    assert bytes(pkt[UDP].payload) == b"payload"


def test_zero_checksum_is_accepted(host):
    """RFC 768: an all-zero checksum means the sender computed none (IPv4)."""
    ep, _ = _endpoint(host)
    packet = bytearray(_dgram(load=b"nocsum"))
    packet[26:28] = b"\0\0"
    host.receive(bytes(packet), 0.0)
    assert [d[2] for d in ep.rcvq] == [b"nocsum"]


def test_bad_checksum_is_dropped_silently(host):
    ep, _ = _endpoint(host)
    host.receive(_dgram(chksum=0x1234), 0.0)
    assert not ep.rcvq
    assert host.drops["udp_checksum"] == 1
    assert _out(host) == []  # no ICMP about a corrupt datagram


def test_connected_endpoint_hears_only_its_peer_and_others_get_port_unreachable(host):
    """Linux compute_score: a connected socket does not match other senders; nobody left -> ICMP."""
    ep, _ = _endpoint(host)
    host.udp.connect(ep, (aton(PEER), 4000))
    assert ep.local == (aton(ME), 5000)  # the local address is fixed by connect
    host.receive(_dgram(sport=4001, load=b"stranger"), 0.0)
    host.receive(_dgram(sport=4000, load=b"friend"), 0.0)
    assert [d[2] for d in ep.rcvq] == [b"friend"]
    [err] = _out(host)
    assert (err[ICMP].type, err[ICMP].code) == (3, 3)
    assert bytes(err[ICMP].payload)[20:22] == (4001).to_bytes(2, "big")  # the quoted UDP header


def test_specific_and_connected_beat_wildcard(host):
    wild, _ = _endpoint(host, 5000)
    wild.reuse = True
    specific = UdpEndpoint()
    specific.reuse = True
    host.udp.bind(specific, aton(ME), 5000)
    conn = UdpEndpoint()
    conn.reuse = True
    host.udp.bind(conn, aton(ME), 5000)
    host.udp.connect(conn, (aton(PEER), 4000))
    host.receive(_dgram(sport=4000, load=b"a"), 0.0)
    host.receive(_dgram(sport=4002, load=b"b"), 0.0)
    assert [d[2] for d in conn.rcvq] == [b"a"]
    assert [d[2] for d in specific.rcvq] == [b"b"]
    assert not wild.rcvq


def test_bind_rules(host):
    ep, _ = _endpoint(host, 5000)
    with pytest.raises(OSError) as exc:
        host.udp.bind(UdpEndpoint(), aton(ME), 5000)
    assert exc.value.errno == errno.EADDRINUSE
    with pytest.raises(OSError) as exc:
        host.udp.bind(ep, ANY, 6000)
    assert exc.value.errno == errno.EINVAL
    with pytest.raises(OSError) as exc:
        host.udp.bind(UdpEndpoint(), aton("10.0.0.1"), 6000)
    assert exc.value.errno == errno.EADDRNOTAVAIL
    host.udp.unbind(ep)
    host.udp.bind(UdpEndpoint(), aton(ME), 5000)  # free again


def test_ephemeral_ports_are_distinct_and_in_range(host):
    ports = set()
    for _ in range(50):
        ep = UdpEndpoint()
        host.udp.bind(ep, ANY, 0)
        ports.add(ep.local[1])
    assert len(ports) == 50 and all(EPHEMERAL[0] <= p <= EPHEMERAL[1] for p in ports)


def test_receive_queue_is_bounded_by_rcvbuf(host):
    """__udp_enqueue_schedule_skb: queued while the charge (bytes + truesize overhead) is within rcvbuf."""
    ep, woken = _endpoint(host)
    ep.rcvbuf = 2304
    for i in range(5):
        host.receive(_dgram(load=bytes([i]) * 1000), 0.0)
    per = 1000 + TRUESIZE_OVERHEAD
    kept = 2304 // per + 1  # the datagram that crosses the limit is still queued
    assert len(ep.rcvq) == kept
    assert host.drops["udp_rcvbuf_full"] == 5 - kept
    ep.pop()
    assert ep.rcvq_bytes == (kept - 1) * per


def _icmp_about(sent: IP, type_=3, code=3) -> bytes:
    return raw(IP(src=PEER, dst=ME) / ICMP(type=type_, code=code) / raw(sent)[:28])


def test_port_unreachable_sets_econnrefused_on_a_connected_endpoint(host):
    ep, woken = _endpoint(host)
    host.udp.connect(ep, (aton(PEER), 9))
    host.udp.sendto(ep, b"anyone?", None, 0.0)
    [sent] = _out(host)
    host.receive(_icmp_about(sent), 0.01)
    assert ep.error == errno.ECONNREFUSED
    assert woken == ["error"]
    assert ep.take_error() == errno.ECONNREFUSED and ep.error == 0


def test_port_unreachable_is_ignored_by_an_unconnected_endpoint(host):
    ep, woken = _endpoint(host)
    host.udp.sendto(ep, b"anyone?", (aton(PEER), 9), 0.0)
    [sent] = _out(host)
    host.receive(_icmp_about(sent), 0.01)
    assert ep.error == 0 and woken == []
    assert host.stats["udp_icmp_error_ignored"] == 1


@pytest.mark.parametrize("type_, code", [(3, 1), (11, 0)])  # host unreachable, TTL exceeded: soft
def test_soft_errors_do_not_reach_the_socket(host, type_, code):
    ep, _ = _endpoint(host)
    host.udp.connect(ep, (aton(PEER), 9))
    host.udp.sendto(ep, b"x", None, 0.0)
    [sent] = _out(host)
    host.receive(_icmp_about(sent, type_, code), 0.01)
    assert ep.error == 0
    assert host.stats["udp_icmp_error_soft"] == 1


def test_large_datagram_is_fragmented_and_scapy_reassembles_it(host):
    ep, _ = _endpoint(host)
    data = bytes(range(256)) * 40  # 10240 bytes
    host.udp.sendto(ep, data, (aton(PEER), 9), 0.0)
    frags = _out(host)
    assert len(frags) == 7
    [whole] = defragment(frags)
    assert bytes(whole[UDP].payload) == data
    assert IP(raw(whole))[UDP].chksum == whole[UDP].chksum


def test_fragmented_datagram_is_reassembled_and_delivered(host):
    ep, _ = _endpoint(host)
    data = bytes(range(256)) * 30
    for frag in fragment(IP(src=PEER, dst=ME, id=77) / UDP(sport=4000, dport=5000) / data, fragsize=1000):
        host.receive(raw(frag), 0.0)
    assert [d[2] for d in ep.rcvq] == [data]


def test_too_large_is_emsgsize(host):
    ep, _ = _endpoint(host)
    with pytest.raises(OSError) as exc:
        host.udp.sendto(ep, bytes(MAX_PAYLOAD + 1), (aton(PEER), 9), 0.0)
    assert exc.value.errno == errno.EMSGSIZE
    assert _out(host) == []


def test_datagram_to_our_own_address_loops_back(host):
    a, _ = _endpoint(host, 5000)
    b, woken = _endpoint(host, 6000)
    host.udp.sendto(a, b"self", (aton(ME), 6000), 0.0)
    assert list(b.rcvq) == [(aton(ME), 5000, b"self")] and woken == ["readable"]
    c, _ = _endpoint(host, 7000)
    host.udp.connect(c, (aton(ME), 7001))
    host.udp.sendto(c, b"nobody", None, 0.0)
    assert c.error == errno.ECONNREFUSED
    assert _out(host) == []


def test_raw_port_handlers_still_work_after_sockets(host):
    got = []
    host.udp_handlers[7] = lambda src, sport, dst, dport, payload, now: got.append(payload)
    host.receive(_dgram(dport=7, load=b"raw"), 0.0)
    assert got == [b"raw"]


def test_disconnect_forgets_what_bind_did_not_choose(host):
    """udp_disconnect: an autobound port is released and the address goes back to the wildcard."""
    auto = UdpEndpoint()
    host.udp.connect(auto, (aton(PEER), 9))
    port = auto.local[1]
    host.udp.disconnect(auto)
    assert auto.remote is None and auto.local is None and port not in host.udp.ports
    bound, _ = _endpoint(host, 5000)
    host.udp.connect(bound, (aton(PEER), 9))
    assert bound.local == (aton(ME), 5000)
    host.udp.disconnect(bound)
    assert bound.local == (ANY, 5000) and bound.remote is None
    host.receive(_dgram(sport=4444, load=b"anyone"), 0.0)  # unconnected again: hears everyone
    assert [d[2] for d in bound.rcvq] == [b"anyone"]
