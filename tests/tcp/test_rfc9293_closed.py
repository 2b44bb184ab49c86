"""RFC 9293 3.10.7.1, SEGMENT ARRIVES in state CLOSED (no TCB: no listener, no connection).

"If the state is CLOSED (i.e., TCB does not exist) then all data in the incoming segment
is discarded. An incoming segment containing a RST is discarded. An incoming segment not
containing a RST causes a RST to be sent in response. The acknowledgment and sequence field
values are selected to make the reset sequence acceptable to the TCP endpoint that sent the
offending segment. If the ACK bit is off, sequence number zero is used,
<SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>. If the ACK bit is on, <SEQ=SEG.ACK><CTL=RST>."
"""
import pytest

from harness import PEER_ISN, TcpHarness, s32
from stack.tcp.states import State

CLOSED_PORT = 81


@pytest.fixture
def h():
    h = TcpHarness()
    h.lport = CLOSED_PORT
    return h


@pytest.mark.parametrize("flags,load,seg_len", [
    ("S", b"", 1),                 # SYN: SEG.LEN counts the SYN
    ("S", b"x" * 10, 11),          # SYN with data
    ("", b"abc", 3),               # bare data, no control bits
    ("F", b"", 1),                 # FIN counts one
    ("F", b"0123456789", 11),      # FIN with data
    ("SF", b"zz", 4),              # SYN+FIN with data: both count
    ("P", b"q" * 7, 7),            # PSH does not count
    ("U", b"uu", 2),               # URG does not count
])
def test_ack_off_gets_rst_ack_seq0_ack_seq_plus_len(h, flags, load, seg_len):
    """RFC 9293 3.10.7.1: ACK off -> <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>, SYN and FIN in SEG.LEN."""
    h.send(h.seg(flags, seq=PEER_ISN, load=load))
    h.expect(flags="RA", seq=0, ack=PEER_ISN + seg_len, window=0, options={}, payload=b"")
    h.expect_nothing()


def test_ack_off_ack_field_wraps(h):
    """RFC 9293 3.10.7.1 with 3.4 arithmetic: SEG.SEQ+SEG.LEN is taken modulo 2**32."""
    h.send(h.seg("S", seq=2**32 - 3, load=b"abcde"))
    h.expect(flags="RA", seq=0, ack=3)
    h.expect_nothing()


@pytest.mark.parametrize("flags,load", [("A", b""), ("PA", b"data"), ("SA", b""), ("FA", b""),
                                        ("FA", b"data+fin")])
def test_ack_on_gets_rst_seq_seg_ack(h, flags, load):
    """RFC 9293 3.10.7.1: ACK on -> <SEQ=SEG.ACK><CTL=RST> (no ACK bit, whatever else the segment carries)."""
    h.send(h.seg(flags, seq=PEER_ISN, ack=123456789, load=load))
    h.expect(flags="R", seq=123456789, ack=0, window=0, options={}, payload=b"")
    h.expect_nothing()


@pytest.mark.parametrize("flags", ["R", "RA", "RS", "RF", "RPA"])
def test_incoming_rst_is_discarded(h, flags):
    """RFC 9293 3.10.7.1: an incoming segment containing a RST is discarded (never RST a RST)."""
    h.send(h.seg(flags, seq=PEER_ISN, ack=77, load=b"x" if "P" in flags else b""))
    h.expect_nothing()


def test_rst_goes_back_to_sender_ports(h):
    """RFC 9293 3.10.7.1: the RST is addressed to the offending segment's source (ports swapped)."""
    h.send(h.seg("S", seq=PEER_ISN, sport=12345, dport=4321))
    h.expect(flags="RA", sport=4321, dport=12345, ack=PEER_ISN + 1)


def test_segment_for_connection_that_was_reset_gets_rst():
    """RFC 9293 3.10.7.1: once a connection is CLOSED (TCB deleted after a RST) its port is closed too."""
    h = TcpHarness()
    conn = h.established(active=True)
    h.send(h.seg("R"))
    h.expect_nothing()
    assert conn.state is State.CLOSED
    h.send(h.seg("PA", load=b"late"))
    h.expect(flags="R", seq=h.l_nxt)
    h.expect_nothing()


