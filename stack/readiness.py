"""A real file descriptor whose poll mask is exactly what our socket reports.

Our sockets and epoll objects live in Python, but ``select``, ``poll``, ``epoll``,
``selectors``, asyncio and the standard library's ``socketserver`` want file descriptors.
Each socket keeps one ``ReadinessFd`` and tells it, whenever its readiness may have
changed, whether it is readable (``set``), writable (``set_writable``), in error
(``set_error``) or hung up (``set_hangup``).

How: the fd handed out is one end X of an AF_UNIX stream socketpair (X, Y) with the
smallest buffers Linux allows, and the kernel's own ``unix_poll()`` computes the mask:

- readable  <=> one byte sent from Y is queued on X (``set(False)`` reads it back);
- writable  <=> X's send path is not full. Linux's ``unix_writable()`` says writable while
  ``sk_wmem_alloc * 4 <= sk_sndbuf``; a stream skb stays charged to X until Y reads it.
  So "not writable" = send from X until EAGAIN (measured on Linux 6.x: one 4480-byte skb
  fills a 4608-byte sndbuf), "writable" = Y reads everything back (the skb is freed in one
  go, so the writer side sees exactly one wake-up, as edge-triggered epoll needs);
- a new arrival while already readable (``wake_readable``) = one more byte from Y: a new
  wake-up, so edge-triggered epoll reports it as Linux's sk_data_ready does;
- read hang-up (``set_read_hangup``, the peer's FIN) = Y shuts down its sending side: X reports
  POLLIN|POLLRDHUP from then on (final, as a FIN is);
- error     = X sends a byte that Y leaves unread, then Y closes: Linux's
  ``unix_release_sock()`` sets ``sk_err = ECONNRESET`` and both shutdown bits on X, so X
  reports POLLIN|POLLOUT|POLLERR|POLLHUP|POLLRDHUP, exactly what tcp_poll() reports for a
  reset connection. Final: there is no way back, as for TCP;
- hangup    = X sends a byte that Y leaves unread, then shuts down both ways
  (POLLIN|POLLOUT|POLLHUP|POLLRDHUP, tcp_poll()'s mask for a connection closed in both
  directions). Final as well, but for an error: a reset that follows (data after our FIN, with
  reading shut) closes Y, and POLLERR joins the hang-up, as tcp_poll() shows sk_err beside it.

``set(ready)`` keeps its old meaning (readable) and ``ReadinessFd()`` starts not readable
and writable, as the eventfd it replaces did; a socket passes ``writable=False`` for a
socket that cannot send yet.
"""
from __future__ import annotations

import errno
import os
import select as _select
import socket as _std

_CHUNK = bytes(65536)


def _small(s: _std.socket) -> None:
    s.setblocking(False)
    s.setsockopt(_std.SOL_SOCKET, _std.SO_SNDBUF, 1)  # clamped up to SOCK_MIN_SNDBUF
    s.setsockopt(_std.SOL_SOCKET, _std.SO_RCVBUF, 1)


