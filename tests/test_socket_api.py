"""The socket API as a user of the standard library expects it (stack.socket over a Stack).

Two real-time stacks in this process, 192.0.2.1 ("A", usually the client) and 192.0.2.2
("B", usually the server), joined by an in-memory ``SocketPairLink`` (no TUN, no root
needed). Each test is a user's-eye check of a name, a semantics or an errno that the
standard library's ``socket`` module documents; timers are shrunk through ``TcpConfig``
so every test finishes well within two seconds, and every blocking call is bounded by a
socket timeout so a broken stack fails a test instead of hanging the run.
"""
from __future__ import annotations

import errno
import hashlib
import http.client
import os
import select
import struct
import socket as std
import threading
import time

import pytest
from scapy.layers.inet import IP, TCP

from stack.apps.servers import echo_server, http_server
from stack.link.impair import Impairment, ImpairSpec
from stack.link.memory import SocketPairLink
from stack.runtime.stack import Stack
from stack.tcp.config import TcpConfig
from stack.trace import ListSink, Tracer

pytestmark = pytest.mark.timeout(30)

A_ADDR, B_ADDR = "192.0.2.1", "192.0.2.2"
IO_TIMEOUT = 5.0      # bound on every blocking call a test makes (a hang becomes a failure)


def fast_config(**kw) -> TcpConfig:
    """Small timers so that retransmission, keepalive and delayed-ACK behaviour fit in a test."""
    base = dict(min_rto=0.05, initial_rto=0.2, delack=0.01, msl=0.5, fin_timeout=1.0)
    base.update(kw)
    return TcpConfig(**base)


class Pair:
    """Two started stacks over one in-memory link; everything made through it is closed at teardown."""

    def __init__(self, config_a: TcpConfig | None = None, config_b: TcpConfig | None = None,
                 impair_out_a=None, impair_out_b=None):
        self.link_a, self.link_b = SocketPairLink.pair()
        self.trace_a = ListSink()      # A's trace events (keepalive probes, retransmissions, ...)
        self.a = Stack(self.link_a, A_ADDR, tcp_config=config_a or fast_config(), impair_out=impair_out_a, seed=1,
                       tracer=Tracer(self.trace_a))
        self.b = Stack(self.link_b, B_ADDR, tcp_config=config_b or fast_config(), impair_out=impair_out_b, seed=2)
        self.a.start()
        self.b.start()
        self._closers = []

    def track(self, obj):
        self._closers.append(obj)
        return obj

    def listener(self, port: int = 0, stack: Stack | None = None, backlog: int = 16):
        ls = self.track((stack or self.b).socket())
        ls.settimeout(IO_TIMEOUT)
        ls.bind(("", port))
        ls.listen(backlog)
        return ls

    def client(self, stack: Stack | None = None):
        c = self.track((stack or self.a).socket())
        c.settimeout(IO_TIMEOUT)
        return c

    def connected(self, port: int = 0):
        """(client on A, accepted server socket on B), both with IO_TIMEOUT."""
        ls = self.listener(port)
        c = self.client()
        c.connect((B_ADDR, ls.getsockname()[1]))
        s, _ = ls.accept()
        self.track(s)
        s.settimeout(IO_TIMEOUT)
        return c, s

    def blackhole(self, *stacks: Stack) -> None:
        """From now on everything these stacks send is lost: the peer is, as far as they know, gone."""
        for st in stacks:
            with st.lock:
                st.impair_out = Impairment(ImpairSpec.parse("loss=100%"), direction="out")

    def close(self) -> None:
        for obj in reversed(self._closers):
            try:
                obj.close()
            except Exception:
                pass
        self.a.close()
        self.b.close()
        self.link_a.close()
        self.link_b.close()
        for st in (self.a, self.b):
            assert st.loop_error is None, f"stack thread died: {st.loop_error!r}"


@pytest.fixture
def make_pair():
    made = []

    def make(**kw) -> Pair:
        p = Pair(**kw)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


@pytest.fixture
def pair(make_pair) -> Pair:
    return make_pair()


