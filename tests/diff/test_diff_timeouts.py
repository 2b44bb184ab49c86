"""TCP_USER_TIMEOUT (RFC 5482) as Linux applies it, seen from the socket: a peer that never reads shuts its
window; with the option set the sender gives up after the timeout although every probe is answered."""
from __future__ import annotations

import errno
import socket
import time

import pytest
from diffnet import wait_for

pytestmark = pytest.mark.timeout(30)

SOL, TCP = socket.SOL_SOCKET, socket.IPPROTO_TCP
TCP_USER_TIMEOUT = getattr(socket, "TCP_USER_TIMEOUT", 18)


def _stalled(net, user_timeout_ms: int):
    """(socket under test with TCP_USER_TIMEOUT, its send buffer full against a shut window; peer socket)."""
    ls = net.peer_socket()
    ls.setsockopt(SOL, socket.SO_RCVBUF, 4096)  # a small window, inherited by the accepted socket
    ls.bind((net.peer_host, 0))
    ls.listen()
    s = net.socket()
    s.setsockopt(TCP, TCP_USER_TIMEOUT, user_timeout_ms)
    s.connect(ls.getsockname())
    p, _ = ls.accept()
    net._closers.append(p)
    s.setblocking(False)
    try:
        for _ in range(4000):  # at most 256 MiB: the peer never reads
            s.send(bytes(65536))
    except BlockingIOError:
        pass
    return s, p


def _error(s) -> int:
    return s.getsockopt(SOL, socket.SO_ERROR)


def test_user_timeout_gives_up_on_a_shut_window(net):
    """Linux tcp_probe_timer: zero-window probes are answered, yet after TCP_USER_TIMEOUT (500 ms) of probing
    the connection is aborted: SO_ERROR is ETIMEDOUT, then recv reports EOF (the socket is CLOSE)."""
    s, p = _stalled(net, 500)
    start = time.monotonic()
    got = []
    assert wait_for(lambda: got.append(_error(s)) or got[-1] != 0, timeout=10)
    assert got[-1] == errno.ETIMEDOUT and time.monotonic() - start >= 0.4
    assert s.recv(10) == b""


def test_without_user_timeout_a_shut_window_is_probed_on(net):
    """RFC 1122 4.2.2.17: without the option a receiver that answers probes is kept however long it waits."""
    s, p = _stalled(net, 0)
    time.sleep(1.5)
    assert _error(s) == 0
    assert s.getpeername() == p.getsockname()
    assert len(p.recv(100)) == 100  # the connection still carries data


def test_user_timeout_reads_back_on_the_connection(net):
    """The value set (ms) is what getsockopt returns, before and after connect."""
    s, p = _stalled(net, 1234)
    assert s.getsockopt(TCP, TCP_USER_TIMEOUT) == 1234
    s.setsockopt(TCP, TCP_USER_TIMEOUT, 60000)
    assert s.getsockopt(TCP, TCP_USER_TIMEOUT) == 60000
