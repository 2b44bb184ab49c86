"""SYN cookies against the kernel's TCP on a real TUN (in this run's private network namespace): a Linux client
(timestamps, window scaling and SACK on, as by default) connects to our listener while every SYN is answered
with a cookie (``syncookies = 2``); the connection is rebuilt from the cookie with the options it carried and
moves data both ways intact."""
from __future__ import annotations

import hashlib
import itertools
import os
import socket
import threading

import pytest

from stack.link.netconf import configure_host_side
from stack.link.tun import TunLink
from stack.runtime.stack import Stack
from stack.tcp.config import TcpConfig

STACK, HOST = "192.0.2.2", "192.0.2.1"
_names = itertools.count()


@pytest.fixture
def cookie_stack(private_netns):
    name = f"tsc{os.getpid() % 10000}{next(_names)}"
    link = TunLink(name, mtu=1500)
    configure_host_side(name, HOST + "/24", 1500)
    stack = Stack(link, STACK, tcp_config=TcpConfig(syncookies=2)).start()
    try:
        yield stack
    finally:
        stack.close()
        link.close()
        assert stack.loop_error is None, stack.loop_error


def _recv_exactly(sock, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(1 << 16)
        if not chunk:
            break
        out += chunk
    return bytes(out)


def test_kernel_client_connects_through_a_cookie_and_moves_data(cookie_stack):
    stack = cookie_stack
    lst = stack.socket()
    lst.bind(("", 20480))
    lst.listen(8)
    lst.settimeout(10)
    up, down = os.urandom(1 << 20), os.urandom(1 << 20)
    got = {}

    def kernel_client():
        k = socket.create_connection((STACK, 20480), timeout=20)
        k.sendall(up)
        got["down"] = _recv_exactly(k, len(down))
        k.close()

    t = threading.Thread(target=kernel_client)
    t.start()
    s, _ = lst.accept()
    s.settimeout(20)
    info = s.info()
    got["up"] = _recv_exactly(s, len(up))
    s.sendall(down)
    t.join(30)
    s.close()
    lst.close()
    stats = stack.stats()
    assert stats["tcp:syncookies_sent"] >= 1 and stats["tcp:syncookies_recv"] >= 1
    assert "tcp:syncookies_failed" not in stats
    assert info["ts"] and info["sack"] and info["wscale"][0] > 0  # the kernel's options, via the TSval
    assert info["mss"] == 1460 - 12  # MSS 1460 from the cookie's table, less the timestamp option
    assert hashlib.sha256(got["up"]).digest() == hashlib.sha256(up).digest()
    assert hashlib.sha256(got["down"]).digest() == hashlib.sha256(down).digest()
