"""From runs to rows, goals, medians of repeated tries, and the table printed at the end."""
from __future__ import annotations

import statistics

from .config import MB

METRICS = [  # (key, phase, field, label, higher_is_better, ratios make sense)
    ("download_MBps", "download", "MBps", "download MB/s", True, True),
    ("upload_MBps", "upload", "MBps", "upload MB/s", True, True),
    ("upload_drops", "upload", "link.drops_to_server", "  link drops", False, False),
    ("conn_per_s", "connections", "conn_per_s", "connections /s", True, True),
    ("conn_p50_ms", "connections", "p50_ms", "  connect+GET p50 ms", False, True),
    ("conn_p99_ms", "connections", "p99_ms", "  connect+GET p99 ms", False, True),
    ("req_per_s", "concurrency", "req_per_s", "concurrent req/s", True, True),
    ("req_errors", "concurrency", "errors", "  errors", False, False),
    ("req_p50_ms", "concurrency", "p50_ms", "  request p50 ms", False, True),
    ("req_p99_ms", "concurrency", "p99_ms", "  request p99 ms", False, True),
    ("ping_p50_ms", "ping", "p50_ms", "ping p50 ms", False, True),
    ("ping_p99_ms", "ping", "p99_ms", "ping p99 ms", False, True),
    ("idle_held", "idle", "held", "idle conns held", True, False),
    ("idle_rss_kib", "idle", "rss_per_conn_kib", "  RSS KiB per conn", False, False),
    ("idle_cpu", "idle", "idle_cpu_held", "  idle CPU, cores", False, False),
    ("idle_wakeups", "idle", "idle_wakeups_per_s_held", "  idle wake-ups /s", False, False),
]
COLUMNS = ("ceiling", "kernel", "stack")

# (text, mode, mtu, metric, what is compared, comparison, target); mode: plain / offload / any
GOALS = [
    ("MTU 1500 download >= 0.6 of the ceiling", "plain", 1500, "download_MBps", "ratio_ceiling", ">=", 0.6),
    ("MTU 1500 upload >= 0.5 of the ceiling", "plain", 1500, "upload_MBps", "ratio_ceiling", ">=", 0.5),
    ("MTU 1500 upload: no TUN drops", "plain", 1500, "upload_drops", "stack", "<=", 0),
    ("MTU 65535 download >= 1 GB/s", "offload", 65535, "download_MBps", "stack", ">=", 1000.0),
    ("MTU 65535 upload >= 1 GB/s", "offload", 65535, "upload_MBps", "stack", ">=", 1000.0),
    ("MTU 65535 download >= 0.5 of the ceiling", "offload", 65535, "download_MBps", "ratio_ceiling", ">=", 0.5),
    ("MTU 65535 upload >= 0.5 of the ceiling", "offload", 65535, "upload_MBps", "ratio_ceiling", ">=", 0.5),
    (">= 2,000 sequential connections/s", "any", 1500, "conn_per_s", "stack", ">=", 2000.0),
    ("sequential conn/s >= 1.0x the kernel", "any", 1500, "conn_per_s", "ratio_kernel", ">=", 1.0),
    ("keep-alive req/s >= 1.0x the kernel", "any", 1500, "req_per_s", "ratio_kernel", ">=", 1.0),
    ("keep-alive request p99 <= 20 ms", "any", 1500, "req_p99_ms", "stack", "<=", 20.0),
    ("ping p50 <= 1.5x the ceiling", "any", 1500, "ping_p50_ms", "ratio_ceiling", "<=", 1.5),
    ("idle conns: RSS <= 20 KiB each", "any", 1500, "idle_rss_kib", "stack", "<=", 20.0),
    ("idle conns: CPU <= 2 % of a core", "any", 1500, "idle_cpu", "stack", "<=", 0.02),
]

