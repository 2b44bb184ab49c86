"""select and poll for tunstack sockets, built the way Linux builds them (fs/select.c), with its names.

The course's select/poll slide, in code, to set beside ``stack.epoll``:

- Every call walks *every* socket it was given (``do_select`` / ``do_poll``) and asks each
  one for its events (``vfs_poll`` -> ``tcp_poll``: ``sock.poll_events()`` here).
- While nothing is ready, each scanned socket gets one entry on its wait queue
  (``poll_wait`` -> ``__pollwait``: a ``pollwake`` callback in ``sock._watchers``, where
  epoll hangs its ``ep_poll_callback``); the table of those entries is the call's
  ``poll_wqueues``. Once one socket is ready, no more entries are added.
- If no socket is ready the caller sleeps on the table (``poll_schedule_timeout``) until a
  ``pollwake`` (run by the stack thread when a socket's wait queue is woken) or the
  timeout; then it scans *all* the sockets again. Before returning it takes every entry
  off again (``poll_freewait``).

So one call costs O(n) in the sockets passed in, ready or not, and an idle call hangs and
unhangs n wait-queue entries; ``epoll_wait`` only looks at its ready list. ``stats``
counts it: calls, passes over the set, sockets asked, wait-queue entries, sleeps, and
which thread woke the sleeper.

The API mirrors the standard library: ``select(rlist, wlist, xlist, timeout)`` (seconds)
and ``poll(stack)`` with ``register``, ``modify``, ``unregister``, ``poll(timeout_ms)`` and
the ``POLL*`` constants of the ``select`` module; ``SelectSelector()`` and
``PollSelector(stack)`` are the ``selectors`` module's classes running on them. Like
``stack.epoll``, they need the socket objects (their wait queues), not bare fds (``poll``'s
``modify`` and ``unregister`` take either); results name sockets as the standard library
does (select: the objects given; poll: their ``fileno()``).
"""
from __future__ import annotations

import errno
import select as _select
import selectors
import threading
import time
from dataclasses import dataclass

POLLIN, POLLPRI, POLLOUT = _select.POLLIN, _select.POLLPRI, _select.POLLOUT
POLLERR, POLLHUP, POLLNVAL = _select.POLLERR, _select.POLLHUP, _select.POLLNVAL
POLLRDNORM, POLLRDBAND = _select.POLLRDNORM, _select.POLLRDBAND
POLLWRNORM, POLLWRBAND = _select.POLLWRNORM, _select.POLLWRBAND
POLLRDHUP = getattr(_select, "POLLRDHUP", 0x2000)

# fs/select.c: the tcp_poll bits that put a descriptor in each of select()'s three sets
POLLIN_SET = POLLRDNORM | POLLRDBAND | POLLIN | POLLHUP | POLLERR
POLLOUT_SET = POLLWRBAND | POLLWRNORM | POLLOUT | POLLERR
POLLEX_SET = POLLPRI
_ALWAYS = POLLERR | POLLHUP  # poll(2) reports these whether asked for or not
_DEFAULT = POLLIN | POLLPRI | POLLOUT


@dataclass
class ScanStats:
    """What select/poll calls have cost so far (all calls of this process)."""

    calls: int = 0         # select() / poll.poll() calls
    passes: int = 0        # walks over a call's whole set (1, plus 1 per wake-up)
    scanned: int = 0       # sockets asked for their events (tcp_poll calls)
    wait_entries: int = 0  # pollwake entries hung on sockets' wait queues
    sleeps: int = 0        # times a caller slept because nothing was ready
    woken_by: threading.Thread | None = None  # the thread whose pollwake last woke a caller

    def reset(self) -> None:
        self.__init__()


stats = ScanStats()
_stats_lock = threading.Lock()


class PollWqueues:
    """One call's poll table (Linux's ``struct poll_wqueues``): the entries it hung and its sleep."""

    def __init__(self, lock):
        self.wq = threading.Condition(lock)  # the caller sleeps here, not on any socket
        self.triggered = False
        self.qproc = True                    # poll_table._qproc: still adding entries on this pass?
        self.entries: list[tuple[object, object]] = []

    def poll_wait(self, sock, interest: int) -> None:
        """__pollwait: one entry on this socket's wait queue, woken for ``interest`` (or ERR/HUP)."""
        if not self.qproc:
            return

        def pollwake(s, key=0, table=self, interest=interest | _ALWAYS):
            if key and not key & interest:
                return  # a wake-up about events nobody here asked for (fs/select.c: pollwake)
            stats.woken_by = threading.current_thread()
            table.triggered = True
            table.wq.notify_all()
        pollwake.poll_table = self
        sock._watchers.append(pollwake)
        self.entries.append((sock, pollwake))

    def poll_schedule_timeout(self, deadline: float | None) -> bool:
        """Sleep until a pollwake or the deadline (monotonic); False when the time ran out."""
        with _stats_lock:
            stats.sleeps += 1
        while not self.triggered:
            if deadline is None:
                self.wq.wait()
            else:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.wq.wait(left)
        self.triggered = False
        return True

    def poll_freewait(self) -> None:
        """Take every entry off its socket's wait queue (the end of every call)."""
        for sock, pollwake in self.entries:
            try:
                sock._watchers.remove(pollwake)
            except ValueError:
                pass
        with _stats_lock:
            stats.wait_entries += len(self.entries)
        self.entries.clear()


