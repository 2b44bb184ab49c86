"""Client commands over the stack: ``tunstack get URL`` (HTTP download) and ``tunstack nc`` (netcat).

Both bring up the TUN and the stack as ``serve`` does (same options) and talk to the host
side through it: ``get`` runs the standard library's ``http.client`` on stack sockets,
``nc`` copies stdin to a connection and the connection to stdout.
"""
from __future__ import annotations

import argparse
import http.client
import os
import socket
import sys
import threading
import time
import urllib.parse

from . import netapi
from .run import add_stack_arguments, open_stack

CHUNK = 256 * 1024
CONNECT_TIMEOUT = 10.0


# ---------------------------------------------------------------------------------------------- get
class StackHTTPConnection(http.client.HTTPConnection):
    """``http.client.HTTPConnection`` whose socket is a stack socket."""

    def __init__(self, stack, host, port=None, **kw):
        super().__init__(host, port, **kw)
        self._create_connection = lambda address, timeout, source=None: netapi.create_connection(
            stack, address, timeout, source)


class Progress:
    """A one-line progress bar on a terminal; nothing when stderr is not one."""

    def __init__(self, total: int | None, out=sys.stderr):
        self.total, self.out, self.done = total, out, 0
        self.enabled = out.isatty()
        self.start = self._last = time.monotonic()

    def update(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self.enabled and now - self._last >= 0.1:
            self._last = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        rate = self.done / max(now - self.start, 1e-9) / 1e6
        if self.total:
            width = 30
            filled = int(width * self.done / self.total)
            bar = f"[{'#' * filled}{'.' * (width - filled)}] {100 * self.done // self.total:3d}%"
        else:
            bar = "[unknown size]"
        self.out.write(f"\r{bar} {self.done:,} bytes {rate:.1f} MB/s")
        self.out.flush()

    def finish(self) -> None:
        if self.enabled:
            self._draw(time.monotonic())
            self.out.write("\n")
            self.out.flush()


def summary_line(nbytes: int, seconds: float, retrans: int) -> str:
    rate = nbytes / max(seconds, 1e-9) / 1e6
    return f"tunstack: got {nbytes} bytes in {seconds:.3f} s ({rate:.2f} MB/s), {retrans} retransmissions"


def fetch(stack, url: str, out, progress: Progress | None = None, timeout: float = 30.0) -> tuple[int, float, int]:
    """GET ``url`` over ``stack`` into the binary file ``out``: (bytes, seconds, retransmissions)."""
    from .cliargs import CliError
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise CliError(f"get: only http://HOST[:PORT]/PATH URLs are supported: {url!r}")
    try:
        port = parts.port or 80
    except ValueError as exc:  # urllib's "Port out of range 0-65535", "Port could not be cast..."
        raise CliError(f"get: bad port in {url!r}: {exc}") from None
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    start = time.monotonic()
    conn = StackHTTPConnection(stack, parts.hostname, port, timeout=timeout)
    try:
        try:
            conn.request("GET", path, headers={"User-Agent": "tunstack-get"})
            resp = conn.getresponse()
        except OSError as exc:
            raise CliError(f"get: cannot fetch {url}: {exc.strerror or exc}") from None
        if resp.status != 200:
            raise CliError(f"get: {url}: HTTP {resp.status} {resp.reason}")
        length = resp.getheader("Content-Length")
        progress = progress or Progress(int(length) if length and length.isdigit() else None)
        total = 0
        while True:
            chunk = resp.read(CHUNK)
            if not chunk:
                break
            out.write(chunk)
            total += len(chunk)
            progress.update(len(chunk))
        progress.finish()
        seconds = time.monotonic() - start
        retrans = sum(info.get("retrans", 0) for info in stack.connections())
        if length and length.isdigit() and total != int(length):
            raise CliError(f"get: {url}: got {total} of {length} bytes")
        return total, seconds, retrans
    finally:
        conn.close()


def cmd_get(args) -> int:
    from .cliargs import CliError
    out = sys.stdout.buffer
    if args.output and args.output != "-":
        try:
            out = open(args.output, "wb")
        except OSError as exc:
            raise CliError(f"cannot open {args.output!r}: {exc.strerror}") from None
    try:
        with open_stack(args) as stack:
            nbytes, seconds, retrans = fetch(stack, args.url, out, timeout=args.timeout)
            out.flush()
    finally:
        if out is not sys.stdout.buffer:
            out.close()
    print(summary_line(nbytes, seconds, retrans), file=sys.stderr, flush=True)
    return 0


# ---------------------------------------------------------------------------------------------- nc
def _copy_stdin(sock, infd: int) -> None:
    """stdin -> connection; at EOF half-close (FIN) and keep reading the other way."""
    try:
        while True:
            data = os.read(infd, 65536)
            if not data:
                break
            sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def relay(sock, infd: int, outfd: int) -> None:
    """Copy both ways until both are done: the peer's EOF and (unless stdin is a terminal) stdin's EOF.

    stdin's EOF half-closes (FIN); the peer's EOF ends the output. Interactive use (stdin a
    terminal) ends at the peer's EOF, as netcat does."""
    copier = threading.Thread(target=_copy_stdin, args=(sock, infd), daemon=True)
    copier.start()
    while True:
        data = sock.recv(65536)
        if not data:
            break
        view = memoryview(data)
        while view:
            view = view[os.write(outfd, view):]
    if not os.isatty(infd):
        copier.join()


NC_LINGER = 30.0  # seconds the stack keeps sending what nc queued before it exits


def cmd_nc(args) -> int:
    from .cliargs import CliError
    with open_stack(args, linger=NC_LINGER) as stack:
        try:
            if args.listen:
                host = "" if args.host in ("", "0.0.0.0", "*") else netapi.gethostbyname(stack, args.host)
                ls = netapi.create_server(stack, (host, args.port), backlog=1)
                print(f"tunstack: listening on {host or '0.0.0.0'}:{args.port}", file=sys.stderr, flush=True)
                sock, peer = ls.accept()
                ls.close()
            else:
                sock = netapi.create_connection(stack, (args.host, args.port), CONNECT_TIMEOUT)
        except OSError as exc:
            what = f"listen on port {args.port}" if args.listen else f"connect to {args.host}:{args.port}"
            raise CliError(f"nc: cannot {what}: {exc.strerror or exc}") from None
        sock.settimeout(None)
        try:
            relay(sock, sys.stdin.fileno(), sys.stdout.fileno())
        except OSError as exc:
            raise CliError(f"nc: {exc.strerror or exc}") from None
        finally:
            sock.close()
    return 0


def register(sub) -> None:
    from .cliargs import _port
    get = sub.add_parser(
        "get", help="download a URL over the stack (HTTP from a server on the host side)",
        description="Bring up the TUN and the stack as 'serve' does, then GET an http:// URL with the "
                    "standard library's http.client running on stack sockets. The host side of the TUN is "
                    "the name 'host' (e.g. http://host:8000/file). Shows a progress bar on a terminal and "
                    "prints a summary line: bytes, time, MB/s, retransmissions.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_stack_arguments(get)
    get.add_argument("url", metavar="URL", help="http://HOST[:PORT]/PATH")
    get.add_argument("-o", "--output", metavar="FILE", help="write the body to FILE (default: stdout)")
    get.add_argument("--timeout", type=float, default=30.0, help="seconds any one socket call may wait")
    get.set_defaults(func=cmd_get)

    nc = sub.add_parser(
        "nc", help="netcat over the stack: stdin to a TCP connection, the connection to stdout",
        description="Bring up the TUN and the stack as 'serve' does, then connect to HOST PORT (or with -l "
                    "accept one connection on PORT) and copy stdin to the connection and the connection to "
                    "stdout. At the end of stdin the connection is half-closed (FIN); nc exits at the "
                    "peer's EOF. The host side of the TUN is the name 'host'.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_stack_arguments(nc)
    nc.add_argument("-l", "--listen", action="store_true", help="listen on PORT and accept one connection")
    nc.add_argument("host", metavar="HOST", help="host to connect to (with -l: the local address, '' for any)")
    nc.add_argument("port", metavar="PORT", type=_port, help="TCP port")
    nc.set_defaults(func=cmd_nc)
