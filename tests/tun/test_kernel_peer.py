"""Real TUN with the kernel's own TCP as the peer (RFC 9293 behaviour seen from outside).

The stack runs in-process on a TUN device in this run's private network namespace; the
peer is an ordinary kernel socket on the host side (192.0.2.1) of the same TUN.
"""
from __future__ import annotations

import errno
import hashlib
import itertools
import os
import socket
import struct
import threading
import time

import pytest

from stack.link.netconf import configure_host_side
from stack.link.tun import TunLink
from stack.runtime.stack import Stack
from stack.trace import ListSink, Tracer

STACK, HOST = "192.0.2.2", "192.0.2.1"
_names = itertools.count()
_ports = itertools.count(20000)


@pytest.fixture
def net(private_netns):
    """A started stack on a fresh TUN, with a trace in memory. Yields (stack, sink)."""
    name = f"tsk{os.getpid() % 10000}{next(_names)}"
    link = TunLink(name, mtu=1500)
    configure_host_side(name, HOST + "/24", 1500)
    sink = ListSink()
    stack = Stack(link, STACK, tracer=Tracer(sink)).start()
    try:
        yield stack, sink
    finally:
        stack.close()
        link.close()
        assert stack.loop_error is None, stack.loop_error


def _kernel_listener(rcvbuf: int | None = None):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if rcvbuf:
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    port = next(_ports)
    srv.bind((HOST, port))
    srv.listen(8)
    srv.settimeout(10)
    return srv, port


def _stack_listener(stack):
    lst = stack.socket()
    port = next(_ports)
    lst.bind(("", port))
    lst.listen(8)
    lst.settimeout(10)
    return lst, port


def _pair_kernel_client(stack, rcvbuf: int | None = None):
    """(stack-side accepted socket, kernel client socket)."""
    lst, port = _stack_listener(stack)
    k = socket.socket()
    if rcvbuf:
        k.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    k.settimeout(10)
    k.connect((STACK, port))
    s, addr = lst.accept()
    s.settimeout(10)
    lst.close()
    return s, k


def _recv_all(sock, n: int | None = None) -> bytes:
    out = bytearray()
    while n is None or len(out) < n:
        chunk = sock.recv(1 << 16)
        if not chunk:
            break
        out += chunk
    return bytes(out)


def _abort(sock) -> None:
    """Close a kernel socket with RST (SO_LINGER 0)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _wait(cond, timeout=5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


def _state(sock) -> str:
    return sock.info().get("state", "CLOSED")


# ------------------------------------------------------------------ both roles, data both ways
def test_stack_as_client_exchanges_data_with_kernel_server(net):
    """Active open from the stack (RFC 9293 3.5) to the kernel; 2 MB each way, SHA-256 equal."""
    stack, _ = net
    srv, port = _kernel_listener()
    up, down = os.urandom(2 << 20), os.urandom(2 << 20)
    got = {}

    def kernel_side():
        conn, _ = srv.accept()
        conn.settimeout(20)
        got["up"] = _recv_all(conn, len(up))
        conn.sendall(down)
        conn.shutdown(socket.SHUT_WR)
        got["eof"] = conn.recv(1)
        conn.close()

    t = threading.Thread(target=kernel_side)
    t.start()
    s = stack.socket()
    s.settimeout(20)
    s.connect((HOST, port))
    assert s.getpeername() == (HOST, port) and s.getsockname()[0] == STACK
    s.sendall(up)
    received = _recv_all(s)
    s.close()
    t.join(20)
    srv.close()
    assert hashlib.sha256(got["up"]).digest() == hashlib.sha256(up).digest()
    assert hashlib.sha256(received).digest() == hashlib.sha256(down).digest()
    assert got["eof"] == b""


def test_stack_connect_to_closed_kernel_port_is_refused(net):
    """RFC 9293 3.10.7.3: the kernel's RST,ACK to our SYN -> ECONNREFUSED."""
    stack, _ = net
    s = stack.socket()
    s.settimeout(5)
    with pytest.raises(ConnectionRefusedError):
        s.connect((HOST, 1))


def test_kernel_sends_20mb_to_slow_reader_zero_window_and_persist(net):
    """RFC 9293 3.8.6.1: the slow reader's window closes; the kernel probes; every byte arrives."""
    stack, sink = net
    data = os.urandom(20 << 20)
    lst, port = _stack_listener(stack)
    done = {}

    def kernel_sender():
        k = socket.create_connection((STACK, port), timeout=60)
        k.sendall(data)
        k.close()
        done["sent"] = True

    t = threading.Thread(target=kernel_sender)
    t.start()
    s, _ = lst.accept()
    s.settimeout(60)
    out = bytearray()
    # read slowly at first: the 4 MiB receive buffer fills and the window goes to zero
    assert _wait(lambda: sink.of("zero_window"), timeout=20), "window never closed"
    assert _wait(lambda: sink.of("window_probe_in"), timeout=20), "kernel never probed the zero window"
    while True:
        chunk = s.recv(1 << 18)
        if not chunk:
            break
        out += chunk
    t.join(30)
    s.close()
    lst.close()
    assert done.get("sent")
    assert len(out) == len(data) and hashlib.sha256(out).digest() == hashlib.sha256(data).digest()


