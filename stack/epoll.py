"""epoll for tunstack sockets, built the way Linux builds it (fs/eventpoll.c), with its names.

The course's epoll slide, in code:

- ``epoll(stack)`` is ``epoll_create``: an event poll object with an interest set (Linux
  keeps it in a red-black tree, ``rbr``; a dict here) and a ready list (``rdllist``).
- ``register(sock, events)`` is ``epoll_ctl(EPOLL_CTL_ADD)``: it creates an ``EpItem`` and
  hangs a callback (``ep_poll_callback``) on the socket's wait queue.
- When the socket becomes ready, the stack (holding its lock, like softirq) wakes the
  socket's wait queue; the callback puts the item on the ready list and wakes whoever
  sleeps in ``poll()`` (``epoll_wait``) on the epoll's own wait queue.
- ``poll()`` takes items off the ready list, asks each socket for its current events
  (``ep_send_events`` -> ``tcp_poll``), reports those that match, and puts
  level-triggered items back on the list; edge-triggered (``EPOLLET``) items come back only
  with the next wake-up; ``EPOLLONESHOT`` items are disarmed until ``modify()``.

The API mirrors ``select.epoll``: ``register``, ``modify``, ``unregister``, ``poll``,
``close``, ``fileno``, the ``EPOLL*`` constants of the ``select`` module. Sockets are
named by their ``fileno()`` in results (a real fd: see stack/socket.py), made only when a
socket is first reported: a tunstack socket's fd costs two kernel fds (stack/readiness.py), so
the interest set holds socket objects and 10 000 idle sockets cost no fd at all.
"""
from __future__ import annotations

import errno
import select as _select
import threading
import time
from collections import deque

from .readiness import ReadinessFd

EPOLLIN, EPOLLOUT, EPOLLPRI = _select.EPOLLIN, _select.EPOLLOUT, _select.EPOLLPRI
EPOLLERR, EPOLLHUP, EPOLLRDHUP = _select.EPOLLERR, _select.EPOLLHUP, _select.EPOLLRDHUP
EPOLLET, EPOLLONESHOT = _select.EPOLLET, _select.EPOLLONESHOT
EPOLLRDNORM, EPOLLWRNORM = _select.EPOLLRDNORM, _select.EPOLLWRNORM
_ALWAYS = EPOLLERR | EPOLLHUP  # reported whether asked for or not (epoll_ctl(2))
_PRIVATE = EPOLLET | EPOLLONESHOT


def ep_poll_callback(item, key: int, ready: int, rdllist) -> bool:
    """fs/eventpoll.c ep_poll_callback: the socket's wait queue was woken about ``key`` (0: anything)
    and its events are now ``ready``; put ``item`` on ``rdllist`` if it wants one of them. True: wake
    the threads in epoll_wait. A wake-up about events the item does not want is ignored, so an
    edge-triggered reader is not reported again because an ACK arrived. (Exercise 9 replaces it.)"""
    if item.disabled:
        return False  # epoll_ctl(2) EPOLLONESHOT fired: nothing until EPOLL_CTL_MOD re-arms it
    wanted = item.events | _ALWAYS
    if key and not key & wanted:
        return False  # a wake-up about events nobody here asked for
    if not ready & wanted:
        return False
    if not item.on_rdllist:  # at most once on the ready list
        item.on_rdllist = True
        rdllist.append(item)
    return True


class EpItem:
    """One registered socket: Linux's ``struct epitem``."""

    __slots__ = ("sock", "_fd", "events", "on_rdllist", "disabled")

    def __init__(self, sock, events: int):
        self.sock, self._fd, self.events = sock, None, events
        self.on_rdllist = False
        self.disabled = False  # EPOLLONESHOT fired and not re-armed

    @property
    def fd(self) -> int:
        """The socket's ``fileno()``, made the first time the item is reported."""
        if self._fd is None:
            self._fd = self.sock.fileno()
        return self._fd


