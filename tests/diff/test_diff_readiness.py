"""Readiness of fileno() through select, poll, epoll, selectors and asyncio, state by state."""
from __future__ import annotations

import asyncio
import errno
import select
import selectors
import socket
import struct

import pytest
from diffnet import poll_mask, sel, wait_for

pytestmark = pytest.mark.timeout(30)

IN, OUT, ERR, HUP, RDHUP = select.POLLIN, select.POLLOUT, select.POLLERR, select.POLLHUP, select.POLLRDHUP


def filled(net):
    """(socket under test, peer): our send buffer and the peer's receive buffer are full. The send
    buffer is fixed (SO_SNDBUF, capped at 2 x 212992 on both) so that it outlasts the peer's window:
    an autotuned one starts smaller than that window and would fill first."""
    s, p = net.connected()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    s.setblocking(False)
    try:
        for _ in range(4000):
            s.send(bytes(65536))
    except BlockingIOError:
        pass
    return s, p


def test_connected_idle_is_writable_only(net):
    s, _ = net.connected()
    assert sel(s) == (False, True)
    assert poll_mask(s) & (IN | OUT | ERR | HUP) == OUT


def test_data_makes_readable(net):
    s, p = net.connected()
    p.sendall(b"x")
    assert wait_for(lambda: sel(s)[0])
    assert poll_mask(s) & (IN | OUT) == IN | OUT


def test_reading_everything_clears_readable(net):
    s, p = net.connected()
    p.sendall(b"xy")
    assert wait_for(lambda: sel(s)[0])
    s.recv(10)
    assert sel(s) == (False, True)


def test_peer_fin_is_readable_with_rdhup(net):
    s, p = net.connected()
    p.shutdown(socket.SHUT_WR)
    assert wait_for(lambda: sel(s)[0])
    assert poll_mask(s) & (IN | RDHUP | HUP) == IN | RDHUP


def test_both_directions_closed_is_hup(net):
    s, p = net.connected()
    p.shutdown(socket.SHUT_WR)
    assert wait_for(lambda: sel(s)[0])
    s.shutdown(socket.SHUT_WR)
    assert wait_for(lambda: poll_mask(s) & HUP)
    assert poll_mask(s) & (IN | OUT | HUP | RDHUP) == IN | OUT | HUP | RDHUP


def test_shut_wr_stays_writable(net):
    s, _ = net.connected()
    s.shutdown(socket.SHUT_WR)
    assert sel(s) == (False, True)


def test_shut_rd_is_readable(net):
    s, _ = net.connected()
    s.shutdown(socket.SHUT_RD)
    assert sel(s) == (True, True)
    assert poll_mask(s) & (IN | RDHUP) == IN | RDHUP


def test_reset_is_err_hup_in_out(net):
    s, p = net.connected()
    p.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    p.close()
    assert wait_for(lambda: sel(s)[0])
    assert poll_mask(s) & (IN | OUT | ERR | HUP) == IN | OUT | ERR | HUP


def test_refused_connect_is_err_hup(net):
    s = net.socket(timeout=0)
    s.connect_ex(net.closed_port())
    assert wait_for(lambda: sel(s)[0])
    assert poll_mask(s) & (ERR | HUP) == ERR | HUP


def test_fresh_socket_is_hup_and_writable(net):
    """tcp_poll() of a CLOSE socket: POLLOUT|POLLHUP, so select() says readable and writable."""
    s = net.socket()
    assert poll_mask(s) & (IN | OUT | HUP) == OUT | HUP
    assert sel(s) == (True, True)


def test_listener_without_pending_is_nothing(net):
    assert sel(net.listener()) == (False, False)


def test_listener_with_pending_is_readable_only(net):
    ls = net.listener()
    c = net.peer_socket()
    c.connect(ls.getsockname())
    assert wait_for(lambda: sel(ls)[0])
    assert sel(ls) == (True, False)


def test_listener_after_accept_is_not_readable(net):
    ls = net.listener()
    c = net.peer_socket()
    c.connect(ls.getsockname())
    s, _ = ls.accept()
    assert not sel(ls)[0]
    s.close()