class ReadinessFd:
    """``fd`` polls readable/writable/error/hang-up exactly as told; ``close()`` frees both ends."""

    def __init__(self, readable: bool = False, writable: bool = True):
        self._x, self._y = _std.socketpair(_std.AF_UNIX, _std.SOCK_STREAM)
        for s in (self._x, self._y):
            s.set_inheritable(False)
            _small(s)
        self.fd = self._x.fileno()
        self._readable = False
        self._writable = True   # a fresh socketpair end is writable
        self._final = False     # after set_error/set_hangup nothing changes any more
        self._rdhup = False     # after set_read_hangup X stays readable
        self._err = False       # POLLERR showing (set_error until clear_error)
        self._unconnected = False  # fd is an unconnected unix socket: POLLOUT|POLLHUP only
        self._hup = False       # final by set_hangup, with an error still possible (set_error)
        self._synced: int | None = None  # the mask of the last sync(), while nothing else changed the fd
        self.set(readable)
        self.set_writable(writable)

    @property
    def readable(self) -> bool:
        return self._readable

    @property
    def writable(self) -> bool:
        return self._writable

    def set(self, ready: bool) -> None:
        """Readable while ``ready`` (the name predates writability; kept for callers)."""
        self._synced = None
        if self._final or self._rdhup or self.fd < 0 or bool(ready) == self._readable:
            return
        self._pair()
        if ready:
            self._y.send(b"r")
        else:
            _drain(self._x)
        self._readable = bool(ready)

    set_readable = set

    def wake_readable(self) -> None:
        """Readable, and a fresh wake-up even if it already was (new data: one edge-triggered event)."""
        self._synced = None
        if self._final or self._rdhup or self.fd < 0:
            return
        self._pair()
        try:
            self._y.send(b"r")
        except BlockingIOError:  # Y's tiny send buffer holds a few pokes at most: start again
            _drain(self._x)
            self._y.send(b"r")
        self._readable = True

    def set_read_hangup(self) -> None:
        """POLLIN|POLLRDHUP from now on (the peer's FIN); writability stays settable."""
        self._synced = None
        if self._final or self._rdhup or self.fd < 0:
            return
        self._pair()
        self._y.shutdown(_std.SHUT_WR)
        self._readable = self._rdhup = True

    def set_writable(self, ready: bool) -> None:
        self._synced = None
        if self._final or self.fd < 0 or bool(ready) == self._writable:
            return
        self._pair()
        if ready:
            _drain(self._y)
        else:
            _fill(self._x)
        self._writable = bool(ready)

    def set_error(self) -> None:
        """POLLERR|POLLHUP|POLLIN|POLLOUT|POLLRDHUP from now on (a reset connection); final."""
        self._synced = None
        if self.fd < 0 or (self._final and not self._hup):
            return
        if not self._hup:  # (a hang-up sent its byte already)
            self._pair()
            _drain(self._y)
            try:
                self._x.send(b"e")  # left unread in Y: closing Y then reports ECONNRESET on X
            except BlockingIOError:
                pass
        self._y.close()
        self._readable = self._writable = self._final = self._err = True
        self._hup = False

    def clear_error(self) -> None:
        """POLLERR off (the error was reported, as reading SO_ERROR clears sk_err); the hang-up stays."""
        self._synced = None
        if self._err and self.fd >= 0:
            self._x.getsockopt(_std.SOL_SOCKET, _std.SO_ERROR)  # sock_error(): sk_err = 0
            self._err = False

    def sync(self, mask: int) -> None:
        """Show the EPOLL* bits of ``mask`` (what tcp_poll() would return): the one call a socket needs.

        POLLERR comes with POLLHUP: Linux gives a unix socket an error only when its peer goes away.
        POLLHUP without POLLIN is a fresh socket (``set_unconnected``). A mask that drops a final
        bit (a socket connecting again after a failed attempt) gets a fresh pair behind the same fd.
        The fd's state is a function of the last mask synced, so the same mask again is no work
        (an ACK that frees send space without making the socket writable: sk_write_space's test).
        """
        if self.fd < 0 or mask == self._synced:
            return
        self._sync(mask)
        self._synced = mask

    def _sync(self, mask: int) -> None:
        if mask & _select.EPOLLHUP and not mask & (_select.EPOLLIN | _select.EPOLLERR):
            self.set_unconnected()
            return
        if (self._unconnected or (self._final and not mask & (_select.EPOLLHUP | _select.EPOLLERR))
                or (self._rdhup and not mask & _select.EPOLLRDHUP)):
            self._reopen()
        if mask & _select.EPOLLERR and not self._err and (not self._final or self._hup):
            self.set_error()
        elif mask & _select.EPOLLHUP and not self._final:
            self.set_hangup()
        if self._err and not mask & _select.EPOLLERR:
            self.clear_error()
        if mask & _select.EPOLLRDHUP:
            self.set_read_hangup()
        self.set(bool(mask & _select.EPOLLIN))
        self.set_writable(bool(mask & _select.EPOLLOUT))

    def set_unconnected(self) -> None:
        """POLLOUT|POLLHUP and nothing else: what tcp_poll() reports for a fresh (CLOSE) socket.

        An unconnected AF_UNIX stream socket reports exactly that (unix_poll(): TCP_CLOSE -> POLLHUP,
        nothing queued -> writable). The fd number stays; its open file is replaced (dup2), so an
        epoll registration made before the switch does not carry over (select/poll are unaffected)."""
        self._synced = None
        if self.fd < 0 or self._unconnected:
            return
        x = _std.socket(_std.AF_UNIX, _std.SOCK_STREAM)
        _small(x)
        self._replace(x, None)
        self._unconnected = True

    def _pair(self) -> None:
        if self._unconnected:
            self._reopen()

    def _reopen(self) -> None:
        """A fresh pair behind the same fd number: not readable, writable, nothing final."""
        x, y = _std.socketpair(_std.AF_UNIX, _std.SOCK_STREAM)
        for s in (x, y):
            _small(s)
        self._replace(x, y)

    def _replace(self, x: _std.socket, y: _std.socket | None) -> None:
        os.dup2(x.fileno(), self.fd, inheritable=False)  # self._x now wraps the new open file
        x.close()
        if self._y is not None:
            self._y.close()
        self._y = y
        self._readable = self._final = self._rdhup = self._err = self._unconnected = self._hup = False
        self._writable = True
        self._synced = None

    def set_hangup(self) -> None:
        """POLLHUP|POLLIN|POLLOUT|POLLRDHUP from now on (closed both ways); final."""
        self._synced = None
        if self._final or self.fd < 0:
            return
        self._pair()
        _drain(self._y)
        self._x.send(b"h")  # left unread in Y, as set_error's: a reset after the hang-up can still show
        self._x.shutdown(_std.SHUT_RDWR)
        self._readable = self._writable = self._final = self._hup = True

    def close(self) -> None:
        if self.fd >= 0:
            self._x.close()
            if self._y is not None:
                self._y.close()
            self.fd = -1


def _drain(s: _std.socket) -> None:
    try:
        while s.recv(65536):
            pass
    except BlockingIOError:
        pass


def _fill(s: _std.socket) -> None:
    try:
        while True:
            s.send(_CHUNK)
    except BlockingIOError:
        pass
    except OSError as exc:  # the peer end is gone: nothing to fill
        if exc.errno not in (errno.EPIPE, errno.ECONNRESET):
            raise
