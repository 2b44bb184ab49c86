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
