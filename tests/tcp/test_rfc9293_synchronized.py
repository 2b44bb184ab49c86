"""RFC 9293 3.10.7.4, SEGMENT ARRIVES in the synchronized states, state by state and input by input.

Each helper drives a fresh connection through real segment exchanges (see harness.py). After it,
``h.p_nxt`` is RCV.NXT and ``h.l_nxt`` is SND.NXT; ``conn.snd_una`` is SND.UNA (below SND.NXT while
our FIN is unacknowledged). Options are off; the receive window is 65535 (or 65534 after a FIN).
"""
import errno

import pytest

from harness import TcpHarness, s32
from stack.tcp.states import State

SYNC = ["ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2", "CLOSE_WAIT", "CLOSING", "LAST_ACK", "TIME_WAIT"]
RECEIVING = ["ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2"]          # text is still processed here
AFTER_PEER_FIN = ["CLOSE_WAIT", "CLOSING", "LAST_ACK", "TIME_WAIT"]
FAR = 200000  # beyond any receive window used here


def at_state(name, **kw):
    h = TcpHarness(**kw)
    conn = h.to_state(name)
    return h, conn


def assert_unchanged(h, conn, name):
    assert conn.state is State[name]
    assert conn.rcv_nxt == h.p_nxt and conn.snd_nxt == h.l_nxt


# ------------------------------------------------------------------ first check: sequence number
@pytest.mark.parametrize("name", SYNC)
def test_out_of_window_data_gets_ack(name):
    """RFC 9293 3.10.7.4 first check: unacceptable segment (beyond the window) -> <SEQ=SND.NXT><ACK=RCV.NXT>
    <CTL=ACK>, drop it."""
    h, conn = at_state(name)
    h.send(h.seg("PA", seq=h.p_nxt + FAR, ack=conn.snd_una, load=b"x" * 10))
    h.expect(flags="A", seq=h.l_nxt, ack=h.p_nxt, payload=b"")
    h.expect_nothing()
    assert_unchanged(h, conn, name)
    assert not conn.rcvbuf and not conn.reasm


@pytest.mark.parametrize("name", SYNC)
def test_old_duplicate_data_gets_ack(name):
    """RFC 9293 3.10.7.4 first check: a segment wholly below RCV.NXT is unacceptable -> ACK, drop."""
    h, conn = at_state(name)
    h.send(h.seg("PA", seq=h.p_nxt - 300, ack=conn.snd_una, load=b"o" * 100))
    h.expect(flags="A", seq=h.l_nxt, ack=h.p_nxt)
    h.expect_nothing()
    assert_unchanged(h, conn, name)
    assert not conn.rcvbuf


@pytest.mark.parametrize("name", SYNC)
@pytest.mark.parametrize("where", ["left", "right_edge"])
def test_zero_length_segment_outside_window_gets_ack(name, where):
    """RFC 9293 3.10.7.4 first check, SEG.LEN=0 and RCV.WND>0: acceptable iff RCV.NXT =< SEG.SEQ <
    RCV.NXT+RCV.WND; SEG.SEQ = RCV.NXT-1 and SEG.SEQ = RCV.NXT+RCV.WND are not -> ACK."""
    h, conn = at_state(name)
    seq = h.p_nxt - 1 if where == "left" else h.p_nxt + conn.rcv_wnd
    h.send(h.seg("A", seq=seq, ack=conn.snd_una))
    h.expect(flags="A", seq=h.l_nxt, ack=h.p_nxt)
    h.expect_nothing()
    assert_unchanged(h, conn, name)


@pytest.mark.parametrize("name", ["ESTABLISHED", "FIN_WAIT_2", "CLOSE_WAIT", "TIME_WAIT"])
def test_zero_length_segment_at_last_window_octet_is_acceptable(name):
    """RFC 9293 3.10.7.4 first check, SEG.LEN=0, RCV.WND>0: SEG.SEQ = RCV.NXT+RCV.WND-1 is acceptable
    (a bare duplicate ACK there draws no reply)."""
    h, conn = at_state(name)
    h.send(h.seg("A", seq=h.p_nxt + conn.rcv_wnd - 1, ack=conn.snd_una))
    h.expect_nothing()
    assert_unchanged(h, conn, name)


