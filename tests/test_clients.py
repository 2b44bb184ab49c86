"""tunstack get / nc building blocks over two in-memory stacks; the TUN runs are in tests/tun/test_run_tun.py."""
from __future__ import annotations

import hashlib
import io
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from stack import netapi
from stack.apps.servers import echo_server, http_server
from stack.cli import CliError
from stack.clients import Progress, fetch, relay, summary_line
from stack.link.memory import SocketPairLink
from stack.runtime.stack import Stack
from stack.tcp.config import TcpConfig

pytestmark = pytest.mark.timeout(60)
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def stacks():
    la, lb = SocketPairLink.pair()
    cfg = TcpConfig(delack=0.01, min_rto=0.05, msl=0.5)
    a = Stack(la, "192.0.2.1", tcp_config=cfg, seed=1).start()
    b = Stack(lb, "192.0.2.2", tcp_config=cfg, seed=2).start()
    netapi.set_hosts(a, {"host": "192.0.2.2"})
    yield a, b
    a.close()
    b.close()
    la.close()
    lb.close()


def serve(server):
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    return server


@pytest.fixture
def web(stacks, tmp_path):
    body = os.urandom(2 << 20)
    (tmp_path / "blob").write_bytes(body)
    srv = serve(http_server(stacks[1], 8000, str(tmp_path), quiet=True))
    yield body
    srv.shutdown()
    srv.server_close()


class Quiet(Progress):
    def __init__(self, total):
        super().__init__(total, out=io.StringIO())


def test_fetch_gets_every_byte(stacks, web):
    out = io.BytesIO()
    nbytes, seconds, retrans = fetch(stacks[0], "http://host:8000/blob", out)
    assert hashlib.sha256(out.getvalue()).digest() == hashlib.sha256(web).digest()
    assert nbytes == len(web) and seconds > 0 and retrans == 0


def test_fetch_404_is_a_cli_error(stacks, web):
    with pytest.raises(CliError, match="HTTP 404"):
        fetch(stacks[0], "http://host:8000/missing", io.BytesIO())


def test_fetch_refused_is_a_cli_error(stacks):
    with pytest.raises(CliError, match="Connection refused"):
        fetch(stacks[0], "http://host:9/", io.BytesIO())


@pytest.mark.parametrize("url", ["https://host/", "ftp://host/x", "host:8000/x"])
def test_fetch_rejects_other_schemes(stacks, url):
    with pytest.raises(CliError, match="only http://"):
        fetch(stacks[0], url, io.BytesIO())



@pytest.mark.parametrize("url,why", [("http://host:99999/x", "Port out of range"),
                                     ("http://host:eighty/x", "could not be cast")])
def test_fetch_bad_port_is_a_cli_error(stacks, url, why):
    with pytest.raises(CliError, match=f"bad port in .*{why}"):
        fetch(stacks[0], url, io.BytesIO())

def test_progress_is_silent_when_not_a_tty():
    p = Quiet(100)
    p.update(50)
    p.finish()
    assert p.out.getvalue() == ""


def test_progress_draws_on_a_tty():
    class Tty(io.StringIO):
        def isatty(self):
            return True
    p = Progress(100, out=Tty())
    p.update(100)
    p.finish()
    assert "100%" in p.out.getvalue() and "#" * 30 in p.out.getvalue()


def test_summary_line():
    line = summary_line(16 << 20, 2.0, 3)
    assert re.fullmatch(r"tunstack: got 16777216 bytes in 2\.000 s \(8\.39 MB/s\), 3 retransmissions", line)


def test_relay_copies_both_ways_and_half_closes(stacks):
    a, b = stacks
    srv = serve(echo_server(b, 7, quiet=True))
    try:
        sock = netapi.create_connection(a, ("host", 7), 5)
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        data = os.urandom(200_000)
        writer = threading.Thread(target=lambda: (os.write(in_w, data[:100_000]), os.write(in_w, data[100_000:]),
                                                  os.close(in_w)))
        writer.start()
        got = bytearray()
        reader = threading.Thread(target=lambda: [got.extend(c) for c in iter(lambda: os.read(out_r, 65536), b"")])
        reader.start()
        relay(sock, in_r, out_w)   # returns at the echo server's EOF, which follows our FIN
        os.close(out_w)
        reader.join(10)
        writer.join(10)
        sock.close()
        os.close(in_r)
        os.close(out_r)
        assert bytes(got) == data
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.mark.parametrize("argv,message", [
    (["get"], "the following arguments are required: URL"),
    (["nc", "host"], "the following arguments are required: PORT"),
    (["nc", "host", "70000"], "port out of range"),
])
def test_cli_usage_errors_are_one_line(argv, message):
    proc = subprocess.run([sys.executable, "-m", "stack", *argv], cwd=REPO, capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 2
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("command,words", [("get", ["-o FILE", "retransmissions", "host"]),
                                           ("nc", ["-l", "half-closed", "host"])])
def test_help_explains(command, words):
    proc = subprocess.run([sys.executable, "-m", "stack", command, "--help"], cwd=REPO, capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 0
    for w in words:
        assert w in proc.stdout


def test_relay_keeps_sending_stdin_after_the_peers_eof(stacks):
    """The peer says its piece and half-closes at once; everything from stdin must still arrive."""
    a, b = stacks
    ls = b.socket()
    ls.bind(("", 9100))
    ls.listen()
    got = bytearray()

    def peer():
        s, _ = ls.accept()
        s.settimeout(10)
        s.sendall(b"early bye")
        s.shutdown(socket.SHUT_WR)
        while chunk := s.recv(65536):
            got.extend(chunk)
        s.close()
    t = threading.Thread(target=peer)
    t.start()
    sock = netapi.create_connection(a, ("host", 9100), 5)
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    data = os.urandom(500_000)

    def feed():
        time.sleep(0.2)  # after the peer's EOF has arrived
        os.write(in_w, data)
        os.close(in_w)
    feeder = threading.Thread(target=feed)
    feeder.start()
    relay(sock, in_r, out_w)
    os.close(out_w)
    assert os.read(out_r, 100) == b"early bye"
    t.join(10)
    feeder.join(10)
    sock.close()
    ls.close()
    os.close(in_r)
    os.close(out_r)
    assert bytes(got) == data
