"""The servers of stack/apps and the --wsgi loader, without a TUN."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from stack.cli import CliError, load_wsgi_app

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def app_dir(tmp_path, monkeypatch):
    (tmp_path / "goodapp.py").write_text("def application(environ, start_response):\n    return []\n"
                                         "class holder:\n    app = application\nnot_callable = 42\n")
    (tmp_path / "brokenapp.py").write_text("import no_such_dependency_xyz\n")
    (tmp_path / "raisingapp.py").write_text("raise RuntimeError('config missing')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("goodapp", "brokenapp", "raisingapp"):
        sys.modules.pop(name, None)
    return tmp_path


def test_loads_module_attribute_and_dotted_attribute(app_dir):
    assert load_wsgi_app("goodapp:application").__name__ == "application"
    assert load_wsgi_app("goodapp:holder.app").__name__ == "application"


@pytest.mark.parametrize("spec, words", [
    ("goodapp", "MODULE:APP"),
    (":application", "MODULE:APP"),
    ("no_such_module_xyz:app", "no module named 'no_such_module_xyz'"),
    ("goodapp:missing", "has no attribute 'missing'"),
    ("goodapp:not_callable", "is not a callable WSGI application (its type is int)"),
    ("brokenapp:app", "importing 'brokenapp' failed: ModuleNotFoundError"),
    ("raisingapp:app", "importing 'raisingapp' failed: RuntimeError: config missing"),
])
def test_bad_specs_are_one_clear_error(app_dir, spec, words):
    with pytest.raises(CliError) as ei:
        load_wsgi_app(spec)
    assert words in str(ei.value) and "\n" not in str(ei.value)


@pytest.mark.parametrize("spec", ["no_such_module_xyz:app", "goodapp:missing", "goodapp:not_callable"])
def test_serve_with_a_bad_wsgi_app_says_one_line_and_creates_nothing(app_dir, spec, private_netns):
    """The app is loaded before the TUN device is made: one line on stderr, exit 1."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "-m", "stack", "serve", "--tun", f"tsw{os.getpid()}", "--wsgi", spec],
                       cwd=app_dir, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and r.stderr.startswith(f"tunstack: --wsgi {spec}: "), r.stderr
    assert not os.path.exists(f"/sys/class/net/tsw{os.getpid()}")


def test_wsgi_with_epoll_mode_is_refused_in_one_line(app_dir, private_netns):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "-m", "stack", "serve", "--tun", f"tsw{os.getpid()}", "--wsgi",
                        "goodapp:application", "--http-mode", "epoll"],
                       cwd=app_dir, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "--http-mode epoll" in r.stderr, r.stderr


# ------------------------------------------------------------------ the servers, in process
# Two stacks over an in-memory link (no TUN): clients on A (192.0.2.1), servers on B (192.0.2.2).
import errno  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

from stack.apps import servers  # noqa: E402
from stack.link.memory import SocketPairLink  # noqa: E402
from stack.runtime.stack import Stack  # noqa: E402
from stack.tcp.config import TcpConfig  # noqa: E402
import stack.socket  # noqa: E402,F401  (registers the socket type)

B = "192.0.2.2"


@pytest.fixture
def stacks():
    config = TcpConfig(min_rto=0.05, initial_rto=0.2, delack=0.01, msl=0.5, fin_timeout=1.0)
    la, lb = SocketPairLink.pair()
    a = Stack(la, "192.0.2.1", tcp_config=config, seed=1).start()
    b = Stack(lb, B, tcp_config=config, seed=2).start()
    yield a, b
    a.close()
    b.close()
    la.close()
    lb.close()
    assert a.loop_error is None and b.loop_error is None


def _serve(server):
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


def _client(a, port):
    s = a.socket()
    s.settimeout(5)
    s.connect((B, port))
    return s


