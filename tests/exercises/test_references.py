"""The pure references of parts the core does not call yet agree with what the core does today.

Until the core merge wires them, these tests are what makes them *the stack's* reference:
the acceptability function against ``Connection._check_sequence`` (an unacceptable segment is
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
