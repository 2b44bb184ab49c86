"""ASCII ladder (sequence) diagrams of TCP conversations, from packets or a pcap file.

::

          time  client                                           server
      0.000000  |-- SYN seq=0 win=64240 len=0 ----------------------->|  mss=1460 sack_perm ts=41246/0 wscale=10
      0.000275  |<------------- SYN-ACK seq=0 ack=1 win=65535 len=0 --|  mss=1460 sack_perm ts=29998/41246 wscale=7
      0.000331  |-- ACK seq=1 ack=1 win=64512 len=0 ----------------->|
      0.004055  |-- PSH,ACK seq=1 ack=1 win=64512 len=1448 ---------->|
      0.004100  |-- ACK seq=1449 ack=1 win=64512 len=1448 ------->×   |  dropped (rule data:2)
      0.006769  |<-------------- ACK seq=1 ack=1449 win=65535 len=0 --|  sack=2897-4345
      0.031002  |-- ACK seq=1449 ack=1 win=64512 len=1448 [retransmit] -->|

The left column is the host (the kernel's side of the TUN, ``local_label``), the right
column is our stack (``remote_label``): a packet whose source is ``stack_addr`` goes
right to left. Sequence and acknowledgment numbers are relative to each direction's
initial sequence number, as Wireshark shows them (SACK blocks too); ``win`` is the window
in bytes (scaled once both SYNs agreed on window scaling, else the raw field); ``len`` is
the TCP payload length. Options follow the arrow on every segment (SACK blocks on
duplicate ACKs); timestamps only on SYNs unless ``show_ts``. A segment that carries
sequence space already sent is marked ``[retransmit]``. Given the trace of the same run,
the segments the impairment layer dropped (``impair`` events) end in ``×`` short of the
other side: marked on their row when the capture holds them, or added from the trace when
it does not (the runtime captures outgoing packets after the impairment).

This module only reads: a pcap (headers through ``stack/wire``) and, optionally, a trace.
"""
from __future__ import annotations

import argparse
import math
import socket
import struct
import sys
from dataclasses import dataclass, field
from typing import Iterable

from stack.pcap import read_pcap
from stack.trace import read_events
from stack.wire.tcp import (ACK, CWR, ECE, FIN, OPT_SACK, PSH, RST, SYN, URG, flag_bits,
                            iter_options, option_words)

_IP = struct.Struct("!BBHHHBBH4s4s")
_TCP = struct.Struct("!HHIIBBHHH")
_FLAG_NAMES = [(SYN, "SYN"), (FIN, "FIN"), (RST, "RST"), (PSH, "PSH"),
               (ACK, "ACK"), (URG, "URG"), (ECE, "ECE"), (CWR, "CWR")]
_ICMP_NAMES = {0: "echo-reply", 3: "unreachable", 8: "echo-request", 11: "time-exceeded"}
ARROW_WIDTH = 52  # inner width of an arrow; longer labels stretch it
DROP = "×"
RETRANSMIT = "[retransmit]"
LINK_DROPS = ("drop", "queue_drop")  # impair actions that lose the packet


def _before(a: int, b: int) -> bool:
    """RFC 9293 3.4 modular comparison: ``a`` is before ``b`` in sequence space."""
    return 0 < (b - a) & 0xFFFFFFFF < 1 << 31


def _flags(bits: int) -> str:
    """``SYN``, ``SYN-ACK``, ``ACK``, ``PSH,ACK``, ``FIN,ACK``, ``RST`` ..."""
    if bits & (SYN | ACK) == SYN | ACK and not bits & (FIN | RST | PSH):
        return "SYN-ACK"
    return ",".join(name for bit, name in _FLAG_NAMES if bits & bit) or "none"


def parse_tcp_options(opts: bytes) -> list[str]:
    """Options as short words (``stack.wire.tcp.option_words``, absolute SACK edges)."""
    return option_words(opts)


