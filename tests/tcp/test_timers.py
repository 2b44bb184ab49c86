"""Timers in virtual time: retransmission (RFC 6298, RFC 9293 3.8.1/3.8.3), Karn's algorithm, keep-alive
(RFC 9293 3.8.4, RFC 1122 4.2.3.6), the orphaned FIN-WAIT-2 timeout."""
import errno

import pytest

from harness import ISS, PEER_ISN, TcpHarness
from stack.tcp.states import State


# ------------------------------------------------------------------ SYN retransmission
def test_syn_retransmitted_at_1_3_7_15():
    """RFC 6298 2.1 / 5.5 (RFC 9293 3.8.1): initial RTO 1 s, doubled on each expiry: the SYN goes again at
    t = 1, 3, 7, 15 s (intervals 1, 2, 4, 8), identical each time."""
    h = TcpHarness(syn_retries=6)
    h.connect(complete=False)
    h.advance_to(20.0)
    for t in (1.0, 3.0, 7.0, 15.0):
        e = h.expect(flags="S", seq=ISS, ack=0, options={"MSS": 1460}, at=t)
        assert e.tcp.window == h.syn.tcp.window
    h.expect_nothing()


def test_syn_retries_exhausted_gives_etimedout():
    """RFC 9293 3.8.3 (R2 for SYN, like Linux tcp_syn_retries): after syn_retries retransmissions the next
    expiry aborts the open with ETIMEDOUT."""
    h = TcpHarness(syn_retries=3)
    conn = h.connect(complete=False)
    h.advance_to(14.999)
    assert [e.at for e in h.drain()] == [1.0, 3.0, 7.0]
    assert conn.state is State.SYN_SENT
    h.advance_to(15.0)
    h.expect_nothing()
    assert conn.state is State.CLOSED and conn.error == errno.ETIMEDOUT
    assert h.host.tcp.conns == {}


def test_syn_ack_after_retransmission_establishes():
    """RFC 9293 3.10.7.3: a SYN,ACK answering any copy of the SYN establishes the connection; timers stop."""
    h = TcpHarness()
    conn = h.connect(complete=False)
    h.advance(1.5)
    h.expect(flags="S", at=1.0)
    h.send(h.seg("SA", seq=PEER_ISN, ack=ISS + 1))
    h.expect(flags="A", ack=PEER_ISN + 1)
    assert conn.state is State.ESTABLISHED and conn.next_deadline() is None


# ------------------------------------------------------------------ data RTO
def after_syn_timeout():
    """Active open whose SYN timed out once (SYN at 0 and 1, SYN,ACK at 1.5): no RTT sample (Karn), RTO 3 s."""
    h = TcpHarness()
    h.lport, h.pport = 50000, 80
    conn = h.connect(complete=False)
    h.advance_to(1.5)
    h.expect(flags="S", at=1.0)
    h.send(h.seg("SA", seq=PEER_ISN, ack=ISS + 1))
    h.p_nxt = PEER_ISN + 1
    h.expect(flags="A")
    return h, conn


def test_no_rtt_sample_from_retransmitted_syn():
    """RFC 6298 3 (Karn): the SYN was retransmitted, so its ACK gives no RTT sample."""
    h, conn = after_syn_timeout()
    assert conn.rtt.srtt is None


def test_data_rto_after_syn_timeout_is_3s_and_doubles():
    """RFC 6298 5.7: after the SYN timed out, RTO is re-initialized to 3 s when data starts; with no RTT
    sample the data is resent at +3, +6, +12 s (5.5 backoff) - exact virtual times."""
    h, conn = after_syn_timeout()
    h.app_send(b"data")
    h.expect(flags="PA", seq=ISS + 1, payload=b"data", at=1.5)
    h.advance_to(30.0)
    for t in (4.5, 10.5, 22.5):
        h.expect(flags="PA", seq=ISS + 1, payload=b"data", at=t)
    h.expect_nothing()


def with_rtt(rtt=0.5, **kw):
    """Active open with a handshake RTT of ``rtt``: SRTT = 0.5, RTTVAR = 0.25, RTO = 1.5 s (RFC 6298 2.2)."""
    h = TcpHarness(**kw)
    conn = h.connect(rtt=rtt)
    assert conn.rtt.srtt == rtt and conn.rtt.current_rto() == 1.5
    return h, conn


def test_data_rto_uses_measured_rtt_and_doubles():
    """RFC 6298 2.2 / 5.1 / 5.5: first data at t=0.5 with RTO 1.5 -> resent at 2.0, 5.0, 11.0."""
    h, conn = with_rtt()
    h.app_send(b"x" * 10)
    h.expect(flags="PA", at=0.5)
    h.advance_to(12.0)
    for t in (2.0, 5.0, 11.0):
        h.expect(flags="PA", seq=ISS + 1, payload=b"x" * 10, at=t)
    h.expect_nothing()


