"""``tunstack plot {timeseq,cwnd,window,demo}``: the command line over data, draw and demo."""
from __future__ import annotations

import argparse
import math
import os
import sys

from .data import PlotError, _choices
from .demo import DEMO_IMPAIR, record_demo
from .draw import cwnd_plot, time_sequence
from .i18n import LANGS, language

def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"not a time in seconds >= 0: {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return value


def build_parser(prog: str = "tunstack plot") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Draw TCP at work into a PNG (or SVG/PDF, by the output's extension). "
                    "'timeseq', 'window' and 'ladder' read a pcap (tunstack serve --pcap), 'cwnd' reads "
                    "a JSON-lines trace (tunstack serve --trace). Needs matplotlib (pip install "
                    "'tunstack[plot]').",
        epilog="examples:\n"
               "  tunstack serve --http 8080 --pcap run.pcap --trace run.jsonl --impair-out loss=2%\n"
               "  tunstack plot timeseq run.pcap -o timeseq.png\n"
               "  tunstack plot cwnd run.jsonl -o cwnd.png --segments\n"
               "  tunstack plot timeseq run.pcap -o zoom.png --from 1.2 --to 1.6\n"
               "  tunstack plot window run.pcap --at 1.3 -o window.png\n"
               "  tunstack plot ladder run.pcap --trace run.jsonl --from 1.2 --to 1.25 -o ladder.png\n"
               "see docs/plots.md for what to look for in each graph",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="kind", metavar="KIND")
    sub.required = True

    def common(p, what: str, out_default: str) -> None:
        p.add_argument("-o", "--output", metavar="OUT.png",
                       help=f"image to write (default: the input's name with {out_default})")
        p.add_argument("--conn", metavar="IP:PORT-IP:PORT",
                       help=f"connection to plot, as the trace names it; default: the one with the most {what}")
        p.add_argument("--from", dest="tmin", type=_seconds, metavar="SECONDS",
                       help="start of the time range to show (seconds since the connection began)")
        p.add_argument("--to", dest="tmax", type=_seconds, metavar="SECONDS",
                       help="end of the time range to show")

    ts = sub.add_parser(
        "timeseq", help="time-sequence graph of one connection, from a pcap file",
        description="Time-sequence graph (Stevens/tcptrace style) of one direction of one TCP connection: "
                    "data segments as vertical bars (seq..seq+len) against time, retransmissions in red, "
                    "the receiver's ACK line, its window edge (ACK + window, scaled by the SYNs' window "
                    "scale) and SACK blocks. Sequence numbers are relative to the sender's ISN. "
                    "With --conn SENDER-RECEIVER the direction from SENDER is drawn (the other one if "
                    "SENDER sent no data).")
    ts.add_argument("file", metavar="FILE.pcap", help="pcap from 'tunstack serve --pcap' or 'tcpdump -w'")
    common(ts, "payload bytes", "'.timeseq.png'")

    cw = sub.add_parser(
        "cwnd", help="cwnd/ssthresh and RTT/RTO of one connection, from a trace file",
        description="Congestion window and slow-start threshold over time from the trace's 'cc' events, "
                    "with markers for retransmissions (RTO, fast retransmit, SACK recovery, tail loss "
                    "probe), segments the impairment layer dropped, and state changes; below, RTT samples, "
                    "SRTT and RTO.")
    cw.add_argument("file", metavar="TRACE.jsonl", help="trace from 'tunstack serve --trace'")
    common(cw, "cc events", "'.cwnd.png'")
    cw.add_argument("--segments", action="store_true", help="windows in MSS-sized segments instead of bytes")

    wn = sub.add_parser(
        "window", help="the send window (SND.UNA, SND.NXT, SND.WND) at one moment, from a pcap file",
        description="RFC 9293's picture of the send sequence space at one moment of a capture: what is "
                    "acknowledged, sent and not yet acknowledged (SACKed blocks hatched), may be sent now, "
                    "and may not be sent yet, with SND.UNA, SND.NXT and SND.UNA + SND.WND marked. Read from "
                    "the data sender's packets and the receiver's ACKs.")
    wn.add_argument("file", metavar="FILE.pcap", help="pcap from 'tunstack serve --pcap' or 'tcpdump -w'")
    wn.add_argument("--at", type=_seconds, required=True, metavar="SECONDS",
                    help="the moment, in seconds since the connection began (the time-sequence graph's axis)")
    wn.add_argument("-o", "--output", metavar="OUT.png", help="image to write (default: the input's name with '.window.png')")
    wn.add_argument("--conn", metavar="IP:PORT-IP:PORT", help="connection (default: the one with the most payload bytes)")

    ld = sub.add_parser(
        "ladder", help="a Stevens-style ladder picture of a capture (drops ×, retransmissions, SACK)",
        description="The rows of 'tunstack ladder' drawn as slanted arrows between the two ends: "
                    "retransmissions in red, segments the impairment dropped ending in × (needs --trace), "
                    "SACK blocks written on the ACKs. At most 60 segments: pick them with --conn/--from/--to.")
    ld.add_argument("file", metavar="FILE.pcap", help="pcap from 'tunstack serve --pcap' or 'tunstack plot demo'")
    ld.add_argument("-o", "--output", metavar="OUT.png", help="image to write (default: the input's name with '.ladder.png')")
    ld.add_argument("--trace", metavar="FILE.jsonl", help="trace of the same run: show the segments the link dropped")
    ld.add_argument("--conn", metavar="CONN", help="only this connection: PORT, IP:PORT or IP:PORT-IP:PORT")
    ld.add_argument("--from", dest="tmin", type=_seconds, metavar="SECONDS", help="first row's time (the ladder's time column)")
    ld.add_argument("--to", dest="tmax", type=_seconds, metavar="SECONDS", help="last row's time")

    dm = sub.add_parser(
        "demo", help="record a transfer in the simulator and draw both graphs (no TUN, no root)",
        description="Run one bulk transfer in the simulator (virtual time: no TUN, no root, a second or "
                    "two), write DIR/demo.pcap and DIR/demo.jsonl, and draw DIR/demo-timeseq.png and "
                    "DIR/demo-cwnd.png. Host 192.0.2.1 sends to 192.0.2.2:80; --impair applies to the "
                    "data direction. The defaults show slow start, a queue filling at the bottleneck, "
                    "SACK recovery and retransmissions lost again and resent.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    dm.add_argument("dir", metavar="DIR", help="directory for the four files (created if missing)")
    dm.add_argument("--impair", default=DEMO_IMPAIR, metavar="SPEC",
                    help="impairment of the data direction (see docs/impairment.md)")
    dm.add_argument("--size", type=_positive_int, default=1_000_000, metavar="BYTES", help="bytes to send")
    dm.add_argument("--delay", type=_seconds, default=0.020, metavar="SECONDS", help="one-way propagation delay")
    dm.add_argument("--cc", default="newreno", metavar="NAME", help="congestion control (reno, newreno, cubic)")
    dm.add_argument("--no-sack", dest="sack", action="store_false", help="turn SACK off (RFC 2018)")
    dm.add_argument("--rcvbuf", type=_positive_int, default=384 * 1024, metavar="BYTES",
                    help="the receiver's buffer (its window)")
    dm.add_argument("--seed", type=int, default=1, metavar="N", help="seed for the impairment and the data")
    for p in sub.choices.values():
        p.add_argument("--lang", choices=LANGS, default="en",
                       help="language of titles, axes and legends (zh: Chinese; needs a CJK font, "
                            "e.g. apt-get install fonts-noto-cjk)")
    return parser


def _default_output(path: str, suffix: str) -> str:
    root, ext = os.path.splitext(path)
    return (root if ext else path) + suffix


def _demo(args) -> int:
    try:
        os.makedirs(args.dir, exist_ok=True)
    except OSError as exc:
        raise PlotError(f"cannot create {args.dir!r}: {exc.strerror}") from None
    pcap, trace = os.path.join(args.dir, "demo.pcap"), os.path.join(args.dir, "demo.jsonl")
    run = record_demo(pcap, trace, args.impair, args.size, args.delay, args.cc, args.sack, args.rcvbuf, args.seed)
    if not run.intact:
        raise PlotError(f"the simulated transfer did not complete (impairment too harsh?): {args.impair!r}")
    print(f"tunstack plot: simulated {args.size} bytes over '{args.impair}' in {run.duration:.3f} s "
          f"(virtual): {pcap}, {trace}")
    ts = time_sequence(pcap, os.path.join(args.dir, "demo-timeseq.png"), run.conn)
    cw = cwnd_plot(trace, os.path.join(args.dir, "demo-cwnd.png"), run.conn)
    print(f"tunstack plot: wrote {os.path.join(args.dir, 'demo-timeseq.png')} ({len(ts.segments)} segments, "
          f"{len(ts.retransmissions)} retransmitted) and {os.path.join(args.dir, 'demo-cwnd.png')} "
          f"({len(cw.cc)} cc events, {len(cw.retransmits)} retransmissions)")
    return 0


def plot_main(argv: list[str] | None = None) -> int:
    """``tunstack plot {timeseq,cwnd,demo} ...`` (``argv`` without the ``plot``); the exit status:
    0 done, 1 bad input (one line on stderr), 2 usage error (argparse), 130 interrupted."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2, message already printed)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        with language(args.lang):
            return _plot(args)
    except PlotError as exc:
        print(f"tunstack plot: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _plot(args) -> int:
    """Draw what ``args`` asks for (in the language already chosen)."""
    if args.kind == "demo":
        return _demo(args)
    if args.kind == "window":
        from .pictures import window_diagram
        out = args.output or _default_output(args.file, ".window.png")
        w = window_diagram(args.file, out, args.at, args.conn)
        print(f"tunstack plot: wrote {out}: {w.name} at {w.t:g} s: SND.UNA={w.snd_una} "
              f"SND.NXT={w.snd_nxt} SND.WND={w.snd_wnd}, {len(w.sacked)} SACK block(s)")
        return 0
    if args.kind == "ladder":
        from .pictures import ladder_picture
        out = args.output or _default_output(args.file, ".ladder.png")
        rows = ladder_picture(args.file, out, args.trace, args.conn, args.tmin, args.tmax)
        print(f"tunstack plot: wrote {out}: {len(rows)} segments, "
              f"{sum(r.dropped for r in rows)} dropped, {sum(r.retransmit for r in rows)} retransmitted")
        return 0
    if args.kind == "timeseq":
        out = args.output or _default_output(args.file, ".timeseq.png")
        d = time_sequence(args.file, out, args.conn, args.tmin, args.tmax)
        print(f"tunstack plot: wrote {out}: {d.name}, {len(d.segments)} segments, "
              f"{len(d.retransmissions)} retransmitted")
    else:
        out = args.output or _default_output(args.file, ".cwnd.png")
        d = cwnd_plot(args.file, out, args.conn, args.segments, args.tmin, args.tmax)
        print(f"tunstack plot: wrote {out}: {d.conn}, {len(d.cc)} cc events, "
              f"{len(d.retransmits)} retransmissions"
              + (f" (other connections: {_choices(d.others, 3)})" if d.others else ""))
    return 0