PRIMARY = {"download": "MBps", "upload": "MBps", "connections": "conn_per_s",
           "concurrency": "req_per_s", "ping": "p50_ms", "idle": "rss_per_conn_kib"}


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def median_try(ph, tries):
    """The phase's figures as medians over the good tries (the base record: the median try)."""
    good = [t for t in tries if t.get("status") not in ("error", "skipped")]
    if not good:
        return tries[-1]
    field = PRIMARY.get(ph)
    srt = sorted(good, key=lambda t: t.get(field) if _number(t.get(field)) else 0)
    out = dict(srt[(len(srt) - 1) // 2])
    for k, v in out.items():
        vals = [t.get(k) for t in good]
        if _number(v) and all(_number(x) for x in vals):
            m = statistics.median(vals)
            out[k] = round(m, 3) if isinstance(m, float) else m
    return out


def merge_tries(results):
    """One result per (target, MTU) from --repeat runs: each phase's medians, every try kept."""
    if len(results) == 1:
        return results[0]
    ok = [r for r in results if r.get("status") == "ok"]
    if not ok:
        return results[0]
    merged = {"target": ok[0]["target"], "mtu": ok[0]["mtu"], "status": "ok", "phases": {},
              "tries": len(results)}
    for ph in ok[0]["phases"]:
        tries = [r["phases"][ph] for r in ok if ph in r["phases"]]
        merged["phases"][ph] = dict(median_try(ph, tries), tries=tries) if len(tries) > 1 else tries[0]
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
         "ping": lambda o: f"p50 {o['p50_ms']} ms p99 {o['p99_ms']} ms",
         "idle": lambda o: f"{o['held']} held, {o['rss_per_conn_kib']} KiB each, "
                           f"CPU {o['idle_cpu_held']} (empty {o['idle_cpu_empty']}), "
                           f"{o.get('idle_wakeups_per_s_held')} wake-ups/s"}[ph](out)
    return v + ("" if out.get("status") == "ok" else f" ({out.get('status')})")


def metric_value(run, phase, field):
    if not run or run.get("status") != "ok":
        return None
    v = run["phases"].get(phase)
    if not v or v.get("status") in ("error", "skipped"):
        return None
    for part in field.split("."):
        v = v.get(part) if isinstance(v, dict) else None
    return v


def ratio(s, base):
    return round(s / base, 3) if (base and s is not None) else None


def compute_rows(runs, mtus):
    rows = []
    for mtu in mtus:
        byt = {r["target"]: r for r in runs if r["mtu"] == mtu}
        for key, phase, field, label, higher, ratios in METRICS:
            vals = {t: metric_value(byt.get(t), phase, field) for t in COLUMNS}
            if all(v is None for v in vals.values()) and not any(
                    phase in (r.get("phases") or {}) for r in byt.values()):
                continue
            rc = ratio(vals["stack"], vals["ceiling"]) if ratios else None
            rk = ratio(vals["stack"], vals["kernel"]) if ratios else None
            rows.append({"mtu": mtu, "metric": key, "label": label.strip(), **vals,
                         "ratio_ceiling": rc, "ratio_kernel": rk, "ratio": rc, "higher_is_better": higher})
    return rows


def evaluate_goals(rows, offload: bool):
    idx = {(r["mtu"], r["metric"]): r for r in rows}
    mode = "offload" if offload else "plain"
    out = []
    for text, gmode, mtu, metric, what, cmp, target in GOALS:
        if gmode not in ("any", mode):
            continue
        r = idx.get((mtu, metric))
        measured = r[what] if r else None
        met = None if measured is None else (measured >= target if cmp == ">=" else measured <= target)
        out.append({"goal": text, "mode": gmode, "mtu": mtu, "metric": metric, "compared": what,
                    "target": target, "measured": measured, "met": met})
    return out


def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}" if abs(v) < 1000 else f"{v:,.0f}"
    return f"{v:,}" if isinstance(v, int) and abs(v) >= 10000 else str(v)


def _cell(report, r, tgt, notes):
    v = r[tgt]
    run = next((x for x in report["runs"] if x["mtu"] == r["mtu"] and x["target"] == tgt), None)
    phase = next(m[1] for m in METRICS if m[0] == r["metric"])
    if run is None:
        return "-"
    if run.get("status") != "ok":
        return "unavail."
    note = notes.get((r["mtu"], tgt, phase))
    cell = fmt(v)
    if note and note != "ok" and v is not None:
        cell += "*"
    elif v is None and note:
        cell = note
    return cell


