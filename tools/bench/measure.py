"""What the harness reads around a phase: CPU, memory, link counters, percentiles, HTTP framing."""
from __future__ import annotations

import json
import os
import subprocess
import time


def cpu_ticks(pid: int):
    """(user, system) clock ticks of ``pid``, all threads, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]), int(fields[12])  # utime, stime
    except (OSError, IndexError, ValueError):
        return None


def context_switches(pid: int) -> dict[str, int] | None:
    """Voluntary + involuntary context switches of each thread of ``pid`` (its wake-ups), by thread id,
    or None. Compare two samples with ``switches_between``: threads come and go."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    out = {}
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                out[tid] = sum(int(line.split()[1]) for line in f
                               if line.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")))
        except (OSError, ValueError, IndexError):
            pass  # a thread that ended meanwhile
    return out


def switches_between(before: dict[str, int], after: dict[str, int]) -> int:
    """Context switches between two samples: each thread alive at the end, from its count at the start
    (0 if it is new). A thread that ended in between is not counted (a pool worker retiring), so the
    figure is a lower bound, never negative."""
    return sum(n - before.get(tid, 0) for tid, n in after.items())


def rss_kib(pid: int):
    """Resident set size of ``pid`` in KiB (VmRSS), or None."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
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
            user, system = ((b - a) / self.HZ / dt for a, b in zip(self.p0, p1))
            out["server_cpu"] = round(user + system, 3)
            out["server_sys"] = round(system, 3)  # of which in the kernel (a TUN write runs its receive path)
        if total1 > total0:
            busy = 1 - (idle1 - idle0) / (total1 - total0)
            out["machine_cores_busy"] = round(busy * (os.cpu_count() or 1), 2)
        return out


def link_counters(dev: str):
    """A link's kernel-side counters: tx = kernel -> server, rx = server -> kernel."""
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