def test_stack_sends_to_slow_kernel_reader_persist_probes(net):
    """RFC 9293 3.8.6.1: against the kernel's zero window our persist timer probes; nothing is lost."""
    stack, sink = net
    data = os.urandom(6 << 20)
    s, k = _pair_kernel_client(stack, rcvbuf=65536)
    sender = threading.Thread(target=lambda: (s.sendall(data), s.shutdown(socket.SHUT_WR)))
    sender.start()
    assert _wait(lambda: any(e["ev"] == "persist_probe" for e in sink.events), timeout=30), "no persist probe"
    got = _recv_all(k)
    sender.join(30)
    k.close()
    s.close()
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()


# ------------------------------------------------------------------ half-close
def test_half_close_kernel_first(net):
    """The kernel shuts down writing: we read EOF, still send, the kernel still receives (CLOSE-WAIT)."""
    stack, _ = net
    s, k = _pair_kernel_client(stack)
    k.sendall(b"request")
    k.shutdown(socket.SHUT_WR)
    assert _recv_all(s) == b"request"
    assert _wait(lambda: _state(s) == "CLOSE_WAIT")
    s.sendall(b"response after your FIN" * 1000)
    s.close()
    assert _recv_all(k) == b"response after your FIN" * 1000
    k.close()


def test_half_close_stack_first(net):
    """We shut down writing (FIN-WAIT-2) and keep receiving what the kernel sends."""
    stack, _ = net
    s, k = _pair_kernel_client(stack)
    s.sendall(b"ping")
    s.shutdown(socket.SHUT_WR)
    assert _recv_all(k) == b"ping"
    assert _wait(lambda: _state(s) == "FIN_WAIT_2")
    with pytest.raises(BrokenPipeError):
        s.send(b"more")
    payload = os.urandom(300_000)
    k.sendall(payload)
    k.close()
    assert _recv_all(s) == payload
    assert _wait(lambda: _state(s) in ("TIME_WAIT", "CLOSED"))
    s.close()


# ------------------------------------------------------------------ the kernel's FIN and RST in each state
def test_kernel_fin_in_established_gives_eof_and_close_wait(net):
    stack, _ = net
    s, k = _pair_kernel_client(stack)
    k.close()
    assert s.recv(10) == b""
    assert _wait(lambda: _state(s) == "CLOSE_WAIT")
    s.close()
    assert _wait(lambda: _state(s) == "CLOSED")


def test_kernel_rst_in_established_gives_econnreset(net):
    """RFC 9293 3.10.7.4 second check: RST in ESTABLISHED -> 'connection reset' to the user."""
    stack, _ = net
    s, k = _pair_kernel_client(stack)
    _abort(k)
    with pytest.raises(ConnectionResetError):
        s.recv(10)
    assert s.recv(10) == b""  # reported once, then EOF, as on Linux
    with pytest.raises(OSError) as exc:
        s.send(b"x")
    assert exc.value.errno in (errno.EPIPE, errno.ECONNRESET)


def test_kernel_rst_in_close_wait(net):
    stack, _ = net
    s, k = _pair_kernel_client(stack)
    k.shutdown(socket.SHUT_WR)
    assert s.recv(10) == b""
    assert _wait(lambda: _state(s) == "CLOSE_WAIT")
    _abort(k)
    assert _wait(lambda: _state(s) == "CLOSED")


def test_kernel_rst_in_fin_wait_2(net):
    stack, _ = net
    s, k = _pair_kernel_client(stack)
    s.shutdown(socket.SHUT_WR)
    assert k.recv(10) == b""
    assert _wait(lambda: _state(s) == "FIN_WAIT_2")
    _abort(k)
    assert _wait(lambda: _state(s) == "CLOSED")
    with pytest.raises(ConnectionResetError):
        s.recv(10)


def test_kernel_fin_in_fin_wait_2_enters_time_wait(net):
    stack, _ = net
    s, k = _pair_kernel_client(stack)
    s.shutdown(socket.SHUT_WR)
    assert k.recv(10) == b""
    assert _wait(lambda: _state(s) == "FIN_WAIT_2")
    k.close()
    assert _wait(lambda: _state(s) == "TIME_WAIT")
    assert s.recv(10) == b""


def test_kernel_close_after_our_fin_from_last_ack(net):
    """Passive close on our side: CLOSE-WAIT -> LAST-ACK -> CLOSED when the kernel ACKs our FIN."""
    stack, _ = net
    s, k = _pair_kernel_client(stack)
    k.close()
    assert s.recv(1) == b""
    s.close()
    assert _wait(lambda: _state(s) == "CLOSED")


def test_close_with_unread_data_sends_rst_to_kernel(net):
    """RFC 9293 3.6 / RFC 2525 2.17: close() with unread data resets; the kernel sees ECONNRESET."""
    stack, _ = net
    s, k = _pair_kernel_client(stack)
    k.sendall(b"unread")
    assert _wait(lambda: s.info().get("rcvbuf", 0) > 0)
    s.close()
    with pytest.raises(ConnectionResetError):
        for _ in range(3):
            k.recv(10) or time.sleep(0.05)
            k.send(b"x")
            time.sleep(0.05)
