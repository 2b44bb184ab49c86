"""Sockets with the standard library's names, semantics and errors, over a ``Stack``.

Each socket has a wait queue (a ``threading.Condition`` over the stack lock); blocking
calls sleep on it and the stack thread wakes them, as the course's "blocking I/O" slide
draws it. ``fileno()`` is a real eventfd that is readable exactly when the socket is
(data, EOF, an error or a pending connection), so ``select``/``selectors`` and the
standard library's ``socketserver`` work on these sockets unchanged.
"""
from __future__ import annotations

import errno
import os
import select as _select
import socket as _std
import threading
import time
from typing import Callable

from .readiness import ReadinessFd
from .tcp.states import State
from .wire.ipv4 import aton, ntoa

from .runtime.stack import Stack

AF_INET, SOCK_STREAM = _std.AF_INET, _std.SOCK_STREAM
SOL_SOCKET, IPPROTO_TCP = _std.SOL_SOCKET, _std.IPPROTO_TCP
SHUT_RD, SHUT_WR, SHUT_RDWR = _std.SHUT_RD, _std.SHUT_WR, _std.SHUT_RDWR
SO_REUSEADDR, SO_KEEPALIVE, SO_RCVBUF, SO_SNDBUF, SO_ERROR = (
    _std.SO_REUSEADDR, _std.SO_KEEPALIVE, _std.SO_RCVBUF, _std.SO_SNDBUF, _std.SO_ERROR)
TCP_NODELAY = _std.TCP_NODELAY
TCP_KEEPIDLE = getattr(_std, "TCP_KEEPIDLE", 4)
TCP_KEEPINTVL = getattr(_std, "TCP_KEEPINTVL", 5)
TCP_KEEPCNT = getattr(_std, "TCP_KEEPCNT", 6)
TCP_CONGESTION = getattr(_std, "TCP_CONGESTION", 13)
MSG_PEEK = _std.MSG_PEEK
MSG_DONTWAIT = _std.MSG_DONTWAIT
timeout = TimeoutError

_SYNCHRONIZED_SEND = (State.ESTABLISHED, State.CLOSE_WAIT)
# what a wake-up is about, as the poll key Linux passes to wait-queue callbacks (0: anything)
_WAKE_KEYS = {"readable": _select.EPOLLIN | _select.EPOLLRDNORM | _select.EPOLLRDHUP,
              "writable": _select.EPOLLOUT | _select.EPOLLWRNORM,
              "error": _select.EPOLLERR | _select.EPOLLHUP | _select.EPOLLIN | _select.EPOLLOUT}


def _err(code: int, what: str = "") -> OSError:
    """OSError(errno, strerror) becomes ConnectionResetError, BrokenPipeError, ... by itself."""
    return OSError(code, os.strerror(code) + (f" ({what})" if what else ""))


