#!/usr/bin/env python3
"""Regenerate every picture in docs/img from seeded simulator runs, so none can go stale.

    python3 tools/figures.py                 # all pictures: docs/img/NAME.png + NAME.json
    python3 tools/figures.py cwnd window     # only these
    python3 tools/figures.py --check         # recompute the data only; exit 1 if a picture is stale
    python3 tools/figures.py --list

Each picture is drawn from a run of the simulator (virtual time, fixed seeds: the same
code gives the same packets). Beside each PNG the script writes NAME.json: the run's
parameters, the figures a document may quote (``summary``) and the sha256 of the data the
picture plots (``data_sha256``). PNG bytes change with matplotlib and freetype versions;
the plotted data does not, so ``--check`` (and tests/test_figures.py) regenerate the data,
not the image, and compare it with the committed JSON: change the stack so that a
picture would show something else, and the test fails until the picture is remade.

To add a picture for a lab: add a function to FIGURES below (a run, the data it plots,
how to draw it), run this script, embed ``![what it shows](../img/NAME.png)`` in the lab
and commit the PNG with its JSON.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sys
import tempfile
from typing import Callable

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from stack.ladder import ladder_rows  # noqa: E402
from stack.pcap import read_pcap  # noqa: E402
from stack.plot import (DEMO_IMPAIR, cwnd_data, cwnd_plot, ladder_picture, language, read_trace,  # noqa: E402
                        record_demo, time_sequence, time_sequence_data, window_at, window_diagram)

IMG = os.path.join(REPO, "docs", "img")


@dataclasses.dataclass
class Figure:
    """One picture: ``make(workdir)`` runs the simulator and returns (run parameters,
    the plotted data as JSON-able values, figures worth quoting, draw(png_path))."""
    name: str
    what: str
    make: Callable
    lang: str = "en"   # labels: "zh" draws them in Chinese (needs a CJK font), for the Chinese labs


def _plain(obj):
    """Dataclasses, tuples and floats as stable JSON values (floats to 1 µs / 6 digits)."""
    if dataclasses.is_dataclass(obj):
        return {k: _plain(v) for k, v in dataclasses.asdict(obj).items()}
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, float):
        return round(obj, 6)
    return obj


def digest(data) -> str:
    text = json.dumps(_plain(data), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


# ---------------------------------------------------------------- the runs
DEMO = dict(impair=DEMO_IMPAIR, size=1_000_000, delay=0.020, congestion="newreno", sack=True,
            rcvbuf=384 * 1024, seed=1)
LADDER = dict(impair="rate=2mbit,drop=data:5", size=10 * 1448, delay=0.010, congestion="newreno",
              sack=True, rcvbuf=384 * 1024, seed=1)
WINDOW = dict(impair="rate=4mbit,drop=data:12", size=60 * 1448, delay=0.010, congestion="newreno",
              sack=True, rcvbuf=20_000, seed=1)
WINDOW_AT = 0.135   # seconds: in SACK recovery, the hole's retransmission in flight
ZOOM = (0.28, 0.53)  # the loss and the SACK recovery of the demo run


_runs: dict[tuple, tuple[str, str]] = {}


def _record(workdir: str, params: dict) -> tuple[str, str]:
    """Record a run once per process: (pcap, trace)."""
    key = tuple(sorted(params.items()))
    if key not in _runs:
        stem = os.path.join(workdir, f"run{len(_runs)}")
        run = record_demo(stem + ".pcap", stem + ".jsonl", **params)
        if not run.intact:
            raise RuntimeError(f"the run {params} did not deliver its data intact")
        _runs[key] = (stem + ".pcap", stem + ".jsonl")
    return _runs[key]


def _timeseq(zoom):
    def make(workdir):
        pcap, _ = _record(workdir, DEMO)
        ts = time_sequence_data(pcap)
        lo, hi = zoom or (None, None)
        shown = [s for s in ts.segments if s.length and (zoom is None or lo <= s.t <= hi)]
        data = dict(segments=ts.segments, acks=ts.acks, range=zoom)
        summary = dict(segments=sum(1 for s in ts.segments if s.length),  # data segments, as drawn
                       retransmitted=len(ts.retransmissions),
                       shown=len(shown), bytes_acked=ts.bytes_acked)
        return DEMO, data, summary, lambda png: time_sequence(pcap, png, None, lo, hi)
    return make


def _cwnd(workdir):
    _, trace = _record(workdir, DEMO)
    cw = cwnd_data(trace)
    rto = [m for m in cw.retransmits if m.kind in ("rto", "rto_syn")]
    data = dict(cc=cw.cc, marks=cw.marks, states=cw.states, rtt=cw.rtt)
    summary = dict(cc_events=len(cw.cc), retransmissions=len(cw.retransmits), rtos=len(rto),
                   first_loss=min((m.t for m in cw.retransmits), default=None),
                   link_drops=sum(m.kind in ("drop", "queue_drop") for m in cw.marks),
                   recovery_exit=next((p.t for p in cw.cc if p.why == "recovery_exit"), None),
                   ssthresh_after_loss=next((p.ssthresh for p in cw.cc if p.ssthresh), None))
    return DEMO, data, summary, lambda png: cwnd_plot(trace, png)


def _ladder(workdir):
    pcap, trace = _record(workdir, LADDER)
    lad = ladder_rows(read_pcap(pcap), trace=read_trace(trace)[0])
    rows = [r for r in lad.rows if r.header is None]
    summary = dict(segments=len(rows), dropped=sum(r.dropped for r in rows),
                   retransmitted=sum(r.retransmit for r in rows),
                   with_sack=sum(bool(r.sack) for r in rows))
    return LADDER, dict(rows=rows, t0=lad.t0), summary, lambda png: ladder_picture(pcap, png, trace)


def _window(workdir):
    pcap, _ = _record(workdir, WINDOW)
    w = window_at(time_sequence_data(pcap), WINDOW_AT)
    summary = dict(at=w.t, snd_una=w.snd_una, snd_nxt=w.snd_nxt, snd_wnd=w.snd_wnd,
                   sacked=w.sacked, in_flight=w.in_flight, usable=w.usable)
    return dict(WINDOW, at=WINDOW_AT), w, summary, lambda png: window_diagram(pcap, png, WINDOW_AT)


LAB6 = dict(congestion="reno", impair="rate=10mbit,queue=20", size=2_000_000, delay=0.005, seed=1,
            initial_window=None)  # docs/labs/06-congestion.md part 3: run("reno") exactly


def _lab6_trace(workdir: str) -> str:
    """The Reno run of lab 6 (its ``run`` helper, seed 1, the stack's default IW), as a trace file."""
    key = ("lab6",)
    if key not in _runs:
        from stack.link.impair import Impairment
        from stack.sim import Simulation
        from stack.tcp.config import TcpConfig
        from stack.trace import JsonLinesSink, Tracer
        path = os.path.join(workdir, "lab6.jsonl")
        with open(path, "w", encoding="utf-8") as f:
            tracer = Tracer(JsonLinesSink(f))
            sim = Simulation(seed=LAB6["seed"], delay=LAB6["delay"], tracer=tracer,
                             config_a=TcpConfig(congestion=LAB6["congestion"], initial_window=LAB6["initial_window"]),
                             impair_ab=Impairment(LAB6["impair"], tracer=tracer))
            listener = sim.listen(sim.b, 80)
            a = sim.connect(sim.a, 80)
            sim.run(until=1, condition=lambda: listener.readable)
            data = bytes(LAB6["size"])
            if sim.transfer(sim.a, a, sim.b, listener.accept(), data) != data:
                raise RuntimeError("the lab 6 run did not deliver its data intact")
        _runs[key] = (path, path)
    return _runs[key][1]


def _lab6(workdir):
    trace = _lab6_trace(workdir)
    cw = cwnd_data(trace)
    data = dict(cc=cw.cc, marks=cw.marks, states=cw.states, rtt=cw.rtt)
    fr = [p for p in cw.cc if p.why == "fast_retransmit"]
    summary = dict(mss=cw.cc[0].mss, fast_retransmits=[p.t for p in fr],
                   ssthresh_after_loss=[p.ssthresh for p in fr], flight_at_loss=[p.flight for p in fr],
                   rtos=sum(p.why == "rto" for p in cw.cc))
    return LAB6, data, summary, lambda png: cwnd_plot(trace, png, segments=True)


FIGURES = [
    Figure("timeseq", "time-sequence graph of the demo run (docs/plots.md)", _timeseq(None)),
    Figure("timeseq-zoom", "the demo run's loss and SACK recovery, zoomed", _timeseq(ZOOM)),
    Figure("cwnd", "cwnd, ssthresh, RTT and RTO of the demo run", _cwnd),
    Figure("ladder-loss", "Stevens-style ladder: a drop (×), SACK blocks, the retransmission", _ladder),
    Figure("window", "the send window (SND.UNA, SND.NXT, SND.WND) in SACK recovery", _window),
    Figure("lab6-cwnd", "cwnd and ssthresh of lab 6's Reno run over a 10 Mbit/s bottleneck", _lab6),
]
# the pictures the Chinese labs embed: the same runs, labels in Chinese
FIGURES += [Figure(f.name + "-zh", f.what + " (Chinese labels)", f.make, "zh")
            for f in FIGURES if f.name in ("timeseq-zoom", "ladder-loss", "window", "lab6-cwnd")]


def record(fig: Figure, workdir: str) -> tuple[dict, Callable]:
    """The JSON document of a picture (without drawing it) and its draw function."""
    params, data, summary, draw = fig.make(workdir)
    doc = dict(picture=f"docs/img/{fig.name}.png", what=fig.what,
               made_by="python3 tools/figures.py " + fig.name, run=_plain(params),
               summary=_plain(summary), data_sha256=digest(data), lang=fig.lang)

    def draw_in_lang(png):
        with language(fig.lang):
            return draw(png)
    return doc, draw_in_lang


def committed(name: str, img: str = IMG) -> dict | None:
    try:
        with open(os.path.join(img, name + ".json"), encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def check(names=None, img: str = IMG) -> list[str]:
    """Recompute every picture's data; the problems found (empty: all current)."""
    problems = []
    with tempfile.TemporaryDirectory() as workdir:
        _runs.clear()
        for fig in FIGURES:
            if names and fig.name not in names:
                continue
            doc, _ = record(fig, workdir)
            old = committed(fig.name, img)
            if old is None or not os.path.exists(os.path.join(img, fig.name + ".png")):
                problems.append(f"{fig.name}: docs/img/{fig.name}.png or .json is missing")
            elif any(old.get(k) != doc[k] for k in ("data_sha256", "run", "summary", "lang")):
                changed = {k: (old.get("summary", {}).get(k), v) for k, v in doc["summary"].items()
                           if old.get("summary", {}).get(k) != v}
                problems.append(f"{fig.name}: the picture no longer matches what the stack does "
                                f"(changed: {changed or 'the plotted data'}); run tools/figures.py {fig.name}")
        _runs.clear()
    return problems


def make(names=None, img: str = IMG) -> list[str]:
    os.makedirs(img, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory() as workdir:
        _runs.clear()
        for fig in FIGURES:
            if names and fig.name not in names:
                continue
            doc, draw = record(fig, workdir)
            draw(os.path.join(img, fig.name + ".png"))
            with open(os.path.join(img, fig.name + ".json"), "w", encoding="utf-8") as f:
                json.dump(doc, f, indent=1, sort_keys=True)
                f.write("\n")
            written.append(fig.name)
        _runs.clear()
    return written


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="tools/figures.py", description=__doc__.split("\n\n")[0],
                                 epilog="pictures: " + ", ".join(f.name for f in FIGURES))
    ap.add_argument("names", nargs="*", metavar="NAME", help="only these pictures (default: all)")
    ap.add_argument("--check", action="store_true",
                    help="recompute the plotted data and compare with docs/img/*.json; exit 1 if stale")
    ap.add_argument("--list", action="store_true", help="list the pictures and what they show")
    args = ap.parse_args(argv)
    unknown = set(args.names) - {f.name for f in FIGURES}
    if unknown:
        ap.error(f"unknown picture(s): {', '.join(sorted(unknown))} "
                 f"(known: {', '.join(f.name for f in FIGURES)})")
    if args.list:
        for f in FIGURES:
            print(f"{f.name:14} {f.what}")
        return 0
    if args.check:
        problems = check(args.names)
        for p in problems:
            print(f"figures: {p}", file=sys.stderr)
        print("figures: all pictures current" if not problems else f"figures: {len(problems)} stale")
        return 1 if problems else 0
    for name in make(args.names):
        print(f"figures: wrote docs/img/{name}.png and docs/img/{name}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
