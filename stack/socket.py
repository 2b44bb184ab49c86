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
import struct
import threading
import time
import weakref
from typing import Callable

from . import tcpinfo
from .readiness import ReadinessFd
from .sockmodes import SocketCommon, _err, option_value, parse_timeval, timeval_of
from .tcp.states import State
from .wire.ipv4 import aton, ntoa

from .runtime.stack import Stack

AF_INET, SOCK_STREAM = _std.AF_INET, _std.SOCK_STREAM
SOL_SOCKET, IPPROTO_TCP = _std.SOL_SOCKET, _std.IPPROTO_TCP
SHUT_RD, SHUT_WR, SHUT_RDWR = _std.SHUT_RD, _std.SHUT_WR, _std.SHUT_RDWR
IPPROTO_IP = _std.IPPROTO_IP
SO_REUSEADDR, SO_KEEPALIVE, SO_RCVBUF, SO_SNDBUF, SO_ERROR = (
    _std.SO_REUSEADDR, _std.SO_KEEPALIVE, _std.SO_RCVBUF, _std.SO_SNDBUF, _std.SO_ERROR)
SO_RCVLOWAT, SO_LINGER = _std.SO_RCVLOWAT, _std.SO_LINGER
SO_RCVTIMEO, SO_SNDTIMEO = _std.SO_RCVTIMEO, _std.SO_SNDTIMEO
_RCVTIMEO, _SNDTIMEO = (SOL_SOCKET, SO_RCVTIMEO), (SOL_SOCKET, SO_SNDTIMEO)  # the blocking waits' limits
TCP_NODELAY = _std.TCP_NODELAY
TCP_KEEPIDLE = getattr(_std, "TCP_KEEPIDLE", 4)
TCP_KEEPINTVL = getattr(_std, "TCP_KEEPINTVL", 5)
TCP_KEEPCNT = getattr(_std, "TCP_KEEPCNT", 6)
TCP_CONGESTION = getattr(_std, "TCP_CONGESTION", 13)
TCP_MAXSEG = _std.TCP_MAXSEG
TCP_USER_TIMEOUT = getattr(_std, "TCP_USER_TIMEOUT", 18)
TCP_QUICKACK = getattr(_std, "TCP_QUICKACK", 12)
TCP_INFO = getattr(_std, "TCP_INFO", 11)
MSG_PEEK, MSG_DONTWAIT, MSG_WAITALL = _std.MSG_PEEK, _std.MSG_DONTWAIT, _std.MSG_WAITALL
MSG_OOB, MSG_ERRQUEUE, MSG_TRUNC = _std.MSG_OOB, _std.MSG_ERRQUEUE, _std.MSG_TRUNC
# the socket-level state beside the TCP state (struct socket's SS_*): what connect() decides on
_UNCONNECTED, _CONNECTING, _CONNECTED = "unconnected", "connecting", "connected"
timeout = TimeoutError

_SYNCHRONIZED_SEND = (State.ESTABLISHED, State.CLOSE_WAIT)
_HANDSHAKE = (State.SYN_SENT, State.SYN_RECEIVED)
_POLL_IN = _select.EPOLLIN | _select.EPOLLERR | _select.EPOLLHUP    # what CPython's poll(POLLIN) wakes on
_POLL_OUT = _select.EPOLLOUT | _select.EPOLLERR | _select.EPOLLHUP
_SK_CLOSE = (State.CLOSED, State.TIME_WAIT)  # Linux's sk_state TCP_CLOSE (a TIME-WAIT is a separate mini-socket)


# what a wake-up is about, as the poll key Linux passes to wait-queue callbacks (0: anything)
_WAKE_KEYS = {"readable": _select.EPOLLIN | _select.EPOLLRDNORM | _select.EPOLLRDHUP,
              "writable": _select.EPOLLOUT | _select.EPOLLWRNORM,
              "error": _select.EPOLLERR | _select.EPOLLHUP | _select.EPOLLIN | _select.EPOLLOUT}


def _ignore(what: str = "") -> None:
    pass


