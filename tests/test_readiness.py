"""ReadinessFd: the kernel's own select/poll/epoll, selectors and asyncio see exactly what we set."""
from __future__ import annotations

import asyncio
import os
import select
import selectors
import time

import pytest

from stack.readiness import ReadinessFd

pytestmark = pytest.mark.timeout(30)

COMBOS = [(False, False), (True, False), (False, True), (True, True)]


@pytest.fixture
def rfd():
    fds = []

    def make(readable=False, writable=True):
        r = ReadinessFd(readable, writable)
        fds.append(r)
        return r

    yield make
    for r in fds:
        r.close()


def by_select(fd):
    r, w, _ = select.select([fd], [fd], [], 0)
    return bool(r), bool(w)


def by_poll(fd):
    p = select.poll()
    p.register(fd, select.POLLIN | select.POLLOUT)
    mask = dict(p.poll(0)).get(fd, 0)
    return bool(mask & select.POLLIN), bool(mask & select.POLLOUT)


def by_epoll(fd):
    with select.epoll() as ep:
        ep.register(fd, select.EPOLLIN | select.EPOLLOUT)
        mask = dict(ep.poll(0)).get(fd, 0)
    return bool(mask & select.EPOLLIN), bool(mask & select.EPOLLOUT)


def by_selectors(fd, cls=selectors.DefaultSelector):
    with cls() as sel:
        sel.register(fd, selectors.EVENT_READ | selectors.EVENT_WRITE)
        events = [ev for key, ev in sel.select(0)]
    mask = events[0] if events else 0
    return bool(mask & selectors.EVENT_READ), bool(mask & selectors.EVENT_WRITE)


def by_asyncio(fd):
    """Which of add_reader/add_writer's callbacks fire within a few loop iterations."""
    loop = asyncio.SelectorEventLoop()
    fired = {"r": False, "w": False}
    try:
        loop.add_reader(fd, fired.__setitem__, "r", True)
        loop.add_writer(fd, fired.__setitem__, "w", True)
        loop.run_until_complete(asyncio.sleep(0.02))
        loop.remove_reader(fd)
        loop.remove_writer(fd)
    finally:
        loop.close()
    return fired["r"], fired["w"]


OBSERVERS = {"select": by_select, "poll": by_poll, "epoll": by_epoll, "selectors": by_selectors,
             "asyncio": by_asyncio}
ALL_SELECTORS = [getattr(selectors, n) for n in ("SelectSelector", "PollSelector", "EpollSelector")
                 if hasattr(selectors, n)]


@pytest.mark.parametrize("observer", OBSERVERS)
@pytest.mark.parametrize("readable,writable", COMBOS)
def test_every_observer_sees_exactly_what_is_set(rfd, observer, readable, writable):
    r = rfd(readable, writable)
    assert OBSERVERS[observer](r.fd) == (readable, writable)


