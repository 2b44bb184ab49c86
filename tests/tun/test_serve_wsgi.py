"""`tunstack serve --wsgi module:app` over a real TUN: wsgiref on the stack's sockets, curl as the client."""
from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
import threading

import pytest

STACK = "192.0.2.2"

APP = textwrap.dedent('''
    import hashlib

    BLOB = bytes(range(256)) * 4096   # 1 MiB, streamed in 64 KiB pieces

    def application(environ, start_response):
        path = environ["PATH_INFO"]
        if path == "/hello":
            body = f"hello {environ['REQUEST_METHOD']} {environ['QUERY_STRING']}\\n".encode()
        elif path == "/sha":
            n = int(environ.get("CONTENT_LENGTH") or 0)
            body = hashlib.sha256(environ["wsgi.input"].read(n)).hexdigest().encode()
        elif path == "/blob":
            start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                      ("Content-Length", str(len(BLOB)))])
            return (BLOB[i:i + 65536] for i in range(0, len(BLOB), 65536))
        elif path == "/threads":
            body = str(environ["wsgi.multithread"]).encode()
        else:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"no such page\\n"]
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
''')


@pytest.fixture
def wsgi_serve(serve_process, tmp_path):
    """serve --wsgi webapp:application, started in a directory holding webapp.py."""
    (tmp_path / "webapp.py").write_text(APP)
    launcher = ["-c", f"import os, sys; os.chdir({str(tmp_path)!r}); from stack.cli import main; "
                      "sys.exit(main(['serve'] + sys.argv[1:]))"]
    return serve_process("--wsgi", "webapp:application", "--http", 8000, "--quiet",
                         command=[sys.executable, *launcher])


def curl(*args):
    return subprocess.run(["curl", "-sS", "--max-time", "30", *args], capture_output=True, timeout=40)


def test_wsgi_app_serves_get_post_stream_and_404(wsgi_serve):
    assert "wsgi webapp:application :8000" in wsgi_serve.stdout_lines[-1]
    r = curl(f"http://{STACK}:8000/hello?x=1")
    assert (r.returncode, r.stdout) == (0, b"hello GET x=1\n"), r.stderr
    body = bytes(range(251)) * 1000
    r = subprocess.run(["curl", "-sS", "--max-time", "30", "--data-binary", "@-", f"http://{STACK}:8000/sha"],
                       input=body, capture_output=True, timeout=40)
    assert r.stdout.decode() == hashlib.sha256(body).hexdigest(), r.stderr
    r = curl(f"http://{STACK}:8000/blob")
    assert r.returncode == 0 and r.stdout == bytes(range(256)) * 4096
    r = curl("-w", "%{http_code}", "-o", "/dev/null", f"http://{STACK}:8000/missing")
    assert r.stdout == b"404"
    assert curl(f"http://{STACK}:8000/threads").stdout == b"True"


def test_wsgi_requests_run_in_parallel(wsgi_serve):
    """20 clients at once, each gets its own bytes (the worker pool runs them side by side)."""
    results = {}

    def get(i):
        results[i] = curl(f"http://{STACK}:8000/hello?n={i}").stdout

    threads = [threading.Thread(target=get, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == {i: f"hello GET n={i}\n".encode() for i in range(20)}