class _Segment:
    """The fields of one IPv4 packet the ladder shows (TCP fields None for non-TCP)."""

    def __init__(self, packet: bytes):
        ver_ihl, _tos, total, _id, _frag, _ttl, self.proto, _ck, src, dst = \
            _IP.unpack_from(packet)
        if ver_ihl >> 4 != 4:
            raise ValueError("not IPv4")
        ihl = (ver_ihl & 0x0F) * 4
        end = min(total, len(packet)) if total >= ihl else len(packet)
        self.src, self.dst = socket.inet_ntoa(src), socket.inet_ntoa(dst)
        self.payload = packet[ihl:end]
        self.sport = self.dport = None
        if self.proto == 6:
            (self.sport, self.dport, self.seq, self.ack, off, self.bits, self.win,
             _ck, _urg) = _TCP.unpack_from(self.payload)
            hlen = (off >> 4) * 4
            self.opts = bytes(self.payload[20:hlen])
            self.options = option_words(self.opts)
            self.length = len(self.payload) - hlen

    def flow(self) -> tuple:
        """A key equal for both directions of one connection."""
        a, b = (self.src, self.sport), (self.dst, self.dport)
        return (a, b) if a <= b else (b, a)

    @property
    def seg_len(self) -> int:
        """RFC 9293 SEG.LEN: payload plus one each for SYN and FIN."""
        return self.length + bool(self.bits & SYN) + bool(self.bits & FIN)


class _Flow:
    """Per-connection state, by source endpoint: each direction's ISN, window scale and
    highest sequence number sent (to spot retransmissions)."""

    def __init__(self):
        self.isn: dict[tuple, int] = {}
        self.wscale: dict[tuple, int | None] = {}
        self.snd_max: dict[tuple, int] = {}

    def relative(self, seg: _Segment) -> tuple[int, int | None]:
        """``(seq, ack)`` relative to the ISNs; ack is None when the ACK bit is off."""
        me, peer = (seg.src, seg.sport), (seg.dst, seg.dport)
        self.isn.setdefault(me, seg.seq)
        seq = (seg.seq - self.isn[me]) & 0xFFFFFFFF
        if not seg.bits & ACK:
            return seq, None
        # Without the peer's SYN (capture started mid-stream) its first ACKed byte is 0.
        self.isn.setdefault(peer, seg.ack)
        return seq, (seg.ack - self.isn[peer]) & 0xFFFFFFFF

    def is_retransmission(self, seg: _Segment) -> bool:
        """The segment carries sequence space this side already sent (SND.NXT had moved
        past ``seg.seq``): a retransmission, by the sender's recovery or a probe."""
        if not seg.seg_len:
            return False
        me = (seg.src, seg.sport)
        end = (seg.seq + seg.seg_len) & 0xFFFFFFFF
        high = self.snd_max.get(me)
        again = high is not None and _before(seg.seq, high)
        if high is None or not _before(end, high):
            self.snd_max[me] = end
        return again

    def sack_base(self, seg: _Segment) -> int | None:
        """SACK blocks acknowledge the peer's sequence space: relative to its ISN."""
        return self.isn.get((seg.dst, seg.dport))

    def window(self, seg: _Segment) -> int:
        """The window in bytes. RFC 7323 2.2: scaling applies only when both SYNs carried
        wscale, and never to a SYN's own window; otherwise the raw field."""
        me, peer = (seg.src, seg.sport), (seg.dst, seg.dport)
        if seg.bits & SYN:
            shifts = [o for o in seg.options if o.startswith("wscale=")]
            self.wscale[me] = min(int(shifts[0][7:]), 14) if shifts else None
            return seg.win
        if self.wscale.get(me) is not None and self.wscale.get(peer) is not None:
            return seg.win << self.wscale[me]
        return seg.win


