"""What the TCP socket (stack/socket.py) and the UDP socket (stack/udpsocket.py) share: the
standard library's blocking, timeout and non-blocking modes, the context manager, ``detach``,
the finalizer of the readiness fd, and errors that carry their errno.

``_timeout`` is None (blocking), 0.0 (non-blocking) or seconds, as CPython keeps it."""
from __future__ import annotations

import errno
import functools
import os
import _socket  # the C module: never patched by tunstack run (stack/run.py)
import struct
import sys
import time
from typing import Callable


_TIMEVAL = struct.Struct("ll")  # struct timeval (SO_RCVTIMEO, SO_SNDTIMEO)


@functools.lru_cache(maxsize=1)
def jiffy_us() -> int:
    """Microseconds in the kernel's jiffy (1/HZ), what it rounds SO_RCVTIMEO up to: read off a kernel
    socket of its own (a 1 us timeout reads back as one jiffy), so the stack's options round alike."""
    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_DGRAM)
    try:
        s.setsockopt(_socket.SOL_SOCKET, _socket.SO_RCVTIMEO, _TIMEVAL.pack(0, 1))
        sec, usec = _TIMEVAL.unpack(s.getsockopt(_socket.SOL_SOCKET, _socket.SO_RCVTIMEO, _TIMEVAL.size))
    finally:
        s.close()
    return sec * 1_000_000 + usec or 1000


def parse_timeval(value, is_bytes: bool):
    """sock_set_timeout(): a struct timeval -> jiffies (rounded up), None for 0 (wait for ever), 0 for a
    negative time (no wait); EINVAL when shorter than a timeval, EDOM for tv_usec outside [0, 1e6)."""
    if not is_bytes or len(value) < _TIMEVAL.size:
        raise _err(errno.EINVAL)
    sec, usec = _TIMEVAL.unpack_from(value)
    if not 0 <= usec < 1_000_000:
        raise _err(errno.EDOM)
    if sec < 0:
        return 0
    if sec == 0 and usec == 0:
        return None
    jiffy = jiffy_us()
    return sec * (1_000_000 // jiffy) + -(-usec // jiffy)


def timeval_of(jiffies) -> bytes:
    """sock_get_timeout(): the struct timeval of a stored SO_RCVTIMEO/SO_SNDTIMEO (0, 0 for ever)."""
    if not jiffies:
        return _TIMEVAL.pack(0, 0)
    hz = 1_000_000 // jiffy_us()
    return _TIMEVAL.pack(jiffies // hz, jiffies % hz * jiffy_us())


def option_value(raw: bytes, buflen: int | None):
    """What getsockopt returns of an option's C value ``raw``: without ``buflen`` its first four
    bytes as an int (CPython reads an int), else at most ``buflen`` bytes of it."""
    if not buflen:
        return int.from_bytes(raw[:4].ljust(4, b"\0"), sys.byteorder, signed=True)
    return raw[:buflen]


def _err(code: int, what: str = "") -> OSError:
    """OSError(errno, strerror) becomes ConnectionResetError, BrokenPipeError, ... by itself."""
    return OSError(code, os.strerror(code) + (f" ({what})" if what else ""))


class SocketCommon:
    _timeout: float | None
    _closed: bool
    _efd: object | None   # the ReadinessFd made by the first fileno()

    # ------------------------------------------------------------ modes
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

    # ------------------------------------------------------------ the wait queue
    _opts: dict

    def _deadline(self, timeo: tuple[int, int] | None = None) -> float | None:
        """When a wait ends: the Python timeout's (``settimeout``), or in blocking mode the option
        ``timeo`` names (SO_RCVTIMEO or SO_SNDTIMEO, stored in jiffies: ``sock_rcvtimeo()``)."""
        if self._timeout:
            return time.monotonic() + self._timeout
        if self._timeout is None and timeo is not None:
            jiffies = self._opts.get(timeo)
            if jiffies is not None:
                return time.monotonic() + jiffies * jiffy_us() / 1e6
        return None

    def _wait(self, ready: Callable[[], bool], deadline: float | None, what: str, dontwait: bool = False) -> None:
        """Sleep on the socket's wait queue (``_cond``) until ``ready()``, as a kernel socket call does
        (sk_wait_event): EAGAIN when non-blocking (or MSG_DONTWAIT), TimeoutError after the deadline,
        EBADF when the socket is closed under the sleeper."""
        while not ready():
            if self._timeout == 0 or dontwait:
                raise BlockingIOError(errno.EAGAIN, f"{what} would block")
            if deadline is None:
                self._cond.wait()
            else:
                left = deadline - time.monotonic()
                if left <= 0:
                    if self._timeout is None:  # blocking: SO_RCVTIMEO/SO_SNDTIMEO ran out (sock_rcvtimeo)
                        raise BlockingIOError(errno.EAGAIN, f"{what}: SO_RCVTIMEO/SO_SNDTIMEO expired")
                    raise TimeoutError("timed out")
                self._cond.wait(left)
            if self._released():
                raise _err(errno.EBADF)

    def _released(self) -> bool:
        """Whether the socket is gone for a sleeper (the TCP socket defers this past makefile())."""
        return self._closed

    # ------------------------------------------------------------ life
    @property
    def closed(self) -> bool:
        return self._closed

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