# ------------------------------------------------------------------ second check: RST
@pytest.mark.parametrize("name", SYNC)
def test_exact_rst_closes(name):
    """RFC 9293 3.10.7.4 second check (RFC 5961 3.2): RST with SEG.SEQ = RCV.NXT -> CLOSED, TCB deleted;
    "connection reset" to the user in ESTABLISHED, FIN-WAIT-1/2, CLOSE-WAIT; nothing is sent."""
    h, conn = at_state(name)
    h.send(h.seg("R", seq=h.p_nxt, ack=0))
    h.expect_nothing()
    assert conn.state is State.CLOSED
    if name in ("ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2", "CLOSE_WAIT"):
        assert conn.error == errno.ECONNRESET
    assert conn.next_deadline() is None
    h.send(h.seg("A", seq=h.p_nxt, ack=h.l_nxt))  # TCB gone: the port is CLOSED now (3.10.7.1)
    h.expect(flags="R", seq=h.l_nxt)


@pytest.mark.parametrize("name", SYNC)
def test_exact_rst_with_ack_closes(name):
    """RFC 9293 3.10.7.4 second check: the ACK bit on a RST does not matter; SEG.SEQ = RCV.NXT -> CLOSED."""
    h, conn = at_state(name)
    h.send(h.seg("RA", seq=h.p_nxt, ack=conn.snd_una))
    h.expect_nothing()
    assert conn.state is State.CLOSED


@pytest.mark.parametrize("name", SYNC)
@pytest.mark.parametrize("offset", [1, 1000, "last"])
def test_in_window_inexact_rst_gets_challenge_ack(name, offset):
    """RFC 9293 3.10.7.4 second check / RFC 5961 3.2: RST in the window but SEG.SEQ != RCV.NXT -> challenge
    ACK <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>, drop; the connection stays."""
    h, conn = at_state(name)
    seq = h.p_nxt + (conn.rcv_wnd - 1 if offset == "last" else offset)
    h.send(h.seg("R", seq=seq, ack=0))
    h.expect(flags="A", seq=h.l_nxt, ack=h.p_nxt)
    h.expect_nothing()
    assert_unchanged(h, conn, name)


@pytest.mark.parametrize("name", SYNC)
@pytest.mark.parametrize("where", ["left", "right_edge", "far"])
def test_out_of_window_rst_is_dropped_silently(name, where):
    """RFC 9293 3.10.7.4 first check: "If an incoming segment is not acceptable, an acknowledgment should
    be sent in reply (unless the RST bit is set, if so drop the segment and return)"."""
    h, conn = at_state(name)
    seq = {"left": h.p_nxt - 1, "right_edge": h.p_nxt + conn.rcv_wnd, "far": h.p_nxt + FAR}[where]
    h.send(h.seg("R", seq=seq, ack=0))
    h.expect_nothing()
    assert_unchanged(h, conn, name)


# ------------------------------------------------------------------ fourth check: SYN
@pytest.mark.parametrize("name", SYNC)
@pytest.mark.parametrize("flags", ["S", "SA"])
def test_syn_at_rcv_nxt_gets_challenge_ack(name, flags):
    """RFC 9293 3.10.7.4 fourth check / RFC 5961 4.2: a SYN in a synchronized state, whatever its sequence
    number -> challenge ACK, drop; the connection stays."""
    h, conn = at_state(name)
    h.send(h.seg(flags, seq=h.p_nxt, ack=conn.snd_una))
    h.expect(flags="A", seq=h.l_nxt, ack=h.p_nxt)
    h.expect_nothing()
    assert_unchanged(h, conn, name)


@pytest.mark.parametrize("name", [s for s in SYNC if s != "TIME_WAIT"])
@pytest.mark.parametrize("offset", [10, -1000, FAR])
def test_syn_elsewhere_gets_ack(name, offset):
    """RFC 9293 3.10.7.4 fourth check (RFC 5961 4.2): a SYN anywhere else is answered with an ACK too."""
    h, conn = at_state(name)
    h.send(h.seg("S", seq=h.p_nxt + offset))
    h.expect(flags="A", seq=h.l_nxt, ack=h.p_nxt)
    h.expect_nothing()
    assert_unchanged(h, conn, name)


