"""The run's own network namespace, its set-up, and the veth pair of the kernel baseline.

Network safety: ``ensure_namespace`` re-executes the harness under ``unshare --net``; the
namespace disappears with the last process in it (also on a crash or Ctrl-C). The kernel
baseline's server runs in a second namespace nested inside it (``unshare --net`` again),
joined to ours by a veth pair named after this run's pid; both go with their processes.
"""
from __future__ import annotations

import ctypes
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys

from .config import REPO, BenchError

ENTRY = os.path.join(REPO, "tools", "bench")  # the package directory runs as a script (__main__.py)


def ensure_namespace(argv) -> None:
    """Re-exec under `unshare --net` unless we already are the re-executed child."""
    me = os.readlink("/proc/self/ns/net")
    outer = os.environ.get("TSBENCH_OUTER_NETNS")
    if outer:
        if outer == me:
            raise BenchError("still in the outer network namespace after unshare; refusing to run")
        others = [name for _, name in socket.if_nameindex() if name != "lo"]
        if others:  # a namespace unshare just made has only lo
            raise BenchError(f"not a fresh network namespace (has {', '.join(others)}); refusing to run")
        return
    if os.geteuid() != 0:
        raise BenchError("needs root: it creates a network namespace and TUN devices (try sudo)")
    if not os.path.exists("/dev/net/tun"):
        raise BenchError("/dev/net/tun is missing (modprobe tun?)")
    unshare = shutil.which("unshare")
    if not unshare:
        raise BenchError("`unshare` (util-linux) not found: it is how the run gets its own network namespace")
    env = dict(os.environ, TSBENCH_OUTER_NETNS=me)
    os.execve(unshare, [unshare, "--net", "--", sys.executable, ENTRY, *argv], env)


# per-namespace settings: many short connections from one client address to one server port
SYSCTLS = {"net/ipv4/tcp_tw_reuse": "1", "net/ipv4/ip_local_port_range": "10000 65000"}


def setup_namespace() -> None:
    subprocess.run(["ip", "link", "set", "lo", "up"], capture_output=True)
    for key, value in SYSCTLS.items():
        try:
            with open(f"/proc/sys/{key}", "w") as f:
                f.write(value)
        except OSError:
            pass
    raise_nofile()


def raise_nofile() -> int:
    """Soft RLIMIT_NOFILE up to the hard one (the idle phase holds thousands of sockets); children inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            return hard
        except (ValueError, OSError):
            pass
    return soft


_libc = None


def die_with_parent() -> None:  # preexec_fn: children die if the harness is killed
    global _libc
    try:
        _libc = _libc or ctypes.CDLL(None, use_errno=True)
        _libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def ip(*args: str) -> None:
    r = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    if r.returncode:
        raise BenchError(f"ip {' '.join(args)}: {r.stderr.strip()}")


def veth_to(pid: int, ours: str, theirs: str, host_addr: str, mtu: int) -> None:
    """A veth pair: ``ours`` here with ``host_addr``, ``theirs`` moved into the namespace of ``pid``."""
    ip("link", "add", ours, "mtu", str(mtu), "type", "veth", "peer", "name", theirs, "mtu", str(mtu))
    try:
        ip("link", "set", theirs, "netns", str(pid))
        ip("addr", "add", host_addr, "dev", ours)
        ip("link", "set", ours, "up")
    except BenchError:
        remove_link(ours)
        raise


def remove_link(name: str) -> None:
    subprocess.run(["ip", "link", "del", name], capture_output=True, timeout=10)
