"""tunstack run's socket patch and stack.netapi, over two in-memory stacks (no TUN, no root).

Stack A (192.0.2.1) is the one the patched ``socket`` module uses; stack B (192.0.2.2)
runs servers. Real-TUN runs of ``tunstack run`` are in tests/tun/test_run_tun.py.
"""
from __future__ import annotations

import asyncio
import errno
import hashlib
import http.client
import os
import socket
import ssl
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest

from stack import netapi
from stack.apps.servers import echo_server, http_server
from stack.link.memory import SocketPairLink
from stack import tls
from stack.run import SocketPatch, _split_program, run_parser
from stack.runtime.stack import Stack
from stack.socket import socket as StackSocket
from stack.tcp.config import TcpConfig

pytestmark = pytest.mark.timeout(60)
REPO = Path(__file__).resolve().parents[1]
A, B = "192.0.2.1", "192.0.2.2"


@pytest.fixture
def stacks():
    la, lb = SocketPairLink.pair()
    cfg = TcpConfig(delack=0.01, min_rto=0.05, msl=0.5)
    a = Stack(la, A, tcp_config=cfg, seed=1).start()
    b = Stack(lb, B, tcp_config=cfg, seed=2).start()
    netapi.set_hosts(a, {"peer": B})
    yield a, b
    a.close()
    b.close()
    la.close()
    lb.close()


@pytest.fixture
def echo_on_b(stacks):
    srv = echo_server(stacks[1], 7, quiet=True)
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def patched(stacks):
    with SocketPatch(stacks[0]) as patch:
        yield patch


# ---------------------------------------------------------------------------------------- netapi
def test_getaddrinfo_literal_has_the_kernels_shape(stacks):
    ours = netapi.getaddrinfo(stacks[0], "192.0.2.2", 80)
    kernels = socket.getaddrinfo("127.0.0.1", 80)
    assert [(f, t, p, c) for f, t, p, c, _ in ours] == [(f, t, p, c) for f, t, p, c, _ in kernels]
    assert {sa for *_, sa in ours} == {("192.0.2.2", 80)}


def test_getaddrinfo_filters_by_type_and_resolves_service(stacks):
    assert netapi.getaddrinfo(stacks[0], "192.0.2.2", "http", type=socket.SOCK_STREAM) == \
        [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("192.0.2.2", 80))]


def test_getaddrinfo_hosts_table(stacks):
    a = stacks[0]
    assert netapi.getaddrinfo(a, "peer", 1, type=socket.SOCK_STREAM)[0][4] == (B, 1)
    assert netapi.getaddrinfo(a, "localhost", 1, type=socket.SOCK_STREAM)[0][4] == (A, 1)
    assert netapi.getaddrinfo(a, "TUNSTACK", 1, type=socket.SOCK_STREAM)[0][4] == (A, 1)


