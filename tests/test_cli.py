"""The command line as a user meets it: ``python -m stack ...`` in a subprocess.

Every subprocess inherits the test run's private network namespace (tests/conftest.py):
a ``serve`` that gets further than it should creates its TUN there, never on the host,
and every run is bounded by a timeout. Tests that start ``serve`` also require that
namespace explicitly (``private_netns``).
"""
from __future__ import annotations

import argparse
import importlib
import itertools
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import stack
from stack.cli import build_parser

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parents[1]
RUN_TIMEOUT = 20.0
READY = "tunstack: serving"
_names = itertools.count()


def env() -> dict:
    return dict(os.environ, PYTHONUNBUFFERED="1",
                PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))


def run(*args: str, prefix: tuple[str, ...] = (), python: str = sys.executable, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, python, "-m", "stack", *args], cwd=cwd or "/", env=env(),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=RUN_TIMEOUT)


def tun_name() -> str:
    name = f"tscli{os.getpid()}n{next(_names)}"
    assert len(name) <= 15, name
    return name


def _subparsers(parser):
    return {name: sub for action in parser._actions if isinstance(action, argparse._SubParsersAction)
            for name, sub in action.choices.items()}


def _delegated(name: str, sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """A subcommand that hands everything after its name to its own module's parser
    (``tunstack plot`` -> ``stack.plot.build_parser()``): introspect that parser instead."""
    if sub.add_help or not any(a.nargs == argparse.REMAINDER for a in sub._actions):
        return sub
    module = importlib.import_module(f"stack.{name}")
    return module.build_parser()


def all_commands(parser=None, path=()) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every (sub)command the parser defines, nested ones included: [(("serve",), parser), ...]."""
    parser = parser or build_parser()
    found = []
    for name, sub in _subparsers(parser).items():
        sub = _delegated(name, sub) if not path else sub
        found.append((path + (name,), sub))
        found.extend(all_commands(sub, path + (name,)))
    return found


def subparser(*path: str) -> argparse.ArgumentParser:
    return dict(all_commands())[path]


def option_strings(parser) -> list[str]:
    return [s for action in parser._actions for s in action.option_strings]


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


# ============================================================================ help and version

COMMANDS = [path for path, _ in all_commands()]


def test_the_commands_we_expect_exist():
    assert {("serve",), ("ladder",)} <= set(COMMANDS)


@pytest.mark.parametrize("path", COMMANDS, ids=[" ".join(p) for p in COMMANDS])
def test_every_command_help_mentions_every_flag_and_subcommand(path):
    r = run(*path, "--help")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert r.stdout.startswith(f"usage: tunstack {' '.join(path)}")
    parser = subparser(*path)
    flags = option_strings(parser)
    assert "--help" in flags
    missing = [f for f in flags if not re.search(rf"(?<![\w-]){re.escape(f)}(?![\w-])", r.stdout)]
    assert missing == [], f"{' '.join(path)} --help does not mention {missing}"
    for name in _subparsers(parser):
        assert re.search(rf"^\s+{re.escape(name)}\s+\S", r.stdout, re.M), f"subcommand {name} not described"


def test_serve_help_documents_the_ready_line_and_privileges():
    out = run("serve", "--help").stdout
    assert "tunstack: serving" in out
    assert "CAP_NET_ADMIN" in out


def test_ladder_help_names_its_positional_argument():
    out = run("ladder", "--help").stdout
    positional = [a.metavar or a.dest for a in subparser("ladder")._actions if not a.option_strings]
    assert positional and all(p in out for p in positional)


def test_top_level_help_lists_subcommands():
    r = run("--help")
    assert r.returncode == 0 and r.stderr == ""
    assert r.stdout.startswith("usage: tunstack")
    for command in _subparsers(build_parser()):
        assert re.search(rf"^\s+{command}\s+\S", r.stdout, re.M), f"{command} not listed with a description"
    assert "--version" in r.stdout


def test_version():
    r = run("--version")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"tunstack {stack.__version__}"


def test_no_command_is_a_usage_error():
    r = run()
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert "COMMAND" in r.stderr


# ============================================================================ bad input

@pytest.fixture(scope="module")
def not_a_pcap(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("cli") / "notes.txt"
    path.write_text("this is not a capture file, it is a shopping list\n" * 4)
    return str(path)


@pytest.fixture(scope="module")
def random_bytes_file(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("cli") / "noise.pcap"
    path.write_bytes(bytes(range(256)) * 8)
    return str(path)


# (id, argv, a fact the error line must name). serve cases carry --http so that the
# "no servers" notice is not part of the picture; "{tun}" becomes a unique TUN name.
BAD_INPUT = [
    ("unknown-flag", ["serve", "--tun", "{tun}", "--no-such-flag"], "--no-such-flag"),
    ("mtu-10", ["serve", "--tun", "{tun}", "--http", "8080", "--mtu", "10"], "10"),
    ("addr-999", ["serve", "--tun", "{tun}", "--http", "8080", "--addr", "999.1.1.1"], "999.1.1.1"),
    ("http-70000", ["serve", "--tun", "{tun}", "--http", "70000"], "70000"),
    ("root-missing", ["serve", "--tun", "{tun}", "--http", "8080", "--root", "/nonexistent"], "/nonexistent"),
    ("cc-bogus", ["serve", "--tun", "{tun}", "--http", "8080", "--cc", "bogus"], "bogus"),
    ("iw-ten", ["serve", "--tun", "{tun}", "--http", "8080", "--iw", "ten"], "ten"),
    ("iw-0", ["serve", "--tun", "{tun}", "--http", "8080", "--iw", "0"], "1-1000"),
    ("addr-outside-host-net", ["serve", "--tun", "{tun}", "--http", "8080", "--addr", "10.0.0.5"], "10.0.0.5"),
    ("addr-outside-given-host-net",
     ["serve", "--tun", "{tun}", "--http", "8080", "--host-addr", "198.51.100.1/24", "--addr", "192.0.2.2"],
     "198.51.100.1/24"),
    ("addr-is-host-side", ["serve", "--tun", "{tun}", "--http", "8080", "--addr", "192.0.2.1"], "192.0.2.1"),
    ("impair-loss-5", ["serve", "--tun", "{tun}", "--http", "8080", "--impair", "loss=5"], "loss=5"),
    ("impair-unknown-key", ["serve", "--tun", "{tun}", "--http", "8080", "--impair", "bogus=1"], "bogus"),
    ("mem-limit-unit", ["serve", "--tun", "{tun}", "--http", "8080", "--mem-limit", "64 parsecs"], "64 parsecs"),
    ("mem-limit-small", ["serve", "--tun", "{tun}", "--http", "8080", "--mem-limit", "100k"], "1 MiB"),
    ("offload-with-impair", ["serve", "--tun", "{tun}", "--http", "8080", "--offload", "--impair", "loss=1%"],
     "--offload"),
    ("offload-with-impair-no-server", ["serve", "--tun", "{tun}", "--offload", "--impair", "loss=1%"], "--offload"),
    ("tun-name-too-long", ["serve", "--tun", "x" * 16, "--http", "8080"], "x" * 16),
    ("pcap-unwritable", ["serve", "--tun", "{tun}", "--http", "8080", "--pcap", "/nonexistent/dir/x.pcap"],
     "/nonexistent/dir/x.pcap"),
    ("unknown-command", ["frobnicate"], "frobnicate"),
    ("ladder-missing-file", ["ladder", "/nonexistent.pcap"], "/nonexistent.pcap"),
    ("ladder-text-file", ["ladder", "{not_a_pcap}"], "{not_a_pcap}"),
    ("ladder-random-bytes", ["ladder", "{random_bytes_file}"], "{random_bytes_file}"),
    ("ladder-directory", ["ladder", "/"], "/"),
]

ONE_LINE_XFAIL: dict = {}  # every bad input is one line now (argparse's usage block is suppressed)


def _bad_run(argv, fact, not_a_pcap, random_bytes_file):
    values = {"tun": tun_name(), "not_a_pcap": not_a_pcap, "random_bytes_file": random_bytes_file}
    argv = [a.format(**values) for a in argv]
    return run(*argv), fact.format(**values)


@pytest.mark.parametrize("argv, fact", [pytest.param(a, f, id=i) for i, a, f in BAD_INPUT])
def test_bad_input_is_rejected_cleanly(argv, fact, not_a_pcap, random_bytes_file, private_netns):
    r, fact = _bad_run(argv, fact, not_a_pcap, random_bytes_file)
    assert r.returncode != 0, f"accepted: {argv}\n{r.stdout}{r.stderr}"
    assert "Traceback" not in r.stderr, r.stderr
    assert READY not in r.stdout
    err = lines(r.stderr)
    assert err, "no message on stderr"
    last = err[-1]
    assert last.startswith("tunstack"), last
    assert fact in last, f"{last!r} does not name {fact!r}"


@pytest.mark.parametrize("argv, fact", [pytest.param(a, f, id=i, marks=ONE_LINE_XFAIL.get(i, ()))
                                        for i, a, f in BAD_INPUT])
def test_bad_input_is_one_line(argv, fact, not_a_pcap, random_bytes_file, private_netns):
    r, fact = _bad_run(argv, fact, not_a_pcap, random_bytes_file)
    assert len(lines(r.stderr)) == 1, r.stderr
    assert r.stdout == ""


# ============================================================================ privileges

def _check_privilege_error(r):
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    assert READY not in r.stdout
    err = lines(r.stderr)
    assert len(err) == 1, r.stderr
    assert re.search(r"root|CAP_NET_ADMIN", err[0]), err[0]


def test_serve_without_cap_net_admin(private_netns):
    """Root whose bounding set lacks CAP_NET_ADMIN: TUNSETIFF is refused; one line, exit 1."""
    prefix = ("setpriv", "--bounding-set=-net_admin", "--inh-caps=-net_admin")
    r = run("serve", "--tun", tun_name(), "--http", "8080", prefix=prefix)
    _check_privilege_error(r)


def test_privilege_error_says_it_once(private_netns):
    prefix = ("setpriv", "--bounding-set=-net_admin", "--inh-caps=-net_admin")
    r = run("serve", "--tun", tun_name(), "--http", "8080", prefix=prefix)
    assert len(re.findall(r"CAP_NET_ADMIN", r.stderr)) == 1, r.stderr


# ============================================================================ a serve that starts and stops

class Serve:
    def __init__(self, *args: str, root: Path):
        self.tun = tun_name()
        self.err_path = root.parent / f"{self.tun}.stderr"
        self.stdout: list[str] = []
        self._ready = threading.Event()
        with open(self.err_path, "w") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "stack", "serve", "--tun", self.tun, *args],
                                         cwd="/", env=env(), stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=err, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.stdout.append(line)
            if line.startswith(READY):
                self._ready.set()

    def wait_ready(self, timeout: float = RUN_TIMEOUT) -> str:
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.05):
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited {self.proc.returncode} before ready: {self.stderr}")
            assert time.monotonic() < deadline, "serve never printed its ready line"
        return next(line for line in self.stdout if line.startswith(READY))

    @property
    def stderr(self) -> str:
        return self.err_path.read_text()

    def stop(self, sig=signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError(f"serve did not exit within {timeout} s of {sig!r}")


@pytest.fixture
def web_root(tmp_path) -> Path:
    root = tmp_path / "www"
    root.mkdir()
    (root / "index.txt").write_bytes(b"served by tunstack\n")
    return root


@pytest.fixture
def serves():
    started: list[Serve] = []
    yield started
    for s in started:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait(5)


def http_get(path: str, port: int = 8080) -> bytes:
    with socket.create_connection(("192.0.2.2", port), timeout=5) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 192.0.2.2\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        return data


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_starts_answers_and_stops(sig, web_root, serves, private_netns):
    s = Serve("--http", "8080", "--root", str(web_root), "--quiet", root=web_root)
    serves.append(s)
    ready = s.wait_ready()
    assert ready.startswith("tunstack: serving on 192.0.2.2 via " + s.tun)
    assert "http :8080" in ready
    with socket.create_connection(("192.0.2.2", 8080), timeout=5) as sock:
        assert sock.getpeername() == ("192.0.2.2", 8080)
    reply = http_get("/index.txt")
    assert reply.startswith(b"HTTP/1.1 200") or reply.startswith(b"HTTP/1.0 200"), reply[:100]
    assert reply.endswith(b"served by tunstack\n")
    assert s.stop(sig) == 0, s.stderr
    assert "Traceback" not in s.stderr, s.stderr
    assert not os.path.exists(f"/sys/class/net/{s.tun}"), "TUN device left behind"


def test_serve_refuses_a_port_nobody_serves(web_root, serves, private_netns):
    s = Serve("--http", "8080", "--root", str(web_root), "--quiet", root=web_root)
    serves.append(s)
    s.wait_ready()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("192.0.2.2", 8081), timeout=5)
    assert s.stop() == 0
    assert "Traceback" not in s.stderr


def test_second_serve_on_the_same_tun_fails_cleanly(web_root, serves, private_netns):
    first = Serve("--http", "8080", "--root", str(web_root), "--quiet", root=web_root)
    serves.append(first)
    first.wait_ready()
    r = run("serve", "--tun", first.tun, "--http", "8080", "--root", str(web_root))
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    err = lines(r.stderr)
    assert len(err) == 1 and first.tun in err[0], r.stderr
    assert first.proc.poll() is None, "the first serve must be unharmed"
    assert first.stop() == 0


def test_serve_with_echo_and_pcap_then_ladder(tmp_path, web_root, serves, private_netns):
    pcap = tmp_path / "run.pcap"
    s = Serve("--echo", "7007", "--pcap", str(pcap), "--quiet", root=web_root)
    serves.append(s)
    s.wait_ready()
    with socket.create_connection(("192.0.2.2", 7007), timeout=5) as sock:
        sock.sendall(b"ping over the tun\n")
        got = b""
        while len(got) < 18:
            chunk = sock.recv(100)
            assert chunk
            got += chunk
        assert got == b"ping over the tun\n"
    assert s.stop() == 0, s.stderr
    assert "Traceback" not in s.stderr
    r = run("ladder", str(pcap))
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    body = [line for line in r.stdout.splitlines()[1:] if line.strip()]
    assert len(body) >= 6, r.stdout          # handshake, data, echo, teardown
    assert any("S" in line for line in body)
