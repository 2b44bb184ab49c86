"""A real file descriptor that is readable exactly while some condition holds.

Our sockets and epoll objects live in Python, but ``select``, ``selectors`` and the
standard library's ``socketserver`` want file descriptors. Each of them keeps one of
these eventfds and calls ``set(ready)`` whenever its readiness may have changed.
"""
from __future__ import annotations

import os


class ReadinessFd:
    def __init__(self):
        self.fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._readable = False

    def set(self, ready: bool) -> None:
        if ready and not self._readable:
            os.eventfd_write(self.fd, 1)
            self._readable = True
        elif not ready and self._readable:
            try:
                os.eventfd_read(self.fd)
            except BlockingIOError:
                pass
            self._readable = False

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
