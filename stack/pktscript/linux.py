"""``--against linux``: the same scripts with the Linux kernel as the stack under test (as packetdrill).

Each script runs in a child process that first moves into a brand-new network namespace of its
own (``unshare(CLONE_NEWNET)``): there it brings up ``lo`` and a TUN device whose kernel side is
192.168.0.1/24, routes 192.0.2.0/24 (the script's peer) into the TUN, and then plays the script:
inbound segments are written to the TUN, outbound ones read from it, and the system calls are
made on real kernel sockets. The namespace, the TUN and the sockets vanish when the child
exits, whatever happens. Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and /dev/net/tun.

Time is wall-clock time here, so outbound times are checked with packetdrill's default
tolerance (4 ms) and the kernel's own defaults apply (its window, its 60 s TIME-WAIT, its
RTO rules): scripts written for tunstack show where the two stacks differ.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno as _errno
import os
import pickle
import select
import socket as _socket
import time
from collections import deque

from .driver import CONNECT_PORT, CONSTANTS, LOCAL_ADDR, LOCAL_PORT, REMOTE_ADDR, REMOTE_PORT, SyscallError, ValueMismatch

CLONE_NEWNET = 0x40000000


class LinuxDriver:
    """The kernel of a private network namespace, driven through a TUN and real sockets."""

    name = "linux"
    tolerance_usecs = 4000            # packetdrill's default --tolerance_usecs
    ts_tick_usecs = 1000              # Linux's TCP timestamp clock: 1 ms

    def __init__(self):
        from pyroute2 import IPRoute

        from ..link.netconf import bring_up_loopback, configure_host_side
        from ..link.tun import TunLink

        bring_up_loopback()
        self.tun = TunLink(f"pkt{os.getpid() % 100000}", mtu=1500)
        configure_host_side(self.tun.name, f"{LOCAL_ADDR}/24")
        with IPRoute() as ipr:
            index = ipr.link_lookup(ifname=self.tun.name)[0]
            ipr.route("add", dst="192.0.2.0", dst_len=24, oif=index)
        self.start = time.monotonic()
        self.now = 0.0
        self.out: deque = deque()
        self.fds: dict[int, list] = {}  # script fd -> [socket, nonblocking]
        self.flow = (LOCAL_PORT, REMOTE_PORT)

    # ------------------------------------------------------------ packets and time
    def _clock(self) -> float:
        return time.monotonic() - self.start

    def _read(self, timeout: float) -> None:
        ready, _, _ = select.select([self.tun], [], [], max(0.0, timeout))
        if not ready:
            return
        at = self._clock()
        for raw in self.tun.read_batch():
            if len(raw) >= 20 and raw[0] >> 4 == 4 and raw[9] == 6:  # IPv4 TCP only
                self.out.append((at, bytes(raw)))

    def inject(self, raw: bytes) -> None:
        self.tun.write(raw)
        self._read(0.0005)  # the kernel answers from the write's softirq, usually at once

    def advance_until_output(self, t: float, stop_on_output: bool = True) -> None:
        while not (stop_on_output and self.out):
            left = t - self._clock()
            if left <= 0:
                break
            self._read(left)
        self.now = max(self.now, min(self._clock(), t) if stop_on_output and self.out else t)

    def advance_to(self, t: float) -> None:
        self.advance_until_output(t, stop_on_output=False)
        self.now = max(self.now, t)

    # ------------------------------------------------------------ system calls (real sockets)
    def syscall(self, name: str, args: list[str]):
        fn = getattr(self, "_sys_" + name, None)
        if fn is None:
            raise SyscallError(f"unsupported system call {name!r}")
        try:
            result = fn(*args)
        except TypeError:
            raise SyscallError(f"wrong number of arguments for {name}()") from None
        except OSError as exc:
            if exc.errno is None:  # socket.timeout: a blocking call that did not complete
                raise SyscallError(f"{name} would block on a blocking socket") from None
            return -1, _errno.errorcode.get(exc.errno, str(exc.errno))
        self._read(0.0005)
        return result, None

    def _sock(self, text: str):
        fd = _value(text)
        if fd not in self.fds:
            raise OSError(_errno.EBADF, "bad fd")
        return self.fds[fd]

    def _new_fd(self, s) -> int:
        n = 3
        while n in self.fds:
            n += 1
        self.fds[n] = [s, False]
        s.settimeout(1.0)  # a blocking call that would wait for the script fails instead of hanging
        return n

    def _sys_socket(self, family, type_, proto):
        return self._new_fd(_socket.socket(_socket.AF_INET, _socket.SOCK_STREAM, _socket.IPPROTO_TCP))

    def _sys_fcntl(self, fd, cmd, arg="0"):
        entry = self._sock(fd)
        if _value(cmd) == CONSTANTS["F_SETFL"]:
            entry[1] = bool(_value(arg) & CONSTANTS["O_NONBLOCK"])
            entry[0].settimeout(0.0 if entry[1] else 1.0)
            return 0
        return CONSTANTS["O_RDWR"] | (CONSTANTS["O_NONBLOCK"] if entry[1] else 0)

    def _sys_setsockopt(self, fd, level, option, value, length="4"):
        v = _value(value)
        self._sock(fd)[0].setsockopt(_value(level), _value(option), v.encode() if isinstance(v, str) else v)
        return 0

    def _sys_getsockopt(self, fd, level, option, value, length):
        got = self._sock(fd)[0].getsockopt(_value(level), _value(option))
        want = _value(value)
        if want is not None and want != got:
            raise ValueMismatch(f"value is [{got}], the script expects [{want}]")
        return 0

    def _sys_bind(self, fd, addr, addrlen):
        self._sock(fd)[0].bind((LOCAL_ADDR, LOCAL_PORT))
        return 0

    def _sys_listen(self, fd, backlog):
        s = self._sock(fd)[0]
        s.listen(_value(backlog))
        self.flow = (s.getsockname()[1], REMOTE_PORT)
        return 0

    def _sys_accept(self, fd, addr, addrlen):
        entry = self._sock(fd)
        child, _ = entry[0].accept()
        n = self._new_fd(child)
        return n

    def _sys_connect(self, fd, addr, addrlen):
        entry = self._sock(fd)
        if not entry[1]:
            raise SyscallError("connect would block on a blocking socket; set O_NONBLOCK with fcntl first")
        err = entry[0].connect_ex((REMOTE_ADDR, CONNECT_PORT))
        self.flow = (entry[0].getsockname()[1], CONNECT_PORT)
        if err:
            raise OSError(err, os.strerror(err))
        return 0

    def _sys_write(self, fd, buf, count):
        return self._sock(fd)[0].send(bytes(_value(count)))

    def _sys_read(self, fd, buf, count):
        return len(self._sock(fd)[0].recv(_value(count)))

    def _sys_shutdown(self, fd, how):
        self._sock(fd)[0].shutdown(_value(how))
        return 0

    def _sys_close(self, fd):
        entry = self._sock(fd)
        del self.fds[_value(fd)]
        entry[0].close()
        return 0


def _value(text: str):
    text = text.strip()
    if text == "...":
        return None
    if text.startswith("[") and text.endswith("]"):
        return _value(text[1:-1])
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


def _unshare_net() -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare(CLONE_NEWNET): {os.strerror(err)} (--against linux needs root)")


def run_against_linux(script, verbose: bool = False, echo=None, timeout: float = 600.0):
    """Run ``script`` in a child process inside a fresh network namespace; returns its Result."""
    from .run import Result, run_script

    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its own namespace, TUN and sockets; all gone when it exits
        code = 0
        try:
            os.close(rfd)
            _unshare_net()
            result = run_script(script, LinuxDriver(), verbose, echo)
        except BaseException as exc:  # reported to the parent as a failed run, never a hang
            result = Result(script.path, False, f"{script.path}: --against linux: {exc}")
            code = 1
        try:
            with os.fdopen(wfd, "wb") as f:
                pickle.dump(result, f)
        finally:
            sys.stdout.flush()
            os._exit(code)
    os.close(wfd)
    deadline = time.monotonic() + timeout
    chunks = []
    with os.fdopen(rfd, "rb") as f:
        while True:
            ready, _, _ = select.select([f], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                os.kill(pid, 9)
                break
            chunk = os.read(f.fileno(), 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    os.waitpid(pid, 0)
    if not chunks:
        return Result(script.path, False, f"{script.path}: --against linux: no result (timed out after {timeout:.0f} s)")
    return pickle.loads(b"".join(chunks))
