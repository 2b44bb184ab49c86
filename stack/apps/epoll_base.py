"""What the one-thread epoll servers (``epoll_echo``, ``epoll_http``) share: the non-blocking listener
on a ``stack.epoll``, and the lifecycle other threads drive (stop accepting, drain, shut down).

A subclass owns ``conns`` and its serving loop, which clears ``_done`` while it runs, stops when
``_stop`` is set, and looks at ``_closing_listener`` / ``_draining`` each turn; it closes its own
connections in ``_close_all``.
"""
from __future__ import annotations

import threading

from ..epoll import EPOLLIN, epoll


class EpollServerBase:
    def __init__(self, stack, port: int, backlog: int):
        self.stack = stack
        self.listener = stack.socket()
        self.listener.bind(("", port))
        self.listener.listen(backlog)
        self.listener.setblocking(False)
        self.ep = epoll(stack)
        self.ep.register(self.listener, EPOLLIN)
        self.conns: dict = {}   # socket -> the subclass's state: keyed by the socket, so none needs an fd
        self._stop = threading.Event()
        self._done = threading.Event()
        self._done.set()
        self._closing_listener = self._draining = False   # graceful stop, asked from another thread

    def stop_accepting(self) -> None:
        """Close the listener (done by the serving thread at its next turn)."""
        self._closing_listener = True
        self.ep.interrupt()

    def drain(self) -> None:
        """Finish the connections gracefully (what that means is the subclass's ``_graceful_steps``)."""
        self._draining = True
        self.ep.interrupt()

    def active(self) -> int:
        return len(self.conns)

    def shutdown(self) -> None:
        """Stop serve_forever and wait for it to return (as socketserver's shutdown does)."""
        self._stop.set()
        if not self.ep.closed:
            self.ep.interrupt()
        self._done.wait(5)

    def server_close(self) -> None:
        self._close_all()
        self.ep.close()
        if self.listener is not None:
            self.listener.close()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def _close_all(self) -> None:
        raise NotImplementedError
