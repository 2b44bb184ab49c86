"""UDP sockets (``SOCK_DGRAM``) over a ``Stack``, with Linux's semantics and errors.

``Stack.socket(type=SOCK_DGRAM)`` and ``stack.socket.socket(st, AF_INET, SOCK_DGRAM)`` make a
``udpsocket`` (this module registers the class in ``Stack.socket_types``). The protocol state is
a ``stack.ip.udp.UdpEndpoint``; each call goes through the runtime facade (``Stack.udp_call``)
under ``Stack.lock``. Blocking calls sleep on the socket's wait queue (a ``Condition`` over that
lock), woken by the runtime after the arriving datagram (or ICMP error) has been processed.
``fileno()`` is a ``ReadinessFd``: readable while a datagram (or an error, see below) is queued,
writable always (a UDP send never waits for the peer).

Linux behaviours kept (each checked against the kernel in tests/diff/test_diff_udp.py):
datagram boundaries, truncation to the buffer (the rest of the datagram is dropped; MSG_TRUNC
returns the real length), EDESTADDRREQ for ``send`` on an unconnected socket, EMSGSIZE above
65,507 bytes, EACCES for broadcast without SO_BROADCAST, a connected socket only hears its peer,
an ICMP port unreachable for a connected socket is ECONNREFUSED once on the next call (or
SO_ERROR), ``listen``/``accept`` EOPNOTSUPP, ``shutdown`` ENOTCONN when unconnected (the bits
are set all the same) and EPIPE for ``send`` after SHUT_WR.
"""
from __future__ import annotations

import errno
import select as _select
import socket as _std
import struct
import threading
from typing import Callable

from .ip.udp import MAX_PAYLOAD, RMEM_DEFAULT, WMEM_DEFAULT, UdpEndpoint
from .readiness import ReadinessFd
from .sockmodes import SocketCommon, _err, option_value, parse_timeval, timeval_of
from .runtime.stack import Stack
from .wire.ipv4 import aton, ntoa

AF_INET, SOCK_DGRAM, IPPROTO_UDP = _std.AF_INET, _std.SOCK_DGRAM, _std.IPPROTO_UDP
_TIMEOS = (_std.SO_RCVTIMEO, _std.SO_SNDTIMEO)  # struct timeval options (a datagram send never waits)
SOL_SOCKET, IPPROTO_IP, IPPROTO_TCP = _std.SOL_SOCKET, _std.IPPROTO_IP, _std.IPPROTO_TCP
SHUT_RD, SHUT_WR, SHUT_RDWR = _std.SHUT_RD, _std.SHUT_WR, _std.SHUT_RDWR
MSG_PEEK, MSG_DONTWAIT, MSG_TRUNC = _std.MSG_PEEK, _std.MSG_DONTWAIT, _std.MSG_TRUNC
SOCK_MIN_RCVBUF, SOCK_MIN_SNDBUF = 2304, 4608   # Linux's floors (after doubling) on x86-64
RMEM_MAX = WMEM_MAX = 212992                    # Linux's default net.core.rmem_max / wmem_max
BROADCAST = b"\xff\xff\xff\xff"
_WAKE_KEYS = {"readable": _select.EPOLLIN | _select.EPOLLRDNORM,
              "error": _select.EPOLLERR | _select.EPOLLIN}
# SOL_SOCKET options a UDP socket keeps as plain flags (read back normalized to 0/1, as Linux)
_FLAGS = {_std.SO_REUSEADDR, _std.SO_BROADCAST, _std.SO_KEEPALIVE, getattr(_std, "SO_REUSEPORT", 15)}
_IP_DEFAULTS = {_std.IP_TTL: 64, _std.IP_TOS: 0}


