"""A one-thread HTTP/1.1 static file server on ``stack.epoll`` (``tunstack serve --http-mode epoll``).

The event-driven sibling of ``servers.FileHandler`` (a pool of threads, blocking calls): one
thread owns every connection, sockets are non-blocking and edge-triggered (as in
``epoll_echo``), and a response leaves as fast as the socket takes it: a send that would block
arms ``EPOLLOUT`` and the rest goes when the socket says it is writable again. Keep-alive,
pipelining, ``Content-Length``, ``HEAD``, 301 for a directory without its slash, an index
page or a listing, 404, 400/414/431/501 errors; no request bodies (a static server needs none).

Only the request line is split here; the header block is parsed by ``http.client.parse_headers``
(the ``email`` parser ``http.server`` uses), paths are mapped by
``SimpleHTTPRequestHandler.translate_path`` and error pages use ``http.server``'s format.
"""
from __future__ import annotations

import email.utils
import html
import http.client
import http.server
import io
import mimetypes
import os
import sys
import time
import urllib.parse
from http import HTTPStatus
from socket import IPPROTO_TCP, TCP_NODELAY

from ..epoll import EPOLLERR, EPOLLET, EPOLLHUP, EPOLLIN, EPOLLOUT, EPOLLRDHUP
from .epoll_base import EpollServerBase
from .servers import SOMAXCONN

MAX_HEAD = 65536          # request line + headers, as http.server's 64 KiB line limit
MAX_INBUF = 1 << 20       # pipelined bytes held while a response is being sent
FILE_CHUNK = 256 * 1024   # file bytes read per refill of a connection's output
_READ_EVENTS = EPOLLIN | EPOLLRDHUP | EPOLLET


class _Paths:
    """``translate_path`` of the standard library's handler, bound to a root directory."""

    translate_path = http.server.SimpleHTTPRequestHandler.translate_path

    def __init__(self, directory: str):
        self.directory = directory


class _Conn:
    """One client connection's state between events."""

    __slots__ = ("sock", "peer", "inbuf", "out", "off", "file", "file_left", "busy", "keep_alive",
                 "peer_eof", "deadline", "events")

    def __init__(self, sock, peer, deadline: float):
        self.sock, self.peer = sock, peer
        self.inbuf = bytearray()
        self.out = b""            # bytes of the response not yet sent, from ``off``
        self.off = 0
        self.file = None          # the file being sent, and how many of its bytes are left
        self.file_left = 0
        self.busy = False         # a response is in progress
        self.keep_alive = True
        self.peer_eof = False
        self.deadline = deadline  # idle or request timeout
        self.events = _READ_EVENTS