def test_syn_with_data_in_window_not_delivered():
    """RFC 9293 3.10.7.4 fourth check: the SYN segment is dropped after the challenge ACK, text included."""
    h, conn = at_state("ESTABLISHED")
    h.send(h.seg("S", seq=h.p_nxt, load=b"evil"))
    h.expect(flags="A", seq=h.l_nxt, ack=h.p_nxt)
    assert not conn.rcvbuf and conn.rcv_nxt == h.p_nxt


# ------------------------------------------------------------------ fifth check: ACK
@pytest.mark.parametrize("name", SYNC)
def test_ack_bit_off_is_dropped(name):
    """RFC 9293 3.10.7.4 fifth check: "if the ACK bit is off, drop the segment and return" (text ignored)."""
    h, conn = at_state(name)
    h.send(h.seg("P", seq=h.p_nxt, load=b"noack"))
    h.expect_nothing()
    assert_unchanged(h, conn, name)
    assert not conn.rcvbuf


@pytest.mark.parametrize("name", SYNC)
def test_ack_of_unsent_data_gets_ack_and_drop(name):
    """RFC 9293 3.10.7.4 fifth check: SEG.ACK > SND.NXT -> send an ACK, drop the segment (text too)."""
    h, conn = at_state(name)
    h.send(h.seg("PA", seq=h.p_nxt, ack=h.l_nxt + 100, load=b"data"))
    h.expect(flags="A", seq=h.l_nxt, ack=h.p_nxt)
    h.expect_nothing()
    assert_unchanged(h, conn, name)
    assert not conn.rcvbuf


@pytest.mark.parametrize("name", SYNC)
def test_old_duplicate_ack_is_ignored(name):
    """RFC 9293 3.10.7.4 fifth check: SEG.ACK < SND.UNA (within MAX.SND.WND, RFC 5961 5.2) -> ignore the ACK;
    a bare one draws no reply and changes nothing."""
    h, conn = at_state(name)
    una = conn.snd_una
    h.send(h.seg("A", seq=h.p_nxt, ack=una - 10))
    h.expect_nothing()
    assert_unchanged(h, conn, name)
    assert conn.snd_una == una


@pytest.mark.parametrize("name", RECEIVING)
def test_old_ack_with_data_still_delivers_text(name):
    """RFC 9293 3.10.7.4 fifth check: a duplicate ACK "can be ignored", the segment continues to the text
    step (RFC 5961 5.2: acceptable because SEG.ACK >= SND.UNA - MAX.SND.WND)."""
    h, conn = at_state(name)
    h.send(h.seg("PA", seq=h.p_nxt, ack=conn.snd_una - 10, load=b"hello"))
    assert conn.rcvbuf == b"hello" and conn.rcv_nxt == h.p_nxt + 5


# ------------------------------------------------------------------ seventh check: text
@pytest.mark.parametrize("name", RECEIVING)
def test_data_is_delivered_and_acked(name):
    """RFC 9293 3.10.7.4 seventh check, ESTABLISHED/FIN-WAIT-1/FIN-WAIT-2: text goes to the receive buffer,
    RCV.NXT advances, an ACK <SEQ=SND.NXT><ACK=RCV.NXT> follows (delayed, RFC 9293 3.8.6.3)."""
    h, conn = at_state(name)
    h.send(h.seg("PA", seq=h.p_nxt, ack=conn.snd_una, load=b"abcdef"))
    assert conn.rcvbuf == b"abcdef" and conn.rcv_nxt == h.p_nxt + 6
    h.advance(h.config.delack)
    h.expect(flags="A", seq=h.l_nxt, ack=h.p_nxt + 6)
    h.expect_nothing()
    assert conn.state is State[name]


@pytest.mark.parametrize("name", AFTER_PEER_FIN)
def test_text_after_peer_fin_is_ignored(name):
    """RFC 9293 3.10.7.4 seventh check, CLOSE-WAIT/CLOSING/LAST-ACK/TIME-WAIT: "This should not occur since
    a FIN has been received from the remote side. Ignore the segment text.\""""
    h, conn = at_state(name)
    h.send(h.seg("PA", seq=h.p_nxt, ack=conn.snd_una, load=b"late"))
    h.drain()
    assert_unchanged(h, conn, name)
    assert not conn.rcvbuf


