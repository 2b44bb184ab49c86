"""TLS over stack sockets (``stack.tls``: ``ssl.MemoryBIO``), between two in-memory stacks and with the
standard library's ``ssl`` on the kernel's loopback as the other end (a self-signed certificate made by
the run: ``tls_cert``)."""
from __future__ import annotations

import hashlib
import os
import socket
import ssl
import threading

import pytest

from stack import tls
from stack.link.memory import SocketPairLink
from stack.runtime.stack import Stack
from stack.tcp.config import TcpConfig

pytestmark = pytest.mark.timeout(60)
A, B = "192.0.2.1", "192.0.2.2"


@pytest.fixture
def stacks():
    la, lb = SocketPairLink.pair()
    cfg = TcpConfig(min_rto=0.05, initial_rto=0.2, delack=0.01, msl=0.5, fin_timeout=1.0)
    a, b = Stack(la, A, tcp_config=cfg, seed=1).start(), Stack(lb, B, tcp_config=cfg, seed=2).start()
    yield a, b
    a.close()
    b.close()


def contexts(tls_cert):
    cert, key = tls_cert
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    client = ssl.create_default_context(cafile=cert)
    return server, client


def serve_once(listener, context, handler):
    """Accept one connection on ``listener`` in a thread, wrap it (server side), run ``handler(tls_sock)``."""
    errors = []

    def run():
        try:
            conn, _ = listener.accept()
            conn.settimeout(10)
            with tls.wrap_socket(conn, context, server_side=True) if not isinstance(conn, socket.socket) \
                    else context.wrap_socket(conn, server_side=True) as s:
                handler(s)
        except Exception as exc:  # reported by the test
            errors.append(exc)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, errors


def echo(s):
    while data := s.recv(65536):
        s.sendall(data)


def tls_pair(stacks, tls_cert, handler):
    """A TLS server on stack B running ``handler`` once, and a verified client on stack A:
    (client, listener, server thread, the server's errors)."""
    a, b = stacks
    server_ctx, client_ctx = contexts(tls_cert)
    ls = b.socket()
    ls.bind(("", 4433))
    ls.listen()
    ls.settimeout(10)
    t, errors = serve_once(ls, server_ctx, handler)
    raw = a.socket()
    raw.settimeout(10)
    raw.connect((B, 4433))
    return tls.wrap_socket(raw, client_ctx, server_hostname=B), ls, t, errors


def test_a_megabyte_each_way_between_two_stacks(stacks, tls_cert):
    """TLS 1.3 with certificate verification over stack sockets both sides: 1 MiB out and back intact."""
    c, ls, t, errors = tls_pair(stacks, tls_cert, echo)
    assert c.version() == "TLSv1.3" and c.getpeercert()["subject"] == ((("commonName", "tunstack test"),),)
    data = os.urandom(1 << 20)
    got = bytearray()

    def reader():
        while len(got) < len(data):
            chunk = c.recv(65536)
            if not chunk:
                break
            got.extend(chunk)
    r = threading.Thread(target=reader)
    r.start()
    c.sendall(data)
    r.join(30)
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    c.close()
    t.join(10)
    assert not errors
    ls.close()


def test_sendfile_goes_through_tls(stacks, tls_cert, tmp_path):
    """sendfile() on a TLS socket encrypts, as ssl.SSLSocket's does: the client reads the file
    (the wrapped socket's own sendfile would put it on the wire in the clear)."""
    body = os.urandom(300_000)
    f = tmp_path / "f"
    f.write_bytes(body)
    sent = []

    def send_file(s):
        with open(f, "rb") as fh:
            sent.append(s.sendfile(fh, 1000))
            sent.append(fh.tell())
    c, ls, t, errors = tls_pair(stacks, tls_cert, send_file)
    got = bytearray()
    while chunk := c.recv(65536):
        got.extend(chunk)
    t.join(10)
    assert not errors
    assert sent == [len(body) - 1000, len(body)]
    assert bytes(got) == body[1000:]
    c.close()
    ls.close()


def test_interoperates_with_the_standard_librarys_sslsocket(tls_cert):
    """The other end is ``ssl.SSLSocket`` (OpenSSL on a kernel fd), over a kernel socketpair: our record
    pump speaks the same TLS both ways (TlsSocket needs only send/recv from the socket it wraps)."""
    server_ctx, client_ctx = contexts(tls_cert)
    ours, theirs = socket.socketpair()
    ours.settimeout(10)
    theirs.settimeout(10)
    errors = []

    def server():
        try:
            s = server_ctx.wrap_socket(theirs, server_side=True)
            echo(s)  # until our close_notify
            s.unwrap().close()  # and its own
        except Exception as exc:
            errors.append(exc)
    t = threading.Thread(target=server, daemon=True)
    t.start()
    c = tls.wrap_socket(ours, client_ctx, server_hostname="localhost")
    for size in (1, 1000, 70000):
        data = os.urandom(size)
        c.sendall(data)
        got = b""
        while len(got) < size:
            got += c.recv(65536)
        assert got == data
    c.unwrap().close()
    t.join(10)
    assert not errors


