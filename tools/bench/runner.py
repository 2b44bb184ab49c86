"""One whole run: the file tree, each target at each MTU (alternating over --repeat), the report."""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from .config import ADDR, BIG, REPO, SCHEMA, SMALL, SMALL_BODY, BenchError
from .idle import phase_idle
from .measure import CpuMeter, link_counters, link_delta
from .netns import setup_namespace
from .ofo import phase_ofo
from .send import phase_send
from .profile import Profiler
from .report import brief, compute_rows, evaluate_goals, merge_tries, render
from .servers import Server, link_names, server_cmd
from .workloads import phase_concurrency, phase_connections, phase_download, phase_ping, phase_upload


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


PHASE_SECONDS = {  # worst case, for the budget
    "download": lambda a: a.time_limit + 1,
    "upload": lambda a: a.time_limit + 1,
    "connections": lambda a: a.time_limit + 1,
    "concurrency": lambda a: a.concurrency_time + 2,
    "ping": lambda a: a.pings * 0.011 + 2,
    "idle": lambda a: 2 * a.time_limit + a.idle_time + 8,
}


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
    os.chmod(root, 0o755)
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


def phases_for(a, target: str, mtu: int):
    """The server phases this target runs at this MTU: idle only for the stack, at the first MTU."""
    return [ph for ph in a.phases if ph in PHASE_SECONDS
            and (ph != "idle" or (target == "stack" and mtu == a.mtu[0]))]


def run_phase(a, ph, srv):
    return {"download": lambda: phase_download(a, a.size),
            "upload": lambda: phase_upload(a, a.size),
            "connections": lambda: phase_connections(a),
            "concurrency": lambda: phase_concurrency(a),
            "ping": lambda: phase_ping(a),
            "idle": lambda: phase_idle(a, srv.proc.pid, srv.link)}[ph]()


def run_target(a, target, mtu, root, n, t_deadline, profile=True, rep=1) -> dict:
    res = {"target": target, "mtu": mtu, "phases": {}}
    link, peer = link_names(n)
    srv = Server(target, server_cmd(a, target, link, mtu, root, peer), link, mtu, peer)
    log(f"mtu {mtu}: starting {target} on {link}")
    try:
        try:
            srv.start(a.startup_timeout)
        except BenchError as e:
            res.update(status="unavailable", reason=str(e))
            log(f"mtu {mtu}: {target} unavailable: {e}")
            return res
        res["status"] = "ok"
        for ph in phases_for(a, target, mtu):
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
            link0 = link_counters(link)
            try:
                out = run_phase(a, ph, srv)
            except (OSError, subprocess.SubprocessError) as e:
                out = {"status": "error", "error": str(e)}
            out.update(meter.done())
            out["link"] = link_delta(link0, link_counters(link))
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


def run_servers(a, root, t_deadline):
    """Every target at every MTU; --repeat alternates them (C, K, S, C, K, S...) so load hits all alike."""
    runs, n = [], 0
    for mtu in a.mtu:
        per = {t: [] for t in a.targets}
        ceiling_ok = True
        for rep in range(1, a.repeat + 1):
            for target in a.targets:
                n += 1
                if target == "stack" and not ceiling_ok and "ceiling" in a.targets and not a.keep_going:
                    if rep == 1:
                        per[target].append({"target": target, "mtu": mtu, "phases": {}, "status": "skipped",
                                            "reason": "ceiling failed (use --keep-going to run anyway)"})
                    continue
                if rep > 1 and per[target] and per[target][0].get("status") != "ok":
                    continue  # it did not start the first time: do not wait for it again
                r = run_target(a, target, mtu, root, n, t_deadline, profile=(rep == 1), rep=rep)
                if target == "ceiling" and rep == 1 and r.get("status") != "ok":
                    ceiling_ok = False
                per[target].append(r)
        for target in a.targets:
            runs.append(merge_tries(per[target]))
    return runs


def run(a, argv) -> int:
    t_start = time.monotonic()
    t_deadline = t_start + a.budget
    started = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
    setup_namespace()
    load_at_start = os.getloadavg()
    if not shutil.which("ip"):
        raise BenchError("`ip` not found (iproute2)")
    root = make_root(a.size)
    try:
        runs = run_servers(a, root, t_deadline)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    ofo = None
    if "ofo" in a.phases:
        log(f"ofo: receive path with {', '.join(map(str, a.ofo_blocks))} out-of-order blocks (virtual time)")
        ofo = phase_ofo(a.ofo_blocks)
    send = None
    if "send" in a.phases:
        log("send: bulk send path, one ACK per 11 data segments (virtual time)")
        send = phase_send()
    rows = compute_rows(runs, a.mtu)
    report = {
        "schema": SCHEMA,
        "started_at": started,
        "duration_s": round(time.monotonic() - t_start, 1),
        "command": ["scripts/bench", *argv],
        "git": git_rev(),
        "machine": dict(machine_info(), loadavg_at_start=load_at_start),
        "config": {"quick": a.quick, "offload": a.offload, "mtus": a.mtu, "targets": a.targets,
                   "phases": a.phases, "size": a.size, "conns": a.conns, "clients": a.clients,
                   "concurrency_time": a.concurrency_time, "pings": a.pings, "idle_conns": a.idle_conns,
                   "idle_time": a.idle_time, "ofo_blocks": a.ofo_blocks,
                   "time_limit": a.time_limit, "budget": a.budget, "repeat": a.repeat, "address": ADDR,
                   "stack_cmd": server_cmd(a, "stack", "TUN", 0, "ROOT") if "stack" in a.targets else None,
                   "kernel_cmd": server_cmd(a, "kernel", "VETH", 0, "ROOT") if "kernel" in a.targets else None,
                   "mb": "10**6 bytes", "ratio": "stack / ceiling and stack / kernel",
                   "repeat_summary": "median"},
        "runs": runs,
        "rows": rows,
        "ofo": ofo,
        "send": send,
        "goals": evaluate_goals(rows, a.offload),
    }
    print(render(report), flush=True)
    write_json(a.json, report)
    log(f"wrote {os.path.relpath(os.path.abspath(a.json))} in {report['duration_s']} s")
    ceiling_runs = [r for r in runs if r["target"] == "ceiling"]
    if ceiling_runs and all(r.get("status") != "ok" for r in ceiling_runs):
        return 1
    return 0


def write_json(path, report) -> None:
    path = os.path.abspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    os.replace(path + ".tmp", path)