def test_partially_old_segment_delivers_only_new_part():
    """RFC 9293 3.10.7.4 first check, SEG.LEN>0: acceptable when SEG.SEQ+SEG.LEN-1 is in the window;
    "only the new parts are processed"."""
    h, conn = at_state("ESTABLISHED")
    h.send(h.seg("PA", load=b"12345"))
    h.send(h.seg("PA", seq=h.p_nxt + 2, load=b"345678"))
    assert conn.rcvbuf == b"12345678"


# ------------------------------------------------------------------ acceptability with a zero window
def zero_window(**kw):
    """ESTABLISHED with a 1000-octet receive buffer that the peer has filled: RCV.WND = 0."""
    h = TcpHarness(rcvbuf=1000, **kw)
    conn = h.established()
    h.send(h.seg("PA", load=b"z" * 1000))
    h.p_nxt += 1000
    h.advance(h.config.delack)
    h.expect(flags="A", seq=h.l_nxt, ack=h.p_nxt, window=0)
    h.expect_nothing()
    assert conn.rcv_wnd == 0
    return h, conn


def test_zero_window_zero_length_at_rcv_nxt_is_acceptable():
    """RFC 9293 3.10.7.4 first check, SEG.LEN=0, RCV.WND=0: SEG.SEQ = RCV.NXT is acceptable (window update
    from the peer is taken, no reply)."""
    h, conn = zero_window()
    h.send(h.seg("A", window=1234))
    h.expect_nothing()
    assert conn.snd_wnd == 1234


def test_zero_window_zero_length_elsewhere_gets_ack():
    """RFC 9293 3.10.7.4 first check, SEG.LEN=0, RCV.WND=0: SEG.SEQ != RCV.NXT is not acceptable -> ACK."""
    h, conn = zero_window()
    h.send(h.seg("A", seq=h.p_nxt + 1, window=1234))
    h.expect(flags="A", seq=h.l_nxt, ack=h.p_nxt, window=0)
    h.expect_nothing()
    assert conn.snd_wnd == 65535


def test_zero_window_data_not_acceptable_gets_ack():
    """RFC 9293 3.10.7.4 first check, SEG.LEN>0, RCV.WND=0: not acceptable -> ACK (window 0), text dropped."""
    h, conn = zero_window()
    h.send(h.seg("PA", load=b"p"))
    h.expect(flags="A", seq=h.l_nxt, ack=h.p_nxt, window=0)
    h.expect_nothing()
    assert len(conn.rcvbuf) == 1000 and conn.rcv_nxt == h.p_nxt


def test_zero_window_probe_still_processes_ack():
    """RFC 9293 3.10.7.4 first check: "If the RCV.WND is zero ... special allowance should be made to accept
    valid ACKs": a zero-window probe at RCV.NXT that acknowledges our data advances SND.UNA."""
    h, conn = zero_window()
    h.app_send(b"reply")
    h.expect(flags="PA", seq=h.l_nxt, payload=b"reply")
    h.send(h.seg("PA", ack=h.l_nxt + 5, load=b"p"))
    h.expect(flags="A", seq=h.l_nxt + 5, ack=h.p_nxt, window=0)
    assert conn.snd_una == h.l_nxt + 5 and not conn.sndbuf


def test_zero_window_exact_rst_resets():
    """RFC 9293 3.10.7.4 first check: with RCV.WND=0 special allowance is made for RSTs (at RCV.NXT)."""
    h, conn = zero_window()
    h.send(h.seg("R"))
    h.expect_nothing()
    assert conn.state is State.CLOSED and conn.error == errno.ECONNRESET


def test_nonzero_window_data_starting_before_window_is_acceptable():
    """RFC 9293 3.10.7.4 first check, SEG.LEN>0, RCV.WND>0: acceptable if RCV.NXT =< SEG.SEQ+SEG.LEN-1 <
    RCV.NXT+RCV.WND (the end is in the window); the old head is trimmed off."""
    h = TcpHarness(rcvbuf=10)
    conn = h.established()
    assert conn.rcv_wnd == 10
    h.send(h.seg("PA", seq=h.p_nxt - 5, load=bytes(range(10))))
    assert conn.rcvbuf == bytes(range(5, 10))


