"""Segments the peer accepts (issue 12): a receiver drops a segment outside its window, ACK field
included (RFC 9293 3.10.7.4 first check), and Linux 6.18 also drops one that merely *ends* beyond it.
So zero-window probes are empty segments at SND.UNA-1 (Linux tcp_xmit_probe_skb), every ACK we owe
reaches the peer as a pure ACK when the data it would ride on does not fit the peer's window, and
every RST carries a sequence number the peer accepts (Linux tcp_acceptable_seq)."""
import pytest

from harness import ISS, TcpHarness, s32
from stack.tcp.states import State

DATA = bytes(range(100)) * 10  # 1000 octets


def both_directions_full(**kw):
    """ESTABLISHED; our receive buffer (1000) is full of the peer's data, nobody reads it; the peer's
    window is zero and 1000 octets wait in our send buffer. Returns (h, conn)."""
    h = TcpHarness(rcvbuf=1000, min_rto=1.0, **kw)
    conn = h.listen_and_establish()
    h.send(h.seg("PA", load=b"p" * 1000, window=0))
    h.p_nxt = s32(h.p_nxt + 1000)
    h.advance(h.config.delack)
    h.expect(flags="A", seq=ISS + 1, ack=h.p_nxt, window=0)  # the (delayed) ACK closes the window
    h.app_send(DATA)
    h.expect_nothing()
    assert conn.snd_wnd == 0 and conn.rcv_wnd == 0
    return h, conn


# ------------------------------------------------------------------ zero-window probe
def test_zero_window_probe_is_empty_at_snd_una_minus_1():
    """RFC 9293 3.8.6.1 as Linux: the probe is an empty ACK at SND.UNA-1; SND.NXT stays at SND.UNA."""
    h, conn = both_directions_full()
    h.advance(1.0)
    h.expect(flags="A", seq=ISS, ack=h.p_nxt, length=0, at=1.04)
    h.expect_nothing()
    assert conn.snd_nxt == conn.snd_una == ISS + 1
    assert conn.stats["zero_window_probes"] == 1


def test_window_opening_after_empty_probe_sends_from_snd_una():
    """The peer answers the probe with its opened window: the data goes from SND.UNA, nothing resent."""
    h, conn = both_directions_full()
    h.advance(1.0)
    h.expect(seq=ISS, length=0)
    h.send(h.seg("A", window=4000))
    h.expect(flags="PA", seq=ISS + 1, payload=DATA)
    h.expect_nothing()
    assert conn.stats["retrans"] == 0


# ------------------------------------------------------------------ our ACKs when both directions are full
def test_peer_probe_is_answered_at_an_acceptable_sequence_number():
    """Both windows zero. The peer's own probe (empty, at its SND.UNA-1) is answered with a pure ACK at
    SND.NXT = SND.UNA, which the peer's zero window accepts (SEG.SEQ = its RCV.NXT)."""
    h, conn = both_directions_full()
    h.send(h.seg("A", seq=s32(h.p_nxt - 1), window=0))
    h.expect(flags="A", seq=ISS + 1, ack=h.p_nxt, window=0, length=0)
    h.expect_nothing()


def test_acks_go_at_snd_una_after_a_one_octet_probe():
    """With the RFC's one-octet probe SND.NXT passes the peer's (zero) window; the ACKs we owe still go at
    SND.UNA+SND.WND (tcp_acceptable_seq), not at SND.NXT, and the window update after a read too."""
    h, conn = both_directions_full(zero_window_probe="octet")
    h.advance(1.0)
    h.expect(seq=ISS + 1, length=1)
    assert conn.snd_nxt == ISS + 2
    h.send(h.seg("A", seq=s32(h.p_nxt - 1), window=0))  # the peer's probe
    h.expect(flags="A", seq=ISS + 1, ack=h.p_nxt, length=0)
    h.app_recv()  # the application reads: the window update must reach the peer as well
    h.expect(flags="A", seq=ISS + 1, ack=h.p_nxt, window=1000, length=0)
    h.expect_nothing()


def test_owed_ack_goes_alone_when_the_data_does_not_fit_the_window():
    """The peer shrinks its window to zero under our data in flight and sends data of its own; the
    retransmission at the RTO lies beyond its window, so the ACK we owe must not ride on it only: the
    delayed ACK stays owed and goes as a pure ACK at SND.UNA when its timer fires."""
    h = TcpHarness(rcvbuf=10000, min_rto=1.0, delack=0.45)
    h.listen_and_establish()
    h.app_send(DATA)
    h.expect(flags="PA", seq=ISS + 1, payload=DATA, at=0.0)
    h.send(h.seg("PA", load=b"q", window=0), at=0.7)  # ACKs nothing, shrinks the window, one octet
    h.p_nxt = s32(h.p_nxt + 1)
    h.expect_nothing()  # the ACK of the octet is delayed (until 1.15)
    h.advance_to(1.0)   # the RTO: the retransmission is a window probe beyond the zero window
    h.expect(flags="PA", seq=ISS + 1, ack=h.p_nxt, payload=DATA, at=1.0)
    h.expect_nothing()
    h.advance_to(1.2)
    h.expect(flags="A", seq=ISS + 1, ack=h.p_nxt, length=0, at=1.15)
    h.expect_nothing()


