"""The one adapter between packet scripts and the TCP core (sans-I/O, virtual time).

Everything the script runner does to the stack goes through ``StackDriver``: IPv4 bytes in
(``inject``), IPv4 bytes out with the virtual time they left (``out``), timers
(``advance_to``, ``advance_until_output``) and packetdrill-style system calls on a small
file-descriptor table (``syscall``). It uses the same entry points as tests/tcp/harness.py:
``Host.receive``, ``Host.take_output``, ``Host.next_deadline``/``on_timers``,
``host.tcp.listen/connect/unlisten/touch`` and the ``Connection`` user calls
(``send``, ``recv``, ``shutdown_write``, ``close``), each followed by ``tcp.touch``.

What a script sees (packetdrill's conventions, mapped onto this stack):
- the stack is 192.168.0.1 and the script's peer is 192.0.2.1; ``bind`` binds port 8080,
  ``connect`` goes to 192.0.2.1:8080 from an ephemeral port; inbound segments for a listener
  come from port ``REMOTE_PORT``;
- the stack's defaults (``TcpConfig()``) except the buffers: MTU 1500 so MSS 1460, window scaling,
  timestamps and SACK on, fixed 4 MiB send and receive buffers (``SCRIPT_BUFFERS``: no autotuning,
  so the windows a script sees do not depend on when its reads happen), CUBIC, initial RTO 1 s, minimum RTO 200 ms, delayed
  ACK 40 ms, RFC 5681's initial window (``--initial_window=N`` sets it); its ISS is ``ISS`` (fixed) and its TS clock ticks every millisecond.
"""
from __future__ import annotations

import errno as _errno
import random
import socket as _socket
from collections import deque

from ..netstack import NetStack as Host
from ..tcp.config import TcpConfig
from ..tcp.isn import FixedIsn
from ..tcp.states import State

LOCAL_ADDR = "192.168.0.1"       # packetdrill's default live local address
REMOTE_ADDR = "192.0.2.1"        # packetdrill's default remote address
LOCAL_PORT = 8080                # bind(): packetdrill binds the script's port 8080
REMOTE_PORT = 40000              # the script's port when it connects to a listener
CONNECT_PORT = 8080              # connect(): the remote port
ISS = 1000                       # the stack's initial send sequence number (FixedIsn)
LOCAL_B = _socket.inet_aton(LOCAL_ADDR)
REMOTE_B = _socket.inet_aton(REMOTE_ADDR)

# symbolic constants a script may write in system-call arguments
CONSTANTS = {name: getattr(_socket, name) for name in (
    "AF_INET", "SOCK_STREAM", "IPPROTO_TCP", "SOL_SOCKET", "SO_REUSEADDR", "SO_RCVBUF", "SO_SNDBUF",
    "SO_ERROR", "SO_KEEPALIVE", "TCP_NODELAY", "SHUT_RD", "SHUT_WR", "SHUT_RDWR")}
CONSTANTS.update(TCP_CONGESTION=getattr(_socket, "TCP_CONGESTION", 13), F_GETFL=3, F_SETFL=4,
                 O_RDWR=2, O_NONBLOCK=0o4000)


class SyscallError(Exception):
    """The call itself is malformed or unsupported (a script error, not a stack result)."""


class ValueMismatch(Exception):
    """A value the call writes back (getsockopt's [N]) is not what the script expects."""


class _Fd:
    def __init__(self):
        self.nonblock = False
        self.bound: tuple[bytes, int] | None = None
        self.listener = None
        self.conn = None
        self.opts: dict = {}
        self.err_reported = False


def stack_config(options: dict) -> dict:
    """TcpConfig fields a script sets with option lines (ours; packetdrill has none): ``--initial_window=N``
    pins the IW in segments (the default is RFC 5681's; Linux's is 10)."""
    return {"initial_window": int(options["initial_window"])} if "initial_window" in options else {}


# fixed buffers for scripts (what TcpConfig gave before autotuning; SO_RCVBUF/SO_SNDBUF still set them)
SCRIPT_BUFFERS = dict(rcvbuf=4 << 20, sndbuf=4 << 20)


