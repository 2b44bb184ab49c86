"""The listen backlog as Linux honours it: clamped to somaxconn, the SYN queue sized from it, and the
final ACK of a handshake dropped (the half-open connection kept) while the accept queue is full."""
import pytest

from harness import ISS, PEER_ISN, TcpHarness
from stack.tcp.config import TcpConfig
from stack.tcp.listener import Listener, clamp_backlog
from stack.tcp.states import State


@pytest.mark.parametrize("backlog,somaxconn,expected", [(5, 4096, 5), (128, 4096, 128), (10000, 4096, 4096),
                                                        (-1, 4096, 4096), (0, 4096, 1), (200, 16, 16)])
def test_backlog_is_clamped_like_linux(backlog, somaxconn, expected):
    """Linux listen(): (unsigned) backlog > somaxconn -> somaxconn (a negative backlog too); 0 still queues one."""
    assert clamp_backlog(backlog, somaxconn) == expected
    h = TcpHarness(somaxconn=somaxconn)
    assert h.listen(backlog=backlog).backlog == expected


def test_defaults_match_linux():
    """net.core.somaxconn 4096 (Linux >= 5.4); tcp_syncookies 1; Python's listen() default min(SOMAXCONN, 128)."""
    c = TcpConfig()
    assert (c.somaxconn, c.syncookies) == (4096, 1)
    assert Listener((bytes(4), 80), 128, c.syn_backlog, c.somaxconn).syn_backlog == 128


def test_listen_again_changes_the_backlog_clamped():
    h = TcpHarness(somaxconn=64)
    lst = h.listen(backlog=8)
    lst.backlog = 1000  # what socket.listen() does on a listening socket
    assert lst.backlog == 64


@pytest.mark.parametrize("backlog,max_syn,expected", [(8, 4096, 8), (1024, 256, 256), (1, 4096, 1)])
def test_syn_queue_is_sized_from_the_backlog(backlog, max_syn, expected):
    """Linux inet_csk_reqsk_queue_is_full: the SYN queue holds as many as the backlog, capped by
    tcp_max_syn_backlog; the next SYN gets a cookie."""
    h = TcpHarness(syn_backlog=max_syn)
    lst = h.listen(backlog=backlog)
    assert lst.syn_backlog == expected
    for i in range(expected + 1):
        h.send(h.seg("S", seq=PEER_ISN, sport=30000 + i))
    out = h.drain()
    assert [e.tcp.seq == ISS for e in out] == [True] * expected + [False]
    assert len(lst.syn_queue) == expected and h.host.tcp.stats["syncookies_sent"] == 1


def full_with_embryo() -> TcpHarness:
    """Backlog 2 (so a SYN queue of 2): 40001 and 40002 established and waiting for accept(), 40003 half-open."""
    h = TcpHarness()
    h.listen(backlog=2)
    for port in (40001, 40002):
        h.send(h.seg("S", seq=PEER_ISN, sport=port))
        h.expect(flags="SA", dport=port, seq=ISS)
    h.send(h.seg("A", seq=PEER_ISN + 1, ack=ISS + 1, sport=40001))
    h.send(h.seg("S", seq=PEER_ISN, sport=40003))
    h.expect(flags="SA", dport=40003, seq=ISS)
    h.send(h.seg("A", seq=PEER_ISN + 1, ack=ISS + 1, sport=40002))
    h.expect_nothing()
    assert len(h.listener.accept_queue) == 2
    return h


def test_final_ack_with_full_accept_queue_is_dropped_and_the_embryo_kept():
    """Linux tcp_check_req -> listen_overflow: the ACK completing a handshake while the accept queue is full
    is dropped (no RST, no state change); the connection stays half-open, never established-but-unaccepted."""
    h = full_with_embryo()
    h.send(h.seg("PA", seq=PEER_ISN + 1, ack=ISS + 1, sport=40003, load=b"early"))
    h.expect_nothing()
    c3 = h.conn_for(40003)
    assert c3.state is State.SYN_RECEIVED and not c3.rcvbuf
    assert c3 in h.listener.syn_queue and len(h.listener.accept_queue) == 2
    assert h.host.tcp.stats["listen_overflow"] == 1 and h.listener.stats["ack_overflow"] == 1


def test_dropped_final_ack_completes_after_accept_makes_room():
    """The half-open connection's SYN-ACK is retransmitted (RFC 6298, 1 s); the peer answers it with the ACK
    again, which now completes the handshake; the data that rode on the dropped ACK comes again too."""
    h = full_with_embryo()
    h.send(h.seg("PA", seq=PEER_ISN + 1, ack=ISS + 1, sport=40003, load=b"early"))
    assert h.listener.accept().remote[1] == 40001
    h.advance(1.0)
    h.expect(flags="SA", dport=40003, seq=ISS, ack=PEER_ISN + 1, at=1.0)
    h.send(h.seg("PA", seq=PEER_ISN + 1, ack=ISS + 1, sport=40003, load=b"early"))
    assert h.listener.accept().remote[1] == 40002
    conn = h.listener.accept()
    assert conn.remote[1] == 40003 and conn.state is State.ESTABLISHED and bytes(conn.rcvbuf) == b"early"


def test_bad_ack_in_syn_received_still_gets_rst_with_full_accept_queue():
    """RFC 9293 3.10.7.4 fifth check, SYN-RECEIVED: an unacceptable ACK -> RST, full accept queue or not."""
    h = full_with_embryo()
    h.send(h.seg("A", seq=PEER_ISN + 1, ack=ISS + 7, sport=40003))
    h.expect(flags="R", dport=40003, seq=ISS + 7)
    assert h.conn_for(40003).state is State.SYN_RECEIVED


def test_a_client_is_never_left_established_but_unaccepted():
    """Ten clients at once against backlog 2: two half-open entries, eight cookies. A server accepting one
    connection per 100 ms never has more than 2 waiting; the other clients' ACKs are dropped until there is
    room (their retransmissions complete them), and every client is accepted in the end."""
    h = TcpHarness()
    h.listen(backlog=2)
    ports = list(range(40100, 40110))
    for p in ports:
        h.send(h.seg("S", seq=PEER_ISN, sport=p))
    synacks = {e.tcp.dport: e.tcp.seq for e in h.drain()}
    assert len(synacks) == 10 and sorted(synacks.values()).count(ISS) == 2
    accepted = []
    for _ in range(12):
        for p in ports:
            if p not in accepted:  # each client (re)sends its ACK: the client side of a retransmission
                h.send(h.seg("A", seq=PEER_ISN + 1, ack=(synacks[p] + 1) & 0xFFFFFFFF, sport=p))
        assert len(h.listener.accept_queue) <= 2
        conn = h.listener.accept()
        if conn is not None:
            accepted.append(conn.remote[1])
        h.advance(0.1)
        h.drain()
    assert sorted(accepted) == ports
    # syncookies_recv counts every valid cookie ACK, dropped for a full accept queue or not
    assert h.host.tcp.stats["listen_overflow"] > 0 and h.host.tcp.stats["syncookies_recv"] >= 8