class EpollHTTPServer(EpollServerBase):
    """Serve ``root`` on ``port`` from one thread: ``serve_forever()`` until ``shutdown()``."""

    idle_timeout = 60.0      # a kept-alive connection waiting for its next request
    request_timeout = 30.0   # a request being received, or a response the client does not take

    def __init__(self, stack, port: int, root: str, quiet: bool = False, backlog: int = SOMAXCONN):
        super().__init__(stack, port, backlog)   # self.conns: socket -> _Conn
        self.paths = _Paths(root)
        self.quiet = quiet
        self._next_sweep = float("inf")   # the earliest connection deadline (or later: see _arm)

    # ---------------------------------------------------------------- the loop
    def serve_forever(self, poll_interval: float = 0.2) -> None:
        """Serve until ``shutdown()``. The loop sleeps until an event or the earliest connection
        deadline; requests from other threads (stop, drain) interrupt its poll. ``poll_interval``
        is accepted for socketserver's signature and not used: an idle server costs no wake-up."""
        self._done.clear()
        try:
            while not self._stop.is_set():
                timeout = None if self._next_sweep == float("inf") else max(0.0, self._next_sweep - time.monotonic())
                for sock, events in self.ep.poll_sockets(timeout):
                    if sock is self.listener:
                        self._accept_all()
                    else:
                        conn = self.conns.get(sock)
                        if conn is not None:
                            self._service(conn, events)
                self._housekeeping()
        finally:
            self._done.set()

    def _accept_all(self) -> None:
        while True:
            try:
                sock, peer = self.listener.accept()
            except BlockingIOError:
                return
            except OSError:
                return
            sock.setblocking(False)
            sock.setsockopt(IPPROTO_TCP, TCP_NODELAY, 1)  # the tail of a response never waits for an ACK
            conn = _Conn(sock, peer, 0.0)
            self._arm(conn, time.monotonic() + self.idle_timeout)
            self.conns[sock] = conn
            self.ep.register(sock, _READ_EVENTS)

    def _service(self, conn: _Conn, events: int) -> None:
        if events & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP) and not self._read(conn):
            return
        self._progress(conn)

    def _read(self, conn: _Conn) -> bool:
        """Edge-triggered: read until EAGAIN. False if the connection is gone."""
        while not conn.peer_eof:
            try:
                data = conn.sock.recv(65536)
            except BlockingIOError:
                break
            except OSError:
                self._close(conn)
                return False
            if not data:
                conn.peer_eof = True
                break
            conn.inbuf += data
            if len(conn.inbuf) > MAX_INBUF:
                self._close(conn)
                return False
        return True

    def _progress(self, conn: _Conn) -> None:
        """Send what the socket takes; start the next request when a response is done."""
        while True:
            if conn.busy:
                if not self._send(conn):
                    break                                # would block: EPOLLOUT is armed
                continue
            if not conn.keep_alive:
                self._close(conn)                        # the response said "Connection: close"
                return
            if self._start_request(conn):
                continue
            if conn.peer_eof:
                self._close(conn)                        # no complete request, and no more bytes coming
                return
            break                                        # wait for the rest of the request
        self._set_deadline(conn)
        self._want(conn, EPOLLOUT if conn.busy else 0)

    def _send(self, conn: _Conn) -> bool:
        """Send until the response is done (True) or the socket would block (False)."""
        while True:
            if conn.off >= len(conn.out):
                if not conn.file_left:
                    self._finish_response(conn)
                    return True
                conn.out, conn.off = conn.file.read(min(FILE_CHUNK, conn.file_left)), 0
                if not conn.out:                         # the file shrank under us: end here
                    conn.keep_alive = False
                    self._finish_response(conn)
                    return True
                conn.file_left -= len(conn.out)
            try:
                n = conn.sock.send(memoryview(conn.out)[conn.off:])
            except BlockingIOError:
                return False
            except OSError:
                conn.keep_alive = False
                self._finish_response(conn)
                return True
            conn.off += n
            self._arm(conn, time.monotonic() + self.request_timeout)   # progress

    def _finish_response(self, conn: _Conn) -> None:
        if conn.file is not None:
            conn.file.close()
        conn.file, conn.file_left, conn.out, conn.off, conn.busy = None, 0, b"", 0, False
        if self._draining:
            conn.keep_alive = False

    def _want(self, conn: _Conn, extra: int) -> None:
        events = _READ_EVENTS | extra
        if events != conn.events:
            conn.events = events
            self.ep.modify(conn.sock, events)

    def _set_deadline(self, conn: _Conn) -> None:
        if not conn.busy:
            timeout = self.request_timeout if conn.inbuf else self.idle_timeout
            self._arm(conn, time.monotonic() + timeout)

    def _arm(self, conn: _Conn, deadline: float) -> None:
        """Set a connection's deadline; the loop's next sweep is never later than any deadline."""
        conn.deadline = deadline
        if deadline < self._next_sweep:
            self._next_sweep = deadline

    def _close(self, conn: _Conn) -> None:
        self.conns.pop(conn.sock, None)
        if conn.file is not None:
            conn.file.close()
        conn.sock.close()  # FIN (close(2) also removes it from the epoll)

    # ---------------------------------------------------------------- one request
    def _start_request(self, conn: _Conn) -> bool:
        """Parse one complete request from ``inbuf`` and queue its response. False: incomplete."""
        buf = conn.inbuf
        while buf[:2] == b"\r\n":       # RFC 9112 2.2: ignore empty lines before a request line
            del buf[:2]
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HEAD:
                self._respond_error(conn, None, HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)
                return True
            return False
        head = bytes(buf[:end + 2])
        del buf[:end + 4]
        line, _, header_block = head.partition(b"\r\n")
        if len(line) > MAX_HEAD:
            self._respond_error(conn, None, HTTPStatus.REQUEST_URI_TOO_LONG)
            return True
        words = line.decode("latin-1").split()
        if len(words) != 3 or not words[2].startswith("HTTP/1."):
            self._respond_error(conn, line, HTTPStatus.BAD_REQUEST)
            return True
        method, target, version = words
        try:
            headers = http.client.parse_headers(io.BytesIO(header_block + b"\r\n"))
        except http.client.HTTPException:
            self._respond_error(conn, line, HTTPStatus.BAD_REQUEST)
            return True
        tokens = {t.strip().lower() for t in headers.get("Connection", "").split(",")}
        conn.keep_alive = ("close" not in tokens if version == "HTTP/1.1" else "keep-alive" in tokens)
        if headers.get("Content-Length", "0").strip() not in ("", "0") or "Transfer-Encoding" in headers:
            conn.keep_alive = False      # a body we do not read: answer, then close
        if method not in ("GET", "HEAD"):
            self._respond_error(conn, line, HTTPStatus.NOT_IMPLEMENTED, f"Unsupported method ({method!r})")
            return True
        self._respond_file(conn, line, method, target)
        return True

    def _respond_file(self, conn: _Conn, line: bytes, method: str, target: str) -> None:
        path = self.paths.translate_path(target)
        url_path = urllib.parse.urlsplit(target).path
        if os.path.isdir(path):
            if not url_path.endswith("/"):
                location = url_path + "/" + (("?" + urllib.parse.urlsplit(target).query)
                                             if urllib.parse.urlsplit(target).query else "")
                self._respond(conn, line, HTTPStatus.MOVED_PERMANENTLY, [("Location", location)], b"", method)
                return
            for index in ("index.html", "index.htm"):
                if os.path.isfile(os.path.join(path, index)):
                    path = os.path.join(path, index)
                    break
            else:
                self._respond_listing(conn, line, method, path, url_path)
                return
        try:
            if path.endswith("/"):
                raise FileNotFoundError(path)
            f = open(path, "rb")
        except OSError:
            self._respond_error(conn, line, HTTPStatus.NOT_FOUND, "File not found", method)
            return
        st = os.fstat(f.fileno())
        ctype = mimetypes.guess_type(path)[0] or "application/octet-stream"
        headers = [("Content-Type", ctype), ("Content-Length", str(st.st_size)),
                   ("Last-Modified", email.utils.formatdate(st.st_mtime, usegmt=True))]
        if method == "HEAD":
            f.close()
            self._respond(conn, line, HTTPStatus.OK, headers, b"", method, length=st.st_size)
            return
        first = f.read(min(FILE_CHUNK, st.st_size))  # headers and the start of the body: one send
        self._respond(conn, line, HTTPStatus.OK, headers, first, method, length=st.st_size)
        conn.file, conn.file_left = f, st.st_size - len(first)
        if not conn.file_left:
            f.close()
            conn.file = None

    def _respond_listing(self, conn: _Conn, line: bytes, method: str, path: str, url_path: str) -> None:
        try:
            names = sorted(os.listdir(path), key=str.lower)
        except OSError:
            self._respond_error(conn, line, HTTPStatus.NOT_FOUND, "No permission to list directory", method)
            return
        title = html.escape(f"Directory listing for {urllib.parse.unquote(url_path)}", quote=False)
        items = []
        for name in names:
            shown = name + ("/" if os.path.isdir(os.path.join(path, name)) else "")
            items.append(f'<li><a href="{urllib.parse.quote(shown)}">{html.escape(shown, quote=False)}</a></li>')
        body = (f"<!DOCTYPE HTML>\n<html>\n<head><meta charset=\"utf-8\"><title>{title}</title></head>\n"
                f"<body>\n<h1>{title}</h1>\n<hr>\n<ul>\n" + "\n".join(items) + "\n</ul>\n<hr>\n</body>\n</html>\n")
        self._respond(conn, line, HTTPStatus.OK, [("Content-Type", "text/html; charset=utf-8")],
                      body.encode(), method)

    def _respond_error(self, conn: _Conn, line: bytes | None, status: HTTPStatus, message: str = "",
                       method: str = "GET") -> None:
        if line is None or status in (HTTPStatus.BAD_REQUEST, HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                                      HTTPStatus.REQUEST_URI_TOO_LONG):
            conn.keep_alive = False   # the stream cannot be trusted after a malformed request
            conn.inbuf.clear()
        body = (http.server.DEFAULT_ERROR_MESSAGE % {
            "code": status.value, "message": html.escape(message or status.phrase, quote=False),
            "explain": html.escape(status.description, quote=False)}).encode("utf-8", "replace")
        self._respond(conn, line or b"-", status, [("Content-Type", http.server.DEFAULT_ERROR_CONTENT_TYPE)],
                      body, method)

    def _respond(self, conn: _Conn, line: bytes, status: HTTPStatus, headers: list, body: bytes, method: str,
                 length: int | None = None) -> None:
        """Queue the status line, headers and (unless HEAD) the first body bytes."""
        if self._draining:
            conn.keep_alive = False
        head = [f"HTTP/1.1 {status.value} {status.phrase}", "Server: tunstack-epoll",
                f"Date: {email.utils.formatdate(usegmt=True)}"]
        head += [f"{k}: {v}" for k, v in headers]
        if not any(k == "Content-Length" for k, _ in headers):
            head.append(f"Content-Length: {len(body) if length is None else length}")
        if not conn.keep_alive:
            head.append("Connection: close")
        conn.out = "\r\n".join(head).encode("latin-1") + b"\r\n\r\n" + (b"" if method == "HEAD" else body)
        conn.off, conn.busy = 0, True
        self._log(conn, line, status)

    def _log(self, conn: _Conn, line: bytes, status: HTTPStatus) -> None:
        if not self.quiet:
            stamp = time.strftime("%d/%b/%Y %H:%M:%S")
            print(f'{conn.peer[0]} - - [{stamp}] "{line.decode("latin-1", "replace")}" {status.value} -',
                  file=sys.stderr)

    # ---------------------------------------------------------------- timeouts and graceful stop
    def _housekeeping(self) -> None:
        if self._closing_listener and self.listener is not None:
            self.listener.close()   # stop accepting (close(2) also removes it from the epoll)
            self.listener = None
        now = time.monotonic()
        if self._draining:
            for conn in list(self.conns.values()):
                if not conn.busy and not conn.inbuf:
                    self._close(conn)   # idle: FIN now; the others close after their response
        if now >= self._next_sweep:   # at most one sweep a second: a deadline may pass by up to 1 s
            for conn in [c for c in self.conns.values() if c.deadline <= now]:
                self._close(conn)
            earliest = min((c.deadline for c in self.conns.values()), default=float("inf"))
            self._next_sweep = max(earliest, now + 1.0)

    # drain(): idle connections close with FIN now, the others after their current response
    def _close_all(self) -> None:
        for conn in list(self.conns.values()):
            self._close(conn)
