"""stack.iomux: select and poll over tunstack sockets, with the standard library's semantics and
Linux's O(n) scan (every call walks every socket; an idle call hangs one wait-queue entry on each).

Two real-time stacks joined by an in-memory socketpair link (no TUN), as tests/test_epoll.py;
every wait is bounded.
"""
from __future__ import annotations

import errno
import select
import selectors
import socket
import threading
import time

import pytest

from stack import iomux
from stack.iomux import (POLLERR, POLLHUP, POLLIN, POLLNVAL, POLLOUT, POLLPRI, POLLRDHUP, POLLRDNORM,
                         POLLWRNORM)
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


def _pairs(a, b, n=1, port=7000):
    """n connected (client socket on a, accepted socket on b)."""
    lst = b.socket()
    lst.bind(("", port))
    lst.listen(n + 1)
    lst.settimeout(5)
    out = []
    for _ in range(n):
        c = a.socket()
        c.settimeout(5)
        c.connect(("192.0.2.2", port))
        s, _ = lst.accept()
        s.settimeout(5)
        out.append((c, s))
    lst.close()
    return out


def _until(cond, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(0.005)


def _in_background(fn, *args):
    box = {}
    t = threading.Thread(target=lambda: box.setdefault("result", fn(*args)), name="selector")
    t.start()
    return t, box


def _pollwakes(sock):
    return [cb for cb in sock._watchers if cb.__name__ == "pollwake"]


# ------------------------------------------------------------------ select: the three sets
def test_select_reports_writable_then_readable_with_the_objects_given(stacks):
    a, b = stacks
    (c, s), = _pairs(a, b)
    assert iomux.select([s], [s], [s], 0) == ([], [s], [])  # room in the send buffer, nothing to read
    c.sendall(b"hi")
    _until(lambda: iomux.select([s], [], [], 0)[0])
    r, w, x = iomux.select([s], [], [s], 0)
    assert r == [s] and r[0] is s and x == []              # no urgent data: the exceptional set is empty
    assert s.recv(10) == b"hi"
    assert iomux.select([s], [], [], 0) == ([], [], [])


def test_select_reports_a_pending_connection_and_eof_as_readable(stacks):
    a, b = stacks
    lst = b.socket()
    lst.bind(("", 7100))
    lst.listen()
    assert iomux.select([lst], [], [], 0) == ([], [], [])
    c = a.socket()
    c.connect(("192.0.2.2", 7100))
    assert iomux.select([lst], [], [], 2) == ([lst], [], [])
    s, _ = lst.accept()
    c.close()                                              # the peer's FIN: recv() would return b""
    assert iomux.select([s], [], [], 2) == ([s], [], [])
    assert s.recv(10) == b""
    lst.close()


def test_select_timeout_and_argument_errors_follow_the_standard_library(stacks):
    a, b = stacks
    (c, s), = _pairs(a, b)
    t0 = time.monotonic()
    assert iomux.select([], [], [], 0.05) == ([], [], [])   # empty lists: just sleeps out the timeout
    assert iomux.select([s], [], [], 0.05) == ([], [], [])
    assert time.monotonic() - t0 >= 0.1
    with pytest.raises(ValueError, match="non-negative"):
        iomux.select([s], [], [], -1)
    with pytest.raises(TypeError):
        iomux.select([s], [], [], "1")
    with pytest.raises(TypeError):
        iomux.select([s.fileno()], [], [], 0)                 # we need the socket's wait queue
    with pytest.raises(ValueError, match="same Stack"):
        iomux.select([s, c], [], [], 0)
    s.close()
    with pytest.raises(ValueError, match="negative integer"):
        iomux.select([s], [], [], 0)                          # a closed socket: fileno() is -1



def test_poll_refuses_another_stacks_socket(stacks):
    """As select() does: a poll object watches its own stack's sockets (another stack's socket would
    wake it under the other stack's lock and kill that stack's thread)."""
    a, b = stacks
    (c, s), = _pairs(a, b)
    p = iomux.poll(b)
    with pytest.raises(ValueError, match="another Stack"):
        p.register(c, select.POLLIN)
    p.register(s, select.POLLIN)
    c.sendall(b"x")
    assert p.poll(2000) == [(s.fileno(), select.POLLIN)]
    assert a.loop_error is None and b.loop_error is None

def test_select_sleeps_and_is_woken_by_the_stack_thread_when_data_arrives(stacks):
    """One pollwake entry per socket while the caller sleeps; the stack thread runs it; a second full
    scan finds the data; every entry is taken off again before select returns."""
    a, b = stacks
    pairs = _pairs(a, b, n=3)
    servers = [s for _, s in pairs]
    iomux.stats.reset()
    t, box = _in_background(iomux.select, servers, [], [], 5)
    _until(lambda: iomux.stats.sleeps == 1)
    with b.lock:
        assert [len(_pollwakes(s)) for s in servers] == [1, 1, 1]
    pairs[1][0].sendall(b"x")
    t.join(5)
    assert box["result"] == ([servers[1]], [], [])
    assert iomux.stats.woken_by is b._thread                  # the receiving stack's thread woke it
    assert (iomux.stats.calls, iomux.stats.passes, iomux.stats.scanned, iomux.stats.wait_entries) == (1, 2, 6, 3)
    assert all(not _pollwakes(s) for s in servers)


# ------------------------------------------------------------------ poll: each event kind
def test_poll_reports_pollout_then_pollin_with_only_the_bits_asked_for(stacks):
    a, b = stacks
    (c, s), = _pairs(a, b)
    p = iomux.poll(b)
    p.register(s, POLLIN | POLLOUT)
    fd = s.fileno()
    assert p.poll(0) == [(fd, POLLOUT)]
    p.modify(s, POLLIN)
    assert p.poll(0) == []
    c.sendall(b"data")
    assert p.poll(2000) == [(fd, POLLIN)]
    p.register(s, POLLIN | POLLRDNORM | POLLOUT | POLLWRNORM)  # registering again modifies
    assert p.poll(0) == [(fd, POLLIN | POLLRDNORM | POLLOUT | POLLWRNORM)]


def test_poll_reports_rdhup_on_the_peers_fin_and_hup_once_both_sides_are_shut(stacks):
    a, b = stacks
    (c, s), = _pairs(a, b)
    p = iomux.poll(b)
    p.register(s, POLLIN | POLLRDHUP)
    c.close()
    assert p.poll(2000) == [(s.fileno(), POLLIN | POLLRDHUP)]
    s.shutdown(socket.SHUT_WR)
    _until(lambda: p.poll(0)[0][1] & POLLHUP)
    assert p.poll(0) == [(s.fileno(), POLLIN | POLLRDHUP | POLLHUP)]


def test_poll_reports_err_and_hup_unasked_after_a_reset(stacks):
    a, b = stacks
    (c, s), = _pairs(a, b)
    p = iomux.poll(b)
    p.register(s, 0)                                          # no events asked: ERR and HUP all the same
    a.abort_all("test")                                       # the peer sends a RST
    (fd, revents), = p.poll(2000)
    assert fd == s.fileno() and revents == POLLERR | POLLHUP


def test_poll_reports_pollnval_for_a_closed_socket_even_while_sleeping(stacks):
    a, b = stacks
    (c1, s1), (c2, s2) = _pairs(a, b, n=2)
    p = iomux.poll(b)
    p.register(s1, POLLIN)
    fd1 = s1.fileno()
    t, box = _in_background(p.poll, 5000)
    _until(lambda: _pollwakes(s1))
    s1.close()                                                # close() wakes the socket's wait queue
    t.join(5)
    assert box["result"] == [(fd1, POLLNVAL)]
    assert p.poll(0) == [(fd1, POLLNVAL)]
    p.unregister(fd1)
    assert p.poll(0) == []


def test_poll_timeout_is_in_milliseconds_and_its_errors_follow_the_standard_library(stacks):
    a, b = stacks
    (c, s), = _pairs(a, b)
    p = iomux.poll(b)
    p.register(s, POLLIN)
    t0 = time.monotonic()
    assert p.poll(100) == []
    assert 0.1 <= time.monotonic() - t0 < 2
    t0 = time.monotonic()
    assert p.poll(0) == [] and time.monotonic() - t0 < 0.5
    with pytest.raises(FileNotFoundError):
        p.modify(c, POLLIN)
    with pytest.raises(KeyError):
        p.unregister(c)
    empty = iomux.poll(b)
    assert empty.poll(10) == []
    t, box = _in_background(p.poll, 2000)
    _until(lambda: p._polling)
    with pytest.raises(RuntimeError, match="concurrent"):
        p.poll(0)
    c.sendall(b"!")
    t.join(5)
    assert box["result"] == [(s.fileno(), POLLIN)]


def test_poll_wakes_on_data_from_another_thread(stacks):
    a, b = stacks
    (c, s), = _pairs(a, b)
    p = iomux.poll(b)
    p.register(s, POLLIN | POLLPRI)
    threading.Timer(0.1, c.sendall, (b"later",)).start()
    t0 = time.monotonic()
    assert p.poll(5000) == [(s.fileno(), POLLIN)]
    assert time.monotonic() - t0 < 4


# ------------------------------------------------------------------ the O(n) scan
@pytest.mark.parametrize("n", [1, 8, 40])
def test_one_call_walks_every_socket(stacks, n):
    """One ready socket among n: select and poll both ask all n (tcp_poll n times), once."""
    a, b = stacks
    pairs = _pairs(a, b, n=n)
    servers = [s for _, s in pairs]
    pairs[-1][0].sendall(b"x")
    _until(lambda: servers[-1].poll_events() & POLLIN)
    p = iomux.poll(b)
    for s in servers:
        p.register(s, POLLIN)
    for call in (lambda: iomux.select(servers, [], [], 0), lambda: p.poll(0)):
        iomux.stats.reset()
        call()
        assert (iomux.stats.calls, iomux.stats.passes, iomux.stats.scanned) == (1, 1, n)


def test_an_idle_call_hangs_one_entry_per_socket_and_scans_all_again_when_time_runs_out(stacks):
    a, b = stacks
    servers = [s for _, s in _pairs(a, b, n=10)]
    iomux.stats.reset()
    assert iomux.select(servers, [], [], 0.05) == ([], [], [])
    assert (iomux.stats.passes, iomux.stats.scanned, iomux.stats.wait_entries, iomux.stats.sleeps) == (2, 20, 10, 1)
    iomux.stats.reset()
    assert iomux.select(servers, [], [], 0) == ([], [], [])  # a zero timeout hangs nothing
    assert (iomux.stats.passes, iomux.stats.scanned, iomux.stats.wait_entries, iomux.stats.sleeps) == (1, 10, 0, 0)


def test_entries_stop_at_the_first_ready_socket(stacks):
    """do_select: once a descriptor is ready no more wait-queue entries are added in that pass."""
    a, b = stacks
    pairs = _pairs(a, b, n=6)
    servers = [s for _, s in pairs]
    pairs[3][0].sendall(b"x")
    _until(lambda: servers[3].poll_events() & POLLIN)
    iomux.stats.reset()
    assert iomux.select(servers, [], [], 1) == ([servers[3]], [], [])
    assert (iomux.stats.scanned, iomux.stats.wait_entries) == (6, 4)


# ------------------------------------------------------------------ the selectors module on top
@pytest.mark.parametrize("kind", ["select", "poll"])
def test_selectors_code_runs_unchanged(stacks, kind):
    a, b = stacks
    (c, s), = _pairs(a, b)
    sel = iomux.SelectSelector() if kind == "select" else iomux.PollSelector(b)
    key = sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE, data="conn")
    assert sel.select(0) == [(key, selectors.EVENT_WRITE)]
    key = sel.modify(s, selectors.EVENT_READ, data="conn")
    iomux.stats.reset()
    assert sel.select(0.05) == []
    assert iomux.stats.scanned == 2 and iomux.stats.sleeps == 1     # the scan below selectors is ours
    c.sendall(b"hi")
    ready = sel.select(2)
    assert [(k.fileobj, k.data, ev) for k, ev in ready] == [(s, "conn", selectors.EVENT_READ)]
    sel.unregister(s)
    assert sel.select(0) == [] and not sel.get_map()
    sel.close()