def test_segment_after_time_wait_expiry_gets_rst():
    """RFC 9293 3.10.7.1: after TIME-WAIT's 2MSL the TCB is gone; a late ACK is answered with a RST."""
    h = TcpHarness(msl=1.0)
    conn = h.time_wait(active=True)
    h.advance(2.0)
    assert conn.state is State.CLOSED
    h.send(h.seg("A"))
    h.expect(flags="R", seq=h.l_nxt)
    h.expect_nothing()


def test_listener_on_other_port_does_not_answer(h):
    """RFC 9293 3.10.7.1: demultiplexing is per port; a listener on port 80 does not take port 81's SYN."""
    h.listen()
    h.lport = CLOSED_PORT
    h.send(h.seg("S", seq=PEER_ISN))
    h.expect(flags="RA", seq=0, ack=s32(PEER_ISN + 1))
    assert len(h.host.tcp.conns) == 0


def test_bad_checksum_is_dropped_without_rst(h):
    """RFC 9293 3.1 (MUST-2/MUST-3): a segment whose checksum fails is discarded silently: no RST answers it."""
    from scapy.layers.inet import IP
    from harness import LOCAL, PEER
    pkt = IP(src=PEER, dst=LOCAL) / h.seg("S", seq=PEER_ISN)
    pkt[IP].payload.chksum = 0x1234
    h.send_raw(bytes(pkt))
    h.expect_nothing()


def test_segment_for_another_address_gets_no_rst(h):
    """RFC 9293 3.10.7.1 applies to segments for this host only: a segment to another address is not answered."""
    from scapy.layers.inet import IP
    from harness import PEER
    h.send_raw(bytes(IP(src=PEER, dst="192.0.2.3") / h.seg("S", seq=PEER_ISN)))
    h.expect_nothing()


@pytest.mark.parametrize("src", ["224.0.0.5", "255.255.255.255", "0.0.0.0"])
def test_no_rst_to_multicast_or_broadcast_source(h, src):
    """RFC 1122 3.2.1.3: a datagram with an invalid (broadcast, multicast, 0.0.0.0) source is silently
    discarded, so the 3.10.7.1 RST never goes to a broadcast or multicast address."""
    from scapy.layers.inet import IP
    from harness import LOCAL
    h.send_raw(bytes(IP(src=src, dst=LOCAL) / h.seg("S", seq=PEER_ISN)))
    h.expect_nothing()


# ------------------------------------------------------------------ harness self-checks (the oracle can fail)
def test_harness_expect_catches_wrong_fields(h):
    """Harness self-check: expect() fails on any wrong specified field and on a missing segment."""
    h.send(h.seg("S", seq=PEER_ISN))
    e = h.next()
    h.out.appendleft(e)
    for bad in (dict(flags="R"), dict(seq=1), dict(ack=PEER_ISN), dict(window=1), dict(options={"MSS": 1}),
                dict(payload=b"x"), dict(at=1.0)):
        with pytest.raises(AssertionError):
            h.expect(**bad)
        h.out.appendleft(e)
    h.expect(flags="AR", seq=0, ack=PEER_ISN + 1)
    with pytest.raises(AssertionError):
        h.expect()
    h.send(h.seg("S", seq=PEER_ISN))
    with pytest.raises(AssertionError):
        h.expect_nothing()


def test_harness_checksum_check_catches_corruption():
    """Harness self-check: a packet with a wrong TCP or IP checksum is rejected by the scapy recomputation."""
    from scapy.layers.inet import IP, TCP
    from harness import check_checksums
    good = bytes(IP(src="192.0.2.2", dst="192.0.2.1") / TCP(sport=1, dport=2, flags="S"))
    check_checksums(good)
    for off in (10, 36):  # IP header checksum, TCP checksum
        bad = bytearray(good)
        bad[off] ^= 0xFF
        with pytest.raises(AssertionError):
            check_checksums(bytes(bad))