def test_full_send_buffer_is_not_writable_then_writable_after_peer_reads(net):
    s, p = filled(net)
    assert not sel(s)[1]
    p.setblocking(False)

    def drain():
        try:
            while p.recv(1 << 20):
                pass
        except BlockingIOError:
            pass
        return sel(s)[1]
    assert wait_for(drain, 5)


def test_full_send_buffer_poll_has_no_pollout(net):
    s, _ = filled(net)
    assert not poll_mask(s) & OUT


def test_epoll_level_triggered_reports_until_read(net):
    s, p = net.connected()
    with select.epoll() as ep:
        ep.register(s.fileno(), select.EPOLLIN)
        p.sendall(b"abc")
        assert wait_for(lambda: ep.poll(0))
        assert ep.poll(0)  # still there: level-triggered
        s.recv(10)
        assert ep.poll(0) == []


def test_epoll_edge_triggered_one_event_per_arrival(net):
    s, p = net.connected()
    with select.epoll() as ep:
        ep.register(s.fileno(), select.EPOLLIN | select.EPOLLET)
        p.sendall(b"a")
        assert wait_for(lambda: sel(s)[0])
        assert len(ep.poll(0.5)) == 1
        assert ep.poll(0) == []
        p.sendall(b"b")
        assert len(ep.poll(2)) == 1


def test_epoll_out_on_connected_socket(net):
    s, _ = net.connected()
    with select.epoll() as ep:
        ep.register(s.fileno(), select.EPOLLOUT)
        assert [m & select.EPOLLOUT for _, m in ep.poll(0)] == [select.EPOLLOUT]


@pytest.mark.parametrize("cls", [c for c in (selectors.SelectSelector, selectors.PollSelector,
                                             getattr(selectors, "EpollSelector", None)) if c],
                         ids=lambda c: c.__name__)
def test_selectors_see_read_and_write(net, cls):
    s, p = net.connected()
    with cls() as selector:
        selector.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
        assert [ev for _, ev in selector.select(0)] == [selectors.EVENT_WRITE]
        p.sendall(b"z")
        assert wait_for(lambda: [ev for _, ev in selector.select(0)] == [selectors.EVENT_READ | selectors.EVENT_WRITE])


@pytest.mark.parametrize("cls", [c for c in (selectors.SelectSelector, selectors.PollSelector,
                                             getattr(selectors, "EpollSelector", None)) if c],
                         ids=lambda c: c.__name__)
def test_selectors_pending_connect_not_writable(net, cls):
    s = net.socket(timeout=0)
    s.connect_ex(net.silent_peer())
    with cls() as selector:
        selector.register(s, selectors.EVENT_WRITE)
        assert selector.select(0.1) == []


def test_asyncio_sock_connect_waits_for_the_handshake(net):
    """asyncio's sock_connect must not return while the connection is still SYN-SENT."""
    async def main():
        s = net.socket(timeout=0)
        loop = asyncio.get_running_loop()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(loop.sock_connect(s, net.silent_peer()), 0.3)
    asyncio.run(main())


def test_asyncio_echo_roundtrip(net):
    async def main():
        loop = asyncio.get_running_loop()
        ls = net.peer_listener()
        s = net.socket(timeout=0)
        await asyncio.wait_for(loop.sock_connect(s, ls.getsockname()), 3)
        p, _ = ls.accept()
        try:
            await loop.sock_sendall(s, b"hello asyncio")
            assert p.recv(100) == b"hello asyncio"
            p.sendall(b"back")
            assert await asyncio.wait_for(loop.sock_recv(s, 100), 3) == b"back"
        finally:
            p.close()
    asyncio.run(main())


def test_asyncio_streams_over_accepted_socket(net):
    async def main():
        ls = net.listener()
        ls.setblocking(False)
        got = asyncio.get_running_loop().create_future()

        async def handle(reader, writer):
            line = await reader.readline()
            writer.write(line.upper())
            await writer.drain()
            writer.close()
            got.set_result(line)

        server = await asyncio.start_server(handle, sock=ls)
        c = net.peer_socket()
        c.connect(ls.getsockname())
        c.sendall(b"shout\n")
        assert await asyncio.wait_for(got, 3) == b"shout\n"
        assert c.recv(100) == b"SHOUT\n"
        server.close()
    asyncio.run(main())


