"""ICMP errors to TCP (RFC 9293 3.9.1.3, MUST-54, SHLD-25/26; RFC 5927 4.1 checks; RFC 1191 PMTUD).

Every error is built with scapy and quotes (the IP header and the first 8 octets of) a segment the
stack really sent, as a router or the peer's host would."""
import errno

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.packet import Raw

from harness import ISS, LOCAL, PEER, TcpHarness, s32
from stack.tcp.states import State

ROUTER = "198.51.100.1"


def icmp_about(emitted, type_=3, code=4, mtu=0, src=ROUTER, seq=None) -> bytes:
    """An ICMP error quoting ``emitted`` (header + 8 octets); ``seq`` overrides the quoted SEQ."""
    raw = bytearray(bytes(emitted.ip))
    if seq is not None:
        raw[24:28] = s32(seq).to_bytes(4, "big")
    icmp = ICMP(type=type_, code=code, nexthopmtu=mtu) if code == 4 and type_ == 3 else ICMP(type=type_, code=code)
    return bytes(IP(src=src, dst=LOCAL) / icmp / Raw(bytes(raw[:28])))


def sending(n=3000):
    """ESTABLISHED (peer MSS 1460, TCP_NODELAY), ``n`` octets sent; returns (h, conn, segments)."""
    h = TcpHarness(nodelay=True)
    conn = h.listen_and_establish()
    h.app_send(bytes(range(256)) * (n // 256) + bytes(n % 256))
    segs = h.drain()
    assert [len(e.payload) for e in segs] == [1460, 1460, 80]
    return h, conn, segs


# ------------------------------------------------------------------ fragmentation needed (RFC 1191)
def test_fragmentation_needed_lowers_the_mss_and_resends_at_the_smaller_size():
    """RFC 1191: the next-hop MTU 1000 lowers the effective send MSS to 960; what was in flight is sent
    again from SND.UNA in 960-octet segments (as Linux tcp_simple_retransmit)."""
    h, conn, segs = sending()
    h.send_raw(icmp_about(segs[0], mtu=1000))
    out = h.drain()
    assert [(e.tcp.seq - ISS - 1, len(e.payload)) for e in out] == [(0, 960), (960, 960), (1920, 960), (2880, 120)]
    assert all(e.ip.len <= 1000 and e.ip.flags.DF for e in out)
    assert conn.eff_mss == 960 and conn.cc.mss == 960
    assert h.host.tcp.stats["icmp_error"] == 1
    h.send(h.seg("A", ack=ISS + 1 + 3000))
    h.app_send(b"x" * 2000)
    assert [len(e.payload) for e in h.drain()] == [960, 960, 80]  # new data at the new size too


def test_fragmentation_needed_without_mtu_uses_the_minimum_and_never_raises_the_mss():
    """An old router's "fragmentation needed" with next-hop MTU 0 (or a tiny one) takes 552 (Linux
    min_pmtu); a later one with a larger MTU does not raise the MSS again (RFC 1191 6.3)."""
    h, conn, segs = sending()
    h.send_raw(icmp_about(segs[0], mtu=0))
    assert conn.eff_mss == 512
    h.drain()
    h.send_raw(icmp_about(segs[0], mtu=1400))
    assert conn.eff_mss == 512
    h.expect_nothing()


def test_fragmentation_needed_for_a_larger_mtu_changes_nothing():
    h, conn, segs = sending()
    h.send_raw(icmp_about(segs[0], mtu=1500))
    h.expect_nothing()
    assert conn.eff_mss == 1460


# ------------------------------------------------------------------ RFC 5927 validation
@pytest.mark.parametrize("offset", [-1, 3000, 100000])
def test_error_quoting_a_sequence_number_not_in_flight_is_ignored_and_counted(offset):
    """RFC 5927 4.1: the quoted SEQ must lie in SND.UNA..SND.NXT-1; otherwise (a blind attacker's guess,
    an old segment) the error is ignored and counted as icmp_bad_seq."""
    h, conn, segs = sending()
    h.send_raw(icmp_about(segs[0], mtu=600, seq=ISS + 1 + offset))
    h.send_raw(icmp_about(segs[0], type_=3, code=1, seq=ISS + 1 + offset))
    h.expect_nothing()
    assert conn.eff_mss == 1460 and conn.soft_error == 0 and conn.state is State.ESTABLISHED
    assert h.host.tcp.stats["icmp_bad_seq"] == 2 and "icmp_error" not in h.host.tcp.stats


def test_error_for_no_connection_is_counted():
    h, conn, segs = sending()
    raw = icmp_about(segs[0], mtu=600)
    h.app_close()  # unread nothing: FIN; then pretend the connection is gone
    h.host.tcp.conns.clear()
    h.send_raw(raw)
    assert h.host.tcp.stats["icmp_no_connection"] == 1


def test_error_with_a_short_quote_is_dropped_by_ip():
    h, conn, segs = sending()
    h.send_raw(bytes(IP(src=ROUTER, dst=LOCAL) / ICMP(type=3, code=4) / Raw(bytes(segs[0].ip)[:24])))
    assert h.host.drops["icmp_error_short_quote"] == 1 and conn.eff_mss == 1460


# ------------------------------------------------------------------ unreachable: hard in SYN-SENT, soft after
@pytest.mark.parametrize("type_,code,err", [(3, 3, errno.ECONNREFUSED), (3, 1, errno.EHOSTUNREACH),
                                            (3, 0, errno.ENETUNREACH), (3, 2, errno.ENOPROTOOPT),
                                            (11, 0, errno.EHOSTUNREACH)])
def test_unreachable_aborts_a_connect(type_, code, err):
    """As Linux tcp_v4_err: an unreachable (or time exceeded) for our SYN ends the connect at once with
    the errno of the code (RFC 9293 MUST-54; Linux's icmp_err_convert), no RST sent."""
    h = TcpHarness()
    conn = h.connect(complete=False)
    h.send_raw(icmp_about(h.syn, type_=type_, code=code, src=PEER))
    h.expect_nothing()
    assert conn.state is State.CLOSED and conn.error == err


def test_unreachable_in_established_is_a_soft_error_reported_on_timeout():
    """RFC 9293 SHLD-25/26 with RFC 5461 (as Linux): in a synchronized state an unreachable does not
    abort; it is remembered, and when the retransmissions time out the socket reports it instead of
    ETIMEDOUT (Linux sk_err_soft)."""
    h = TcpHarness(retries2=2)
    conn = h.listen_and_establish()
    h.app_send(b"a" * 100)
    seg = h.next()
    h.send_raw(icmp_about(seg, type_=3, code=1))
    assert conn.state is State.ESTABLISHED and conn.error == 0 and conn.soft_error == errno.EHOSTUNREACH
    h.advance(60.0)
    assert conn.state is State.CLOSED and conn.error == errno.EHOSTUNREACH


def test_a_new_ack_clears_the_soft_error():
    h = TcpHarness(retries2=2)
    conn = h.listen_and_establish()
    h.app_send(b"a" * 100)
    seg = h.next()
    h.send_raw(icmp_about(seg, type_=3, code=3))
    h.send(h.seg("A", ack=ISS + 101))
    assert conn.soft_error == 0
    h.app_send(b"b" * 100)
    h.advance(60.0)
    assert conn.state is State.CLOSED and conn.error == errno.ETIMEDOUT
