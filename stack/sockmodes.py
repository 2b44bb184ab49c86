"""What the TCP socket (stack/socket.py) and the UDP socket (stack/udpsocket.py) share: the
standard library's blocking, timeout and non-blocking modes, the context manager, ``detach``,
the finalizer of the readiness fd, and errors that carry their errno.

``_timeout`` is None (blocking), 0.0 (non-blocking) or seconds, as CPython keeps it."""
from __future__ import annotations

import errno
import os
import time
from typing import Callable


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
    def _deadline(self) -> float | None:
        return None if not self._timeout else time.monotonic() + self._timeout

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
