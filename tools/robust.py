#!/usr/bin/env python3
"""tunstack under hostile input and heavy load, measured beside Linux (issue 12).

Each scenario runs against ``python -m stack serve --http 80 --echo 7 --discard 9`` (from
this checkout, so it measures whatever stack/ is checked out) on a TUN, and against Linux
serving the same (http.server / echo / discard on kernel sockets) behind a veth pair:

  synflood    20,000 spoofed SYNs while a client does 100 sequential GETs
  concurrent  1,000 concurrent connects, hold 5 s, one GET each
  ofo         one spoofed connection sends 1,500 one-byte segments with gaps at 300/s
              while a client GETs
  zerowindow  200 spoofed connections to echo that advertise a zero window and send
  sequential  N sequential connections (default 100,000): RSS and conn/s over time
  neverread   200 echo clients that send and never read (both directions fill)
  sigterm     SIGTERM to the server during 50 transfers: FIN, acceptable RST, or hung
  pmtu        a smaller MTU on the path (the kernel router sends "fragmentation needed")

Topology (all made by this run, named tsr<pid>..., removed at the end, also on Ctrl-C):

  ns tsr<pid>c  (clients; the harness itself moves in)
     ├─ TUN tsr<pid>t  192.0.2.1/24 ── tunstack 192.0.2.2 (a process in this namespace)
     ├─ veth tsr<pid>vc 203.0.113.1/24 ── ns tsr<pid>l: veth 203.0.113.2 (Linux servers)
     └─ (pmtu) veth tsr<pid>pc 198.18.0.1/24, MTU 1280 ── ns tsr<pid>p: 198.18.0.2/24, MTU 1500
  spoofed sources: 198.51.100.0/24 (TEST-NET-2); their replies are dropped in tsr<pid>c
  (no forwarding, blackhole route) and never leave the run's namespaces.

Every sending loop is bounded in count and time; a server that hangs is a result.
"""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno
import fcntl
import json
import os
import random
import re
import resource
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEMA = "tunstack-robust/1"
SCENARIOS = ("synflood", "concurrent", "ofo", "zerowindow", "sequential", "neverread", "sigterm", "pmtu")
TARGETS = ("tunstack", "linux")
HTTP, ECHO, DISCARD = 80, 7, 9
SMALL = "small.txt"
SMALL_BODY = b"tunstack robust: a small response body of 64 bytes for GETs...\n"
BIG = "big.bin"                  # sigterm's file (--term-size)
PMTU_FILE = "pmtu.bin"           # pmtu's file (--pmtu-size)
SPOOF_NET = "198.51.100."        # TEST-NET-2: spoofed sources
TUN_HOST, TUN_STACK = "192.0.2.1", "192.0.2.2"
VETH_C, VETH_L = "203.0.113.1", "203.0.113.2"
PMTU_C, PMTU_P = "198.18.0.1", "198.18.0.2"
PMTU_SMALL = 1280
MiB = 1 << 20
CLONE_NEWNET = 0x40000000

GOALS = {
    "synflood": ">= 99 % of 100 GETs served, none slower than 1 s, memory bounded, normal <= 2 s after",
    "concurrent": "1,000 answered, all within 5 s, no client SYN retransmission beyond TUN drops",
    "ofo": "other clients' GETs <= 50 ms",
    "zerowindow": "RSS under the budget (default <= 256 MiB), still serving",
    "sequential": "RSS after the table drains within 10 % of the start; conn/s without downward trend",
    "neverread": "no connection wedges; memory bounded",
    "sigterm": "every peer sees FIN or an acceptable RST; none hangs",
    "pmtu": "curl finishes",
}

QUICK = dict(syns=2000, gets=20, conns=100, hold=1.0, ofo_segments=300, ofo_rate=300.0,
             zw_conns=20, zw_bytes=64 * 1024, seq_conns=300, seq_drain=2.0, nr_conns=20, nr_fill=3.0,
             term_conns=10, term_size=4 * MiB, pmtu_size=2 * MiB, limit=20.0)
FULL = dict(syns=20000, gets=100, conns=1000, hold=5.0, ofo_segments=1500, ofo_rate=300.0,
            zw_conns=200, zw_bytes=2 * MiB, seq_conns=100000, seq_drain=65.0, nr_conns=200, nr_fill=15.0,
            term_conns=50, term_size=32 * MiB, pmtu_size=20 * MiB, limit=90.0)


class RobustError(Exception):
    """A problem to report in one line, without a traceback."""


def log(msg: str) -> None:
    print(f"robust: {msg}", file=sys.stderr, flush=True)


class Deadline:
    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return max(0.0, self.end - time.monotonic())

    def over(self) -> bool:
        return time.monotonic() >= self.end


def r3(x):
    return None if x is None else round(x, 3)


def sh(*cmd, check: bool = True, timeout: float = 20.0) -> str:
    r = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RobustError(f"{' '.join(cmd)}: {r.stderr.strip() or r.stdout.strip()}")
    return r.stdout