def test_wrong_name_fails_verification(stacks, tls_cert):
    """The client context checks the name: a certificate without the asked name is refused, as with SSLSocket."""
    a, b = stacks
    server_ctx, client_ctx = contexts(tls_cert)
    ls = b.socket()
    ls.bind(("", 4434))
    ls.listen()
    ls.settimeout(10)
    t, errors = serve_once(ls, server_ctx, echo)
    raw = a.socket()
    raw.settimeout(10)
    raw.connect((B, 4434))
    with pytest.raises(ssl.SSLCertVerificationError):
        tls.wrap_socket(raw, client_ctx, server_hostname="not-in-the-certificate")
    raw.close()
    t.join(10)
    ls.close()


def test_makefile_http_exchange_and_unwrap(stacks, tls_cert):
    """makefile() lines both ways (what http.client uses), then unwrap(): close_notify both ways and the same
    TCP connection carries plain bytes."""
    a, b = stacks
    server_ctx, client_ctx = contexts(tls_cert)
    ls = b.socket()
    ls.bind(("", 4435))
    ls.listen()
    ls.settimeout(10)

    def handler(s):
        f = s.makefile("rwb")
        line = f.readline()
        f.write(b"you said " + line)
        f.flush()
        f.close()
        plain = s.unwrap()
        plain.sendall(b"plain now")
        plain.close()

    t, errors = serve_once(ls, server_ctx, handler)
    raw = a.socket()
    raw.settimeout(10)
    raw.connect((B, 4435))
    c = tls.wrap_socket(raw, client_ctx, server_hostname=B)
    f = c.makefile("rwb")
    f.write(b"hello\n")
    f.flush()
    assert f.readline() == b"you said hello\n"
    f.close()
    plain = c.unwrap()
    assert plain is raw
    assert plain.recv(100) == b"plain now"
    plain.close()
    t.join(10)
    assert not errors
    ls.close()


def test_nonblocking_read_without_data_wants_read(stacks, tls_cert):
    """Non-blocking, as SSLSocket: a read that needs the peer raises SSLWantReadError."""
    a, b = stacks
    server_ctx, client_ctx = contexts(tls_cert)
    ls = b.socket()
    ls.bind(("", 4436))
    ls.listen()
    ls.settimeout(10)
    done = threading.Event()
    t, errors = serve_once(ls, server_ctx, lambda s: done.wait(10))
    raw = a.socket()
    raw.settimeout(10)
    raw.connect((B, 4436))
    c = tls.wrap_socket(raw, client_ctx, server_hostname=B)
    c.setblocking(False)
    with pytest.raises(ssl.SSLWantReadError):
        c.recv(10)
    done.set()
    c.close()
    t.join(10)
    ls.close()


def test_ragged_eof_reads_as_end_of_stream(stacks, tls_cert):
    """The peer closes TCP without close_notify: recv returns b"" (suppress_ragged_eofs, the default)."""
    a, b = stacks
    server_ctx, client_ctx = contexts(tls_cert)
    ls = b.socket()
    ls.bind(("", 4437))
    ls.listen()
    ls.settimeout(10)

    def handler(s):
        s.sendall(b"bye")
        s._sock.close()  # TCP FIN, no close_notify

    t, errors = serve_once(ls, server_ctx, handler)
    raw = a.socket()
    raw.settimeout(10)
    raw.connect((B, 4437))
    c = tls.wrap_socket(raw, client_ctx, server_hostname=B)
    assert c.recv(10) == b"bye"
    assert c.recv(10) == b""
    c.close()
    t.join(10)
    ls.close()


def test_asyncio_tls_runs_over_stack_sockets_as_it_is(stacks, tls_cert):
    """asyncio's own TLS (memory BIOs over the transport) needs no wrap_socket: server and client on stack
    sockets, handed to asyncio with sock=, exchange bytes over TLS 1.3."""
    import asyncio
    a, b = stacks
    server_ctx, client_ctx = contexts(tls_cert)

    async def main():
        ls = b.socket()
        ls.bind(("", 4438))
        ls.listen()
        ls.setblocking(False)

        async def handle(reader, writer):
            writer.write((await reader.readline()).upper())
            await writer.drain()
            writer.close()
        server = await asyncio.start_server(handle, sock=ls, ssl=server_ctx)
        raw = a.socket()
        raw.setblocking(False)
        await asyncio.get_running_loop().sock_connect(raw, (B, 4438))
        reader, writer = await asyncio.open_connection(sock=raw, ssl=client_ctx, server_hostname=B)
        version = writer.get_extra_info("ssl_object").version()
        writer.write(b"over tls\n")
        line = await reader.readline()
        writer.close()
        server.close()
        await server.wait_closed()
        return version, line
    assert asyncio.run(asyncio.wait_for(main(), 20)) == ("TLSv1.3", b"OVER TLS\n")
