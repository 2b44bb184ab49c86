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
import time
import wsgiref.simple_server
from socket import SHUT_RD


#: listen backlog: Linux's default net.core.somaxconn (4096 since 5.4), which clamps listen(2)
SOMAXCONN = 4096


class StackServerMixin:
    """Make a socketserver server class listen on a tunstack ``Stack`` instead of the kernel.

    Graceful stop, in three calls (``tunstack serve`` makes them on SIGINT/SIGTERM):
    ``shutdown()`` + ``server_close()`` stop accepting (the listener closes); ``drain()`` shuts
    the read side of every connection a handler holds, so a handler waiting for the next
    request reads EOF and closes (FIN), and one in the middle of a response finishes it first.
    """

    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False
    quiet = False
    request_queue_size = SOMAXCONN

    def __init__(self, stack, server_address, RequestHandlerClass, bind_and_activate=True):
        self.stack = stack
        socketserver.BaseServer.__init__(self, server_address, RequestHandlerClass)
        self.socket = stack.socket()
        self._held: set = set()            # connections handlers hold now (drain() shuts their read side)
        self._held_lock = threading.Lock()
        self._draining = False
        self._pool_event = threading.Event()  # shutdown() asked, or a worker left: serve_forever looks
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
    #: a worker beyond min_workers that waited this long for a connection exits (the pool shrinks)
    worker_idle_timeout = 30.0

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Serve until ``shutdown()``, with a pool of threads that each block in ``accept()``.

        socketserver's own loop waits in select() and then starts a thread per connection: two
        thread hand-offs and a thread start per connection. Here each connection wakes one
        waiting acceptor, which serves it (keep-alive included) and then accepts again, as
        pre-forked servers do. A busy pool grows up to ``max_workers``; a worker beyond
        ``min_workers`` that waits ``worker_idle_timeout`` without a connection exits.

        Nothing polls: this thread sleeps until ``shutdown()`` or a worker's exit wakes it, and
        the acceptors until a connection, ``server_close()`` (EBADF) or their idle timeout, so
        an idle server costs no wake-up. ``poll_interval`` is accepted for socketserver's
        signature and not used.
        """
        self._BaseServer__is_shut_down.clear()
        self.socket.settimeout(self.worker_idle_timeout)
        self._pool_lock = threading.Lock()
        self._idle = 0
        self._workers: list[threading.Thread] = []
        try:
            for _ in range(self.min_workers):
                self._spawn_worker()
            while True:
                self._pool_event.clear()  # before the checks: a set() after them is never lost
                if self._BaseServer__shutdown_request:
                    break
                with self._pool_lock:
                    self._workers = [t for t in self._workers if t.is_alive()]
                    if not self._workers:
                        break
                self._pool_event.wait()
        finally:
            self._BaseServer__shutdown_request = False
            self._BaseServer__is_shut_down.set()

    def shutdown(self) -> None:
        """Stop serve_forever and wait for it to return (socketserver's, with a wake-up instead of a poll)."""
        self._BaseServer__shutdown_request = True
        self._pool_event.set()
        self._BaseServer__is_shut_down.wait()

    def _spawn_worker(self) -> None:
        with self._pool_lock:
            if len(self._workers) >= self.max_workers:
                return
            t = threading.Thread(target=self._worker, name=f"{type(self).__name__}-worker", daemon=True)
            self._workers.append(t)
            # started under the lock: serve_forever prunes threads that are not alive, and one appended
            # but not yet started would be pruned while it goes on serving (start() only waits for the
            # thread to exist; its first step waits for this lock)
            t.start()

    def _retire(self) -> bool:
        """An idle worker (no longer counted in ``_idle``) leaves the pool if the pool is above its
        minimum and another acceptor is free: busy workers never leave a listener unwatched."""
        with self._pool_lock:
            if len(self._workers) <= self.min_workers or self._idle < 1:
                return False
            me = threading.current_thread()
            if me in self._workers:
                self._workers.remove(me)
            return True

    def _worker(self) -> None:
        try:
            self._serve_until_retired()
        finally:
            self._pool_event.set()  # serve_forever notices the pool changed (all gone: it returns)

    def _serve_until_retired(self) -> None:
        idle_since = time.monotonic()
        while not self._BaseServer__shutdown_request:
            served = self._accept_and_serve()
            if served is None:
                return
            if served:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since >= self.worker_idle_timeout and self._retire():
                return

    def _accept_and_serve(self) -> bool | None:
        """Accept one connection and serve it: True; False on a timeout; None when the worker should exit.
        Its own frame: the served socket (and its Connection) is freed on return, not kept by an idle
        worker until its next connection (one long-lived object in each of the allocator's arenas
        would keep them all)."""
        with self._pool_lock:
            self._idle += 1
        try:
            request, client_address = self.get_request()
        except TimeoutError:
            return False
        except OSError:
            return None if self._BaseServer__shutdown_request or self.socket.closed else False
        finally:
            with self._pool_lock:
                self._idle -= 1
                starved = self._idle == 0
        if starved:
            self._spawn_worker()  # keep one acceptor free while this one serves
        self._serve_one(request, client_address)
        return True

    def _serve_one(self, request, client_address) -> None:
        with self._held_lock:
            self._held.add(request)
            if self._draining:  # accepted just as the drain began: no request will be read
                self._shut_read(request)
        try:
            if not self.verify_request(request, client_address):
                return
            try:
                self.finish_request(request, client_address)
            except Exception:
                self.handle_error(request, client_address)
        finally:
            with self._held_lock:
                self._held.discard(request)
            self.shutdown_request(request)

    def stop_accepting(self) -> None:
        """Stop the acceptors and close the listener (connections not yet accepted are reset, as on Linux)."""
        self.shutdown()
        self.server_close()

    def stop(self) -> None:
        """Nothing left to do: handlers are daemon threads whose connections are closed or reset."""

    def drain(self) -> None:
        """Graceful stop: every handler reads EOF after what it has already received, so it finishes
        the response in progress (if any) and closes its connection with FIN."""
        with self._held_lock:
            self._draining = True
            for request in list(self._held):
                self._shut_read(request)

    @staticmethod
    def _shut_read(request) -> None:
        try:
            request.shutdown(SHUT_RD)  # wakes a reader blocked in recv(): it returns b"" (EOF)
        except OSError:
            pass

    def active(self) -> int:
        """How many connections handlers hold now."""
        with self._held_lock:
            return len(self._held)

    def handle_error(self, request, client_address):
        """One line instead of socketserver's traceback: a peer that resets is normal on a network.
        Nothing at all for the resets the stack made itself when it stopped."""
        exc = sys.exc_info()[1]
        if getattr(self.stack, "closing", False) and isinstance(exc, OSError):
            return
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


class WSGIServer(HTTPServer, wsgiref.simple_server.WSGIServer):
    """wsgiref's WSGI server over the stack's sockets, run by the worker pool."""

    def server_bind(self):
        HTTPServer.server_bind(self)
        self.setup_environ()


class TimeoutsMixin:
    """Handler timeouts for an HTTP request handler: ``idle_timeout`` for a kept-alive connection
    waiting for its next request, ``request_timeout`` for each read and write once a request has
    begun (a client that stalls mid-request or stops reading the response is dropped)."""

    idle_timeout = 60.0
    request_timeout = 30.0

    def _await_request(self) -> bool:
        """Wait (idle timeout) for the first byte of the next request; False on EOF or timeout."""
        self.connection.settimeout(self.idle_timeout)
        try:
            first = self.rfile.peek(1)
        except TimeoutError:
            first = b""
        if not first:
            self.close_connection = True
            return False
        self.connection.settimeout(self.request_timeout)
        return True

    def handle_one_request(self):
        if self._await_request():
            super().handle_one_request()


class FileHandler(TimeoutsMixin, http.server.SimpleHTTPRequestHandler):
    """SimpleHTTPRequestHandler speaking HTTP/1.1 (keep-alive); request log to stderr unless quiet."""

    protocol_version = "HTTP/1.1"
    # The stdlib handler writes the headers and then the body (the labs show the two segments);
    # without TCP_NODELAY the body would wait for the ACK of the headers, which a keep-alive
    # client delays (the classic Nagle/delayed-ACK stall). The epoll server writes both at once.
    disable_nagle_algorithm = True

    def copyfile(self, source, outputfile):
        """The body with ``socket.sendfile()`` when it goes straight to the socket (``wbufsize`` 0:
        nothing is buffered ahead of it) from a file with a descriptor: on the stack, pieces as
        large as the send buffer's free room, queued in one call each; on kernel sockets,
        os.sendfile. Otherwise (a directory listing) the standard library's 64 KiB copy loop."""
        try:
            direct = outputfile is self.wfile and self.wbufsize == 0 and source.fileno() >= 0
        except (AttributeError, OSError):  # io.UnsupportedOperation is an OSError
            direct = False
        if direct:
            self.connection.sendfile(source)
        else:
            super().copyfile(source, outputfile)

    def log_message(self, format, *args):
        if not getattr(self.server, "quiet", False):
            super().log_message(format, *args)


class WSGIHandler(TimeoutsMixin, wsgiref.simple_server.WSGIRequestHandler):
    """wsgiref's request handler, unchanged but for ``multithread=True`` (the pool runs requests
    in parallel), the timeouts, and a request log to stderr unless quiet."""

    wbufsize = 65536

    def handle(self):
        """One request per connection (wsgiref speaks HTTP/1.0 and closes)."""
        self.close_connection = True
        if self._await_request():
            self._handle_request()

    def _handle_request(self):
        self.raw_requestline = self.rfile.readline(65537)
        if len(self.raw_requestline) > 65536:
            self.requestline = self.request_version = self.command = ""
            self.send_error(414)
            return
        if not self.parse_request():
            return
        handler = wsgiref.simple_server.ServerHandler(
            self.rfile, self.wfile, self.get_stderr(), self.get_environ(), multithread=True)
        handler.request_handler = self  # back-pointer for logging, as wsgiref does
        handler.run(self.server.get_app())
        self.wfile.flush()

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
        buf = bytearray(1 << 20)  # a read batch's worth and more: one call per stack turn
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


def wsgi_server(stack, port: int, app, quiet: bool = False) -> WSGIServer:
    server = WSGIServer(stack, ("", port), WSGIHandler)
    server.set_app(app)
    server.quiet = quiet
    return server