# ---------------------------------------------------------------- namespaces
def _setns(path: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            raise OSError(e, f"setns({path}): {os.strerror(e)}")
    finally:
        os.close(fd)


def netns_list() -> list[str]:
    try:
        return sorted(os.listdir("/run/netns"))
    except FileNotFoundError:
        return []


def remove_stale(prefix: str = "tsr") -> list[str]:
    """Namespaces of earlier runs whose process is gone (name tsr<pid><role>)."""
    removed = []
    for name in netns_list():
        m = re.fullmatch(re.escape(prefix) + r"(\d+)[clp]", name)
        if m and not os.path.exists(f"/proc/{m.group(1)}"):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
            removed.append(name)
    return removed


class Topology:
    """The run's namespaces and links. ``close()`` removes everything and kills what we started."""

    def __init__(self, tag: str | None = None):
        self.tag = tag or f"tsr{os.getpid()}"
        self.ns_c, self.ns_l, self.ns_p = self.tag + "c", self.tag + "l", self.tag + "p"
        self.tun = self.tag + "t"
        self.veth_c, self.veth_l = self.tag + "vc", self.tag + "vl"
        self.pm_c, self.pm_p = self.tag + "pc", self.tag + "pp"
        self.created: list[str] = []
        self.procs: list[subprocess.Popen] = []
        self._home = None
        self.pmtu_ready = False

    def up(self) -> "Topology":
        for ns in (self.ns_c, self.ns_l):
            sh("ip", "netns", "add", ns)
            self.created.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", self.ns_c, "link", "add", self.veth_c, "type", "veth", "peer", "name", self.veth_l,
           "netns", self.ns_l)
        sh("ip", "-n", self.ns_c, "addr", "add", VETH_C + "/24", "dev", self.veth_c)
        sh("ip", "-n", self.ns_l, "addr", "add", VETH_L + "/24", "dev", self.veth_l)
        sh("ip", "-n", self.ns_c, "link", "set", self.veth_c, "up")
        sh("ip", "-n", self.ns_l, "link", "set", self.veth_l, "up")
        # replies to spoofed sources go back to the client namespace, where they die
        sh("ip", "-n", self.ns_l, "route", "add", SPOOF_NET + "0/24", "via", VETH_C)
        sh("ip", "-n", self.ns_l, "route", "add", "198.18.0.0/24", "via", VETH_C)
        sh("ip", "-n", self.ns_c, "route", "add", "blackhole", SPOOF_NET + "0/24")
        return self

    def pmtu_up(self) -> None:
        """A client namespace behind a link whose router-side MTU is smaller than the ends'."""
        if self.pmtu_ready:
            return
        sh("ip", "netns", "add", self.ns_p)
        self.created.append(self.ns_p)
        sh("ip", "-n", self.ns_p, "link", "set", "lo", "up")
        sh("ip", "-n", self.ns_c, "link", "add", self.pm_c, "type", "veth", "peer", "name", self.pm_p,
           "netns", self.ns_p)
        sh("ip", "-n", self.ns_c, "addr", "add", PMTU_C + "/24", "dev", self.pm_c)
        sh("ip", "-n", self.ns_p, "addr", "add", PMTU_P + "/24", "dev", self.pm_p)
        sh("ip", "-n", self.ns_c, "link", "set", self.pm_c, "mtu", str(PMTU_SMALL), "up")
        sh("ip", "-n", self.ns_p, "link", "set", self.pm_p, "mtu", "1500", "up")
        sh("ip", "-n", self.ns_p, "route", "add", "default", "via", PMTU_C)
        sh("ip", "netns", "exec", self.ns_c, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        self.pmtu_ready = True

    def enter_clients(self) -> None:
        """Move this process (and the children it starts) into the client namespace."""
        self._home = os.open("/proc/self/ns/net", os.O_RDONLY)
        _setns(f"/run/netns/{self.ns_c}")

    def start(self, cmd: list[str], ns: str | None = None, **kw) -> subprocess.Popen:
        if ns is not None:
            cmd = ["ip", "netns", "exec", ns] + cmd  # ip execs the command: same pid
        p = subprocess.Popen(cmd, preexec_fn=_die_with_parent, **kw)
        self.procs.append(p)
        return p

    def stop(self, p: subprocess.Popen, timeout: float = 5.0) -> int | None:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        return p.returncode

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                with contextlib.suppress(Exception):
                    p.wait(5)
        if self._home is not None:
            with contextlib.suppress(OSError):
                libc = ctypes.CDLL(None, use_errno=True)
                libc.setns(self._home, CLONE_NEWNET)
            os.close(self._home)
            self._home = None
        for ns in reversed(self.created):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self.created.clear()


def _die_with_parent() -> None:
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


# ---------------------------------------------------------------- servers
LINUX_SERVER = r'''
import functools, http.server, socketserver, sys, threading
root = sys.argv[1]; addr = sys.argv[2]
class H(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    def log_message(self, *a): pass
class S(http.server.ThreadingHTTPServer):
    request_queue_size = 1024; daemon_threads = True; allow_reuse_address = True
class T(socketserver.ThreadingTCPServer):
    request_queue_size = 1024; daemon_threads = True; allow_reuse_address = True
class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            d = self.request.recv(65536)
            if not d: break
            self.request.sendall(d)
class Discard(socketserver.BaseRequestHandler):
    def handle(self):
        b = bytearray(262144)
        while self.request.recv_into(b): pass
for srv in (S((addr, 80), functools.partial(H, directory=root)), T((addr, 7), Echo), T((addr, 9), Discard)):
    threading.Thread(target=srv.serve_forever, daemon=True).start()
print("linux: serving", flush=True)
threading.Event().wait()
'''


class Server:
    """One running server: tunstack (in the client namespace, on its TUN) or Linux (in its namespace)."""

    def __init__(self, topo: Topology, target: str, root: str, args):
        self.topo, self.target = topo, target
        self.addr = TUN_STACK if target == "tunstack" else VETH_L
        self.ifname = topo.tun if target == "tunstack" else topo.veth_c
        self.errfile = tempfile.TemporaryFile(mode="w+")
        if target == "tunstack":
            cmd = [sys.executable, "-m", "stack", "serve", "--tun", topo.tun, "--addr", TUN_STACK,
                   "--host-addr", TUN_HOST + "/24", "--http", str(HTTP), "--echo", str(ECHO),
                   "--discard", str(DISCARD), "--root", root, "--quiet"] + args.stack_args.split()
            self.proc = topo.start(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=self.errfile, text=True)
        else:
            cmd = [sys.executable, "-c", LINUX_SERVER, root, VETH_L]
            self.proc = topo.start(cmd, ns=topo.ns_l, stdout=subprocess.PIPE, stderr=self.errfile, text=True)
        self._wait_ready(args.startup_timeout)
        self.rss_start = self.rss()

    def _wait_ready(self, timeout: float) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RobustError(f"{self.target} server exited ({self.proc.returncode}): {self.stderr_tail()}")
            if sel.select(0.2):
                line = self.proc.stdout.readline()
                if "serving" in line:
                    sel.close()
                    return
        raise RobustError(f"{self.target} server did not start within {timeout} s: {self.stderr_tail()}")

    def stderr_tail(self) -> str:
        self.errfile.seek(0)
        lines = [ln.strip() for ln in self.errfile.read().splitlines() if ln.strip()]
        return lines[-1] if lines else "(no output)"

    def rss(self) -> int | None:
        """Resident set of the server process, bytes."""
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None

    def memory(self) -> dict[str, int]:
        """RssAnon and RssFile of the server, bytes (VmRSS is their sum, with RssShmem): the file-backed
        part is the libraries' pages, which the kernel may drop under memory pressure and fault in again."""
        out = {}
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    key = line.split(":", 1)[0]
                    if key in ("RssAnon", "RssFile"):
                        out[key] = int(line.split()[1]) * 1024
        except OSError:
            pass
        return out

    def cpu_seconds(self) -> float | None:
        """User + system CPU time the server has used so far (/proc/PID/stat), s."""
        try:
            with open(f"/proc/{self.proc.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def threads(self) -> int | None:
        try:
            return len(os.listdir(f"/proc/{self.proc.pid}/task"))
        except OSError:
            return None

    def kernel_tcp_mem(self) -> int | None:
        """Linux only: TCP memory of the server's namespace (sockstat 'mem', pages), bytes."""
        if self.target != "linux":
            return None
        out = sh("ip", "netns", "exec", self.topo.ns_l, "cat", "/proc/net/sockstat", check=False)
        m = re.search(r"^TCP:.* mem (\d+)", out, re.M)
        return int(m.group(1)) * os.sysconf("SC_PAGE_SIZE") if m else None

    def stop(self) -> dict:
        """SIGTERM; returns the tunstack stats line (drop reasons) when there is one."""
        t0 = time.monotonic()
        code = self.topo.stop(self.proc, timeout=10.0)
        out = {"exit_code": code, "exit_seconds": r3(time.monotonic() - t0)}
        self.errfile.seek(0)
        for line in self.errfile.read().splitlines():
            if line.startswith("tunstack: stats "):
                with contextlib.suppress(ValueError):
                    out["stack_stats"] = json.loads(line[len("tunstack: stats "):])
        self.errfile.close()
        return out


class RssSampler:
    """Samples the server's RSS (and Linux's TCP memory) in a thread; keeps (t, rss, kmem)."""

    def __init__(self, server: Server, every: float = 0.25):
        self.server, self.every = server, every
        self.samples: list[tuple[float, int | None, int | None]] = []
        self._stop = threading.Event()
        self.t0 = time.monotonic()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.is_set():
            self.samples.append((time.monotonic() - self.t0, self.server.rss(), self.server.kernel_tcp_mem()))
            self._stop.wait(self.every)

    def stop(self) -> dict:
        self._stop.set()
        self._t.join(5)
        rss = [s[1] for s in self.samples if s[1] is not None]
        km = [s[2] for s in self.samples if s[2] is not None]
        out = {"rss_peak_MiB": round(max(rss) / MiB, 1) if rss else None,
               "rss_end_MiB": round(rss[-1] / MiB, 1) if rss else None}
        if km:
            out["kernel_tcp_mem_peak_MiB"] = round(max(km) / MiB, 1)
        return out

    def series(self, step: float = 1.0) -> list[list]:
        out, next_t = [], 0.0
        for t, rss, km in self.samples:
            if t >= next_t and rss is not None:
                out.append([round(t, 1), round(rss / MiB, 1)] + ([round(km / MiB, 1)] if km is not None else []))
                next_t = t + step
        return out


# ---------------------------------------------------------------- clients
def http_get(addr: str, path: str, timeout: float, source: str | None = None) -> float:
    """One HTTP/1.0 GET on a fresh connection; returns its latency; raises OSError on failure."""
    t0 = time.perf_counter()
    s = socket.create_connection((addr, HTTP), timeout=timeout,
                                 source_address=(source, 0) if source else None)
    try:
        s.settimeout(max(0.05, timeout - (time.perf_counter() - t0)))
        s.sendall(f"GET /{path} HTTP/1.0\r\nHost: robust\r\n\r\n".encode())
        buf = b""
        while not buf.endswith(SMALL_BODY):
            d = s.recv(65536)
            if not d:
                break
            buf += d
        if not buf.startswith(b"HTTP/1.") or b" 200 " not in buf[:16] or not buf.endswith(SMALL_BODY):
            raise OSError("bad or short HTTP response")
    finally:
        s.close()
    return time.perf_counter() - t0


def baseline_get(addr: str, n: int = 5) -> float:
    lat = []
    for _ in range(n):
        with contextlib.suppress(OSError):
            lat.append(http_get(addr, SMALL, 5.0))
    if not lat:
        raise RobustError(f"the server at {addr} does not answer GETs")
    return sorted(lat)[len(lat) // 2]


class GetLoop:
    """Sequential GETs in a thread until stopped (or ``count`` done): latencies and failures."""

    def __init__(self, addr: str, timeout: float, count: int | None = None, pause: float = 0.0):
        self.addr, self.timeout, self.count, self.pause = addr, timeout, count, pause
        self.lat: list[float] = []
        self.slowest = 0.0               # longest attempt, failed ones (timeouts) included
        self.failed = 0
        self.first_error = None
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.is_set() and (self.count is None or len(self.lat) + self.failed < self.count):
            t0 = time.perf_counter()
            try:
                self.lat.append(http_get(self.addr, SMALL, self.timeout))
            except OSError as e:
                self.failed += 1
                self.first_error = self.first_error or (str(e) or type(e).__name__)
            self.slowest = max(self.slowest, time.perf_counter() - t0)
            if self.pause:
                self._stop.wait(self.pause)

    def join(self, timeout: float) -> None:
        self._t.join(timeout)

    def stop(self) -> dict:
        self._stop.set()
        self._t.join(self.timeout + 5)
        lat = sorted(self.lat)
        out = {"gets": len(lat) + self.failed, "served": len(lat), "failed": self.failed,
               "p50_ms": r3(lat[len(lat) // 2] * 1e3) if lat else None,
               "max_ms": r3(lat[-1] * 1e3) if lat else None,
               "slowest_attempt_ms": r3(self.slowest * 1e3)}
        if self.first_error:
            out["first_error"] = self.first_error
        return out


def snmp_counters() -> dict[str, int]:
    """This namespace's kernel TCP counters (/proc/net/snmp and netstat, as nstat reads them)."""
    out = {}
    for path in ("/proc/net/snmp", "/proc/net/netstat"):
        with open(path) as f:
            lines = f.read().splitlines()
        for head, vals in zip(lines[::2], lines[1::2]):
            proto, names = head.split(":", 1)
            for k, v in zip(names.split(), vals.split(":", 1)[1].split()):
                with contextlib.suppress(ValueError):
                    out[f"{proto}{k}"] = int(v)
    return out


def link_drops(dev: str) -> int | None:
    try:
        st = json.loads(sh("ip", "-j", "-s", "link", "show", "dev", dev))[0]["stats64"]
        return st["tx"]["dropped"]
    except (RobustError, ValueError, KeyError, IndexError):
        return None


# ---------------------------------------------------------------- raw packets (spoofed peers)
def _csum(data: bytes) -> int:
    if len(data) & 1:
        data += b"\0"
    return 0xFFFF - int.from_bytes(data, "big") % 0xFFFF


def tcp_packet(src: str, dst: str, sport: int, dport: int, seq: int, ack: int, flags: int, window: int,
               payload: bytes = b"", syn_opts: bool = False) -> bytes:
    opts = struct.pack("!BBH", 2, 4, 1460) + b"\x01\x03\x03\x07" + b"\x01\x01\x04\x02" if syn_opts else b""
    s, d = socket.inet_aton(src), socket.inet_aton(dst)
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                      ((20 + len(opts)) // 4) << 4, flags, window, 0, 0) + opts
    seg = hdr + payload
    c = _csum(s + d + struct.pack("!BBH", 0, 6, len(seg)) + seg)
    seg = seg[:16] + struct.pack("!H", c) + seg[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(seg), random.getrandbits(16), 0x4000, 64, 6, 0, s, d)
    ip = ip[:10] + struct.pack("!H", _csum(ip)) + ip[12:]
    return ip + seg


SYN, ACKF, PSHF, RSTF = 0x02, 0x10, 0x08, 0x04


class RawPeers:
    """Spoofed TCP peers: raw IP out, the server's answers read with AF_PACKET on the link.

    Replies to 198.51.100.0/24 reach the client namespace's kernel, which drops them (no such
    address, no forwarding): the kernel never answers for our spoofed peers.
    """

    def __init__(self, ifname: str, server_addr: str):
        self.server = server_addr
        self.out = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        self.cap = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
        self.cap.bind((ifname, 0x0800))
        self.cap.settimeout(0.2)
        with contextlib.suppress(OSError):
            self.cap.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * MiB)
        self.flows: dict[tuple[str, int], dict] = {}
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._sniff, daemon=True)
        self._t.start()

    def _sniff(self):
        srv = socket.inet_aton(self.server)
        while not self._stop.is_set():
            try:
                pkt = self.cap.recv(65535)
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            if len(pkt) < 40 or pkt[9] != 6 or pkt[12:16] != srv:
                continue
            ihl = (pkt[0] & 0xF) * 4
            sport, dport, seq, ack, off, flags, win = struct.unpack_from("!HHIIBBH", pkt, ihl)
            key = (socket.inet_ntoa(pkt[16:20]), dport)
            with self.lock:
                f = self.flows.get(key)
                if f is None:
                    continue
                f["pkts"] += 1
                if flags & SYN and flags & ACKF:
                    f["irs"] = seq
                if flags & RSTF:
                    f["rst"] = True
                if flags & ACKF and ((ack - f["una"]) & 0xFFFFFFFF) < 0x80000000:
                    f["una"], f["wnd"] = ack, win << f.get("wscale", 0)

    def send(self, pkt: bytes) -> None:
        dst = socket.inet_ntoa(pkt[16:20])
        try:
            self.out.sendto(pkt, (dst, 0))
        except OSError as e:
            if e.errno not in (errno.ENOBUFS, errno.EAGAIN):
                raise

    def open(self, src: str, sport: int, dport: int, window: int, timeout: float) -> dict | None:
        """Handshake from a spoofed address; returns the flow (``nxt``, ``una``, ``wnd``) or None."""
        iss = random.getrandbits(32)
        flow = {"src": src, "sport": sport, "dport": dport, "iss": iss, "nxt": (iss + 1) & 0xFFFFFFFF,
                "una": iss, "wnd": 0, "irs": None, "pkts": 0, "rst": False, "wscale": 7}
        with self.lock:
            self.flows[(src, sport)] = flow
        end = time.monotonic() + timeout
        tries = 0
        while time.monotonic() < end and flow["irs"] is None:
            if tries < 3:
                self.send(tcp_packet(src, self.server, sport, dport, iss, 0, SYN, 65535, syn_opts=True))
                tries += 1
            t_wait = time.monotonic() + 1.0
            while time.monotonic() < min(t_wait, end) and flow["irs"] is None:
                time.sleep(0.005)
        if flow["irs"] is None:
            return None
        self.send(tcp_packet(src, self.server, sport, dport, flow["nxt"], flow["irs"] + 1, ACKF, window))
        return flow

    def close(self):
        self._stop.set()
        self._t.join(2)
        self.cap.close()
        self.out.close()


def spoof_syns(peers_sock: socket.socket, dst: str, dport: int, n: int, limit: float) -> tuple[int, float]:
    """``n`` SYNs from random 198.51.100.x sources and ports, as fast as possible, bounded by ``limit`` s."""
    t0 = time.monotonic()
    sent = 0
    rnd = random.Random(12)
    for i in range(n):
        if i % 256 == 0 and time.monotonic() - t0 > limit:
            break
        src = SPOOF_NET + str(1 + rnd.randrange(254))
        pkt = tcp_packet(src, dst, 1024 + rnd.randrange(60000), dport, rnd.getrandbits(32), 0, SYN, 65535,
                         syn_opts=True)
        try:
            peers_sock.sendto(pkt, (dst, 0))
            sent += 1
        except OSError as e:
            if e.errno not in (errno.ENOBUFS, errno.EAGAIN):
                raise
    return sent, time.monotonic() - t0


# ---------------------------------------------------------------- scenarios
def sc_synflood(server: Server, a) -> dict:
    base = baseline_get(server.addr)
    rss = RssSampler(server)
    c0 = snmp_counters()
    loop = GetLoop(server.addr, timeout=min(15.0, a.limit), count=a.gets)
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    sent, flood_s = spoof_syns(raw, server.addr, HTTP, a.syns, limit=min(10.0, a.limit))
    raw.close()
    flood_end = time.monotonic()
    loop.join(a.limit)
    gets = loop.stop()
    # back to normal: 10 GETs in a row, each within 3x the pre-flood median + 10 ms
    ok_lat = 3 * base + 0.010
    recover = None
    deadline = Deadline(a.recover_limit)
    run_start, run = None, 0
    while not deadline.over():
        t = time.monotonic()
        try:
            lat = http_get(server.addr, SMALL, min(2.0, deadline.left() + 0.05))
            good = lat <= ok_lat
        except OSError:
            good = False
        if good:
            run_start = run_start or t
            run += 1
            if run >= 10:
                recover = max(0.0, run_start - flood_end)
                break
        else:
            run_start, run = None, 0
            time.sleep(0.1)
    c1 = snmp_counters()
    out = {"syns_sent": sent, "flood_seconds": r3(flood_s), "get_planned": a.gets,
           **{f"get_{k}": v for k, v in gets.items()},
           "baseline_ms": r3(base * 1e3), **rss.stop(),
           "back_to_normal_s": r3(recover) if recover is not None else f"> {a.recover_limit:g}",
           "client_syn_retrans": c1.get("TcpExtTCPSynRetrans", 0) - c0.get("TcpExtTCPSynRetrans", 0)}
    return out


def sc_concurrent(server: Server, a) -> dict:
    c0 = snmp_counters()
    drops0 = link_drops(server.ifname)
    sel = selectors.DefaultSelector()
    socks = []
    t0 = time.monotonic()
    for i in range(a.conns):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex((server.addr, HTTP))
        socks.append(s)
        sel.register(s, selectors.EVENT_WRITE, i)
    connected, failed = {}, 0
    deadline = Deadline(min(30.0, a.limit))
    while len(connected) + failed < len(socks) and not deadline.over():
        for key, _ in sel.select(min(0.2, deadline.left())):
            s = key.fileobj
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            sel.unregister(s)
            if err:
                failed += 1
            else:
                connected[key.data] = time.monotonic() - t0
    all_connected_s = max(connected.values()) if len(connected) == len(socks) else None
    threads_peak = server.threads()
    time.sleep(a.hold)
    answered, errors = 0, 0
    req = f"GET /{SMALL} HTTP/1.0\r\nHost: robust\r\n\r\n".encode()
    bufs = {}
    for i in connected:
        try:
            socks[i].send(req)
            sel.register(socks[i], selectors.EVENT_READ, i)
            bufs[i] = b""
        except OSError:
            errors += 1
    deadline = Deadline(min(30.0, a.limit))
    while bufs and not deadline.over():
        for key, _ in sel.select(min(0.2, deadline.left())):
            i, s = key.data, key.fileobj
            try:
                d = s.recv(65536)
            except OSError:
                d = b""
            if d:
                bufs[i] += d
                if not bufs[i].endswith(SMALL_BODY):
                    continue
                answered += 1
            sel.unregister(s)
            del bufs[i]
    threads_peak = max(filter(None, (threads_peak, server.threads())), default=None)
    for s in socks:
        s.close()
    c1 = snmp_counters()
    drops1 = link_drops(server.ifname)
    return {"conns": len(socks), "connected": len(connected), "connect_failed": failed,
            "all_connected_s": r3(all_connected_s) if all_connected_s is not None else None,
            "last_connected_s": r3(max(connected.values())) if connected else None,
            "answered": answered, "unanswered": len(bufs), "send_errors": errors,
            "client_syn_retrans": c1.get("TcpExtTCPSynRetrans", 0) - c0.get("TcpExtTCPSynRetrans", 0),
            "link_tx_drops": (drops1 - drops0) if drops0 is not None and drops1 is not None else None,
            "server_threads": threads_peak}


def sc_ofo(server: Server, a) -> dict:
    base = baseline_get(server.addr)
    peers = RawPeers(server.ifname, server.addr)
    try:
        flow = peers.open(SPOOF_NET + "77", 40077, DISCARD, 65535, timeout=5.0)
        if flow is None:
            return {"error": "the spoofed handshake got no SYN,ACK"}
        rss = RssSampler(server)
        loop = GetLoop(server.addr, timeout=min(30.0, a.limit), pause=0.02)
        t0 = time.monotonic()
        sent = 0
        for i in range(a.ofo_segments):  # every other byte: each segment a new out-of-order block
            due = t0 + i / a.ofo_rate
            while time.monotonic() < due:
                time.sleep(min(0.002, max(0.0, due - time.monotonic())))
            if time.monotonic() - t0 > a.limit:
                break
            peers.send(tcp_packet(flow["src"], server.addr, flow["sport"], DISCARD, flow["nxt"] + 1 + 2 * i,
                                  flow["irs"] + 1, ACKF, 65535, b"x"))
            sent += 1
        attack_s = time.monotonic() - t0
        time.sleep(1.0)
        gets = loop.stop()
        mem = rss.stop()
    finally:
        peers.close()
    return {"segments_sent": sent, "attack_seconds": r3(attack_s), "baseline_ms": r3(base * 1e3),
            **{f"get_{k}": v for k, v in gets.items()}, **mem}


def sc_zerowindow(server: Server, a) -> dict:
    base = baseline_get(server.addr)
    rss = RssSampler(server, every=0.5)
    peers = RawPeers(server.ifname, server.addr)
    flows = []
    deadline = Deadline(a.limit)
    try:
        for i in range(a.zw_conns):
            if deadline.over():
                break
            f = peers.open(f"{SPOOF_NET}{1 + i % 250}", 20000 + i, ECHO, 0, timeout=3.0)
            if f is not None:
                flows.append(f)
        loop = GetLoop(server.addr, timeout=10.0, pause=0.5)
        offered = 0
        chunk = b"z" * 1400
        for f in flows:
            f["acked_at"], f["last_una"] = time.monotonic(), f["una"]
        active = list(flows)
        idle_since = None
        while active and not deadline.over():  # rounds: each connection sends what the window allows
            progressed = False
            now = time.monotonic()
            for f in list(active):
                with peers.lock:
                    una, wnd = f["una"], f["wnd"]
                acked = (una - f["iss"] - 1) & 0xFFFFFFFF
                if acked >= a.zw_bytes or f["rst"]:
                    active.remove(f)
                    continue
                if una != f["last_una"]:
                    f["acked_at"], f["last_una"] = now, una
                elif now - f["acked_at"] > 0.5 and f["nxt"] != una:
                    f["nxt"], f["acked_at"] = una, now  # go back N: segments lost on the way (TUN queue)
                room = (una + wnd - f["nxt"]) & 0xFFFFFFFF
                room = room if room < 0x80000000 else 0
                left = a.zw_bytes - ((f["nxt"] - f["iss"] - 1) & 0xFFFFFFFF)
                n = min(room, left, 64 * 1024)
                for off in range(0, n - len(chunk) + 1, len(chunk)):
                    peers.send(tcp_packet(f["src"], server.addr, f["sport"], ECHO, f["nxt"], f["irs"] + 1,
                                          ACKF, 0, chunk))
                    f["nxt"] = (f["nxt"] + len(chunk)) & 0xFFFFFFFF
                    offered += len(chunk)
                    progressed = True
            if progressed:
                idle_since = None
                continue
            time.sleep(0.1)
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since > 3.0:
                break  # no window anywhere for 3 s: the server takes no more
        time.sleep(2.0)
        gets = loop.stop()
        mem = rss.stop()
        resets = sum(1 for f in flows if f["rst"])
        accepted = sum((f["una"] - f["iss"] - 1) & 0xFFFFFFFF for f in flows)
    finally:
        peers.close()
    return {"conns": len(flows), "offered_MiB": round(offered / MiB, 1), "accepted_MiB": round(accepted / MiB, 1),
            "resets": resets,
            "baseline_ms": r3(base * 1e3), **{f"get_{k}": v for k, v in gets.items()}, **mem,
            "rss_series_MiB": rss.series(2.0)}


def sc_sequential(server: Server, a) -> dict:
    for _ in range(20):  # warm up: imports, thread pool
        with contextlib.suppress(OSError):
            http_get(server.addr, SMALL, 5.0)
    # clients from 16 addresses: 16 x 28k four-tuples, so that no client port meets its own earlier
    # connection still in the server's TIME-WAIT (one address wraps its ephemeral ports in ~30k
    # connections, and every server then slows down on the reused tuples: a harness artefact)
    sources = client_sources(server)
    rss0, mem0, cpu0 = server.rss(), server.memory(), server.cpu_seconds()
    deadline = Deadline(a.seq_limit)
    t0 = time.monotonic()
    windows, done, failed = [], 0, 0
    win_t, win_n = t0, 0
    step = max(0.25, min(10.0, a.seq_conns / 20000))  # about 20 windows at 1,000 conn/s
    while done + failed < a.seq_conns and not deadline.over():
        try:
            http_get(server.addr, SMALL, 5.0, sources[(done + failed) % len(sources)])
            done += 1
            win_n += 1
        except OSError:
            failed += 1
            if failed > 50 and done == 0:
                break
        now = time.monotonic()
        if now - win_t >= step:
            windows.append([round(now - t0, 1), round(win_n / (now - win_t), 1)])
            win_t, win_n = now, 0
    elapsed = time.monotonic() - t0
    rss_end, cpu_end = server.rss(), server.cpu_seconds()
    time.sleep(a.seq_drain)  # TIME-WAIT (2 MSL) passes: the table drains
    rss_drained, mem_drained = server.rss(), server.memory()
    rates = [w[1] for w in windows]
    trend = _slope_percent(windows)
    return {"conns": done, "failed": failed, "seconds": r3(elapsed), "client_addresses": len(sources),
            "conn_per_s": r3(done / elapsed) if elapsed else None,
            "conn_per_s_first": rates[0] if rates else None, "conn_per_s_last": rates[-1] if rates else None,
            "trend_percent_per_10k": trend, "rss_start_MiB": _mib(rss0), "rss_end_MiB": _mib(rss_end),
            "rss_drained_MiB": _mib(rss_drained), "drain_wait_s": a.seq_drain,
            "rss_drained_vs_start_percent": round(100 * (rss_drained - rss0) / rss0, 1) if rss0 and rss_drained else None,
            # the same split in anonymous memory (the heap: what the goal is about) and file-backed pages
            **{f"{k.lower()}_{when}_MiB": _mib(m.get(k)) for when, m in (("start", mem0), ("drained", mem_drained))
               for k in ("RssAnon", "RssFile")},
            # the server's CPU time per connection over the burst: the cost of a connection, whatever the load
            "server_cpu_ms_per_conn": r3(1e3 * (cpu_end - cpu0) / done) if done and cpu0 is not None and cpu_end else None,
            "conn_per_s_series": windows}


def client_sources(server: Server, n: int = 16) -> list[str]:
    """``n`` extra client addresses on the link to the server (in the clients' namespace)."""
    prefix = "192.0.2." if server.target == "tunstack" else "203.0.113."
    out = []
    for i in range(n):
        addr = f"{prefix}{100 + i}"
        sh("ip", "addr", "replace", f"{addr}/24", "dev", server.ifname)
        out.append(addr)
    return out


def _mib(x):
    return None if x is None else round(x / MiB, 1)


def _slope_percent(windows: list[list]) -> float | None:
    """Least-squares slope of conn/s over time, as % of the mean rate per 10,000 connections."""
    if len(windows) < 3:
        return None
    xs = [w[0] for w in windows]
    ys = [w[1] for w in windows]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    if not var or not my:
        return None
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var  # (conn/s) per second
    return round(100 * slope * (10000 / my) / my, 1)  # per 10k connections at the mean rate


def sc_neverread(server: Server, a) -> dict:
    rss = RssSampler(server, every=0.5)
    sel = selectors.DefaultSelector()
    conns = []
    for i in range(a.nr_conns):
        try:
            s = socket.create_connection((server.addr, ECHO), timeout=5.0)
        except OSError:
            continue
        s.setblocking(False)
        conns.append({"s": s, "sent": 0, "got": 0, "eof": False, "err": None})
    chunk = b"n" * 65536
    cap = 64 * MiB
    fill = Deadline(a.nr_fill)
    for c in conns:
        sel.register(c["s"], selectors.EVENT_WRITE, c)
    while not fill.over():  # send, never read
        ready = sel.select(min(0.2, fill.left()))
        for key, _ in ready:
            c = key.data
            try:
                c["sent"] += c["s"].send(chunk[: min(len(chunk), cap - c["sent"])])
            except BlockingIOError:
                pass
            except OSError as e:
                c["err"] = str(e)
                sel.unregister(c["s"])
            if c["sent"] >= cap and c["err"] is None:
                sel.unregister(c["s"])
    mem_fill = {"rss_at_fill_end_MiB": _mib(server.rss())}
    km = server.kernel_tcp_mem()
    if km is not None:
        mem_fill["kernel_tcp_mem_at_fill_end_MiB"] = _mib(km)
    # now read everything and close: a connection whose echo never completes is wedged
    for c in conns:
        with contextlib.suppress(KeyError, ValueError):
            sel.unregister(c["s"])
        if c["err"] is None:
            with contextlib.suppress(OSError):
                sel.register(c["s"], selectors.EVENT_READ, c)
    pending_shut = [c for c in conns if c["err"] is None]
    drain = Deadline(a.nr_drain)
    while not drain.over():
        for c in list(pending_shut):  # shut down writing once every byte we queued has left
            try:
                unsent = struct.unpack("i", fcntl.ioctl(c["s"], termios.TIOCOUTQ, b"\0" * 4))[0]
            except OSError:
                unsent = 0
            if unsent == 0:
                with contextlib.suppress(OSError):
                    c["s"].shutdown(socket.SHUT_WR)
                pending_shut.remove(c)
        if all(c["eof"] or c["err"] for c in conns):
            break
        for key, _ in sel.select(min(0.2, drain.left())):
            c = key.data
            try:
                while True:
                    d = c["s"].recv(262144)
                    if not d:
                        c["eof"] = True
                        sel.unregister(c["s"])
                        break
                    c["got"] += len(d)
            except BlockingIOError:
                pass
            except OSError as e:
                c["err"] = str(e)
                sel.unregister(c["s"])
    ok = sum(1 for c in conns if c["eof"] and c["got"] == c["sent"])
    errs = sum(1 for c in conns if c["err"])
    for c in conns:
        c["s"].close()
    return {"conns": len(conns), "completed": ok, "wedged": len(conns) - ok - errs, "errors": errs,
            "sent_MiB": round(sum(c["sent"] for c in conns) / MiB, 1), "drain_limit_s": a.nr_drain,
            **mem_fill, **rss.stop()}


def sc_sigterm(server: Server, a) -> dict:
    """Clients fill their windows (they read nothing), the server gets SIGTERM, clients then drain."""
    conns = []
    req = f"GET /{BIG} HTTP/1.0\r\nHost: robust\r\n\r\n".encode()
    for _ in range(a.term_conns):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.settimeout(5.0)
        try:
            s.connect((server.addr, HTTP))
            s.sendall(req)
        except OSError:
            s.close()
            continue
        s.setblocking(False)
        conns.append({"s": s, "got": 0, "end": None})
    time.sleep(1.5)  # windows fill: the server is mid-transfer on every connection
    t_term = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    exit_s = None
    delay = Deadline(a.term_read_delay)  # slow clients: their windows stay closed while the server shuts down
    while not delay.over():
        if exit_s is None and server.proc.poll() is not None:
            exit_s = time.monotonic() - t_term
        time.sleep(0.01)
    sel = selectors.DefaultSelector()
    for c in conns:
        sel.register(c["s"], selectors.EVENT_READ, c)
    wait = Deadline(a.term_wait)
    while not wait.over() and any(c["end"] is None for c in conns):
        if exit_s is None and server.proc.poll() is not None:
            exit_s = time.monotonic() - t_term
        for key, _ in sel.select(min(0.2, wait.left())):
            c = key.data
            try:
                while True:
                    d = c["s"].recv(262144)
                    if not d:
                        c["end"] = "fin"
                        break
                    c["got"] += len(d)
            except BlockingIOError:
                continue
            except ConnectionResetError:
                c["end"] = "rst"
            except OSError as e:
                c["end"] = f"error {e.errno}"
            sel.unregister(c["s"])
            c["t"] = time.monotonic() - t_term
    try:
        server.proc.wait(max(0.1, wait.left()))
    except subprocess.TimeoutExpired:
        pass
    exited = server.proc.poll() is not None
    if exited and exit_s is None:
        exit_s = time.monotonic() - t_term  # an upper bound: it exited after the clients were done
    ends = [c["end"] or "hung" for c in conns]
    for c in conns:
        c["s"].close()
    full = a.term_size
    return {"transfers": len(conns), "fin": ends.count("fin"), "rst": ends.count("rst"),
            "hung": ends.count("hung"), "other": len(ends) - ends.count("fin") - ends.count("rst") - ends.count("hung"),
            "complete_bodies": sum(1 for c in conns if c["end"] == "fin" and c["got"] >= full),
            "wait_limit_s": a.term_wait, "read_delay_s": a.term_read_delay, "server_exited": exited, "server_exit_s": r3(exit_s),
            "last_end_s": r3(max((c.get("t", 0) for c in conns), default=None))}


def sc_pmtu(server: Server, a) -> dict:
    server.topo.pmtu_up()
    if server.target == "linux":
        sh("ip", "-n", server.topo.ns_l, "route", "replace", "198.18.0.0/24", "via", VETH_C)
    curl = shutil.which("curl")
    if not curl:
        return {"error": "curl not found"}
    t = min(a.limit, 60.0)
    cmd = ["ip", "netns", "exec", server.topo.ns_p, curl, "-s", "--noproxy", "*", "-o", "/dev/null",
           "--max-time", str(t), "-w", "%{http_code} %{size_download} %{time_total}",
           f"http://{server.addr}:{HTTP}/{PMTU_FILE}"]
    c0 = snmp_counters()  # this namespace is the router: its ICMP "fragmentation needed" count
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=t + 15)
    c1 = snmp_counters()
    try:
        code, got, total = r.stdout.split()
    except ValueError:
        code, got, total = "000", "0", str(t)
    out = {"curl_exit": r.returncode, "http_code": code, "bytes": int(got), "size": a.pmtu_size,
           "seconds": r3(float(total)), "finished": r.returncode == 0 and int(got) == a.pmtu_size,
           "path_mtu": PMTU_SMALL}
    out["router_icmp_unreach_sent"] = c1.get("IcmpOutDestUnreachs", 0) - c0.get("IcmpOutDestUnreachs", 0)
    return out


RUNNERS = {"synflood": sc_synflood, "concurrent": sc_concurrent, "ofo": sc_ofo, "zerowindow": sc_zerowindow,
           "sequential": sc_sequential, "neverread": sc_neverread, "sigterm": sc_sigterm, "pmtu": sc_pmtu}


# ---------------------------------------------------------------- result lines
def summary_line(scenario: str, target: str, r: dict) -> str:
    """The one line a scenario prints per target (also what the docs table quotes)."""
    if "error" in r:
        return f"{scenario} {target}: error: {r['error']}"
    f = {
        "synflood": lambda: (f"{r['get_served']}/{r['get_planned']} GETs served"
                             f"{'' if r['get_gets'] == r['get_planned'] else ' (' + str(r['get_gets']) + ' tried in the time bound)'}"
                             f", slowest {_ms(r['get_slowest_attempt_ms'])}, "
                             f"RSS peak {r['rss_peak_MiB']} MiB, back to normal {_s(r['back_to_normal_s'])} "
                             f"({r['syns_sent']} SYNs in {r['flood_seconds']} s)"),
        "concurrent": lambda: (f"{r['connected']}/{r['conns']} connected"
                               f"{' in ' + _s(r['all_connected_s']) if r['all_connected_s'] is not None else ''}, "
                               f"{r['answered']} answered, {r['client_syn_retrans']} client SYN retransmissions, "
                               f"link drops {r['link_tx_drops']}, server threads {r['server_threads']}"),
        "ofo": lambda: (f"GET p50 {_ms(r['get_p50_ms'])} max {_ms(r['get_max_ms'])} "
                        f"({r['get_served']} served, {r['get_failed']} failed; baseline {_ms(r['baseline_ms'])}) "
                        f"during {r['segments_sent']} gapped segments"),
        "zerowindow": lambda: (f"{r['conns']} zero-window conns, {r['accepted_MiB']} MiB acknowledged "
                               f"({r['offered_MiB']} MiB sent): RSS peak "
                               f"{r['rss_peak_MiB']} MiB"
                               f"{', kernel TCP mem ' + str(r['kernel_tcp_mem_peak_MiB']) + ' MiB' if 'kernel_tcp_mem_peak_MiB' in r else ''}"
                               f"; GETs {r['get_served']}/{r['get_gets']} served, max {_ms(r['get_max_ms'])}"),
        "sequential": lambda: (f"{r['conns']} conns at {r['conn_per_s']}/s (first {r['conn_per_s_first']}, "
                               f"last {r['conn_per_s_last']}, trend {r['trend_percent_per_10k']} %/10k), RSS "
                               f"{r['rss_start_MiB']} -> {r['rss_end_MiB']} -> {r['rss_drained_MiB']} MiB after "
                               f"{r['drain_wait_s']:g} s"
                               + (f" (anon {r['rssanon_start_MiB']} -> {r['rssanon_drained_MiB']} MiB)"
                                  if r.get("rssanon_drained_MiB") is not None else "")
                               + (f", server CPU {r['server_cpu_ms_per_conn']} ms/conn"
                                  if r.get("server_cpu_ms_per_conn") is not None else "")),
        "neverread": lambda: (f"{r['completed']}/{r['conns']} completed, {r['wedged']} wedged, {r['errors']} errors, "
                              f"RSS peak {r['rss_peak_MiB']} MiB"
                              f"{', kernel TCP mem ' + str(r['kernel_tcp_mem_peak_MiB']) + ' MiB' if 'kernel_tcp_mem_peak_MiB' in r else ''}"),
        "sigterm": lambda: (f"{r['transfers']} transfers: {r['fin']} FIN, {r['rst']} RST, {r['hung']} hung "
                            f"(after {r['wait_limit_s']:g} s), {r['other']} other; clients read from "
                            f"{r.get('read_delay_s', 0):g} s after the SIGTERM; server exited "
                            f"{_s(r['server_exit_s']) if r['server_exited'] else 'no'}"),
        "pmtu": lambda: (f"curl {'finished' if r['finished'] else 'did not finish'}: {r['bytes']}/{r['size']} "
                         f"bytes in {r['seconds']} s (path MTU {r['path_mtu']}, exit {r['curl_exit']})"),
    }[scenario]
    try:
        return f"{scenario} {target}: {f()}"
    except (KeyError, TypeError) as e:
        return f"{scenario} {target}: incomplete result ({e})"


def _ms(v):
    return "-" if v is None else f"{v:.1f} ms" if v < 1000 else f"{v / 1000:.2f} s"


def _s(v):
    return "-" if v is None else f"{v} s" if isinstance(v, str) else f"{v:.2f} s"


def load_results(path: str) -> dict:
    """The JSON a run wrote, checked for its schema."""
    with open(path) as f:
        data = json.load(f)
    if data.get("schema") != SCHEMA:
        raise RobustError(f"{path}: not a {SCHEMA} file")
    return data


# ---------------------------------------------------------------- the run
def make_root(a) -> str:
    root = tempfile.mkdtemp(prefix="tsrobust-")
    with open(os.path.join(root, SMALL), "wb") as f:
        f.write(SMALL_BODY)
    block = bytes(range(256)) * 4096
    for name, size in ((BIG, a.term_size), (PMTU_FILE, a.pmtu_size)):
        with open(os.path.join(root, name), "wb") as f:
            left = size
            while left:
                left -= f.write(block[:min(len(block), left)])
    return root


def run_scenario(topo: Topology, name: str, target: str, root: str, a) -> dict:
    server = Server(topo, target, root, a)
    t0 = time.monotonic()
    try:
        result = RUNNERS[name](server, a)
    except (OSError, RobustError) as e:
        result = {"error": f"{type(e).__name__}: {e}"}
    result["scenario_seconds"] = r3(time.monotonic() - t0)
    if server.proc.poll() is not None and name != "sigterm":
        result["server_died"] = f"exit {server.proc.returncode}: {server.stderr_tail()}"
    stop = server.stop()
    if name != "sigterm":
        result["server_exit_seconds"] = stop["exit_seconds"]
    if "stack_stats" in stop:
        result["stack_stats"] = stop["stack_stats"]  # drop reasons and counters, as `tunstack serve` prints them
    return result


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="scripts/robust", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="tunstack under hostile input and heavy load (issue 12), beside Linux, in network "
                    "namespaces of its own (needs root).",
        epilog="Scenarios: " + ", ".join(SCENARIOS) + "\n\n"
               "Examples:\n"
               "  scripts/robust                                   every scenario, both targets\n"
               "  scripts/robust --quick                           tiny sizes (smoke test)\n"
               "  scripts/robust --scenarios synflood,ofo --targets tunstack\n"
               "  scripts/robust --scenarios sequential --seq-conns 20000 --json out/seq.json\n"
               "One result line per scenario and target on stdout; everything in --json.")
    p.add_argument("--scenarios", type=_list(SCENARIOS), default=list(SCENARIOS), metavar="LIST",
                   help="comma-separated scenarios (default all)")
    p.add_argument("--targets", type=_list(TARGETS), default=list(TARGETS), metavar="LIST",
                   help="tunstack,linux (default both)")
    p.add_argument("--quick", action="store_true", help="tiny sizes for a smoke test (flags given still win)")
    p.add_argument("--json", default=os.path.join(REPO, "out", "robust.json"), metavar="FILE",
                   help="write all results here (default out/robust.json)")
    p.add_argument("--stack-args", default="", metavar="ARGS", help="extra flags for `tunstack serve`")
    p.add_argument("--startup-timeout", type=float, default=20.0, metavar="SEC")
    for name, kind, help_ in (
            ("syns", int, "synflood: spoofed SYNs (20000)"), ("gets", int, "synflood: sequential GETs (100)"),
            ("conns", int, "concurrent: connections (1000)"), ("hold", float, "concurrent: hold seconds (5)"),
            ("ofo-segments", int, "ofo: one-byte segments (1500)"), ("ofo-rate", float, "ofo: per second (300)"),
            ("zw-conns", int, "zerowindow: connections (200)"), ("zw-bytes", int, "zerowindow: bytes each offers (2 MiB)"),
            ("seq-conns", int, "sequential: connections (100000)"),
            ("seq-drain", float, "sequential: wait for TIME-WAIT to drain, s (65)"),
            ("nr-conns", int, "neverread: connections (200)"), ("nr-fill", float, "neverread: fill seconds (15)"),
            ("term-conns", int, "sigterm: transfers (50)"), ("term-size", int, "sigterm: file bytes (32 MiB)"),
            ("pmtu-size", int, "pmtu: file bytes (20 MiB)"),
            ("limit", float, "bound on each scenario's main phase, s (90)")):
        p.add_argument("--" + name, type=_positive(kind), default=None, help=help_)
    p.add_argument("--seq-limit", type=_positive(float), default=None, help="sequential: time bound, s (1800)")
    p.add_argument("--recover-limit", type=_positive(float), default=None,
                   help="synflood: how long to wait for normal service after the flood, s (75)")
    p.add_argument("--nr-drain", type=_positive(float), default=None, help="neverread: drain bound, s (30)")
    p.add_argument("--term-wait", type=_positive(float), default=None, help="sigterm: wait per peer, s (15)")
    p.add_argument("--term-read-delay", type=float, default=2.0, metavar="SEC",
                   help="sigterm: clients start reading this long after the SIGTERM (default 2; 0: at once)")
    return p


def _list(choices):
    def parse(text):
        items = [x.strip() for x in text.split(",") if x.strip()]
        bad = [x for x in items if x not in choices]
        if bad or not items:
            raise argparse.ArgumentTypeError(f"choose from {','.join(choices)} (got {text!r})")
        return items
    return parse


def _positive(kind):
    def parse(text):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}")
        if v <= 0:
            raise argparse.ArgumentTypeError("must be > 0")
        return v
    return parse


def finish_args(a) -> None:
    sizes = QUICK if a.quick else FULL
    for k, v in sizes.items():
        if getattr(a, k, None) is None:
            setattr(a, k, v)
    extra = dict(seq_limit=(30.0, 1800.0), recover_limit=(5.0, 75.0), nr_drain=(5.0, 30.0), term_wait=(4.0, 15.0))
    for k, (q, full) in extra.items():
        if getattr(a, k) is None:
            setattr(a, k, q if a.quick else full)


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    finish_args(a)
    if os.geteuid() != 0:
        print("robust: needs root (network namespaces, TUN, raw sockets); try sudo", file=sys.stderr)
        return 2
    for tool in ("ip",):
        if not shutil.which(tool):
            print(f"robust: `{tool}` not found (iproute2)", file=sys.stderr)
            return 2
    stale = remove_stale()
    if stale:
        log(f"removed namespaces of dead runs: {', '.join(stale)}")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    root = make_root(a)
    topo = Topology()
    results = {"schema": SCHEMA, "tag": topo.tag, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "quick": a.quick,
               "cpus": os.cpu_count(), "loadavg_start": os.getloadavg(), "commit": _commit(),
               "args": {k: v for k, v in vars(a).items()}, "results": {}}
    code = 0
    try:
        topo.up()
        topo.enter_clients()
        for name in a.scenarios:
            for target in a.targets:
                log(f"{name} against {target} ...")
                try:
                    r = run_scenario(topo, name, target, root, a)
                except RobustError as e:
                    r = {"error": str(e)}
                    code = 1
                results["results"].setdefault(name, {})[target] = r
                line = summary_line(name, target, r)
                r["line"] = line
                print(line, flush=True)
                _write(a.json, results)
    except KeyboardInterrupt:
        log("interrupted: cleaning up")
        code = 130
    except RobustError as e:
        print(f"robust: {e}", file=sys.stderr)
        code = 1
    finally:
        topo.close()
        shutil.rmtree(root, ignore_errors=True)
        results["loadavg_end"] = os.getloadavg()
        _write(a.json, results)
    return code


def _commit() -> str | None:
    with contextlib.suppress(Exception):
        return subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=5).stdout.strip() or None
    return None


def _write(path: str, data: dict) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(data, f, indent=1, default=str)
    os.replace(path + ".tmp", path)


if __name__ == "__main__":
    sys.exit(main())
