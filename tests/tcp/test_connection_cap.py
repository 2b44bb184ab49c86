"""The cap on full connections (TcpConfig.max_connections): past it nothing new is created, and each
refusal is counted (conn_limit); TIME-WAIT records do not count against it."""
import errno

import pytest

from harness import ISS, LOCAL_B, PEER_B, PEER_ISN, TcpHarness


def test_syns_past_the_cap_are_dropped_and_counted():
    h = TcpHarness(max_connections=2)
    h.listen()
    for port in (40001, 40002, 40003):
        h.send(h.seg("S", seq=PEER_ISN, sport=port))
    h.expect(flags="SA", dport=40001, seq=ISS)
    h.expect(flags="SA", dport=40002, seq=ISS)
    h.expect_nothing()  # no SYN-ACK, no RST: the client retries, as after any dropped SYN
    assert len(h.host.tcp.conns) == 2 and h.host.tcp.stats["conn_limit"] == 1


def test_connect_past_the_cap_fails_with_enobufs():
    h = TcpHarness(max_connections=1)
    h.host.tcp.connect((LOCAL_B, 50000), (PEER_B, 80), 0.0)
    with pytest.raises(OSError) as err:
        h.host.tcp.connect((LOCAL_B, 50001), (PEER_B, 80), 0.0)
    assert err.value.errno == errno.ENOBUFS and h.host.tcp.stats["conn_limit"] == 1


def test_cookie_ack_past_the_cap_is_dropped():
    """A valid cookie does not bypass the cap: its ACK is dropped (counted) and the peer retries."""
    h = TcpHarness(max_connections=1, syncookies=2)
    h.listen()
    h.send(h.seg("S", seq=PEER_ISN, sport=40001))
    h.send(h.seg("S", seq=PEER_ISN, sport=40002))
    isn1, isn2 = (e.tcp.seq for e in h.drain())
    h.send(h.seg("A", seq=PEER_ISN + 1, ack=(isn1 + 1) & 0xFFFFFFFF, sport=40001))
    h.send(h.seg("A", seq=PEER_ISN + 1, ack=(isn2 + 1) & 0xFFFFFFFF, sport=40002))
    h.expect_nothing()
    assert [c.remote[1] for c in h.host.tcp.conns.values()] == [40001]
    assert h.host.tcp.stats["conn_limit"] == 1 and h.host.tcp.stats["syncookies_recv"] == 2


def test_time_wait_records_do_not_count():
    h = TcpHarness(max_connections=1)
    h.listen()
    h.pport = 40001
    h.time_wait()
    h.pport = 40002
    h.conn = None
    h.listen_and_establish()  # the record of 40001 stays; a full connection is allowed beside it
    assert len(h.host.tcp.conns) == 2 and "conn_limit" not in h.host.tcp.stats


def test_default_cap_is_generous():
    assert TcpHarness().config.max_connections >= 65536