class socket(SocketCommon):
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
        self._err_reported = False                # the connection's error was reported (sock_error())
        self._ss = _UNCONNECTED
        self._shared: _Shared | None = None       # with dup(): the sockets sharing the connection
        self._port_locked = False                 # bind() was given the port (SOCK_BINDPORT_LOCK)
        self._has_port = False                    # _local's port is ours (inet_num != 0)
        if _conn is not None:
            self._attach(_conn)

    # ------------------------------------------------------------ wait queue
    def _attach(self, conn) -> None:
        self._conn = conn
        self._local, self._has_port = conn.local, True
        conn.notify = self.stack.deferred(self._wakeup)  # delivered after the segment is processed
        if self._efd is not None:
            self._sync_fd()

    def _wakeup(self, what: str = "") -> None:
        """Wake sleepers and watchers (stack lock held): queued by the protocol objects through
        ``Stack.deferred`` and delivered by the runtime after processing; called directly by this module."""
        lst = self._listener
        if what == "readable" and lst is not None:
            # inet_csk_wait_for_connect(): accept() sleeps exclusively; one sleeper per queued
            # connection is woken, not every acceptor of a pool (a thundering herd on the GIL)
            self._cond.notify(len(lst.accept_queue))
        else:
            self._cond.notify_all()
        if self._efd is not None:
            if what == "readable" and not self._err_reported:
                self._efd.wake_readable()  # sk_data_ready: a new event for edge-triggered epoll
            self._sync_fd()
        if self._watchers:
            key = _WAKE_KEYS.get(what, 0)
            for cb in list(self._watchers):
                cb(self, key)

    def _released(self) -> bool:
        return self._real_closed

    # ------------------------------------------------------------ readiness (poll/epoll/select)
    def readable(self) -> bool:
        if self._listener is not None:
            return self._listener.readable or self._listener.closed
        c = self._conn
        if c is None:
            return False
        return (len(c.rcvbuf) >= self._rcvlowat() or c.rcv_closed or (c.error != 0 and not self._err_reported)
                or c.state is State.CLOSED or self._shut_rd)

    def writable(self) -> bool:
        return bool(self.poll_events() & _select.EPOLLOUT)

    def poll_events(self) -> int:
        """The EPOLL* bits this socket reports now, computed as Linux's tcp_poll() does."""
        if self._listener is not None:
            return _select.EPOLLIN | _select.EPOLLRDNORM if self._listener.readable else 0  # inet_csk_listen_poll
        c = self._conn
        if c is None:  # TCP_CLOSE, nothing shut down: POLLHUP, and writable (an empty send queue)
            return _select.EPOLLOUT | _select.EPOLLWRNORM | _select.EPOLLHUP
        closed = c.state in _SK_CLOSE            # tcp_done() sets sk_shutdown = SHUTDOWN_MASK
        rcv_shut = closed or c.rcv_closed or self._shut_rd
        snd_shut = closed or c.fin_queued
        mask = 0
        if rcv_shut and snd_shut:
            mask |= _select.EPOLLHUP
        if rcv_shut:
            mask |= _select.EPOLLIN | _select.EPOLLRDNORM | _select.EPOLLRDHUP
        if c.state not in _HANDSHAKE:
            if len(c.rcvbuf) >= self._rcvlowat():
                mask |= _select.EPOLLIN | _select.EPOLLRDNORM
            if snd_shut or c.stream_writeable():
                mask |= _select.EPOLLOUT | _select.EPOLLWRNORM
            else:
                c.nospace = True  # tcp_poll(): whoever asked waits for the write space (SOCK_NOSPACE)
        if c.error and not self._err_reported:
            mask |= _select.EPOLLERR
        return mask

    def fileno(self) -> int:
        """A real fd that polls exactly as this socket (``poll_events``); -1 once closed (like the standard library)."""
        if self._closed:
            return -1
        with self.stack.lock:
            if self._efd is None:
                self._efd = ReadinessFd(False, False)
                self._sync_fd()
            return self._efd.fd

    def _sync_fd(self) -> None:
        if self._efd is not None:
            self._efd.sync(self.poll_events())

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
            if self._local is not None and self._has_port:
                raise _err(errno.EINVAL, "already bound")
            if addr not in (bytes(4), self.stack.address):
                raise _err(errno.EADDRNOTAVAIL)
            st = self.stack
            self._port_locked = port != 0  # SOCK_BINDPORT_LOCK: kept across a disconnect
            if port == 0:
                port = st.allocate_port(addr, (bytes(4), 0))
            elif self._bind_conflict(addr, port):
                raise _err(errno.EADDRINUSE)
            self._local = (addr, port)
            st.bind((addr, port))  # reserved from now on, as bind(2) does
            self._bound = self._has_port = True
            _holders(st).add(self)

    def _autobind(self) -> None:
        """inet_autobind(): a port for listen() without bind (the address bind() gave stays)."""
        addr = self._local[0] if self._local else bytes(4)
        self._local = None
        self.bind((ntoa(addr), 0))
        self._port_locked = False

    def _bind_conflict(self, addr: bytes, port: int) -> bool:
        """inet_csk_bind_conflict(): every socket holding the port (bound, listening, connected, in
        TIME-WAIT) conflicts unless both set SO_REUSEADDR and the other one is not listening."""
        reuse = bool(self._opts.get((SOL_SOCKET, SO_REUSEADDR)))
        if not reuse and self.stack.port_in_use(addr, port):
            return True
        wild = bytes(4)
        overlap = (lambda a: a == addr or a == wild or addr == wild)
        for other in list(_holders(self.stack)):
            if other is self or other._real_closed or not other._has_port or other._conn is not None:
                continue
            if other._local[1] == port and overlap(other._local[0]):
                if not (reuse and other._opts.get((SOL_SOCKET, SO_REUSEADDR)) and other._listener is None):
                    return True
        for conn in self.stack.connections_on(port):
            if conn.state is not State.CLOSED and overlap(conn.local[0]) and not (reuse and conn.sk_reuse):
                return True
        return False


    def getsockname(self) -> tuple[str, int]:
        if self._local is None:
            return ("0.0.0.0", 0)
        addr, port = self._local
        return (ntoa(addr), port)

    def getpeername(self) -> tuple[str, int]:
        c = self._conn
        if c is None or c.state is State.SYN_SENT or c.state in _SK_CLOSE:  # inet_getname(): CLOSE or SYN-SENT
            raise _err(errno.ENOTCONN)
        return (ntoa(c.remote[0]), c.remote[1])

    # ------------------------------------------------------------ passive open
    def listen(self, backlog: int = 128) -> None:
        with self.stack.lock:
            self._check_open()
            if self._conn is not None and self._conn.state not in _SK_CLOSE or self._ss != _UNCONNECTED:
                raise _err(errno.EINVAL)  # inet_listen(): only an unconnected socket in CLOSE
            if self._listener is not None:
                self._listener.backlog = max(1, backlog)
                return
            if self._local is None or not self._has_port:
                self._autobind()
            self._listener = self.stack.listen(self._local[0], self._local[1], backlog, reserved=self._bound)
            self._listener.notify = self.stack.deferred(self._wakeup)
            self._listener.setup = self._setup_embryo
            _listener_buffers(self)
            self._conn = None
            _holders(self.stack).add(self)
            self._sync_fd()

    def accept(self):
        with self.stack.lock:
            self._check_open()
            lst = self._listener
            if lst is None:
                raise _err(errno.EINVAL, "not listening")
            self._wait(lambda: lst.readable or lst.closed, self._deadline(_RCVTIMEO), "accept")
            if lst.closed:
                raise _err(errno.EBADF)
            conn = lst.accept()
            self._sync_fd()
            child = socket(self.stack, _conn=conn)
            child._ss = _CONNECTED
            child._timeout = None if _std.getdefaulttimeout() is None else _std.getdefaulttimeout()
            child._opts = dict(self._opts)  # inherited, as sk_clone_lock() copies the listener
            child._apply_options(conn)
            return child, (ntoa(conn.remote[0]), conn.remote[1])

    def _accept(self):
        """socketserver/asyncio call ``sock._accept()`` on the standard library's class: (our socket, address)."""
        return self.accept()

    # ------------------------------------------------------------ active open
    def connect(self, address) -> None:
        err = self._connect(address)
        if err is None:
            raise TimeoutError("timed out")
        if err:
            raise _err(err)

    def connect_ex(self, address) -> int:
        try:
            err = self._connect(address)
        except (TypeError, OverflowError, _std.gaierror):
            raise  # as CPython: a bad address raises, only the connect's own error is returned
        except OSError as exc:
            return exc.errno or errno.EINVAL
        return errno.EWOULDBLOCK if err is None else err  # CPython's timeout is SOCK_TIMEOUT_ERR

    def _connect(self, address) -> int | None:
        """What CPython's internal_connect() does over __inet_stream_connect(): the errno, None on timeout.

        Blocking: the kernel waits. Timeout: CPython connects non-blocking, waits for POLLOUT, then
        reads SO_ERROR (so the socket stays SS_CONNECTING). Non-blocking: EINPROGRESS."""
        remote = self._resolve(address)
        with self.stack.lock:
            self._check_open()
            if self._timeout is None:
                return self._inet_stream_connect(remote, wait=True)
            err = self._inet_stream_connect(remote, wait=False)
            if err != errno.EINPROGRESS or self._timeout == 0:
                return err
            conn = self._conn
            try:
                self._wait(lambda: conn.state not in _HANDSHAKE, self._deadline(), "connect")
            except TimeoutError:
                return None
            err = self._sock_error()
            return 0 if err == errno.EISCONN else err

    def _inet_stream_connect(self, remote, wait: bool) -> int:
        """net/ipv4/af_inet.c __inet_stream_connect(): the socket-level state decides first."""
        if self._ss == _CONNECTED:
            return errno.EISCONN
        if self._ss == _CONNECTING:
            err = errno.EALREADY
        else:
            if self._listener is not None or (self._conn is not None and self._conn.state not in _SK_CLOSE):
                return errno.EISCONN
            self._tcp_v4_connect(remote)
            self._ss, err = _CONNECTING, errno.EINPROGRESS
        conn = self._conn
        if conn.state in _HANDSHAKE:
            if not wait:
                return err
            try:  # inet_wait_for_connect(), for SO_SNDTIMEO at most: then EINPROGRESS, still connecting
                self._wait(lambda: conn.state not in _HANDSHAKE, self._deadline(_SNDTIMEO), "connect")
            except BlockingIOError:
                return err
        if conn.state in _SK_CLOSE:  # RST, timeout, ICMP error
            err = self._sock_error() or errno.ECONNABORTED
            self._disconnect()
            return err
        self._ss = _CONNECTED
        return 0

    def _tcp_v4_connect(self, remote) -> None:
        if remote[0][0] >= 224 or remote[0][0] == 0 or remote[0] == b"\xff" * 4:
            raise _err(errno.ENETUNREACH, "TCP cannot connect to a broadcast or multicast address")
        st = self.stack
        self._conn, self._err_reported = None, False
        port = self._local[1] if self._local and self._has_port else st.allocate_port(st.address, remote)
        st.connect((st.address, port), remote, setup=self._attach_before_syn)
        _holders(st).add(self)
        self._sync_fd()

    def _disconnect(self) -> None:
        """tcp_disconnect(): back to a fresh CLOSE socket; an automatically chosen port is released."""
        conn = self._conn
        if conn is not None:
            conn.notify = _ignore
            if conn.state is not State.CLOSED:
                self.stack.call(conn, conn.abort)
        self._conn, self._err_reported, self._shut_rd = None, False, False
        self._ss = _UNCONNECTED
        self._release_port()
        self._sync_fd()

    def _release_port(self) -> None:
        """tcp_set_state(CLOSE) -> inet_put_port() unless bind() chose the port; a bound address stays."""
        if self._port_locked or self._local is None:
            return
        if self._bound:
            self.stack.unbind(self._local)
            self._bound = False
        self._has_port = False  # getsockname() still shows it (inet_sport), as Linux does

    def _sock_error(self) -> int:
        """sock_error(): the pending error, once (SO_ERROR, send, recv and connect all consume it)."""
        c = self._conn
        if c is not None and c.error and not self._err_reported:
            self._err_reported = True
            self._sync_fd()
            if c.error == errno.ECONNRESET and c.rcv_closed:
                # RFC 9293's "connection reset" after the peer's FIN (an RST in CLOSE-WAIT): Linux's
                # tcp_reset() reports it as EPIPE there, the reader having had its EOF already
                return errno.EPIPE
            return c.error
        return 0

    # ------------------------------------------------------------ data
    def send(self, data, flags: int = 0) -> int:
        """tcp_sendmsg(); with a timeout, as CPython: poll for POLLOUT, then a non-blocking send, until the deadline."""
        view = memoryview(data).cast("B") if not isinstance(data, (bytes, bytearray)) else data
        if flags & MSG_OOB:  # Linux sends it as urgent data: refused, not sent in-band (docs/api.md)
            raise _err(errno.EOPNOTSUPP, "urgent data (MSG_OOB) cannot be sent (docs/conformance.md)")
        with self.stack.lock:
            self._check_open()
            timed = bool(self._timeout)
            nonblock = timed or self._timeout == 0 or bool(flags & MSG_DONTWAIT)
            deadline = self._deadline(_SNDTIMEO)
            while True:
                if timed:
                    self._wait(lambda: self.poll_events() & _POLL_OUT, deadline, "send")
                try:
                    return self._send_once(view, nonblock, deadline)
                except BlockingIOError:
                    if not timed:  # CPython retries poll()+send() on EAGAIN until the deadline
                        raise

    def _send_once(self, view, nonblock: bool, deadline) -> int:
        """tcp_sendmsg_locked(): queue what fits; non-blocking, return that (EAGAIN if nothing); blocking,
        wait for room and go on until all of it is queued. An error, a shutdown or SO_SNDTIMEO running
        out after some was queued returns the count so far (its ``do_error``/``out``), else raises."""
        st = self.stack
        total, sent = len(view), 0
        while True:
            conn = self._conn
            if sent and (conn is None or conn.state not in _SYNCHRONIZED_SEND or conn.error or conn.fin_queued):
                return sent  # do_error: what was queued counts; the error stays pending for the next call
            try:
                if conn is None or conn.state not in _SYNCHRONIZED_SEND:
                    self._wait_connect(conn, nonblock, deadline)  # sk_stream_wait_connect()
                    continue
                if conn.error or conn.fin_queued:  # sk_err or SEND_SHUTDOWN: sk_stream_error()
                    raise _err(self._sock_error() or errno.EPIPE)
                if not total:
                    return 0
                n = st.call(conn, conn.send, view[sent:] if sent else view) if conn.send_space() > 0 else 0
                if n < 0:
                    raise _err(self._sock_error() or -n)
                if n > 0:
                    sent += n
                    self._sync_fd()  # the queue grew: POLLOUT may be gone (sk_stream_is_writeable)
                    if sent == total or nonblock:
                        return sent
                    continue
                conn.nospace = True  # sk_stream_wait_memory(): woken by the ACK that makes room
                if nonblock:
                    raise BlockingIOError(errno.EAGAIN, "send would block")
                self._wait(lambda: conn.send_space() > 0 or conn.state not in _SYNCHRONIZED_SEND
                           or conn.fin_queued or conn.error, deadline, "send")
            except BlockingIOError:  # SO_SNDTIMEO ran out (blocking mode): what was queued counts
                if sent:
                    return sent
                raise

    def _wait_connect(self, conn, nonblock: bool, deadline) -> None:
        """net/core/stream.c sk_stream_wait_connect(): the error, EPIPE, EAGAIN, or wait for the handshake."""
        err = self._sock_error()
        if err:
            raise _err(err)
        if conn is None or conn.state not in _HANDSHAKE:
            raise _err(errno.EPIPE)
        if nonblock:
            raise BlockingIOError(errno.EAGAIN, "send would block")
        self._wait(lambda: conn.state not in _HANDSHAKE or conn.error, deadline, "send")

    def sendall(self, data, flags: int = 0) -> None:
        view = memoryview(data).cast("B")
        total = len(view)
        sent = 0
        deadline = self._deadline()
        while sent < total:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError("timed out")
            sent += self.send(view[sent:], flags)

    def sendto(self, data, flags_or_address, address=None) -> int:
        """On a connected TCP socket the address is ignored (tcp_sendmsg() never reads msg_name)."""
        flags = 0 if address is None else flags_or_address
        address = flags_or_address if address is None else address
        self._resolve(address)  # CPython parses it all the same
        return self.send(data, flags)

    def sendmsg(self, buffers, ancdata=(), flags: int = 0, address=None) -> int:
        """Gathers ``buffers`` into one send; ancillary data has no meaning for TCP here (EINVAL)."""
        if list(ancdata):
            raise _err(errno.EINVAL, "no ancillary data on tunstack TCP sockets")
        if address is not None:
            self._resolve(address)
        return self.send(b"".join(memoryview(b).cast("B") for b in buffers), flags)

    def sendfile(self, file, offset: int = 0, count: int | None = None) -> int:
        """socket.sendfile(): the standard library's contract (``count`` bytes from ``offset``, or to
        the end; returns the bytes sent; the file is left positioned after them; ValueError on a
        non-blocking socket; the timeout bounds each wait), the way Linux's sendfile(2) fills a
        TCP socket: each time the send buffer is writeable, the file is read straight into a piece
        as large as its free room (at most ``SENDFILE_PIECE``) and queued in one call, not in the
        stdlib's 8 KiB sends. A rest of at most ``SENDFILE_SMALL`` (a small file) is read and sent
        at once, as the stdlib's copy loop does; the end of the file is where fstat() puts it, looked
        at again when reached (CPython: a file of size 0, a pipe too, sends nothing). A file without
        a descriptor takes the stdlib's read()/send() loop."""
        self._check_sendfile_params(file, offset, count)
        if self.gettimeout() == 0:
            raise ValueError("non-blocking sockets are not supported")
        try:
            fd = file.fileno()
            size = os.fstat(fd).st_size
        except (AttributeError, OSError):  # io.UnsupportedOperation is an OSError
            return self._sendfile_use_send(file, offset, count)
        total = 0
        try:
            while count is None or total < count:
                left = size - offset - total
                if left <= 0:
                    size = os.fstat(fd).st_size  # grown meanwhile? sendfile(2) reads to the end it finds
                    left = size - offset - total
                    if left <= 0:
                        break
                want = left if left <= self.SENDFILE_SMALL else self._sendfile_room()
                if count is not None:
                    want = min(want, count - total)
                data = os.pread(fd, want, offset + total)
                if not data:
                    break  # EOF
                piece = data  # bytes: queued as they are; a remainder (a short send) as a view
                while piece:
                    sent = self.send(piece)
                    total += sent
                    piece = memoryview(piece)[sent:] if sent < len(piece) else b""
        finally:
            if total > 0 and hasattr(file, "seek"):
                file.seek(offset + total)
        return total

    #: the most sendfile() reads and queues at once: the autotuned send buffer's ceiling (Linux's
    #: tcp_wmem[2], 4 MiB), so only a larger SO_SNDBUF is read in more than one piece per wake-up
    SENDFILE_PIECE = 4 << 20
    #: a rest this small is sent without waiting for room first (shutil's copy size on Linux)
    SENDFILE_SMALL = 64 << 10

    def _sendfile_room(self) -> int:
        """How much sendfile() reads next: once the send buffer is writeable as poll() sees it
        (sk_stream_wait_memory() waits for sk_stream_is_writeable(), a third of it free), its free
        room, at most SENDFILE_PIECE, cut to whole segments: a piece sent at once (TCP_NODELAY)
        leaves full-sized segments, not a runt at its end. A connection that cannot take data now
        (connecting, shut, failed, none) gets a nominal 64 KiB: send() then waits for the
        handshake or raises."""
        with self.stack.lock:
            self._check_open()
            conn = self._conn
            if conn is None or conn.state not in _SYNCHRONIZED_SEND or conn.error or conn.fin_queued:
                return 1 << 16
            if not conn.stream_writeable():
                conn.nospace = True  # sk_stream_wait_memory()
            self._wait(lambda: conn.stream_writeable() or conn.state not in _SYNCHRONIZED_SEND
                       or conn.fin_queued or conn.error, self._deadline(_SNDTIMEO), "send")
            room = min(max(conn.send_space(), 1), self.SENDFILE_PIECE)
            mss = conn.eff_mss  # whole segments (Linux's size_goal): no sub-MSS tail per piece
            return room - room % mss if room > mss else room

    _sendfile_use_send = _std.socket._sendfile_use_send
    _check_sendfile_params = _std.socket._check_sendfile_params

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if bufsize < 0:
            raise ValueError("negative buffersize in recv")
        return self._receive(bufsize, flags, None)

    def recv_into(self, buffer, nbytes: int = 0, flags: int = 0) -> int:
        view = memoryview(buffer).cast("B")
        if nbytes < 0:
            raise ValueError("negative buffersize in recv_into")
        if nbytes > len(view):
            raise ValueError("buffer too small for requested bytes")  # CPython's sock_recv_into
        n = nbytes or len(view)
        return self._receive(n, flags, view[:n])

    def recvfrom(self, bufsize: int, flags: int = 0):
        """A TCP socket has no per-datagram source: (data, None), as on Linux (msg_namelen 0)."""
        return self.recv(bufsize, flags), None

    def recvfrom_into(self, buffer, nbytes: int = 0, flags: int = 0):
        if nbytes > memoryview(buffer).nbytes:
            raise ValueError("nbytes is greater than the length of the buffer")  # CPython's sock_recvfrom_into
        return self.recv_into(buffer, nbytes, flags), None

    def recvmsg(self, bufsize: int, ancbufsize: int = 0, flags: int = 0):
        """(data, [], msg_flags, None): no ancillary data, no address, as Linux's TCP recvmsg."""
        if ancbufsize < 0:
            raise ValueError("negative buffer size in recvmsg()")
        return self.recv(bufsize, flags), [], 0, None

    def recvmsg_into(self, buffers, ancbufsize: int = 0, flags: int = 0):
        total = 0
        for buf in buffers:
            view = memoryview(buf).cast("B")
            if not len(view):
                continue
            try:
                n = self.recv_into(view, 0, flags if total == 0 else flags | MSG_DONTWAIT)
            except BlockingIOError:
                if total == 0:
                    raise
                break
            total += n
            if n < len(view):
                break
        return total, [], 0, None

    def _receive(self, n: int, flags: int, into: memoryview | None):
        """recv/recv_into as tcp_recvmsg(): wait (unless non-blocking) for SO_RCVLOWAT bytes, EOF or an
        error, then copy; MSG_WAITALL (blocking mode only: CPython runs a timeout socket non-blocking)
        keeps waiting until ``n`` bytes, EOF or an error."""
        empty = b"" if into is None else 0
        st = self.stack
        with st.lock:
            self._check_open()
            if n == 0 and into is None:
                return empty  # CPython's sock_recv returns at once for 0
            if self._timeout:  # CPython with a timeout: poll(POLLIN) first, then a non-blocking recv
                self._wait(lambda: self.poll_events() & _POLL_IN, self._deadline(), "recv")
                self._check_open()
            if flags & MSG_ERRQUEUE:
                self._no_error_queue()
            if flags & MSG_OOB and self._listener is None:  # tcp_recv_urg(): urgent data comes inline
                raise _err(errno.EINVAL, "no out-of-band data: urgent data is delivered inline (RFC 6093)")
            conn = self._conn
            if conn is None:  # fresh, or a listener: tcp_recvmsg() ENOTCONN
                raise _err(errno.ENOTCONN)
            if n == 0:
                return empty
            nonblock = self._timeout is not None or flags & MSG_DONTWAIT
            waitall = flags & MSG_WAITALL and not nonblock  # sock_rcvlowat(sk, MSG_WAITALL, len): PEEK too
            target = n if waitall else min(self._rcvlowat(), n)
            if not nonblock:
                try:
                    self._wait(lambda: len(conn.rcvbuf) >= target or self._at_end(conn), self._deadline(_RCVTIMEO),
                               "recv")
                except BlockingIOError:  # SO_RCVTIMEO ran out: what arrived is returned (EAGAIN for none)
                    if not conn.rcvbuf:
                        raise
            if conn.rcvbuf:
                k = min(n, len(conn.rcvbuf))
                if flags & MSG_PEEK:
                    data = conn.rcvbuf.peek(k)
                    if into is None:
                        return data
                    into[:len(data)] = data
                    return len(data)
                if flags & MSG_TRUNC:  # tcp_recvmsg(): the octets are consumed, not copied (Linux's TCP reading)
                    st.call(conn, conn.recv, k)
                    self._sync_fd()
                    return bytes(k) if into is None else k
                result = st.call(conn, conn.recv, k) if into is None else st.call(conn, conn.recv_into, into[:k])
                self._sync_fd()
                return result
            if conn.rcv_closed:
                return empty  # tcp_recvmsg(): the peer's FIN (SOCK_DONE) is EOF before any error
            err = self._sock_error()
            if err:
                raise _err(err)  # reported once, like sock_error(); then EOF
            if self._shut_rd or conn.state in _SK_CLOSE:
                return empty
            raise BlockingIOError(errno.EAGAIN, "recv would block")

    def _no_error_queue(self) -> None:
        """recv(MSG_ERRQUEUE): the error queue is always empty (no IP_RECVERR), so EAGAIN at once; with
        a timeout CPython keeps retrying until it runs out (socket.timeout), as on a kernel socket."""
        if self._timeout:
            self._wait(lambda: False, self._deadline(), "recv")
        raise BlockingIOError(errno.EAGAIN, "the error queue is empty")

    def _at_end(self, conn) -> bool:
        return (conn.rcv_closed or self._shut_rd or conn.state in _SK_CLOSE
                or (conn.error != 0 and not self._err_reported))

    def _rcvlowat(self) -> int:
        return self._opts.get((SOL_SOCKET, SO_RCVLOWAT), 1)

    def _check_open(self) -> None:
        if self._real_closed:  # close() with live makefile() objects defers the real close, as CPython does
            raise _err(errno.EBADF)

    # ------------------------------------------------------------ close
    def shutdown(self, how: int) -> None:
        """net/ipv4/af_inet.c inet_shutdown()."""
        st = self.stack
        with st.lock:
            self._check_open()
            if how not in (SHUT_RD, SHUT_WR, SHUT_RDWR):
                raise _err(errno.EINVAL)
            if self._listener is not None:
                if how != SHUT_WR:  # SHUT_RD on a listener: tcp_disconnect() stops listening
                    self._stop_listening()
                return
            conn = self._conn
            if self._ss == _CONNECTING and conn is not None and conn.state not in _HANDSHAKE + _SK_CLOSE:
                self._ss = _CONNECTED
            if conn is None or conn.state in _SK_CLOSE:
                raise _err(errno.ENOTCONN)
            if conn.state is State.SYN_SENT:
                self._disconnect()
                return
            if how in (SHUT_RD, SHUT_RDWR):
                self._shut_rd = True
                st.call(conn, conn.shutdown_read)
                self._wakeup()
            if how in (SHUT_WR, SHUT_RDWR):
                st.call(conn, conn.shutdown_write)
                self._sync_fd()

    def _stop_listening(self) -> None:
        lst, self._listener = self._listener, None
        self.stack.unlisten(lst)
        lst.notify = _ignore
        self._release_port()
        self._cond.notify_all()
        self._sync_fd()

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
            _holders(st).discard(self)
            if self._bound:
                st.unbind(self._local)
                self._bound = False
            if self._listener is not None:
                st.unlisten(self._listener)
                self._listener.notify = _ignore
                self._listener = None
            elif self._conn is not None:
                conn = self._conn
                if self._shared is not None and self._shared.release(self):
                    pass  # a dup() still holds the connection
                else:
                    conn.notify = _ignore
                    if conn.state is not State.CLOSED:
                        onoff, linger = self._linger()
                        if onoff and linger == 0:
                            st.call(conn, conn.abort)  # SO_LINGER 0: abortive close, RST (tcp_close())
                        else:
                            st.call(conn, conn.close)
                            if onoff and self._timeout != 0:
                                self._linger_wait(conn, linger)
            self._cond.notify_all()
            for cb in list(self._watchers):
                cb(self, 0)
            if self._efd is not None:
                self._efd.close()
                self._efd = None

    def _linger_wait(self, conn, seconds: int) -> None:
        """SO_LINGER on: close() waits until the FIN is acknowledged or the time is up (sk_stream_wait_close)."""
        deadline = time.monotonic() + seconds
        wake = self._cond
        conn.notify = self.stack.deferred(lambda what: wake.notify_all())
        try:
            while conn.state in (State.FIN_WAIT_1, State.CLOSING, State.LAST_ACK):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                wake.wait(left)
        finally:
            conn.notify = _ignore

    def dup(self) -> "socket":
        """A second socket on the same connection (or listener); the connection closes with the last one."""
        with self.stack.lock:
            self._check_open()
            twin = socket(self.stack, self.family, self.type, self.proto)
            twin._timeout, twin._opts, twin._ss = self._timeout, dict(self._opts), self._ss
            twin._local, twin._shut_rd, twin._has_port = self._local, self._shut_rd, self._has_port
            if self._conn is not None:
                if self._shared is None:
                    self._shared = _Shared(self)
                self._shared.add(twin)
                twin._shared = self._shared
                twin._conn, twin._err_reported = self._conn, self._err_reported
                self._conn.notify = self._shared.notifier(self.stack)
            elif self._listener is not None:
                raise _err(errno.EOPNOTSUPP, "dup() of a listening tunstack socket")
            return twin

    def __repr__(self) -> str:
        state = "listening" if self._listener else (self._conn.state.name if self._conn else "unconnected")
        return f"<tunstack.socket {self.getsockname()} {state}>"

    # ------------------------------------------------------------ options
    def setsockopt(self, level: int, option: int, value, optlen: int | None = None) -> None:
        """Validate against the option table, store, and apply to the connection (Linux's errors)."""
        opt = _OPTIONS.get((level, option))
        if opt is None or opt.kind == "ro":
            raise _err(errno.ENOPROTOOPT)
        if isinstance(value, (bytes, bytearray, memoryview)):
            raw = bytes(value)
        elif value is None:
            raise _err(errno.EFAULT)
        else:
            raw = None
            value = int(value)
        with self.stack.lock:
            self._check_open()
            stored = opt.parse(self, value if raw is None else raw, raw is not None)
            self._opts[(level, option)] = stored
            _listener_buffers(self)
            conn = self._conn
            if conn is not None:
                self.stack.call(conn, lambda now: self._apply_options(conn, only=(level, option)))
                if (level, option) == (SOL_SOCKET, SO_REUSEADDR):
                    conn.sk_reuse = bool(stored)

    def getsockopt(self, level: int, option: int, buflen: int | None = None):
        """Linux's value: an int without ``buflen``, else at most ``buflen`` bytes of the C value."""
        if buflen is not None and buflen != 0 and not 0 < buflen <= 1024:
            raise OSError("getsockopt buflen out of range")
        opt = _OPTIONS.get((level, option))
        if opt is None:
            raise _err(errno.ENOPROTOOPT)
        with self.stack.lock:
            raw = opt.read(self)  # bytes of the C value (an int is 4 bytes)
        return option_value(raw, buflen)

    def _attach_before_syn(self, conn) -> None:
        """connect(): the new connection gets this socket's wait queue and options before its SYN goes out
        (a connection to our own address may complete within the call)."""
        self._attach(conn)
        self._apply_options(conn)

    def _apply_options(self, conn, only=None) -> None:
        """Push stored options into the connection (before the SYN for connect())."""
        now = self.stack.clock()
        conn.sk_reuse = bool(self._opts.get((SOL_SOCKET, SO_REUSEADDR)))
        for key, value in self._opts.items():
            opt = _OPTIONS[key]
            if opt.apply is not None and (only is None or key == only):
                opt.apply(conn, value, now)
        if conn.keepalive_enabled and only in (None, (IPPROTO_TCP, TCP_KEEPIDLE)):
            conn.set_keepalive(True, now)

    def _setup_embryo(self, conn) -> None:
        """A connection this listener is about to answer with a SYN-ACK: the options that SYN-ACK already
        carries, as Linux's request socket takes them from the listener (the rest come with accept())."""
        now = self.stack.clock()
        for key in _SYN_ACK_OPTIONS:
            if key in self._opts:
                _OPTIONS[key].apply(conn, self._opts[key], now)

    def _linger(self) -> tuple[int, int]:
        return self._opts.get((SOL_SOCKET, SO_LINGER), (0, 0))

    makefile = _std.socket.makefile

    def info(self) -> dict:
        """TCP_INFO-like view of the connection (see ``Connection.info``)."""
        with self.stack.lock:
            return self._conn.info() if self._conn else {}