def test_retries2_exhausted_gives_etimedout():
    """RFC 9293 3.8.3 (R2, Linux tcp_retries2): after retries2 retransmissions the connection is aborted with
    ETIMEDOUT."""
    h, conn = with_rtt(retries2=3)
    h.app_send(b"x" * 10)
    h.drain()
    h.advance_to(50.0)
    assert [e.at for e in h.drain()] == [2.0, 5.0, 11.0]
    assert conn.state is State.CLOSED and conn.error == errno.ETIMEDOUT


def test_rto_timer_off_when_all_acked():
    """RFC 6298 5.2: when all outstanding data has been acknowledged, turn off the retransmission timer."""
    h, conn = with_rtt()
    h.app_send(b"x" * 10)
    h.drain()
    h.send(h.seg("A", ack=h.l_nxt + 10), at=0.6)
    assert conn.next_deadline() is None
    h.advance(100)
    h.expect_nothing()


def test_rto_restarted_by_new_ack():
    """RFC 6298 5.3: an ACK for new data restarts the timer (RTO from the ACK's time) for what is still
    outstanding."""
    h, conn = with_rtt()
    h.app_send(b"y" * 2920)
    h.drain()
    h.send(h.seg("A", ack=h.l_nxt + 1460), at=1.0)
    rto = conn.rtt.current_rto()
    assert conn.next_deadline() == pytest.approx(1.0 + rto)
    h.advance_to(1.0 + rto)
    h.expect(flags="PA", seq=h.l_nxt + 1460, length=1460, at=1.0 + rto)


def test_rto_retransmits_only_the_first_segment():
    """RFC 6298 5.4: on expiry retransmit the earliest segment not yet acknowledged (one segment)."""
    h, conn = with_rtt()
    h.app_send(b"z" * 4380)
    assert len(h.drain()) == 3
    h.advance(1.5)
    h.expect(seq=h.l_nxt, length=1460, at=2.0)
    h.expect_nothing()


def test_karn_no_sample_from_retransmitted_segment():
    """RFC 6298 3 (Karn's algorithm): RTT samples MUST NOT be taken from retransmitted segments: the ACK at
    t=2.1 of data sent at 0.5 and resent at 2.0 leaves SRTT and RTTVAR unchanged."""
    h, conn = with_rtt()
    h.app_send(b"k" * 10)
    h.advance_to(2.05)
    assert len(h.drain()) == 2
    h.send(h.seg("A", ack=h.l_nxt + 10), at=2.1)
    assert (conn.rtt.srtt, conn.rtt.rttvar) == (0.5, 0.25)


def test_karn_backed_off_rto_kept_until_valid_sample():
    """RFC 9293 3.8.1: "RFC 6298 describes exponential backoff of RTO values, including keeping the backed-off
    value until a subsequent segment with new data has been sent and acknowledged without retransmission"
    (Karn's algorithm, second half; RFC 6298 5, note after 5.7). Here: RTO 1.5 backed off to 3.0; after the ambiguous ACK, new data sent at 2.1 is
    retransmitted at 5.1, not 3.6."""
    h, conn = with_rtt()
    h.app_send(b"k" * 10)
    h.advance_to(2.05)
    h.drain()
    h.send(h.seg("A", ack=h.l_nxt + 10), at=2.1)
    h.app_send(b"n" * 10)
    h.expect(flags="PA", seq=h.l_nxt + 10, at=2.1)
    h.advance_to(6.0)
    h.expect(flags="PA", seq=h.l_nxt + 10, payload=b"n" * 10, at=5.1)


def test_valid_sample_after_retransmission_collapses_rto():
    """RFC 6298 5 (note after 5.7): a new RTT measurement from a segment sent once recomputes RTO from SRTT
    and RTTVAR (the backoff is gone)."""
    h, conn = with_rtt()
    h.app_send(b"k" * 10)
    h.advance_to(2.05)
    h.drain()
    h.send(h.seg("A", ack=h.l_nxt + 10), at=2.1)
    h.app_send(b"n" * 10)
    h.drain()
    h.send(h.seg("A", ack=h.l_nxt + 20), at=2.6)
    assert conn.rtt.srtt == 0.5 and conn.rtt.backoff == 0
    assert conn.rtt.current_rto() == pytest.approx(0.5 + 4 * 0.1875)


# ------------------------------------------------------------------ keep-alive
def keepalive(**kw):
    h = TcpHarness(keepalive_idle=10.0, keepalive_interval=2.0, keepalive_count=3, **kw)
    conn = h.established()
    h.call(conn.set_keepalive, True)
    return h, conn


def test_keepalive_off_by_default():
    """RFC 9293 3.8.4 (RFC 1122 4.2.3.6): keep-alives MUST default to off: an idle connection arms no timer."""
    h = TcpHarness(keepalive_idle=10.0)
    conn = h.established()
    assert conn.next_deadline() is None
    h.advance(1000)
    h.expect_nothing()


