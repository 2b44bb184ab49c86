"""RFC 5961 (Improving TCP's Robustness to Blind In-Window Attacks), as folded into RFC 9293 3.10.7.4."""
import errno

import pytest

from harness import TcpHarness, s32
from stack.tcp.states import State


def established(**kw):
    h = TcpHarness(**kw)
    conn = h.established()
    return h, conn


def test_in_window_rst_gets_challenge_ack_and_connection_stays():
    """RFC 5961 3.2: RST with RCV.NXT < SEG.SEQ < RCV.NXT+RCV.WND -> challenge ACK <SEQ=SND.NXT><ACK=RCV.NXT>
    <CTL=ACK>; the connection stays ESTABLISHED and keeps working."""
    h, conn = established()
    h.send(h.seg("R", seq=h.p_nxt + 1))
    h.expect(flags="A", seq=h.l_nxt, ack=h.p_nxt, payload=b"")
    h.expect_nothing()
    assert conn.state is State.ESTABLISHED and conn.error == 0
    h.send(h.seg("PA", load=b"still here"))
    assert conn.rcvbuf == b"still here"


def test_challenge_ack_then_exact_rst_resets():
    """RFC 5961 3.2: a legitimate peer answers the challenge ACK with a RST at exactly RCV.NXT, which resets."""
    h, conn = established()
    h.send(h.seg("R", seq=h.p_nxt + 500))
    ch = h.expect(flags="A", seq=h.l_nxt, ack=h.p_nxt)
    h.send(h.seg("R", seq=ch.tcp.ack))
    h.expect_nothing()
    assert conn.state is State.CLOSED and conn.error == errno.ECONNRESET


def test_in_window_rst_with_data_pending_keeps_send_buffer():
    """RFC 5961 3.2: a challenged RST changes nothing: unacknowledged data is still retransmitted."""
    h, conn = established()
    h.app_send(b"payload")
    h.expect(flags="PA", seq=h.l_nxt, payload=b"payload")
    h.send(h.seg("R", seq=h.p_nxt + 3))
    h.expect(flags="A", seq=h.l_nxt + 7, ack=h.p_nxt)
    assert conn.sndbuf == b"payload"
    h.advance(conn.rtt.current_rto())
    h.expect(flags="PA", seq=h.l_nxt, payload=b"payload")


def test_syn_in_established_gets_challenge_ack():
    """RFC 5961 4.2: a SYN in a synchronized state, in window or not -> challenge ACK; no reset, no new
    connection, and the peer's SYN does not move RCV.NXT."""
    h, conn = established()
    h.send(h.seg("S", seq=h.p_nxt + 10))
    h.expect(flags="A", seq=h.l_nxt, ack=h.p_nxt)
    h.expect_nothing()
    assert conn.state is State.ESTABLISHED and conn.rcv_nxt == h.p_nxt
    assert list(h.host.tcp.conns.values()) == [conn]


def test_syn_with_old_isn_in_established_gets_challenge_ack():
    """RFC 5961 4.2: a retransmitted SYN (SEG.SEQ = IRS) in ESTABLISHED -> challenge ACK, nothing else."""
    h, conn = established()
    h.send(h.seg("S", seq=conn.irs))
    h.expect(flags="A", seq=h.l_nxt, ack=h.p_nxt)
    h.expect_nothing()
    assert conn.state is State.ESTABLISHED


def test_ack_too_old_gets_challenge_ack_and_data_dropped():
    """RFC 5961 5.2: SEG.ACK < SND.UNA - MAX.SND.WND -> discard the segment (text too), send an ACK."""
    h, conn = established()
    assert conn.max_snd_wnd == 65535
    h.send(h.seg("PA", ack=conn.snd_una - 65536, load=b"injected"))
    h.expect(flags="A", seq=h.l_nxt, ack=h.p_nxt)
    h.expect_nothing()
    assert not conn.rcvbuf and conn.rcv_nxt == h.p_nxt
    assert conn.state is State.ESTABLISHED


def test_ack_at_lower_bound_is_acceptable():
    """RFC 5961 5.2: SND.UNA - MAX.SND.WND =< SEG.ACK is acceptable: the text is processed."""
    h, conn = established()
    h.send(h.seg("PA", ack=conn.snd_una - 65535, load=b"ok"))
    assert conn.rcvbuf == b"ok"


def test_ack_too_old_uses_max_snd_wnd_not_current_window():
    """RFC 5961 5.2: the bound uses MAX.SND.WND (the largest window ever seen), not the current SND.WND."""
    h, conn = established()
    h.send(h.seg("A", window=100))
    assert conn.snd_wnd == 100 and conn.max_snd_wnd == 65535
    h.send(h.seg("PA", ack=conn.snd_una - 1000, window=100, load=b"fine"))
    assert conn.rcvbuf == b"fine"


def test_challenge_acks_are_rate_limited():
    """RFC 5961 7: challenge ACKs are limited (challenge_ack_limit per second): the excess is dropped silently,
    and the budget refills with time."""
    h, conn = established(challenge_ack_limit=3)
    for i in range(6):
        h.send(h.seg("R", seq=h.p_nxt + 10 + i))
    for _ in range(3):
        h.expect(flags="A", seq=h.l_nxt, ack=h.p_nxt)
    h.expect_nothing()
    assert conn.state is State.ESTABLISHED
    h.advance(1.0)
    for i in range(4):
        h.send(h.seg("R", seq=h.p_nxt + 100 + i))
    assert len(h.drain()) == 3


def test_rate_limit_covers_rst_syn_and_old_ack_together():
    """RFC 5961 7: one budget for every kind of challenge ACK (RST 3.2, SYN 4.2, ACK 5.2)."""
    h, conn = established(challenge_ack_limit=2)
    h.send(h.seg("R", seq=h.p_nxt + 5))
    h.send(h.seg("S", seq=h.p_nxt))
    h.send(h.seg("A", ack=conn.snd_una - 100000))
    assert len(h.drain()) == 2


def test_rate_limit_is_per_stack():
    """RFC 5961 7 (and Linux's tcp_challenge_ack_limit): the limit is global, shared by all connections."""
    h = TcpHarness(challenge_ack_limit=2)
    h.listen()
    conns = []
    for port in (40001, 40002, 40003):
        h.pport = port
        h.send(h.seg("S", seq=7000))
        h.expect(flags="SA", dport=port)
        h.send(h.seg("A", seq=7001, ack=h.iss + 1))
        conns.append(h.conn_for(port))
    for port in (40001, 40002, 40003):
        h.pport = port
        h.send(h.seg("R", seq=7001 + 10))
    assert len(h.drain()) == 2
    assert all(c.state is State.ESTABLISHED for c in conns)


@pytest.mark.parametrize("state", ["FIN_WAIT_2", "CLOSE_WAIT", "TIME_WAIT"])
def test_blind_rst_does_not_kill_other_states(state):
    """RFC 5961 3.2 applies in every synchronized state: a near-miss RST only draws a challenge ACK."""
    h = TcpHarness()
    conn = h.to_state(state)
    h.send(h.seg("R", seq=s32(h.p_nxt + 2)))
    h.expect(flags="A", seq=h.l_nxt, ack=h.p_nxt)
    assert conn.state is State[state]