def test_nonzero_window_data_starting_at_last_window_octet_is_acceptable():
    """RFC 9293 3.10.7.4 first check, SEG.LEN>0, RCV.WND>0: acceptable if RCV.NXT =< SEG.SEQ <
    RCV.NXT+RCV.WND (SEG.SEQ is the window's last octet); only that octet fits."""
    h = TcpHarness(rcvbuf=10)
    conn = h.established()
    h.send(h.seg("PA", load=b"a" * 9))
    h.p_nxt += 9
    h.send(h.seg("PA", load=b"B" * 10))
    assert conn.rcvbuf == b"a" * 9 + b"B"
    assert conn.rcv_nxt == h.p_nxt + 1


def test_nonzero_window_data_starting_at_right_edge_gets_ack():
    """RFC 9293 3.10.7.4 first check, SEG.LEN>0, RCV.WND>0: SEG.SEQ = RCV.NXT+RCV.WND -> not acceptable -> ACK."""
    h = TcpHarness(rcvbuf=10)
    conn = h.established()
    h.send(h.seg("PA", seq=h.p_nxt + 10, load=b"x" * 5))
    h.expect(flags="A", seq=h.l_nxt, ack=h.p_nxt, window=10)
    h.expect_nothing()
    assert not conn.rcvbuf


def test_data_beyond_right_edge_is_cut():
    """RFC 9293 3.10.7.4: the segment is trimmed to the window ("tailored by removing the portion that lies
    outside the window"); the octets beyond the right edge are not accepted."""
    h = TcpHarness(rcvbuf=1000)
    conn = h.established()
    h.send(h.seg("PA", load=bytes(range(256)) * 6))
    assert conn.rcvbuf == (bytes(range(256)) * 6)[:1000]
    assert conn.rcv_nxt == h.p_nxt + 1000


def test_fin_beyond_right_edge_is_cut_with_the_data():
    """RFC 9293 3.10.7.4: trimming removes a FIN that lies outside the window: no CLOSE-WAIT, ACK=RCV.NXT."""
    h = TcpHarness(rcvbuf=1000)
    conn = h.established()
    h.send(h.seg("FPA", load=b"f" * 1500))
    assert conn.state is State.ESTABLISHED and conn.rcv_nxt == h.p_nxt + 1000
    assert not conn.rcv_closed


# ------------------------------------------------------------------ eighth check: FIN
def test_fin_in_established_goes_to_close_wait():
    """RFC 9293 3.10.7.4 eighth check, ESTABLISHED: FIN -> CLOSE-WAIT, RCV.NXT over the FIN, ACK it at once."""
    h, conn = at_state("ESTABLISHED")
    h.send(h.seg("FA"))
    h.expect(flags="A", seq=h.l_nxt, ack=h.p_nxt + 1)
    h.expect_nothing()
    assert conn.state is State.CLOSE_WAIT and conn.at_eof


def test_fin_with_data_in_established():
    """RFC 9293 3.10.7.4 seventh and eighth checks: the text is delivered, then the FIN; one ACK covers both."""
    h, conn = at_state("ESTABLISHED")
    h.send(h.seg("FPA", load=b"bye"))
    h.expect(flags="A", seq=h.l_nxt, ack=h.p_nxt + 4)
    h.expect_nothing()
    assert conn.state is State.CLOSE_WAIT and conn.rcvbuf == b"bye"


def test_fin_in_fin_wait_1_not_acking_ours_goes_to_closing():
    """RFC 9293 3.10.7.4 eighth check, FIN-WAIT-1: our FIN not yet ACKed -> CLOSING (simultaneous close)."""
    h, conn = at_state("FIN_WAIT_1")
    h.send(h.seg("FA", ack=conn.snd_una))
    h.expect(flags="A", seq=h.l_nxt, ack=h.p_nxt + 1)
    h.expect_nothing()
    assert conn.state is State.CLOSING


def test_fin_in_fin_wait_1_acking_ours_goes_to_time_wait():
    """RFC 9293 3.10.7.4 eighth check, FIN-WAIT-1: "If our FIN has been ACKed (perhaps in this segment),
    then enter TIME-WAIT, start the time-wait timer"."""
    h, conn = at_state("FIN_WAIT_1")
    h.send(h.seg("FA", ack=h.l_nxt))
    h.expect(flags="A", seq=h.l_nxt, ack=h.p_nxt + 1)
    h.expect_nothing()
    assert conn.state is State.TIME_WAIT
    assert conn.next_deadline() == pytest.approx(h.now + 2 * h.config.msl)


