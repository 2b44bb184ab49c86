"""RFC 9293 3.4: sequence numbers live modulo 2**32; every comparison must survive the wrap.

ISS = 2**32 - 100 and the peer's ISN = 2**32 - 50: both directions cross zero within the first
hundred octets.
"""
import pytest

from harness import TcpHarness, s32
from stack.tcp.states import State

ISS_W = 2**32 - 100
PEER_W = 2**32 - 50


@pytest.fixture
def h():
    h = TcpHarness(iss=ISS_W, peer_isn=PEER_W)
    h.established()
    return h


def test_handshake_near_the_top():
    """RFC 9293 3.4: SYN,ACK <SEQ=ISS><ACK=IRS+1> with both near 2**32."""
    h = TcpHarness(iss=ISS_W, peer_isn=PEER_W)
    h.listen()
    h.send(h.seg("S", seq=PEER_W))
    h.expect(flags="SA", seq=ISS_W, ack=PEER_W + 1)


def test_syn_at_top_acked_with_zero():
    """RFC 9293 3.4: a SYN at 2**32-1 is acknowledged with 0; our SYN at 2**32-1 is acknowledged by 0."""
    h = TcpHarness(iss=2**32 - 1, peer_isn=2**32 - 1)
    conn = h.connect(complete=False)
    h.send(h.seg("SA", seq=2**32 - 1, ack=0))
    h.expect(flags="A", seq=0, ack=0)
    assert conn.state is State.ESTABLISHED and conn.snd_una == 0 and conn.rcv_nxt == 0


def test_in_order_data_across_the_wrap(h):
    """RFC 9293 3.4 / 3.10.7.4: three in-order segments, the second straddling 2**32: delivered in order,
    the ACK covers all of them, modulo 2**32."""
    conn = h.conn
    chunks = [bytes([65 + i]) * 30 for i in range(3)]
    seq = h.p_nxt
    for c in chunks:
        h.send(h.seg("PA", seq=seq, load=c))
        seq = s32(seq + len(c))
    assert conn.rcvbuf == b"".join(chunks)
    assert conn.rcv_nxt == s32(PEER_W + 1 + 90) == 41
    h.advance(h.config.delack)
    h.expect(flags="A", ack=41)
    h.expect_nothing()


def test_out_of_order_across_the_wrap(h):
    """RFC 9293 3.4 with RFC 5681 4.2: the segment after the wrap arrives first (duplicate ACK at the old
    RCV.NXT); the gap fill delivers both in order and is ACKed at once."""
    conn = h.conn
    first = bytes(range(40))         # PEER_W+1 .. 2**32-9
    second = bytes(range(100, 140))  # crosses zero
    h.send(h.seg("PA", seq=s32(h.p_nxt + 40), load=second))
    h.expect(flags="A", ack=h.p_nxt)
    h.send(h.seg("PA", seq=h.p_nxt, load=first))
    h.expect(flags="A", ack=s32(h.p_nxt + 80))
    h.expect_nothing()
    assert conn.rcvbuf == first + second


def test_sending_across_the_wrap(h):
    """RFC 9293 3.4 / 3.10.7.4 fifth check: our data crosses 2**32; the cumulative ACK past zero frees it all."""
    conn = h.conn
    data = bytes(range(200))
    h.app_send(data)
    h.expect(flags="PA", seq=ISS_W + 1, payload=data)
    h.send(h.seg("A", ack=s32(ISS_W + 1 + 50)))
    assert conn.snd_una == ISS_W + 51 and len(conn.sndbuf) == 150
    h.send(h.seg("A", ack=s32(ISS_W + 1 + 200)))
    assert conn.snd_una == 101 and not conn.sndbuf
    assert conn.next_deadline() is None
    h.expect_nothing()


def test_ack_of_unsent_data_past_the_wrap_is_rejected(h):
    """RFC 9293 3.10.7.4 fifth check with 3.4 arithmetic: SEG.ACK > SND.NXT is detected across zero."""
    h.app_send(b"x" * 50)
    h.expect(flags="PA", length=50)
    h.send(h.seg("A", ack=s32(ISS_W + 1 + 150)))   # 50 past zero, 100 beyond SND.NXT
    h.expect(flags="A", seq=s32(ISS_W + 51), ack=h.p_nxt)
    assert h.conn.snd_una == ISS_W + 1


def test_retransmission_across_the_wrap(h):
    """RFC 6298 5.4 with RFC 9293 3.4: the RTO retransmission of a segment straddling zero keeps its seq."""
    data = bytes(range(150))
    h.app_send(data)
    h.expect(flags="PA", seq=ISS_W + 1, payload=data)
    h.advance(h.conn.rtt.current_rto())
    h.expect(flags="PA", seq=ISS_W + 1, payload=data)


def test_fin_at_the_top_of_the_space():
    """RFC 9293 3.4: a FIN at 2**32-1 moves RCV.NXT to 0; the ACK is 0."""
    h = TcpHarness(peer_isn=2**32 - 2)
    conn = h.established()
    assert h.p_nxt == 2**32 - 1
    h.send(h.seg("FA"))
    h.expect(flags="A", ack=0)
    assert conn.state is State.CLOSE_WAIT


def test_window_check_across_the_wrap():
    """RFC 9293 3.10.7.4 first check modulo 2**32: with RCV.NXT just below zero, a segment at 10 is in the
    window (ooo, SACK-less duplicate ACK) and one at RCV.NXT - 10 is old."""
    h = TcpHarness(peer_isn=2**32 - 50)
    conn = h.established()
    h.send(h.seg("PA", seq=10, load=b"future"))
    h.expect(flags="A", ack=h.p_nxt)
    assert conn.reasm and conn.reasm.blocks()[0][0] == 10
    h.send(h.seg("PA", seq=s32(h.p_nxt - 10), load=b"old"))
    h.expect(flags="A", ack=h.p_nxt)
    assert not conn.rcvbuf