class udpsocket(SocketCommon):
    """A UDP socket on a tunstack ``Stack``."""

    def __init__(self, stack: Stack, family=None, type=None, proto=0):
        family = AF_INET if family is None else family
        if family != AF_INET:
            raise _err(errno.EAFNOSUPPORT, "tunstack sockets are AF_INET")
        if proto not in (0, IPPROTO_UDP):
            raise _err(errno.EPROTONOSUPPORT)
        self.stack = stack
        self.family, self.type, self.proto = family, SOCK_DGRAM, proto
        self._timeout: float | None = _std.getdefaulttimeout()
        self._cond = threading.Condition(stack.lock)
        self._ep = UdpEndpoint(RMEM_DEFAULT)
        self._ep.notify = stack.deferred(self._wakeup)
        self._sndbuf = WMEM_DEFAULT
        self._flags: dict[int, int] = {}
        self._opts: dict[tuple[int, int], int | None] = {}  # SO_RCVTIMEO/SO_SNDTIMEO, in jiffies (sockmodes)
        self._ip_opts = dict(_IP_DEFAULTS)
        self._shut = 0                  # SHUT_RD -> bit 1, SHUT_WR -> bit 2 (Linux's sk_shutdown)
        self._closed = False
        self._efd: ReadinessFd | None = None
        self._watchers: list[Callable[[udpsocket, int], None]] = []

    # ------------------------------------------------------------ wait queue and readiness
    def _wakeup(self, what: str = "") -> None:
        """Wake sleepers, the readiness fd and epoll watchers (stack lock held; queued by the runtime)."""
        self._cond.notify_all()
        if self._efd is not None:
            if what == "readable":
                self._efd.wake_readable()  # one edge-triggered event per datagram, as sk_data_ready
            self._sync_fd()
        key = _WAKE_KEYS.get(what, 0)
        for cb in list(self._watchers):
            cb(self, key)

    def poll_events(self) -> int:
        """udp_poll()/datagram_poll(): the EPOLL* bits Linux reports for this socket."""
        ep = self._ep
        mask = _select.EPOLLOUT | _select.EPOLLWRNORM  # sock_writeable: a send never waits
        if ep.error:
            mask |= _select.EPOLLERR
        if self._shut == 3:
            mask |= _select.EPOLLHUP
        if self._shut & 1:
            mask |= _select.EPOLLIN | _select.EPOLLRDNORM | _select.EPOLLRDHUP
        if ep.rcvq:
            mask |= _select.EPOLLIN | _select.EPOLLRDNORM
        return mask

    def readable(self) -> bool:
        return bool(self._ep.rcvq) or bool(self._ep.error)

    def writable(self) -> bool:
        return True

    def _fd_mask(self) -> int:
        """What the fd can show: an ICMP error as readable (a ReadinessFd's POLLERR comes with POLLHUP)."""
        mask = self.poll_events()
        if mask & _select.EPOLLERR:
            mask = (mask & ~_select.EPOLLERR) | _select.EPOLLIN
        return mask

    def _sync_fd(self) -> None:
        if self._efd is not None:
            self._efd.sync(self._fd_mask())

    def fileno(self) -> int:
        if self._closed:
            return -1
        with self.stack.lock:
            if self._efd is None:
                self._efd = ReadinessFd(False, True)
                self._sync_fd()
            return self._efd.fd

    # ------------------------------------------------------------ addresses
    def _resolve(self, address) -> tuple[bytes, int]:
        if not isinstance(address, tuple) or len(address) != 2:
            raise TypeError("AF_INET address must be a tuple (host, port)")
        host, port = address
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise OverflowError("port must be 0-65535.")
        if host == "":
            return bytes(4), port
        if host in ("localhost", "<broadcast>"):
            return (self.stack.address if host == "localhost" else BROADCAST), port
        try:
            return aton(host), port
        except OSError:
            raise _std.gaierror(_std.EAI_NONAME, "Name or service not known") from None

    def bind(self, address) -> None:
        addr, port = self._resolve(address)
        with self.stack.lock:
            self._check_open()
            self.stack.udp.bind(self._ep, addr, port)
            self._sync_fd()

    def connect(self, address) -> None:
        remote = self._resolve(address)
        with self.stack.lock:
            self._check_open()
            if remote[0] == BROADCAST and not self._flags.get(_std.SO_BROADCAST):
                raise _err(errno.EACCES, "broadcast needs SO_BROADCAST")
            if remote[0] == bytes(4):
                remote = (self.stack.address, remote[1])  # INADDR_ANY means this host, as Linux
            self.stack.udp.connect(self._ep, remote)

    def connect_ex(self, address) -> int:
        try:
            self.connect(address)
        except OSError as exc:
            return exc.errno or errno.EINVAL
        return 0

    def disconnect(self) -> None:
        """What ``connect()`` to an AF_UNSPEC address does in C (Python cannot express that address)."""
        with self.stack.lock:
            self.stack.udp.disconnect(self._ep)

    def getsockname(self) -> tuple[str, int]:
        local = self._ep.local
        return ("0.0.0.0", 0) if local is None else (ntoa(local[0]), local[1])

    def getpeername(self) -> tuple[str, int]:
        remote = self._ep.remote
        if remote is None or remote[1] == 0:  # inet_getname: no peer port, no peer
            raise _err(errno.ENOTCONN)
        return (ntoa(remote[0]), remote[1])

    def listen(self, backlog: int = 0) -> None:
        raise _err(errno.EOPNOTSUPP, "listen() on a UDP socket")

    def accept(self):
        raise _err(errno.EOPNOTSUPP, "accept() on a UDP socket")

    # ------------------------------------------------------------ sending
    def send(self, data, flags: int = 0) -> int:
        return self._send(data, None, flags)

    def sendto(self, data, flags_or_address, address=None) -> int:
        flags, address = (0, flags_or_address) if address is None else (flags_or_address, address)
        return self._send(data, self._resolve(address), flags)

    def sendall(self, data, flags: int = 0) -> None:
        self._send(data, None, flags)

    def sendmsg(self, buffers, ancdata=(), flags: int = 0, address=None) -> int:
        if ancdata:
            raise _err(errno.EINVAL, "ancillary data is not supported on stack sockets")
        data = b"".join(bytes(memoryview(b).cast("B")) for b in buffers)
        return self._send(data, None if address is None else self._resolve(address), flags)

    def _send(self, data, dst: tuple[bytes, int] | None, flags: int) -> int:
        view = data if isinstance(data, (bytes, bytearray)) else memoryview(data).cast("B")
        st = self.stack
        with st.lock:
            self._check_open()
            ep = self._ep
            if len(view) > 0xFFFF:
                raise _err(errno.EMSGSIZE)  # udp_sendmsg's checks, in its order
            if dst is not None and dst[1] == 0:
                raise _err(errno.EINVAL, "destination port 0")
            if dst is None and ep.remote is None:
                raise _err(errno.EDESTADDRREQ)
            target = dst or ep.remote
            if target[0] == BROADCAST and not self._flags.get(_std.SO_BROADCAST):
                raise _err(errno.EACCES, "broadcast needs SO_BROADCAST")
            if len(view) > MAX_PAYLOAD:
                raise _err(errno.EMSGSIZE)  # ip_append_data: the datagram would not fit 65,535 bytes
            if ep.error:
                err = ep.take_error()  # sock_alloc_send_pskb: sock_error() first, once
                self._sync_fd()
                raise _err(err)
            if self._shut & 2:
                raise _err(errno.EPIPE)
            if target[0] == bytes(4):
                target = (st.address, target[1])
            n = st.udp_call(st.udp.sendto, ep, view, target)
            self._sync_fd()
            return n

    # ------------------------------------------------------------ receiving
    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if bufsize < 0:
            raise ValueError("negative buffersize in recv")
        if bufsize == 0:  # CPython's sock_recv returns at once without a system call: nothing consumed
            self._check_open()
            return b""
        return self._recv(bufsize, flags)[0]

    def recvfrom(self, bufsize: int, flags: int = 0):
        if bufsize < 0:
            raise ValueError("negative buffersize in recvfrom")
        data, addr, _ = self._recv(bufsize, flags)
        return data, addr

    def recv_into(self, buffer, nbytes: int = 0, flags: int = 0) -> int:
        if not (nbytes or len(memoryview(buffer))):  # as CPython: nothing to read into, nothing consumed
            self._check_open()
            return 0
        return self.recvfrom_into(buffer, nbytes, flags)[0]

    def recvfrom_into(self, buffer, nbytes: int = 0, flags: int = 0):
        view = memoryview(buffer).cast("B")
        if nbytes < 0:
            raise ValueError("negative buffersize in recvfrom_into")
        if nbytes > len(view):
            raise ValueError("nbytes is greater than the length of the buffer")
        n = nbytes or len(view)
        data, addr, full = self._recv(n, flags)
        view[:len(data)] = data
        return (full if flags & MSG_TRUNC else len(data)), addr

    def recvmsg(self, bufsize: int, ancbufsize: int = 0, flags: int = 0):
        if bufsize < 0:
            raise ValueError("negative buffer size in recvmsg()")
        data, addr, full = self._recv(bufsize, flags)
        return data, [], (MSG_TRUNC if full > len(data) else 0), addr

    def _recv(self, n: int, flags: int):
        """udp_recvmsg: the pending error first, else one datagram (waiting for it unless non-blocking);
        what does not fit ``n`` is dropped. Returns (data, sender, the datagram's full length)."""
        st = self.stack
        with st.lock:
            self._check_open()
            ep = self._ep
            self._wait(lambda: bool(ep.rcvq) or bool(ep.error), self._deadline((SOL_SOCKET, _std.SO_RCVTIMEO)),
                       "recv", bool(flags & MSG_DONTWAIT))
            if ep.error:
                err = ep.take_error()
                self._sync_fd()
                raise _err(err)
            if flags & MSG_PEEK:
                src, sport, payload = ep.rcvq[0]
            else:
                src, sport, payload = ep.pop()
                self._sync_fd()
            return payload[:n], (ntoa(src), sport), len(payload)

    # ------------------------------------------------------------ shutdown and close
    def shutdown(self, how: int) -> None:
        """inet_shutdown: EINVAL for a bad ``how``; the bits are set even when unconnected (ENOTCONN)."""
        if how not in (SHUT_RD, SHUT_WR, SHUT_RDWR):
            raise _err(errno.EINVAL)
        with self.stack.lock:
            self._check_open()
            self._shut |= how + 1
            self._wakeup()
            if self._ep.remote is None:
                raise _err(errno.ENOTCONN)

    def close(self) -> None:
        st = self.stack
        with st.lock:
            if self._closed:
                return
            self._closed = True
            st.udp.unbind(self._ep)
            self._ep.notify = lambda what="": None
            self._ep.rcvq.clear()
            self._cond.notify_all()
            for cb in list(self._watchers):
                cb(self, 0)
            if self._efd is not None:
                self._efd.close()
                self._efd = None

    def _check_open(self) -> None:
        if self._closed:
            raise _err(errno.EBADF)

    def __repr__(self) -> str:
        return f"<tunstack.udpsocket {self.getsockname()}>"

    # ------------------------------------------------------------ options (modes: sockmodes.SocketCommon)
    def setsockopt(self, level: int, option: int, value, optlen: int | None = None) -> None:
        if level == SOL_SOCKET and option in _TIMEOS:  # a struct timeval (sock_set_timeout)
            is_bytes = isinstance(value, (bytes, bytearray, memoryview))
            stored = parse_timeval(bytes(value) if is_bytes else value, is_bytes)
            with self.stack.lock:
                self._opts[(level, option)] = stored
            return
        if isinstance(value, (bytes, bytearray)):
            value = int.from_bytes(bytes(value[:4]).ljust(4, b"\0"), "little", signed=True)
        value = int(value)
        with self.stack.lock:
            if level == SOL_SOCKET:
                if option == _std.SO_RCVBUF:  # sock_setsockopt: doubled for bookkeeping, clamped
                    self._ep.rcvbuf = max(SOCK_MIN_RCVBUF, min(value, RMEM_MAX) * 2)
                elif option == _std.SO_SNDBUF:
                    self._sndbuf = max(SOCK_MIN_SNDBUF, min(value, WMEM_MAX) * 2)
                elif option in _FLAGS:
                    self._flags[option] = int(bool(value))
                    if option == _std.SO_REUSEADDR:
                        self._ep.reuse = bool(value)
                else:
                    raise _err(errno.ENOPROTOOPT)
            elif level == IPPROTO_IP and option in _IP_DEFAULTS:
                if option == _std.IP_TTL:  # do_ip_setsockopt: -1 is the default, else 1..255
                    if not (value == -1 or 1 <= value <= 255):
                        raise _err(errno.EINVAL)
                    value = 64 if value == -1 else value
                else:
                    value &= 0xFF  # a datagram socket keeps the ECN bits it is given
                self._ip_opts[option] = value
                fields = (self._ip_opts[_std.IP_TTL], self._ip_opts[_std.IP_TOS])
                self._ep.ip_fields = None if fields == (64, 0) else fields
            elif level in (IPPROTO_TCP,) or level not in (SOL_SOCKET, IPPROTO_IP, IPPROTO_UDP):
                raise _err(errno.EOPNOTSUPP)
            else:
                raise _err(errno.ENOPROTOOPT)

    def getsockopt(self, level: int, option: int, buflen: int | None = None):
        if level == SOL_SOCKET and option in _TIMEOS:
            with self.stack.lock:
                raw = timeval_of(self._opts.get((level, option)))
            return option_value(raw, buflen)
        value = self._getsockopt(level, option)
        if buflen is None:
            return value
        return struct.pack("i", value)[:buflen].ljust(min(buflen, 4), b"\0")

    def _getsockopt(self, level: int, option: int) -> int:
        with self.stack.lock:
            if level == SOL_SOCKET:
                if option == _std.SO_ERROR:
                    err = self._ep.take_error()
                    self._sync_fd()
                    return err
                table = {_std.SO_TYPE: int(SOCK_DGRAM), _std.SO_PROTOCOL: int(IPPROTO_UDP), _std.SO_DOMAIN: int(AF_INET),
                         _std.SO_ACCEPTCONN: 0, _std.SO_RCVBUF: self._ep.rcvbuf, _std.SO_SNDBUF: self._sndbuf,
                         _std.SO_RCVLOWAT: 1, _std.SO_SNDLOWAT: 1}
                if option in table:
                    return table[option]
                if option in _FLAGS:
                    return self._flags.get(option, 0)
                raise _err(errno.ENOPROTOOPT)
            if level == IPPROTO_IP and option in self._ip_opts:
                return self._ip_opts[option]
            if level in (IPPROTO_TCP,) or level not in (SOL_SOCKET, IPPROTO_IP, IPPROTO_UDP):
                raise _err(errno.EOPNOTSUPP)
            raise _err(errno.ENOPROTOOPT)

    def info(self) -> dict:
        """An ``ss -u``-like view: addresses, queued datagrams and bytes, drops."""
        with self.stack.lock:
            ep = self._ep
            return {"local": self.getsockname(), "remote": ep.remote and (ntoa(ep.remote[0]), ep.remote[1]),
                    "queued": len(ep.rcvq), "rcvq_bytes": ep.rcvq_bytes, "rcvbuf": ep.rcvbuf, "drops": ep.drops}


Stack.socket_types[SOCK_DGRAM] = udpsocket  # Stack.socket(type=SOCK_DGRAM) and stack.socket.socket() find us here
