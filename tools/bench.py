#!/usr/bin/env python3
"""tunstack benchmark: the stack against a ceiling, measured in one run.

For each MTU (default 1500 and 65535) it starts, one after the other, the
*ceiling* (tools/ceiling.py, the fastest minimal Python responder on a TUN) and
the *stack* (``python -m stack serve``) with the same flags, and measures:

  download     curl fetches a file (default 200 MB) over HTTP      MB/s
  upload       a kernel socket sends (default 200 MB) to discard    MB/s
  connections  sequential connect + HTTP/1.0 GET + close           conn/s, p50/p99 ms
  concurrency  N keep-alive HTTP/1.1 clients for a fixed time       req/s, errors, p50/p99 ms
  ping         ping -i 0.01 (RTT as ping reports it)                p50/p99 ms

Every number of the stack is also given as a ratio to the ceiling of the same
run (stack / ceiling; for latencies above 1 is worse, for rates below 1 is).
MB is 10**6 bytes. A table goes to stdout, everything to the JSON file.

Network safety: the whole run happens in a network namespace of its own: this
script re-executes itself under ``unshare --net`` (the namespace disappears with
the last process in it, also on a crash or Ctrl-C), every server runs in it with
a TUN named after this run's pid, traffic goes only to 192.0.2.2 inside it, every
phase is bounded by --time-limit and every child is killed (by pid) when we stop.
"""
from __future__ import annotations

import argparse
import ctypes
import datetime as _dt
import fcntl
import json
import os
import platform
import re
import selectors
import shlex
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
ADDR = "192.0.2.2"
HOST_ADDR = "192.0.2.1/24"
HTTP_PORT = 80
DISCARD_PORT = 9
BIG = "big.bin"
SMALL = "small.txt"
SMALL_BODY = b"tunstack bench: a small response body of 64 bytes, for conn/s.\n"
PHASES = ("download", "upload", "connections", "concurrency", "ping")
TARGETS = ("ceiling", "stack")
SCHEMA = "tunstack-bench/1"
MB = 1e6

GOALS = [  # (text, mtu, metric, comparison, target)
    ("MTU 1500 download >= 100 MB/s", 1500, "download_MBps", ">=", 100.0),
    ("MTU 1500 upload >= 100 MB/s", 1500, "upload_MBps", ">=", 100.0),
    ("MTU 65535 download >= 1 GB/s", 65535, "download_MBps", ">=", 1000.0),
    ("MTU 65535 upload >= 1 GB/s", 65535, "upload_MBps", ">=", 1000.0),
    (">= 2,000 sequential connections/s (MTU 1500)", 1500, "conn_per_s", ">=", 2000.0),
    ("ping p50 within 2x of ceiling (MTU 1500)", 1500, "ping_p50_ratio", "<=", 2.0),
]


class BenchError(Exception):
    """A problem to report in one line, without a traceback."""


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- arguments
def parse_size(text: str) -> int:
    t = text.strip().upper().removesuffix("B")
    mult = 1
    for suffix, m in (("K", 10**3), ("M", 10**6), ("G", 10**9)):
        if t.endswith(suffix):
            t, mult = t[:-1], m
            break
    try:
        value = int(float(t) * mult)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use e.g. 200M, 4M, 1G, 65536)")
    if value <= 0:
        raise argparse.ArgumentTypeError("size must be positive")
    return value


def parse_list(choices):
    def parse(text: str):
        items = [x.strip() for x in text.split(",") if x.strip()]
        bad = [x for x in items if x not in choices]
        if bad or not items:
            raise argparse.ArgumentTypeError(f"choose from {','.join(choices)} (got {text!r})")
        return items
    return parse


def parse_mtus(text: str):
    try:
        mtus = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"MTUs are integers, e.g. 1500,65535 (got {text!r})")
    if not mtus or any(not 576 <= m <= 65535 for m in mtus):
        raise argparse.ArgumentTypeError("each MTU must be within 576..65535")
    return mtus


def positive(kind):
    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}")
        if v <= 0:
            raise argparse.ArgumentTypeError("must be > 0")
        return v
    return parse


