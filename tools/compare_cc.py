#!/usr/bin/env python3
"""Compare Reno, NewReno and CUBIC over a simulated bottleneck: goodput and retransmissions.

Every run is one bulk transfer from host a to host b in the virtual-time simulator
(``stack/sim.py``): two copies of the stack joined by an in-memory link, no threads, no
clock, so a run is exact and the same seed replays the same packets. The data direction
goes through the impairment layer (``stack/link/impair.py``)::

    a --[ random loss -> drop-tail queue -> rate R ]--> delay d --> b
    a <---------------------- delay d --------------------------- b   (ACKs: no loss)

The grid is algorithms x loss rates x one-way delays, each with several seeds. The
queue holds about one bandwidth-delay product (R x 2d, in 1500-byte packets) unless
``--queue`` says otherwise. A run's numbers:

  goodput    transfer size / virtual time from the first byte offered by the sender
             (after the handshake) to the receiver reading the last byte and the FIN
  resent     data segments the sender put on the wire again (no byte above the highest
             sequence number sent before), counted where they enter the link: every
             retransmission, whichever code path sent it
  resent %   resent payload bytes / all payload bytes put on the wire
  stats retrans  the sender's own counter, stats["retrans"], over the transfer; it
             should equal "resent" (see docs/cc-comparison.md where it does not)
  RTOs       retransmission timeouts of the sender (trace "cc" events, why=rto)
  recoveries fast-retransmit recovery episodes (loss recovery's counter)
  mean cwnd  time-weighted mean of the sender's cwnd over the transfer, in segments

The table (Markdown, on stdout) gives the mean over the seeds and, for goodput, the
lowest and highest seed. ``--json FILE`` writes every run and every summary row.
``--plot FILE.png`` draws cwnd over time for each algorithm in one scenario of the grid:
the first non-zero ``--loss`` and the middle ``--delay``, unless ``--plot-loss`` and
``--plot-delay`` say otherwise (needs matplotlib). Runs are spread over ``--jobs`` processes; results do not depend on it.

Examples::

    python3 tools/compare_cc.py                         # the default grid (docs/cc-comparison.md)
    python3 tools/compare_cc.py --loss 1% --delay 25ms --seeds 5 --size 10M
    python3 tools/compare_cc.py --no-sack --json out/cc.json --plot out/cwnd.png
"""
from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from stack.link.impair import Impairment, ImpairSpec  # noqa: E402
from stack.sim import Simulation  # noqa: E402
from stack.tcp import congestion  # noqa: E402
from stack.tcp.config import TcpConfig  # noqa: E402
from stack.tcp.seq import seq_add, seq_gt  # noqa: E402
from stack.trace import Tracer  # noqa: E402
from stack.units import (INFINITE_SSTHRESH, parse_probability, parse_rate, parse_size,  # noqa: E402
                         parse_time)
from stack.wire.tcp import peek_ipv4_tcp  # noqa: E402

ALGORITHMS = ("reno", "newreno", "cubic")
DEFAULTS = dict(algorithms="reno,newreno,cubic", loss="0,0.1%,1%,3%", delay="5ms,25ms,50ms",
                rate="20mbit", queue="1bdp", size="4M", seeds=3, time_limit=600.0)
PACKET = 1500  # bytes per full-size packet on the bottleneck (the sim link's MTU)
MB = 10 ** 6


class UsageError(Exception):
    """A problem with the arguments: one line, no traceback."""


# ---------------------------------------------------------------- arguments
def _bad(what: str, text: str, e: Exception) -> str:
    msg = str(e)
    return f"bad {what}: {msg}" if repr(text) in msg else f"bad {what} {text!r}: {msg}"


def _arg(parse, what):
    def convert(text: str):
        try:
            return parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(_bad(what, text, e)) from None
    convert.__name__ = what
    return convert


def _list(parse, what):
    def convert(text: str):
        items = [t.strip() for t in text.split(",")]
        if not items or any(not t for t in items):
            raise argparse.ArgumentTypeError(f"bad {what} list {text!r}: empty item")
        values = []
        for t in items:
            try:
                values.append(parse(t))
            except ValueError as e:
                raise argparse.ArgumentTypeError(_bad(what, t, e)) from None
        return list(dict.fromkeys(values))  # no duplicates, order kept
    convert.__name__ = what + " list"
    return convert


