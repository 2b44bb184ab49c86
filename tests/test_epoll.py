"""stack.epoll: level- and edge-triggered readiness as Linux's epoll reports it, over two stacks.

The stacks are joined by an in-memory socketpair link (no TUN), so these tests need no
namespace; timings are real but bounded and short.
"""
from __future__ import annotations

import errno
import hashlib
import os
import select
import socket
import struct
import threading
import time

import pytest

from stack.apps.epoll_echo import EpollEchoServer
from stack.epoll import (EPOLLERR, EPOLLET, EPOLLHUP, EPOLLIN, EPOLLONESHOT, EPOLLOUT, EPOLLRDHUP,
                         epoll)
from stack.link.memory import SocketPairLink
from stack.runtime.stack import Stack


@pytest.fixture
def stacks():
    la, lb = SocketPairLink.pair()
    a = Stack(la, "192.0.2.1").start()
    b = Stack(lb, "192.0.2.2").start()
    yield a, b
    a.close()
    b.close()
    la.close()
    lb.close()


def _pair(a, b, port=7000):
    """(client socket on a, accepted socket on b)."""
    lst = b.socket()
    lst.bind(("", port))
    lst.listen(8)
    lst.settimeout(5)
    c = a.socket()
    c.settimeout(5)
    c.connect(("192.0.2.2", port))
    s, _ = lst.accept()
    s.settimeout(5)
    lst.close()
    return c, s