def _vfs_poll(sock, table: PollWqueues, interest: int) -> int:
    """Ask one socket for its events, hanging the table's entry first, as tcp_poll does."""
    table.poll_wait(sock, interest)
    return sock.poll_events()


def _do_poll(table: PollWqueues, scan, deadline: float | None):
    """The loop shared by do_select and do_poll: scan all; stop if something is ready or time is
    up; otherwise sleep until a pollwake and scan all again. ``scan()`` returns (count, result)."""
    with _stats_lock:
        stats.calls += 1
    timed_out = deadline is not None and deadline <= time.monotonic()
    if timed_out:
        table.qproc = False  # a zero timeout hangs nothing (do_select: wait->_qproc = NULL)
    try:
        while True:
            count, result = scan()
            table.qproc = False  # entries are hung on the first pass only
            if count or timed_out:
                return result
            if not table.poll_schedule_timeout(deadline):
                timed_out = True  # one last pass, then return what it finds
    finally:
        table.poll_freewait()


def _count(n: int) -> None:
    with _stats_lock:
        stats.passes += 1
        stats.scanned += n


def _check_open(obj) -> None:
    """Refuse what select/poll cannot watch: a bare fd, or a closed socket (EBADF in the kernel).

    No ``fileno()`` here: a tunstack socket's descriptor is created on first use and costs two
    kernel fds (stack/readiness.py), so sockets are watched as objects and an fd is made only
    for a result that needs one."""
    if isinstance(obj, int):
        raise TypeError("tunstack select/poll need the socket objects, not bare fds")
    if obj.closed:
        raise ValueError("file descriptor cannot be a negative integer (-1)")


def _stack_of(socks) -> object:
    stacks = {id(s.stack): s.stack for s in socks}
    if len(stacks) > 1:
        raise ValueError("tunstack select/poll: every socket must belong to the same Stack")
    return next(iter(stacks.values()))


# -------------------------------------------------------------------------------- select(2)
def select(rlist, wlist, xlist, timeout: float | None = None):
    """select.select over tunstack sockets: (ready to read, ready to write, exceptional) lists of
    the objects given; waits up to ``timeout`` seconds (None: until one is ready)."""
    sets = [list(rlist), list(wlist), list(xlist)]
    if timeout is not None:
        if not isinstance(timeout, (int, float)):
            raise TypeError("timeout must be a float or None")
        if timeout < 0:
            raise ValueError("timeout must be non-negative")
    for objs in sets:
        for obj in objs:
            _check_open(obj)  # a closed socket is refused up front, as max_select_fd's EBADF check
    socks = {id(obj): obj for objs in sets for obj in objs}
    if not socks:  # nothing to scan: just sleep out the timeout, as select(2) does
        threading.Event().wait(timeout)
        return [], [], []
    # the interest of each socket: fs/select.c's POLLIN_SET | POLLOUT_SET | POLLEX_SET as asked
    masks = [POLLIN_SET, POLLOUT_SET, POLLEX_SET]
    interest = {key: 0 for key in socks}
    for objs, mask in zip(sets, masks):
        for obj in objs:
            interest[id(obj)] |= mask
    stack = _stack_of(socks.values())
    deadline = None if timeout is None else time.monotonic() + timeout
    with stack.lock:
        table = PollWqueues(stack.lock)

        def scan():
            """do_select's inner loop: every socket, every pass."""
            events = {}
            for key, sock in socks.items():
                if sock.closed:
                    continue  # closed since the call began: fdget finds no file, the bit stays clear
                events[key] = _vfs_poll(sock, table, interest[key])
                if events[key] & interest[key]:
                    table.qproc = False  # something is ready: no more entries (do_select)
            _count(len(events))
            result = tuple([obj for obj in objs if events.get(id(obj), 0) & mask]
                           for objs, mask in zip(sets, masks))
            return sum(map(len, result)), result
        r, w, x = _do_poll(table, scan, deadline)
    return r, w, x