def test_keepalive_probe_after_idle():
    """RFC 9293 3.8.4 / RFC 1122 4.2.3.6: after keepalive_idle of silence send a probe <SEQ=SND.NXT-1>
    <ACK=RCV.NXT><CTL=ACK> with no data (Linux's form: zero octets, one below SND.NXT)."""
    h, conn = keepalive()
    h.advance_to(10.0)
    h.expect(flags="A", seq=h.l_nxt - 1, ack=h.p_nxt, payload=b"", at=10.0)
    h.expect_nothing()


def test_keepalive_timeout_after_count_probes():
    """RFC 1122 4.2.3.6: unanswered probes every keepalive_interval; after keepalive_count of them the
    connection is dead: ETIMEDOUT, CLOSED."""
    h, conn = keepalive()
    h.advance_to(15.999)
    assert [e.at for e in h.drain()] == [10.0, 12.0, 14.0]
    assert conn.state is State.ESTABLISHED
    h.advance_to(16.0)
    h.drain()
    assert conn.state is State.CLOSED and conn.error == errno.ETIMEDOUT


def test_answered_keepalive_restarts_idle_timer():
    """RFC 1122 4.2.3.6: an answer to the probe proves the peer alive: probes stop, the idle timer restarts."""
    h, conn = keepalive()
    h.advance_to(10.0)
    h.expect(flags="A", seq=h.l_nxt - 1)
    h.send(h.seg("A"), at=10.5)
    h.advance_to(20.499)
    h.expect_nothing()
    h.advance_to(20.5)
    h.expect(flags="A", seq=h.l_nxt - 1, at=20.5)
    assert conn.state is State.ESTABLISHED


def test_traffic_postpones_keepalive():
    """RFC 9293 3.8.4: keep-alives are sent only when no data or ACKs have been received for the interval."""
    h, conn = keepalive()
    h.send(h.seg("PA", load=b"hi"), at=8.0)
    h.p_nxt += 2
    h.advance_to(17.999)
    assert all(e.payload == b"" and e.tcp.seq == h.l_nxt for e in h.drain())  # only the delayed ACK
    h.advance_to(18.0)
    h.expect(flags="A", seq=h.l_nxt - 1, ack=h.p_nxt, at=18.0)


# ------------------------------------------------------------------ orphaned FIN-WAIT-2
def test_orphaned_fin_wait_2_times_out():
    """Linux tcp_fin_timeout (RFC 9293 3.6 leaves FIN-WAIT-2 unbounded; an orphaned connection must not wait
    forever): after close() and the ACK of our FIN, the TCB goes away after exactly fin_timeout."""
    h = TcpHarness(fin_timeout=60.0)
    conn = h.fin_wait_2(close=True)
    h.advance_to(59.999)
    assert conn.state is State.FIN_WAIT_2
    h.advance_to(60.0)
    assert conn.state is State.CLOSED
    h.drain()
    assert h.host.tcp.conns == {}
    h.send(h.seg("FA"))
    h.expect(flags="R", seq=h.l_nxt)


def test_half_closed_fin_wait_2_does_not_time_out():
    """RFC 9293 3.6: after shutdown(SHUT_WR) the application may still read: FIN-WAIT-2 is kept indefinitely."""
    h = TcpHarness(fin_timeout=60.0)
    conn = h.fin_wait_2(close=False)
    h.advance_to(1000.0)
    assert conn.state is State.FIN_WAIT_2
    h.expect_nothing()


def test_rto_capped_at_max_rto():
    """RFC 6298 2.5 (5.5): a maximum value may be placed on RTO (>= 60 s; here max_rto = 120 s): the SYN backoff
    doubles 1, 2, 4, ... 64 and then stays at 120."""
    h = TcpHarness(syn_retries=9)
    h.connect(complete=False)
    h.advance_to(500.0)
    assert [e.at for e in h.drain()] == [1.0, 3.0, 7.0, 15.0, 31.0, 63.0, 127.0, 247.0, 367.0]


def test_passive_handshake_rtt_sample():
    """RFC 6298 2.2: the SYN,ACK's round trip (sent once) is the first RTT sample: SRTT = R, RTTVAR = R/2."""
    h = TcpHarness()
    conn = h.listen_and_establish(rtt=0.5)
    assert (conn.rtt.srtt, conn.rtt.rttvar, conn.rtt.current_rto()) == (0.5, 0.25, 1.5)


def test_passive_handshake_after_syn_ack_retransmission():
    """RFC 6298 3 (Karn) and 5.7: the SYN,ACK was retransmitted -> no RTT sample, and the data RTO is 3 s."""
    h = TcpHarness()
    h.listen()
    conn = h.syn_received()
    h.advance_to(1.5)
    h.expect(flags="SA", at=1.0)
    h.send(h.seg("A"))
    assert conn.state is State.ESTABLISHED and conn.rtt.srtt is None
    h.app_send(b"first")
    h.expect(flags="PA", at=1.5)
    h.advance_to(5.0)
    h.expect(flags="PA", seq=ISS + 1, payload=b"first", at=4.5)