def _request(sock, path="/index.html") -> bytes:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(ln.split(b":")[1] for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length")))
    while len(body) < length:
        body += sock.recv(65536)
    return body


@pytest.fixture
def root(tmp_path):
    (tmp_path / "index.html").write_text("<h1>tunstack</h1>\n")
    (tmp_path / "big.bin").write_bytes(os.urandom(1 << 20))
    return tmp_path


def test_listen_backlog_is_linux_default_somaxconn(stacks, root):
    _, b = stacks
    server = servers.http_server(b, 8080, str(root), quiet=True)
    try:
        assert server.request_queue_size == servers.SOMAXCONN == 4096
        assert b.host.tcp.listeners[(bytes(4), 8080)].backlog == 4096
    finally:
        server.server_close()


def test_file_bodies_go_out_with_sendfile_and_listings_with_writes(stacks, root, monkeypatch):
    """FileHandler.copyfile: a file's body by socket.sendfile() (the stack's send-buffer-sized
    pieces), byte-exact; a directory listing (no descriptor) by the standard library's copy."""
    a, b = stacks
    calls = []
    sock_cls = sys.modules["stack.socket"].socket  # (the package's ``socket`` attribute is not the module)
    real = sock_cls.sendfile
    monkeypatch.setattr(sock_cls, "sendfile",
                        lambda self, f, *args: calls.append(f.name) or real(self, f, *args))
    server = _serve(servers.http_server(b, 8080, str(root), quiet=True))
    c = _client(a, 8080)
    assert _request(c, "/big.bin") == (root / "big.bin").read_bytes()
    assert calls == [str(root / "big.bin")]
    (root / "sub").mkdir()
    (root / "sub" / "listed.txt").write_text("x")
    assert b"listed.txt" in _request(c, "/sub/")
    assert calls == [str(root / "big.bin")]
    c.close()
    server.stop_accepting()


def test_worker_pool_grows_with_load_and_shrinks_when_idle(stacks, root, monkeypatch):
    a, b = stacks
    monkeypatch.setattr(servers.HTTPServer, "min_workers", 2)
    monkeypatch.setattr(servers.HTTPServer, "worker_idle_timeout", 0.3)
    server = _serve(servers.http_server(b, 8080, str(root), quiet=True))
    try:
        clients = [_client(a, 8080) for _ in range(8)]
        for c in clients:
            assert _request(c) == b"<h1>tunstack</h1>\n"   # kept alive: each holds a worker
        assert server.active() == 8
        grown = len([t for t in server._workers if t.is_alive()])
        assert grown >= 9   # 8 busy and at least one acceptor left free
        for c in clients:
            c.close()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len([t for t in server._workers if t.is_alive()]) > 2:
            time.sleep(0.05)
        assert len([t for t in server._workers if t.is_alive()]) == 2
        assert _request(_client(a, 8080)) == b"<h1>tunstack</h1>\n"   # and still serves
    finally:
        server.stop_accepting()


def test_worker_pool_keeps_a_free_acceptor_past_its_idle_timeout(stacks, root, monkeypatch):
    """The one idle acceptor of a busy pool never retires: a new client is served while every
    other worker holds a kept-alive connection."""
    a, b = stacks
    monkeypatch.setattr(servers.HTTPServer, "min_workers", 1)
    monkeypatch.setattr(servers.HTTPServer, "worker_idle_timeout", 0.1)
    server = _serve(servers.http_server(b, 8080, str(root), quiet=True))
    try:
        clients = [_client(a, 8080) for _ in range(3)]
        for c in clients:
            assert _request(c) == b"<h1>tunstack</h1>\n"   # kept alive: each holds a worker
        time.sleep(0.5)                                     # several idle timeouts of the free acceptor
        assert _request(_client(a, 8080)) == b"<h1>tunstack</h1>\n"
    finally:
        server.stop_accepting()


@pytest.mark.parametrize("mode", ["threads", "epoll-http", "epoll-echo"])
def test_idle_servers_sleep_until_an_event(stacks, root, mode, monkeypatch):
    """An idle server makes no wake-up: its threads wait without a timeout (or, for the pool's
    acceptors, with their long idle timeout), whatever poll_interval serve_forever is given;
    shutdown() still returns at once."""
    a, b = stacks
    waits = []
    real_wait = threading.Condition.wait

    def counting_wait(self, timeout=None):
        waits.append(timeout)
        return real_wait(self, timeout)
    if mode == "threads":
        server = servers.http_server(b, 8080, str(root), quiet=True)
    elif mode == "epoll-http":
        from stack.apps.epoll_http import EpollHTTPServer
        server = EpollHTTPServer(b, 8080, str(root), quiet=True)
    else:
        from stack.apps.epoll_echo import EpollEchoServer
        server = EpollEchoServer(b, 8080)
    monkeypatch.setattr(threading.Condition, "wait", counting_wait)
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    t.start()
    time.sleep(0.3)                          # started: every thread is asleep
    assert all(w is None or w > 10 for w in waits), waits   # the acceptors' 30 s idle timeout
    settled = len(waits)
    time.sleep(0.5)
    assert waits[settled:] == []             # no thread woke up to sleep again: no polling loop
    start = time.monotonic()
    server.shutdown()
    t.join(2)
    assert not t.is_alive() and time.monotonic() - start < 1
    server.server_close()


@pytest.mark.parametrize("mode", ["threads", "epoll"])
def test_idle_keepalive_connection_is_closed_after_idle_timeout(stacks, root, monkeypatch, mode):
    """The epoll server's loop sleeps until its earliest connection deadline: it wakes for it."""
    a, b = stacks
    if mode == "epoll":
        from stack.apps.epoll_http import EpollHTTPServer
        monkeypatch.setattr(EpollHTTPServer, "idle_timeout", 0.3)
        server = _serve(EpollHTTPServer(b, 8080, str(root), quiet=True))
    else:
        monkeypatch.setattr(servers.FileHandler, "idle_timeout", 0.3)
        server = _serve(servers.http_server(b, 8080, str(root), quiet=True))
    try:
        c = _client(a, 8080)
        assert _request(c) == b"<h1>tunstack</h1>\n"
        start = time.monotonic()
        assert c.recv(100) == b""          # FIN from the server
        assert 0.2 < time.monotonic() - start < 3
    finally:
        server.stop_accepting()
        if mode == "epoll":
            server.stop()


@pytest.mark.parametrize("mode", ["threads", "epoll"])
def test_drain_closes_idle_with_fin_and_finishes_a_response_in_progress(stacks, root, mode):
    a, b = stacks
    if mode == "epoll":
        from stack.apps.epoll_http import EpollHTTPServer
        server = _serve(EpollHTTPServer(b, 8080, str(root), quiet=True))
    else:
        server = _serve(servers.http_server(b, 8080, str(root), quiet=True))
    idle = _client(a, 8080)
    assert _request(idle) == b"<h1>tunstack</h1>\n"
    busy = _client(a, 8080)
    busy.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    first = busy.recv(1000)              # the response has begun
    assert first.startswith(b"HTTP/1.1 200")
    server.stop_accepting()
    server.drain()
    assert idle.recv(100) == b""         # the idle one: FIN at once
    data = first
    while chunk := busy.recv(65536):     # the busy one: the whole response, then FIN
        data += chunk
    assert data.partition(b"\r\n\r\n")[2] == (root / "big.bin").read_bytes()
    assert b.drain(5) == 0
    assert b.abort_all() == 0            # nothing left to reset
    server.stop()


def test_the_stacks_own_reset_wakes_handlers_with_econnaborted_and_no_error_line(stacks, root, capsys):
    a, b = stacks
    server = _serve(servers.echo_server(b, 7007))
    c = _client(a, 7007)
    c.sendall(b"x")
    assert c.recv(1) == b"x"
    ls = b.socket()
    ls.bind(("", 7008))
    ls.listen()
    c2 = _client(a, 7008)
    s2, _ = ls.accept()
    got = []
    reader = threading.Thread(target=lambda: got.append(pytest.raises(ConnectionAbortedError, s2.recv, 10)))
    reader.start()
    assert b.drain(0.1) == 2             # both connections are open: nothing finishes by itself
    assert b.abort_all() == 2
    reader.join(5)
    assert got and got[0].value.errno == errno.ECONNABORTED
    assert b.closing
    time.sleep(0.3)
    for sock in (c, c2):
        with pytest.raises(ConnectionResetError):   # the peer does see a reset
            sock.recv(1)
    assert "Error" not in capsys.readouterr().err
    server.stop_accepting()


@pytest.mark.parametrize("mode", ["threads", "epoll"])
def test_drain_echo_sends_back_what_it_received_then_fin(stacks, mode):
    a, b = stacks
    if mode == "epoll":
        from stack.apps.epoll_echo import EpollEchoServer
        server = _serve(EpollEchoServer(b, 7007))
    else:
        server = _serve(servers.echo_server(b, 7007))
    c = _client(a, 7007)
    c.sendall(b"before the signal")
    got = b""
    while len(got) < 17:
        got += c.recv(100)
    server.stop_accepting()
    server.drain()
    while chunk := c.recv(100):          # EOF: the server closed with FIN, not RST
        got += chunk
    assert got == b"before the signal"
    c.close()
    assert b.drain(3) == 0
    server.stop()


def _exchange(a, raw: bytes, shut_write: bool = False) -> bytes:
    """Send raw bytes to the epoll server, read until it closes."""
    c = _client(a, 8080)
    c.sendall(raw)
    if shut_write:
        c.shutdown(1)
    data = b""
    while chunk := c.recv(65536):
        data += chunk
    c.close()
    return data


def test_epoll_http_protocol_edges(stacks, root):
    from stack.apps.epoll_http import EpollHTTPServer
    a, b = stacks
    server = _serve(EpollHTTPServer(b, 8080, str(root), quiet=True))
    try:
        # HTTP/1.0 without keep-alive: answered, then closed
        r = _exchange(a, b"GET /index.html HTTP/1.0\r\n\r\n")
        assert r.startswith(b"HTTP/1.1 200") and b"Connection: close" in r and r.endswith(b"<h1>tunstack</h1>\n")
        # a method a static server does not implement: 501, like http.server
        r = _exchange(a, b"POST /index.html HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
        assert r.startswith(b"HTTP/1.1 501")
        # garbage for a request line: 400 and close
        r = _exchange(a, b"HELLO\r\n\r\n")
        assert r.startswith(b"HTTP/1.1 400") and b"Connection: close" in r
        # a request cut short by the client's FIN: closed at once, nothing to answer
        assert _exchange(a, b"GET /index.html HTTP/1.1\r\nHo", shut_write=True) == b""
        # HEAD of a missing file: 404 head, no body
        r = _exchange(a, b"HEAD /nope HTTP/1.1\r\nConnection: close\r\n\r\n")
        assert r.startswith(b"HTTP/1.1 404") and r.endswith(b"\r\n\r\n")
        # a path that climbs out of the root stays inside it
        r = _exchange(a, b"GET /../../../../etc/passwd HTTP/1.1\r\nConnection: close\r\n\r\n")
        assert r.startswith(b"HTTP/1.1 404")
        assert server.active() == 0
    finally:
        server.stop()