class _Shared:
    """The connection of a socket and its dup()s (one struct file, several fds): each is woken, the
    connection is closed with the last one."""

    def __init__(self, first: socket):
        self.sockets = [first]

    def add(self, sock: socket) -> None:
        self.sockets.append(sock)

    def notifier(self, stack):
        def wake(what: str = "") -> None:
            for sock in list(self.sockets):
                sock._wakeup(what)
        return stack.deferred(wake)

    def release(self, sock: socket) -> bool:
        """``sock`` lets go; True while others still hold the connection."""
        if sock in self.sockets:
            self.sockets.remove(sock)
        return bool(self.sockets)


# ------------------------------------------------------------------------------ sockets holding ports
_PORT_HOLDERS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _holders(stack) -> "weakref.WeakSet":
    holders = _PORT_HOLDERS.get(stack)
    if holders is None:
        holders = _PORT_HOLDERS[stack] = weakref.WeakSet()
    return holders


# ------------------------------------------------------------------------------ the option table
_INT = struct.Struct("i")
_LINGER = struct.Struct("ii")
TCP_CA_NAME_MAX = 16
RMEM_MAX = WMEM_MAX = 212992          # net.core.rmem_max / wmem_max, Linux's defaults
SOCK_MIN_RCVBUF, SOCK_MIN_SNDBUF = 2304, 4608   # include/net/sock.h on 64-bit Linux 6.x
TCP_RMEM_MAX = 6291456                # net.ipv4.tcp_rmem[2]
TCP_MIN_MSS, MAX_TCP_WINDOW = 88, 32767
MAX_TCP_KEEPIDLE, MAX_TCP_KEEPINTVL, MAX_TCP_KEEPCNT = 32767, 32767, 127