# -------------------------------------------------------------------------------- poll(2)
class poll:
    """select.poll over the sockets of one ``Stack``: ``register``, ``modify``, ``unregister``,
    ``poll(timeout_ms)``."""

    def __init__(self, stack):
        self.stack = stack
        # the pollfd array: id(socket) -> [socket, events, fd or None (made when first reported)]
        self._fds: dict[int, list] = {}
        self._polling = False

    def register(self, sock, eventmask: int = _DEFAULT) -> None:
        """Add ``sock`` (or change its events if it is already there, as the standard library does)."""
        _check_open(sock)
        if getattr(sock, "stack", None) is not self.stack:  # its wake-ups come under another stack's lock
            raise ValueError("tunstack poll: the socket belongs to another Stack than this poll object")
        with self.stack.lock:
            entry = self._fds.get(id(sock))
            if entry is None:
                self._fds[id(sock)] = [sock, eventmask & 0xFFFF, None]
            else:
                entry[1] = eventmask & 0xFFFF

    def modify(self, fd_or_sock, eventmask: int) -> None:
        with self.stack.lock:
            entry = self._entry(fd_or_sock)
            if entry is None:
                raise FileNotFoundError(errno.ENOENT, "No such file or directory")
            entry[1] = eventmask & 0xFFFF

    def unregister(self, fd_or_sock) -> None:
        with self.stack.lock:
            entry = self._entry(fd_or_sock)
            if entry is None:
                raise KeyError(fd_or_sock)  # as the standard library
            del self._fds[id(entry[0])]

    def poll(self, timeout: float | None = None) -> list[tuple[int, int]]:
        """(fd, revents) of the ready sockets, in registration order; waits up to ``timeout``
        milliseconds (None or negative: until one is ready; 0: not at all)."""
        if timeout is not None and not isinstance(timeout, (int, float)):
            raise TypeError("timeout must be an integer or None")
        deadline = None if timeout is None or timeout < 0 else time.monotonic() + timeout / 1000
        with self.stack.lock:
            if self._polling:
                raise RuntimeError("concurrent poll() invocation")
            self._polling = True
            try:
                pollfds = list(self._fds.values())
                table = PollWqueues(self.stack.lock)
                if not pollfds:  # nothing to scan: just sleep out the timeout, as poll(2) does
                    table.poll_schedule_timeout(deadline)
                    return []
                return _do_poll(table, lambda: self._scan(pollfds, table), deadline)
            finally:
                self._polling = False

    def _scan(self, pollfds, table: PollWqueues):
        """do_poll's inner loop: do_pollfd for every registered socket, every pass."""
        out = []
        for entry in pollfds:
            sock, events = entry[0], entry[1]
            if entry[2] is None:
                _fd_for(entry, create=False)  # an fd made since: keep it for a later POLLNVAL
            if sock.closed:
                out.append((_fd_for(entry), POLLNVAL))  # do_pollfd: no file behind the fd
                table.qproc = False
                continue
            interest = events | _ALWAYS
            revents = _vfs_poll(sock, table, interest) & interest
            if revents:
                out.append((_fd_for(entry), revents))
                table.qproc = False
        _count(len(pollfds))
        return len(out), out

    def _entry(self, fd_or_sock):
        """The entry of a socket given itself or the fd its ``fileno()`` returned."""
        if not isinstance(fd_or_sock, int):
            return self._fds.get(id(fd_or_sock))
        for entry in self._fds.values():
            if _fd_for(entry, create=False) == fd_or_sock:
                return entry
        return None


def _fd_for(entry: list, create: bool = True) -> int | None:
    """The fd reported for a poll entry: the socket's ``fileno()``, kept once known (a closed
    socket still reports the number it had, as poll(2) reports the registered fd)."""
    if entry[2] is None:
        sock = entry[0]
        if not sock.closed and (create or getattr(sock, "_efd", None) is not None):  # made already
            entry[2] = sock.fileno()
    return entry[2] if entry[2] is not None else -1


# -------------------------------------------------------------------------------- selectors
class _SelectorPoll(poll):
    """poll as ``selectors.PollSelector`` drives it, by fd: the fd is found in the selector's map."""

    def __init__(self, stack, selector: selectors.BaseSelector):
        super().__init__(stack)
        self._selector = selector

    def register(self, fd, eventmask: int = _DEFAULT) -> None:
        super().register(self._selector.get_map()[fd].fileobj, eventmask)


class PollSelector(selectors.PollSelector):
    """``selectors.PollSelector`` over ``poll(stack)``: selectors code runs unchanged on our sockets."""

    def __init__(self, stack):
        self._selector_cls = lambda: _SelectorPoll(stack, self)
        super().__init__()


class SelectSelector(selectors.SelectSelector):
    """``selectors.SelectSelector`` over ``select`` (the stack is the sockets')."""

    def _select(self, r, w, x, timeout=None):
        sock = self.get_map()
        r, w, x = select([sock[fd].fileobj for fd in r], [sock[fd].fileobj for fd in w],
                         [sock[fd].fileobj for fd in x], timeout)
        return [s.fileno() for s in r], [s.fileno() for s in w], [s.fileno() for s in x]