# ------------------------------------------------------------------------------ low-water marks, errors reported, dup
def test_so_rcvlowat_readable_once_the_mark_is_reached(net):
    """tcp_poll(): readable when the queued bytes reach SO_RCVLOWAT (below it Linux may still say
    readable under memory pressure, so only the reaching is asserted)."""
    s, p = net.connected()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 5)
    p.sendall(b"abcde")
    assert wait_for(lambda: sel(s)[0])


def test_refused_then_so_error_read_is_hup_without_err(net):
    s = net.socket(timeout=0)
    s.connect_ex(net.closed_port())
    assert wait_for(lambda: sel(s)[0])
    s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    assert poll_mask(s) & (ERR | HUP) == HUP


def test_refused_then_error_reported_by_connect_is_fresh_again(net):
    """After connect() reports the error the socket is disconnected: POLLOUT|POLLHUP, as a fresh one."""
    s = net.socket(timeout=0)
    addr = net.closed_port()
    s.connect_ex(addr)
    assert wait_for(lambda: sel(s)[0])
    assert s.connect_ex(addr) == errno.ECONNREFUSED
    assert poll_mask(s) & (IN | OUT | ERR | HUP) == OUT | HUP


def test_fresh_bound_socket_is_hup_and_writable(net):
    s = net.socket()
    s.bind((net.local_host, 0))
    assert poll_mask(s) & (IN | OUT | HUP) == OUT | HUP


def test_listener_shut_rd_polls_as_a_fresh_socket(net):
    ls = net.listener()
    ls.shutdown(socket.SHUT_RD)
    assert poll_mask(ls) & (IN | OUT | HUP) == OUT | HUP


def test_shut_wr_then_peer_fin_is_hup(net):
    s, p = net.connected()
    s.shutdown(socket.SHUT_WR)
    assert p.recv(1) == b""
    p.shutdown(socket.SHUT_WR)
    assert wait_for(lambda: poll_mask(s) & HUP)
    assert poll_mask(s) & (IN | OUT | HUP | RDHUP) == IN | OUT | HUP | RDHUP


def test_writable_again_only_after_a_third_of_the_buffer_frees(net):
    """sk_stream_is_writeable(): a full sender becomes writable once the peer has read enough."""
    s, p = filled(net)
    assert not sel(s)[1]
    p.setblocking(False)
    got = 0
    deadline = __import__("time").monotonic() + 10
    while not sel(s, 0.01)[1] and __import__("time").monotonic() < deadline:
        try:
            got += len(p.recv(65536))
        except BlockingIOError:
            pass
    assert sel(s)[1] and got > 0


def test_epoll_edge_triggered_writable_once_after_drain(net):
    s, p = filled(net)
    with select.epoll() as ep:
        ep.register(s.fileno(), select.EPOLLOUT | select.EPOLLET)
        assert ep.poll(0) == []
        p.setblocking(False)
        deadline = __import__("time").monotonic() + 10
        events = []
        while not events and __import__("time").monotonic() < deadline:
            try:
                p.recv(65536)
            except BlockingIOError:
                pass
            events = ep.poll(0.01)
        assert events and events[0][1] & select.EPOLLOUT
        assert ep.poll(0.05) == []


def test_dup_sees_the_same_readiness(net):
    s, p = net.connected()
    d = s.dup()
    try:
        p.sendall(b"x")
        assert wait_for(lambda: sel(d)[0])
        assert sel(s) == sel(d) == (True, True)
    finally:
        d.close()


def test_asyncio_sock_sendall_to_a_slow_reader_completes(net):
    s, p = net.connected()
    s.setblocking(False)
    data = bytes(range(256)) * 4096  # 1 MiB

    async def send():
        await asyncio.get_running_loop().sock_sendall(s, data)
        s.shutdown(socket.SHUT_WR)

    import threading
    got = bytearray()

    def read():
        while chunk := p.recv(65536):
            got.extend(chunk)
    t = threading.Thread(target=read)
    t.start()
    asyncio.run(send())
    t.join(20)
    assert bytes(got) == data