def _einval(ok: bool) -> None:
    if not ok:
        raise _err(errno.EINVAL)


class _Opt:
    """One row: how a value is parsed and checked (``check(sock, v) -> stored``), read (``get(sock)``:
    an int, or bytes of the C value) and applied to a connection (``apply(conn, stored, now)``)."""

    def __init__(self, kind: str, get, check=None, apply=None):
        self.kind, self.get, self.check, self.apply = kind, get, check, apply

    def parse(self, sock, value, is_bytes: bool):
        if self.kind == "linger":
            _einval(is_bytes and len(value) >= _LINGER.size)  # an int is 4 bytes: EINVAL, as Linux
            onoff, linger = _LINGER.unpack_from(value)
            return (1, linger) if onoff else (0, sock._linger()[1])
        if self.kind == "timeval":
            return parse_timeval(value, is_bytes)
        if self.kind == "name":
            name = value.split(b"\0", 1)[0].decode("ascii", "replace") if is_bytes else _INT.pack(value).decode(
                "latin-1")
            return self.check(sock, name)
        if is_bytes:
            _einval(len(value) >= _INT.size)  # do_tcp_setsockopt()/sk_setsockopt(): optlen < sizeof(int)
            value = _INT.unpack_from(value)[0]
        value = int(value)
        if self.kind == "bool":
            return 1 if value else 0
        return self.check(sock, value) if self.check else value

    def read(self, sock) -> bytes:
        v = self.get(sock)
        if isinstance(v, bytes):
            return v
        if isinstance(v, tuple):
            return _LINGER.pack(*v)
        return _INT.pack(int(v))