QUICK = dict(size=20 * 10**6, conns=200, clients=20, concurrency_time=1.0, pings=30,
             time_limit=4.0)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="scripts/bench",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Benchmark tunstack against a minimal Python TUN responder (the ceiling), "
                    "in one run, inside a network namespace of its own (needs root).",
        epilog="Examples:\n"
               "  scripts/bench                     full run (~2-3 min), table + out/bench.json\n"
               "  scripts/bench --quick             smoke run (~20 s)\n"
               "  scripts/bench --targets ceiling --mtu 1500 --phases download,upload\n"
               "  scripts/bench --profile stack     also sample the stack with py-spy during download\n"
               "Ratios are stack/ceiling from the same run. MB = 10**6 bytes.")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: --size 20M --conns 200 --clients 20 --concurrency-time 1 "
                        "--pings 30 --time-limit 4 (flags given explicitly still win)")
    p.add_argument("--json", default=os.path.join(REPO, "out", "bench.json"), metavar="FILE",
                   help="write results here (default out/bench.json)")
    p.add_argument("--mtu", type=parse_mtus, default=[1500, 65535], metavar="LIST",
                   help="comma-separated MTUs (default 1500,65535)")
    p.add_argument("--targets", type=parse_list(TARGETS), default=list(TARGETS), metavar="LIST",
                   help="which servers: ceiling,stack (default both; ratios need both)")
    p.add_argument("--phases", type=parse_list(PHASES), default=list(PHASES), metavar="LIST",
                   help=f"which measurements (default {','.join(PHASES)})")
    p.add_argument("--size", type=parse_size, default=None, metavar="BYTES",
                   help="bytes to download and to upload (default 200M; K/M/G are powers of 10)")
    p.add_argument("--conns", type=positive(int), default=None, metavar="N",
                   help="sequential connections in the connections phase (default 2000)")
    p.add_argument("--clients", type=positive(int), default=None, metavar="N",
                   help="concurrent keep-alive clients in the concurrency phase (default 100)")
    p.add_argument("--concurrency-time", type=positive(float), default=None, metavar="SEC",
                   help="how long the concurrency phase runs (default 5)")
    p.add_argument("--pings", type=positive(int), default=None, metavar="N",
                   help="echo requests per ping phase, 10 ms apart (default 200)")
    p.add_argument("--time-limit", type=positive(float), default=None, metavar="SEC",
                   help="cap on each download/upload/connections phase; a phase cut short reports "
                        "the rate over what it did, marked truncated (default 12)")
    p.add_argument("--budget", type=positive(float), default=170.0, metavar="SEC",
                   help="whole-run budget; phases that would not fit are skipped (default 170)")
    p.add_argument("--startup-timeout", type=positive(float), default=15.0, metavar="SEC",
                   help="how long a server may take to print its ': serving' line (default 15)")
    p.add_argument("--stack-cmd", default=None, metavar="CMD",
                   help="command that starts the stack, before the common flags "
                        "(default: '<python> -m stack serve')")
    p.add_argument("--stack-args", default="--quiet", metavar="ARGS",
                   help="extra flags for the stack after the common ones (default '--quiet': no "
                        "per-request log lines; pass '' to benchmark with logging)")
    p.add_argument("--profile", type=parse_list(TARGETS), default=[], metavar="LIST",
                   help="sample these targets with py-spy during the download phase "
                        "(e.g. 'stack'); top functions go to the table and JSON, raw "
                        "samples to out/profile-<target>-<mtu>.txt")
    p.add_argument("--profile-gil", action="store_true",
                   help="with --profile: sample only the thread holding the GIL (py-spy --gil), i.e. "
                        "where the one core of Python time goes; default samples every busy thread")
    p.add_argument("--repeat", type=positive(int), default=1, metavar="N",
                   help="run ceiling and stack N times each, alternating (C,S,C,S...), and keep each "
                        "phase's best try (other load on a shared machine only ever slows a run "
                        "down); every try is kept in the JSON (default 1)")
    p.add_argument("--profile-phase", choices=PHASES[:4], default="download",
                   help="which phase --profile samples (default download)")
    p.add_argument("--keep-going", action="store_true",
                   help="when the ceiling fails to start, still run the stack (ratios missing)")
    return p


def finish_args(a) -> None:
    defaults = dict(size=200 * 10**6, conns=2000, clients=100, concurrency_time=5.0, pings=200,
                    time_limit=12.0)
    for k, v in defaults.items():
        if getattr(a, k) is None:
            setattr(a, k, QUICK[k] if a.quick else v)


# ---------------------------------------------------------------- namespace
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
    os.execve(unshare, [unshare, "--net", "--", sys.executable, os.path.abspath(__file__), *argv], env)


def setup_namespace() -> None:
    subprocess.run(["ip", "link", "set", "lo", "up"], capture_output=True)


_libc = None


def _die_with_parent() -> None:  # preexec_fn: children die if the harness is killed
    global _libc
    try:
        _libc = _libc or ctypes.CDLL(None, use_errno=True)
        _libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


# ---------------------------------------------------------------- measurement helpers
def cpu_ticks(pid: int):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime (all threads)
    except (OSError, IndexError, ValueError):
        return None


