"""UDP (SOCK_DGRAM): bind, connect, sendto/recvfrom, boundaries, readiness, ICMP port unreachable."""
from __future__ import annotations

import errno
import select
import socket

import pytest
from diffnet import sel, wait_for

pytestmark = pytest.mark.timeout(30)
DGRAM = socket.SOCK_DGRAM


def udp_pair(net):
    """(UDP socket under test bound to local_host, kernel UDP peer bound to peer_host)."""
    s = net.socket(DGRAM)
    s.bind((net.local_host, 0))
    p = net.peer_socket(DGRAM)
    p.bind((net.peer_host, 0))
    return s, p


def errno_of(call) -> int:
    try:
        call()
    except OSError as exc:
        return exc.errno
    return 0


def test_so_type_is_dgram(net):
    assert net.socket(DGRAM).getsockopt(socket.SOL_SOCKET, socket.SO_TYPE) == DGRAM


def test_type_attribute(net):
    assert net.socket(DGRAM).type == DGRAM


def test_sendto_then_peer_recvfrom(net):
    s, p = udp_pair(net)
    assert s.sendto(b"datagram", p.getsockname()) == 8
    data, addr = p.recvfrom(100)
    assert data == b"datagram" and addr == s.getsockname()


def test_recvfrom_returns_sender(net):
    s, p = udp_pair(net)
    p.sendto(b"hi", s.getsockname())
    assert s.recvfrom(100) == (b"hi", p.getsockname())


def test_boundaries_are_kept(net):
    s, p = udp_pair(net)
    for d in (b"one", b"two", b"three"):
        p.sendto(d, s.getsockname())
    assert [s.recv(100) for _ in range(3)] == [b"one", b"two", b"three"]


def test_short_buffer_truncates_and_drops_the_rest(net):
    s, p = udp_pair(net)
    p.sendto(b"0123456789", s.getsockname())
    p.sendto(b"next", s.getsockname())
    assert s.recv(4) == b"0123"
    assert s.recv(100) == b"next"


def test_empty_datagram(net):
    s, p = udp_pair(net)
    p.sendto(b"", s.getsockname())
    assert s.recvfrom(100) == (b"", p.getsockname())


def test_msg_peek(net):
    s, p = udp_pair(net)
    p.sendto(b"peek", s.getsockname())
    assert s.recv(100, socket.MSG_PEEK) == b"peek"
    assert s.recv(100) == b"peek"


def test_nonblocking_recv_empty_is_eagain(net):
    s, _ = udp_pair(net)
    s.setblocking(False)
    assert errno_of(lambda: s.recv(10)) == errno.EAGAIN


def test_recv_timeout(net):
    s, _ = udp_pair(net)
    s.settimeout(0.1)
    with pytest.raises(TimeoutError):
        s.recvfrom(10)


def test_sendto_autobinds(net):
    s = net.socket(DGRAM)
    p = net.peer_socket(DGRAM)
    p.bind((net.peer_host, 0))
    s.sendto(b"x", p.getsockname())
    assert s.getsockname()[1] > 0
    assert p.recvfrom(10)[1][1] == s.getsockname()[1]


def test_connect_then_send_recv(net):
    s, p = udp_pair(net)
    s.connect(p.getsockname())
    assert s.getpeername() == p.getsockname()
    s.send(b"via connect")
    assert p.recv(100) == b"via connect"
    p.sendto(b"reply", s.getsockname())
    assert s.recv(100) == b"reply"


def test_connected_socket_filters_other_senders(net):
    s, p = udp_pair(net)
    other = net.peer_socket(DGRAM)
    other.bind((net.peer_host, 0))
    s.connect(p.getsockname())
    other.sendto(b"stranger", s.getsockname())
    p.sendto(b"friend", s.getsockname())
    assert s.recv(100) == b"friend"


def test_send_unconnected_is_edestaddrreq(net):
    s = net.socket(DGRAM)
    assert errno_of(lambda: s.send(b"x")) == errno.EDESTADDRREQ


def test_getpeername_unconnected_is_enotconn(net):
    assert errno_of(lambda: net.socket(DGRAM).getpeername()) == errno.ENOTCONN


def test_connected_to_closed_port_send_then_econnrefused(net):
    s = net.socket(DGRAM)
    closed = net.peer_socket(DGRAM)
    closed.bind((net.peer_host, 0))
    addr = closed.getsockname()
    closed.close()
    s.connect(addr)
    s.send(b"anyone?")
    s.settimeout(2)
    with pytest.raises(ConnectionRefusedError):
        s.recv(10)


def test_connected_to_closed_port_so_error(net):
    s = net.socket(DGRAM)
    closed = net.peer_socket(DGRAM)
    closed.bind((net.peer_host, 0))
    addr = closed.getsockname()
    closed.close()
    s.connect(addr)
    s.send(b"anyone?")
    assert wait_for(lambda: sel(s)[0])
    assert s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ECONNREFUSED


def test_bind_same_port_twice_is_eaddrinuse(net):
    s, _ = udp_pair(net)
    t = net.socket(DGRAM)
    assert errno_of(lambda: t.bind(s.getsockname())) == errno.EADDRINUSE


def test_udp_and_tcp_share_a_port_number(net):
    s, _ = udp_pair(net)
    t = net.socket()
    assert errno_of(lambda: t.bind(s.getsockname())) == 0


def test_readiness_empty_then_readable(net):
    s, p = udp_pair(net)
    assert sel(s) == (False, True)
    p.sendto(b"r", s.getsockname())
    assert wait_for(lambda: sel(s)[0])
    s.recv(10)
    assert sel(s) == (False, True)


def test_epoll_sees_datagram(net):
    s, p = udp_pair(net)
    with select.epoll() as ep:
        ep.register(s.fileno(), select.EPOLLIN)
        p.sendto(b"e", s.getsockname())
        assert wait_for(lambda: ep.poll(0))


def test_listen_on_udp_is_eopnotsupp(net):
    assert errno_of(lambda: net.socket(DGRAM).listen()) == errno.EOPNOTSUPP


def test_accept_on_udp_is_eopnotsupp(net):
    s, _ = udp_pair(net)
    s.settimeout(None)
    assert errno_of(lambda: s.accept()) == errno.EOPNOTSUPP


def test_shutdown_unconnected_udp_is_enotconn(net):
    s, _ = udp_pair(net)
    assert errno_of(lambda: s.shutdown(socket.SHUT_RDWR)) == errno.ENOTCONN


def test_connect_again_retargets(net):
    s, p = udp_pair(net)
    q = net.peer_socket(DGRAM)
    q.bind((net.peer_host, 0))
    s.connect(p.getsockname())
    s.connect(q.getsockname())
    s.send(b"to q")
    assert q.recv(10) == b"to q"


def test_large_datagram_roundtrip(net):
    s, p = udp_pair(net)
    data = bytes(range(256)) * 32  # 8 KiB: fragmented over a 1500-byte MTU
    p.sendto(data, s.getsockname())
    assert s.recv(65535) == data


def test_datagram_too_large_is_emsgsize(net):
    s, p = udp_pair(net)
    assert errno_of(lambda: s.sendto(bytes(70000), p.getsockname())) == errno.EMSGSIZE
