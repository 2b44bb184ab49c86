"""RFC 9293 3.10.7.2, SEGMENT ARRIVES in state LISTEN (and the listener's SYN/accept queues)."""
import pytest

from harness import ISS, PEER_ISN, PEER_PORT, TcpHarness, s32
from stack.tcp.states import State


@pytest.fixture
def h():
    h = TcpHarness()
    h.listen()
    return h


@pytest.mark.parametrize("flags", ["R", "RA", "RS", "RPA"])
def test_rst_is_ignored(h, flags):
    """RFC 9293 3.10.7.2 first check: an incoming RST should be ignored."""
    h.send(h.seg(flags, seq=PEER_ISN, ack=999, load=b"x" if "P" in flags else b""))
    h.expect_nothing()
    assert h.host.tcp.conns == {}
    assert not h.listener.syn_queue


@pytest.mark.parametrize("flags,load", [("A", b""), ("PA", b"data"), ("SA", b""), ("FA", b"")])
def test_ack_gets_rst_seq_seg_ack(h, flags, load):
    """RFC 9293 3.10.7.2 second check: any acknowledgment is bad in LISTEN -> <SEQ=SEG.ACK><CTL=RST>."""
    h.send(h.seg(flags, seq=PEER_ISN, ack=0xDEADBEEF, load=load))
    h.expect(flags="R", seq=0xDEADBEEF, ack=0, window=0, payload=b"")
    h.expect_nothing()
    assert h.host.tcp.conns == {}


def test_syn_gets_syn_ack_with_iss_and_mss(h):
    """RFC 9293 3.10.7.2 third check: SYN -> <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK>, RCV.NXT = SEG.SEQ+1;
    RFC 9293 3.7.1: our MSS option (MTU 1500 - 40) in the SYN; options off -> no others."""
    h.send(h.seg("S", seq=PEER_ISN, options=[("MSS", 1460)]))
    h.expect(flags="SA", seq=ISS, ack=PEER_ISN + 1, options={"MSS": 1460}, payload=b"", window=65535)
    h.expect_nothing()
    conn = h.conn_for(PEER_PORT)
    assert conn.state is State.SYN_RECEIVED
    assert (conn.irs, conn.rcv_nxt, conn.snd_una, conn.snd_nxt) == (PEER_ISN, PEER_ISN + 1, ISS, ISS + 1)


def test_syn_ack_mss_follows_config():
    """RFC 9293 3.7.1: the MSS we announce is our configured receive limit."""
    h = TcpHarness(mss=1000)
    h.listen()
    h.send(h.seg("S", seq=PEER_ISN))
    h.expect(flags="SA", options={"MSS": 1000})


def test_syn_at_top_of_sequence_space(h):
    """RFC 9293 3.10.7.2 with 3.4: RCV.NXT = SEG.SEQ+1 modulo 2**32."""
    h.send(h.seg("S", seq=2**32 - 1))
    h.expect(flags="SA", seq=ISS, ack=0)


def test_syn_with_data_acks_only_the_syn(h):
    """RFC 9293 3.10.7.2 third check: data in a SYN MAY be queued; this stack does not, so the SYN,ACK must
    acknowledge only the SYN (never data it did not keep)."""
    h.send(h.seg("S", seq=PEER_ISN, load=b"early data"))
    h.expect(flags="SA", seq=ISS, ack=PEER_ISN + 1)
    h.expect_nothing()


@pytest.mark.parametrize("flags,load", [("", b""), ("", b"text"), ("F", b""), ("P", b"x"), ("U", b"u")])
def test_other_segments_are_dropped(h, flags, load):
    """RFC 9293 3.10.7.2 fourth check: any other control or text-bearing segment (not SYN/ACK/RST) -> drop."""
    h.send(h.seg(flags, seq=PEER_ISN, load=load))
    h.expect_nothing()
    assert h.host.tcp.conns == {}


def test_syn_queue_overflow_drops_syns():
    """Listener SYN backlog: when SYN-RECEIVED connections fill syn_backlog, further SYNs are dropped
    silently (no SYN,ACK, no RST), so the client retries (SYN cookies off: tests/tcp/test_syncookies_listen.py)."""
    h = TcpHarness(syn_backlog=2, syncookies=0)
    h.listen(backlog=8)
    for port in (40001, 40002, 40003):
        h.send(h.seg("S", seq=PEER_ISN, sport=port))
    h.expect(flags="SA", dport=40001)
    h.expect(flags="SA", dport=40002)
    h.expect_nothing()
    assert h.host.tcp.conns.keys().__len__() == 2
    assert h.listener.stats["syn_overflow"] == 1


def test_accept_queue_overflow_drops_syns():
    """Listener accept backlog: with `backlog` established connections not yet accepted, a new SYN is dropped."""
    h = TcpHarness()
    h.listen(backlog=1)
    h.send(h.seg("S", seq=PEER_ISN, sport=40001))
    h.expect(flags="SA", dport=40001)
    h.send(h.seg("A", seq=PEER_ISN + 1, ack=ISS + 1, sport=40001))
    h.expect_nothing()
    assert len(h.listener.accept_queue) == 1
    h.send(h.seg("S", seq=PEER_ISN, sport=40002))
    h.expect_nothing()
    h.listener.accept()
    h.send(h.seg("S", seq=PEER_ISN, sport=40002))
    h.expect(flags="SA", dport=40002)