# ------------------------------------------------------------------ differential: the kernel's sockets agree
ALL_POLL = POLLIN | POLLOUT | POLLRDHUP | POLLRDNORM | POLLWRNORM | POLLPRI


def _kernel_pair():
    """(client, accepted) kernel TCP sockets over loopback: the oracle."""
    with socket.create_server(("127.0.0.1", 0)) as lst:
        c = socket.create_connection(lst.getsockname(), timeout=5)
        s, _ = lst.accept()
    return c, s


def _peer_fin(c, s):
    c.close()


def _fin_and_shut_wr(c, s):
    c.close()
    time.sleep(0.1)
    s.shutdown(socket.SHUT_WR)


SCENARIOS = {
    "idle": lambda c, s: None,
    "data arrived": lambda c, s: c.sendall(b"x"),
    "peer sent FIN": _peer_fin,
    "peer FIN and our SHUT_WR": _fin_and_shut_wr,
    "our SHUT_RD": lambda c, s: s.shutdown(socket.SHUT_RD),
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_poll_and_select_report_what_the_kernel_reports(stacks, scenario):
    """The same scenario on a kernel socket (select.poll, select.select) and on ours (iomux)."""
    a, b = stacks
    kc, ks = _kernel_pair()
    (c, s), = _pairs(a, b)
    SCENARIOS[scenario](kc, ks)
    SCENARIOS[scenario](c, s)
    time.sleep(0.2)  # let both stacks process what the scenario sent
    kp, ours = select.poll(), iomux.poll(b)
    kp.register(ks, ALL_POLL)
    ours.register(s, ALL_POLL)
    assert [ev for _, ev in ours.poll(0)] == [ev for _, ev in kp.poll(0)]
    kernel_sets = select.select([ks], [ks], [ks], 0)
    our_sets = iomux.select([s], [s], [s], 0)
    assert [len(x) for x in our_sets] == [len(x) for x in kernel_sets]
    ks.close()
    if not kc._closed:
        kc.close()


def test_a_non_blocking_connect_is_writable_once_established_and_both_when_refused(stacks):
    """The event-loop pattern (asyncio, selectors): connect_ex -> EINPROGRESS, wait for writability,
    then read SO_ERROR; a refused connection is readable and writable with ECONNREFUSED pending."""
    a, b = stacks
    lst = b.socket()
    lst.bind(("", 7200))
    lst.listen()
    c = a.socket()
    c.setblocking(False)
    assert c.connect_ex(("192.0.2.2", 7200)) == errno.EINPROGRESS
    assert iomux.select([], [c], [], 2) == ([], [c], [])
    assert c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
    refused = a.socket()
    refused.setblocking(False)
    assert refused.connect_ex(("192.0.2.2", 7201)) == errno.EINPROGRESS
    assert iomux.select([refused], [refused], [], 2) == ([refused], [refused], [])
    assert refused.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ECONNREFUSED
    lst.close()
