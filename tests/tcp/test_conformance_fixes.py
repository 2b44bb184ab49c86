"""Requirements docs/conformance.md found violated, each pinned after its fix (RFC 9293 Appendix B IDs)."""
from __future__ import annotations

import errno

from harness import ISS, PEER_ISN, TcpHarness, s32

from stack.link.memory import SocketPairLink
from stack.runtime.stack import Stack
from stack.tcp.states import State


def test_must16_data_plus_sack_blocks_never_exceed_the_mss():
    """MUST-16: Eff.snd.MSS = min(SendMSS+20, MMS_S) - TCP header with *its* options: while out-of-order
    data waits (so our segments carry SACK blocks), data segments shrink to make room."""
    h = TcpHarness(timestamps=True, sack=True)
    conn = h.listen_and_establish(syn_options=h.peer_syn_options(mss=1000, sack=True, tsval=1),
                                  ack_options=[("Timestamp", (2, 0))])
    # a gap: the peer's segment at +100 arrives, the one at +0 does not
    h.send(h.seg("A", seq=h.p_nxt + 100, load=b"y" * 100, options=[("Timestamp", (3, 0))]))
    sack_ack = h.next()
    assert sack_ack.options.get("SAck")
    h.app_send(b"x" * 5000)
    data = [e for e in h.drain() if e.payload]
    assert data
    for e in data:
        opt_len = (e.tcp.dataofs - 5) * 4
        assert len(e.payload) + opt_len <= 1000, (len(e.payload), opt_len)
        assert e.options.get("SAck")


def test_must35_37_zero_window_under_data_in_flight_keeps_the_connection():
    """MUST-35/37, SHLD-17: the peer shrinks its window to zero while our data is in flight and keeps
    answering; our retransmissions act as probes and never exhaust retries2."""
    h = TcpHarness(retries2=3, min_rto=1.0)
    conn = h.listen_and_establish()
    h.app_send(b"z" * 500)
    h.expect(length=500)
    for _ in range(10):  # every retransmission is answered, acknowledging nothing, window zero
        assert h.run_next_timer() is not None
        for _e in h.drain():
            h.send(h.seg("A", ack=h.l_nxt, window=0))
        h.drain()
    assert conn.state is State.ESTABLISHED and conn.error == 0


def test_must23_syn_retransmissions_last_at_least_three_minutes():
    """MUST-23: R2 for a SYN is at least 3 minutes: the default gives up after 255 s, not before 180 s."""
    h = TcpHarness()
    conn = h.connect(complete=False)
    while h.run_next_timer() is not None and conn.state is State.SYN_SENT:
        pass
    assert conn.state is State.CLOSED and conn.error == errno.ETIMEDOUT
    assert h.now >= 180.0


def test_must26_no_keepalive_probe_while_data_is_outstanding():
    """MUST-26: keep-alive probes only when idle; with unacknowledged data the probe is postponed."""
    h = TcpHarness(keepalive_idle=10.0, keepalive_interval=1.0, min_rto=100.0, initial_rto=100.0, max_rto=100.0)
    conn = h.listen_and_establish()
    h.call(conn.set_keepalive, True)
    h.app_send(b"q" * 10)
    h.expect(length=10)
    h.advance(50.0)  # the RTO (100 s) has not fired; the keepalive timer has, but data is outstanding
    assert [e for e in h.drain() if not e.payload] == []


def test_must13_time_wait_not_ended_by_a_syn_nobody_accepts():
    """MUST-13 / RFC 9293 3.10.7.4: without a listener, a new SYN does not end TIME-WAIT."""
    h = TcpHarness()
    conn = h.connect()  # active open from port 50000; no listener on it
    h.app_close()
    h.expect(flags="FA")
    h.send(h.seg("FA", ack=h.l_nxt + 1))
    h.p_nxt = s32(h.p_nxt + 1)
    assert conn.state is State.TIME_WAIT
    h.drain()
    h.send(h.seg("S", seq=h.p_nxt + 100000))
    assert conn.state is State.TIME_WAIT


def test_must46_connect_to_broadcast_or_multicast_is_refused():
    """MUST-46: an OPEN to a broadcast or multicast address is an error; no SYN goes out."""
    la, lb = SocketPairLink.pair()
    with Stack(la, "192.0.2.1") as st:
        for addr in ("224.0.0.1", "255.255.255.255", "239.1.2.3"):
            s = st.socket()
            s.settimeout(1)
            try:
                s.connect((addr, 80))
                raise AssertionError("connect succeeded")
            except OSError as exc:
                assert exc.errno == errno.ENETUNREACH
            s.close()
        assert st.host.stats["ip_out"] == 0
    la.close()
    lb.close()


def test_must9_runtime_isn_key_is_not_from_the_seeded_generator():
    """MUST-9 / RFC 6528: without a seed, the ISN key comes from `secrets`, not from the stack's PRNG."""
    la, lb = SocketPairLink.pair()
    a = Stack(la, "192.0.2.1")
    b = Stack(lb, "192.0.2.1")
    assert a.host.tcp.isn.secret != b.host.tcp.isn.secret
    seeded1, seeded2 = Stack(la, "192.0.2.1", seed=7), Stack(lb, "192.0.2.1", seed=7)
    assert seeded1.host.tcp.isn.secret == seeded2.host.tcp.isn.secret  # a seed still gives reproducible labs
    la.close()
    lb.close()


def test_rfc1122_no_icmp_error_about_an_icmp_error():
    """RFC 1122 3.2.2: an ICMP error is never sent about an ICMP error (here: a reassembly timeout)."""
    from scapy.all import ICMP, IP, fragment, raw
    h = TcpHarness()
    err = IP(src="192.0.2.1", dst="192.0.2.2", id=77) / ICMP(type=3, code=3) / (b"q" * 3000)
    first = raw(fragment(err, fragsize=1480)[0])
    h.send_raw(first)
    h.advance(40.0)  # reassembly times out
    assert h.drain() == []
    assert h.host.stats["icmp_error_about_error_suppressed"] == 1
    assert ISS and PEER_ISN