def _wait_events(ep, timeout=2.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ev = ep.poll(0.05)
        if ev:
            return ev
    return []


def test_level_triggered_reports_until_drained(stacks):
    """Without EPOLLET an item stays on the ready list while the socket is readable."""
    a, b = stacks
    c, s = _pair(a, b)
    with epoll(b) as ep:
        ep.register(s, EPOLLIN)
        assert ep.poll(0) == []
        c.sendall(b"hello")
        assert _wait_events(ep) == [(s.fileno(), EPOLLIN)]  # only the bits asked for (and ERR/HUP)
        assert ep.poll(0) == [(s.fileno(), EPOLLIN)]  # not read yet: reported again
        assert s.recv(100) == b"hello"
        assert ep.poll(0) == []


def test_edge_triggered_reports_each_arrival_once(stacks):
    """EPOLLET: one report per wake-up, even though the data is still unread."""
    a, b = stacks
    c, s = _pair(a, b)
    with epoll(b) as ep:
        ep.register(s, EPOLLIN | EPOLLET)
        c.sendall(b"one")
        assert _wait_events(ep) == [(s.fileno(), EPOLLIN)]
        assert ep.poll(0.1) == []  # still readable, but no new edge
        c.sendall(b"two")
        assert _wait_events(ep) == [(s.fileno(), EPOLLIN)]
        time.sleep(0.05)
        assert s.recv(100) == b"onetwo"


def test_oneshot_disarms_until_modify(stacks):
    a, b = stacks
    c, s = _pair(a, b)
    with epoll(b) as ep:
        ep.register(s, EPOLLIN | EPOLLONESHOT)
        c.sendall(b"x")
        assert _wait_events(ep) == [(s.fileno(), EPOLLIN)]
        c.sendall(b"y")
        assert ep.poll(0.1) == []
        ep.modify(s, EPOLLIN | EPOLLONESHOT)  # re-arm: still readable -> reported at once
        assert ep.poll(0) == [(s.fileno(), EPOLLIN)]


def test_listening_socket_ready_when_connection_pending(stacks):
    a, b = stacks
    lst = b.socket()
    lst.bind(("", 7100))
    lst.listen(8)
    with epoll(b) as ep:
        ep.register(lst, EPOLLIN)
        assert ep.poll(0) == []
        c = a.socket()
        c.settimeout(5)
        c.connect(("192.0.2.2", 7100))
        assert _wait_events(ep) == [(lst.fileno(), EPOLLIN)]
        lst.settimeout(5)
        s, _ = lst.accept()
        assert ep.poll(0) == []
        s.close()
    lst.close()


def test_out_rdhup_hup_and_err(stacks):
    """tcp_poll's bits: EPOLLOUT when writable; EPOLLRDHUP|EPOLLIN at the peer's FIN; EPOLLHUP when
    both directions are shut; EPOLLERR after a reset."""
    a, b = stacks
    c, s = _pair(a, b)
    with epoll(b) as ep:
        ep.register(s, EPOLLIN | EPOLLOUT | EPOLLRDHUP)
        assert ep.poll(0) == [(s.fileno(), EPOLLOUT)]
        c.shutdown(2 - 1)  # SHUT_WR
        deadline = time.monotonic() + 2
        ev = 0
        while time.monotonic() < deadline and not ev & EPOLLRDHUP:
            ev = dict(ep.poll(0.05)).get(s.fileno(), 0)
        assert ev & EPOLLRDHUP and ev & EPOLLIN and not ev & EPOLLHUP
        s.shutdown(2 - 1)
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and not ev & EPOLLHUP:
            ev = dict(ep.poll(0.05)).get(s.fileno(), 0)
        assert ev & EPOLLHUP
    c2, s2 = _pair(a, b, 7200)
    with epoll(b) as ep:
        ep.register(s2, EPOLLIN)
        s2.sendall(b"unread")  # the client closes with unread data: RFC 2525 says reset
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and not c2.info().get("rcvbuf"):
            time.sleep(0.01)
        c2.close()
        deadline = time.monotonic() + 2
        ev = 0
        while time.monotonic() < deadline and not ev & EPOLLERR:
            ev = dict(ep.poll(0.05)).get(s2.fileno(), 0)
        assert ev & EPOLLERR and ev & EPOLLHUP  # EPOLLERR/EPOLLHUP are reported even when not asked for


def test_poll_timeout_and_maxevents(stacks):
    a, b = stacks
    pairs = [_pair(a, b, 7300 + i) for i in range(3)]
    with epoll(b) as ep:
        start = time.monotonic()
        for _, s in pairs:
            ep.register(s, EPOLLIN)
        assert ep.poll(0.2) == []
        assert 0.15 <= time.monotonic() - start < 2
        for c, _ in pairs:
            c.sendall(b"z")
        time.sleep(0.1)
        first = ep.poll(0, maxevents=2)
        assert len(first) == 2
        assert len(ep.poll(0)) == 3  # level-triggered: all three still ready
        with pytest.raises(ValueError):
            ep.poll(0, maxevents=0)


def test_interrupt_wakes_a_sleeping_poll_and_is_sticky(stacks):
    """interrupt() is an eventfd in the interest set: a poll() asleep with no timeout returns at
    once (nothing ready), and one made after it returns at once too, but only once."""
    a, b = stacks
    with epoll(b) as ep:
        got = []
        t = threading.Thread(target=lambda: got.append(ep.poll(None)), daemon=True)
        t.start()
        time.sleep(0.1)
        assert t.is_alive()                  # asleep: nothing is registered, no timeout
        ep.interrupt()
        t.join(2)
        assert got == [[]]
        ep.interrupt()                       # before anyone polls: not lost
        assert ep.poll(None) == []
        start = time.monotonic()
        assert ep.poll(0.2) == []            # consumed: this one sleeps its whole timeout
        assert time.monotonic() - start >= 0.15


def test_unregister_and_close_remove_items(stacks):
    a, b = stacks
    c, s = _pair(a, b)
    with epoll(b) as ep:
        ep.register(s, EPOLLIN)
        with pytest.raises(FileExistsError):
            ep.register(s, EPOLLIN)
        ep.unregister(s)
        c.sendall(b"x")
        assert ep.poll(0.1) == []
        with pytest.raises(FileNotFoundError):
            ep.unregister(s)
        ep.register(s, EPOLLIN)
        assert _wait_events(ep)
        s.close()
        assert not ep.rbr and ep.poll(0) == []  # closing removed it from the interest set
    with pytest.raises(ValueError):
        ep.poll(0)


def test_epoll_fileno_is_selectable(stacks):
    """An epoll's own fd is readable while its ready list is not empty (epoll in select/epoll)."""
    a, b = stacks
    c, s = _pair(a, b)
    with epoll(b) as ep:
        ep.register(s, EPOLLIN)
        assert select.select([ep.fileno()], [], [], 0)[0] == []
        c.sendall(b"x")
        assert select.select([ep.fileno()], [], [], 2)[0] == [ep.fileno()]


def test_one_thread_epoll_echo_server_serves_many_clients(stacks):
    """The NIO side of the course: one thread, edge-triggered epoll, 20 clients at once, bytes intact."""
    a, b = stacks
    server = EpollEchoServer(b, 7400)
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    results = {}

    def client(i):
        data = os.urandom(50_000 + i * 1000)
        sock = a.socket()
        sock.settimeout(10)
        sock.connect(("192.0.2.2", 7400))
        got = bytearray()
        sender = threading.Thread(target=lambda: (sock.sendall(data), sock.shutdown(1)))
        sender.start()
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += chunk
        sender.join()
        sock.close()
        results[i] = hashlib.sha256(got).digest() == hashlib.sha256(data).digest()

    clients = [threading.Thread(target=client, args=(i,)) for i in range(20)]
    for th in clients:
        th.start()
    for th in clients:
        th.join(30)
    server.shutdown()
    t.join(5)
    server.server_close()
    assert results == {i: True for i in range(20)}


def test_edge_triggered_ignores_wakeups_about_other_events(stacks):
    """Like Linux's ep_poll_callback: a wake-up that is about EPOLLOUT (our data being ACKed) does
    not report an EPOLLIN|EPOLLET item again while its old data is still unread."""
    a, b = stacks
    c, s = _pair(a, b)
    with epoll(b) as ep:
        ep.register(s, EPOLLIN | EPOLLET)
        c.sendall(b"one")
        assert _wait_events(ep) == [(s.fileno(), EPOLLIN)]
        assert ep.poll(0.1) == []
        s.sendall(b"reply")  # the client's ACK wakes s's wait queue (writable), no new data
        assert c.recv(10) == b"reply"
        assert ep.poll(0.3) == []


def _edge_writable_events(c, s, ep) -> list:
    """What an EPOLLOUT|EPOLLET item on ``c`` reports at each step (``s`` is its peer): registered;
    asked again; after an ACK of data that never filled the buffer; with the buffer full; once the
    peer has read everything; asked again. ``ep`` is a ``select.epoll`` or a ``stack.epoll``."""
    got = []
    ep.register(c.fileno() if isinstance(ep, select.epoll) else c, EPOLLOUT | EPOLLET)
    got.append(ep.poll(0.1))
    got.append(ep.poll(0.1))
    c.sendall(b"x" * 1000)
    assert s.recv(2000) == b"x" * 1000
    time.sleep(0.3)  # the ACK (delayed at most 200 ms) frees the room
    got.append(ep.poll(0.1))
    c.setblocking(False)
    for _ in range(4000):  # bounded: the buffers fill long before
        try:
            c.send(bytes(65536))
        except BlockingIOError:
            break
    got.append(ep.poll(0))
    s.setblocking(False)
    events, deadline = [], time.monotonic() + 10
    while not events and time.monotonic() < deadline:
        try:
            while s.recv(1 << 20):
                pass
        except BlockingIOError:
            pass
        events = ep.poll(0.01)
    got.append(events)
    got.append(ep.poll(0.1))
    return [[ev for _, ev in step] for step in got]


# what Linux reports (the kernel run below proves it): an ACK wakes a writer only if one found the
# buffer full (SOCK_NOSPACE, sk_stream_write_space), so no EPOLLOUT edge comes from an ACK otherwise
EDGE_WRITABLE = [[EPOLLOUT], [], [], [], [EPOLLOUT], []]


def test_edge_triggered_writable_on_the_kernel():
    """The expectation of the next test, on kernel sockets over loopback and select.epoll."""
    ls = socket.create_server(("127.0.0.1", 0))
    c = socket.create_connection(ls.getsockname(), timeout=5)
    s, _ = ls.accept()
    s.settimeout(5)
    try:
        with select.epoll() as ep:
            assert _edge_writable_events(c, s, ep) == EDGE_WRITABLE
    finally:
        for x in (c, s, ls):
            x.close()


def test_edge_triggered_writable_only_after_the_buffer_filled(stacks):
    """An ACK that frees room nobody was waiting for is no EPOLLOUT edge (Linux tcp_check_space
    needs SOCK_NOSPACE): stack.epoll reports what the kernel's epoll does, step by step."""
    a, b = stacks
    c, s = _pair(a, b)
    with epoll(a) as ep:
        assert _edge_writable_events(c, s, ep) == EDGE_WRITABLE


def test_sockets_cost_no_fd_until_reported_by_fd(stacks):
    """A tunstack socket's fd is two kernel fds (stack/readiness.py): the interest set holds the
    socket, poll_sockets() reports it as an object (Linux's epoll_event.data), and only poll()
    makes the fd it must report."""
    a, b = stacks
    pairs = [_pair(a, b, port=7100 + i) for i in range(3)]
    ep = epoll(b)
    for _, s in pairs:
        ep.register(s, EPOLLIN)
    assert all(s._efd is None for _, s in pairs)          # registering made no fd
    pairs[1][0].sendall(b"x")
    deadline = time.monotonic() + 2
    got = []
    while not got and time.monotonic() < deadline:
        got = ep.poll_sockets(0.05)
    assert got == [(pairs[1][1], EPOLLIN)]
    assert all(s._efd is None for _, s in pairs)          # nor did reporting the socket object
    assert ep.poll(0) == [(pairs[1][1].fileno(), EPOLLIN)]  # level-triggered: reported again, by fd
    assert pairs[1][1]._efd is not None and pairs[0][1]._efd is None
    ep.close()


def test_a_socket_of_another_stack_is_refused(stacks):
    """An epoll watches the sockets of its own stack: another stack's socket would wake it under the
    other stack's lock (and kill that stack's thread), so register() refuses it with EPERM, the errno
    Linux gives a file epoll cannot watch."""
    a, b = stacks
    c, s = _pair(a, b)
    with epoll(b) as ep:
        with pytest.raises(PermissionError) as err:
            ep.register(c, EPOLLOUT)
        assert err.value.errno == errno.EPERM
        ep.register(s, EPOLLOUT)  # its own stack's socket: fine
        assert _wait_events(ep) == [(s.fileno(), EPOLLOUT)]
    assert a.loop_error is None and b.loop_error is None


def _lifecycle_events(listen, connect, server_ep, client_ep, linger_rst) -> dict:
    """What epoll reports along a connection's life, step by step: an edge-triggered listener with
    two connections queued and then a third; an edge-triggered reader with two arrivals unread and
    then a third; the peer's FIN after data (EPOLLIN|EPOLLRDHUP, edge-triggered); our SHUT_WR and
    the peer's close (EPOLLOUT, edge-triggered); a reset with only EPOLLIN asked for; a
    non-blocking connect watched for EPOLLOUT, edge-triggered. ``server_ep()``/``client_ep()`` make
    an epoll for either side's sockets; ``linger_rst(sock)`` closes with an RST."""
    def names(events):
        return ["|".join(n for n, bit in (("IN", EPOLLIN), ("OUT", EPOLLOUT), ("RDHUP", EPOLLRDHUP),
                                           ("HUP", EPOLLHUP), ("ERR", EPOLLERR)) if ev & bit) for _, ev in events]
    got = {}
    ls = listen()
    ep = server_ep()
    ep.register(ls, EPOLLIN | EPOLLET)
    c1, c2 = connect(), connect()
    time.sleep(0.2)
    got["listener, two queued"] = [names(ep.poll(0.1)), names(ep.poll(0.1))]
    c3 = connect()
    time.sleep(0.2)
    got["listener, a third"] = names(ep.poll(0.1))
    s1, s2, s3 = (ls.accept()[0] for _ in range(3))
    got["listener, all accepted"] = names(ep.poll(0.1))
    ep.close()
    ep = server_ep()
    ep.register(s1, EPOLLIN | EPOLLET)
    c1.sendall(b"a")
    time.sleep(0.1)
    c1.sendall(b"b")
    time.sleep(0.1)
    got["reader, two arrivals"] = [names(ep.poll(0.1)), names(ep.poll(0.1))]
    c1.sendall(b"c")
    time.sleep(0.1)
    got["reader, a third"] = names(ep.poll(0.1))
    ep.close()
    ep = server_ep()
    ep.register(s2, EPOLLIN | EPOLLRDHUP | EPOLLET)
    c2.sendall(b"x")
    time.sleep(0.1)
    got["data before FIN"] = names(ep.poll(0.1))
    c2.shutdown(socket.SHUT_WR)
    time.sleep(0.1)
    got["FIN"] = [names(ep.poll(0.1)), names(ep.poll(0.1))]
    ep.close()
    ep = server_ep()
    ep.register(s3, EPOLLOUT | EPOLLET)
    got["writer"] = names(ep.poll(0.1))
    s3.shutdown(socket.SHUT_WR)
    time.sleep(0.2)
    got["writer, after SHUT_WR"] = names(ep.poll(0.1))
    c3.close()
    time.sleep(0.2)
    got["writer, after the peer's close"] = names(ep.poll(0.1))
    ep.close()
    ep = server_ep()
    ep.register(s1, EPOLLIN)
    s1.recv(10)
    linger_rst(c1)
    time.sleep(0.2)
    got["reset, EPOLLIN asked"] = names(ep.poll(0.1))
    ep.close()
    ep = client_ep()
    c4 = connect(blocking=False)
    ep.register(c4, EPOLLOUT | EPOLLET)
    time.sleep(0.2)
    got["non-blocking connect"] = [names(ep.poll(0.1)), names(ep.poll(0.1))]
    ep.close()
    for x in (c2, c3, c4, s1, s2, s3, ls):
        x.close()
    return got


LIFECYCLE = {  # what Linux reports (the kernel test below proves it)
    "listener, two queued": [["IN"], []], "listener, a third": ["IN"], "listener, all accepted": [],
    "reader, two arrivals": [["IN"], []], "reader, a third": ["IN"],
    "data before FIN": ["IN"], "FIN": [["IN|RDHUP"], []],
    "writer": ["OUT"], "writer, after SHUT_WR": ["OUT"], "writer, after the peer's close": ["OUT|HUP"],
    "reset, EPOLLIN asked": ["IN|HUP|ERR"],
    "non-blocking connect": [["OUT"], []],
}


def _rst(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class _KernelEpoll:
    """select.epoll taking socket objects, as stack.epoll does."""

    def __init__(self):
        self._ep = select.epoll()

    def register(self, sock, events):
        self._ep.register(sock.fileno(), events)

    def poll(self, timeout):
        return self._ep.poll(timeout)

    def close(self):
        self._ep.close()


def test_connection_life_through_epoll_on_the_kernel():
    """The expectation of the next test, on kernel sockets over loopback and select.epoll."""
    addr = []

    def listen():
        ls = socket.create_server(("127.0.0.1", 0))
        addr.append(ls.getsockname())
        return ls

    def connect(blocking=True):
        c = socket.socket()
        if blocking:
            c.settimeout(5)
            c.connect(addr[0])
        else:
            c.setblocking(False)
            assert c.connect_ex(addr[0]) == errno.EINPROGRESS
        return c
    assert _lifecycle_events(listen, connect, _KernelEpoll, _KernelEpoll, _rst) == LIFECYCLE


def test_connection_life_through_stack_epoll(stacks):
    """stack.epoll reports what Linux's epoll does at every step of a connection's life."""
    a, b = stacks

    def listen():
        ls = b.socket()
        ls.bind(("", 7300))
        ls.listen(8)
        ls.settimeout(5)
        return ls

    def connect(blocking=True):
        c = a.socket()
        if blocking:
            c.settimeout(5)
            c.connect(("192.0.2.2", 7300))
        else:
            c.setblocking(False)
            assert c.connect_ex(("192.0.2.2", 7300)) == errno.EINPROGRESS
        return c
    assert _lifecycle_events(listen, connect, lambda: epoll(b), lambda: epoll(a), _rst) == LIFECYCLE
    assert a.loop_error is None and b.loop_error is None