def _label(seg: _Segment, flow: _Flow | None) -> str:
    """The text on an arrow: TCP flags, relative seq/ack, window, payload length."""
    if seg.proto == 17 and len(seg.payload) >= 8:
        sport, dport = struct.unpack_from("!HH", seg.payload)
        return f"UDP {sport}>{dport} len={len(seg.payload) - 8}"
    if seg.proto == 1 and len(seg.payload) >= 2:
        kind = _ICMP_NAMES.get(seg.payload[0], f"type={seg.payload[0]}")
        return f"ICMP {kind} code={seg.payload[1]}"
    if flow is None:
        return f"proto={seg.proto} len={len(seg.payload)}"
    seq, ack = flow.relative(seg)
    parts = [_flags(seg.bits), f"seq={seq}"]
    if ack is not None:
        parts.append(f"ack={ack}")
    parts += [f"win={flow.window(seg)}", f"len={seg.length}"]
    return " ".join(parts)


def _options(seg: _Segment, flow: _Flow, show_ts: bool) -> str:
    """Options after the arrow: all of them on a SYN; SACK blocks (relative) and the rest
    on other segments, timestamps only when asked for."""
    if seg.bits & SYN:
        return " ".join(seg.options)
    words = option_words(seg.opts, flow.sack_base(seg))
    return " ".join(w for w in words if show_ts or not w.startswith("ts="))


def _relative_sack(seg: _Segment, flow: _Flow) -> list[tuple[int, int]]:
    """The SACK blocks of a segment, relative to the peer's ISN."""
    base = flow.sack_base(seg) or 0
    for kind, body in iter_options(seg.opts):
        if kind == OPT_SACK:
            edges = [(int.from_bytes(body[j:j + 4], "big") - base) & 0xFFFFFFFF
                     for j in range(0, len(body) - 3, 4)]
            return list(zip(edges[::2], edges[1::2]))
    return []


def _arrow(label: str, rightward: bool, width: int, dropped: bool = False) -> str:
    body = f" {label} "
    fill = "-" * max(2, width - 2 - len(body))
    if dropped:  # the arrow stops short of the other side: the link lost it
        if rightward:
            return f"|--{body}{fill[:-3]}{DROP}   |"
        return f"|   {DROP}{fill[3:]}{body}--|"
    if rightward:
        return f"|--{body}{fill}>|"
    return f"|<{fill}{body}--|"


# ---------------------------------------------------------------------------------------
# Drops from the trace
# ---------------------------------------------------------------------------------------

def _drop_key(ev: dict) -> tuple:
    return (ev.get("sport"), ev.get("dport"), ev["seq"], flag_bits(ev.get("flags", "")),
            ev.get("paylen"))


def _seg_key(seg: _Segment) -> tuple:
    return (seg.sport, seg.dport, seg.seq, seg.bits, seg.length)


def link_drops(events: Iterable[dict]) -> list[dict]:
    """The ``impair`` events of a trace that lost a TCP segment (loss, burst, rule, queue)."""
    return [e for e in events if e.get("ev") == "impair" and e.get("action") in LINK_DROPS
            and e.get("seq") is not None]


def _clock_offset(events: list[dict], captured: list[tuple[float, "_Segment"]]) -> float:
    """Seconds to add to trace times to get capture times. The simulator stamps both with
    one clock (offset 0); the runtime stamps the pcap with wall-clock time and the trace
    with its monotonic clock: line up the first SYN captured with the first state change
    out of LISTEN/CLOSED the trace saw (both are that SYN)."""
    if not events or not captured:
        return 0.0
    syn_t = next((t for t, s in captured if s.sport is not None and s.bits & SYN), captured[0][0])
    opened = next((e["t"] for e in events if e.get("ev") == "state"
                   and e.get("old") in ("LISTEN", "CLOSED")), events[0]["t"])
    return 0.0 if abs(syn_t - opened) < 60 else syn_t - opened


