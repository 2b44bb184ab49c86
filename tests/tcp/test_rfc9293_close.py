"""RFC 9293 3.6 (closing a connection), 3.10.4 CLOSE, 3.10.5 ABORT, half-close; RFC 1122 4.2.2.13 and
RFC 2525 2.17 (close with unread data -> RST)."""
import errno

import pytest

from harness import ISS, PEER_ISN, TcpHarness
from stack.tcp.states import State


def test_close_with_unread_data_sends_rst():
    """RFC 9293 3.6 / RFC 1122 4.2.2.13 / RFC 2525 2.17: CLOSE while received data is still unread -> send a
    RST <SEQ=SND.NXT><CTL=RST> (data was lost) instead of a FIN; the TCB goes away."""
    h = TcpHarness()
    conn = h.established()
    h.send(h.seg("PA", load=b"unread"))
    h.app_close()
    h.expect(flags="R", seq=h.l_nxt, payload=b"")
    h.expect_nothing()
    assert conn.state is State.CLOSED
    h.advance(10)
    h.expect_nothing()


def test_close_in_close_wait_with_unread_data_sends_rst():
    """RFC 1122 4.2.2.13: the same in CLOSE-WAIT: the peer's last data was never read -> RST, not FIN."""
    h = TcpHarness()
    conn = h.established()
    h.send(h.seg("FPA", load=b"last words"))
    h.drain()
    assert conn.state is State.CLOSE_WAIT
    h.app_close()
    h.expect(flags="R", seq=h.l_nxt)
    h.expect_nothing()
    assert conn.state is State.CLOSED


def test_close_after_reading_everything_sends_fin():
    """RFC 9293 3.10.4 CLOSE, ESTABLISHED: all data read -> FIN <SEQ=SND.NXT><ACK=RCV.NXT><CTL=FIN,ACK>,
    FIN-WAIT-1."""
    h = TcpHarness()
    conn = h.established()
    h.send(h.seg("PA", load=b"read me"))
    assert h.app_recv() == b"read me"
    h.drain()  # the ACK owed for the data (sent now or at the delayed-ACK timeout)
    h.app_close()
    h.expect(flags="FA", seq=h.l_nxt, ack=h.p_nxt + 7)
    h.expect_nothing()
    assert conn.state is State.FIN_WAIT_1


def test_data_after_close_gets_rst():
    """RFC 1122 4.2.2.13 / RFC 2525 2.17: "if new data is received after CLOSE is called, its TCP SHOULD send a
    RST to show that data was lost" (orphaned FIN-WAIT-1)."""
    h = TcpHarness()
    conn = h.fin_wait_1(close=True)
    h.send(h.seg("PA", ack=conn.snd_una, load=b"too late"))
    h.expect(flags="R", seq=h.l_nxt)
    h.expect_nothing()
    assert conn.state is State.CLOSED


def test_fin_follows_queued_data():
    """RFC 9293 3.10.4 CLOSE: "Queue this until all preceding SENDs have been segmentized, then form a FIN
    segment": the FIN's sequence number is after the data."""
    h = TcpHarness()
    conn = h.established()
    h.app_send(b"x" * 100)
    h.app_close()
    h.expect(flags="PA", seq=h.l_nxt, length=100)
    h.expect(flags="FA", seq=h.l_nxt + 100, payload=b"")
    h.expect_nothing()
    assert conn.state is State.FIN_WAIT_1


def test_fin_piggybacks_on_last_data_when_window_opens():
    """RFC 9293 3.10.4 CLOSE: data held by a zero window and the FIN leave together once it opens."""
    h = TcpHarness()
    conn = h.established(ack_window=0)
    h.app_send(b"y" * 50)
    h.app_close()
    h.expect_nothing()
    h.send(h.seg("A", window=1000))
    h.expect(flags="FPA", seq=h.l_nxt, payload=b"y" * 50)
    h.expect_nothing()


def test_abort_sends_rst_seq_snd_nxt():
    """RFC 9293 3.10.5 ABORT, ESTABLISHED: send <SEQ=SND.NXT><CTL=RST>, flush queues, CLOSED."""
    h = TcpHarness()
    conn = h.established()
    h.app_send(b"q" * 10)
    h.drain()
    h.call(conn.abort)
    h.expect(flags="R", seq=h.l_nxt + 10, ack=0)
    h.expect_nothing()
    assert conn.state is State.CLOSED
    h.advance(60)
    h.expect_nothing()


def test_abort_in_syn_sent_sends_nothing():
    """RFC 9293 3.10.5 ABORT, SYN-SENT: no RST (nothing synchronized), delete the TCB."""
    h = TcpHarness()
    conn = h.connect(complete=False)
    h.call(conn.abort)
    h.expect_nothing()
    assert conn.state is State.CLOSED


def test_half_close_keeps_receiving():
    """RFC 9293 3.6 / 3.10.7.4 seventh check: after shutdown(SHUT_WR) (our FIN, FIN-WAIT-1 then FIN-WAIT-2),
    the peer's data is still accepted, acknowledged and readable; its FIN then leads to TIME-WAIT."""
    h = TcpHarness()
    conn = h.fin_wait_2(close=False)
    h.send(h.seg("PA", load=b"more"))
    assert conn.rcvbuf == b"more"
    h.advance(h.config.delack)
    h.expect(flags="A", seq=h.l_nxt, ack=h.p_nxt + 4)
    h.p_nxt += 4
    assert h.app_recv() == b"more"
    h.drain()
    h.send(h.seg("FPA", load=b"end"))
    h.expect(flags="A", seq=h.l_nxt, ack=h.p_nxt + 4)
    assert conn.state is State.TIME_WAIT
    assert h.app_recv() == b"end" and conn.at_eof


