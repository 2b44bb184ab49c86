"""UDP sockets (stack/udpsocket.py) between two stacks over an in-memory link: construction,
blocking and asyncio use, what only the stack can show (no kernel routing in the way)."""
from __future__ import annotations

import asyncio
import errno
import select
import socket
import threading

import pytest

from stack.link.memory import SocketPairLink
from stack.run import SocketPatch
from stack.runtime.stack import Stack
from stack.socket import socket as StackSocket
from stack.udpsocket import udpsocket

pytestmark = pytest.mark.timeout(30)
A, B = "192.0.2.1", "192.0.2.2"
DGRAM = socket.SOCK_DGRAM


@pytest.fixture
def stacks():
    la, lb = SocketPairLink.pair()
    a = Stack(la, A, seed=1).start()
    b = Stack(lb, B, seed=2).start()
    yield a, b
    a.close()
    b.close()
    la.close()
    lb.close()


def test_both_constructors_make_a_udp_socket(stacks):
    a, _ = stacks
    for s in (a.socket(socket.AF_INET, DGRAM), StackSocket(a, socket.AF_INET, DGRAM)):
        assert isinstance(s, udpsocket) and s.type == DGRAM
        s.close()
    assert not isinstance(a.socket(), udpsocket)  # SOCK_STREAM stays TCP


def test_unsupported_family_and_protocol(stacks):
    a, _ = stacks
    for family, proto, code in ((socket.AF_INET6, 0, errno.EAFNOSUPPORT), (socket.AF_INET, 6, errno.EPROTONOSUPPORT)):
        with pytest.raises(OSError) as exc:
            a.socket(family, DGRAM, proto)
        assert exc.value.errno == code


def test_stack_to_stack_blocking_exchange(stacks):
    a, b = stacks
    srv = b.socket(socket.AF_INET, DGRAM)
    srv.bind(("", 9000))
    got = []

    def serve():
        data, addr = srv.recvfrom(100)
        got.append(addr)
        srv.sendto(data.upper(), addr)
    t = threading.Thread(target=serve)
    t.start()
    cli = a.socket(socket.AF_INET, DGRAM)
    cli.settimeout(5)
    cli.sendto(b"ping", (B, 9000))
    assert cli.recvfrom(100) == (b"PING", (B, 9000))
    t.join(5)
    assert got == [(A, cli.getsockname()[1])]


def test_broadcast_needs_so_broadcast(stacks):
    a, _ = stacks
    s = a.socket(socket.AF_INET, DGRAM)
    with pytest.raises(PermissionError):
        s.sendto(b"x", ("255.255.255.255", 9))
    with pytest.raises(PermissionError):
        s.connect(("<broadcast>", 9))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    assert s.sendto(b"x", ("255.255.255.255", 9)) == 1


def test_close_wakes_a_blocked_reader_and_frees_the_port(stacks):
    a, _ = stacks
    s = a.socket(socket.AF_INET, DGRAM)
    s.bind(("", 9100))
    errors = []

    def reader():
        try:
            s.recv(10)
        except OSError as exc:
            errors.append(exc.errno)
    t = threading.Thread(target=reader)
    t.start()
    assert not select.select([s], [], [], 0.1)[0]
    s.close()
    t.join(5)
    assert errors == [errno.EBADF] and s.fileno() == -1
    again = a.socket(socket.AF_INET, DGRAM)
    again.bind(("", 9100))


def test_asyncio_datagram_endpoint_under_tunstack_run(stacks):
    """``tunstack run``'s socket patch: asyncio's selector loop runs a datagram protocol on a stack socket."""
    a, b = stacks
    echo = b.socket(socket.AF_INET, DGRAM)
    echo.bind(("", 7))
    echo.settimeout(5)

    def serve():
        for _ in range(3):
            data, addr = echo.recvfrom(100)
            echo.sendto(data, addr)
    t = threading.Thread(target=serve)
    t.start()

    class Client(asyncio.DatagramProtocol):
        def __init__(self):
            self.got = asyncio.get_running_loop().create_future()
            self.replies = []

        def datagram_received(self, data, addr):
            self.replies.append((data, addr))
            if len(self.replies) == 3:
                self.got.set_result(self.replies)

    async def main():
        loop = asyncio.get_running_loop()
        transport, proto = await loop.create_datagram_endpoint(Client, remote_addr=(B, 7))
        for i in range(3):
            transport.sendto(b"n%d" % i)
        replies = await asyncio.wait_for(proto.got, 5)
        sock = transport.get_extra_info("socket")
        transport.close()
        return replies, sock

    with SocketPatch(a):
        assert isinstance(socket.socket(socket.AF_INET, DGRAM), socket.socket)
        replies, sock = asyncio.run(main())
    t.join(5)
    assert replies == [(b"n%d" % i, (B, 7)) for i in range(3)]
    assert sock.type == DGRAM


def test_refused_stack_to_stack_and_stack_epoll_sees_pollerr(stacks):
    """B answers a datagram for a closed port with ICMP port unreachable; A's connected socket gets
    ECONNREFUSED, and stack.epoll reports EPOLLERR|EPOLLOUT as Linux's udp_poll (the fd shows POLLIN)."""
    from stack.epoll import epoll
    a, _ = stacks
    s = a.socket(socket.AF_INET, DGRAM)
    s.connect((B, 9999))
    with epoll(a) as ep:
        ep.register(s, select.EPOLLIN | select.EPOLLOUT)
        s.send(b"anyone?")
        assert select.select([s], [], [], 5)[0]
        assert ep.poll(1) == [(s.fileno(), select.EPOLLERR | select.EPOLLOUT)]
    assert s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ECONNREFUSED
    assert not select.select([s], [], [], 0)[0]


def test_disconnect_then_sendto_anyone(stacks):
    a, b = stacks
    srv = b.socket(socket.AF_INET, DGRAM)
    srv.bind(("", 9200))
    s = a.socket(socket.AF_INET, DGRAM)
    s.bind(("", 9201))
    s.connect((B, 9200))
    s.disconnect()
    with pytest.raises(OSError) as exc:
        s.send(b"x")
    assert exc.value.errno == errno.EDESTADDRREQ
    assert s.getsockname() == ("0.0.0.0", 9201)
    s.sendto(b"x", (B, 9200))
    srv.settimeout(5)
    assert srv.recvfrom(10) == (b"x", (A, 9201))