class StackDriver:
    """The stack under test in virtual time: a Host, its clock, its output and its sockets."""

    name = "tunstack"

    def __init__(self, seed: int = 1, **config):
        self.host = Host(LOCAL_B, mtu=1500, tcp_config=TcpConfig(**{**SCRIPT_BUFFERS, **config}), isn=FixedIsn(ISS),
                         rng=random.Random(seed))
        self.now = 0.0
        self.out: deque = deque()         # (time, IPv4 bytes) not yet matched by the runner
        self.fds: dict[int, _Fd] = {}
        self.flow = (LOCAL_PORT, REMOTE_PORT)  # (stack port, script port) of the last socket set up

    # ------------------------------------------------------------ packets and time
    def inject(self, raw: bytes) -> None:
        self.host.receive(raw, self.now)
        self._collect()

    def _collect(self) -> None:
        for raw in self.host.take_output(self.now):
            self.out.append((self.now, bytes(raw)))

    def advance_to(self, t: float) -> None:
        """Run every timer due up to ``t`` at its exact deadline, then stand at ``t``."""
        self.advance_until_output(t, stop_on_output=False)
        self.now = max(self.now, t)
        self._collect()

    def advance_until_output(self, t: float, stop_on_output: bool = True) -> None:
        """Run timers in order up to ``t``; with ``stop_on_output``, stop at the first that emits."""
        while not (stop_on_output and self.out):
            d = self.host.next_deadline()
            if d is None or d > t + 1e-9:  # a timer due "at t" up to float rounding runs before t's event
                return
            self.now = max(self.now, d)
            self.host.on_timers(self.now)
            self._collect()

    # ------------------------------------------------------------ system calls
    def syscall(self, name: str, args: list[str]) -> tuple[int, str | None]:
        """Run one call; returns (result, errno name or None). Raises SyscallError on a bad call."""
        fn = getattr(self, "_sys_" + name, None)
        if fn is None:
            raise SyscallError(f"unsupported system call {name!r} (supported: "
                               + ", ".join(sorted(n[5:] for n in dir(self) if n.startswith("_sys_"))) + ")")
        try:
            result = fn(*args)
        except TypeError:
            raise SyscallError(f"wrong number of arguments for {name}()") from None
        except OSError as exc:
            return -1, _errno.errorcode.get(exc.errno, str(exc.errno))
        self._collect()
        return result, None

    def _value(self, text: str):
        """An argument: integer, constant (A|B ok), [int], "string" or ... (None)."""
        text = text.strip()
        if text == "...":
            return None
        if text.startswith("[") and text.endswith("]"):
            return self._value(text[1:-1])
        if text.startswith('"') and text.endswith('"'):
            return text[1:-1]
        total = 0
        for part in text.split("|"):
            part = part.strip()
            if part in CONSTANTS:
                total |= CONSTANTS[part]
            else:
                try:
                    total |= int(part, 0)
                except ValueError:
                    raise SyscallError(f"unknown argument {part!r}") from None
        return total

    def _fd(self, text: str) -> _Fd:
        fd = self._value(text)
        if fd not in self.fds:
            raise OSError(_errno.EBADF, "bad fd")
        return self.fds[fd]

    def _new_fd(self, f: _Fd) -> int:
        n = 3
        while n in self.fds:
            n += 1
        self.fds[n] = f
        return n

    def _touch(self, conn) -> None:
        self.host.tcp.touch(conn, self.now)

    def _would_block(self, f: _Fd, what: str):
        if f.nonblock:
            raise OSError(_errno.EAGAIN, "would block")
        raise SyscallError(f"{what} would block on a blocking socket; this runner does not block across time "
                           "(call it after the packets it waits for, or set O_NONBLOCK with fcntl)")

    def _sys_socket(self, family, type_, proto):
        if self._value(type_) not in (None, _socket.SOCK_STREAM):
            raise OSError(_errno.EPROTONOSUPPORT, "TCP only")
        return self._new_fd(_Fd())

    def _sys_fcntl(self, fd, cmd, arg="0"):
        f = self._fd(fd)
        if self._value(cmd) == CONSTANTS["F_SETFL"]:
            f.nonblock = bool(self._value(arg) & CONSTANTS["O_NONBLOCK"])
            return 0
        if self._value(cmd) == CONSTANTS["F_GETFL"]:
            return CONSTANTS["O_RDWR"] | (CONSTANTS["O_NONBLOCK"] if f.nonblock else 0)
        raise SyscallError("fcntl: only F_GETFL and F_SETFL")

    def _sys_setsockopt(self, fd, level, option, value, length="4"):
        f = self._fd(fd)
        key, v = (self._value(level), self._value(option)), self._value(value)
        if key == (_socket.IPPROTO_TCP, CONSTANTS["TCP_CONGESTION"]):
            from ..tcp import congestion
            if v not in congestion.ALGORITHMS:
                raise OSError(_errno.ENOENT, "unknown congestion control")
        f.opts[key] = v
        if f.conn is not None:
            self._apply_options(f, f.conn)
        return 0

    def _sys_getsockopt(self, fd, level, option, value, length):
        f = self._fd(fd)
        key = (self._value(level), self._value(option))
        if key != (_socket.SOL_SOCKET, _socket.SO_ERROR):
            raise SyscallError("getsockopt: only SO_ERROR")
        got = f.conn.error if f.conn is not None and not f.err_reported else 0
        f.err_reported = f.err_reported or bool(got)
        want = self._value(value)
        if want is not None and want != got:
            raise ValueMismatch(f"SO_ERROR is [{got}] ({_errno.errorcode.get(got, got)}), the script expects [{want}]")
        return 0

    def _apply_options(self, f: _Fd, conn) -> None:
        for (level, option), v in f.opts.items():
            if (level, option) == (_socket.IPPROTO_TCP, _socket.TCP_NODELAY):
                conn.nodelay = bool(v)
            elif (level, option) == (_socket.SOL_SOCKET, _socket.SO_RCVBUF) and conn.state in (State.CLOSED, State.SYN_SENT):
                conn.lock_rcvbuf(max(2048, int(v)))
            elif (level, option) == (_socket.SOL_SOCKET, _socket.SO_SNDBUF):
                conn.lock_sndbuf(max(2048, int(v)))
            elif (level, option) == (_socket.IPPROTO_TCP, CONSTANTS["TCP_CONGESTION"]):
                conn.set_congestion(v, self.now)

    def _sys_bind(self, fd, addr, addrlen):
        f = self._fd(fd)
        if f.bound is not None:
            raise OSError(_errno.EINVAL, "already bound")
        local = (LOCAL_B, LOCAL_PORT)
        if self.host.tcp.port_in_use(*local):
            raise OSError(_errno.EADDRINUSE, "in use")
        self.host.tcp.bind(local)
        f.bound = local
        return 0

    def _sys_listen(self, fd, backlog):
        f = self._fd(fd)
        if f.bound is None:
            raise SyscallError("listen: bind() the socket first (this runner has no autobind)")
        f.listener = self.host.tcp.listen(f.bound[0], f.bound[1], self._value(backlog), reserved=True)
        self.flow = (f.bound[1], REMOTE_PORT)
        return 0

    def _sys_accept(self, fd, addr, addrlen):
        f = self._fd(fd)
        if f.listener is None:
            raise OSError(_errno.EINVAL, "not listening")
        conn = f.listener.accept()
        if conn is None:
            self._would_block(f, "accept")
        child = _Fd()
        child.conn, child.opts = conn, dict(f.opts)
        self._apply_options(child, conn)
        self._touch(conn)
        return self._new_fd(child)

    def _sys_connect(self, fd, addr, addrlen):
        f = self._fd(fd)
        if f.conn is not None:
            raise OSError(_errno.EALREADY if f.conn.state is State.SYN_SENT else _errno.EISCONN, "connected")
        remote = (REMOTE_B, CONNECT_PORT)
        port = f.bound[1] if f.bound else self.host.tcp.allocate_port(LOCAL_B, remote)
        f.conn = self.host.tcp.connect((LOCAL_B, port), remote, self.now,
                                       setup=lambda conn: self._apply_options(f, conn))
        self.flow = (port, CONNECT_PORT)
        self._collect()
        if f.conn.state is not State.ESTABLISHED:
            if not f.nonblock:
                raise SyscallError("connect would block on a blocking socket; set O_NONBLOCK with fcntl "
                                   "first and expect '= -1 EINPROGRESS (Operation now in progress)'")
            raise OSError(_errno.EINPROGRESS, "in progress")
        return 0

    def _conn(self, f: _Fd):
        if f.conn is None:
            raise OSError(_errno.ENOTCONN, "not connected")
        return f.conn

    def _sys_write(self, fd, buf, count):
        f = self._fd(fd)
        conn = self._conn(f)
        n = conn.send(bytes(self._value(count)), self.now)
        self._touch(conn)
        if n < 0:
            raise OSError(-n, "send")
        if n == 0 and self._value(count):
            self._would_block(f, "write")
        return n

    def _sys_read(self, fd, buf, count):
        f = self._fd(fd)
        conn = self._conn(f)
        data = conn.recv(self._value(count), self.now)
        self._touch(conn)
        if data:
            return len(data)
        if conn.error and not f.err_reported:
            f.err_reported = True
            raise OSError(conn.error, "error")
        if conn.rcv_closed or conn.state is State.CLOSED:
            return 0
        self._would_block(f, "read")

    def _sys_shutdown(self, fd, how):
        f = self._fd(fd)
        conn = self._conn(f)
        if self._value(how) in (_socket.SHUT_WR, _socket.SHUT_RDWR):
            conn.shutdown_write(self.now)
            self._touch(conn)
        return 0

    def _sys_close(self, fd):
        f = self._fd(fd)
        del self.fds[self._value(fd)]
        if f.bound is not None:
            self.host.tcp.unbind(f.bound)
        if f.listener is not None:
            self.host.tcp.unlisten(f.listener, self.now)
        elif f.conn is not None and f.conn.state is not State.CLOSED:
            f.conn.close(self.now)
            self._touch(f.conn)
        return 0

