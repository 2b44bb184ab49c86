"""A one-thread echo server on ``stack.epoll``: the "NIO multiplexing" half of the course.

Compare with ``servers.EchoHandler`` (a thread per connection, blocking calls): here one
thread owns every connection, sockets are non-blocking, and ``epoll.poll`` says which
ones are ready. Edge-triggered, so each readiness event is drained until EAGAIN.
"""
from __future__ import annotations

from socket import SHUT_RD

from ..epoll import EPOLLERR, EPOLLET, EPOLLHUP, EPOLLIN, EPOLLOUT, EPOLLRDHUP
from .epoll_base import EpollServerBase


class EpollEchoServer(EpollServerBase):
    def __init__(self, stack, port: int, backlog: int = 128):
        super().__init__(stack, port, backlog)   # self.conns: socket -> (socket, pending output bytearray)
        self._shut: set[int] = set()              # sockets whose read side drain() shut

    def serve_forever(self, poll_interval: float = 0.2) -> None:
        """Serve until ``shutdown()``. The loop sleeps until an event: requests from other threads
        (stop, drain) interrupt its poll, so it never polls; ``poll_interval`` is accepted for
        socketserver's signature and not used (an idle server costs no wake-up)."""
        self._done.clear()
        try:
            while not self._stop.is_set():
                for key, events in self.ep.poll_sockets(None):
                    if key is self.listener:
                        self._accept_all()
                    elif key in self.conns:
                        self._service(key, events)
                self._graceful_steps()
        finally:
            self._done.set()

    # ---------------------------------------------------------------- graceful stop
    # drain(): shut the read side of every connection: each gets EOF, its echo is flushed, then FIN
    def _graceful_steps(self) -> None:
        if self._closing_listener and self.listener is not None:
            self.listener.close()  # close(2) also removes it from the epoll
            self.listener = None
        if self._draining:
            for key, (sock, _) in list(self.conns.items()):
                if key not in self._shut:
                    self._shut.add(key)
                    try:
                        sock.shutdown(SHUT_RD)  # an EPOLLIN|EPOLLRDHUP event follows: recv() reads EOF
                    except OSError:
                        pass

    def _accept_all(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except BlockingIOError:
                return
            sock.setblocking(False)
            self.conns[sock] = (sock, bytearray())
            self.ep.register(sock, EPOLLIN | EPOLLRDHUP | EPOLLET)

    def _service(self, key, events: int) -> None:
        sock, out = self.conns[key]
        closing = bool(events & (EPOLLERR | EPOLLHUP))
        if events & (EPOLLIN | EPOLLRDHUP):
            while True:  # edge-triggered: drain until EAGAIN
                try:
                    data = sock.recv(65536)
                except BlockingIOError:
                    break
                except OSError:
                    closing = True
                    break
                if not data:
                    closing = True
                    break
                out += data
        self._flush(key, sock, out)
        if closing and not out:
            self._drop(key, sock)

    def _flush(self, key, sock, out: bytearray) -> None:
        while out:
            try:
                n = sock.send(out)
            except BlockingIOError:
                self.ep.modify(sock, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET)
                return
            except OSError:
                out.clear()
                return
            del out[:n]
        self.ep.modify(sock, EPOLLIN | EPOLLRDHUP | EPOLLET)

    def _drop(self, key, sock) -> None:
        del self.conns[key]
        self._shut.discard(key)
        sock.close()  # close(2) also removes it from the epoll

    def _close_all(self) -> None:
        for key, (sock, _) in list(self.conns.items()):
            self._drop(key, sock)
