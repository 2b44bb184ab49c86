"""The three targets as processes: the ceiling and the stack on a TUN each, the kernel on a veth pair.

Each prints a line containing ``: serving`` when ready. Every target gets the same address
(``ADDR``), ports and files, so the clients in workloads.py run unchanged against each.
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time

from .config import ADDR, DISCARD_PORT, ECHO_PORT, HOST_ADDR, HTTP_PORT, REPO, BenchError
from .netns import die_with_parent, remove_link, veth_to

KERNEL_APP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kernel_app.py")
WAITING = "kernel-app: waiting for link"


class Server:
    """A target's process, with its output collected; ``link`` is the device the clients' packets cross."""

    def __init__(self, target: str, cmd, link: str, mtu: int, peer_link: str | None = None):
        self.target, self.cmd, self.link, self.mtu = target, cmd, link, mtu
        self.peer_link = peer_link  # kernel target: the veth end that goes into its namespace
        self.proc = None
        self.lines = []
        self.ready = threading.Event()
        self.wants_link = threading.Event()
        self.threads = []
        self.made_link = False

    def _reader(self, stream, tag):
        for line in stream:
            self.lines.append((tag, line.rstrip("\n")))
            if tag == "out" and ": serving" in line:
                self.ready.set()
            elif tag == "out" and line.startswith(WAITING):
                self.wants_link.set()

    def start(self, timeout: float) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1", TSBENCH_NETNS=os.readlink("/proc/self/ns/net"))
        env["PYTHONPATH"] = REPO + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        try:
            self.proc = subprocess.Popen(self.cmd, cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                         start_new_session=True, preexec_fn=die_with_parent)
        except OSError as e:
            raise BenchError(f"cannot start {self.cmd[0]}: {e}")
        for stream, tag in ((self.proc.stdout, "out"), (self.proc.stderr, "err")):
            t = threading.Thread(target=self._reader, args=(stream, tag), daemon=True)
            t.start()
            self.threads.append(t)
        t_end = time.monotonic() + timeout
        while not self.ready.wait(0.05):
            if self.wants_link.is_set() and not self.made_link:
                # it has its own namespace now (it printed from inside it): hand it its veth end
                self.made_link = True
                veth_to(self.proc.pid, self.link, self.peer_link, HOST_ADDR, self.mtu)
            if self.proc.poll() is not None:
                for t in self.threads:
                    t.join(1)
                raise BenchError(f"exited with status {self.proc.returncode} before serving: {self.last_error()}")
            if time.monotonic() > t_end:
                raise BenchError(f"no ': serving' line within {timeout:g} s: {self.last_error()}")

    def last_error(self) -> str:
        errs = [l for tag, l in self.lines if tag == "err" and l.strip()]
        outs = [l for tag, l in self.lines if l.strip()]
        text = (errs or outs or ["(no output)"])[-1].strip()
        return text[:300]

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                try:
                    self.proc.send_signal(signal.SIGTERM)
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(5)
            for t in self.threads:
                t.join(1)
        if self.made_link:
            remove_link(self.link)  # gone with its namespace already; this covers a server that lingers

    def stats(self):
        for tag, line in self.lines:
            if line.startswith("ceiling: stats "):
                try:
                    return json.loads(line[len("ceiling: stats "):])
                except ValueError:
                    return None
        return None


def server_cmd(a, target: str, link: str, mtu: int, root: str, peer_link: str = "PEER"):
    """The command line of ``target``; the stack also runs its one-thread epoll echo server (idle phase)."""
    if target == "kernel":
        unshare = shutil.which("unshare") or "unshare"
        prefix = HOST_ADDR.split("/")[1]
        return [unshare, "--net", "--", sys.executable, KERNEL_APP, "--link", peer_link,
                "--addr", f"{ADDR}/{prefix}", "--http", str(HTTP_PORT), "--root", root,
                "--echo", str(ECHO_PORT), "--discard", str(DISCARD_PORT)]
    common = ["--tun", link, "--addr", ADDR, "--host-addr", HOST_ADDR, "--mtu", str(mtu),
              "--http", str(HTTP_PORT), "--root", root, "--discard", str(DISCARD_PORT)]
    if a.offload:
        common.append("--offload")
    if target == "ceiling":
        return [sys.executable, os.path.join(REPO, "tools", "ceiling.py"), *common]
    base = shlex.split(a.stack_cmd) if a.stack_cmd else [sys.executable, "-m", "stack", "serve"]
    return [*base, *common, "--echo", str(ECHO_PORT), "--echo-mode", "epoll", *shlex.split(a.stack_args)]


def link_names(n: int) -> tuple[str, str]:
    """This run's unique device names for its n-th server: (ours, the kernel target's end)."""
    tag = f"tsb{os.getpid() % 10**6}x{n}"[:13]
    return tag, tag + "p"