class socket:
    """A TCP socket on a tunstack ``Stack`` (``stack.socket()``)."""

    def __new__(cls, stack=None, family=None, type=None, *args, **kwargs):
        """SOCK_DGRAM (and any other type registered in ``Stack.socket_types``) makes that type's socket."""
        other = Stack.socket_types.get(type) if cls is socket else None
        return other(stack, family, type, *args, **kwargs) if other is not None else super().__new__(cls)

    def __init__(self, stack: "Stack", family=None, type=None, proto=0, _conn=None):
        family = AF_INET if family is None else family
        type = SOCK_STREAM if type is None else type
        if family != AF_INET or type != SOCK_STREAM:
            raise _err(errno.EAFNOSUPPORT if family != AF_INET else errno.EPROTONOSUPPORT,
                       "tunstack sockets are AF_INET/SOCK_STREAM")
        self.stack = stack
        self.family, self.type, self.proto = family, type, proto
        self._timeout: float | None = _std.getdefaulttimeout()
        self._cond = threading.Condition(stack.lock)
        self._local: tuple[bytes, int] | None = None
        self._listener = None
        self._conn = None
        self._closed = False
        self._real_closed = False
        self._bound = False                      # holds a port reservation in the layer (bind)
        self._io_refs = 0
        self._efd: ReadinessFd | None = None  # created by the first fileno()
        self._opts: dict[tuple[int, int], int] = {}
        self._watchers: list[Callable[[socket, int], None]] = []  # epoll entries' callbacks (sock, key)
        self._shut_rd = False
        self._err_reported = False
        if _conn is not None:
            self._attach(_conn)

    # ------------------------------------------------------------ wait queue
    def _attach(self, conn) -> None:
        self._conn = conn
        self._local = conn.local
        conn.notify = self.stack.deferred(self._wakeup)  # delivered after the segment is processed

    def _wakeup(self, what: str = "") -> None:
        """Wake sleepers and watchers (stack lock held): queued by the protocol objects through
        ``Stack.deferred`` and delivered by the runtime after processing; called directly by this module."""
        self._cond.notify_all()
        self._sync_fd()
        key = _WAKE_KEYS.get(what, 0)
        for cb in list(self._watchers):
            cb(self, key)

    def _wait(self, ready: Callable[[], bool], deadline: float | None, blocking_op: str) -> None:
        """Sleep on the wait queue until ``ready()``; EAGAIN for non-blocking, timeout after the deadline."""
        while not ready():
            if self._timeout == 0:
                raise BlockingIOError(errno.EAGAIN, f"{blocking_op} would block")
            if deadline is None:
                self._cond.wait()
            else:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("timed out")
                self._cond.wait(left)
            if self._real_closed:
                raise _err(errno.EBADF)

    def _deadline(self) -> float | None:
        return None if not self._timeout else time.monotonic() + self._timeout

    # ------------------------------------------------------------ readiness (poll/epoll/select)
    def readable(self) -> bool:
        if self._listener is not None:
            return self._listener.readable or self._listener.closed
        c = self._conn
        if c is None:
            return False
        return bool(c.rcvbuf) or c.rcv_closed or c.error != 0 or c.state is State.CLOSED or self._shut_rd

    def writable(self) -> bool:
        c = self._conn
        if c is None:
            return False
        if c.state in _SYNCHRONIZED_SEND:
            return c.send_space() > 0 and not c.fin_queued
        return c.state not in (State.SYN_SENT, State.SYN_RECEIVED)

    def poll_events(self) -> int:
        """The EPOLL* bits this socket reports now, computed as Linux's tcp_poll() does."""
        if self._listener is not None:
            return _select.EPOLLIN if self._listener.readable else 0
        c = self._conn
        if c is None:
            return _select.EPOLLHUP if self._closed else 0
        mask = 0
        if c.state is State.CLOSED or (c.rcv_closed and c.fin_queued):
            mask |= _select.EPOLLHUP  # both directions shut down
        if c.rcv_closed or self._shut_rd:
            mask |= _select.EPOLLIN | _select.EPOLLRDNORM | _select.EPOLLRDHUP  # the peer's FIN: EOF
        elif c.rcvbuf:
            mask |= _select.EPOLLIN | _select.EPOLLRDNORM
        if c.state not in (State.SYN_SENT, State.SYN_RECEIVED):
            if c.fin_queued or c.state not in _SYNCHRONIZED_SEND:
                mask |= _select.EPOLLOUT | _select.EPOLLWRNORM  # a write fails at once (EPIPE)
            elif c.send_space() > 0:
                mask |= _select.EPOLLOUT | _select.EPOLLWRNORM
        if c.error and not self._err_reported:
            mask |= _select.EPOLLERR
        return mask

    def fileno(self) -> int:
        """A real fd that is readable when this socket is; -1 once closed (like the standard library)."""
        if self._closed:
            return -1
        with self.stack.lock:
            if self._efd is None:
                self._efd = ReadinessFd()
                self._sync_fd()
            return self._efd.fd

    def _sync_fd(self) -> None:
        if self._efd is not None:
            self._efd.set(self.readable())

    # ------------------------------------------------------------ addresses
    def _resolve(self, address) -> tuple[bytes, int]:
        if not isinstance(address, tuple) or len(address) != 2:
            raise TypeError("AF_INET address must be a tuple (host, port)")
        host, port = address
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise OverflowError("port must be 0-65535.")
        if host in ("", "0.0.0.0"):
            return bytes(4), port
        if host == "localhost":
            host = self.stack.address_str
        try:
            return aton(host), port
        except OSError:
            raise _std.gaierror(_std.EAI_NONAME, "Name or service not known") from None

    def bind(self, address) -> None:
        addr, port = self._resolve(address)
        with self.stack.lock:
            self._check_open()
            if self._local is not None:
                raise _err(errno.EINVAL, "already bound")
            if addr not in (bytes(4), self.stack.address):
                raise _err(errno.EADDRNOTAVAIL)
            st = self.stack
            if port == 0:
                port = st.allocate_port(addr, (bytes(4), 0))
            elif st.port_in_use(addr, port):
                raise _err(errno.EADDRINUSE)
            self._local = (addr, port)
            st.bind((addr, port))  # reserved from now on, as bind(2) does
            self._bound = True

    def getsockname(self) -> tuple[str, int]:
        if self._local is None:
            return ("0.0.0.0", 0)
        addr, port = self._local
        return (ntoa(addr), port)

    def getpeername(self) -> tuple[str, int]:
        c = self._conn
        if c is None or c.state is State.SYN_SENT or (c.state is State.CLOSED and c.error):
            raise _err(errno.ENOTCONN)
        return (ntoa(c.remote[0]), c.remote[1])

    # ------------------------------------------------------------ passive open
    def listen(self, backlog: int = 128) -> None:
        with self.stack.lock:
            self._check_open()
            if self._conn is not None:
                raise _err(errno.EINVAL)
            if self._listener is not None:
                self._listener.backlog = max(1, backlog)
                return
            if self._local is None:
                self.bind(("", 0))
            self._local = self._local if self._local[0] != bytes(4) else (bytes(4), self._local[1])
            self._listener = self.stack.listen(self._local[0], self._local[1], backlog, reserved=self._bound)
            self._listener.notify = self.stack.deferred(self._wakeup)

    def accept(self):
        with self.stack.lock:
            self._check_open()
            lst = self._listener
            if lst is None:
                raise _err(errno.EINVAL, "not listening")
            self._wait(lambda: lst.readable or lst.closed, self._deadline(), "accept")
            if lst.closed:
                raise _err(errno.EBADF)
            conn = lst.accept()
            self._sync_fd()
            child = socket(self.stack, _conn=conn)
            child._timeout = None if _std.getdefaulttimeout() is None else _std.getdefaulttimeout()
            child._opts = dict(self._opts)
            child._apply_options(conn)
            return child, (ntoa(conn.remote[0]), conn.remote[1])

    # ------------------------------------------------------------ active open
    def connect(self, address) -> None:
        err = self._connect(address, raise_now=True)
        if err:
            raise _err(err)

    def connect_ex(self, address) -> int:
        try:
            return self._connect(address, raise_now=False)
        except BlockingIOError:
            return errno.EINPROGRESS
        except OSError as exc:
            return exc.errno or errno.EINVAL

    def _connect(self, address, raise_now: bool) -> int:
        remote = self._resolve(address)
        st = self.stack
        with st.lock:
            self._check_open()
            if self._listener is not None:
                raise _err(errno.EINVAL)
            if self._conn is not None and self._conn.state is State.CLOSED and not self._conn.rcv_closed:
                if self._conn.error and not self._err_reported:
                    self._err_reported = True  # the failed attempt's error, once (e.g. ECONNREFUSED)
                    return self._conn.error
                self._conn, self._err_reported = None, False  # then a new attempt, as Linux allows
            if self._conn is not None:
                if self._conn.state is State.SYN_SENT:
                    if self._timeout == 0:
                        raise BlockingIOError(errno.EALREADY, "connection in progress")
                else:
                    raise _err(errno.EISCONN)
            else:
                if remote[0][0] >= 224 or remote[0][0] == 0 or remote[0] == b"\xff" * 4:
                    raise _err(errno.ENETUNREACH, "TCP cannot connect to a broadcast or multicast address")
                local_addr = st.address
                port = self._local[1] if self._local else st.allocate_port(local_addr, remote)
                st.connect((local_addr, port), remote, setup=self._attach_before_syn)
                if self._timeout == 0:
                    raise BlockingIOError(errno.EINPROGRESS, "Operation now in progress")
            conn = self._conn
            self._wait(lambda: conn.state is not State.SYN_SENT and conn.state is not State.SYN_RECEIVED,
                       self._deadline(), "connect")
            if conn.error:
                return conn.error
            return 0

    # ------------------------------------------------------------ data
    def send(self, data, flags: int = 0) -> int:
        view = memoryview(data).cast("B") if not isinstance(data, (bytes, bytearray)) else data
        st = self.stack
        with st.lock:
            conn = self._connected()
            nonblock = self._timeout == 0 or flags & MSG_DONTWAIT
            if not view:
                self._check_send(conn)
                return 0
            deadline = self._deadline()
            while True:
                self._check_send(conn)
                n = st.call(conn, conn.send, view) if conn.send_space() > 0 else 0
                if n < 0:
                    raise _err(-n)
                if n > 0:
                    return n
                if nonblock:
                    raise BlockingIOError(errno.EAGAIN, "send would block")
                self._wait(lambda: conn.send_space() > 0 or conn.state not in _SYNCHRONIZED_SEND or conn.fin_queued,
                           deadline, "send")

    def _check_send(self, conn) -> None:
        if conn.error:
            raise _err(conn.error)
        if conn.fin_queued or conn.state not in _SYNCHRONIZED_SEND:
            raise _err(errno.EPIPE)

    def sendall(self, data, flags: int = 0) -> None:
        view = memoryview(data).cast("B")
        total = len(view)
        sent = 0
        deadline = self._deadline()
        while sent < total:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError("timed out")
            sent += self.send(view[sent:], flags)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if bufsize < 0:
            raise ValueError("negative buffersize in recv")
        return self._receive(bufsize, flags, None)

    def recv_into(self, buffer, nbytes: int = 0, flags: int = 0) -> int:
        view = memoryview(buffer).cast("B")
        if nbytes < 0:
            raise ValueError("negative buffersize in recv_into")
        n = min(nbytes or len(view), len(view))
        return self._receive(n, flags, view[:n])

    def _receive(self, n: int, flags: int, into: memoryview | None):
        """recv/recv_into: wait (unless non-blocking) for data, EOF or an error; then copy once."""
        empty = b"" if into is None else 0
        st = self.stack
        with st.lock:
            conn = self._connected(reading=True)
            if n == 0:
                return empty
            if not (self._timeout == 0 or flags & MSG_DONTWAIT):
                self._wait(lambda: self.readable(), self._deadline(), "recv")
            if conn.rcvbuf:
                if flags & MSG_PEEK:
                    data = bytes(conn.rcvbuf[:n])
                    if into is None:
                        return data
                    into[:len(data)] = data
                    return len(data)
                result = st.call(conn, conn.recv, n) if into is None else st.call(conn, conn.recv_into, into)
                self._sync_fd()
                return result
            if conn.error and not self._err_reported:
                self._err_reported = True  # reported once, like sock_error(); then EOF
                raise _err(conn.error)
            if conn.rcv_closed or self._shut_rd or conn.state is State.CLOSED:
                return empty
            raise BlockingIOError(errno.EAGAIN, "recv would block")

    def _connected(self, reading: bool = False):
        self._check_open()
        if self._conn is None:
            raise _err(errno.ENOTCONN)
        return self._conn

    def _check_open(self) -> None:
        if self._real_closed:  # close() with live makefile() objects defers the real close, as CPython does
            raise _err(errno.EBADF)

    # ------------------------------------------------------------ close
    def shutdown(self, how: int) -> None:
        st = self.stack
        with st.lock:
            conn = self._connected()
            if how in (SHUT_RD, SHUT_RDWR):
                self._shut_rd = True
                self._wakeup()
            if how in (SHUT_WR, SHUT_RDWR):
                st.call(conn, conn.shutdown_write)

    def close(self) -> None:
        """Like the standard library: the real close waits until every makefile() object is closed."""
        self._closed = True
        if self._io_refs <= 0:
            self._real_close()

    def _decref_socketios(self) -> None:
        if self._io_refs > 0:
            self._io_refs -= 1
        if self._closed:
            self._real_close()

    def _real_close(self) -> None:
        st = self.stack
        with st.lock:
            if self._real_closed:
                return
            self._real_closed = True
            if self._bound:
                st.unbind(self._local)
                self._bound = False
            if self._listener is not None:
                st.unlisten(self._listener)
                self._listener.notify = lambda what: None
                self._listener = None
            elif self._conn is not None:
                conn = self._conn
                conn.notify = lambda what: None
                if conn.state is not State.CLOSED:
                    st.call(conn, conn.close)
            self._cond.notify_all()
            for cb in list(self._watchers):
                cb(self, 0)
            if self._efd is not None:
                self._efd.close()
                self._efd = None

    def detach(self):
        raise _err(errno.EOPNOTSUPP, "tunstack sockets have no kernel fd to detach")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            if self._efd is not None:
                self._efd.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        state = "listening" if self._listener else (self._conn.state.name if self._conn else "unconnected")
        return f"<tunstack.socket {self.getsockname()} {state}>"

    # ------------------------------------------------------------ options and modes
    def settimeout(self, value: float | None) -> None:
        if value is not None:
            value = float(value)
            if value < 0:
                raise ValueError("Timeout value out of range")
        self._timeout = value

    def gettimeout(self) -> float | None:
        return self._timeout

    def setblocking(self, flag: bool) -> None:
        self._timeout = None if flag else 0.0

    def getblocking(self) -> bool:
        return self._timeout != 0

    def setsockopt(self, level: int, option: int, value) -> None:
        if level == IPPROTO_TCP and option == TCP_CONGESTION:
            from .tcp import congestion
            name = value.decode() if isinstance(value, (bytes, bytearray)) else str(value)
            name = name.rstrip("\0")
            if name not in congestion.ALGORITHMS:
                raise _err(errno.ENOENT, f"unknown congestion control {name!r}")
            self._opts[(level, option)] = name
        else:
            value = int(value)
            if (level, option) in ((IPPROTO_TCP, TCP_KEEPIDLE), (IPPROTO_TCP, TCP_KEEPINTVL),
                                   (IPPROTO_TCP, TCP_KEEPCNT)) and value < 1:
                raise _err(errno.EINVAL, "keepalive idle, interval and count must be at least 1")
            self._opts[(level, option)] = value
        with self.stack.lock:
            conn = self._conn
            if conn is not None:
                self.stack.call(conn, lambda now: self._apply_options(conn))

    def getsockopt(self, level: int, option: int, buflen: int | None = None):
        with self.stack.lock:
            c = self._conn
            if (level, option) == (SOL_SOCKET, SO_ERROR):
                if c is not None and c.error and not self._err_reported:
                    self._err_reported = True  # like sock_error(): the pending error, once
                    return c.error
                return 0
            if (level, option) == (IPPROTO_TCP, TCP_CONGESTION):
                name = c.cc.name if c else self._opts.get((level, option), self.stack.tcp_config.congestion)
                return name.encode()
            config = self.stack.tcp_config
            if (level, option) == (SOL_SOCKET, SO_RCVBUF):
                return c.rcvbuf_cap if c else self._opts.get((level, option), config.rcvbuf)
            if (level, option) == (SOL_SOCKET, SO_SNDBUF):
                return c.sndbuf_cap if c else self._opts.get((level, option), config.sndbuf)
            return self._opts.get((level, option), 0)

    def _attach_before_syn(self, conn) -> None:
        """connect(): the new connection gets this socket's wait queue and options before its SYN goes out
        (a connection to our own address may complete within the call)."""
        self._attach(conn)
        self._apply_options(conn)

    def _apply_options(self, conn) -> None:
        """Push stored options into the connection (before the SYN for connect())."""
        now = self.stack.clock()
        for (level, option), value in self._opts.items():
            if (level, option) == (IPPROTO_TCP, TCP_NODELAY):
                conn.nodelay = bool(value)
            elif (level, option) == (SOL_SOCKET, SO_KEEPALIVE):
                conn.set_keepalive(bool(value), now)
            elif (level, option) == (IPPROTO_TCP, TCP_KEEPIDLE):
                conn.keepalive_idle = float(value)
            elif (level, option) == (IPPROTO_TCP, TCP_KEEPINTVL):
                conn.keepalive_interval = float(value)
            elif (level, option) == (IPPROTO_TCP, TCP_KEEPCNT):
                conn.keepalive_count = int(value)
            elif (level, option) == (SOL_SOCKET, SO_RCVBUF) and conn.state in (State.CLOSED, State.SYN_SENT):
                conn.rcvbuf_cap = max(2048, int(value))
            elif (level, option) == (SOL_SOCKET, SO_SNDBUF):
                conn.sndbuf_cap = max(2048, int(value))
            elif (level, option) == (IPPROTO_TCP, TCP_CONGESTION):
                conn.set_congestion(value, now)
        if conn.keepalive_enabled:
            conn.set_keepalive(True, now)

    makefile = _std.socket.makefile

    @property
    def closed(self) -> bool:
        return self._closed

    def info(self) -> dict:
        """TCP_INFO-like view of the connection (see ``Connection.info``)."""
        with self.stack.lock:
            return self._conn.info() if self._conn else {}


Stack.socket_type = socket  # Stack.socket() makes these; registered from above: the runtime never imports us
