"""TCP_USER_TIMEOUT (RFC 5482, Linux semantics) in virtual time: the connection is aborted with ETIMEDOUT once
transmitted data stays unacknowledged for the timeout, checked when the retransmission timer expires (which is
clamped so that it expires no later than the timeout), in zero-window probing and in keep-alive."""
import errno

from harness import ISS, TcpHarness
from stack.tcp.states import State


def with_rtt(user_timeout: float, **kw):
    """Active open with SRTT 0.5, RTO 1.5 s (RFC 6298 2.2); TCP_USER_TIMEOUT set on the connection."""
    h = TcpHarness(**kw)
    conn = h.connect(rtt=0.5)
    conn.user_timeout = user_timeout
    return h, conn


def test_unacknowledged_data_aborts_after_user_timeout():
    """RFC 5482 3 (Linux retransmits_timed_out): data first sent at 0.5 with user timeout 4 s. The first RTO
    expiry (2.0) retransmits; the next RTO (3 s, at 5.0) is clamped to the timeout (Linux
    tcp_clamp_rto_to_user_timeout): at 4.5 = 0.5 + 4 the connection is aborted with ETIMEDOUT, nothing sent."""
    h, conn = with_rtt(4.0)
    h.app_send(b"x" * 10)
    h.expect(flags="PA", seq=ISS + 1, at=0.5)
    h.advance_to(4.499)
    h.expect(flags="PA", seq=ISS + 1, payload=b"x" * 10, at=2.0)
    assert conn.state is State.ESTABLISHED
    h.advance_to(4.5)
    h.expect_nothing()
    assert conn.state is State.CLOSED and conn.error == errno.ETIMEDOUT


def test_user_timeout_replaces_retries2():
    """Linux: with TCP_USER_TIMEOUT the retry count R2 (tcp_retries2) no longer ends the connection, the time
    does: retries2=1 would give up at 5.0; with a 20 s user timeout the data is resent at 2, 5, 11 and the
    connection aborted at 20.5 (the 12 s RTO clamped to 0.5 + 20)."""
    h, conn = with_rtt(20.0, retries2=1)
    h.app_send(b"x" * 10)
    h.drain()
    h.advance_to(20.499)
    assert [e.at for e in h.drain()] == [2.0, 5.0, 11.0]
    assert conn.state is State.ESTABLISHED
    h.advance_to(20.5)
    h.expect_nothing()
    assert conn.state is State.CLOSED and conn.error == errno.ETIMEDOUT


def test_partial_ack_keeps_the_clock_while_retransmitted_data_is_outstanding():
    """Linux retrans_stamp: an ACK of the first of two segments (4.0) does not restart the clock while the
    go-back retransmission is unacknowledged. The ACK restarted the RTO (RFC 6298 5.3; 3 s, backed off)
    unclamped, as Linux's tcp_rearm_rto: at its expiry (7.0) the data has been unacknowledged since 0.5,
    more than 4 s: aborted, nothing resent."""
    h, conn = with_rtt(4.0)
    h.app_send(b"y" * 2920)
    assert [e.at for e in h.drain()] == [0.5, 0.5]
    h.advance_to(3.9)
    h.expect(seq=ISS + 1, length=1460, at=2.0)
    h.send(h.seg("A", ack=ISS + 1 + 1460), at=4.0)
    h.expect(seq=ISS + 1 + 1460, length=1460, at=4.0)
    h.advance_to(6.999)
    assert conn.state is State.ESTABLISHED
    h.advance_to(7.0)
    h.expect_nothing()
    assert conn.state is State.CLOSED and conn.error == errno.ETIMEDOUT


def test_everything_acknowledged_starts_a_new_clock():
    """RFC 5482 1: the timeout bounds how long data stays unacknowledged: once all is acknowledged (2.1), new
    data sent at 2.1 has its own clock: its first expiry (5.1, the backed-off 3 s RTO) retransmits although
    5.1 - 0.5 exceeds the 4 s timeout; the connection is aborted at 2.1 + 4 = 6.1."""
    h, conn = with_rtt(4.0)
    h.app_send(b"k" * 10)
    h.advance_to(2.05)
    assert [e.at for e in h.drain()] == [0.5, 2.0]
    h.send(h.seg("A", ack=ISS + 11), at=2.1)
    h.app_send(b"n" * 10)
    h.expect(flags="PA", seq=ISS + 11, at=2.1)
    h.advance_to(6.099)
    h.expect(flags="PA", seq=ISS + 11, payload=b"n" * 10, at=5.1)
    assert conn.state is State.ESTABLISHED
    h.advance_to(6.1)
    h.expect_nothing()
    assert conn.state is State.CLOSED and conn.error == errno.ETIMEDOUT