def _match_drops(drops: list[dict], captured: list, offset: float) -> tuple[dict, list[dict]]:
    """Pair each traced drop with the captured packet it lost (same ports, seq, flags and
    length, at the same time give or take the clock alignment): ``({index: event}, the
    drops the capture never saw)``. A drop on the way out (``dir`` "out") is never in a
    capture of ``tunstack serve``, which writes outgoing packets after the impairment."""
    slack = 1e-6 if offset == 0.0 else 0.02
    index: dict[tuple, list[int]] = {}
    for i, (_t, seg) in enumerate(captured):
        if seg.sport is not None:
            index.setdefault(_seg_key(seg), []).append(i)
    paired, alone = {}, []
    for ev in drops:
        t = ev["t"] + offset
        # 'tunstack serve --pcap' captures what leaves after --impair-out: never a drop "out"
        seen = ev.get("dir") != "out"
        candidates = [i for i in index.get(_drop_key(ev), ()) if seen
                      and i not in paired and abs(captured[i][0] - t) <= slack]
        if candidates:
            paired[min(candidates, key=lambda i: abs(captured[i][0] - t))] = ev
        else:
            alone.append(dict(ev, t=t))
    return paired, alone


class _Dropped(_Segment):
    """A segment known only from the trace: the link dropped it before the capture."""

    def __init__(self, ev: dict, template: _Segment):
        self.proto, self.payload, self.opts, self.options = 6, b"", b"", []
        outward = ev.get("sport") == template.sport
        self.src, self.dst = (template.src, template.dst) if outward else (template.dst, template.src)
        self.sport, self.dport = ev.get("sport"), ev.get("dport")
        self.seq, self.ack, self.bits = ev["seq"], 0, flag_bits(ev.get("flags", ""))
        self.win, self.length = 0, ev.get("paylen") or 0


def _dropped_label(seg: _Segment, flow: _Flow) -> str:
    seq = (seg.seq - flow.isn.get((seg.src, seg.sport), seg.seq)) & 0xFFFFFFFF
    return f"{_flags(seg.bits)} seq={seq} len={seg.length}"


# ---------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------

def parse_conn_filter(text: str):
    """``PORT`` (either end), ``IP:PORT`` or ``IP:PORT-IP:PORT`` (either order) -> a
    predicate on a segment. ValueError with a one-line message when malformed."""
    ends = []
    for part in text.strip().split("-"):
        host, sep, port = part.rpartition(":")
        try:
            if sep:
                socket.inet_aton(host)
                if host.count(".") != 3:
                    raise ValueError
            number = int(port)
            if not 0 <= number <= 65535:
                raise ValueError
        except (OSError, ValueError):
            raise ValueError(f"bad connection {text!r}: write PORT, IP:PORT or IP:PORT-IP:PORT "
                             f"(e.g. 40000 or 192.0.2.1:40000-192.0.2.2:80)") from None
        ends.append((host or None, number))
    if len(ends) > 2:
        raise ValueError(f"bad connection {text!r}: at most two endpoints")

    def matches(seg: _Segment) -> bool:
        here = ((seg.src, seg.sport), (seg.dst, seg.dport))
        return all(any(h in (None, a) and p == b for a, b in here) for h, p in ends)
    return matches


@dataclass
class LadderRow:
    """One arrow of the ladder (``header`` set instead: a connection's first row)."""
    t: float                    # capture time (seconds, as in the pcap)
    label: str = ""             # flags, relative seq/ack, window, length (+ [retransmit])
    rightward: bool = True      # from the host (left) to the stack (right)
    extra: str = ""             # after the arrow: options, or why it was dropped
    dropped: bool = False       # the link lost it: the arrow ends in ×
    retransmit: bool = False
    sack: list = field(default_factory=list)   # relative SACK blocks it carries
    header: str | None = None


@dataclass
class Ladder:
    rows: list[LadderRow]       # headers included
    t0: float                   # time zero of the time column (the first packet)
    connections: int            # connections among the rows shown
    skipped: int                # non-IPv4 or malformed packets