def test_getaddrinfo_passive_none_is_any(stacks):
    got = netapi.getaddrinfo(stacks[0], None, 8000, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    assert got[0][4] == ("0.0.0.0", 8000)


@pytest.mark.parametrize("host,port,kw,code", [
    ("no.such.name", 80, {}, socket.EAI_NONAME),
    ("192.0.2.2", "no-such-service", {}, socket.EAI_SERVICE),
    ("192.0.2.2", 80, {"family": socket.AF_INET6}, socket.EAI_ADDRFAMILY),
    ("::1", 80, {}, socket.EAI_ADDRFAMILY),
    ("peer", 80, {"flags": socket.AI_NUMERICHOST}, socket.EAI_NONAME),
    ("", 80, {}, socket.EAI_NONAME),
    ("", 80, {"flags": socket.AI_PASSIVE}, socket.EAI_NONAME),
    ("192.0.2.2", -1, {}, socket.EAI_SERVICE),
])
def test_getaddrinfo_errors(stacks, host, port, kw, code):
    with pytest.raises(socket.gaierror) as exc:
        netapi.getaddrinfo(stacks[0], host, port, **kw)
    assert exc.value.errno == code  # glibc's answers too ("": EAI_NONAME, a negative port: EAI_SERVICE)


def test_getaddrinfo_negative_port_as_the_kernel():
    """glibc, asked about a numeric host only (no name lookup leaves the machine)."""
    with pytest.raises(socket.gaierror) as exc:
        socket.getaddrinfo("127.0.0.1", -1, flags=socket.AI_NUMERICHOST)
    assert exc.value.errno == socket.EAI_SERVICE


@pytest.mark.parametrize("port,want", [(70000, 4464), (65536, 0), ("65536", 0), ("8080", 8080)])
def test_getaddrinfo_port_keeps_16_bits_as_glibc(stacks, port, want):
    assert netapi.getaddrinfo(stacks[0], "192.0.2.2", port, type=socket.SOCK_STREAM)[0][4] == ("192.0.2.2", want)
    kernel = socket.getaddrinfo("127.0.0.1", port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    assert kernel[0][4] == ("127.0.0.1", want)


def test_gethostbyname(stacks):
    assert netapi.gethostbyname(stacks[0], "peer") == B
    assert netapi.gethostbyname(stacks[0], "10.1.2.3") == "10.1.2.3"


def test_create_connection_and_server(stacks):
    a, b = stacks
    ls = netapi.create_server(b, ("", 0))
    assert ls.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 1
    c = netapi.create_connection(a, ("peer", ls.getsockname()[1]), timeout=3)
    s, addr = ls.accept()
    c.sendall(b"over netapi")
    assert s.recv(100) == b"over netapi"
    assert c.gettimeout() == 3
    for x in (c, s, ls):
        x.close()


def test_create_connection_refused(stacks):
    with pytest.raises(ConnectionRefusedError):
        netapi.create_connection(stacks[0], (B, 9), timeout=3)


def test_create_server_is_ipv4_only(stacks):
    with pytest.raises(ValueError):
        netapi.create_server(stacks[0], ("", 0), family=socket.AF_INET6)


# ---------------------------------------------------------------------------------------- the patch
def test_patch_makes_inet_sockets_stack_sockets(patched):
    s = socket.socket()
    assert isinstance(s, StackSocket)
    assert isinstance(s, socket.socket)
    s.close()


def test_patch_keeps_unix_sockets_in_the_kernel(patched):
    a, b = socket.socketpair()
    assert not isinstance(a, StackSocket) and isinstance(a, socket.socket)
    a.sendall(b"k")
    assert b.recv(1) == b"k"
    u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    assert u.family == socket.AF_UNIX
    for x in (a, b, u):
        x.close()


def test_patch_refuses_ipv6(patched):
    with pytest.raises(OSError) as exc:
        socket.socket(socket.AF_INET6)
    assert exc.value.errno == errno.EAFNOSUPPORT
    assert socket.has_dualstack_ipv6() is False


def test_patch_sock_nonblock_flag(patched):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
    assert not s.getblocking()
    s.close()


def test_patch_fromfd_of_a_stack_socket_is_refused(patched):
    s = socket.socket()
    with pytest.raises(OSError) as exc:
        socket.fromfd(s.fileno(), socket.AF_INET, socket.SOCK_STREAM)
    assert exc.value.errno == errno.EOPNOTSUPP
    s.close()


def test_restore_puts_everything_back(stacks):
    before = {n: getattr(socket, n) for n in ("socket", "getaddrinfo", "create_connection", "create_server")}
    wrap = ssl.SSLContext.wrap_socket
    with SocketPatch(stacks[0]):
        assert socket.socket is not before["socket"]
    assert {n: getattr(socket, n) for n in before} == before
    assert ssl.SSLContext.wrap_socket is wrap


def test_stdlib_create_connection_goes_over_the_stack(patched, echo_on_b):
    with socket.create_connection(("peer", 7), timeout=3) as c:
        assert isinstance(c, StackSocket)
        c.sendall(b"echo me")
        assert c.recv(100) == b"echo me"


def test_http_client_and_urllib_over_the_stack(patched, stacks, tmp_path):
    body = os.urandom(300_000)
    (tmp_path / "f.bin").write_bytes(body)
    srv = http_server(stacks[1], 8080, str(tmp_path), quiet=True)
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        conn = http.client.HTTPConnection("peer", 8080, timeout=5)
        conn.request("GET", "/f.bin")
        assert hashlib.sha256(conn.getresponse().read()).digest() == hashlib.sha256(body).digest()
        conn.close()
        with urllib.request.urlopen("http://peer:8080/f.bin", timeout=5) as r:
            assert r.read() == body
    finally:
        srv.shutdown()
        srv.server_close()


def test_asyncio_client_over_the_stack(patched, echo_on_b):
    """Streams over a stack socket, asyncio's self-pipe in the kernel. The socket is connected
    first: asyncio's own sock_connect returns during SYN-SENT today (tests/diff,
    test_asyncio_sock_connect_waits_for_the_handshake), which makes open_connection racy."""
    async def main():
        s = socket.create_connection(("peer", 7), timeout=5)
        s.setblocking(False)
        reader, writer = await asyncio.wait_for(asyncio.open_connection(sock=s), 5)
        writer.write(b"async line\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 5)
        writer.close()
        return line
    assert asyncio.run(main()) == b"async line\n"


def test_asyncio_server_on_the_stack(patched, stacks):
    b = stacks[1]

    async def main():
        async def handle(reader, writer):
            writer.write((await reader.readline()).upper())
            await writer.drain()
            writer.close()
        server = await asyncio.start_server(handle, "localhost", 9009)
        sock = server.sockets[0]
        assert sock.getsockname() == (A, 9009)

        def client():
            c = b.socket()
            c.settimeout(5)
            c.connect((A, 9009))
            c.sendall(b"hey\n")
            out = c.recv(100)
            c.close()
            return out
        got = await asyncio.get_running_loop().run_in_executor(None, client)
        server.close()
        return got
    assert asyncio.run(main()) == b"HEY\n"


def test_wsgiref_server_on_the_stack(patched, stacks):
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [f"wsgi says {environ['PATH_INFO']}".encode()]

    with make_server("", 8081, app, handler_class=Quiet) as httpd:
        assert isinstance(httpd.socket, StackSocket)
        t = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        t.start()
        c = stacks[1].socket()
        c.settimeout(5)
        c.connect((A, 8081))
        c.sendall(b"GET /hello HTTP/1.0\r\n\r\n")
        reply = b"".join(iter(lambda: c.recv(65536), b""))
        c.close()
        httpd.shutdown()
    assert reply.startswith(b"HTTP/1.0 200 OK") and reply.endswith(b"wsgi says /hello")


def test_https_with_http_client_over_the_stack(patched, stacks, tls_cert):
    """Under the patch ``SSLContext.wrap_socket`` of a stack socket is stack.tls: http.client's HTTPS goes over
    the stack unchanged (a TLS server on stack B, certificate checked for the name 'peer')."""
    cert, key = tls_cert
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    body = os.urandom(200_000)
    ls = stacks[1].socket()
    ls.bind(("", 8443))
    ls.listen()
    ls.settimeout(10)

    def serve():
        conn, _ = ls.accept()
        conn.settimeout(10)
        with tls.wrap_socket(conn, server_ctx, server_side=True) as s:
            f = s.makefile("rb")
            while f.readline() not in (b"\r\n", b""):
                pass
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
            f.close()
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    ctx = ssl.create_default_context(cafile=cert)
    conn = http.client.HTTPSConnection("peer", 8443, context=ctx, timeout=10)
    conn.request("GET", "/")
    resp = conn.getresponse()
    got = resp.read()
    conn.close()
    t.join(10)
    ls.close()
    assert resp.status == 200 and hashlib.sha256(got).digest() == hashlib.sha256(body).digest()


# ---------------------------------------------------------------------------------------- the command line
@pytest.mark.parametrize("argv,split", [
    (["-m", "http.server", "8000"], 0),
    (["--tun", "t0", "-m", "http.server", "--bind", "x"], 2),
    (["--mtu", "1400", "--offload", "script.py", "-v"], 3),
    (["--", "-weird.py"], 1),
    (["--tun", "t0"], 2),
])
def test_split_program(argv, split):
    assert _split_program(run_parser(), argv) == split


def test_program_options_belong_to_the_program():
    args = run_parser().parse_args(["--tun", "t9", "-m", "http.server", "--bind", "0.0.0.0", "81"])
    assert (args.tun, args.module, args.code, args.args) == ("t9", "http.server", None, ["--bind", "0.0.0.0", "81"])
    args = run_parser().parse_args(["-c", "print(1)", "a", "-b"])
    assert (args.code, args.args) == ("print(1)", ["a", "-b"])
    args = run_parser().parse_args(["prog.py", "--tun", "x"])
    assert (args.tun, args.args) == ("tun0", ["prog.py", "--tun", "x"])


@pytest.mark.parametrize("argv,message", [
    (["run"], "run: give a program"),
    (["run", "no-such-script.py"], "run: no such script"),
    (["run", "--mtu", "10", "-c", "pass"], "MTU out of range"),
    (["run", "-m"], "expected one argument"),
    (["run", "-m", ""], "-m needs an absolute module name"),
    (["run", "-m", ".sibling"], "-m needs an absolute module name"),
])
def test_cli_errors_are_one_line(argv, message):
    proc = subprocess.run([sys.executable, "-m", "stack", *argv], cwd=REPO, capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode in (1, 2)
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1



@pytest.mark.parametrize("module,line", [
    ("no_such_module_xyz", "tunstack: run: no module named no_such_module_xyz"),
    ("json.no_such_module", "tunstack: run: no module named json.no_such_module"),
    ("no_such_package.sub", "tunstack: run: no module named no_such_package.sub"),
    ("http", "tunstack: run: no module named http.__main__; 'http' is a package and cannot be directly executed"),
])
def test_run_module_that_cannot_run_is_one_line(module, line, capsys):
    """As ``python -m`` says it: one line and status 1, not runpy's ImportError traceback."""
    from stack.run import _exit_status, _run_module
    assert _exit_status(lambda: _run_module(module)) == 1
    err = capsys.readouterr().err
    assert err == line + "\n"

def test_run_help_explains():
    proc = subprocess.run([sys.executable, "-m", "stack", "run", "--help"], cwd=REPO, capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 0
    for word in ("-m MODULE", "-c CODE", "--impair", "--pcap", "TLS"):
        assert word in proc.stdout


def test_sigterm_does_what_sigint_would():
    import signal

    from stack.run import _on_sigterm
    old_int, old_term = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(KeyboardInterrupt):  # the default SIGINT handler: KeyboardInterrupt
            signal.signal(signal.SIGINT, signal.default_int_handler)
            _on_sigterm(signal.SIGTERM, None)
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # a second SIGTERM ends it at once
        seen = []
        signal.signal(signal.SIGINT, lambda signum, frame: seen.append(signum))  # the program's own (asyncio.run)
        _on_sigterm(signal.SIGTERM, None)
        assert seen == [signal.SIGINT]
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
