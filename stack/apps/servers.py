"""The standard library's socketserver and http.server, running on tunstack sockets.

Only the socket is ours: ``socketserver.BaseServer``'s loop, ``ThreadingMixIn`` and
``http.server.SimpleHTTPRequestHandler`` run unchanged (our sockets have a real,
readiness-tracking ``fileno()`` for ``serve_forever``'s selector).
"""
from __future__ import annotations

import functools
import http.server
import socketserver
import sys
import threading


class StackServerMixin:
    """Make a socketserver server class listen on a tunstack ``Stack`` instead of the kernel."""

    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False
    quiet = False

    def __init__(self, stack, server_address, RequestHandlerClass, bind_and_activate=True):
        self.stack = stack
        socketserver.BaseServer.__init__(self, server_address, RequestHandlerClass)
        self.socket = stack.socket()
        if bind_and_activate:
            try:
                self.server_bind()
                self.server_activate()
            except BaseException:
                self.server_close()
                raise

    #: acceptor threads started up front; more start (up to max_workers) when all are busy
    min_workers = 4
    max_workers = 512

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Serve until ``shutdown()``, with a pool of threads that each block in ``accept()``.

        socketserver's own loop waits in select() and then starts a thread per connection: two
        thread hand-offs and a thread start per connection. Here each connection wakes one
        waiting acceptor, which serves it (keep-alive included) and then accepts again, as
        pre-forked servers do. A busy pool grows up to ``max_workers``.
        """
        self._BaseServer__is_shut_down.clear()
        self.socket.settimeout(poll_interval)
        self._pool_lock = threading.Lock()
        self._idle = 0
        self._workers: list[threading.Thread] = []
        try:
            for _ in range(self.min_workers):
                self._spawn_worker()
            while any(t.is_alive() for t in list(self._workers)):
                for t in list(self._workers):
                    t.join(poll_interval)
                    if self._BaseServer__shutdown_request:
                        break
                if self._BaseServer__shutdown_request:
                    break
        finally:
            self._BaseServer__shutdown_request = False
            self._BaseServer__is_shut_down.set()

    def _spawn_worker(self) -> None:
        with self._pool_lock:
            if len(self._workers) >= self.max_workers:
                return
            t = threading.Thread(target=self._worker, name=f"{type(self).__name__}-worker", daemon=True)
            self._workers.append(t)
        t.start()

    def _worker(self) -> None:
        while not self._BaseServer__shutdown_request:
            with self._pool_lock:
                self._idle += 1
            try:
                request, client_address = self.get_request()
            except TimeoutError:
                continue
            except OSError:
                if self._BaseServer__shutdown_request or self.socket.closed:
                    return
                continue
            finally:
                with self._pool_lock:
                    self._idle -= 1
                    starved = self._idle == 0
            if starved:
                self._spawn_worker()  # keep one acceptor free while this one serves
            if not self.verify_request(request, client_address):
                self.shutdown_request(request)
                continue
            try:
                self.finish_request(request, client_address)
            except Exception:
                self.handle_error(request, client_address)
            finally:
                self.shutdown_request(request)

    def handle_error(self, request, client_address):
        """One line instead of socketserver's traceback: a peer that resets is normal on a network."""
        exc = sys.exc_info()[1]
        if not self.quiet:
            print(f"tunstack: {type(self).__name__} {client_address[0]}:{client_address[1]}: "
                  f"{type(exc).__name__}: {exc}", file=sys.stderr)


class TCPServer(StackServerMixin, socketserver.ThreadingTCPServer):
    pass


class HTTPServer(StackServerMixin, http.server.ThreadingHTTPServer):
    def server_bind(self):
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = host or self.stack.address_str, port  # no DNS lookup


class FileHandler(http.server.SimpleHTTPRequestHandler):
    """SimpleHTTPRequestHandler speaking HTTP/1.1 (keep-alive); request log to stderr unless quiet."""

    protocol_version = "HTTP/1.1"
    # headers and body go out in separate writes: without TCP_NODELAY the small body waits
    # for the ACK of the headers, which the client delays (the classic Nagle/delayed-ACK stall)
    disable_nagle_algorithm = True

    def log_message(self, format, *args):
        if not getattr(self.server, "quiet", False):
            super().log_message(format, *args)


class EchoHandler(socketserver.BaseRequestHandler):
    """RFC 862 echo: every octet back until the peer closes."""

    def handle(self):
        sock = self.request
        while True:
            data = sock.recv(65536)
            if not data:
                break
            sock.sendall(data)


class DiscardHandler(socketserver.BaseRequestHandler):
    """RFC 863 discard: read and drop until the peer closes."""

    def handle(self):
        sock = self.request
        buf = bytearray(262144)
        while sock.recv_into(buf):
            pass


def http_server(stack, port: int, root: str, quiet: bool = False) -> HTTPServer:
    server = HTTPServer(stack, ("", port), functools.partial(FileHandler, directory=root))
    server.quiet = quiet
    return server


def echo_server(stack, port: int, quiet: bool = False) -> TCPServer:
    server = TCPServer(stack, ("", port), EchoHandler)
    server.quiet = quiet
    return server


def discard_server(stack, port: int, quiet: bool = False) -> TCPServer:
    server = TCPServer(stack, ("", port), DiscardHandler)
    server.quiet = quiet
    return server