def test_fin_in_fin_wait_2_goes_to_time_wait():
    """RFC 9293 3.10.7.4 eighth check, FIN-WAIT-2: FIN -> TIME-WAIT, start the time-wait timer."""
    h, conn = at_state("FIN_WAIT_2")
    h.send(h.seg("FA"))
    h.expect(flags="A", seq=h.l_nxt, ack=h.p_nxt + 1)
    h.expect_nothing()
    assert conn.state is State.TIME_WAIT


@pytest.mark.parametrize("name", ["CLOSE_WAIT", "CLOSING", "LAST_ACK"])
def test_retransmitted_fin_is_acked_state_kept(name):
    """RFC 9293 3.10.7.4 eighth check, CLOSE-WAIT/CLOSING/LAST-ACK: "Remain in the ... state"; the peer's
    retransmitted FIN (SEG.SEQ = RCV.NXT-1) is ACKed again (first check)."""
    h, conn = at_state(name)
    h.send(h.seg("FA", seq=h.p_nxt - 1, ack=conn.snd_una))
    h.expect(flags="A", seq=h.l_nxt, ack=h.p_nxt)
    h.expect_nothing()
    assert_unchanged(h, conn, name)


# ------------------------------------------------------------------ ACK-driven transitions
def test_fin_wait_1_ack_of_fin_goes_to_fin_wait_2():
    """RFC 9293 3.10.7.4 fifth check, FIN-WAIT-1: "if the FIN segment is now acknowledged, then enter
    FIN-WAIT-2"."""
    h, conn = at_state("FIN_WAIT_1")
    h.send(h.seg("A"))
    h.expect_nothing()
    assert conn.state is State.FIN_WAIT_2


def test_closing_ack_of_fin_goes_to_time_wait():
    """RFC 9293 3.10.7.4 fifth check, CLOSING: ACK of our FIN -> TIME-WAIT."""
    h, conn = at_state("CLOSING")
    h.send(h.seg("A"))
    h.expect_nothing()
    assert conn.state is State.TIME_WAIT
    assert conn.next_deadline() == pytest.approx(h.now + 2 * h.config.msl)


def test_closing_without_ack_of_fin_stays():
    """RFC 9293 3.10.7.4 fifth check, CLOSING: "otherwise, ignore the segment"."""
    h, conn = at_state("CLOSING")
    h.send(h.seg("A", ack=conn.snd_una))
    h.expect_nothing()
    assert conn.state is State.CLOSING


def test_last_ack_ack_of_fin_closes():
    """RFC 9293 3.10.7.4 fifth check, LAST-ACK: the ACK of our FIN -> delete the TCB, CLOSED, and return."""
    h, conn = at_state("LAST_ACK")
    h.send(h.seg("A"))
    h.expect_nothing()
    assert conn.state is State.CLOSED and conn.error == 0
    assert h.host.tcp.conns == {}
    h.send(h.seg("A"))
    h.expect(flags="R", seq=h.l_nxt)


def test_last_ack_without_ack_of_fin_stays():
    """RFC 9293 3.10.7.4 fifth check, LAST-ACK: an ACK below our FIN does not close."""
    h, conn = at_state("LAST_ACK")
    h.send(h.seg("A", ack=conn.snd_una))
    h.expect_nothing()
    assert conn.state is State.LAST_ACK


def test_last_ack_fin_retransmitted_until_acked():
    """RFC 9293 3.8.1 / RFC 6298 5.4: the unacknowledged FIN in LAST-ACK is retransmitted on RTO."""
    h, conn = at_state("LAST_ACK")
    rto = conn.rtt.current_rto()
    h.advance(rto)
    h.expect(flags="FA", seq=h.l_nxt - 1, ack=h.p_nxt, at=rto)
    h.expect_nothing()