def test_data_within_the_window_still_carries_the_ack():
    """Data that fits the peer's window carries the ACK: no extra pure ACK (nothing changes there)."""
    h = TcpHarness(rcvbuf=10000)
    h.listen_and_establish()
    h.send(h.seg("PA", load=b"q"))
    h.p_nxt = s32(h.p_nxt + 1)
    h.app_send(b"r" * 10)
    h.expect(flags="PA", seq=ISS + 1, ack=h.p_nxt, length=10)
    h.expect_nothing()
    h.advance(0.1)
    h.expect_nothing()


# ------------------------------------------------------------------ acceptable RSTs
def abort(h):
    h.call(h.conn.abort)


@pytest.mark.parametrize("state", ["ESTABLISHED", "CLOSE_WAIT"])
def test_rst_after_one_octet_probe_is_at_snd_una(state):
    """RFC 9293 3.10.7.4 second check / RFC 5961 3.2: the peer takes a RST only at (or, with a challenge
    ACK, within) its window; after a one-octet probe SND.NXT lies past a zero window, so ABORT's RST goes
    at SND.UNA+SND.WND (Linux tcp_acceptable_seq) -- where the peer's RCV.NXT is."""
    h = TcpHarness(min_rto=1.0, zero_window_probe="octet")
    h.to_state(state, ack_window=0) if state == "ESTABLISHED" else h.to_state(state)
    if state == "CLOSE_WAIT":
        h.send(h.seg("A", window=0))
    h.app_send(DATA)
    h.advance(1.0)
    h.expect(seq=h.l_nxt, length=1)
    assert h.conn.snd_nxt == s32(h.l_nxt + 1)
    abort(h)
    h.expect(flags="R", seq=h.l_nxt, length=0)
    h.expect_nothing()
    assert h.conn.state is State.CLOSED


def test_rst_in_fin_wait_1_after_window_shrank_is_at_the_window_edge():
    """FIN-WAIT-1 with 1000 octets and the FIN in flight; the peer shrinks its window to 200 without
    acknowledging anything: the RST goes at SND.UNA+200, not at SND.NXT (past the window)."""
    h = TcpHarness()
    h.listen_and_establish()
    h.app_send(DATA)
    h.app_shutdown()
    h.expect(flags="PA", seq=ISS + 1, length=1000)
    h.expect(flags="FA", seq=ISS + 1001)
    h.send(h.seg("A", window=200))
    assert h.conn.state is State.FIN_WAIT_1 and h.conn.snd_wnd == 200
    abort(h)
    h.expect(flags="R", seq=ISS + 1 + 200)
    h.expect_nothing()


@pytest.mark.parametrize("state", ["SYN_RECEIVED", "ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2", "CLOSE_WAIT"])
def test_rst_within_the_window_is_at_snd_nxt(state):
    """RFC 9293 3.10.5 ABORT in each synchronized state: while SND.NXT is within the peer's window the
    RST carries SND.NXT (what the peer's RCV.NXT is once everything arrived)."""
    h = TcpHarness()
    h.to_state(state)
    abort(h)
    h.expect(flags="R", seq=h.l_nxt, length=0)
    h.expect_nothing()
    assert h.conn.state is State.CLOSED


# ------------------------------------------------------------------ window updates that change nothing
def test_read_sends_no_window_update_when_the_field_is_already_at_its_maximum():
    """Without window scaling the field tops out at 65535: with a 4 MiB buffer every read frees far more
    than that, but the window the peer sees does not change, so a read sends no ACK (it did before:
    ``_maybe_window_update`` compared against the free space, not the window it can advertise)."""
    h = TcpHarness(rcvbuf=4 << 20)
    h.listen_and_establish()
    h.send(h.seg("PA", load=b"d" * 1460))
    h.send(h.seg("PA", seq=s32(h.p_nxt + 1460), load=b"d" * 1460))
    h.p_nxt = s32(h.p_nxt + 2920)
    h.expect(flags="A", ack=h.p_nxt, window=65535)  # every second full segment: ACK at once
    h.expect_nothing()
    assert h.app_recv() == b"d" * 2920
    h.expect_nothing()
    h.advance(1.0)
    h.expect_nothing()


def test_read_sends_window_update_when_the_field_can_grow():
    """The counterpart: a small buffer, filled; a read opens the window the field can carry -> ACK."""
    h = TcpHarness(rcvbuf=4000)
    h.listen_and_establish()
    h.send(h.seg("PA", load=b"d" * 4000))
    h.p_nxt = s32(h.p_nxt + 4000)
    h.expect(flags="A", ack=h.p_nxt, window=0)
    h.app_recv()
    h.expect(flags="A", ack=h.p_nxt, window=4000)
    h.expect_nothing()