def _stored(key, default):
    return lambda sock: sock._opts.get(key, default(sock) if callable(default) else default)


def _buf(key, minimum: int, maximum: int, config_attr: str, conn_attr: str) -> _Opt:
    def check(sock, v):  # sk_setsockopt SO_RCVBUF: min(val, rmem_max) * 2, at least SOCK_MIN_RCVBUF
        v = maximum if v < 0 else min(v, maximum)
        return max(v * 2, minimum)

    def get(sock):
        if key in sock._opts:
            return sock._opts[key]
        c = sock._conn  # autotuned: the current size, doubled as Linux reports it (payload + bookkeeping)
        return 2 * (getattr(c, conn_attr) if c is not None else getattr(sock.stack.tcp_config, config_attr)()[0])
    return _Opt("int", get, check, None)


def _apply_rcvbuf(conn, v, now):
    """SO_RCVBUF fixes the receive buffer (no autotuning, Linux SOCK_RCVBUF_LOCK). Linux counts
    bookkeeping in the doubled value; we keep payload. The window scale is chosen with the SYN."""
    if conn.state in (State.CLOSED, State.SYN_SENT):
        conn.lock_rcvbuf(max(2048, v // 2))


def _apply_sndbuf(conn, v, now):
    """SO_SNDBUF fixes the send buffer (no autotuning, Linux SOCK_SNDBUF_LOCK)."""
    conn.lock_sndbuf(max(2048, v // 2))


def _listener_buffers(sock) -> None:
    """A listener's SO_RCVBUF/SO_SNDBUF reach its connections from the SYN on (Listener.inherit_buffers)."""
    lst = sock._listener
    if lst is not None:
        for key, attr in (((SOL_SOCKET, SO_RCVBUF), "rcvbuf"), ((SOL_SOCKET, SO_SNDBUF), "sndbuf")):
            if key in sock._opts:
                setattr(lst, attr, max(2048, sock._opts[key] // 2))


def _check_rcvlowat(sock, v):  # tcp_set_rcvlowat()
    if v < 0:
        v = 2 ** 31 - 1
    cap = sock._opts[(SOL_SOCKET, SO_RCVBUF)] >> 1 if (SOL_SOCKET, SO_RCVBUF) in sock._opts else TCP_RMEM_MAX >> 1
    return min(v, cap) or 1


def _range(lo: int, hi: int):
    def check(sock, v):
        _einval(lo <= v <= hi)
        return v
    return check


def _check_maxseg(sock, v):
    _einval(v == 0 or TCP_MIN_MSS <= v <= MAX_TCP_WINDOW)  # do_tcp_setsockopt() TCP_MAXSEG
    return v


def _get_maxseg(sock):
    """tp->mss_cache (536 before a connection), or the user's value while CLOSE/LISTEN."""
    c, user = sock._conn, sock._opts.get((IPPROTO_TCP, TCP_MAXSEG), 0)
    if c is None or c.state in _SK_CLOSE:
        return user or 536
    return c.eff_mss


def _apply_maxseg(conn, v, now):
    if v and conn.state is State.CLOSED:  # before the SYN: clamps the MSS we announce and use
        conn.mss_limit = min(conn.mss_limit, v)


def _check_user_timeout(sock, v):
    _einval(v >= 0)
    return v


def _check_ttl(sock, v):
    _einval(v == -1 or 1 <= v <= 255)
    return 64 if v == -1 else v


def _set_ip_fields(conn, ttl: int | None = None, tos: int | None = None) -> None:
    """IP_TTL / IP_TOS onto the connection's outgoing IP headers (None there: the defaults 64 and 0)."""
    old_ttl, old_tos = conn.ip_fields or (64, 0)
    fields = (old_ttl if ttl is None else ttl, old_tos if tos is None else tos)
    conn.ip_fields = None if fields == (64, 0) else fields


def _check_cc(sock, name):
    from .tcp import congestion
    if name not in congestion.ALGORITHMS:
        raise _err(errno.ENOENT, f"unknown congestion control {name!r}")
    return name


def _get_cc(sock) -> bytes:
    c = sock._conn
    name = c.cc.name if c is not None else sock._opts.get((IPPROTO_TCP, TCP_CONGESTION),
                                                            sock.stack.tcp_config.congestion)
    return name.encode()[:TCP_CA_NAME_MAX - 1].ljust(TCP_CA_NAME_MAX, b"\0")


def _apply_quickack(conn, v, now):
    if v and conn.state in _SYNCHRONIZED_SEND and (conn.unacked_segs or conn.timers.delack is not None):
        conn.ack_now = True  # tcp_cleanup_rbuf(): send the delayed ACK now


def _get_tcp_info(sock) -> bytes:
    if sock._listener is not None:
        info = {"state": "LISTEN"}
    elif sock._conn is None:
        info = {"state": "CLOSED"}
    else:
        info = sock._conn.info()
        if sock._conn.state is State.TIME_WAIT:
            info["state"] = "CLOSED"  # the socket is CLOSE; the TIME-WAIT lives in a mini-socket
    return tcpinfo.pack(info)


def _get_keepalive(key, attr: str):
    def get(sock):
        if key in sock._opts:
            return sock._opts[key]
        c = sock._conn
        return int(getattr(c, attr)) if c is not None else int(getattr(sock.stack.tcp_config, attr))
    return get


def _set_attr(attr: str, cast):
    def apply(conn, v, now):
        setattr(conn, attr, cast(v))
    return apply


_OPTIONS: dict[tuple[int, int], _Opt] = {
    (SOL_SOCKET, _std.SO_TYPE): _Opt("ro", lambda s: s.type),
    (SOL_SOCKET, _std.SO_DOMAIN): _Opt("ro", lambda s: s.family),
    (SOL_SOCKET, _std.SO_PROTOCOL): _Opt("ro", lambda s: IPPROTO_TCP),
    (SOL_SOCKET, _std.SO_ACCEPTCONN): _Opt("ro", lambda s: int(s._listener is not None)),
    (SOL_SOCKET, SO_ERROR): _Opt("ro", lambda s: s._sock_error()),
    (SOL_SOCKET, _std.SO_SNDLOWAT): _Opt("ro", lambda s: 1),  # Linux: read-only (setsockopt: ENOPROTOOPT)
    (SOL_SOCKET, SO_REUSEADDR): _Opt("bool", _stored((SOL_SOCKET, SO_REUSEADDR), 0)),
    (SOL_SOCKET, _std.SO_REUSEPORT): _Opt("bool", _stored((SOL_SOCKET, _std.SO_REUSEPORT), 0)),
    (SOL_SOCKET, SO_KEEPALIVE): _Opt("bool", _stored((SOL_SOCKET, SO_KEEPALIVE), 0),
                                     apply=lambda c, v, now: c.set_keepalive(bool(v), now)),
    (SOL_SOCKET, _std.SO_BROADCAST): _Opt("bool", _stored((SOL_SOCKET, _std.SO_BROADCAST), 0)),
    (SOL_SOCKET, _std.SO_OOBINLINE): _Opt("bool", _stored((SOL_SOCKET, _std.SO_OOBINLINE), 0)),
    (SOL_SOCKET, _std.SO_DONTROUTE): _Opt("bool", _stored((SOL_SOCKET, _std.SO_DONTROUTE), 0)),
    (SOL_SOCKET, SO_RCVLOWAT): _Opt("int", _stored((SOL_SOCKET, SO_RCVLOWAT), 1), _check_rcvlowat),
    (SOL_SOCKET, SO_LINGER): _Opt("linger", lambda s: s._linger()),
    (SOL_SOCKET, SO_RCVTIMEO): _Opt("timeval", lambda s: timeval_of(s._opts.get((SOL_SOCKET, SO_RCVTIMEO)))),
    (SOL_SOCKET, SO_SNDTIMEO): _Opt("timeval", lambda s: timeval_of(s._opts.get((SOL_SOCKET, SO_SNDTIMEO)))),
    (IPPROTO_TCP, TCP_NODELAY): _Opt("bool", _stored((IPPROTO_TCP, TCP_NODELAY),
                                                     lambda s: int(s.stack.tcp_config.nodelay)),
                                     apply=_set_attr("nodelay", bool)),
    (IPPROTO_TCP, TCP_MAXSEG): _Opt("int", _get_maxseg, _check_maxseg, _apply_maxseg),
    (IPPROTO_TCP, TCP_KEEPIDLE): _Opt("int", _get_keepalive((IPPROTO_TCP, TCP_KEEPIDLE), "keepalive_idle"), _range(1, MAX_TCP_KEEPIDLE),
                                      _set_attr("keepalive_idle", float)),
    (IPPROTO_TCP, TCP_KEEPINTVL): _Opt("int", _get_keepalive((IPPROTO_TCP, TCP_KEEPINTVL), "keepalive_interval"), _range(1, MAX_TCP_KEEPINTVL),
                                       _set_attr("keepalive_interval", float)),
    (IPPROTO_TCP, TCP_KEEPCNT): _Opt("int", _get_keepalive((IPPROTO_TCP, TCP_KEEPCNT), "keepalive_count"), _range(1, MAX_TCP_KEEPCNT),
                                     _set_attr("keepalive_count", int)),
    (IPPROTO_TCP, TCP_USER_TIMEOUT): _Opt("int", _stored((IPPROTO_TCP, TCP_USER_TIMEOUT), 0), _check_user_timeout,
                                          lambda c, v, now: setattr(c, "user_timeout", v / 1000)),  # ms
    (IPPROTO_TCP, TCP_CONGESTION): _Opt("name", _get_cc, _check_cc,
                                        lambda c, v, now: c.set_congestion(v, now)),
    (IPPROTO_TCP, TCP_QUICKACK): _Opt("bool", _stored((IPPROTO_TCP, TCP_QUICKACK), 1), apply=_apply_quickack),
    (IPPROTO_TCP, TCP_INFO): _Opt("ro", _get_tcp_info),
    (IPPROTO_IP, _std.IP_TOS): _Opt("int", _stored((IPPROTO_IP, _std.IP_TOS), 0), lambda s, v: v & 0xFC,
                                    lambda c, v, now: _set_ip_fields(c, tos=v)),
    (IPPROTO_IP, _std.IP_TTL): _Opt("int", _stored((IPPROTO_IP, _std.IP_TTL), 64), _check_ttl,
                                    lambda c, v, now: _set_ip_fields(c, ttl=v)),
}
_OPTIONS[(SOL_SOCKET, SO_RCVBUF)] = _buf((SOL_SOCKET, SO_RCVBUF), SOCK_MIN_RCVBUF, RMEM_MAX, "receive_buffer", "rcvbuf_cap")
_OPTIONS[(SOL_SOCKET, SO_RCVBUF)].apply = _apply_rcvbuf
_OPTIONS[(SOL_SOCKET, SO_SNDBUF)] = _buf((SOL_SOCKET, SO_SNDBUF), SOCK_MIN_SNDBUF, WMEM_MAX, "send_buffer", "sndbuf_cap")
_OPTIONS[(SOL_SOCKET, SO_SNDBUF)].apply = _apply_sndbuf

_SYN_ACK_OPTIONS = ((IPPROTO_TCP, TCP_MAXSEG), (IPPROTO_IP, _std.IP_TTL), (IPPROTO_IP, _std.IP_TOS))

Stack.socket_type = socket  # Stack.socket() makes these; registered from above: the runtime never imports us