def render(report) -> str:
    L = []
    m = report["machine"]
    cfg = report["config"]
    L.append(f"tunstack bench - {report['started_at']} - {m['cpus']} x {m['cpu_model']}, "
             f"Linux {m['kernel']}, Python {m['python']}" + ("  [--offload]" if cfg.get("offload") else ""))
    L.append(f"size {cfg['size'] / MB:g} MB, {cfg['conns']} sequential conns, {cfg['clients']} clients x "
             f"{cfg['concurrency_time']:g} s, {cfg['pings']} pings, {cfg['idle_conns']} idle conns, "
             f"time limit {cfg['time_limit']:g} s/phase"
             + (f", medians of {cfg['repeat']} tries" if cfg["repeat"] > 1 else "")
             + ("  [--quick]" if cfg["quick"] else ""))
    load = m.get("loadavg_at_start")
    if load and load[0] > 0.7:
        L.append(f"note: load average {load[0]:.2f} at start: other processes share these "
                 f"{m['cpus']} cores, absolute numbers are noisy (ratios of one run less so; try --repeat)")
    L.append("")
    hdr = (f"{'MTU':>6}  {'metric':<22}{'ceiling':>11}{'kernel':>11}{'stack':>11}"
           f"{'stack/ceil':>12}{'stack/kern':>12}")
    L.append(hdr)
    L.append("-" * len(hdr))
    notes = {}
    for run in report["runs"]:
        for ph, o in run.get("phases", {}).items():
            if o.get("status") not in ("ok",):
                notes.setdefault((run["mtu"], run["target"], ph), o.get("status"))
    for r in report["rows"]:
        cells = [_cell(report, r, t, notes) for t in COLUMNS]
        label = next(m[3] for m in METRICS if m[0] == r["metric"])
        L.append(f"{r['mtu']:>6}  {label:<22}{cells[0]:>11}{cells[1]:>11}{cells[2]:>11}"
                 f"{fmt(r['ratio_ceiling']):>12}{fmt(r['ratio_kernel']):>12}")
    L.append("")
    if any("*" in line for line in L):
        L.append("* truncated by a time limit (rate over the part done), or ping loss; see JSON")
    for run in report["runs"]:
        if run.get("status") != "ok":
            L.append(f"{run['target']} @ MTU {run['mtu']}: {run['status']}: {run.get('reason', '')}")
    L.extend(render_ofo(report.get("ofo")))
    L.extend(render_send(report.get("send")))
    L.append("")
    L.append("goals (stack):")
    for g in report["goals"]:
        mark = {True: "MET ", False: "NOT ", None: "n/a "}[g["met"]]
        L.append(f"  {mark} {g['goal']:<46} measured {fmt(g['measured'])}")
    L.extend(render_profiles(report["runs"]))
    return "\n".join(L)


def render_ofo(ofo):
    if not ofo:
        return []
    L = ["", "receive path, TCP core in virtual time (Host.receive + take_output), per segment:"]
    if ofo.get("status") == "error" and not ofo.get("rows"):
        return L + [f"  error: {ofo.get('error')}"]
    for r in ofo["rows"]:
        what = "in order (no queue)" if not r["blocks"] else f"{r['blocks']:,} out-of-order blocks"
        L.append(f"  {what:<28}{r['us_per_segment']:>10.1f} us  ({r['vs_in_order']}x in order)"
                 + ("" if r["status"] == "ok" else f"  ERROR {r.get('error')}"))
    bulk = ofo.get("bulk")
    if bulk:  # tools/bench/ofo.py:bulk_in_order, the upload phase's shape
        L.append(f"  {'in order, 1,448 B x ' + str(bulk['batch']) + '/batch':<28}{bulk['us_per_segment']:>10.1f} us"
                 + ("  (GRO)" if bulk.get("gro") else "") + ("" if bulk["status"] == "ok" else f"  ERROR {bulk.get('error')}"))
    return L


def render_send(send):
    if not send:
        return []
    L = ["", f"send path, TCP core in virtual time (ACK in, data out as datagrams; one ACK per "
             f"{send.get('per_ack', '?')} segments), per data segment:"]
    if send.get("status") == "error" and not send.get("rows"):
        return L + [f"  error: {send.get('error')}"]
    for r in send["rows"]:
        what = "timestamps on" if r["timestamps"] else "timestamps off"
        L.append(f"  {what:<28}{r['us_per_segment']:>10.1f} us"
                 + ("" if r["status"] == "ok" else f"  ERROR {r.get('error')}"))
    return L


def render_profiles(runs):
    L = []
    for run in runs:
        prof = run.get("profile")
        if prof and prof.get("self"):
            L.append("")
            L.append(f"py-spy, {run['target']} @ MTU {run['mtu']} during {prof['phase']} "
                     f"({prof['samples']} samples, {prof['file']}): top self time")
            for e in prof["self"][:12]:
                L.append(f"  {e['pct']:5.1f}%  {e['function']}")
        elif prof:
            L.append(f"py-spy, {run['target']} @ MTU {run['mtu']}: {prof.get('error')}")
    return L
