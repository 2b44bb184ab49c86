"""The references of exercises 7 and 8 (now the core's own functions) agree with what the core does.

These tests check them from outside, on the wire: the acceptability function against ``Connection._check_sequence`` (an unacceptable segment is
dropped with reason out_of_window and answered with an ACK), and the usable window against
what the sender actually puts on the wire.
"""
from __future__ import annotations

import pytest

from stack.exercises.ex_acceptable import acceptable
from stack.exercises.ex_window import usable_window
from stack.exercises.framework import Trace
from stack.exercises.scenarios import Peer

IRS, ISS = 2**32 - 30_000, 1000  # the peer's sequence numbers wrap inside the window


def _established():
    p = Peer(Trace())
    lst = p.listen()
    p.send("S", IRS)
    p.take()
    p.send("A", IRS + 1, ISS + 1)
    conn = lst.accept()
    return p, conn


@pytest.mark.parametrize("offset", [-40, -10, -1, 0, 1, 100, 65534, 65535, 65540, 2**31])
@pytest.mark.parametrize("length", [0, 1, 10])
def test_acceptable_matches_the_core(offset, length):
    p, conn = _established()
    rcv_nxt, rcv_wnd = conn.rcv_nxt, conn.rcv_wnd
    seq = (rcv_nxt + offset) % 2**32
    drops = conn.stats["drops"]
    p.send("A", seq, ISS + 1, b"d" * length)
    dropped = conn.stats["drops"] > drops
    assert dropped == (not acceptable(seq, length, rcv_nxt, rcv_wnd)), (offset, length, rcv_wnd)


@pytest.mark.parametrize("peer_window", [1000, 5000, 20000])
def test_usable_window_matches_what_the_sender_sends(peer_window):
    """Nothing in flight, a peer window below cwnd: the sender puts out usable_window bytes, rounded
    down to whole segments (sender SWS avoidance and Nagle, RFC 9293 3.8.6.2.1, hold the tail)."""
    p, conn = _established()
    p.send("A", IRS + 1, ISS + 1, window=peer_window)
    conn.send(b"x" * 100_000, p.now)
    p.host.tcp.touch(conn, p.now)
    p._collect()
    sent = sum(len(s.payload) for _, s, _ in p.take())
    usable = usable_window(conn.snd_una, conn.snd_una, peer_window, conn.cc.cwnd)
    assert sent == usable - usable % conn.eff_mss, (sent, usable, conn.eff_mss, conn.cc.cwnd)


def test_timer_reference_samples_like_the_core():
    """Three segments sent at 0, 10 and 20 ms, one ACK for all at 120 ms: the connection's timer and the
    same class driven through exercise 5's interface alone both take a single 100 ms sample (from the
    newest segment) and stop; the connection's RTO deadline is its timer's at every step."""
    from stack.exercises.ex_timer import reference
    from stack.tcp.rtt import RttEstimator
    RetransmissionTimer = reference().RetransmissionTimer

    p, conn = _established()
    ref = RetransmissionTimer(RttEstimator(1.0, 0.2, 120.0))
    assert conn.rtt.latest_rtt == 0.0  # the handshake's own sample (its ACK came at once)
    ref.rtt.sample(0.0)
    mss = conn.eff_mss
    for i, at in enumerate((0.0, 0.01, 0.02)):
        p.advance_to(at)
        conn.send(b"x" * mss, p.now)
        p.host.tcp.touch(conn, p.now)
        p._collect()
        ref.on_send(ISS + 1 + i * mss, ISS + 1 + (i + 1) * mss, at)
        assert conn.timers.rto == conn.rtx.deadline == ref.deadline == pytest.approx(conn.rtt.current_rto())
    assert isinstance(conn.rtx, RetransmissionTimer)
    assert len(p.take()) == 3
    p.send("A", IRS + 1, ISS + 1 + 3 * mss, at=0.12)
    ref.on_ack(ISS + 1 + 3 * mss, 0.12, all_acked=True)
    assert conn.rtt.latest_rtt == pytest.approx(0.1) == ref.rtt.latest_rtt
    assert conn.rtt.srtt == pytest.approx(ref.rtt.srtt)
    assert conn.timers.rto is None and conn.rtx.deadline is None and ref.deadline is None
