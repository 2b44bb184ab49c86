"""RFC 9293 3.10.7.3, SEGMENT ARRIVES in state SYN-SENT (active open via host.tcp.connect)."""
import errno

import pytest

from harness import ISS, PEER_ISN, TcpHarness, s32
from stack.tcp.states import State


@pytest.fixture
def h():
    h = TcpHarness()
    h.connect(complete=False)
    return h


def test_connect_sends_syn():
    """RFC 9293 3.10.1 OPEN (active): <SEQ=ISS><CTL=SYN>, SND.UNA=ISS, SND.NXT=ISS+1, state SYN-SENT;
    RFC 9293 3.7.1: MSS option = MTU - 40; options off -> nothing else."""
    h = TcpHarness()
    conn = h.connect(complete=False)
    assert h.syn.options == {"MSS": 1460}
    assert h.syn.tcp.window == 65535 and h.syn.payload == b""
    assert conn.state is State.SYN_SENT
    assert (conn.snd_una, conn.snd_nxt) == (ISS, ISS + 1)
    h.expect_nothing()


@pytest.mark.parametrize("ack", [ISS, ISS - 1, ISS + 2, ISS + 100000])
@pytest.mark.parametrize("flags", ["A", "SA", "PA"])
def test_unacceptable_ack_gets_rst(h, flags, ack):
    """RFC 9293 3.10.7.3 first check: SEG.ACK =< ISS or SEG.ACK > SND.NXT -> <SEQ=SEG.ACK><CTL=RST>, drop."""
    h.send(h.seg(flags, seq=PEER_ISN, ack=ack, load=b"x" if "P" in flags else b""))
    h.expect(flags="R", seq=s32(ack), ack=0)
    h.expect_nothing()
    assert h.state is State.SYN_SENT


def test_unacceptable_ack_with_rst_is_dropped(h):
    """RFC 9293 3.10.7.3 first check: bad ACK and RST set -> drop the segment, send nothing."""
    h.send(h.seg("RA", seq=PEER_ISN, ack=ISS + 5))
    h.expect_nothing()
    assert h.state is State.SYN_SENT


def test_rst_with_acceptable_ack_refuses_connection(h):
    """RFC 9293 3.10.7.3 second check: RST with acceptable ACK -> "error: connection reset" (refused),
    CLOSED, nothing sent."""
    h.send(h.seg("RA", seq=0, ack=ISS + 1))
    h.expect_nothing()
    assert h.state is State.CLOSED
    assert h.conn.error == errno.ECONNREFUSED
    assert h.host.tcp.conns == {}


def test_rst_without_ack_is_ignored(h):
    """RFC 9293 3.10.7.3 second check: no ACK on a RST -> drop it (stay in SYN-SENT, keep retrying)."""
    h.send(h.seg("R", seq=PEER_ISN))
    h.expect_nothing()
    assert h.state is State.SYN_SENT
    h.advance(1.0)
    h.expect(flags="S", seq=ISS, at=1.0)


def test_syn_ack_establishes_and_acks(h):
    """RFC 9293 3.10.7.3 fourth check: SYN with acceptable ACK -> RCV.NXT=SEG.SEQ+1, IRS=SEG.SEQ,
    SND.UNA=SEG.ACK, ESTABLISHED, <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>."""
    h.send(h.seg("SA", seq=PEER_ISN, ack=ISS + 1, options=[("MSS", 1460)]))
    h.expect(flags="A", seq=ISS + 1, ack=PEER_ISN + 1, payload=b"", options={})
    h.expect_nothing()
    c = h.conn
    assert c.state is State.ESTABLISHED
    assert (c.irs, c.rcv_nxt, c.snd_una) == (PEER_ISN, PEER_ISN + 1, ISS + 1)
    assert c.next_deadline() is None  # SYN acked: retransmission timer off


def test_syn_ack_sets_send_window(h):
    """RFC 9293 3.10.7.3 fourth check: SND.WND = SEG.WND, SND.WL1 = SEG.SEQ, SND.WL2 = SEG.ACK."""
    h.send(h.seg("SA", seq=PEER_ISN, ack=ISS + 1, window=3000))
    assert (h.conn.snd_wnd, h.conn.snd_wl1, h.conn.snd_wl2) == (3000, PEER_ISN, ISS + 1)


def test_syn_ack_with_data_delivers_it(h):
    """RFC 9293 3.10.7.3 fourth check: "if there are other controls or text in the segment, continue
    processing at the sixth step" -> the text is delivered and acknowledged."""
    h.send(h.seg("SA", seq=PEER_ISN, ack=ISS + 1, load=b"banner"))
    h.expect(flags="A", seq=ISS + 1, ack=PEER_ISN + 1 + 6)
    h.expect_nothing()
    assert h.conn.rcvbuf == b"banner"