def parse_algorithm(text: str) -> str:
    name = text.strip().lower()
    known = tuple(congestion.ALGORITHMS)
    if name not in known:
        raise ValueError(f"unknown algorithm (one of {', '.join(known)})")
    return name


def parse_queue(text: str):
    """``1bdp`` / ``0.5bdp`` (multiple of the BDP) -> ("bdp", x); ``50`` -> ("packets", 50)."""
    t = text.strip().lower()
    try:
        if t.endswith("bdp"):
            x = float(t[:-3] or 1)
            kind = "bdp"
        else:
            x = int(t.removesuffix("p"))
            kind = "packets"
    except ValueError:
        raise ValueError("write a packet count (50) or a multiple of the BDP (1bdp, 0.5bdp)") from None
    if x <= 0:
        raise ValueError("queue must be positive")
    return kind, x


def positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise ValueError("not an integer") from None
    if n < 1:
        raise ValueError("must be at least 1")
    return n


def positive_float(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise ValueError("not a number") from None
    if not x > 0 or math.isinf(x):
        raise ValueError("must be a positive number")
    return x


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="compare_cc.py",
        description="Compare congestion control algorithms (goodput, retransmissions, cwnd) "
                    "over a simulated bottleneck in virtual time: every combination of "
                    "algorithm x loss x one-way delay, each with several seeds. Prints a "
                    "Markdown table (mean over seeds; goodput also min-max).",
        epilog="The data direction gets random loss, then a drop-tail queue and the rate "
               "limit, then the delay; ACKs get only the delay. Goodput = size / virtual "
               "time from the first byte sent to the receiver reading the FIN. "
               "Example: %(prog)s --loss 1%% --delay 25ms --seeds 5 --json out/cc.json",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = p.add_argument_group("the grid")
    g.add_argument("--algorithms", "--cc", type=_list(parse_algorithm, "algorithm"),
                   default=DEFAULTS["algorithms"], metavar="LIST",
                   help="comma-separated congestion control algorithms")
    g.add_argument("--loss", type=_list(parse_probability, "loss"), default=DEFAULTS["loss"],
                   metavar="LIST", help="comma-separated random loss rates of the data direction "
                                        "(1%%, 0.01 and 0 all work)")
    g.add_argument("--delay", type=_list(parse_time, "delay"), default=DEFAULTS["delay"],
                   metavar="LIST", help="comma-separated one-way propagation delays (RTT = 2 x delay "
                                        "+ queueing)")
    g.add_argument("--seeds", type=_arg(positive_int, "seed count"), default=DEFAULTS["seeds"],
                   metavar="N", help="runs per cell, with seeds 1..N (loss pattern, ISNs); "
                                     "cells without loss run once, seeds cannot change them")
    g.add_argument("--size", type=_arg(parse_size, "size"), default=DEFAULTS["size"],
                   metavar="BYTES", help="bytes per transfer (k, M, G = 10^3, 10^6, 10^9)")
    g.add_argument("--no-sack", dest="sack", action="store_false",
                   help="turn SACK off on both hosts (default: on; recovery then uses "
                        "duplicate ACKs only, and Reno/NewReno differ most)")
    b = p.add_argument_group("the bottleneck")
    b.add_argument("--rate", type=_arg(parse_rate, "rate"), default=DEFAULTS["rate"],
                   metavar="RATE", help="bottleneck rate (10mbit, 1gbit, 2MB/s)")
    b.add_argument("--queue", type=_arg(parse_queue, "queue"), default=DEFAULTS["queue"],
                   metavar="Q", help="drop-tail queue: packets (50) or a multiple of the "
                                     "bandwidth-delay product rate x 2 x delay (1bdp, 0.5bdp)")
    r = p.add_argument_group("running")
    r.add_argument("--jobs", "-j", type=_arg(positive_int, "job count"), default=os.cpu_count() or 1,
                   metavar="N", help="worker processes")
    r.add_argument("--time-limit", type=_arg(positive_float, "time limit"),
                   default=DEFAULTS["time_limit"], metavar="SECONDS",
                   help="virtual seconds a transfer may take before it is reported as incomplete")
    r.add_argument("--no-cwnd", dest="cwnd", action="store_false",
                   help="skip the mean-cwnd column (saves the trace overhead, ~10-20%%)")
    r.add_argument("--verbose", "-v", action="store_true", help="one line per run on stderr")
    o = p.add_argument_group("output")
    o.add_argument("--json", metavar="FILE", help="also write all runs and the summary as JSON")
    o.add_argument("--plot", metavar="FILE.png",
                   help="draw cwnd over time for every algorithm in one scenario (matplotlib)")
    o.add_argument("--plot-loss", type=_arg(parse_probability, "loss"), default=None,
                   metavar="P", help="loss rate of the plotted scenario (default: the first "
                   "non-zero --loss value, so '--loss 1%%' plots 1%%)")
    o.add_argument("--plot-delay", type=_arg(parse_time, "delay"), default=None,
                   metavar="T", help="one-way delay of the plotted scenario (default: the middle "
                   "--delay value)")
    o.add_argument("--plot-seed", type=_arg(positive_int, "seed"), default=1, metavar="N",
                   help="seed of the plotted scenario")
    return p


# ---------------------------------------------------------------- one run
@dataclass(frozen=True)
class Scenario:
    algorithm: str
    loss: float
    delay: float
    seed: int
    size: int
    rate: float
    queue: int          # packets
    sack: bool = True
    time_limit: float = 600.0

    def spec(self) -> str:
        return f"rate={self.rate:g}bit,queue={self.queue},loss={self.loss:.6g}"


def queue_packets(queue, rate: float, delay: float) -> int:
    kind, x = queue
    if kind == "packets":
        return int(x)
    bdp = rate * 2 * delay / 8 / PACKET
    return max(2, round(x * bdp))


class _CwndRecorder:
    """Trace sink: the sender's cwnd as a step function of time (and the events we count).

    The sender's cwnd is read from the connection itself at each of its trace events, so
    changes the congestion control does not trace (Reno's inflation per duplicate ACK)
    are caught at the sender's next event.
    """

    def __init__(self, keep_series: bool = False):
        self.conn = None       # the sender's Connection, once known
        self.name = None
        self.t0 = None
        self.last_t = None
        self.last_cwnd = None
        self.area = 0.0
        self.rtos = 0
        self.rto_times: list[float] = []
        self.keep_series = keep_series
        self.series: list[tuple[float, int, int]] = []  # (t, cwnd, ssthresh)

    def start(self, conn, now: float) -> None:
        self.conn, self.name = conn, conn.name
        self.t0 = self.last_t = now
        self.last_cwnd = conn.cc.cwnd
        self._keep(now)

    def _keep(self, t: float) -> None:
        if self.keep_series:
            self.series.append((t, self.conn.cc.cwnd, self.conn.cc.ssthresh))

    def __call__(self, record: dict) -> None:
        if self.conn is None or record.get("conn") != self.name:
            return
        t = record["t"]
        if t < self.last_t:  # the tracer rounds times to the microsecond
            t = self.last_t
        self.area += self.last_cwnd * (t - self.last_t)
        self.last_t, self.last_cwnd = t, self.conn.cc.cwnd
        if record["ev"] == "cc" and record.get("why") == "rto":
            self.rtos += 1
            self.rto_times.append(t)
        self._keep(t)

    def mean(self, now: float) -> float | None:
        if self.t0 is None or now <= self.t0:
            return None
        area = self.area + self.last_cwnd * max(0.0, now - self.last_t)
        return area / (now - self.t0)


class _WireCounter(Impairment):
    """The data direction's impairment, counting on the way in what the sender really put on
    the wire: data segments, and resent ones (no byte above the highest sequence sent so far).

    This is the ground truth for "retransmissions": it sees go-back-N resends after an RTO
    whichever code path sent them."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.data_segs = self.resent_segs = self.resent_bytes = self.payload_bytes = 0
        self._high = None

    def offer(self, packet: bytes, now: float) -> None:
        info = peek_ipv4_tcp(packet)
        if info is not None and info.paylen:
            self.data_segs += 1
            self.payload_bytes += info.paylen
            end = seq_add(info.seq, info.paylen)
            if self._high is None or seq_gt(end, self._high):
                self._high = end
            else:
                self.resent_segs += 1
                self.resent_bytes += info.paylen
        super().offer(packet, now)

    def reset_counts(self) -> None:
        self.data_segs = self.resent_segs = self.resent_bytes = self.payload_bytes = 0


def run_one(s: Scenario, trace: bool = True, keep_series: bool = False) -> dict:
    """One transfer; a dict of results. Never raises for a stack problem: status says it."""
    wall = time.perf_counter()
    out = dict(asdict(s), status="ok", error=None)
    rec = _CwndRecorder(keep_series)
    tracer = Tracer(rec) if trace else None
    try:
        cfg = TcpConfig(congestion=s.algorithm, sack=s.sack)
        kw = dict(tracer=tracer) if tracer is not None else {}
        wire = _WireCounter(ImpairSpec.parse(s.spec()), seed=s.seed * 2 + 1, direction="ab")
        sim = Simulation(seed=s.seed, delay=s.delay, config_a=cfg, config_b=cfg, impair_ab=wire, **kw)
        lst = sim.listen(sim.b, 80)
        a = sim.connect(sim.a, 80)
        if not sim.run(until=s.time_limit, condition=lambda: lst.readable or a.error) or a.error:
            raise _RunFailed("handshake", f"handshake did not complete in {s.time_limit:g} s")
        b = lst.accept()
        data = random.Random(s.seed).randbytes(s.size)
        before = dict(a.stats)
        rtx_before = a.recovery.fast_retransmits
        t0 = sim.now
        wire.reset_counts()
        rec.start(a, t0)
        got = sim.transfer(sim.a, a, sim.b, b, data, until=t0 + s.time_limit)
        t1 = sim.now
        elapsed = t1 - t0
        if a.error or b.error:
            out.update(status="error", error=f"connection error: {a.error or b.error}")
        elif len(got) < len(data) or not b.at_eof:
            out.update(status="incomplete",
                       error=f"{len(got)} of {len(data)} bytes after {s.time_limit:g} virtual s")
        elif got != data:
            out.update(status="corrupt", error="received bytes differ from the bytes sent")
        st = {k: a.stats[k] - before.get(k, 0) for k in ("retrans", "retrans_bytes", "bytes_out",
                                                          "segs_out", "dupacks_in")}
        mss = a.eff_mss
        mean_cwnd = rec.mean(t1) if trace else None
        out.update(
            seconds=elapsed,
            received=len(got),
            goodput_Bps=len(got) / elapsed if elapsed > 0 else 0.0,
            retrans=wire.resent_segs,
            retrans_bytes=wire.resent_bytes,
            retrans_pct=100.0 * wire.resent_bytes / wire.payload_bytes if wire.payload_bytes else 0.0,
            data_segs=wire.data_segs,
            stats_retrans=st["retrans"],
            stats_retrans_bytes=st["retrans_bytes"],
            segs_out=st["segs_out"],
            dupacks_in=st["dupacks_in"],
            recoveries=a.recovery.fast_retransmits - rtx_before,
            rtos=rec.rtos if trace else None,
            mss=mss,
            mean_cwnd_segs=mean_cwnd / mss if mean_cwnd is not None else None,
            impair_stats=dict(wire.stats),  # the whole connection's, handshake included
            steps=sim.steps,
        )
    except _RunFailed as e:
        out.update(status=e.status, error=e.message)
    except Exception as e:  # a stack bug: report it in the table, not as a traceback
        out.update(status="error", error=f"{type(e).__name__}: {e}")
    out["wall_seconds"] = time.perf_counter() - wall
    if keep_series:
        out["series"], out["rto_times"] = rec.series, rec.rto_times
    return out


class _RunFailed(Exception):
    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def _run_traced(s: Scenario) -> dict:
    return run_one(s, trace=True)


def _run_untraced(s: Scenario) -> dict:
    return run_one(s, trace=False)


# ---------------------------------------------------------------- the grid
def scenarios(args) -> list[Scenario]:
    out = []
    for delay in args.delay:
        q = queue_packets(args.queue, args.rate, delay)
        for loss in args.loss:
            # without random loss the seed changes only the ISNs and the payload, not one
            # packet's fate or timing: one run says it all (and these runs are the slowest)
            seeds = range(1, 2 if loss == 0 else args.seeds + 1)
            for alg in args.algorithms:
                for seed in seeds:
                    out.append(Scenario(alg, loss, delay, seed, args.size, args.rate, q,
                                        args.sack, args.time_limit))
    return out


def run_grid(scns: list[Scenario], jobs: int, trace: bool, progress=None) -> list[dict]:
    fn = _run_traced if trace else _run_untraced
    results: list[dict] = []
    if jobs <= 1 or len(scns) <= 1:
        for i, s in enumerate(scns):
            results.append(fn(s))
            if progress:
                progress(i + 1, len(scns), results[-1])
        return results
    # longest runs first (long delay, low loss: big windows, big SACK scoreboards), so the
    # pool does not end waiting on one straggler
    order = sorted(range(len(scns)), key=lambda i: (-scns[i].delay, scns[i].loss))
    by_index: dict[int, dict] = {}
    pool = ProcessPoolExecutor(max_workers=min(jobs, len(scns)), initializer=_quiet_worker)
    try:
        futures = {i: pool.submit(fn, scns[i]) for i in order}
        done = 0
        for i in order:
            try:
                by_index[i] = futures[i].result()
            except Exception as e:  # the worker died (killed, out of memory): say so, go on
                by_index[i] = dict(asdict(scns[i]), status="error", wall_seconds=0.0,
                                   error=f"worker failed: {type(e).__name__}: {e}")
            done += 1
            if progress:
                progress(done, len(scns), by_index[i])
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return [by_index[i] for i in range(len(scns))]


def _quiet_worker() -> None:
    """Workers leave Ctrl-C to the parent, which reports it in one line."""
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _mean(xs):
    xs = [x for x in xs if x is not None]
    return statistics.fmean(xs) if xs else None


def summarize(results: list[dict]) -> list[dict]:
    cells: dict[tuple, list[dict]] = {}
    for r in results:
        cells.setdefault((r["delay"], r["loss"], r["algorithm"]), []).append(r)
    rows = []
    for (delay, loss, alg), runs in cells.items():
        ok = [r for r in runs if r["status"] == "ok"]
        gp = [r["goodput_Bps"] for r in ok]
        rows.append(dict(
            delay=delay, loss=loss, algorithm=alg, queue=runs[0]["queue"], rate=runs[0]["rate"],
            runs=len(runs), ok=len(ok),
            problems=[f"seed {r['seed']}: {r['status']}: {r['error']}" for r in runs if r["status"] != "ok"],
            goodput_Bps=_mean(gp), goodput_min_Bps=min(gp) if gp else None,
            goodput_max_Bps=max(gp) if gp else None,
            seconds=_mean([r["seconds"] for r in ok]),
            retrans=_mean([r["retrans"] for r in ok]),
            stats_retrans=_mean([r["stats_retrans"] for r in ok]),
            retrans_pct=_mean([r["retrans_pct"] for r in ok]),
            rtos=_mean([r["rtos"] for r in ok]),
            recoveries=_mean([r["recoveries"] for r in ok]),
            mean_cwnd_segs=_mean([r["mean_cwnd_segs"] for r in ok]),
            wall_seconds=sum(r["wall_seconds"] for r in runs),
        ))
    return rows


# ---------------------------------------------------------------- output
def _pct(p: float) -> str:
    return f"{p * 100:g}%"


def _ms(t: float) -> str:
    return f"{t * 1000:g} ms"


def _num(x, fmt: str, none: str = "–") -> str:
    return none if x is None else format(x, fmt)


def markdown_table(rows: list[dict], cwnd: bool = True) -> str:
    head = ["one-way delay", "loss", "algorithm", "goodput Mbit/s (min–max)", "% of link",
            "resent segs", "resent %", "stats retrans", "RTOs", "recoveries"]
    if cwnd:
        head.append("mean cwnd (segs)")
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 3 + ["---:"] * (len(head) - 3)) + "|"]
    notes = []
    for r in rows:
        mbit = lambda bps: bps * 8 / 1e6  # noqa: E731
        if r["goodput_Bps"] is None:
            gp, link = "**failed**", "–"
        else:
            gp = (f"{mbit(r['goodput_Bps']):.2f} ({mbit(r['goodput_min_Bps']):.2f}–"
                  f"{mbit(r['goodput_max_Bps']):.2f})")
            link = f"{100 * r['goodput_Bps'] * 8 / r['rate']:.0f}"
        if r["problems"]:
            notes.extend(f"{_ms(r['delay'])}, loss {_pct(r['loss'])}, {r['algorithm']}, {p}"
                         for p in r["problems"])
            gp += f" ({r['ok']}/{r['runs']} ok)"
        cells = [_ms(r["delay"]) + f" (q {r['queue']})", _pct(r["loss"]), r["algorithm"], gp, link,
                 _num(r["retrans"], ".1f"), _num(r["retrans_pct"], ".2f"), _num(r["stats_retrans"], ".1f"),
                 _num(r["rtos"], ".1f"),
                 _num(r["recoveries"], ".1f")]
        if cwnd:
            cells.append(_num(r["mean_cwnd_segs"], ".1f"))
        lines.append("| " + " | ".join(cells) + " |")
    if notes:
        lines.append("")
        lines.append("Runs that did not finish cleanly (left out of the means):")
        lines.extend(f"- {n}" for n in notes)
    return "\n".join(lines)


def plot_cwnd(path: str, series: dict[str, dict], title: str) -> None:
    """One panel per algorithm (they overlap too much on one): cwnd and ssthresh in segments,
    with the path's capacity (BDP + queue) and the RTOs marked."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(series)
    fig, axes = plt.subplots(n, 1, figsize=(10, 2.6 * n + 0.6), sharex=True, squeeze=False)
    ymax = 10.0
    for r in series.values():
        for _, c, _ in r["series"]:
            ymax = max(ymax, c / (r.get("mss") or 1448))
    for ax, (alg, r) in zip(axes[:, 0], series.items()):
        pts, mss = r["series"], r.get("mss") or 1448
        bdp = r["rate"] * 2 * r["delay"] / 8 / PACKET
        if pts:
            t0 = pts[0][0]
            ts = [t - t0 for t, _, _ in pts] + [r.get("seconds") or pts[-1][0] - t0]
            cw = [c / mss for _, c, _ in pts] + [pts[-1][1] / mss]
            ax.step(ts, cw, where="post", color="C0", linewidth=1.2, label="cwnd")
            ss = [(t - t0, s / mss) for t, _, s in pts if s < INFINITE_SSTHRESH]
            if ss:
                ax.step([t for t, _ in ss], [s for _, s in ss], where="post", color="C1",
                        linestyle=":", linewidth=1.2, label="ssthresh")
            for t in r.get("rto_times", []):
                ax.axvline(t - t0, color="C3", linewidth=0.8, alpha=0.7)
        ax.axhline(bdp + r["queue"], color="grey", linestyle="--", linewidth=0.8,
                   label=f"BDP + queue ({bdp + r['queue']:.0f})")
        ax.axhline(bdp, color="grey", linestyle=":", linewidth=0.8, label=f"BDP ({bdp:.0f})")
        gp = r.get("goodput_Bps")
        what = f"{gp * 8 / 1e6:.2f} Mbit/s, {r.get('retrans')} resent, {r.get('rtos')} RTO (red)" \
            if gp else r["status"]
        ax.set_title(f"{alg}: {what}", fontsize=9, loc="left")
        ax.set_ylabel("segments")
        ax.set_ylim(0, ymax * 1.05)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right", fontsize=7)
    axes[-1, 0].set_xlabel("virtual time since the first byte (s)")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------- main
def provenance() -> str:
    """The commit the stack came from, and whether stack/ differs from it (results follow the code)."""
    import subprocess
    try:
        head = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--", "stack"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown commit"
    if not head:
        return "unknown commit"
    return f"commit {head}" + (" + uncommitted changes in stack/" if dirty else "")


def plot_scenario(args) -> tuple[float, float]:
    """(loss, delay) of the ``--plot`` scenario: ``--plot-loss``/``--plot-delay`` when given,
    else one the table ran: the first non-zero ``--loss`` and the middle ``--delay``."""
    loss = args.plot_loss
    if loss is None:
        loss = next((x for x in args.loss if x > 0), args.loss[0])
    delay = args.plot_delay if args.plot_delay is not None else args.delay[len(args.delay) // 2]
    return loss, delay


def _check_writable(path: str, what: str) -> None:
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise UsageError(f"{what} {path!r}: directory {d!r} does not exist")
    if os.path.isdir(path):
        raise UsageError(f"{what} {path!r} is a directory")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # argparse applies type= to string defaults too, so every field is parsed here
    try:
        if args.json:
            _check_writable(args.json, "--json")
        if args.plot:
            _check_writable(args.plot, "--plot")
            try:
                import matplotlib  # noqa: F401
            except ImportError:
                raise UsageError("--plot needs matplotlib (pip install matplotlib)") from None
    except UsageError as e:
        parser.error(str(e))

    scns = scenarios(args)

    def progress(done, total, r):
        if args.verbose:
            gp = f"{r['goodput_Bps'] * 8 / 1e6:.2f} Mbit/s" if r.get("goodput_Bps") else r["status"]
            print(f"[{done}/{total}] {r['algorithm']:8} loss {_pct(r['loss']):5} delay "
                  f"{_ms(r['delay']):6} seed {r['seed']}: {gp}, {r.get('retrans', '-')} retrans, "
                  f"{r['wall_seconds']:.1f} s real", file=sys.stderr, flush=True)

    prov = provenance()
    wall = time.perf_counter()
    results = run_grid(scns, args.jobs, args.cwnd, progress)
    rows = summarize(results)
    wall = time.perf_counter() - wall

    q = args.queue
    qtext = f"{q[1]:g} x BDP" if q[0] == "bdp" else f"{q[1]} packets"
    print(f"Bottleneck {args.rate / 1e6:g} Mbit/s, drop-tail queue {qtext} (packets per row), "
          f"{args.size / MB:g} MB per transfer, seeds 1-{args.seeds}, "
          f"SACK {'on' if args.sack else 'off'}; loss on the data direction only; {prov}.\n")
    print(markdown_table(rows, args.cwnd))
    bad = sum(1 for r in results if r["status"] != "ok")
    print(f"\n{len(results)} transfers in {wall:.1f} s real time ({args.jobs} jobs)"
          + (f"; {bad} did not finish cleanly" if bad else ""))

    if args.plot:
        args.plot_loss, args.plot_delay = plot_scenario(args)
        title = (f"cwnd, loss {_pct(args.plot_loss)}, one-way delay {_ms(args.plot_delay)}, "
                 f"{args.rate / 1e6:g} Mbit/s, queue {queue_packets(args.queue, args.rate, args.plot_delay)}"
                 f" pkts, {args.size / MB:g} MB, seed {args.plot_seed}, SACK {'on' if args.sack else 'off'}")
        series = {}
        for alg in args.algorithms:
            s = Scenario(alg, args.plot_loss, args.plot_delay, args.plot_seed, args.size, args.rate,
                         queue_packets(args.queue, args.rate, args.plot_delay), args.sack, args.time_limit)
            series[alg] = run_one(s, trace=True, keep_series=True)
        try:
            plot_cwnd(args.plot, series, title)
        except OSError as e:
            print(f"compare_cc.py: error: cannot write --plot {args.plot!r}: {e.strerror}", file=sys.stderr)
            return 1
        print(f"cwnd plot: {args.plot}")

    if args.json:
        import json
        doc = dict(
            params=dict(algorithms=args.algorithms, loss=args.loss, delay=args.delay, rate=args.rate,
                        queue=list(args.queue), size=args.size, seeds=args.seeds, sack=args.sack,
                        time_limit=args.time_limit),
            provenance=prov, wall_seconds=wall, summary=rows, runs=results)
        try:
            with open(args.json, "w") as f:
                json.dump(doc, f, indent=1)
                f.write("\n")
        except OSError as e:
            print(f"compare_cc.py: error: cannot write --json {args.json!r}: {e.strerror}", file=sys.stderr)
            return 1
    return 1 if bad else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("compare_cc.py: interrupted", file=sys.stderr)
        sys.exit(130)