def ladder_rows(packets: Iterable[tuple[float, bytes]], stack_addr: str = "192.0.2.2", *,
                trace: Iterable[dict] | None = None, conn: str | None = None,
                t_from: float | None = None, t_to: float | None = None,
                show_ts: bool = False) -> Ladder:
    """The ladder's rows as data (the text and the picture draw the same rows); the
    arguments are :func:`render_ladder`'s."""
    keep = parse_conn_filter(conn) if conn else (lambda seg: True)
    lo = -math.inf if t_from is None else t_from
    hi = math.inf if t_to is None else t_to
    captured, skipped = [], 0
    for t, packet in packets:
        try:
            captured.append((t, _Segment(packet)))
        except (ValueError, struct.error):
            skipped += 1
    events = list(trace or ())
    paired, alone = _match_drops(link_drops(events), captured, _clock_offset(events, captured))
    t0 = captured[0][0] if captured else 0.0
    # one timeline: captured packets, and the drops only the trace saw, in time order
    timeline = [(t, 0, i, seg, paired.get(i)) for i, (t, seg) in enumerate(captured)]
    timeline += [(ev["t"], 1, i, None, ev) for i, ev in enumerate(alone)]
    timeline.sort(key=lambda row: row[:3])

    rows: list[LadderRow] = []
    flows: dict[tuple, _Flow] = {}
    first: dict[tuple, _Segment] = {}   # each connection's first segment (for trace drops)
    shown: set = set()
    left_addr = None
    for t, _order, _i, seg, drop in timeline:  # _order 1: known from the trace only
        if seg is None:                  # a drop the capture never saw
            seg = _trace_only_segment(drop, first)
            if seg is None:
                continue
        key = seg.flow() if seg.sport is not None else None
        flow, extra = None, ""
        if key is not None:
            flow = flows.setdefault(key, _Flow())
            first.setdefault(key, seg)
        if isinstance(seg, _Dropped):
            label = _dropped_label(seg, flow)
        else:
            label = _label(seg, flow)
        if flow is not None:
            if flow.is_retransmission(seg):
                label += " " + RETRANSMIT
            extra = _options(seg, flow, show_ts)
        if drop is not None:
            where = ", from the trace" if _order else ""
            extra = f"dropped ({drop.get('reason', 'link')}{where})" + (f" {extra}" if extra else "")
        if not (lo <= t - t0 <= hi) or not keep(seg):
            continue
        if stack_addr in (seg.src, seg.dst):
            rightward = seg.dst == stack_addr
        else:
            left_addr = left_addr or seg.src
            rightward = seg.src == left_addr
        if key is not None and key not in shown:
            shown.add(key)
            rows.append(LadderRow(t, header=f"{seg.src}:{seg.sport} -> {seg.dst}:{seg.dport}"))
        sack = _relative_sack(seg, flow) if flow is not None and not seg.bits & SYN else []
        rows.append(LadderRow(t, label, rightward, extra, drop is not None,
                              label.endswith(RETRANSMIT), sack))
    return Ladder(rows, t0, len(shown), skipped)