class epoll:
    """An epoll instance over the sockets of one ``Stack``."""

    def __init__(self, stack, sizehint: int = -1, flags: int = 0):
        self.stack = stack
        self.rbr: dict[int, EpItem] = {}          # the interest set, keyed by id(socket)
        self.rdllist: deque[EpItem] = deque()     # the ready list
        self.wq = threading.Condition(stack.lock)  # epoll_wait sleeps here
        self._closed = False
        self._efd = ReadinessFd()  # readable while rdllist is not empty
        self._interrupted = False  # interrupt() was called: the next poll() returns at once

    # ---------------------------------------------------------------- epoll_ctl
    def register(self, sock, eventmask: int = EPOLLIN | EPOLLPRI | EPOLLOUT) -> None:
        """EPOLL_CTL_ADD. ``sock`` is a tunstack socket (not a bare fd: we need its wait queue)."""
        with self.stack.lock:
            self._check_open()
            key = self._key_of(sock)
            if key in self.rbr:
                raise FileExistsError(errno.EEXIST, "already registered")
            item = EpItem(sock, eventmask)
            self.rbr[key] = item
            sock._watchers.append(self._callback_for(item))
            self._ep_poll_callback(item)  # ready already? then it goes on the list now, as Linux does

    def modify(self, sock, eventmask: int) -> None:
        """EPOLL_CTL_MOD: new interest mask; re-arms an EPOLLONESHOT item."""
        with self.stack.lock:
            self._check_open()
            item = self._item(sock)
            item.events = eventmask
            item.disabled = False
            self._ep_poll_callback(item)

    def unregister(self, sock) -> None:
        """EPOLL_CTL_DEL."""
        with self.stack.lock:
            self._check_open()
            self._remove(self._item(sock))

    # ---------------------------------------------------------------- the callback
    def _callback_for(self, item: EpItem):
        def ep_poll_callback(sock, key=0, item=item, ep=self):
            ep._ep_poll_callback(item, key)
        ep_poll_callback.epoll = self
        ep_poll_callback.item = item
        return ep_poll_callback

    def _ep_poll_callback(self, item: EpItem, key: int = 0) -> None:
        """Called (stack lock held) whenever the socket's wait queue is woken, with ``key`` = what the
        wake-up is about (0: anything); ``ep_poll_callback`` decides, this wakes epoll_wait's sleepers."""
        if self._closed:
            return
        if item.sock.closed:  # closing the socket removes it from every epoll (as close(2) does)
            self._remove(item)
            return
        if ep_poll_callback(item, key, item.sock.poll_events(), self.rdllist):
            self._sync_fd()
            self.wq.notify_all()

    # ---------------------------------------------------------------- epoll_wait
    def poll(self, timeout: float | None = None, maxevents: int = -1, *, _items: bool = False) -> list:
        """epoll_wait: up to ``maxevents`` (fd, events) pairs; waits up to ``timeout`` s (None/-1: forever)."""
        if timeout is not None and timeout < 0:
            timeout = None
        if maxevents == 0 or maxevents < -1:
            raise ValueError("maxevents must be greater than 0, got %d" % maxevents)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.stack.lock:
            self._check_open()
            while True:
                events = self._ep_send_events(maxevents)
                if events or self._interrupted or (deadline is not None and time.monotonic() >= deadline):
                    self._interrupted = False
                    return events if _items else [(item.fd, revents) for item, revents in events]
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                self.wq.wait(left)
                self._check_open()

    def poll_sockets(self, timeout: float | None = None, maxevents: int = -1) -> list[tuple[object, int]]:
        """epoll_wait reporting (socket, events): Linux's ``epoll_event.data`` holding a pointer to
        the connection, as servers written in C use it. Our extension; no fd is made for a socket
        reported this way (see the module doc)."""
        return [(item.sock, revents) for item, revents in self.poll(timeout, maxevents, _items=True)]

    def interrupt(self) -> None:
        """Make the thread in ``poll()`` (or the next one to call it) return now, with what is ready
        (maybe nothing): what an eventfd in the interest set gives a Linux server whose other
        threads ask its loop to do something. It is sticky, as the eventfd's count is, so a loop
        that checks its flags and then polls never misses one; with it, the loop needs no timeout."""
        with self.stack.lock:
            self._interrupted = True
            self.wq.notify_all()

    def _ep_send_events(self, maxevents: int) -> list[tuple[EpItem, int]]:
        """Report the ready items whose sockets still have wanted events; level-triggered ones stay."""
        out: list[tuple[EpItem, int]] = []
        keep: list[EpItem] = []
        while self.rdllist and (maxevents == -1 or len(out) < maxevents):
            item = self.rdllist.popleft()
            item.on_rdllist = False
            revents = item.sock.poll_events() & (item.events | _ALWAYS) & ~_PRIVATE
            if not revents or item.disabled:
                continue
            out.append((item, revents))
            if item.events & EPOLLONESHOT:
                item.disabled = True
            elif not item.events & EPOLLET:
                keep.append(item)  # level-triggered: back on the list, checked again next time
        for item in keep:
            item.on_rdllist = True
            self.rdllist.append(item)
        self._sync_fd()
        return out

    # ---------------------------------------------------------------- the rest of the API
    def fileno(self) -> int:
        """An eventfd readable while the ready list is not empty (so an epoll can be select()ed)."""
        self._check_open()
        return self._efd.fd

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        with self.stack.lock:
            if self._closed:
                return
            for item in self.rbr.values():
                self._unhook(item)
            self.rbr.clear()
            self.rdllist.clear()
            self._closed = True
            self.wq.notify_all()
            self._efd.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _remove(self, item: EpItem) -> None:
        """Take an item out of the interest set, the socket's wait queue and the ready list."""
        if self.rbr.get(id(item.sock)) is item:
            del self.rbr[id(item.sock)]
        self._unhook(item)
        if item.on_rdllist:
            self.rdllist.remove(item)
            item.on_rdllist = False
        self._sync_fd()

    def _unhook(self, item: EpItem) -> None:
        item.sock._watchers[:] = [cb for cb in item.sock._watchers
                                  if getattr(cb, "epoll", None) is not self or cb.item is not item]

    def _key_of(self, sock) -> int:
        """The interest set's key: the socket's identity (no fd is made for it: see the module doc)."""
        if isinstance(sock, int):
            raise TypeError("tunstack epoll needs the socket object, not a bare fd")
        if sock.closed:
            raise OSError(errno.EBADF, "socket is closed")
        if getattr(sock, "stack", None) is not self.stack:  # its wake-ups come under another stack's lock
            raise PermissionError(errno.EPERM, "the socket belongs to another Stack than this epoll")
        return id(sock)

    def _item(self, sock) -> EpItem:
        item = self.rbr.get(self._key_of(sock))
        if item is None:
            raise FileNotFoundError(errno.ENOENT, "not registered")
        return item

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("I/O operation on closed epoll object")

    def _sync_fd(self) -> None:
        self._efd.set(bool(self.rdllist))