def test_fin_wait_1_fin_retransmitted_on_rto():
    """RFC 9293 3.8.1: an unacknowledged FIN is retransmitted like data."""
    h, conn = at_state("FIN_WAIT_1")
    rto = conn.rtt.current_rto()
    h.advance(rto)
    h.expect(flags="FA", seq=h.l_nxt - 1, ack=h.p_nxt, at=rto)
    h.expect_nothing()


# ------------------------------------------------------------------ TIME-WAIT
def test_time_wait_lasts_exactly_two_msl():
    """RFC 9293 3.10.7.4 / 3.3.2: TIME-WAIT ends after 2*MSL (virtual time), then CLOSED, TCB deleted."""
    h, conn = at_state("TIME_WAIT")
    start = h.now
    h.advance_to(start + 2 * h.config.msl - 0.001)
    assert conn.state is State.TIME_WAIT
    h.advance_to(start + 2 * h.config.msl)
    assert conn.state is State.CLOSED
    h.expect_nothing()
    assert h.host.tcp.conns == {}


def test_time_wait_acks_nothing_for_bare_ack():
    """RFC 9293 3.10.7.4: an acceptable bare ACK in TIME-WAIT is ignored (no reply, no state change)."""
    h, conn = at_state("TIME_WAIT")
    h.send(h.seg("A"))
    h.expect_nothing()
    assert conn.state is State.TIME_WAIT


def test_time_wait_retransmitted_fin_acked_and_2msl_restarted():
    """RFC 9293 3.10.7.4 fifth check, TIME-WAIT: "The only thing that can arrive in this state is a
    retransmission of the remote FIN. Acknowledge it, and restart the 2 MSL timeout." (eighth check:
    "Remain in the TIME-WAIT state. Restart the 2 MSL time-out.")"""
    h, conn = at_state("TIME_WAIT")
    msl2 = 2 * h.config.msl
    h.advance_to(10.0)
    h.send(h.seg("FA", seq=h.p_nxt - 1))
    h.expect(flags="A", seq=h.l_nxt, ack=h.p_nxt, at=10.0)
    h.expect_nothing()
    h.advance_to(10.0 + msl2 - 0.001)
    assert conn.state is State.TIME_WAIT
    h.advance_to(10.0 + msl2)
    assert conn.state is State.CLOSED


def test_time_wait_retransmitted_fin_is_acked():
    """RFC 9293 3.10.7.4 fifth check, TIME-WAIT: the retransmitted remote FIN is acknowledged."""
    h, conn = at_state("TIME_WAIT")
    h.send(h.seg("FA", seq=h.p_nxt - 1))
    h.expect(flags="A", seq=h.l_nxt, ack=h.p_nxt)
    h.expect_nothing()
    assert conn.state is State.TIME_WAIT


def test_time_wait_new_syn_reopens_via_listener():
    """RFC 9293 3.10.7.4 fourth-check note / RFC 6191: a new SYN above RCV.NXT may reopen from TIME-WAIT;
    the listener answers SYN,ACK for the new incarnation."""
    h, conn = at_state("TIME_WAIT")
    h.send(h.seg("S", seq=h.p_nxt + 100000))
    h.expect(flags="SA", ack=h.p_nxt + 100001)
    h.expect_nothing()
    new = h.conn_for(h.pport)
    assert new is not conn and new.state is State.SYN_RECEIVED and conn.state is State.CLOSED


def test_time_wait_reopen_uses_larger_iss():
    """RFC 9293 3.6.1 (RFC 1122 4.2.2.13): a new SYN may reopen a connection in TIME-WAIT only if the new ISN is
    larger than the largest sequence number used on the previous incarnation."""
    h, conn = at_state("TIME_WAIT")
    old_snd_nxt = conn.snd_nxt
    h.send(h.seg("S", seq=h.p_nxt + 100000))
    e = h.expect(flags="SA")
    assert 0 < s32(e.tcp.seq - old_snd_nxt) < 2**31


def test_time_wait_old_syn_gets_challenge_ack():
    """RFC 9293 3.10.7.4 fourth check: a SYN at or below RCV.NXT in TIME-WAIT does not reopen; ACK it."""
    h, conn = at_state("TIME_WAIT")
    h.send(h.seg("S", seq=h.p_nxt - 10))
    h.expect(flags="A", seq=h.l_nxt, ack=h.p_nxt)
    h.expect_nothing()
    assert conn.state is State.TIME_WAIT


