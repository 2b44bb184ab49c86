"""The serve_process fixture: readiness, teardown by SIGTERM, exit status checked."""
from __future__ import annotations

import socket
import sys
import textwrap

import pytest

from stack.link import netconf

FAKE_SERVE = textwrap.dedent("""
    import signal, sys, time
    args = sys.argv[1:]
    if "--fail" in args:
        print("oops", file=sys.stderr); sys.exit(3)
    if "--ignore-term" in args:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    elif "--bad-exit" in args:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(4))
    else:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    time.sleep(0.3)
    print("tunstack: serving (fake)", " ".join(args), flush=True)
    for _ in range(600):
        time.sleep(0.1)
""")


@pytest.fixture
def fake(tmp_path):
    path = tmp_path / "fake_serve.py"
    path.write_text(FAKE_SERVE)
    return [sys.executable, str(path)]


def test_waits_for_ready_line_and_stops_cleanly(serve_process, fake):
    srv = serve_process("--echo", 7, command=fake)
    assert srv.proc.poll() is None
    assert srv.stdout_lines == [f"tunstack: serving (fake) --tun {srv.tun} --echo 7"]
    assert srv.tun.startswith("ts") and len(srv.tun) <= 15
    assert srv.stop() == 0
    assert srv.stop() == 0  # idempotent; teardown stops it again harmlessly


def test_server_that_dies_before_ready_fails_with_its_output(serve_process, fake):
    with pytest.raises(pytest.fail.Exception, match=r"exited with 3[\s\S]*oops"):
        serve_process("--fail", command=fake)


def test_nonzero_exit_on_sigterm_is_reported(serve_process, fake):
    srv = serve_process("--bad-exit", command=fake)
    with pytest.raises(pytest.fail.Exception, match="exited with 4"):
        srv.stop()


def test_server_ignoring_sigterm_is_killed_and_reported(serve_process, fake):
    srv = serve_process("--ignore-term", command=fake)
    with pytest.raises(pytest.fail.Exception, match="ignored SIGTERM"):
        srv.stop(timeout=0.5)
    assert srv.proc.returncode == -9


def test_real_stack_echo_over_tun(serve_process):
    """The real `python -m stack serve`: the kernel's TCP client talks to our echo server."""
    srv = serve_process("--echo", 7, "--quiet")
    assert netconf.link_index(srv.tun) is not None
    with socket.create_connection(("192.0.2.2", 7), timeout=5) as s:
        s.sendall(b"hello, stack\n")
        got = b""
        while len(got) < 13:
            chunk = s.recv(100)
            assert chunk, "connection closed early"
            got += chunk
    assert got == b"hello, stack\n"