def recv_exactly(sock, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(65536, n - len(buf)))
        if not chunk:
            raise AssertionError(f"EOF after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def recv_until_eof(sock) -> bytes:
    buf = bytearray()
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return bytes(buf)
        buf += chunk


def in_thread(fn, *args):
    """Run fn in a thread; .result() joins (bounded) and re-raises its exception."""
    box = {}

    def run():
        try:
            box["value"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
            box["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()

    class Handle:
        @staticmethod
        def result(timeout: float = 2 * IO_TIMEOUT):
            t.join(timeout)
            assert not t.is_alive(), f"{fn.__name__} still running after {timeout} s"
            if "error" in box:
                raise box["error"]
            return box.get("value")

    return Handle


def wait_for(pred, timeout: float = IO_TIMEOUT, step: float = 0.005) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(step)


# ============================================================================ data transfer

def test_one_megabyte_each_way_sha256(pair):
    c, s = pair.connected()
    up, down = os.urandom(1 << 20), os.urandom(1 << 20)

    def server():
        got = recv_exactly(s, len(up))
        s.sendall(down)
        return hashlib.sha256(got).hexdigest()

    h = in_thread(server)
    c.sendall(up)
    got = recv_exactly(c, len(down))
    assert h.result() == hashlib.sha256(up).hexdigest()
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(down).hexdigest()


def test_both_directions_at_once(pair):
    """Full duplex: each side sends 512 KiB while it receives the other's."""
    c, s = pair.connected()
    x, y = os.urandom(512 << 10), os.urandom(512 << 10)
    hs = [in_thread(s.sendall, y), in_thread(c.sendall, x)]
    got_s = in_thread(recv_exactly, s, len(x))
    got_c = recv_exactly(c, len(y))
    for h in hs:
        h.result()
    assert got_s.result() == x and got_c == y


def test_names_of_both_ends(pair):
    ls = pair.listener(8080)
    assert ls.getsockname() == ("0.0.0.0", 8080)
    c = pair.client()
    assert c.getsockname() == ("0.0.0.0", 0)
    c.connect((B_ADDR, 8080))
    s, peer = ls.accept()
    pair.track(s)
    assert c.getpeername() == (B_ADDR, 8080)
    assert c.getsockname()[0] == A_ADDR and 1024 <= c.getsockname()[1] <= 65535
    assert peer == c.getsockname() == s.getpeername()
    assert s.getsockname() == (B_ADDR, 8080)
    assert (c.family, c.type) == (std.AF_INET, std.SOCK_STREAM)


def test_bind_port_zero_picks_a_port_and_explicit_client_port(pair):
    ls = pair.listener(0)
    port = ls.getsockname()[1]
    assert port != 0
    c = pair.client()
    c.bind((A_ADDR, 40123))
    c.connect((B_ADDR, port))
    s, peer = ls.accept()
    pair.track(s)
    assert peer == (A_ADDR, 40123) == c.getsockname()


def test_with_statement_closes_and_peer_sees_eof(pair):
    ls = pair.listener()
    with pair.a.socket() as c:
        c.settimeout(IO_TIMEOUT)
        c.connect((B_ADDR, ls.getsockname()[1]))
        s, _ = ls.accept()
        pair.track(s)
        s.settimeout(IO_TIMEOUT)
        c.sendall(b"bye")
    assert c.closed and c.fileno() == -1
    assert recv_until_eof(s) == b"bye"


def test_makefile_line_protocol(pair):
    c, s = pair.connected()

    def server():
        rfile, wfile = s.makefile("rb"), s.makefile("wb")
        n = 0
        for line in rfile:
            wfile.write(line.upper())
            wfile.flush()
            n += 1
        rfile.close()
        wfile.close()
        s.close()   # the real close happens only now (makefile objects hold references)
        return n

    h = in_thread(server)
    w, r = c.makefile("wb"), c.makefile("rb")
    for i in range(100):
        w.write(b"line %d\n" % i)
        w.flush()
        assert r.readline() == b"LINE %d\n" % i
    w.close()
    c.shutdown(std.SHUT_WR)
    assert r.readline() == b""        # server closed after reading our EOF
    r.close()
    assert h.result() == 100


def test_makefile_keeps_socket_open_until_file_closed(pair):
    """socket.makefile's contract: close() on the socket is deferred while file objects exist.

    urllib relies on it: do_open() closes the connection's socket right after getresponse()
    and the caller reads the body later through the response's makefile() object."""
    c, s = pair.connected()
    w, r = c.makefile("wb"), c.makefile("rb")
    c.close()
    w.write(b"still open\n")
    w.flush()
    assert recv_exactly(s, 11) == b"still open\n"
    h = in_thread(r.readline)                     # blocks in recv_into: data comes later
    time.sleep(0.05)
    s.sendall(b"reply\n")
    assert h.result() == b"reply\n"
    w.close()
    r.close()                                     # last reference: now the FIN goes
    assert s.recv(100) == b""


def test_recv_into(pair):
    c, s = pair.connected()
    s.sendall(b"0123456789")
    buf = bytearray(4)
    assert c.recv_into(buf) == 4 and buf == b"0123"
    big = bytearray(100)
    assert c.recv_into(big, 3) == 3 and big[:3] == b"456"
    mv = memoryview(bytearray(10))
    assert c.recv_into(mv[2:]) == 3 and bytes(mv[2:5]) == b"789"
    with pytest.raises(ValueError):
        c.recv_into(buf, -1)


def test_msg_peek_does_not_consume(pair):
    c, s = pair.connected()
    s.sendall(b"hello world")
    wait_for(lambda: select.select([c], [], [], 0)[0])
    wait_for(lambda: len(c.recv(100, std.MSG_PEEK)) == 11)
    assert c.recv(5, std.MSG_PEEK) == b"hello"
    assert c.recv(5, std.MSG_PEEK) == b"hello"
    assert c.recv(5) == b"hello"
    buf = bytearray(6)
    assert c.recv_into(buf, 0, std.MSG_PEEK) == 6 and buf == b" world"
    assert c.recv(100) == b" world"


def test_send_returns_count_and_empty_send(pair):
    c, s = pair.connected()
    assert c.send(b"") == 0
    n = c.send(b"abc")
    assert n == 3
    assert recv_exactly(s, 3) == b"abc"
    assert c.send(memoryview(b"xyz")[1:]) == 2
    assert recv_exactly(s, 2) == b"yz"


# ============================================================================ blocking semantics

def test_timeout_on_recv_with_no_data(pair):
    c, s = pair.connected()
    c.settimeout(0.2)
    assert c.gettimeout() == 0.2
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        c.recv(10)
    elapsed = time.monotonic() - t0
    assert 0.18 <= elapsed < 0.6, elapsed
    assert isinstance(TimeoutError(), std.timeout)
    # the socket is still usable after a timeout
    s.sendall(b"late")
    assert c.recv(10) == b"late"


def test_nonblocking_recv_raises_eagain(pair):
    c, s = pair.connected()
    c.setblocking(False)
    assert c.getblocking() is False and c.gettimeout() == 0.0
    t0 = time.monotonic()
    with pytest.raises(BlockingIOError) as ei:
        c.recv(10)
    assert ei.value.errno in (errno.EAGAIN, errno.EWOULDBLOCK)
    assert time.monotonic() - t0 < 0.1
    s.sendall(b"now")
    wait_for(lambda: select.select([c], [], [], 0)[0])
    assert c.recv(10) == b"now"
    c.setblocking(True)
    assert c.getblocking() is True and c.gettimeout() is None


def test_recv_dontwait_flag(pair):
    c, s = pair.connected()
    c.settimeout(None)  # with a timeout CPython first polls for POLLIN (and times out), flag or not
    with pytest.raises(BlockingIOError):
        c.recv(10, std.MSG_DONTWAIT)


def test_nonblocking_connect_einprogress_then_connected(pair):
    ls = pair.listener()
    port = ls.getsockname()[1]
    c = pair.client()
    c.setblocking(False)
    with pytest.raises(BlockingIOError) as ei:
        c.connect((B_ADDR, port))
    assert ei.value.errno == errno.EINPROGRESS
    # the standard library idiom: connect_ex again until it stops saying "in progress"
    deadline = time.monotonic() + IO_TIMEOUT
    while True:
        rc = c.connect_ex((B_ADDR, port))
        if rc not in (errno.EINPROGRESS, errno.EALREADY):
            break
        assert time.monotonic() < deadline
        time.sleep(0.005)
    assert rc in (0, errno.EISCONN)
    assert c.getsockopt(std.SOL_SOCKET, std.SO_ERROR) == 0
    assert c.getpeername() == (B_ADDR, port)
    s, _ = ls.accept()
    pair.track(s)
    c.setblocking(True)
    c.sendall(b"ok")
    assert recv_exactly(s, 2) == b"ok"


def test_connect_ex_returns_errno_instead_of_raising(pair):
    c = pair.client()
    assert c.connect_ex((B_ADDR, 9)) == errno.ECONNREFUSED


def test_accept_with_timeout(pair):
    ls = pair.listener()
    ls.settimeout(0.2)
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        ls.accept()
    assert 0.18 <= time.monotonic() - t0 < 0.6
    c = pair.client()
    c.connect((B_ADDR, ls.getsockname()[1]))
    s, peer = ls.accept()
    pair.track(s)
    assert peer == c.getsockname()


def test_a_new_connection_wakes_one_blocked_acceptor_each(pair):
    """inet_csk_wait_for_connect(): accept() sleeps exclusively. Of four threads blocked in
    accept(), one connection wakes one; two connections established in one batch wake two."""
    ls = pair.listener()
    ls.settimeout(IO_TIMEOUT)
    wakes, accepted = [], []
    real_wait = ls._cond.wait

    def counting_wait(timeout=None):
        got = real_wait(timeout)
        wakes.append(threading.get_ident())
        return got
    ls._cond.wait = counting_wait

    def acceptor():
        try:
            s, _ = ls.accept()
        except OSError:
            return
        accepted.append(pair.track(s))
    threads = [threading.Thread(target=acceptor, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.2)                               # all four asleep in accept()
    c = pair.client()
    c.connect((B_ADDR, ls.getsockname()[1]))
    deadline = time.monotonic() + 2
    while not accepted and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    assert len(accepted) == 1 and len(wakes) == 1, wakes   # the other three slept on
    c2, c3 = pair.client(), pair.client()
    c2.setblocking(False)
    c3.setblocking(False)
    with pair.b.lock:  # B's stack thread waits meanwhile: both handshakes complete in the same batch
        for cl in (c2, c3):
            assert cl.connect_ex((B_ADDR, ls.getsockname()[1])) == errno.EINPROGRESS
        time.sleep(0.1)
    deadline = time.monotonic() + 2
    while len(accepted) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(accepted) == 3                     # no connection was left without a woken acceptor
    ls.close()                                    # the last one: woken by the close
    for t in threads:
        t.join(2)


def test_nonblocking_accept_eagain(pair):
    ls = pair.listener()
    ls.setblocking(False)
    with pytest.raises(BlockingIOError):
        ls.accept()


def test_blocking_recv_is_woken_by_data(pair):
    c, s = pair.connected()
    h = in_thread(c.recv, 100)
    time.sleep(0.05)
    s.sendall(b"wake")
    assert h.result() == b"wake"


def test_send_blocks_on_full_window_then_times_out(make_pair):
    """A peer that never reads: send fills both buffers, then blocks, then times out (bounded)."""
    p = make_pair(config_a=fast_config(sndbuf=64 << 10), config_b=fast_config(rcvbuf=64 << 10))
    c, s = p.connected()
    c.settimeout(0.3)
    chunk = b"x" * 65536
    sent = 0
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        for _ in range(100):
            sent += c.send(chunk)
    assert time.monotonic() - t0 < 2.0
    assert 64 << 10 <= sent <= 512 << 10
    # non-blocking: EAGAIN once the buffer is full, without waiting (the timed send waited for POLLOUT,
    # i.e. a third of the buffer free, so up to that much may still be taken now, as on Linux)
    c.setblocking(False)
    t0 = time.monotonic()
    with pytest.raises(BlockingIOError):
        for _ in range(3):
            assert c.send(chunk) < (64 << 10) // 3 + 1
    assert time.monotonic() - t0 < 0.5


# ============================================================================ errors

def test_connect_refused(pair):
    c = pair.client()
    t0 = time.monotonic()
    with pytest.raises(ConnectionRefusedError) as ei:
        c.connect((B_ADDR, 9))
    assert ei.value.errno == errno.ECONNREFUSED
    assert time.monotonic() - t0 < 1.0


def test_reset_when_peer_closes_with_unread_data(pair):
    """RFC 9293 3.10.4 / RFC 2525 2.17: close with unread data sends RST; the peer sees ECONNRESET."""
    c, s = pair.connected()
    c.sendall(b"you will never read this")
    wait_for(lambda: select.select([s], [], [], 0)[0])
    s.close()
    with pytest.raises(ConnectionResetError) as ei:
        c.recv(100)
    assert ei.value.errno == errno.ECONNRESET


def test_send_after_reset_fails(pair):
    c, s = pair.connected()
    c.sendall(b"unread")
    wait_for(lambda: select.select([s], [], [], 0)[0])
    s.close()
    wait_for(lambda: select.select([c], [], [], 0)[0])
    with pytest.raises((ConnectionResetError, BrokenPipeError)):
        for _ in range(3):
            c.send(b"more")


def test_listener_close_resets_connections_not_yet_accepted(pair):
    ls = pair.listener()
    c = pair.client()
    c.connect((B_ADDR, ls.getsockname()[1]))     # completed by the stack, never accepted
    ls.close()
    with pytest.raises(ConnectionResetError):
        c.recv(10)


def test_send_to_a_closed_peer_is_reset(pair):
    """CLOSE_WAIT may still send; the fully closed peer answers with RST; later sends fail."""
    c, s = pair.connected()
    s.close()
    assert c.recv(10) == b""
    with pytest.raises((ConnectionResetError, BrokenPipeError)):
        for _ in range(50):
            c.send(b"anyone there?")
            time.sleep(0.02)


def test_stack_close_wakes_a_blocked_recv(pair):
    c, s = pair.connected()
    h = in_thread(c.recv, 10)
    time.sleep(0.05)
    pair.a.close()
    with pytest.raises(ConnectionAbortedError):  # the stack reset it itself (Linux's tcp_abort: ECONNABORTED)
        h.result(2.0)


def test_nonblocking_connect_refused_reported_by_so_error(pair):
    c = pair.client()
    c.setblocking(False)
    with pytest.raises(BlockingIOError):
        c.connect((B_ADDR, 9))
    # select() reports a socket with a pending error as readable (POLLERR is in its read set)
    assert select.select([c], [], [], IO_TIMEOUT)[0] == [c]
    assert c.getsockopt(std.SOL_SOCKET, std.SO_ERROR) == errno.ECONNREFUSED


def test_so_error_is_cleared_by_reading_it(pair):
    c = pair.client()
    c.setblocking(False)
    with pytest.raises(BlockingIOError):
        c.connect((B_ADDR, 9))
    assert select.select([c], [], [], IO_TIMEOUT)[0] == [c]
    assert c.getsockopt(std.SOL_SOCKET, std.SO_ERROR) == errno.ECONNREFUSED
    assert c.getsockopt(std.SOL_SOCKET, std.SO_ERROR) == 0


def test_nonblocking_connect_refused_seen_by_connect_ex_again(pair):
    """The idiom of test_nonblocking_connect_einprogress_then_connected must not mistake a
    refusal for success."""
    c = pair.client()
    c.setblocking(False)
    assert c.connect_ex((B_ADDR, 9)) == errno.EINPROGRESS
    deadline = time.monotonic() + IO_TIMEOUT
    while (rc := c.connect_ex((B_ADDR, 9))) in (errno.EINPROGRESS, errno.EALREADY):
        assert time.monotonic() < deadline
        time.sleep(0.005)
    assert rc == errno.ECONNREFUSED


def test_connect_to_own_address(pair):
    ls = pair.listener(9000)
    c = pair.client(pair.b)
    c.settimeout(1.0)
    c.connect(("localhost", 9000))
    s, _ = ls.accept()
    pair.track(s)
    c.sendall(b"loop")
    assert recv_exactly(s, 4) == b"loop"


def test_broken_pipe_after_shutdown_wr(pair):
    c, s = pair.connected()
    c.shutdown(std.SHUT_WR)
    with pytest.raises(BrokenPipeError) as ei:
        c.send(b"x")
    assert ei.value.errno == errno.EPIPE
    with pytest.raises(BrokenPipeError):
        c.sendall(b"x")


def test_eof_after_peer_fin(pair):
    c, s = pair.connected()
    s.sendall(b"last words")
    s.close()
    assert recv_until_eof(c) == b"last words"
    assert c.recv(10) == b""          # EOF stays EOF
    assert c.recv_into(bytearray(4)) == 0


def test_connect_timeout_etimedout(make_pair):
    p = make_pair(config_a=fast_config(syn_retries=2, initial_rto=0.1),
                  impair_out_a=Impairment(ImpairSpec.parse("loss=100%"), direction="out"))
    c = p.client()
    t0 = time.monotonic()
    with pytest.raises(TimeoutError) as ei:
        c.connect((B_ADDR, 80))
    elapsed = time.monotonic() - t0
    assert ei.value.errno == errno.ETIMEDOUT, ei.value   # the stack's verdict, not our IO_TIMEOUT
    assert 0.5 <= elapsed < 1.5, elapsed                  # 0.1 + 0.2 + 0.4 s of backoff


def test_data_retransmission_limit_etimedout_on_recv(make_pair):
    p = make_pair(config_a=fast_config(retries2=2, min_rto=0.05))
    c, s = p.connected()
    p.blackhole(p.a, p.b)
    c.sendall(b"into the void")
    t0 = time.monotonic()
    with pytest.raises(TimeoutError) as ei:
        c.recv(10)
    assert ei.value.errno == errno.ETIMEDOUT, ei.value
    assert time.monotonic() - t0 < 1.5


def test_data_retransmission_limit_etimedout_on_send(make_pair):
    p = make_pair(config_a=fast_config(retries2=2, min_rto=0.05))
    c, s = p.connected()
    p.blackhole(p.a, p.b)
    c.sendall(b"into the void")
    t0 = time.monotonic()
    assert select.select([c], [], [], IO_TIMEOUT)[0] == [c]    # the error makes it readable
    assert time.monotonic() - t0 < 1.5
    with pytest.raises(TimeoutError) as ei:
        c.send(b"more")
    assert ei.value.errno == errno.ETIMEDOUT, ei.value


def test_small_writes_do_not_postpone_the_retransmission_timeout(make_pair):
    """RFC 6298 5.1: a running retransmission timer is not restarted by new sends; the RTO of
    the oldest outstanding segment fires on time however often the application writes."""
    p = make_pair(config_a=fast_config(retries2=2, min_rto=0.05))
    c, s = p.connected()
    p.blackhole(p.a, p.b)
    c.sendall(b"into the void")
    t0 = time.monotonic()
    with pytest.raises(OSError) as ei:
        for _ in range(150):             # a 4-byte write every 10 ms, for at most ~1.5 s
            c.send(b"more")
            time.sleep(0.01)
    assert ei.value.errno == errno.ETIMEDOUT, ei.value
    assert time.monotonic() - t0 < 1.0


def test_keepalive_detects_dead_peer(make_pair):
    """SO_KEEPALIVE on an idle connection whose peer vanished: ETIMEDOUT after idle + cnt * intvl."""
    cfg = fast_config(keepalive_idle=0.2, keepalive_interval=0.1, keepalive_count=2)
    p = make_pair(config_a=cfg)
    c, s = p.connected()
    c.setsockopt(std.SOL_SOCKET, std.SO_KEEPALIVE, 1)
    assert c.getsockopt(std.SOL_SOCKET, std.SO_KEEPALIVE) == 1
    p.blackhole(p.a, p.b)
    t0 = time.monotonic()
    with pytest.raises(TimeoutError) as ei:
        c.recv(10)
    elapsed = time.monotonic() - t0
    assert ei.value.errno == errno.ETIMEDOUT, ei.value
    assert 0.35 <= elapsed < 1.2, elapsed
    assert len(p.trace_a.of("keepalive_probe")) == 2


def test_keepalive_probes_answered_keep_connection(make_pair):
    cfg = fast_config(keepalive_idle=0.1, keepalive_interval=0.05, keepalive_count=2)
    p = make_pair(config_a=cfg)
    c, s = p.connected()
    c.setsockopt(std.SOL_SOCKET, std.SO_KEEPALIVE, 1)
    c.settimeout(0.6)
    with pytest.raises(TimeoutError) as ei:   # our timeout, not the stack's: the peer answers
        c.recv(10)
    assert ei.value.errno in (None, 0), ei.value
    assert c.info()["state"] == "ESTABLISHED"
    assert len(p.trace_a.of("keepalive_probe")) >= 3    # probes went out and were answered
    s.sendall(b"alive")
    assert c.recv(10) == b"alive"


def test_keepalive_options_by_setsockopt(pair):
    """TCP_KEEPIDLE/KEEPINTVL/KEEPCNT: what is set is what getsockopt reads back."""
    c, s = pair.connected()
    for opt, value in ((std.TCP_KEEPIDLE, 3), (std.TCP_KEEPINTVL, 2), (std.TCP_KEEPCNT, 4)):
        c.setsockopt(std.IPPROTO_TCP, opt, value)
        assert c.getsockopt(std.IPPROTO_TCP, opt) == value


def test_keepalive_options_reject_nonpositive(pair):
    c, s = pair.connected()
    for opt in (std.TCP_KEEPIDLE, std.TCP_KEEPINTVL, std.TCP_KEEPCNT):
        with pytest.raises(OSError) as ei:
            c.setsockopt(std.IPPROTO_TCP, opt, 0)
        assert ei.value.errno == errno.EINVAL


def test_keepalive_count_by_setsockopt_overrides_config(make_pair):
    """TCP_KEEPCNT=1 on the socket wins over the stack's default of 5 probes."""
    p = make_pair(config_a=fast_config(keepalive_idle=0.2, keepalive_interval=0.1, keepalive_count=5))
    c, s = p.connected()
    c.setsockopt(std.IPPROTO_TCP, std.TCP_KEEPCNT, 1)
    c.setsockopt(std.SOL_SOCKET, std.SO_KEEPALIVE, 1)
    p.blackhole(p.a, p.b)
    t0 = time.monotonic()
    with pytest.raises(TimeoutError) as ei:
        c.recv(10)
    elapsed = time.monotonic() - t0
    assert ei.value.errno == errno.ETIMEDOUT, ei.value
    assert 0.25 <= elapsed < 0.6, elapsed              # idle 0.2 + one probe interval 0.1
    assert len(p.trace_a.of("keepalive_probe")) == 1


def test_keepalive_idle_by_setsockopt_overrides_config(make_pair):
    """TCP_KEEPIDLE=1 (whole seconds, as in Linux) wins over a 0.1 s stack default: no probe at 0.5 s."""
    p = make_pair(config_a=fast_config(keepalive_idle=0.1, keepalive_interval=0.05))
    c, s = p.connected()
    c.setsockopt(std.IPPROTO_TCP, std.TCP_KEEPIDLE, 1)
    c.setsockopt(std.SOL_SOCKET, std.SO_KEEPALIVE, 1)
    time.sleep(0.5)
    assert p.trace_a.of("keepalive_probe") == []
    c.setsockopt(std.SOL_SOCKET, std.SO_KEEPALIVE, 0)


def test_listen_twice_on_a_port_eaddrinuse(pair):
    pair.listener(8080)
    other = pair.track(pair.b.socket())
    with pytest.raises(OSError) as ei:
        other.bind(("", 8080))
        other.listen()
    assert ei.value.errno == errno.EADDRINUSE
    specific = pair.track(pair.b.socket())
    with pytest.raises(OSError) as ei:
        specific.bind((B_ADDR, 8080))
        specific.listen()
    assert ei.value.errno == errno.EADDRINUSE


def test_bind_twice_without_listen_eaddrinuse(pair):
    """Linux: a second bind() to a port another socket holds fails at bind() (no SO_REUSEADDR)."""
    first = pair.track(pair.b.socket())
    first.bind(("", 8081))
    second = pair.track(pair.b.socket())
    with pytest.raises(OSError) as ei:
        second.bind(("", 8081))
    assert ei.value.errno == errno.EADDRINUSE


def test_bind_same_socket_twice_einval(pair):
    s = pair.track(pair.b.socket())
    s.bind(("", 8082))
    with pytest.raises(OSError) as ei:
        s.bind(("", 8083))
    assert ei.value.errno == errno.EINVAL


def test_bind_foreign_address_eaddrnotavail(pair):
    s = pair.track(pair.b.socket())
    with pytest.raises(OSError) as ei:
        s.bind(("203.0.113.9", 80))
    assert ei.value.errno == errno.EADDRNOTAVAIL


def test_port_free_again_after_listener_closed(pair):
    ls = pair.listener(8084)
    ls.close()
    again = pair.listener(8084)
    assert again.getsockname() == ("0.0.0.0", 8084)


def test_recv_send_on_unconnected_socket_enotconn(pair):
    s = pair.track(pair.a.socket())
    for call in (lambda: s.recv(1), lambda: s.getpeername(), lambda: s.shutdown(std.SHUT_RDWR)):
        with pytest.raises(OSError) as ei:
            call()
        assert ei.value.errno == errno.ENOTCONN
    with pytest.raises(BrokenPipeError):  # tcp_sendmsg(): sk_stream_wait_connect() on a CLOSE socket is EPIPE
        s.send(b"x")


def test_operations_after_close_ebadf(pair):
    c, s = pair.connected()
    c.close()
    assert c.fileno() == -1
    for call in (lambda: c.recv(1), lambda: c.send(b"x"), lambda: c.connect((B_ADDR, 1)),
                 lambda: c.bind(("", 0)), lambda: c.listen()):
        with pytest.raises(OSError) as ei:
            call()
        assert ei.value.errno == errno.EBADF
    c.close()    # closing twice is harmless


def test_close_wakes_a_blocked_accept(pair):
    ls = pair.listener()
    h = in_thread(ls.accept)
    time.sleep(0.05)
    ls.close()
    with pytest.raises(OSError):
        h.result()


def test_address_errors_like_the_standard_library(pair):
    c = pair.client()
    with pytest.raises(OverflowError):
        c.connect((B_ADDR, 70000))
    with pytest.raises(TypeError):
        c.connect(B_ADDR)
    with pytest.raises(std.gaierror):
        c.connect(("no.such.host.invalid", 80))
    with pytest.raises(OSError):
        pair.a.socket(std.AF_INET, std.SOCK_RAW)


# ============================================================================ options

def test_tcp_congestion_option(pair):
    ls = pair.listener()
    c = pair.client()
    c.setsockopt(std.IPPROTO_TCP, std.TCP_CONGESTION, b"reno")
    assert c.getsockopt(std.IPPROTO_TCP, std.TCP_CONGESTION, 16).rstrip(b"\0") == b"reno"
    c.connect((B_ADDR, ls.getsockname()[1]))
    s, _ = ls.accept()
    pair.track(s)
    assert c.getsockopt(std.IPPROTO_TCP, std.TCP_CONGESTION, 16).rstrip(b"\0") == b"reno"
    assert c.info()["cc"] == "reno"
    c.setsockopt(std.IPPROTO_TCP, std.TCP_CONGESTION, b"cubic")
    assert c.getsockopt(std.IPPROTO_TCP, std.TCP_CONGESTION, 16).rstrip(b"\0") == b"cubic"
    with pytest.raises(OSError) as ei:
        c.setsockopt(std.IPPROTO_TCP, std.TCP_CONGESTION, b"bogus")
    assert ei.value.errno == errno.ENOENT
    assert c.getsockopt(std.IPPROTO_TCP, std.TCP_CONGESTION, 16).rstrip(b"\0") == b"cubic"
    c.sendall(b"still works")
    assert recv_exactly(s, 11) == b"still works"


def test_tcp_nodelay(pair):
    c, s = pair.connected()
    assert not c.getsockopt(std.IPPROTO_TCP, std.TCP_NODELAY)
    c.setsockopt(std.IPPROTO_TCP, std.TCP_NODELAY, 1)
    assert c.getsockopt(std.IPPROTO_TCP, std.TCP_NODELAY)
    c.setsockopt(std.IPPROTO_TCP, std.TCP_NODELAY, True)
    # small writes go out at once: each arrives without waiting for an ACK
    for i in range(20):
        c.send(b"%02d" % i)
        assert recv_exactly(s, 2) == b"%02d" % i
    c.setsockopt(std.IPPROTO_TCP, std.TCP_NODELAY, 0)
    assert not c.getsockopt(std.IPPROTO_TCP, std.TCP_NODELAY)


def test_buffer_sizes_readable_on_connected_socket(pair):
    c, s = pair.connected()
    for sock in (c, s):
        assert sock.getsockopt(std.SOL_SOCKET, std.SO_RCVBUF) > 0
        assert sock.getsockopt(std.SOL_SOCKET, std.SO_SNDBUF) > 0


def test_buffer_sizes_readable_before_connect(pair):
    """Linux reports the default buffer sizes on a fresh socket, not 0."""
    c = pair.client()
    assert c.getsockopt(std.SOL_SOCKET, std.SO_RCVBUF) > 0
    assert c.getsockopt(std.SOL_SOCKET, std.SO_SNDBUF) > 0


def test_rcvbuf_set_before_connect_is_used(pair):
    ls = pair.listener()
    c = pair.client()
    c.setsockopt(std.SOL_SOCKET, std.SO_RCVBUF, 32768)
    c.connect((B_ADDR, ls.getsockname()[1]))
    pair.track(ls.accept()[0])
    assert 32768 <= c.getsockopt(std.SOL_SOCKET, std.SO_RCVBUF) <= 2 * 32768


def test_so_error_and_reuseaddr(pair):
    s = pair.track(pair.b.socket())
    assert s.getsockopt(std.SOL_SOCKET, std.SO_ERROR) == 0
    s.setsockopt(std.SOL_SOCKET, std.SO_REUSEADDR, 1)
    assert s.getsockopt(std.SOL_SOCKET, std.SO_REUSEADDR) == 1


def test_accepted_socket_inherits_nodelay(pair):
    ls = pair.listener()
    ls.setsockopt(std.IPPROTO_TCP, std.TCP_NODELAY, 1)
    c = pair.client()
    c.connect((B_ADDR, ls.getsockname()[1]))
    s, _ = ls.accept()
    pair.track(s)
    assert s.getsockopt(std.IPPROTO_TCP, std.TCP_NODELAY)


# ============================================================================ readiness

def test_select_listening_socket_readable_when_connection_pending(pair):
    ls = pair.listener()
    assert select.select([ls], [], [], 0.05) == ([], [], [])
    c = pair.client()
    c.connect((B_ADDR, ls.getsockname()[1]))
    r, _, _ = select.select([ls], [], [], IO_TIMEOUT)
    assert r == [ls]
    s, _ = ls.accept()
    pair.track(s)
    assert select.select([ls], [], [], 0) == ([], [], [])   # nothing pending any more


def test_select_connected_socket_readable_on_data_and_eof(pair):
    c, s = pair.connected()
    assert select.select([c], [], [], 0.05)[0] == []
    s.sendall(b"data")
    assert select.select([c], [], [], IO_TIMEOUT)[0] == [c]
    assert c.recv(10) == b"data"
    assert select.select([c], [], [], 0)[0] == []          # drained: not readable again
    s.shutdown(std.SHUT_WR)
    assert select.select([c], [], [], IO_TIMEOUT)[0] == [c]
    assert c.recv(10) == b""
    assert select.select([c], [], [], 0)[0] == [c]         # EOF stays readable


def test_select_readable_on_reset(pair):
    c, s = pair.connected()
    c.sendall(b"unread")
    wait_for(lambda: select.select([s], [], [], 0)[0])
    s.close()
    assert select.select([c], [], [], IO_TIMEOUT)[0] == [c]
    with pytest.raises(ConnectionResetError):
        c.recv(1)


def test_selectors_default_selector(pair):
    import selectors
    c, s = pair.connected()
    with selectors.DefaultSelector() as sel:
        sel.register(c, selectors.EVENT_READ, "client")
        assert sel.select(0.05) == []
        s.sendall(b"x")
        events = sel.select(IO_TIMEOUT)
        assert [(key.data, mask) for key, mask in events] == [("client", selectors.EVENT_READ)]


# ============================================================================ the standard library on top

class StackHTTPConnection(http.client.HTTPConnection):
    """http.client over a tunstack socket: only connect() changes."""

    connects = 0

    def __init__(self, stack, host, port, **kw):
        super().__init__(host, port, **kw)
        self._stack = stack

    def connect(self):
        type(self).connects += 1
        self.sock = self._stack.socket()
        self.sock.settimeout(self.timeout if isinstance(self.timeout, (int, float)) else IO_TIMEOUT)
        self.sock.connect((self.host, self.port))


@pytest.fixture
def web_root(tmp_path):
    (tmp_path / "hello.txt").write_bytes(b"hello over tunstack\n")
    (tmp_path / "big.bin").write_bytes(os.urandom(300_000))
    return tmp_path


def test_http_client_keepalive_two_requests(pair, web_root):
    server = http_server(pair.b, 8080, str(web_root), quiet=True)
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        StackHTTPConnection.connects = 0
        conn = StackHTTPConnection(pair.a, B_ADDR, 8080, timeout=IO_TIMEOUT)
        conn.request("GET", "/hello.txt")
        r = conn.getresponse()
        assert r.status == 200
        assert r.read() == b"hello over tunstack\n"
        assert r.getheader("Content-Length") == "20"
        first_sock = conn.sock
        conn.request("GET", "/big.bin")
        r = conn.getresponse()
        body = r.read()
        assert r.status == 200
        assert body == (web_root / "big.bin").read_bytes()
        assert conn.sock is first_sock and StackHTTPConnection.connects == 1   # kept alive
        conn.close()
    finally:
        server.shutdown()
        server.server_close()
        t.join(IO_TIMEOUT)


def test_http_client_connection_close_response(pair):
    """A response that ends the connection ("Connection: close", as http.server's error pages
    send): http.client closes its socket at once and reads the body through the response's file.
    The server here sends the headers, waits until getresponse() has returned, then the body."""
    ls = pair.listener(8080)
    body = os.urandom(100_000)
    headers_read = threading.Event()

    def server():
        s, _ = ls.accept()
        s.settimeout(IO_TIMEOUT)
        with s:
            request = b""
            while b"\r\n\r\n" not in request:
                request += s.recv(4096)
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body))
            assert headers_read.wait(IO_TIMEOUT)
            s.sendall(body)

    h = in_thread(server)
    conn = StackHTTPConnection(pair.a, B_ADDR, 8080, timeout=IO_TIMEOUT)
    conn.request("GET", "/")
    r = conn.getresponse()
    headers_read.set()
    assert r.status == 200 and r.will_close
    assert r.read() == body
    h.result()


def test_socketserver_echo(pair):
    server = echo_server(pair.b, 7, quiet=True)
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        clients = []
        for i in range(3):                 # concurrent connections, each its own handler
            c = pair.client()
            c.connect((B_ADDR, 7))
            clients.append(c)
        payloads = [os.urandom(100_000) for _ in clients]
        for c, data in zip(clients, payloads):
            c.sendall(data)
        for c, data in zip(clients, payloads):
            assert recv_exactly(c, len(data)) == data
            c.shutdown(std.SHUT_WR)
            assert c.recv(10) == b""       # echo server closes after our EOF
    finally:
        server.shutdown()
        server.server_close()
        t.join(IO_TIMEOUT)


# ============================================================================ half-close

def test_half_close_other_side_still_sends(make_pair):
    # the reply is sent before the client reads: fixed 1 MiB buffers hold it (autotuned ones start small)
    bufs = dict(rcvbuf=1 << 20, sndbuf=1 << 20)
    pair = make_pair(config_a=fast_config(**bufs), config_b=fast_config(**bufs))
    c, s = pair.connected()
    c.sendall(b"request")
    c.shutdown(std.SHUT_WR)
    assert recv_until_eof(s) == b"request"
    reply = os.urandom(200_000)
    s.sendall(reply)
    s.close()
    assert recv_until_eof(c) == reply


def test_shutdown_rd_makes_recv_return_eof(pair):
    c, s = pair.connected()
    c.shutdown(std.SHUT_RD)
    assert c.recv(10) == b""
    c.sendall(b"writes still work")
    assert recv_exactly(s, 17) == b"writes still work"


# ============================================================================ urgent data

def test_urgent_data_is_delivered_inline(pair):
    """RFC 6093 (and SO_OOBINLINE): the octets of a segment with URG arrive in the normal stream.

    Our socket API has no MSG_OOB, so the peer is played by hand: scapy segments written
    straight into B's link (stack A is stopped first so that it does not answer them)."""
    ls = pair.listener(7000)
    pair.a.close()                                   # we are the peer now, on link A
    link = pair.link_a

    pending: list = []       # segments read from the link, not yet looked at

    def read_segment(want_flags: str, timeout: float = IO_TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            while pending:
                seg = pending.pop(0)
                if set(want_flags) <= set(str(seg.flags)):
                    return seg
            assert time.monotonic() < deadline, f"no {want_flags} segment from the stack"
            if select.select([link.fileno()], [], [], 0.05)[0]:
                pending.extend(IP(raw)[TCP] for raw in link.read_batch() if TCP in IP(raw))

    sport, isn = 40001, 100000
    ip = IP(src=A_ADDR, dst=B_ADDR)
    link.write(bytes(ip / TCP(sport=sport, dport=7000, seq=isn, flags="S", window=65535,
                               options=[("MSS", 1460)])))
    synack = read_segment("SA")
    their = synack.seq + 1
    link.write(bytes(ip / TCP(sport=sport, dport=7000, seq=isn + 1, ack=their, flags="A", window=65535)))
    s, _ = ls.accept()
    pair.track(s)
    s.settimeout(IO_TIMEOUT)
    link.write(bytes(ip / TCP(sport=sport, dport=7000, seq=isn + 1, ack=their, flags="PA", window=65535)
                     / b"normal-"))
    link.write(bytes(ip / TCP(sport=sport, dport=7000, seq=isn + 8, ack=their, flags="PAU", urgptr=3,
                               window=65535) / b"URG"))
    link.write(bytes(ip / TCP(sport=sport, dport=7000, seq=isn + 11, ack=their, flags="PA", window=65535)
                     / b"-after"))
    assert recv_exactly(s, 16) == b"normal-URG-after"
    deadline = time.monotonic() + IO_TIMEOUT
    while read_segment("A").ack != isn + 17:     # every octet, the urgent ones included, is acknowledged
        assert time.monotonic() < deadline


# ============================================================================ crash isolation, wake-up order
def _fail_for(conn_of, method: str, monkeypatch):
    """Make ``Connection.<method>`` raise for the one connection ``conn_of()`` names; count the faults."""
    from stack.tcp.connection import Connection
    original = getattr(Connection, method)
    faults = []

    def faulty(self, *args, **kw):
        if self is conn_of():
            faults.append(method)
            raise RuntimeError(f"injected fault in {method}")
        return original(self, *args, **kw)

    monkeypatch.setattr(Connection, method, faulty)
    return faults


def _still_serves(pair) -> None:
    """The stack thread survived: a fresh connection carries data both ways."""
    c, s = pair.connected()
    c.sendall(b"after the fault")
    assert recv_exactly(s, 15) == b"after the fault"
    s.sendall(b"ok")
    assert recv_exactly(c, 2) == b"ok"


def test_fault_in_segment_processing_resets_only_that_connection(pair, monkeypatch, caplog):
    """Issue 12: an exception while processing one segment is logged once (with the connection), counted
    (tcp:internal_error) and that connection is reset (the peer sees a RST); the stack thread lives on."""
    c, s = pair.connected()
    faults = _fail_for(lambda: s._conn, "segment_arrives", monkeypatch)
    with caplog.at_level("ERROR", logger="stack.tcp.layer"):
        c.sendall(b"boom")
        with pytest.raises(ConnectionResetError):
            recv_exactly(c, 1)                    # the RST of the reset connection
        with pytest.raises(ConnectionResetError):
            s.recv(10)                            # and its own socket is told
    assert faults == ["segment_arrives"]
    assert pair.b.stats()["tcp:internal_error"] == 1
    records = [r for r in caplog.records if "internal error" in r.getMessage()]
    assert len(records) == 1 and f":{c.getsockname()[1]}" in records[0].getMessage()
    assert pair.b.loop_error is None and pair.b._thread.is_alive()
    _still_serves(pair)


def test_fault_in_a_timer_resets_only_that_connection(pair, monkeypatch):
    """Issue 12: the same for a connection's timer (here B's delayed-ACK timer)."""
    c, s = pair.connected()
    faults = _fail_for(lambda: s._conn, "on_timer", monkeypatch)
    c.sendall(b"x")                               # one small segment: B arms its delayed ACK
    with pytest.raises(ConnectionResetError):
        recv_exactly(c, 1)
    assert faults == ["on_timer"]
    assert pair.b.stats()["tcp:internal_error"] == 1
    assert pair.b._thread.is_alive()
    _still_serves(pair)


def test_wakeups_are_delivered_after_segment_processing_not_in_its_middle(pair, monkeypatch):
    """Issue 13: conn.notify only queues; socket and epoll wake-ups run once the segment is processed."""
    from stack.tcp.connection import Connection
    inside = []
    original = Connection.segment_arrives

    def tracked(self, seg, now):
        inside.append(True)
        try:
            return original(self, seg, now)
        finally:
            inside.pop()

    monkeypatch.setattr(Connection, "segment_arrives", tracked)
    c, s = pair.connected()
    seen = []
    with pair.b.lock:
        s._watchers.append(lambda sock, key: seen.append((bool(inside), sock.poll_events())))
    c.sendall(b"data")
    c.shutdown(std.SHUT_WR)
    assert recv_until_eof(s) == b"data"
    wait_for(lambda: any(ev & select.EPOLLRDHUP for _, ev in seen))
    assert seen and not any(mid for mid, _ in seen), seen


def test_stack_offers_the_socket_modules_helpers(pair):
    """st.create_server / st.create_connection / st.getaddrinfo (stack.netapi, registered on Stack)."""
    srv = pair.track(pair.b.create_server(("", 0)))
    port = srv.getsockname()[1]
    assert srv.getsockopt(std.SOL_SOCKET, std.SO_REUSEADDR) == 1
    c = pair.track(pair.a.create_connection((B_ADDR, port), timeout=5))
    s, _ = srv.accept()
    pair.track(s)
    c.sendall(b"hi")
    assert s.recv(2) == b"hi"
    assert pair.a.getaddrinfo("localhost", 80, type=std.SOCK_STREAM)[0][4] == (A_ADDR, 80)
    assert pair.a.gethostbyname("tunstack") == A_ADDR


def _accepted_for(pair, setup):
    """A client on A with ``setup(client)`` before connect(); (client, the accepted socket on B)."""
    ls = pair.listener()
    c = pair.client()
    setup(c)
    c.connect((B_ADDR, ls.getsockname()[1]))
    s, _ = ls.accept()
    return c, pair.track(s)


def test_so_rcvbuf_before_connect_sizes_the_window_the_peer_sees(pair):
    c, s = _accepted_for(pair, lambda c: c.setsockopt(std.SOL_SOCKET, std.SO_RCVBUF, 16384))
    assert c.getsockopt(std.SOL_SOCKET, std.SO_RCVBUF) == 32768   # Linux's doubled read-back
    assert 0 < s.info()["snd_wnd"] <= 16384                          # the window: the 16 KiB asked for


def test_listener_so_rcvbuf_sizes_the_syn_ack_window_of_its_connections(pair):
    """Set on a listening socket, SO_RCVBUF reaches its connections from the SYN on (Linux children
    inherit sk_rcvbuf and SOCK_RCVBUF_LOCK): the client's first view of the window is the 8 KiB asked
    for, the accepted socket's buffer is fixed (no autotuning) and reads back doubled."""
    ls = pair.listener()
    ls.setsockopt(std.SOL_SOCKET, std.SO_RCVBUF, 8192)
    ls.setsockopt(std.SOL_SOCKET, std.SO_SNDBUF, 30000)
    c = pair.client()
    c.connect((B_ADDR, ls.getsockname()[1]))
    s, _ = ls.accept()
    pair.track(s)
    assert c.info()["snd_wnd"] == 8192                     # the SYN-ACK's window: the listener's buffer
    assert s.getsockopt(std.SOL_SOCKET, std.SO_RCVBUF) == 16384
    assert (s._conn.rcvbuf_cap, s._conn.rcvbuf_locked) == (8192, True)
    assert (s._conn.sndbuf_cap, s._conn.sndbuf_locked) == (30000, True)


def test_tcp_maxseg_before_connect_clamps_the_mss_of_both_sides(pair):
    c, s = _accepted_for(pair, lambda c: c.setsockopt(std.IPPROTO_TCP, std.TCP_MAXSEG, 600))
    assert 0 < c.getsockopt(std.IPPROTO_TCP, std.TCP_MAXSEG) <= 600
    assert 0 < s.info()["mss"] <= 600  # our SYN announced 600


def test_so_linger_zero_close_resets_and_frees_at_once(pair):
    c, s = pair.connected()
    c.setsockopt(std.SOL_SOCKET, std.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()
    with pytest.raises(ConnectionResetError):
        s.recv(10)
    assert all(info["state"] != "TIME_WAIT" for info in pair.a.connections())


def test_sndbuf_low_water_mark_decides_writability(make_pair):
    """POLLOUT while free space >= half the queued bytes (sk_stream_is_writeable)."""
    pair = make_pair(config_b=fast_config(rcvbuf=64 << 10))  # the peer's window fills soon
    c, s = pair.connected()
    c.setsockopt(std.SOL_SOCKET, std.SO_SNDBUF, 30000)  # 30000 bytes of payload, read back 60000
    c.setblocking(False)
    sent, idle = 0, 0
    deadline = time.monotonic() + 10
    while idle < 3 and time.monotonic() < deadline:  # until the peer's window and our buffer stay full
        try:
            sent += c.send(b"x" * 4096)
            idle = 0
        except BlockingIOError:
            idle += 1
            time.sleep(0.05)
    assert idle == 3
    assert not select.select([], [c], [], 0)[1]
    s.settimeout(IO_TIMEOUT)
    got = 0
    while not select.select([], [c], [], 0.01)[1]:
        got += len(s.recv(4096))
        assert got <= sent
    queued = len(c._conn.sndbuf)
    assert 30000 - queued >= queued >> 1


# ============================================================================ options in the packets: scapy reads them
class ScapyPeer:
    """Stack A stopped: the test plays A on its link, crafting with scapy and reading B's packets with scapy."""

    def __init__(self, pair):
        pair.a.close()
        self.link = pair.link_a
        self.pending: list = []
        self.ip = IP(src=A_ADDR, dst=B_ADDR)

    def read(self, want_flags: str, timeout: float = IO_TIMEOUT):
        """The next IP packet from B whose TCP flags include ``want_flags`` (scapy's parse)."""
        deadline = time.monotonic() + timeout
        while True:
            while self.pending:
                pkt = self.pending.pop(0)
                if set(want_flags) <= set(str(pkt[TCP].flags)):
                    return pkt
            assert time.monotonic() < deadline, f"no {want_flags} segment from the stack"
            if select.select([self.link.fileno()], [], [], 0.05)[0]:
                self.pending.extend(p for p in map(IP, self.link.read_batch()) if TCP in p)

    def write(self, tcp) -> None:
        self.link.write(bytes(self.ip / tcp))

    def connect(self, port: int, sport: int = 40002, isn: int = 100000, mss: int = 1460):
        """SYN (MSS ``mss``) to B:port; returns B's SYN-ACK after completing the handshake."""
        self.write(TCP(sport=sport, dport=port, seq=isn, flags="S", window=65535, options=[("MSS", mss)]))
        synack = self.read("SA")
        self.write(TCP(sport=sport, dport=port, seq=isn + 1, ack=synack.seq + 1, flags="A", window=65535))
        return synack


def _checksums_right(pkt) -> bool:
    """scapy recomputes both checksums: they equal what the stack wrote."""
    again = IP(bytes(pkt))
    del again.chksum
    del again[TCP].chksum
    again = IP(bytes(again))
    return (again.chksum, again[TCP].chksum) == (pkt.chksum, pkt[TCP].chksum)


def test_listener_maxseg_clamps_the_syn_ack_mss_and_the_segments(pair):
    """TCP_MAXSEG on a listener (Linux: the request socket takes the listener's user_mss): the SYN-ACK
    announces it, and the accepted connection sends segments no larger, although the peer offers 1460."""
    ls = pair.listener(7001)
    ls.setsockopt(std.IPPROTO_TCP, std.TCP_MAXSEG, 600)
    peer = ScapyPeer(pair)
    synack = peer.connect(7001)
    assert dict(synack[TCP].options)["MSS"] == 600
    s, _ = ls.accept()
    pair.track(s)
    assert s.getsockopt(std.IPPROTO_TCP, std.TCP_MAXSEG) <= 600
    s.send(bytes(1200))  # two full segments (a third, short one would wait for an ACK: Nagle)
    sizes: dict[int, int] = {}  # seq -> length (a retransmission repeats a seq: nothing is acknowledged)
    while sum(sizes.values()) < 1200:
        seg = peer.read("A")[TCP]
        sizes[seg.seq] = len(seg.payload)
    assert list(sizes.values()) == [600, 600]


def test_listener_without_maxseg_announces_the_mtu_mss(pair):
    """The control: no TCP_MAXSEG, the SYN-ACK announces MTU - 40 = 1460."""
    pair.listener(7002)
    peer = ScapyPeer(pair)
    synack = peer.connect(7002)
    assert dict(synack[TCP].options)["MSS"] == 1460
    assert (synack.ttl, synack.tos) == (64, 0)


def test_ip_ttl_and_tos_of_a_listener_are_on_its_syn_ack_and_the_accepted_connection(pair):
    """RFC 1122 3.2.1.6 / 3.2.1.7 (IP_TOS, IP_TTL): set on the listener, the SYN-ACK and every later packet
    of the accepted connection carry them (TOS with its ECN bits cleared, as Linux for TCP), checksums right."""
    ls = pair.listener(7003)
    ls.setsockopt(std.IPPROTO_IP, std.IP_TTL, 7)
    ls.setsockopt(std.IPPROTO_IP, std.IP_TOS, 0xB9)
    peer = ScapyPeer(pair)
    synack = peer.connect(7003)
    assert (synack.ttl, synack.tos) == (7, 0xB8) and _checksums_right(synack)
    s, _ = ls.accept()
    pair.track(s)
    assert (s.getsockopt(std.IPPROTO_IP, std.IP_TTL), s.getsockopt(std.IPPROTO_IP, std.IP_TOS)) == (7, 0xB8)
    s.send(b"hello")
    data = peer.read("PA")
    assert (data.ttl, data.tos) == (7, 0xB8) and bytes(data[TCP].payload) == b"hello" and _checksums_right(data)


def test_ip_ttl_set_on_a_connection_changes_its_next_packets(pair):
    """IP_TTL and IP_TOS set on an established connection apply from its next packet (RFC 1122's SHLD-21);
    IP_TTL -1 restores the default 64."""
    ls = pair.listener(7004)
    peer = ScapyPeer(pair)
    peer.connect(7004)
    s, _ = ls.accept()
    pair.track(s)
    s.send(b"a")
    assert peer.read("PA").ttl == 64
    s.setsockopt(std.IPPROTO_IP, std.IP_TTL, 200)
    s.send(b"b")
    pkt = peer.read("PA")
    assert pkt.ttl == 200 and pkt.tos == 0 and _checksums_right(pkt)
    s.setsockopt(std.IPPROTO_IP, std.IP_TOS, 0x28)
    s.setsockopt(std.IPPROTO_IP, std.IP_TTL, -1)
    s.send(b"c")
    pkt = peer.read("PA")
    assert (pkt.ttl, pkt.tos) == (64, 0x28) and _checksums_right(pkt)


def test_ip_tos_on_a_connecting_socket_is_on_its_syn(pair):
    """IP_TOS / IP_TTL set before connect(): the SYN already carries them."""
    peer = ScapyPeer(pair)
    c = pair.client(pair.b)
    c.setsockopt(std.IPPROTO_IP, std.IP_TOS, 0x10)
    c.setsockopt(std.IPPROTO_IP, std.IP_TTL, 33)
    c.setblocking(False)
    assert c.connect_ex((A_ADDR, 7005)) == errno.EINPROGRESS
    syn = peer.read("S")
    assert (syn.ttl, syn.tos) == (33, 0x10) and _checksums_right(syn)


def test_sendfile_pieces_leave_only_full_sized_segments(pair, tmp_path):
    """sendfile() queues the file in pieces cut to whole segments (Linux's size_goal): with
    TCP_NODELAY each piece goes out at once, and no piece ends in a sub-MSS runt; the only short
    data segments are the file's own tail (a write()-sized loop leaves one per write)."""
    import io
    from stack.pcap import PcapWriter
    body = os.urandom(3_000_000)
    ls = pair.listener()
    c = pair.client()
    # a receive buffer for the whole body: the window never closes, so no persist probe (new data
    # of one octet) can shift the segments however slowly the reading thread runs
    c.setsockopt(std.SOL_SOCKET, std.SO_RCVBUF, 4 << 20)
    c.connect((B_ADDR, ls.getsockname()[1]))
    s, _ = ls.accept()
    pair.track(s)
    s.settimeout(IO_TIMEOUT)
    s.setsockopt(std.IPPROTO_TCP, std.TCP_NODELAY, 1)
    s.setsockopt(std.SOL_SOCKET, std.SO_SNDBUF, 50_000)  # its free room is no whole number of segments
    f = tmp_path / "f"
    f.write_bytes(body)
    capture = io.BytesIO()
    with pair.b.lock:
        pair.b.pcap = PcapWriter(capture)
    got = in_thread(lambda: recv_exactly(c, len(body)))
    with open(f, "rb") as fh:
        assert s.sendfile(fh) == len(body)
    assert got.result() == body
    mss = s._conn.eff_mss
    segments = {}  # seq -> length: a retransmission (a slow reading thread, an RTO) counted once
    for pkt in _pcap_packets(capture.getvalue()):
        tcp = IP(pkt)[TCP]
        if tcp.sport == s.getsockname()[1] and len(tcp.payload):
            segments[tcp.seq] = max(segments.get(tcp.seq, 0), len(tcp.payload))
    assert sum(segments.values()) == len(body)
    short = [n for n in segments.values() if n < mss]
    # the file's tail, split at most once when the buffer had no room for all of it; a loop of
    # room-sized writes leaves a runt per write (60 here)
    assert len(short) <= 2 and sum(short) % mss == len(body) % mss, short


def _pcap_packets(raw: bytes) -> list[bytes]:
    """The packets of a raw-IP pcap (stack.pcap.PcapWriter's format)."""
    out, off = [], 24
    while off < len(raw):
        _, _, incl, _ = struct.unpack_from("<IIII", raw, off)
        out.append(raw[off + 16:off + 16 + incl])
        off += 16 + incl
    return out
