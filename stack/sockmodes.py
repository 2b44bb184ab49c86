"""Blocking, timeout and non-blocking modes: the standard library's ``settimeout``/``setblocking``
family, one home for the TCP socket (stack/socket.py) and the UDP socket (stack/udpsocket.py).

``_timeout`` is None (blocking), 0.0 (non-blocking) or seconds, as CPython keeps it."""
from __future__ import annotations


class TimeoutModes:
    _timeout: float | None

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