def test_syn_ack_with_fin_goes_to_close_wait(h):
    """RFC 9293 3.10.7.3 fourth check then eighth step: SYN,ACK,FIN -> ESTABLISHED -> CLOSE-WAIT, FIN acked."""
    h.send(h.seg("SFA", seq=PEER_ISN, ack=ISS + 1))
    h.expect(flags="A", seq=ISS + 1, ack=PEER_ISN + 2)
    h.expect_nothing()
    assert h.state is State.CLOSE_WAIT


def test_simultaneous_open(h):
    """RFC 9293 3.10.7.3 fourth check: SYN without ACK -> SYN-RECEIVED, <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK>
    (the same ISS, our SYN's options)."""
    h.send(h.seg("S", seq=PEER_ISN))
    h.expect(flags="SA", seq=ISS, ack=PEER_ISN + 1, options={"MSS": 1460})
    h.expect_nothing()
    assert h.state is State.SYN_RECEIVED
    assert (h.conn.irs, h.conn.rcv_nxt, h.conn.snd_nxt) == (PEER_ISN, PEER_ISN + 1, ISS + 1)


def test_simultaneous_open_peer_syn_ack_is_acked(h):
    """RFC 9293 figure 7 line 6: in SYN-RECEIVED the peer's SYN,ACK <SEQ=IRS><ACK=ISS+1> is answered with
    <SEQ=ISS+1><ACK=IRS+1><CTL=ACK>, and the connection is usable once the peer's ACK arrives."""
    h.send(h.seg("S", seq=PEER_ISN))
    h.expect(flags="SA", seq=ISS, ack=PEER_ISN + 1)
    h.send(h.seg("SA", seq=PEER_ISN, ack=ISS + 1))
    h.expect(flags="A", seq=ISS + 1, ack=PEER_ISN + 1)
    h.expect_nothing()
    h.send(h.seg("A", seq=PEER_ISN + 1, ack=ISS + 1))
    assert h.state is State.ESTABLISHED
    h.p_nxt = PEER_ISN + 1
    h.app_send(b"hello")
    h.expect(flags="PA", seq=ISS + 1, ack=PEER_ISN + 1, payload=b"hello")


def test_simultaneous_open_syn_ack_establishes(h):
    """RFC 9293 3.5 figure 7 line 6: SYN-RECEIVED + the peer's SYN,ACK acknowledging our SYN -> ESTABLISHED."""
    h.send(h.seg("S", seq=PEER_ISN))
    h.expect(flags="SA", seq=ISS, ack=PEER_ISN + 1)
    h.send(h.seg("SA", seq=PEER_ISN, ack=ISS + 1))
    assert h.state is State.ESTABLISHED


def test_simultaneous_open_completed_by_plain_ack(h):
    """RFC 9293 3.10.7.4 fifth check in SYN-RECEIVED (reached by simultaneous open): an ACK of our SYN
    -> ESTABLISHED, nothing sent."""
    h.send(h.seg("S", seq=PEER_ISN))
    h.expect(flags="SA", seq=ISS, ack=PEER_ISN + 1)
    h.send(h.seg("A", seq=PEER_ISN + 1, ack=ISS + 1))
    h.expect_nothing()
    assert h.state is State.ESTABLISHED


@pytest.mark.parametrize("flags", ["A", "PA", "FA", "", "F"])
def test_neither_syn_nor_rst_is_dropped(h, flags):
    """RFC 9293 3.10.7.3 fifth check: neither SYN nor RST (with an acceptable or no ACK) -> drop."""
    h.send(h.seg(flags, seq=PEER_ISN + 1, ack=ISS + 1, load=b"x" if "P" in flags else b""))
    h.expect_nothing()
    assert h.state is State.SYN_SENT


def test_close_in_syn_sent_deletes_tcb(h):
    """RFC 9293 3.10.4 CLOSE in SYN-SENT: delete the TCB; no FIN, no RST."""
    h.app_close()
    h.expect_nothing()
    assert h.state is State.CLOSED
    h.advance(5)
    h.expect_nothing()


def test_syn_ack_after_close_gets_rst(h):
    """RFC 9293 3.10.7.1: after CLOSE in SYN-SENT the port is closed; a late SYN,ACK gets <SEQ=SEG.ACK><RST>."""
    h.app_close()
    h.send(h.seg("SA", seq=PEER_ISN, ack=ISS + 1))
    h.expect(flags="R", seq=ISS + 1)


def test_rst_in_syn_received_from_active_open_is_refused(h):
    """RFC 9293 3.10.7.4 second check, SYN-RECEIVED: "If this connection was initiated with an active OPEN
    (i.e., came from SYN-SENT state), then the connection was refused; signal the user".\""""
    h.send(h.seg("S", seq=PEER_ISN))
    h.expect(flags="SA")
    h.send(h.seg("R", seq=PEER_ISN + 1))
    h.expect_nothing()
    assert h.state is State.CLOSED and h.conn.error == errno.ECONNREFUSED