def test_closing_listener_resets_unaccepted_connections():
    """RFC 9293 3.10.4 CLOSE of a listener (as Linux): embryonic and unaccepted connections are reset."""
    h = TcpHarness()
    lst = h.listen()
    h.send(h.seg("S", seq=PEER_ISN, sport=40001))
    h.expect(flags="SA", dport=40001)
    h.host.tcp.unlisten(lst, h.now)
    h._collect()
    h.expect(flags="R", dport=40001, seq=ISS + 1)
    h.expect_nothing()
    h.send(h.seg("S", seq=PEER_ISN, sport=40002))
    h.expect(flags="RA", dport=40002, seq=0, ack=PEER_ISN + 1)


# ---------------------------------------------------------------------------------------- SYN-RECEIVED
def test_syn_received_ack_establishes_and_is_accepted(h):
    """RFC 9293 3.10.7.4 fifth check, SYN-RECEIVED: SND.UNA < SEG.ACK =< SND.NXT -> ESTABLISHED."""
    conn = h.syn_received()
    h.send(h.seg("A"))
    h.expect_nothing()
    assert conn.state is State.ESTABLISHED
    assert h.listener.accept() is conn


def test_syn_received_ack_with_data_delivers_it(h):
    """RFC 9293 3.10.7.4: the handshake-completing ACK may carry data; it is processed in ESTABLISHED."""
    conn = h.syn_received()
    h.send(h.seg("PA", load=b"GET /"))
    assert conn.state is State.ESTABLISHED
    assert conn.rcvbuf == b"GET /"
    h.advance(h.config.delack)
    h.expect(flags="A", seq=ISS + 1, ack=PEER_ISN + 6, at=h.config.delack)


@pytest.mark.parametrize("ack", [ISS, ISS + 2, ISS - 5000])
def test_syn_received_bad_ack_gets_rst(h, ack):
    """RFC 9293 3.10.7.4 fifth check, SYN-RECEIVED: unacceptable ACK -> <SEQ=SEG.ACK><CTL=RST>."""
    conn = h.syn_received()
    h.send(h.seg("A", ack=ack))
    h.expect(flags="R", seq=s32(ack))
    h.expect_nothing()
    assert conn.state is State.SYN_RECEIVED


def test_syn_received_rst_returns_to_listen(h):
    """RFC 9293 3.10.7.4 second check, SYN-RECEIVED from a passive OPEN: RST -> back to LISTEN, no error
    to any user; the listener keeps working."""
    conn = h.syn_received()
    h.send(h.seg("R"))
    h.expect_nothing()
    assert conn.state is State.CLOSED
    assert h.host.tcp.conns == {} and not h.listener.syn_queue
    assert h.listener.accept() is None
    h.send(h.seg("S", seq=PEER_ISN + 7))
    h.expect(flags="SA", seq=ISS, ack=PEER_ISN + 8)


def test_syn_received_ack_bit_off_dropped(h):
    """RFC 9293 3.10.7.4 fifth check: if the ACK bit is off, drop the segment (stay in SYN-RECEIVED)."""
    conn = h.syn_received()
    h.send(h.seg("P", load=b"x"))
    h.expect_nothing()
    assert conn.state is State.SYN_RECEIVED and not conn.rcvbuf


def test_syn_ack_retransmitted_then_given_up():
    """RFC 9293 3.8.1 / RFC 6298 5.5: the SYN,ACK is retransmitted with doubling RTO; after synack_retries
    the embryonic connection is dropped (Linux tcp_synack_retries)."""
    h = TcpHarness(synack_retries=2)
    h.listen()
    conn = h.syn_received()
    h.advance(10)
    h.expect(flags="SA", seq=ISS, ack=PEER_ISN + 1, at=1.0)
    h.expect(flags="SA", seq=ISS, ack=PEER_ISN + 1, at=3.0)
    h.expect_nothing()
    assert conn.state is State.CLOSED
    assert not h.listener.syn_queue and h.host.tcp.conns == {}


def test_syn_received_in_window_rst_not_exact_gets_challenge_ack(h):
    """RFC 9293 3.10.7.4 second check (RFC 5961 3.2) applies in SYN-RECEIVED too: an in-window RST that is not
    at RCV.NXT draws a challenge ACK; the handshake goes on."""
    conn = h.syn_received()
    h.send(h.seg("R", seq=PEER_ISN + 5))
    h.drain()
    assert conn.state is State.SYN_RECEIVED


def test_syn_received_passive_in_window_syn_returns_to_listen(h):
    """RFC 9293 3.10.7.4 fourth check, SYN-RECEIVED: "If the connection was initiated with a passive OPEN,
    then return this connection to the LISTEN state and return.\""""
    conn = h.syn_received()
    h.send(h.seg("S", seq=PEER_ISN + 1))
    h.expect_nothing()
    assert conn.state is State.CLOSED and not h.listener.syn_queue