def machine_ticks():
    with open("/proc/stat") as f:
        vals = [int(x) for x in f.readline().split()[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    return sum(vals), idle


class CpuMeter:
    """Cores used by one process and by the whole machine over a phase."""

    HZ = os.sysconf("SC_CLK_TCK")

    def __init__(self, pid):
        self.pid = pid
        self.t0 = time.monotonic()
        self.p0 = cpu_ticks(pid)
        self.m0 = machine_ticks()

    def done(self) -> dict:
        dt = max(time.monotonic() - self.t0, 1e-9)
        p1 = cpu_ticks(self.pid)
        total1, idle1 = machine_ticks()
        total0, idle0 = self.m0
        out = {}
        if self.p0 is not None and p1 is not None:
            out["server_cpu"] = round((p1 - self.p0) / self.HZ / dt, 2)
        if total1 > total0:
            busy = 1 - (idle1 - idle0) / (total1 - total0)
            out["machine_cores_busy"] = round(busy * (os.cpu_count() or 1), 2)
        return out


def link_counters(dev: str):
    """The TUN's kernel-side counters: tx = kernel -> server, rx = server -> kernel."""
    try:
        r = subprocess.run(["ip", "-j", "-s", "link", "show", "dev", dev], capture_output=True,
                           text=True, timeout=5)
        st = json.loads(r.stdout)[0]["stats64"]
        return {"tx_packets": st["tx"]["packets"], "tx_dropped": st["tx"]["dropped"],
                "rx_packets": st["rx"]["packets"], "rx_dropped": st["rx"]["dropped"]}
    except (OSError, ValueError, KeyError, IndexError, subprocess.SubprocessError):
        return None


def link_delta(before, after) -> dict:
    if not before or not after:
        return {}
    d = {k: after[k] - before[k] for k in before}
    return {"packets_to_server": d["tx_packets"], "packets_from_server": d["rx_packets"],
            "drops_to_server": d["tx_dropped"], "drops_from_server": d["rx_dropped"]}


def percentile(values, q: float):
    if not values:
        return None
    v = sorted(values)
    k = min(len(v) - 1, max(0, int(round(q / 100 * (len(v) - 1)))))
    return v[k]


def r3(x):
    return None if x is None else round(x, 3)


def http_response_done(buf: bytes):
    """(status, complete, keep_alive) for an HTTP/1.x response in buf so far."""
    head, sep, body = buf.partition(b"\r\n\r\n")
    if not sep:
        return None, False, False
    lines = head.split(b"\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        return 0, True, False
    length = None
    keep = lines[0].startswith(b"HTTP/1.1")
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            try:
                length = int(value.strip())
            except ValueError:
                pass
        elif name == b"connection":
            v = value.strip().lower()
            keep = v == b"keep-alive" or (keep and v != b"close")
    if length is None:
        return status, False, False  # ends at EOF
    return status, len(body) >= length, keep


# ---------------------------------------------------------------- phases
def phase_download(a, size: int) -> dict:
    curl = shutil.which("curl")
    if not curl:
        return {"status": "error", "error": "curl not found"}
    cmd = [curl, "-s", "--noproxy", "*", "--http1.1", "-o", "/dev/null", "--max-time", str(a.time_limit),
           "-w", "%{http_code} %{size_download} %{time_total} %{time_connect}",
           f"http://{ADDR}:{HTTP_PORT}/{BIG}"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=a.time_limit + 10)
    try:
        code, got, total, tconn = r.stdout.split()
        got, total, tconn = int(got), float(total), float(tconn)
    except ValueError:
        return {"status": "error", "error": f"curl exit {r.returncode}: {r.stderr.strip() or r.stdout!r}"}
    out = {"bytes": got, "seconds": r3(total), "MBps": r3(got / total / MB) if total > 0 and got else 0.0}
    if r.returncode == 28:
        out["status"] = "truncated"
    elif r.returncode != 0 or code != "200":
        out.update(status="error", error=f"curl exit {r.returncode}, HTTP {code}")
    elif got != size:
        out.update(status="error", error=f"got {got} of {size} bytes")
    else:
        out["status"] = "ok"
    return out


def phase_upload(a, size: int) -> dict:
    chunk = memoryview(bytes(range(256)) * 4096)  # 1 MiB
    t_end = time.monotonic() + a.time_limit
    try:
        s = socket.create_connection((ADDR, DISCARD_PORT), timeout=min(5.0, a.time_limit))
    except OSError as e:
        return {"status": "error", "error": f"connect: {e}"}
    sent = 0
    status = "ok"
    err = None
    t0 = time.perf_counter()
    try:
        s.settimeout(0.25)
        while sent < size:
            if time.monotonic() > t_end:
                status = "truncated"
                break
            try:
                sent += s.send(chunk[: min(len(chunk), size - sent)])
            except socket.timeout:
                continue
        while True:  # wait until the receiver has acknowledged every byte
            unacked = struct.unpack("i", fcntl.ioctl(s, termios.TIOCOUTQ, b"\0" * 4))[0]
            if unacked == 0 or time.monotonic() > t_end:
                break
            time.sleep(0.0005)
        elapsed = time.perf_counter() - t0
        if unacked:
            status = "truncated"
        acked = sent - unacked
    except OSError as e:
        elapsed = time.perf_counter() - t0
        acked, status, err = sent, "error", f"send: {e}"
    finally:
        try:
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        s.close()
    out = {"status": status, "bytes": acked, "seconds": r3(elapsed),
           "MBps": r3(acked / elapsed / MB) if elapsed > 0 else 0.0}
    if err:
        out["error"] = err
    return out


def one_get(path: str, timeout: float):
    s = socket.create_connection((ADDR, HTTP_PORT), timeout=timeout)
    try:
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: bench\r\n\r\n".encode())
        buf = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            buf += d
            status, complete, _ = http_response_done(buf)
            if complete:
                break
        status, complete, _ = http_response_done(buf)
        if status != 200:
            raise OSError(f"HTTP status {status}" if status else "no HTTP response")
        if not buf.endswith(SMALL_BODY):
            raise OSError("wrong body")
    finally:
        s.close()


def phase_connections(a) -> dict:
    lat = []
    errors = 0
    first_error = None
    t_end = time.monotonic() + a.time_limit
    t0 = time.perf_counter()
    attempted = 0
    for _ in range(a.conns):
        if time.monotonic() > t_end:
            break
        attempted += 1
        t = time.perf_counter()
        try:
            one_get("/" + SMALL, timeout=min(2.0, a.time_limit))
            lat.append(time.perf_counter() - t)
        except OSError as e:
            errors += 1
            first_error = first_error or str(e) or type(e).__name__
            if errors >= 20 and not lat:
                break  # nothing works: stop early
    elapsed = time.perf_counter() - t0
    out = {"status": "ok" if attempted == a.conns else "truncated", "attempted": attempted,
           "completed": len(lat), "errors": errors, "seconds": r3(elapsed),
           "conn_per_s": r3(len(lat) / elapsed) if elapsed > 0 else 0.0,
           "p50_ms": r3(percentile(lat, 50) * 1e3) if lat else None,
           "p99_ms": r3(percentile(lat, 99) * 1e3) if lat else None}
    if errors:
        out["first_error"] = first_error
        if not lat:
            out["status"] = "error"
    return out


class _Client:
    __slots__ = ("sock", "buf", "t_req", "state")


def phase_concurrency(a) -> dict:
    """a.clients keep-alive HTTP/1.1 clients in one selector loop for a.concurrency_time s."""
    req = f"GET /{SMALL} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
    sel = selectors.DefaultSelector()
    lat = []
    counts = {"errors": 0, "reconnects": 0, "connects": 0}
    first_error = []

    def fail(c, why):
        counts["errors"] += 1
        if not first_error:
            first_error.append(why)
        close(c)

    def close(c):
        try:
            sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        c.sock.close()
        c.sock = None

    def connect(c):
        s = socket.socket()
        s.setblocking(False)
        err = s.connect_ex((ADDR, HTTP_PORT))
        c.sock, c.buf, c.state = s, b"", "connecting"
        counts["connects"] += 1
        c.t_req = time.perf_counter()
        if err not in (0, 115):  # EINPROGRESS
            fail(c, f"connect: {os.strerror(err)}")
            return
        sel.register(s, selectors.EVENT_WRITE, c)

    def send_request(c):
        c.buf = b""
        c.t_req = time.perf_counter()
        try:
            c.sock.send(req)  # 40 bytes into an empty send buffer: always whole
        except OSError as e:
            fail(c, f"send: {e}")
            return
        c.state = "reading"
        sel.modify(c.sock, selectors.EVENT_READ, c)

    clients = [_Client() for _ in range(a.clients)]
    t_start = time.perf_counter()
    t_stop = t_start + a.concurrency_time
    for c in clients:
        connect(c)
    completed = 0
    while True:
        now = time.perf_counter()
        if now >= t_stop:
            break
        events = sel.select(timeout=min(0.05, t_stop - now))
        for key, mask in events:
            c = key.data
            if c.sock is None:
                continue
            if c.state == "connecting":
                err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    fail(c, f"connect: {os.strerror(err)}")
                    continue
                send_request(c)
                continue
            try:
                d = c.sock.recv(65536)
            except OSError as e:
                fail(c, f"recv: {e}")
                continue
            if not d:
                if c.buf:
                    status, _, _ = http_response_done(c.buf)
                    if status == 200 and c.buf.endswith(SMALL_BODY):
                        lat.append(time.perf_counter() - c.t_req)
                        completed += 1
                        counts["reconnects"] += 1
                        close(c)
                        continue
                fail(c, "connection closed before a response")
                continue
            c.buf += d
            status, complete, keep = http_response_done(c.buf)
            if not complete:
                continue
            if status != 200 or not c.buf.endswith(SMALL_BODY):
                fail(c, f"HTTP status {status}")
                continue
            lat.append(time.perf_counter() - c.t_req)
            completed += 1
            if keep:
                send_request(c)
            else:
                counts["reconnects"] += 1
                close(c)
        # reopen closed clients (server closed, or an error) while time remains
        if time.perf_counter() < t_stop:
            for c in clients:
                if c.sock is None and counts["errors"] < 10 * a.clients:
                    connect(c)
    elapsed = time.perf_counter() - t_start
    stuck = sum(1 for c in clients if c.sock is not None and c.state == "reading"
                and time.perf_counter() - c.t_req > 1.0)
    for c in clients:
        if c.sock is not None:
            close(c)
    sel.close()
    out = {"status": "ok" if completed else "error", "clients": a.clients, "seconds": r3(elapsed),
           "requests": completed, "req_per_s": r3(completed / elapsed), "errors": counts["errors"],
           "stalled_at_end": stuck, "reconnects": counts["reconnects"], "connects": counts["connects"],
           "p50_ms": r3(percentile(lat, 50) * 1e3) if lat else None,
           "p99_ms": r3(percentile(lat, 99) * 1e3) if lat else None}
    if first_error:
        out["first_error"] = first_error[0]
    return out


def phase_ping(a) -> dict:
    ping = shutil.which("ping")
    if not ping:
        return {"status": "error", "error": "ping not found"}
    deadline = int(a.pings * 0.01 + 3)
    cmd = [ping, "-n", "-c", str(a.pings), "-i", "0.01", "-W", "1", "-w", str(deadline), ADDR]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=deadline + 5)
    rtts = []
    for line in r.stdout.splitlines():
        if "time=" in line:
            try:
                rtts.append(float(line.split("time=")[1].split()[0]))
            except (IndexError, ValueError):
                pass
    if not rtts:
        return {"status": "error", "sent": a.pings, "received": 0,
                "error": (r.stderr.strip() or "no replies")[-200:]}
    return {"status": "ok" if len(rtts) == a.pings else "loss", "sent": a.pings, "received": len(rtts),
            "p50_ms": r3(percentile(rtts, 50)), "p99_ms": r3(percentile(rtts, 99)),
            "avg_ms": r3(sum(rtts) / len(rtts)), "min_ms": r3(min(rtts))}


PHASE_SECONDS = {  # worst case, for the budget
    "download": lambda a: a.time_limit + 1,
    "upload": lambda a: a.time_limit + 1,
    "connections": lambda a: a.time_limit + 1,
    "concurrency": lambda a: a.concurrency_time + 2,
    "ping": lambda a: a.pings * 0.011 + 2,
}


# ---------------------------------------------------------------- servers
class Server:
    """A ceiling or stack process serving on its own TUN, with its output collected."""

    def __init__(self, target: str, cmd, tun: str, mtu: int):
        self.target, self.cmd, self.tun, self.mtu = target, cmd, tun, mtu
        self.proc = None
        self.lines = []
        self.ready = threading.Event()
        self.threads = []

    def _reader(self, stream, tag):
        for line in stream:
            self.lines.append((tag, line.rstrip("\n")))
            if tag == "out" and ": serving" in line:
                self.ready.set()

    def start(self, timeout: float) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = REPO + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        try:
            self.proc = subprocess.Popen(self.cmd, cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                         start_new_session=True, preexec_fn=_die_with_parent)
        except OSError as e:
            raise BenchError(f"cannot start {self.cmd[0]}: {e}")
        for stream, tag in ((self.proc.stdout, "out"), (self.proc.stderr, "err")):
            t = threading.Thread(target=self._reader, args=(stream, tag), daemon=True)
            t.start()
            self.threads.append(t)
        t_end = time.monotonic() + timeout
        while not self.ready.wait(0.05):
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
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for t in self.threads:
            t.join(1)

    def stats(self):
        for tag, line in self.lines:
            if line.startswith("ceiling: stats "):
                try:
                    return json.loads(line[len("ceiling: stats "):])
                except ValueError:
                    return None
        return None


def server_cmd(a, target: str, tun: str, mtu: int, root: str):
    common = ["--tun", tun, "--addr", ADDR, "--host-addr", HOST_ADDR, "--mtu", str(mtu),
              "--http", str(HTTP_PORT), "--root", root, "--discard", str(DISCARD_PORT)]
    if target == "ceiling":
        return [sys.executable, os.path.join(REPO, "tools", "ceiling.py"), *common]
    base = shlex.split(a.stack_cmd) if a.stack_cmd else [sys.executable, "-m", "stack", "serve"]
    return [*base, *common, *shlex.split(a.stack_args)]


# ---------------------------------------------------------------- profiling
class Profiler:
    def __init__(self, pid: int, path: str, seconds: float, gil: bool = False):
        self.path = path
        exe = shutil.which("py-spy")
        if not exe:
            cand = os.path.join(os.path.dirname(sys.executable), "py-spy")
            exe = cand if os.path.exists(cand) else None
        if not exe:
            raise BenchError("py-spy not found (pip install py-spy)")
        self.proc = subprocess.Popen(
            [exe, "record", "--pid", str(pid), "--rate", "250", "--format", "raw", "--nonblocking",
             "--duration", str(int(seconds) + 2), "--output", path, *(["--gil"] if gil else [])],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=_die_with_parent)
        time.sleep(0.5)  # let it attach

    def finish(self, top: int = 15) -> dict:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return summarize_profile(self.path, top, err)


_LINENO = re.compile(r":\d+\)$")


def summarize_profile(path: str, top: int, err: str = "") -> dict:
    """Top functions by self and inclusive samples (line numbers merged) from py-spy raw output."""
    self_count, incl_count, total = {}, {}, 0
    try:
        with open(path) as f:
            for line in f:
                stack, _, n = line.rstrip("\n").rpartition(" ")
                try:
                    n = int(n)
                except ValueError:
                    continue
                frames = [_LINENO.sub(")", fr) for fr in stack.split(";")
                          if fr and not fr.startswith(("process ", "thread "))]
                if not frames:
                    frames = ["(no Python frame: native code or thread start)"]
                total += n
                self_count[frames[-1]] = self_count.get(frames[-1], 0) + n
                for fr in set(frames):
                    incl_count[fr] = incl_count.get(fr, 0) + n
    except OSError:
        return {"error": (err or "no profile written").strip()[-300:]}
    if not total:
        return {"error": "no samples", "file": path}

    def ranked(d):
        return [{"function": k, "pct": round(100 * v / total, 1)}
                for k, v in sorted(d.items(), key=lambda kv: -kv[1])[:top]]
    return {"file": os.path.relpath(path, REPO), "samples": total, "self": ranked(self_count),
            "inclusive": ranked(incl_count)}


# ---------------------------------------------------------------- run
def remove_stale_roots(base: str) -> None:
    """Delete file trees left by runs that were SIGKILLed (tsbench-<pid>-*, pid gone)."""
    try:
        names = os.listdir(base)
    except OSError:
        return
    for name in names:
        parts = name.split("-")
        if len(parts) >= 3 and parts[0] == "tsbench" and parts[1].isdigit():
            if not os.path.exists(f"/proc/{parts[1]}"):
                shutil.rmtree(os.path.join(base, name), ignore_errors=True)


def make_root(size: int) -> str:
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    remove_stale_roots(base or tempfile.gettempdir())
    root = tempfile.mkdtemp(prefix=f"tsbench-{os.getpid()}-", dir=base)
    block = os.urandom(1 << 20)
    with open(os.path.join(root, BIG), "wb") as f:
        left = size
        while left:
            n = min(left, len(block))
            f.write(block[:n])
            left -= n
    with open(os.path.join(root, SMALL), "wb") as f:
        f.write(SMALL_BODY)
    return root


def run_target(a, target, mtu, root, tun, t_deadline, profile=True, rep=1) -> dict:
    res = {"target": target, "mtu": mtu, "phases": {}}
    srv = Server(target, server_cmd(a, target, tun, mtu, root), tun, mtu)
    log(f"mtu {mtu}: starting {target} on {tun}")
    try:
        try:
            srv.start(a.startup_timeout)
        except BenchError as e:
            res.update(status="unavailable", reason=str(e))
            log(f"mtu {mtu}: {target} unavailable: {e}")
            return res
        res["status"] = "ok"
        for ph in a.phases:
            if time.monotonic() + PHASE_SECONDS[ph](a) > t_deadline:
                res["phases"][ph] = {"status": "skipped", "error": "run budget (--budget) exhausted"}
                continue
            if not srv.alive():
                res["phases"][ph] = {"status": "error", "error": f"{target} exited: {srv.last_error()}"}
                continue
            prof = None
            if profile and target in a.profile and ph == a.profile_phase:
                os.makedirs(os.path.join(REPO, "out"), exist_ok=True)
                try:
                    prof = Profiler(srv.proc.pid, os.path.join(REPO, "out", f"profile-{target}-{mtu}.txt"),
                                    PHASE_SECONDS[ph](a), a.profile_gil)
                except BenchError as e:
                    res["profile"] = {"error": str(e), "phase": ph}
            meter = CpuMeter(srv.proc.pid)
            link0 = link_counters(tun)
            try:
                out = {"download": lambda: phase_download(a, a.size),
                       "upload": lambda: phase_upload(a, a.size),
                       "connections": lambda: phase_connections(a),
                       "concurrency": lambda: phase_concurrency(a),
                       "ping": lambda: phase_ping(a)}[ph]()
            except (OSError, subprocess.SubprocessError) as e:
                out = {"status": "error", "error": str(e)}
            out.update(meter.done())
            out["link"] = link_delta(link0, link_counters(tun))
            if prof:
                res["profile"] = dict(prof.finish(), phase=ph, gil_only=a.profile_gil)
            res["phases"][ph] = out
            log(f"mtu {mtu}: {target} {ph}: {brief(ph, out)}" + (f" (try {rep})" if a.repeat > 1 else ""))
            time.sleep(0.2)  # let the server settle between phases
    finally:
        srv.stop()
        st = srv.stats()
        if st:
            res["server_stats"] = st
        if res.get("status") == "ok" and srv.proc and srv.proc.returncode not in (0, -signal.SIGTERM):
            res["exit_status"] = srv.proc.returncode
    return res


BEST = {"download": ("MBps", max), "upload": ("MBps", max), "connections": ("conn_per_s", max),
        "concurrency": ("req_per_s", max), "ping": ("p50_ms", min)}


def best_try(ph, tries):
    field, pick = BEST[ph]
    good = [t for t in tries if t.get("status") not in ("error", "skipped") and t.get(field) is not None]
    if not good:
        return tries[-1]
    return pick(good, key=lambda t: t[field])


def merge_tries(results):
    """One result per (target, MTU) from --repeat runs: the best try of each phase, all kept."""
    if len(results) == 1:
        return results[0]
    ok = [r for r in results if r.get("status") == "ok"]
    if not ok:
        return results[0]
    merged = {"target": ok[0]["target"], "mtu": ok[0]["mtu"], "status": "ok", "phases": {},
              "tries": len(results)}
    for ph in ok[0]["phases"]:
        tries = [r["phases"][ph] for r in ok if ph in r["phases"]]
        best = best_try(ph, tries)
        merged["phases"][ph] = dict(best, tries=tries) if len(tries) > 1 else best
    for r in ok:
        if "profile" in r:
            merged["profile"] = r["profile"]
            break
    stats = [r["server_stats"] for r in ok if r.get("server_stats")]
    if stats:
        merged["server_stats"] = stats
    return merged


def brief(ph, out) -> str:
    if out.get("status") in ("error", "skipped"):
        return f"{out['status']}: {out.get('error') or out.get('first_error', '')}"
    v = {"download": lambda o: f"{o['MBps']} MB/s",
         "upload": lambda o: f"{o['MBps']} MB/s",
         "connections": lambda o: f"{o['conn_per_s']} conn/s p50 {o['p50_ms']} ms p99 {o['p99_ms']} ms",
         "concurrency": lambda o: f"{o['req_per_s']} req/s errors {o['errors']}",
         "ping": lambda o: f"p50 {o['p50_ms']} ms p99 {o['p99_ms']} ms"}[ph](out)
    return v + ("" if out.get("status") == "ok" else f" ({out.get('status')})")


METRICS = [  # (key, phase, field, label, higher_is_better)
    ("download_MBps", "download", "MBps", "download MB/s", True),
    ("upload_MBps", "upload", "MBps", "upload MB/s", True),
    ("conn_per_s", "connections", "conn_per_s", "connections /s", True),
    ("conn_p50_ms", "connections", "p50_ms", "  connect+GET p50 ms", False),
    ("conn_p99_ms", "connections", "p99_ms", "  connect+GET p99 ms", False),
    ("req_per_s", "concurrency", "req_per_s", "concurrent req/s", True),
    ("req_errors", "concurrency", "errors", "  errors", False),
    ("req_p50_ms", "concurrency", "p50_ms", "  request p50 ms", False),
    ("req_p99_ms", "concurrency", "p99_ms", "  request p99 ms", False),
    ("ping_p50_ms", "ping", "p50_ms", "ping p50 ms", False),
    ("ping_p99_ms", "ping", "p99_ms", "ping p99 ms", False),
]


def metric_value(run, phase, field):
    if not run or run.get("status") != "ok":
        return None
    ph = run["phases"].get(phase)
    if not ph or ph.get("status") in ("error", "skipped"):
        return None
    return ph.get(field)


def compute_rows(runs, mtus):
    rows = []
    for mtu in mtus:
        byt = {r["target"]: r for r in runs if r["mtu"] == mtu}
        for key, phase, field, label, higher in METRICS:
            c = metric_value(byt.get("ceiling"), phase, field)
            s = metric_value(byt.get("stack"), phase, field)
            if c is None and s is None and not any(phase in (r.get("phases") or {}) for r in byt.values()):
                continue
            ratio = round(s / c, 3) if (c and s is not None and key != "req_errors") else None
            rows.append({"mtu": mtu, "metric": key, "label": label.strip(), "ceiling": c, "stack": s,
                         "ratio": ratio, "higher_is_better": higher})
    return rows


def evaluate_goals(rows):
    idx = {(r["mtu"], r["metric"]): r for r in rows}
    out = []
    for text, mtu, metric, cmp, target in GOALS:
        if metric == "ping_p50_ratio":
            r = idx.get((mtu, "ping_p50_ms"))
            measured = r["ratio"] if r else None
        else:
            r = idx.get((mtu, metric))
            measured = r["stack"] if r else None
        met = None if measured is None else (measured >= target if cmp == ">=" else measured <= target)
        out.append({"goal": text, "mtu": mtu, "metric": metric, "target": target, "measured": measured,
                    "met": met, "ceiling": (r or {}).get("ceiling") if metric != "ping_p50_ratio" else None})
    return out


def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


def render(report) -> str:
    L = []
    m = report["machine"]
    L.append(f"tunstack bench - {report['started_at']} - {m['cpus']} x {m['cpu_model']}, "
             f"Linux {m['kernel']}, Python {m['python']}")
    cfg = report["config"]
    L.append(f"size {cfg['size'] / MB:g} MB, {cfg['conns']} sequential conns, {cfg['clients']} clients x "
             f"{cfg['concurrency_time']:g} s, {cfg['pings']} pings, time limit {cfg['time_limit']:g} s/phase"
             + ("  [--quick]" if cfg["quick"] else ""))
    load = m.get("loadavg_at_start")
    if load and load[0] > 0.7:
        L.append(f"note: load average {load[0]:.2f} at start: other processes share these "
                 f"{m['cpus']} cores, absolute numbers are noisy (ratios of one run less so; try --repeat)")
    L.append("")
    hdr = f"{'MTU':>6}  {'metric':<22}{'ceiling':>12}{'stack':>12}{'stack/ceiling':>15}"
    L.append(hdr)
    L.append("-" * len(hdr))
    notes = {}
    for run in report["runs"]:
        for ph, o in run.get("phases", {}).items():
            if o.get("status") not in ("ok",):
                notes.setdefault((run["mtu"], run["target"], ph), o.get("status"))
    for r in report["rows"]:
        cells = []
        for tgt in ("ceiling", "stack"):
            v = r[tgt]
            run = next((x for x in report["runs"] if x["mtu"] == r["mtu"] and x["target"] == tgt), None)
            phase = next(p for k, p, *_ in METRICS if k == r["metric"])
            if run is None:
                cells.append("-")
            elif run.get("status") != "ok":
                cells.append("unavail.")
            else:
                note = notes.get((r["mtu"], tgt, phase))
                cell = fmt(v)
                if note and note != "ok" and v is not None:
                    cell += "*"
                elif v is None and note:
                    cell = note
                cells.append(cell)
        label = next(l for k, _, _, l, _ in METRICS if k == r["metric"])
        L.append(f"{r['mtu']:>6}  {label:<22}{cells[0]:>12}{cells[1]:>12}{fmt(r['ratio']):>15}")
    L.append("")
    if any("*" in line for line in L):
        L.append("* truncated by --time-limit (rate over the part done), or ping loss; see JSON")
    for run in report["runs"]:
        if run.get("status") != "ok":
            L.append(f"{run['target']} @ MTU {run['mtu']}: {run['status']}: {run.get('reason', '')}")
    L.append("")
    L.append("goals (stack):")
    for g in report["goals"]:
        mark = {True: "MET ", False: "NOT ", None: "n/a "}[g["met"]]
        L.append(f"  {mark} {g['goal']:<46} measured {fmt(g['measured'])}")
    for run in report["runs"]:
        prof = run.get("profile")
        if prof and prof.get("self"):
            L.append("")
            L.append(f"py-spy, {run['target']} @ MTU {run['mtu']} during {prof['phase']} "
                     f"({prof['samples']} samples, {prof['file']}): top self time")
            for e in prof["self"][:12]:
                L.append(f"  {e['pct']:5.1f}%  {e['function']}")
        elif prof:
            L.append(f"py-spy, {run['target']} @ MTU {run['mtu']}: {prof.get('error')}")
    return "\n".join(L)


def machine_info() -> dict:
    model = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = None
    try:
        with open("/proc/meminfo") as f:
            mem = round(int(f.readline().split()[1]) / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    return {"cpus": os.cpu_count(), "cpu_model": model, "kernel": platform.release(),
            "python": platform.python_version(), "mem_gb": mem}


def git_rev():
    try:
        r = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5)
        return r.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def run(a, argv) -> int:
    t_start = time.monotonic()
    t_deadline = t_start + a.budget
    started = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
    setup_namespace()
    load_at_start = os.getloadavg()
    for tool in ("ip",):
        if not shutil.which(tool):
            raise BenchError(f"`{tool}` not found (iproute2)")
    root = make_root(a.size)
    runs = []
    try:
        n = 0
        for mtu in a.mtu:
            per = {t: [] for t in a.targets}
            ceiling_ok = True
            for rep in range(1, a.repeat + 1):  # ceiling, stack, ceiling, stack...: load hits both alike
                for target in a.targets:
                    n += 1
                    tun = f"tsb{os.getpid() % 10**7}{n}"[:15]
                    if target == "stack" and not ceiling_ok and "ceiling" in a.targets and not a.keep_going:
                        if rep == 1:
                            per[target].append({"target": target, "mtu": mtu, "phases": {}, "status": "skipped",
                                                "reason": "ceiling failed (use --keep-going to run anyway)"})
                        continue
                    if rep > 1 and per[target] and per[target][0].get("status") != "ok":
                        continue  # it did not start the first time: do not wait for it again
                    r = run_target(a, target, mtu, root, tun, t_deadline, profile=(rep == 1), rep=rep)
                    if target == "ceiling" and rep == 1 and r.get("status") != "ok":
                        ceiling_ok = False
                    per[target].append(r)
            for target in a.targets:
                runs.append(merge_tries(per[target]))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    rows = compute_rows(runs, a.mtu)
    report = {
        "schema": SCHEMA,
        "started_at": started,
        "duration_s": round(time.monotonic() - t_start, 1),
        "command": ["scripts/bench", *argv],
        "git": git_rev(),
        "machine": dict(machine_info(), loadavg_at_start=load_at_start),
        "config": {"quick": a.quick, "mtus": a.mtu, "targets": a.targets, "phases": a.phases,
                   "size": a.size, "conns": a.conns, "clients": a.clients,
                   "concurrency_time": a.concurrency_time, "pings": a.pings,
                   "time_limit": a.time_limit, "budget": a.budget, "repeat": a.repeat, "address": ADDR,
                   "stack_cmd": server_cmd(a, "stack", "TUN", 0, "ROOT") if "stack" in a.targets else None,
                   "mb": "10**6 bytes", "ratio": "stack / ceiling"},
        "runs": runs,
        "rows": rows,
        "goals": evaluate_goals(rows),
    }
    print(render(report), flush=True)
    path = os.path.abspath(a.json)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    os.replace(path + ".tmp", path)
    log(f"wrote {os.path.relpath(path)} in {report['duration_s']} s")
    ceiling_runs = [r for r in runs if r["target"] == "ceiling"]
    if ceiling_runs and all(r.get("status") != "ok" for r in ceiling_runs):
        return 1
    return 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    a = build_parser().parse_args(argv)
    finish_args(a)
    if a.profile and not a.quick and "download" not in a.phases and a.profile_phase == "download":
        log("note: --profile samples the download phase, which is not selected")
    try:
        ensure_namespace(argv)
        signal.signal(signal.SIGTERM, _interrupt)
        signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored
        return run(a, argv)
    except BenchError as e:
        print(f"bench: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted; servers stopped, namespace goes with this process", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