def test_user_timeout_does_not_shorten_the_handshake():
    """Linux tcp_write_timeout(): SYN-SENT counts SYN retries only; the user timeout starts once synchronized."""
    h = TcpHarness(syn_retries=3)
    conn = h.connect(complete=False)
    conn.user_timeout = 0.5
    h.advance_to(14.999)
    assert [e.at for e in h.drain()] == [1.0, 3.0, 7.0]
    assert conn.state is State.SYN_SENT


def zero_peer_window(user_timeout: float):
    h = TcpHarness(min_rto=1.0)
    conn = h.listen_and_establish(ack_window=0)
    conn.user_timeout = user_timeout
    h.app_send(bytes(range(100)))
    h.expect_nothing()
    return h, conn


def test_zero_window_probing_aborts_after_user_timeout_even_when_answered():
    """Linux tcp_probe_timer (icsk_probes_tstamp, RFC 1122 4.2.2.17's exception for a user timeout): the first
    probe (1.0) starts the clock; probes at 3 and 7 are answered with a zero window, yet at 11.0 = 1 + 10 (the
    8 s backoff clamped, tcp_clamp_probe0_to_user_timeout) the connection is aborted with ETIMEDOUT."""
    h, conn = zero_peer_window(10.0)
    for t in (1.0, 3.0, 7.0):
        h.advance_to(t)
        h.expect(flags="A", seq=h.l_nxt - 1, payload=b"", at=t)
        h.send(h.seg("A", window=0), at=t + 0.1)
    h.advance_to(10.999)
    h.expect_nothing()
    assert conn.state is State.ESTABLISHED
    h.advance_to(11.0)
    h.expect_nothing()
    assert conn.state is State.CLOSED and conn.error == errno.ETIMEDOUT


def test_window_opening_ends_the_probe_episode():
    """An ACK that opens the window ends zero-window probing (3.5); a later zero window (3.6) starts a new
    clock at its first probe (4.6, RTO 1 s): probes at 4.6 and 6.6, aborted at 4.6 + 5 = 9.6, not at 6.0."""
    h, conn = zero_peer_window(5.0)
    h.advance_to(3.0)
    assert [e.at for e in h.drain()] == [1.0, 3.0]
    h.send(h.seg("A", window=1000), at=3.5)
    h.expect(flags="PA", seq=h.l_nxt, length=100, at=3.5)
    h.send(h.seg("A", ack=h.l_nxt + 100, window=0), at=3.6)
    h.app_send(b"z" * 100)
    h.advance_to(9.599)
    assert [e.at for e in h.drain()] == [4.6, 6.6]
    assert conn.state is State.ESTABLISHED
    h.advance_to(9.6)
    assert conn.state is State.CLOSED and conn.error == errno.ETIMEDOUT


def keepalive(user_timeout: float):
    h = TcpHarness(keepalive_idle=10.0, keepalive_interval=2.0, keepalive_count=3)
    conn = h.established()
    conn.user_timeout = user_timeout
    h.call(conn.set_keepalive, True)
    return h, conn


def test_keepalive_gives_up_at_user_timeout_not_keepcnt():
    """Linux tcp_keepalive_timer: with TCP_USER_TIMEOUT, TCP_KEEPCNT is ignored: probes continue every
    interval until nothing was received for the timeout (30 s): probes at 10..28, abort at 30, not at 16."""
    h, conn = keepalive(30.0)
    h.advance_to(29.999)
    assert [e.at for e in h.drain()] == [10.0, 12.0, 14.0, 16.0, 18.0, 20.0, 22.0, 24.0, 26.0, 28.0]
    assert conn.state is State.ESTABLISHED
    h.advance_to(30.0)
    h.drain()
    assert conn.state is State.CLOSED and conn.error == errno.ETIMEDOUT


def test_keepalive_user_timeout_shorter_than_keepcnt():
    """The same rule cuts keep-alive short: idle 10 s, user timeout 13 s: probes at 10 and 12, abort at 14."""
    h, conn = keepalive(13.0)
    h.advance_to(13.999)
    assert [e.at for e in h.drain()] == [10.0, 12.0]
    h.advance_to(14.0)
    h.drain()
    assert conn.state is State.CLOSED and conn.error == errno.ETIMEDOUT