def test_active_open_time_wait_reached_by_the_client():
    """RFC 9293 3.6 case 1 (the local user closes first), active opener: FIN-WAIT-1 -> FIN-WAIT-2 ->
    TIME-WAIT, every step on the wire."""
    h = TcpHarness()
    conn = h.time_wait(active=True)
    assert conn.state is State.TIME_WAIT and conn.local[1] == h.lport != 80



# ------------------------------------------------------------------ more text and FIN ordering
def test_out_of_order_fin_waits_for_the_gap():
    """RFC 9293 3.10.7.4 eighth check: a FIN is processed only in sequence: a FIN beyond a hole is held (duplicate
    ACK), and when the hole fills the connection goes to CLOSE-WAIT with RCV.NXT past the FIN."""
    h, conn = at_state("ESTABLISHED")
    h.send(h.seg("FPA", seq=h.p_nxt + 5, load=b"world"))
    h.expect(flags="A", ack=h.p_nxt)
    assert conn.state is State.ESTABLISHED
    h.send(h.seg("PA", load=b"hello"))
    h.expect(flags="A", ack=h.p_nxt + 11)
    assert conn.state is State.CLOSE_WAIT and conn.rcvbuf == b"helloworld"


def test_fin_wait_1_ack_of_fin_with_data():
    """RFC 9293 3.10.7.4 fifth and seventh checks, FIN-WAIT-1: one segment acknowledges our FIN (-> FIN-WAIT-2)
    and carries data, which is delivered."""
    h, conn = at_state("FIN_WAIT_1")
    h.send(h.seg("PA", load=b"data"))
    assert conn.state is State.FIN_WAIT_2 and conn.rcvbuf == b"data"


def test_urgent_data_delivered_inline():
    """RFC 9293 3.8.5 / RFC 6093: urgent data is delivered in the normal stream (inline)."""
    h, conn = at_state("ESTABLISHED")
    h.send(h.seg("UPA", load=b"abc!", urgptr=4))
    assert conn.rcvbuf == b"abc!"


def test_duplicate_segment_delivered_once():
    """RFC 9293 3.10.7.4: a retransmission of data already received is old: ACKed again, not delivered twice."""
    h, conn = at_state("ESTABLISHED")
    h.send(h.seg("PA", load=b"once"))
    h.send(h.seg("PA", load=b"once"))
    h.expect(flags="A", ack=h.p_nxt + 4)
    assert conn.rcvbuf == b"once"


from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_reassembly_of_any_arrival_order(data):
    """RFC 9293 3.10.7.4 (and 3.4): whatever the order, duplication and overlap of segments inside the window,
    the application reads the original stream exactly once, and the final ACK covers all of it."""
    h = TcpHarness()
    conn = h.established()
    stream = bytes(range(256)) * 8
    cuts = sorted(data.draw(st.sets(st.integers(1, len(stream) - 1), max_size=12)))
    bounds = [0] + cuts + [len(stream)]
    pieces = [(a, b) for a, b in zip(bounds, bounds[1:])]
    extra = data.draw(st.lists(st.tuples(st.integers(0, len(stream) - 1), st.integers(1, 300)), max_size=5))
    pieces += [(a, min(len(stream), a + n)) for a, n in extra]  # overlapping duplicates
    order = data.draw(st.permutations(pieces))
    for a, b in order:
        h.send(h.seg("PA", seq=h.p_nxt + a, load=stream[a:b]))
    h.advance(1.0)
    assert bytes(conn.rcvbuf) == stream
    assert conn.rcv_nxt == h.p_nxt + len(stream)
    assert h.drain()[-1].tcp.ack == h.p_nxt + len(stream)


def test_zero_window_bare_fin_not_acceptable():
    """RFC 9293 3.10.7.4 first check: SEG.LEN = 1 (a FIN) with RCV.WND = 0 is not acceptable; the special
    allowance covers only ACKs, URGs and RSTs -> ACK, stay ESTABLISHED."""
    h, conn = zero_window()
    h.send(h.seg("FA"))
    h.expect(flags="A", seq=h.l_nxt, ack=h.p_nxt, window=0)
    assert conn.state is State.ESTABLISHED