def render_ladder(packets: Iterable[tuple[float, bytes]], local_label: str = "client",
                  remote_label: str = "server", stack_addr: str = "192.0.2.2", *,
                  trace: Iterable[dict] | None = None, conn: str | None = None,
                  t_from: float | None = None, t_to: float | None = None,
                  show_ts: bool = False) -> str:
    """Render ``(t, ip_packet)`` pairs as an ASCII ladder; returns the text.

    The host (``local_label``) is the left column, the stack at ``stack_addr``
    (``remote_label``) the right one; with no packet from or to ``stack_addr``, the
    sender of the first packet stands on the left. When the rows shown hold more than one
    TCP connection, a header line marks each connection's first segment.
    ``trace``: events of the same run; its ``impair`` drops are drawn with ``×``.
    ``conn``: only that connection (see :func:`parse_conn_filter`). ``t_from``/``t_to``:
    only rows in that window, in seconds of the time column (since the first packet).
    """
    lad = ladder_rows(packets, stack_addr, trace=trace, conn=conn, t_from=t_from, t_to=t_to,
                      show_ts=show_ts)
    body = [r for r in lad.rows if r.header is None]
    width = max([ARROW_WIDTH] + [len(r.label) + 8 for r in body])
    half = (width + 3) // 2
    lines = [f"{'time':>10}  {local_label:<{half}}{remote_label:>{width + 3 - half}}"]
    for row in lad.rows:
        if row.header is not None:  # connection header: only worth a line when there are several
            if lad.connections > 1:
                lines.append(f"{'':10}  == {row.header} ==")
            continue
        lines.append(f"{row.t - lad.t0:10.6f}  {_arrow(row.label, row.rightward, width, row.dropped)}"
                     f"{'  ' + row.extra if row.extra else ''}".rstrip())
    if lad.skipped:
        lines.append(f"({lad.skipped} non-IPv4 or malformed packet(s) not shown)")
    return "\n".join(lines) + "\n"


def _trace_only_segment(ev: dict, first: dict) -> "_Dropped | None":
    """The segment of a drop the capture never saw, on the connection with its ports."""
    for seg in first.values():
        if {ev.get("sport"), ev.get("dport")} == {seg.sport, seg.dport}:
            return _Dropped(ev, seg)
    return None


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a time in seconds: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"not a finite time: {text!r}")
    return value


def build_parser(prog: str = "tunstack ladder") -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog=prog, description="Print an ASCII ladder diagram of the TCP segments in a pcap "
        "file: seq/ack (and SACK blocks) relative to each ISN, options on every segment, "
        "retransmissions marked [retransmit]; with --trace, the segments the impairment "
        "dropped end in ×.")
    ap.add_argument("pcap", metavar="FILE.pcap", help="capture file (pcap, e.g. from serve --pcap)")
    ap.add_argument("--trace", metavar="FILE.jsonl",
                    help="trace of the same run (serve --trace): draw the segments the "
                    "impairment layer dropped, marked ×")
    ap.add_argument("--conn", metavar="CONN",
                    help="only this connection: PORT (either end), IP:PORT, or IP:PORT-IP:PORT")
    ap.add_argument("--from", dest="t_from", type=_seconds, metavar="SECONDS",
                    help="only rows at or after this time (the time column)")
    ap.add_argument("--to", dest="t_to", type=_seconds, metavar="SECONDS",
                    help="only rows at or before this time (the time column)")
    ap.add_argument("--ts", action="store_true",
                    help="show TCP timestamps on every segment (default: on SYNs only)")
    ap.add_argument("--stack-addr", default="192.0.2.2",
                    help="address of our stack, drawn on the right (default %(default)s)")
    ap.add_argument("--local-label", default="client", help="left column title (host)")
    ap.add_argument("--remote-label", default="server", help="right column title (stack)")
    return ap


def ladder_main(argv: list[str] | None = None) -> int:
    """``tunstack ladder FILE.pcap [--trace FILE.jsonl] [--conn C] [--from S] [--to S]``."""
    args = build_parser().parse_args(argv)
    try:
        if args.t_from is not None and args.t_to is not None and args.t_from > args.t_to:
            raise ValueError(f"empty time range: --from {args.t_from:g} is after --to {args.t_to:g}")
        if args.conn:
            parse_conn_filter(args.conn)
        trace = None
        if args.trace:
            trace, _bad = read_events(args.trace)
        text = render_ladder(read_pcap(args.pcap), args.local_label, args.remote_label,
                             args.stack_addr, trace=trace, conn=args.conn, t_from=args.t_from,
                             t_to=args.t_to, show_ts=args.ts)
    except (OSError, ValueError) as e:
        print(f"tunstack ladder: {e}", file=sys.stderr)
        return 1
    sys.stdout.write(text)
    return 0