def test_half_close_in_fin_wait_1_receives_data():
    """RFC 9293 3.10.7.4 seventh check, FIN-WAIT-1: text is processed while our FIN is still unacknowledged."""
    h = TcpHarness()
    conn = h.fin_wait_1(close=False)
    h.send(h.seg("PA", ack=conn.snd_una, load=b"crossing"))
    assert conn.rcvbuf == b"crossing" and conn.state is State.FIN_WAIT_1


def test_send_after_shutdown_fails():
    """RFC 9293 3.10.2 SEND in FIN-WAIT-1/2: "Return 'error: connection closing' and do not service request"."""
    h = TcpHarness()
    conn = h.fin_wait_1(close=False)
    assert h.app_send(b"nope") < 0
    h.expect_nothing()


def test_send_in_close_wait_is_allowed():
    """RFC 9293 3.10.2 SEND, CLOSE-WAIT: "Segmentize any text to send" - the peer closed only its half."""
    h = TcpHarness()
    conn = h.close_wait()
    assert h.app_send(b"reply") == 5
    h.expect(flags="PA", seq=h.l_nxt, ack=h.p_nxt, payload=b"reply")


def test_shutdown_in_close_wait_goes_to_last_ack():
    """RFC 9293 3.10.4 CLOSE, CLOSE-WAIT: queue a FIN, enter LAST-ACK; its ACK closes."""
    h = TcpHarness()
    conn = h.close_wait()
    h.app_shutdown()
    h.expect(flags="FA", seq=h.l_nxt, ack=h.p_nxt)
    assert conn.state is State.LAST_ACK
    h.send(h.seg("A", ack=h.l_nxt + 1))
    assert conn.state is State.CLOSED and conn.error == 0


def test_passive_close_full_sequence():
    """RFC 9293 3.6 case 2 (figure 12's right side): FIN in -> ACK; CLOSE -> FIN; ACK -> CLOSED."""
    h = TcpHarness()
    conn = h.last_ack()
    h.send(h.seg("A"))
    h.expect_nothing()
    assert conn.state is State.CLOSED


def test_simultaneous_close_full_sequence():
    """RFC 9293 3.6 case 3 (figure 13): both FINs cross -> CLOSING -> (ACK) TIME-WAIT -> 2MSL -> CLOSED."""
    h = TcpHarness(msl=1.0)
    conn = h.closing()
    h.send(h.seg("A"))
    assert conn.state is State.TIME_WAIT
    h.advance(2.0)
    assert conn.state is State.CLOSED


def test_close_in_syn_sent_sends_nothing():
    """RFC 9293 3.10.4 CLOSE, SYN-SENT: delete the TCB; no segment."""
    h = TcpHarness()
    conn = h.connect(complete=False)
    h.app_close()
    h.expect_nothing()
    assert conn.state is State.CLOSED


def test_close_in_syn_received_sends_fin_once_established():
    """RFC 9293 3.10.4 CLOSE, SYN-RECEIVED: "If no SENDs have been issued and there is no pending data to send,
    then form a FIN segment and send it, and enter FIN-WAIT-1 state; otherwise, queue for processing after
    entering ESTABLISHED state." - a FIN goes out (here after the handshake completes)."""
    h = TcpHarness()
    conn = h.connect(complete=False)
    h.send(h.seg("S", seq=PEER_ISN))
    h.expect(flags="SA", seq=ISS, ack=PEER_ISN + 1)
    h.app_close()
    h.drain()
    h.send(h.seg("A", seq=PEER_ISN + 1, ack=ISS + 1))
    fins = [e for e in h.drain() if "F" in e.flags]
    assert len(fins) == 1 and fins[0].tcp.seq == ISS + 1


def test_close_in_syn_received_reaches_fin_wait_2():
    """RFC 9293 3.10.4 CLOSE, SYN-RECEIVED -> FIN-WAIT-1; RFC 9293 3.10.7.4 fifth check: the ACK of the FIN ->
    FIN-WAIT-2."""
    h = TcpHarness()
    conn = h.connect(complete=False)
    h.send(h.seg("S", seq=PEER_ISN))
    h.drain()
    h.app_close()
    h.send(h.seg("A", seq=PEER_ISN + 1, ack=ISS + 1))
    h.drain()
    assert conn.state is State.FIN_WAIT_1
    h.send(h.seg("A", seq=PEER_ISN + 1, ack=ISS + 2))
    assert conn.state is State.FIN_WAIT_2


def test_rst_reports_econnreset_to_reader():
    """RFC 9293 3.10.7.4 second check: "any outstanding RECEIVEs and SEND should receive 'reset' responses"."""
    h = TcpHarness()
    conn = h.established()
    h.send(h.seg("R"))
    assert conn.error == errno.ECONNRESET
    assert h.app_send(b"x") == -errno.ECONNRESET
