"""Fixtures for real-TUN tests: the host kernel is the peer of our stack.

Every test here runs in the run's private network namespace (tests/conftest.py) and
fails when there is none: ``_require_private_netns`` is autouse.

* ``tun_name``: a device name unique to this test (pid + counter, <= 15 chars).
* ``tun_link``: an in-process :class:`TunLink`, host side configured as 192.0.2.1/24.
* ``serve_process``: starts ``python -m stack serve --tun NAME ...`` and waits for its
  ``tunstack: serving`` line; on teardown SIGTERMs it and asserts it exited 0.
"""
from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from stack.link import netconf
from stack.link.tun import TunLink

REPO = Path(__file__).resolve().parents[2]
READY_PREFIX = "tunstack: serving"
_counter = itertools.count()


@pytest.fixture(autouse=True)
def _require_private_netns(private_netns):
    """No test in tests/tun runs outside the run's own network namespace."""
    return private_netns


def unique_tun_name(prefix: str = "ts") -> str:
    """``ts<pid>n<k>``: unique among this run's devices, at most 15 characters."""
    name = f"{prefix}{os.getpid()}n{next(_counter)}"
    assert len(name) <= 15, name
    return name


@pytest.fixture
def tun_name() -> str:
    return unique_tun_name()


@pytest.fixture
def tun_link(tun_name):
    """A TunLink whose kernel side is 192.0.2.1/24, MTU 1500, up; closed after the test."""
    link = TunLink(tun_name, mtu=1500)
    try:
        netconf.configure_host_side(tun_name, "192.0.2.1/24", 1500)
        yield link
    finally:
        link.close()


class ServeProcess:
    """A running ``stack serve`` subprocess; ``.tun``, ``.proc``, ``.stdout_lines``."""

    def __init__(self, argv: list[str], tun: str, tmp_path: Path, ready_timeout: float):
        self.tun, self.argv = tun, argv
        self.stdout_lines: list[str] = []
        self.failure_reported = False  # stop(check=True) already failed a test
        self.stderr_path = tmp_path / f"serve-{tun}.stderr"
        self._ready = threading.Event()
        env = dict(os.environ, PYTHONUNBUFFERED="1",
                   PYTHONPATH=os.pathsep.join(filter(None, [str(REPO),
                                                            os.environ.get("PYTHONPATH")])))
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(argv, cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=err, text=True)
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + ready_timeout
        while not self._ready.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                why = (f"exited with {self.proc.returncode}" if self.proc.poll() is not None
                       else f"not ready after {ready_timeout} s")
                self.stop(check=False)
                pytest.fail(f"{' '.join(argv)}: {why}\n{self.output()}", pytrace=False)

    def _read_stdout(self) -> None:
        for line in self.proc.stdout:
            self.stdout_lines.append(line.rstrip("\n"))
            if line.startswith(READY_PREFIX):
                self._ready.set()

    def output(self) -> str:
        """Everything the server printed so far (stdout, then stderr)."""
        err = self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""
        return "stdout:\n" + "\n".join(self.stdout_lines) + "\nstderr:\n" + err

    def stop(self, check: bool = True, timeout: float = 5.0) -> int:
        """SIGTERM, wait ``timeout`` s, then SIGKILL; with ``check``, fail unless exit 0."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                if check:
                    self._fail(f"server ignored SIGTERM for {timeout} s")
        self._reader.join(timeout=2)
        if check and self.proc.returncode != 0:
            self._fail(f"server exited with {self.proc.returncode}")
        return self.proc.returncode

    def _fail(self, why: str) -> None:
        if not self.failure_reported:
            self.failure_reported = True
            pytest.fail(f"{' '.join(self.argv)}: {why}\n{self.output()}", pytrace=False)


@pytest.fixture
def serve_process(tmp_path):
    """Factory: ``srv = serve_process("--http", "80", "--root", d)`` -> ServeProcess.

    Runs ``sys.executable -m stack serve --tun <unique> ARGS`` (``command=[...]``
    replaces ``[sys.executable, "-m", "stack", "serve"]``), returns once it printed a
    line starting with ``tunstack: serving``; at teardown stops each server and asserts
    it exited 0.
    """
    started: list[ServeProcess] = []

    def start(*args, tun: str | None = None, command: list[str] | None = None,
              ready_timeout: float = 10.0) -> ServeProcess:
        tun = tun or unique_tun_name()
        argv = list(command or [sys.executable, "-m", "stack", "serve"])
        argv += ["--tun", tun, *map(str, args)]
        srv = ServeProcess(argv, tun, tmp_path, ready_timeout)
        started.append(srv)
        return srv

    yield start
    failures = []
    for srv in started:
        try:
            srv.stop(check=True)
        except pytest.fail.Exception as e:
            failures.append(str(e))
    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)
