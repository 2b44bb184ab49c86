"""Constants, flags and their parsing for scripts/bench (tools/bench)."""
from __future__ import annotations

import argparse
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO not in sys.path:
    sys.path.insert(0, REPO)
from stack import units  # noqa: E402
ADDR = "192.0.2.2"
HOST_ADDR = "192.0.2.1/24"
HTTP_PORT = 80
DISCARD_PORT = 9
ECHO_PORT = 7          # the stack's one-thread epoll echo server: the idle phase holds connections there
BIG = "big.bin"
SMALL = "small.txt"
SMALL_BODY = b"tunstack bench: a small response body of 64 bytes, for conn/s.\n"
SERVER_PHASES = ("download", "upload", "connections", "concurrency", "ping", "idle")
RUN_PHASES = ("ofo", "send")  # measured once per run, not per target
PHASES = SERVER_PHASES + RUN_PHASES
TARGETS = ("ceiling", "kernel", "stack")
SCHEMA = "tunstack-bench/2"
MB = 1e6


class BenchError(Exception):
    """A problem to report in one line, without a traceback."""


def parse_size(text: str) -> int:
    """``--size``: stack.units.parse_size (the one home for sizes), as an argparse type."""
    try:
        return units.parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_list(choices):
    def parse(text: str):
        items = [x.strip() for x in text.split(",") if x.strip()]
        bad = [x for x in items if x not in choices]
        if bad or not items:
            raise argparse.ArgumentTypeError(f"choose from {','.join(choices)} (got {text!r})")
        return items
    return parse


def parse_ints(text: str):
    try:
        vals = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"a comma-separated list of integers (got {text!r})")
    if not vals or any(v <= 0 for v in vals):
        raise argparse.ArgumentTypeError("each value must be > 0")
    return vals


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


DEFAULTS = dict(size=200 * 10**6, conns=2000, clients=100, concurrency_time=5.0, pings=200,
                time_limit=12.0, idle_conns=10000, idle_time=3.0, ofo_blocks=[10, 100, 1000])
QUICK = dict(size=20 * 10**6, conns=200, clients=20, concurrency_time=1.0, pings=30,
             time_limit=4.0, idle_conns=500, idle_time=1.0, ofo_blocks=[10, 100])


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="scripts/bench",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Benchmark tunstack against two baselines in one run, inside a network namespace "
                    "of its own (needs root): the ceiling (a minimal Python TUN responder, "
                    "tools/ceiling.py) and the kernel serving the same Python applications over a "
                    "veth pair.",
        epilog="Examples:\n"
               "  scripts/bench                     full run (< 3 min), table + out/bench.json\n"
               "  scripts/bench --offload           the same with TUN offloads (stack and ceiling)\n"
               "  scripts/bench --quick             smoke run (~30 s)\n"
               "  scripts/bench --repeat 3          each target 3 times, medians reported\n"
               "  scripts/bench --targets ceiling,stack --mtu 1500 --phases download,upload\n"
               "  scripts/bench --profile stack     also sample the stack with py-spy during download\n"
               "Ratios are stack/ceiling and stack/kernel from the same run. MB = 10**6 bytes.")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: --size 20M --conns 200 --clients 20 --concurrency-time 1 --pings 30 "
                        "--time-limit 4 --idle-conns 500 --idle-time 1 --ofo-blocks 10,100 "
                        "(flags given explicitly still win)")
    p.add_argument("--json", default=os.path.join(REPO, "out", "bench.json"), metavar="FILE",
                   help="write results here (default out/bench.json)")
    p.add_argument("--mtu", type=parse_mtus, default=[1500, 65535], metavar="LIST",
                   help="comma-separated MTUs (default 1500,65535)")
    p.add_argument("--targets", type=parse_list(TARGETS), default=list(TARGETS), metavar="LIST",
                   help="which servers: ceiling,kernel,stack (default all three; ratios need them)")
    p.add_argument("--phases", type=parse_list(PHASES), default=list(PHASES), metavar="LIST",
                   help=f"which measurements (default {','.join(PHASES)}); idle runs for the stack at "
                        "the first MTU only, ofo once per run (the TCP core in virtual time)")
    p.add_argument("--offload", action="store_true",
                   help="TUN offloads (IFF_VNET_HDR, checksum + TSO) for the stack (serve --offload) "
                        "and the ceiling alike; the kernel's veth has its offloads either way")
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
    p.add_argument("--idle-conns", type=positive(int), default=None, metavar="N",
                   help="connections the idle phase opens to the stack's epoll echo server and holds "
                        "(default 10000)")
    p.add_argument("--idle-time", type=positive(float), default=None, metavar="SEC",
                   help="how long the idle phase measures CPU with every connection held (default 3)")
    p.add_argument("--ofo-blocks", type=parse_ints, default=None, metavar="LIST",
                   help="out-of-order block counts for the ofo micro-benchmark (default 10,100,1000)")
    p.add_argument("--time-limit", type=positive(float), default=None, metavar="SEC",
                   help="cap on each download/upload/connections/idle phase; a phase cut short reports "
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
                   help="run the targets N times each, alternating (C,K,S,C,K,S...), and report each "
                        "figure's median over the tries; every try is kept in the JSON (default 1)")
    p.add_argument("--profile-phase", choices=SERVER_PHASES[:4], default="download",
                   help="which phase --profile samples (default download)")
    p.add_argument("--keep-going", action="store_true",
                   help="when the ceiling fails to start, still run the stack (ratios missing)")
    return p


def finish_args(a) -> None:
    for k, v in DEFAULTS.items():
        if getattr(a, k) is None:
            setattr(a, k, QUICK[k] if a.quick else v)