@pytest.mark.parametrize("cls", ALL_SELECTORS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("readable,writable", COMBOS)
def test_every_selectors_class(rfd, cls, readable, writable):
    r = rfd(readable, writable)
    assert by_selectors(r.fd, cls) == (readable, writable)


@pytest.mark.parametrize("observer", OBSERVERS)
def test_transitions_both_ways(rfd, observer):
    r = rfd()
    see = OBSERVERS[observer]
    path = [(True, True), (False, True), (False, False), (True, False), (True, True), (False, False),
            (True, True), (False, False)]
    for readable, writable in path:
        r.set(readable)
        r.set_writable(writable)
        assert see(r.fd) == (readable, writable), (readable, writable)
        assert (r.readable, r.writable) == (readable, writable)


def test_set_is_idempotent(rfd):
    r = rfd()
    for _ in range(3):
        r.set(True)
        r.set_writable(False)
    assert by_poll(r.fd) == (True, False)
    for _ in range(3):
        r.set(False)
        r.set_writable(True)
    assert by_poll(r.fd) == (False, True)


def test_backward_compatible_default_is_writable_not_readable(rfd):
    r = ReadinessFd()
    try:
        assert by_poll(r.fd) == (False, True)
        r.set(True)
        assert by_poll(r.fd) == (True, True)
    finally:
        r.close()


def test_edge_triggered_epoll_one_event_per_transition(rfd):
    r = rfd(False, False)
    with select.epoll() as ep:
        ep.register(r.fd, select.EPOLLIN | select.EPOLLOUT | select.EPOLLET)
        assert ep.poll(0) == []
        r.set(True)
        assert [m & (select.EPOLLIN | select.EPOLLOUT) for _, m in ep.poll(0)] == [select.EPOLLIN]
        assert ep.poll(0) == []          # no new transition: no new event
        r.set(False)
        assert ep.poll(0) == []          # becoming unreadable is no event (as on a TCP socket)
        r.set_writable(True)
        assert [m & (select.EPOLLIN | select.EPOLLOUT) for _, m in ep.poll(0)] == [select.EPOLLOUT]
        assert ep.poll(0) == []
        r.set_writable(False)
        assert ep.poll(0) == []
        for _ in range(5):
            r.set_writable(True)
            assert len(ep.poll(0)) == 1
            assert ep.poll(0) == []
            r.set_writable(False)


def test_edge_triggered_writer_not_woken_by_readable_changes(rfd):
    r = rfd(False, False)
    with select.epoll() as ep:
        ep.register(r.fd, select.EPOLLOUT | select.EPOLLET)
        r.set(True)
        r.set(False)
        assert ep.poll(0) == []


def test_wake_readable_gives_edge_triggered_event_each_time(rfd):
    r = rfd(False, True)
    with select.epoll() as ep:
        ep.register(r.fd, select.EPOLLIN | select.EPOLLET)
        for _ in range(20):  # more than the tiny buffer holds: it must start over, not fail
            r.wake_readable()
            assert len(ep.poll(0)) == 1
            assert ep.poll(0) == []
        r.set(False)
        assert by_poll(r.fd) == (False, True)


def test_read_hangup_is_pollin_rdhup_and_final_for_reading(rfd):
    r = rfd(False, True)
    r.set_read_hangup()
    p = select.poll()
    p.register(r.fd, select.POLLIN | select.POLLOUT | select.POLLRDHUP)
    mask = dict(p.poll(0))[r.fd]
    assert mask & (select.POLLIN | select.POLLRDHUP | select.POLLOUT | select.POLLHUP | select.POLLERR) == \
        select.POLLIN | select.POLLRDHUP | select.POLLOUT
    r.set(False)
    assert by_poll(r.fd) == (True, True)
    r.set_writable(False)  # writability still follows the send buffer
    assert by_poll(r.fd) == (True, False)
    r.set_writable(True)
    assert by_poll(r.fd) == (True, True)


def test_error_reports_err_hup_in_out_like_a_reset_tcp_socket(rfd):
    r = rfd(False, False)
    r.set_error()
    p = select.poll()
    p.register(r.fd, select.POLLIN | select.POLLOUT | select.POLLRDHUP)
    mask = dict(p.poll(0))[r.fd]
    want = select.POLLIN | select.POLLOUT | select.POLLERR | select.POLLHUP | select.POLLRDHUP
    assert mask & want == want
    r.set(False)
    r.set_writable(False)  # final: nothing changes after an error
    assert dict(p.poll(0))[r.fd] & want == want
    assert by_select(r.fd) == (True, True)
    assert by_asyncio(r.fd) == (True, True)


def test_hangup_reports_hup_in_out_without_err(rfd):
    r = rfd(False, False)
    r.set_hangup()
    p = select.poll()
    p.register(r.fd, select.POLLIN | select.POLLOUT | select.POLLRDHUP)
    mask = dict(p.poll(0))[r.fd]
    assert mask & (select.POLLIN | select.POLLOUT | select.POLLHUP | select.POLLRDHUP) == \
        select.POLLIN | select.POLLOUT | select.POLLHUP | select.POLLRDHUP
    assert not mask & select.POLLERR


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_close_releases_both_fds_and_is_idempotent():
    before = _open_fds()
    made = [ReadinessFd(True, False) for _ in range(50)]
    assert _open_fds() == before + 100
    for r in made:
        r.close()
        r.close()
        assert r.fd == -1
    assert _open_fds() == before


def test_fd_is_close_on_exec():
    r = ReadinessFd()
    try:
        assert not os.get_inheritable(r.fd)
    finally:
        r.close()


def test_transition_cost_is_reported(rfd):
    """Not a timing assertion: measures a transition's cost (printed with -s) and checks it works."""
    r = rfd(False, True)
    n = 2000
    t = time.perf_counter()
    for _ in range(n):
        r.set(True)
        r.set(False)
    read_us = (time.perf_counter() - t) / (2 * n) * 1e6
    t = time.perf_counter()
    for _ in range(n):
        r.set_writable(False)
        r.set_writable(True)
    write_us = (time.perf_counter() - t) / (2 * n) * 1e6
    print(f"\nReadinessFd transition cost: readable {read_us:.1f} us, writable {write_us:.1f} us")
    assert by_poll(r.fd) == (False, True)


IN, OUT, ERR, HUP, RDHUP = select.EPOLLIN, select.EPOLLOUT, select.EPOLLERR, select.EPOLLHUP, select.EPOLLRDHUP
ALL = IN | OUT | ERR | HUP | RDHUP


def epoll_mask(fd) -> int:
    with select.epoll() as ep:
        ep.register(fd, ALL)
        return dict(ep.poll(0)).get(fd, 0) & ALL


@pytest.mark.parametrize("mask", [0, IN, OUT, IN | OUT, IN | RDHUP, IN | OUT | RDHUP, IN | OUT | RDHUP | HUP,
                                  IN | OUT | RDHUP | HUP | ERR],
                         ids=lambda m: "|".join(n for n, b in (("IN", IN), ("OUT", OUT), ("ERR", ERR), ("HUP", HUP),
                                                              ("RDHUP", RDHUP)) if m & b) or "0")
def test_sync_shows_tcp_poll_masks_exactly(rfd, mask):
    r = rfd(False, True)
    r.sync(mask)
    assert epoll_mask(r.fd) == mask


def test_sync_follows_a_connection_lifetime(rfd):
    """SYN-SENT, established, data, drained, send buffer full, peer FIN, reset, error reported."""
    r = rfd(False, True)
    for mask in (0, OUT, IN | OUT, OUT, 0, IN | RDHUP, IN | OUT | RDHUP, IN | OUT | RDHUP | HUP | ERR,
                 IN | OUT | RDHUP | HUP):
        r.sync(mask)
        assert epoll_mask(r.fd) == mask, hex(mask)


def test_clear_error_keeps_the_hangup(rfd):
    r = rfd()
    r.set_error()
    r.clear_error()
    assert epoll_mask(r.fd) == IN | OUT | HUP | RDHUP


def test_unconnected_is_out_hup_only_like_a_fresh_tcp_socket(rfd):
    """tcp_poll() of a socket in CLOSE that never connected: POLLOUT|POLLHUP, no POLLIN."""
    r = rfd(False, False)
    fd = r.fd
    r.sync(OUT | HUP)
    assert epoll_mask(r.fd) == OUT | HUP
    assert r.fd == fd and not os.get_inheritable(fd)
    assert by_select(fd) == (True, True)  # select() counts POLLHUP as readable, as for the kernel's socket


@pytest.mark.parametrize("final", [IN | OUT | RDHUP | HUP, IN | OUT | RDHUP | HUP | ERR, IN | RDHUP, OUT | HUP],
                         ids=["hangup", "error", "rdhup", "unconnected"])
def test_a_final_mask_gives_way_to_a_new_connection_on_the_same_fd(rfd, final):
    """A refused or finished socket that connects again: SYN-SENT (nothing), then established."""
    r = rfd(False, True)
    fd = r.fd
    r.sync(final)
    assert epoll_mask(fd) == final
    for mask in (0, OUT, IN | OUT, IN | RDHUP | OUT):
        r.sync(mask)
        assert r.fd == fd
        assert epoll_mask(fd) == mask, hex(mask)


def test_replacing_the_file_keeps_the_fd_count(rfd):
    before = _open_fds()
    r = ReadinessFd(False, False)
    for mask in (OUT | HUP, 0, IN | OUT | RDHUP | HUP | ERR, OUT, OUT | HUP, IN):
        r.sync(mask)
    r.close()
    assert _open_fds() == before


def test_error_after_hangup_joins_it_and_clears(rfd):
    """tcp_poll() shows sk_err beside SHUTDOWN_MASK: a connection shut both ways that is then reset
    (data after our FIN, reading shut) reports POLLERR with the hang-up, to an epoll registered
    before; reading the error (SO_ERROR) takes POLLERR away again and leaves the hang-up."""
    r = rfd(False, True)
    r.sync(IN | OUT | RDHUP | HUP)
    with select.epoll() as ep:
        ep.register(r.fd, ALL | select.EPOLLET)
        assert dict(ep.poll(0))[r.fd] & ALL == IN | OUT | RDHUP | HUP
        r.sync(IN | OUT | RDHUP | HUP | ERR)
        assert dict(ep.poll(0))[r.fd] & ALL == ALL  # a new edge, on the same registration
    r.sync(IN | OUT | RDHUP | HUP)
    assert epoll_mask(r.fd) == IN | OUT | RDHUP | HUP
