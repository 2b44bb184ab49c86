"""Plots that show TCP at work: the time-sequence graph and cwnd/ssthresh with RTT/RTO.

Two graphs, each from a file the stack writes (see docs/plots.md)::

    tunstack plot timeseq run.pcap   -o timeseq.png      # from 'tunstack serve --pcap'
    tunstack plot cwnd    run.jsonl  -o cwnd.png         # from 'tunstack serve --trace'

* :func:`time_sequence` draws the classic time-sequence graph (Stevens, tcptrace) of one
  direction of one connection: every data segment is a vertical bar from its first to
  its last sequence number at the time it was sent (retransmissions in red), with the
  peer's cumulative ACK, the right edge of the window it offers (ACK + window) and its
  SACK blocks.
* :func:`cwnd_plot` draws cwnd and ssthresh from the trace's ``cc`` events, with a
  marker for every retransmission (by why: RTO, fast, SACK, TLP) and every state
  change, and under it the RTT samples, SRTT and RTO.

The data extraction (:func:`time_sequence_data`, :func:`cwnd_data`) is separate from the
drawing and returns plain dataclasses, so tests and labs can assert on what a plot shows.
matplotlib (the ``plot`` extra) is imported only when drawing, and only through its
object API (``Figure``), never ``pyplot``: no global state, no display needed.
"""
from __future__ import annotations

import argparse
import bisect
import json
import math
import os
import socket
import sys
from dataclasses import dataclass, field, replace

from .pcap import read_pcap
from .wire.errors import MalformedPacket
from .wire.ipv4 import parse_ipv4
from .wire.tcp import ACK, FIN, RST, SYN, parse_tcp

IPPROTO_TCP = 6
INFINITE_SSTHRESH = 0x7FFFFFFF  # what the congestion modules report before the first loss
_MOD = 1 << 32
_HALF = 1 << 31


class PlotError(Exception):
    """Bad input a user can fix (missing file, no TCP, unknown connection): one line, exit 1."""


# ============================================================================ connection names
Endpoint = tuple[str, int]


def parse_conn(text: str) -> tuple[Endpoint, Endpoint]:
    """``"192.0.2.2:80-192.0.2.1:42068"`` -> ``(("192.0.2.2", 80), ("192.0.2.1", 42068))``.

    The same form the trace uses for ``conn`` (local-remote). For the time-sequence graph
    the first endpoint is the data sender.
    """
    parts = text.strip().split("-")
    if len(parts) != 2:
        raise PlotError(f"bad connection {text!r}: expected IP:PORT-IP:PORT, e.g. 192.0.2.2:80-192.0.2.1:40000")
    out = []
    for part in parts:
        host, sep, port = part.rpartition(":")
        try:
            socket.inet_aton(host)
            if not sep or host.count(".") != 3 or not 0 <= int(port) <= 65535:
                raise ValueError
        except (OSError, ValueError):
            raise PlotError(f"bad endpoint {part!r} in {text!r}: expected IPv4:PORT, e.g. 192.0.2.1:40000") from None
        out.append((host, int(port)))
    return out[0], out[1]


def conn_name(a: Endpoint, b: Endpoint) -> str:
    return f"{a[0]}:{a[1]}-{b[0]}:{b[1]}"


def _reverse_name(name: str) -> str:
    left, _, right = name.partition("-")
    return f"{right}-{left}"


def _choices(names, limit: int = 6) -> str:
    names = list(names)
    shown = ", ".join(names[:limit])
    return shown + (f" (and {len(names) - limit} more)" if len(names) > limit else "")


def _check_file(path) -> None:
    if not os.path.exists(path):
        raise PlotError(f"no such file: {os.fspath(path)!r}")
    if os.path.isdir(path):
        raise PlotError(f"{os.fspath(path)!r} is a directory, not a file")


class _Unwrap:
    """Sequence numbers relative to ``base``, unwrapped past 2**32 (each value is taken
    as the one nearest the previous, as RFC 9293's modular comparisons do)."""

    def __init__(self, base: int):
        self.base = base
        self.last = 0

    def __call__(self, seq: int) -> int:
        delta = (seq - self.base - self.last) % _MOD
        if delta >= _HALF:
            delta -= _MOD
        self.last += delta
        return self.last


# ============================================================================ time-sequence data
@dataclass
class Segment:
    """One data segment of the plotted direction, sequence numbers relative to the ISN."""
    t: float           # seconds since the connection's first packet
    seq: int           # first sequence number
    end: int           # one past the last (seq + payload length, + 1 for SYN and FIN)
    length: int        # payload octets
    retransmit: bool   # starts below the highest sequence number sent before it (tcptrace's rule):
                       # resent bytes, also when the first copy was lost before the capture point
    syn: bool = False
    fin: bool = False


@dataclass
class AckPoint:
    """One segment of the reverse direction: what the receiver acknowledged and offered."""
    t: float
    ack: int           # cumulative ACK, relative to the data sender's ISN
    window: int        # offered window in octets (field << scale; the SYN's field unscaled)
    sack: list[tuple[int, int]] = field(default_factory=list)

    @property
    def edge(self) -> int:
        """Right edge of the offered window: the highest sequence number the sender may send."""
        return self.ack + self.window


@dataclass
class TimeSeqData:
    sender: Endpoint
    receiver: Endpoint
    start: float                  # pcap time of the connection's first packet (time zero)
    isn: int                      # the absolute sequence number plotted as 0
    segments: list[Segment]
    acks: list[AckPoint]
    isn_seen: bool                # the sender's SYN is in the capture (else seq 0 = first seq seen)
    wscale: int | None            # shift applied to the receiver's window (None: unknown, SYNs missing)
    sack_permitted: bool
    mss: int | None               # the receiver's MSS option (what the sender may send)
    skipped: int = 0              # packets that were not parseable IPv4/TCP

    @property
    def name(self) -> str:
        return conn_name(self.sender, self.receiver)

    @property
    def retransmissions(self) -> list[Segment]:
        return [s for s in self.segments if s.retransmit]

    @property
    def beyond_window(self) -> list[Segment]:
        """Segments that end past the right edge of every window the receiver had offered
        when they were sent (RFC 9293 3.8.6: the sender must not send beyond SND.UNA +
        SND.WND). One octet past a zero window is a window probe and is allowed."""
        out, edge, i, acks = [], None, 0, self.acks
        for s in self.segments:
            while i < len(acks) and acks[i].t <= s.t:
                edge = acks[i].edge if edge is None else max(edge, acks[i].edge)
                i += 1
            if edge is not None and s.length and s.end - (1 if s.fin else 0) > edge + 1:
                out.append(s)
        return out

    @property
    def bytes_sent(self) -> int:
        """Payload octets sent, retransmissions included."""
        return sum(s.length for s in self.segments)

    @property
    def data_bytes(self) -> int:
        """Distinct payload octets: the span from the first to the last data byte sent."""
        data = [s for s in self.segments if s.length]
        if not data:
            return 0
        return max(s.seq + s.length for s in data) - min(s.seq for s in data)

    @property
    def bytes_acked(self) -> int:
        return max((a.ack for a in self.acks), default=0) - (1 if self.isn_seen else 0)


@dataclass
class _Packet:
    t: float
    seq: int
    ack: int
    flags: int
    window: int
    length: int
    sack: list | None
    wscale: int | None
    sack_perm: bool
    mss: int | None


def _flows(pcap_path) -> tuple[dict[tuple[Endpoint, Endpoint], list[_Packet]], int]:
    """Every TCP packet of the capture, by direction ((src, sport), (dst, dport))."""
    flows: dict[tuple[Endpoint, Endpoint], list[_Packet]] = {}
    skipped = 0
    for t, packet in read_pcap(pcap_path):
        try:
            ip, payload = parse_ipv4(packet)
            if ip.proto != IPPROTO_TCP or ip.is_fragment:
                continue
            seg = parse_tcp(payload)  # no checksum check: offloaded captures carry partial sums
        except (MalformedPacket, ValueError):
            skipped += 1
            continue
        key = ((socket.inet_ntoa(ip.src), seg.sport), (socket.inet_ntoa(ip.dst), seg.dport))
        flows.setdefault(key, []).append(_Packet(
            t, seg.seq, seg.ack, seg.flags, seg.window, len(seg.payload), seg.sack,
            seg.wscale, seg.sack_perm, seg.mss))
    return flows, skipped


def _read_flows(pcap_path):
    _check_file(pcap_path)
    try:
        return _flows(pcap_path)
    except ValueError as exc:
        hint = " (a JSON-lines trace? plot it with 'tunstack plot cwnd')" if "not a pcap" in str(exc) else ""
        raise PlotError(f"{exc}{hint}") from None
    except OSError as exc:
        raise PlotError(f"cannot read {os.fspath(pcap_path)!r}: {exc.strerror}") from None


def pcap_connections(pcap_path) -> dict[str, int]:
    """``{"SENDER-RECEIVER": payload octets}`` for every direction of every TCP connection."""
    flows, _ = _read_flows(pcap_path)
    return {conn_name(*k): sum(p.length for p in v) for k, v in flows.items()}


def _pick_direction(flows, pcap_path, conn) -> tuple[Endpoint, Endpoint]:
    sent = {k: sum(p.length for p in v) for k, v in flows.items()}
    if not flows:
        raise PlotError(f"no TCP segments in {os.fspath(pcap_path)!r}")
    if conn is None:
        key = max(sent, key=lambda k: sent[k])
        if sent[key] == 0:
            raise PlotError(f"no TCP data in {os.fspath(pcap_path)!r} (only segments without payload)")
        return key
    a, b = parse_conn(conn) if isinstance(conn, str) else conn
    for key in ((a, b), (b, a)):
        if sent.get(key):
            return key
    if (a, b) in flows or (b, a) in flows:
        raise PlotError(f"connection {conn_name(a, b)} carries no data in {os.fspath(pcap_path)!r}")
    names = [conn_name(*k) for k in sorted(sent, key=lambda k: -sent[k]) if sent[k]]
    raise PlotError(f"no connection {conn_name(a, b)} in {os.fspath(pcap_path)!r}; "
                    f"connections with data: {_choices(names) or 'none'}")


def time_sequence_data(pcap_path, conn=None) -> TimeSeqData:
    """Extract the time-sequence graph's data for one direction of one connection.

    ``conn`` is ``"SENDER_IP:PORT-RECEIVER_IP:PORT"`` (either order is accepted: the
    direction that carries data is used, the given order first); None picks the
    direction with the most payload in the capture.
    """
    flows, skipped = _read_flows(pcap_path)
    sender, receiver = _pick_direction(flows, pcap_path, conn)
    data = flows[(sender, receiver)]
    back = flows.get((receiver, sender), [])
    start = min(data[0].t, back[0].t if back else math.inf)

    syn = next((p for p in data if p.flags & SYN), None)
    peer_syn = next((p for p in back if p.flags & SYN), None)
    isn = syn.seq if syn else data[0].seq
    wscale = None
    if syn and peer_syn:  # RFC 7323 2.2: scaling is on only when both SYNs carry the option
        wscale = peer_syn.wscale if (syn.wscale is not None and peer_syn.wscale is not None) else 0
    rel = _Unwrap(isn)      # each direction unwraps in its own time order: near its previous value
    rel_ack = _Unwrap(isn)

    segments: list[Segment] = []
    high = None  # one past the highest sequence number sent so far
    for p in data:
        n = p.length + (1 if p.flags & SYN else 0) + (1 if p.flags & FIN else 0)
        if n == 0 or p.flags & RST:
            continue
        seq = rel(p.seq)
        end = seq + n
        segments.append(Segment(p.t - start, seq, end, p.length, high is not None and seq < high,
                                bool(p.flags & SYN), bool(p.flags & FIN)))
        high = end if high is None else max(high, end)

    acks: list[AckPoint] = []
    for p in back:
        if not p.flags & ACK or p.flags & RST:
            continue
        window = p.window if (p.flags & SYN or not wscale) else p.window << wscale
        ack = rel_ack(p.ack)
        sack = [(rel_ack(left), rel_ack(right)) for left, right in (p.sack or ())]
        rel_ack(p.ack)  # SACK blocks lie above the ACK: keep the reference at the ACK
        acks.append(AckPoint(p.t - start, ack, window, sack))

    return TimeSeqData(sender, receiver, start, isn, segments, acks, syn is not None, wscale,
                       bool(syn and peer_syn and syn.sack_perm and peer_syn.sack_perm),
                       peer_syn.mss if peer_syn else None, skipped)


# ============================================================================ trace data
@dataclass
class CcPoint:
    """One ``cc`` event: the congestion controller's state right after something happened."""
    t: float                # seconds since the connection's first event
    why: str                # ack, fast_retransmit, partial_ack, recovery_exit, rto, set_congestion
    cwnd: int               # octets
    ssthresh: int | None    # octets; None while still "infinite" (no loss yet)
    mss: int
    phase: str              # slow_start, congestion_avoidance, recovery
    algorithm: str
    flight: int | None
    srtt: float | None
    rto: float | None


@dataclass
class Mark:
    """A point event drawn as a marker: a retransmission, probe, drop, state change."""
    t: float
    kind: str               # a retransmit's why (rto, fast, sack, tlp, rto_syn); tlp (new-data probe),
                            # persist, drop, queue_drop, corrupt (the link), zero_window, state
    label: str = ""
    seq: int | None = None
    length: int | None = None


@dataclass
class RttPoint:
    t: float
    sample: float | None    # seconds; None for an RTO-only point (from a cc event)
    srtt: float | None
    rttvar: float | None
    rto: float | None


@dataclass
class CwndData:
    conn: str
    start: float                           # trace time of the connection's first event (time zero)
    cc: list[CcPoint]
    marks: list[Mark]                      # retransmissions, probes, drops (time order)
    states: list[Mark]                     # state changes: label "OLD→NEW"
    rtt: list[RttPoint]                    # rtt events, plus cc events' rto (sample None)
    peer_window: list[tuple[float, int]]   # snd_wnd events: the window the peer offers
    others: list[str] = field(default_factory=list)  # other connections with cc events
    skipped_lines: int = 0

    @property
    def algorithms(self) -> list[str]:
        out: list[str] = []
        for p in self.cc:
            if not out or out[-1] != p.algorithm:
                out.append(p.algorithm)
        return out

    @property
    def retransmits(self) -> list[Mark]:
        return [m for m in self.marks if m.kind in RETRANSMIT_STYLE]


def read_trace(trace_path) -> tuple[list[dict], int]:
    """The events of a JSON-lines trace and the number of lines that were not events.

    A partly written last line (a trace still being written) is skipped like any other
    bad line; a file with no event at all is an error.
    """
    _check_file(trace_path)
    events, bad = [], 0
    try:
        with open(trace_path, encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                try:
                    ev = json.loads(line)
                except ValueError:
                    bad += 1
                    if bad > 20 and not events:
                        break
                    continue
                if isinstance(ev, dict) and "ev" in ev and isinstance(ev.get("t"), (int, float)):
                    events.append(ev)
                else:
                    bad += 1
    except UnicodeDecodeError:
        events = []
    except OSError as exc:
        raise PlotError(f"cannot read {os.fspath(trace_path)!r}: {exc.strerror}") from None
    if not events:
        raise PlotError(f"{os.fspath(trace_path)!r} is not a JSON-lines trace "
                        f"(write one with 'tunstack serve --trace FILE')")
    return events, bad


def trace_connections(events) -> dict[str, int]:
    """``{conn: number of cc events}`` for every connection with cc events."""
    counts: dict[str, int] = {}
    for e in events:
        if e["ev"] == "cc" and "conn" in e:
            counts[e["conn"]] = counts.get(e["conn"], 0) + 1
    return counts


def _finite_ssthresh(value):
    if value is None or value >= INFINITE_SSTHRESH:
        return None
    return value


LINK_LOSS = {"drop": "dropped by the link", "queue_drop": "dropped at the full bottleneck queue",
             "corrupt": "corrupted by the link (receiver discards it)"}


def _seq_space(events, margin: int):
    """A test ``seq -> bool``: is seq within ``margin`` of the sequence numbers the
    connection's own events name (retransmissions, probes, duplicate ACKs)? None when
    the events name none (then nothing was lost that the connection noticed)."""
    known = [e["seq"] for e in events if e["ev"] in ("retransmit", "tlp", "persist_probe") and "seq" in e]
    known += [e["ack"] for e in events if e["ev"] == "dupack" and "ack" in e]
    known = [k for k in known if isinstance(k, int)]
    if not known:
        return None
    ref = known[0]

    def offset(seq: int) -> int:
        return (seq - ref + _HALF) % _MOD - _HALF

    offsets = [offset(k) for k in known]
    lo, hi = min(offsets) - margin, max(offsets) + margin
    return lambda seq: lo <= offset(seq) <= hi


def cwnd_data(trace, conn=None) -> CwndData:
    """Extract the cwnd plot's data for one connection from a trace file (or a list of events).

    ``conn`` is the trace's connection name (``LOCAL-REMOTE``; the reversed name is
    accepted too); None picks the connection with the most ``cc`` events.
    """
    if isinstance(trace, (list, tuple)):
        events, skipped = list(trace), 0
        where = "the trace"
    else:
        events, skipped = read_trace(trace)
        where = repr(os.fspath(trace))
    counts = trace_connections(events)
    if not counts:
        raise PlotError(f"no cc (congestion control) events in {where}: did any connection send data?")
    ranked = sorted(counts, key=lambda c: -counts[c])
    if conn is None:
        name = ranked[0]
    else:
        a, b = parse_conn(conn) if isinstance(conn, str) else conn
        name = conn_name(a, b)
        if name not in counts:
            if _reverse_name(name) in counts:
                name = _reverse_name(name)
            else:
                raise PlotError(f"no cc events for connection {name} in {where}; "
                                f"connections with cc events: {_choices(ranked)}")
    peer = _reverse_name(name)
    mine = [e for e in events if e.get("conn") == name]
    start = min(e["t"] for e in mine)

    cc, marks, states, rtt, peer_window = [], [], [], [], []
    for e in mine:
        t = e["t"] - start
        ev = e["ev"]
        if ev == "cc":
            if not isinstance(e.get("cwnd"), (int, float)):
                continue
            cc.append(CcPoint(t, e.get("why", ""), e["cwnd"], _finite_ssthresh(e.get("ssthresh")),
                              e.get("mss") or 1, e.get("phase", ""), e.get("algorithm", "?"),
                              e.get("flight"), e.get("srtt"), e.get("rto")))
            if e.get("rto") is not None:
                rtt.append(RttPoint(t, None, e.get("srtt"), None, e["rto"]))
        elif ev == "rtt":
            rtt.append(RttPoint(t, e.get("sample"), e.get("srtt"), e.get("rttvar"), e.get("rto")))
        elif ev == "retransmit":
            marks.append(Mark(t, e.get("why", "?"), e.get("why", "?"), e.get("seq"), e.get("len")))
        elif ev == "tlp":
            marks.append(Mark(t, "tlp", "TLP probe (new data)", e.get("seq"), e.get("len")))
        elif ev == "persist_probe":
            marks.append(Mark(t, "persist", "persist probe", e.get("seq"), e.get("len")))
        elif ev == "state":
            states.append(Mark(t, "state", f"{e.get('old', '?')}→{e.get('new', '?')}"))
        elif ev == "snd_wnd":
            peer_window.append((t, e.get("wnd", 0)))
    # The link's drops carry no connection name, but a sequence number: a lost data
    # segment is taken as this connection's when it lies in this connection's sequence
    # space (around what it retransmitted or was duplicate-ACKed, give or take a window).
    # With random ISNs two connections' spaces almost never meet.
    space = _seq_space(mine, max([p.cwnd for p in cc] + [p.flight or 0 for p in cc] + [0]))
    for e in events:
        ev = e["ev"]
        if ev == "impair" and e.get("action") in LINK_LOSS and e.get("paylen") and e.get("seq") is not None:
            if space is not None and space(e["seq"]):
                marks.append(Mark(e["t"] - start, e["action"], LINK_LOSS[e["action"]], e["seq"], e.get("paylen")))
        elif ev == "zero_window" and e.get("conn") == peer:
            marks.append(Mark(e["t"] - start, "zero_window", "receiver's window is zero"))
    marks.sort(key=lambda m: m.t)
    rtt.sort(key=lambda r: r.t)
    return CwndData(name, start, cc, marks, states, rtt, peer_window,
                    [c for c in ranked if c != name], skipped)


# ============================================================================ drawing
def _matplotlib():
    try:
        import matplotlib  # noqa: F401
        from matplotlib.figure import Figure
        from matplotlib import ticker
    except ImportError:
        raise PlotError("plots need matplotlib: pip install 'tunstack[plot]' (or: pip install matplotlib)") from None
    return Figure, ticker


def _save(fig, out_path) -> None:
    try:
        fig.savefig(out_path, dpi=fig.dpi)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise PlotError(f"cannot write {os.fspath(out_path)!r}: {reason}") from None


def _window(tmin, tmax):
    lo = -math.inf if tmin is None else tmin
    hi = math.inf if tmax is None else tmax
    if lo >= hi:
        raise PlotError(f"empty time range: --from {tmin} is not before --to {tmax}")
    return lo, hi


def _range_text(tmin, tmax) -> str:
    if tmin is not None and tmax is not None:
        return f"between {tmin:g} s and {tmax:g} s"
    return f"after {tmin:g} s" if tmin is not None else f"before {tmax:g} s"


def _style_axes(ax) -> None:
    ax.grid(True, color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


C_DATA, C_RXT, C_ACK, C_WIN, C_SACK, C_ZERO = "#1f5fbf", "#d62728", "#2ca02c", "#8c6d31", "#9467bd", "#ff7f0e"


def time_sequence(pcap_path, out_png, conn=None, tmin: float | None = None,
                  tmax: float | None = None) -> TimeSeqData:
    """Draw the time-sequence graph of one connection's data direction into ``out_png``.

    ``tmin``/``tmax`` (seconds since the connection's first packet) zoom into a part.
    Returns the extracted data.
    """
    Figure, ticker = _matplotlib()
    d = time_sequence_data(pcap_path, conn)
    lo, hi = _window(tmin, tmax)
    segs = [s for s in d.segments if lo <= s.t <= hi]
    acks = [a for a in d.acks if lo <= a.t <= hi]
    if not segs and not acks:
        raise PlotError(f"nothing of {d.name} {_range_text(tmin, tmax)} "
                        f"(its packets span 0 to {max([s.t for s in d.segments] + [a.t for a in d.acks]):g} s)")
    if tmin is not None:  # carry the ACK and window lines in from the left edge
        before = [a for a in d.acks if a.t < lo]
        if before:
            acks.insert(0, AckPoint(lo, before[-1].ack, before[-1].window, []))
    if acks:  # ... and on to the right edge: the last ACK holds until the next one
        later = [s.t for s in d.segments if s.t > acks[-1].t] + [a.t for a in d.acks if a.t > acks[-1].t]
        if later:
            acks.append(AckPoint(min(max(later), hi), acks[-1].ack, acks[-1].window, []))

    fig = Figure(figsize=(11, 6.4), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    _style_axes(ax)
    new = [s for s in segs if not s.retransmit]
    old = [s for s in segs if s.retransmit]
    width = 1.6 if len(segs) < 400 else 1.0
    if new:
        ax.vlines([s.t for s in new], [s.seq for s in new], [s.end for s in new], colors=C_DATA,
                  linewidth=width, label="data segment (bar: first..last byte)", zorder=3)
    if old:
        ax.vlines([s.t for s in old], [s.seq for s in old], [s.end for s in old], colors=C_RXT,
                  linewidth=width + 1.2, zorder=4)
        # a marker too: one segment's bar is a pixel high in a long transfer
        ax.plot([s.t for s in old], [(s.seq + s.end) / 2 for s in old], linestyle="none", marker="o",
                markersize=5, markerfacecolor="none", markeredgecolor=C_RXT, markeredgewidth=1.3, zorder=4,
                label="retransmission (bytes sent before)")
    beyond = [s for s in d.beyond_window if lo <= s.t <= hi]
    if beyond:
        ax.plot([s.t for s in beyond], [s.end for s in beyond], linestyle="none", marker="^", markersize=7,
                color="#e377c2", zorder=5, label="sent past the offered window (RFC 9293 3.8.6: must not)")
    flagged = [s for s in segs if s.syn or s.fin]
    for s in flagged:
        ax.annotate("SYN" if s.syn else "FIN", (s.t, s.end), textcoords="offset points", xytext=(3, 3),
                    fontsize=8, color="#444444")
    # the y range follows the data: a 4 MB window edge would squash a 600 kB transfer flat.
    # The window line counts when it is near the data most of the time (it limits the sender).
    top = max([s.end for s in segs] + [a.ack for a in acks] + [0])
    bottom = min([s.seq for s in segs] + [a.ack for a in acks if a.ack > 0] + [top])
    reach = top + (top - bottom) * 0.3
    edges = [a.edge for a in acks]
    if edges and sum(e <= reach for e in edges) >= len(edges) / 2:
        top = max(top, min(max(edges), reach))
    pad = max((top - bottom) * 0.03, 1)
    ax.set_ylim(bottom - pad, top + pad)

    if acks:
        ts = [a.t for a in acks]
        ax.step(ts, [a.ack for a in acks], where="post", color=C_ACK, linewidth=1.4,
                label="ACK: next byte the receiver expects", zorder=2)
        label = "receive window edge (ACK + window)"
        if min(edges) > top + pad:
            label += f":\n  above the chart, ACK + {_size(min(a.window for a in acks))} or more"
        elif sum(e > top + pad for e in edges) > len(edges) / 2:
            label += f":\n  mostly above the chart (up to ACK + {_size(max(a.window for a in acks))})"
        ax.step(ts, edges, where="post", color=C_WIN, linewidth=1.2, linestyle="--", label=label, zorder=2)
        sacks = [(a.t, left, right) for a in acks for left, right in a.sack]
        if sacks:
            ax.vlines([s[0] for s in sacks], [s[1] for s in sacks], [s[2] for s in sacks], colors=C_SACK,
                      linewidth=3.0, alpha=0.55, label="SACK block (received out of order)", zorder=2)
        zero = [a for a in acks if a.window == 0 and a.ack > 0]
        if zero:
            ax.plot([a.t for a in zero], [a.ack for a in zero], linestyle="none", marker="o",
                    markersize=6, markerfacecolor="none", markeredgecolor=C_ZERO, zorder=5,
                    label="zero window advertised")

    if tmin is not None or tmax is not None:
        ax.set_xlim(max(lo, 0) if tmin is not None else None, hi if tmax is not None else None)

    ax.yaxis.set_major_formatter(ticker.EngFormatter(unit="B"))
    ax.set_xlabel("time since the connection's first packet (s)")
    ax.set_ylabel("sequence number, relative to the ISN (bytes)" if d.isn_seen
                  else "sequence number, relative to the first one seen (bytes)")
    ax.set_title(f"Time-sequence graph: {d.sender[0]}:{d.sender[1]} → {d.receiver[0]}:{d.receiver[1]}",
                 fontsize=13, loc="left", pad=22)
    facts = [f"{_size(d.data_bytes)} of data in {sum(1 for s in d.segments if s.length)} segments",
             f"{len(d.retransmissions)} retransmitted"]
    if d.mss:
        facts.append(f"receiver's MSS option {d.mss}")
    facts.append("window scale unknown (no SYNs in capture)" if d.wscale is None else f"window scale {d.wscale}")
    facts.append("SACK on" if d.sack_permitted else "no SACK")
    ax.text(0.0, 1.01, " · ".join(facts), transform=ax.transAxes, fontsize=9, color="#555555",
            va="bottom", ha="left")
    ax.legend(loc="upper left", fontsize=9, framealpha=0.92)
    _save(fig, out_png)
    return d


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"  # pragma: no cover


RETRANSMIT_STYLE = {  # why -> (legend label, marker, colour)
    "rto": ("retransmission after RTO", "X", "#d62728"),
    "rto_syn": ("SYN retransmission after RTO", "X", "#8b0000"),
    "fast": ("fast retransmit (3 dup ACKs)", "v", "#ff7f0e"),
    "sack": ("retransmission in SACK recovery", "v", "#9467bd"),
    "tlp": ("tail loss probe retransmission", "D", "#17becf"),
}
OTHER_STYLE = {
    "tlp": ("tail loss probe (new data)", "d", "#17becf"),
    "persist": ("zero-window (persist) probe", "s", "#8c564b"),
    "zero_window": ("receiver advertised zero window", "o", "#7f7f7f"),
    "drop": ("data segment dropped by the link", "x", "#000000"),
    "queue_drop": ("data segment dropped: bottleneck queue full", "x", "#8b0000"),
    "corrupt": ("data segment corrupted by the link", "+", "#000000"),
}
PHASE_COLOUR = {"slow_start": ("#e6f4e6", "slow start"), "congestion_avoidance": ("#e8eef9", "congestion avoidance"),
                "recovery": ("#fde9d9", "fast recovery")}


def _step_value(times, values, t):
    """The value of a step function (post) at time t (the first value before its start)."""
    i = bisect.bisect_right(times, t) - 1
    return values[max(i, 0)]


def cwnd_plot(trace_path, out_png, conn=None, segments: bool = False, tmin: float | None = None,
              tmax: float | None = None) -> CwndData:
    """Draw cwnd/ssthresh (top) and RTT/SRTT/RTO (bottom) of one connection into ``out_png``.

    ``segments`` shows windows in MSS-sized segments instead of bytes; ``tmin``/``tmax``
    (seconds since the connection's first event) zoom into a part. Returns the data.
    """
    Figure, ticker = _matplotlib()
    d = cwnd_data(trace_path, conn)
    lo, hi = _window(tmin, tmax)
    last = max([d.cc[-1].t] + [m.t for m in d.marks + d.states] + [r.t for r in d.rtt])
    if lo > last or hi < d.cc[0].t:
        raise PlotError(f"no cc events of {d.conn} {_range_text(tmin, tmax)} "
                        f"(they span {d.cc[0].t:g} to {d.cc[-1].t:g} s)")
    cc = [p for p in d.cc if lo <= p.t <= hi]
    rtt = [r for r in d.rtt if lo <= r.t <= hi]
    if tmin is not None:  # carry the lines in from the left edge: the values in force at tmin
        before = [p for p in d.cc if p.t < lo]
        if before:
            cc.insert(0, replace(before[-1], t=lo))
        before_rtt = [r for r in d.rtt if r.t < lo]
        if before_rtt:
            rtt.insert(0, replace(before_rtt[-1], t=lo, sample=None))
    marks = [m for m in d.marks if lo <= m.t <= hi]
    states = [m for m in d.states if lo <= m.t <= hi]
    scale = (lambda v, p: v / p.mss) if segments else (lambda v, p: v)
    unit = "segments (MSS)" if segments else "bytes"

    fig = Figure(figsize=(11, 7.6), dpi=100, layout="constrained")
    ax, ax2 = fig.subplots(2, 1, sharex=True, height_ratios=[2.2, 1])
    for a in (ax, ax2):
        _style_axes(a)

    ts = [p.t for p in cc]
    cwnd = [scale(p.cwnd, p) for p in cc]
    ssth = [math.nan if p.ssthresh is None else scale(p.ssthresh, p) for p in cc]
    flight = [math.nan if p.flight is None else scale(p.flight, p) for p in cc]
    t_end = min(last, hi)
    # extend the step lines to the end of what is shown
    ts_x, cwnd_x, ssth_x = ts + [t_end], cwnd + [cwnd[-1]], ssth + [ssth[-1]]

    # phases as background bands
    run_start, run_phase = ts[0], cc[0].phase
    seen_phase = set()
    for p in cc[1:] + [None]:
        if p is None or p.phase != run_phase:
            end = t_end if p is None else p.t
            colour, label = PHASE_COLOUR.get(run_phase, ("#f2f2f2", run_phase))
            ax.axvspan(run_start, end, color=colour, zorder=0, linewidth=0,
                       label=None if run_phase in seen_phase else label)
            seen_phase.add(run_phase)
            if p is not None:
                run_start, run_phase = p.t, p.phase

    ax.step(ts_x, cwnd_x, where="post", color="#1f5fbf", linewidth=1.8, label="cwnd", zorder=3)
    if not all(math.isnan(v) for v in ssth):
        ax.step(ts_x, ssth_x, where="post", color="#d62728", linewidth=1.4, linestyle="--",
                label="ssthresh", zorder=3)
    if not all(math.isnan(v) for v in flight):
        ax.step(ts_x, flight + [flight[-1]], where="post", color="#555555", linewidth=0.7, alpha=0.6,
                label="outstanding (sent, not yet ACKed)", zorder=2)
    # the y range follows cwnd and ssthresh; what is outstanding may stick out (a cumulative
    # ACK after a long hole jumps by hundreds of kB) but not flatten the windows
    ymax = max([v for v in cwnd + ssth if not math.isnan(v)] + [1]) * 1.15
    peak = max([v for v in flight if not math.isnan(v)] + [0])
    ymax = max(ymax, min(peak * 1.05, ymax * 1.5))
    wnd = [(t, w) for t, w in d.peer_window if t <= hi]
    if wnd:
        mss = cc[-1].mss if segments else 1
        wt = [max(t, lo) for t, _ in wnd] + [t_end]
        wv = [w / mss for _, w in wnd] + [wnd[-1][1] / mss]
        below = sum(min(b, t_end) - a for a, b, v in zip(wt, wt[1:], wv) if v < ymax and b > a)
        if below >= 0.25 * max(t_end - wt[0], 1e-9):  # draw it where it binds, not as a lone spike
            ax.step(wt, wv, where="post", color="#8c6d31", linewidth=1.0, linestyle=":",
                    label="receiver's window", zorder=2)

    lane = ymax * 0.035  # a lane under zero for what the link and the receiver did
    ax.set_ylim(-2 * lane, ymax)
    ax.axhline(0, color="#888888", linewidth=0.8, zorder=1)
    used = set()
    for m in marks:
        style = RETRANSMIT_STYLE.get(m.kind) if m.kind in RETRANSMIT_STYLE else OTHER_STYLE.get(m.kind)
        if m.label.startswith("TLP probe"):
            style = OTHER_STYLE["tlp"]
        if style is None:
            style = (m.kind, "o", "#333333")
        label, marker, colour = style
        if m.kind in LINK_LOSS or m.kind == "zero_window":
            y = -lane  # in the lane under zero: the link's doing, not the sender's
        else:
            y = _step_value(ts, cwnd, m.t)
        ax.plot([m.t], [y], linestyle="none", marker=marker, markersize=6 if m.kind in LINK_LOSS else 8,
                color=colour, markeredgecolor=colour if m.kind in LINK_LOSS else "white", markeredgewidth=0.6,
                zorder=5, label=None if label in used else label)
        used.add(label)

    for m in states:
        for a in (ax, ax2):
            a.axvline(m.t, color="#999999", linewidth=0.8, linestyle=(0, (2, 3)), zorder=1)
    _state_labels(ax, states, max(t_end - (lo if tmin is not None else 0.0), 1e-9))

    ax.yaxis.set_major_formatter(ticker.EngFormatter(unit="B") if not segments else ticker.ScalarFormatter())
    ax.set_ylabel(f"window ({unit})")
    algos = " → ".join(d.algorithms)
    ax.set_title(f"Congestion window: {d.conn} ({algos})", fontsize=13, loc="left", pad=22)
    counts: dict[str, int] = {}
    for m in d.retransmits:
        counts[m.kind] = counts.get(m.kind, 0) + 1
    rx = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "none"
    ax.text(0.0, 1.01, f"retransmissions: {rx} · MSS {cc[-1].mss} · dotted lines: state changes",
            transform=ax.transAxes, fontsize=9, color="#555555", va="bottom", ha="left")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8.5, frameon=False)

    _draw_rtt(ax2, rtt, t_end, ticker)
    ax2.set_xlabel("time since the connection's first event (s)")
    if tmin is not None or tmax is not None:
        ax2.set_xlim(lo if tmin is not None else None, hi if tmax is not None else None)
    _save(fig, out_png)
    return d


def _state_labels(ax, states, span: float) -> None:
    """State names along the top of the cwnd panel; changes closer than ~1.5% of the
    time axis share one label (SYN_SENT→ESTABLISHED→...), so they never overprint."""
    from matplotlib.transforms import blended_transform_factory
    tr = blended_transform_factory(ax.transData, ax.transAxes)
    groups: list[list] = []
    for m in states:
        if groups and m.t - groups[-1][-1].t < span * 0.015:
            groups[-1].append(m)
        else:
            groups.append([m])
    for g in groups:
        names = [g[0].label.split("→")[0]] + [m.label.split("→")[-1] for m in g]
        if names[0] in ("CLOSED", "LISTEN") and len(names) > 2:
            names = names[1:]
        ax.text(g[0].t, 0.985, "→".join(names), transform=tr, rotation=90, fontsize=7, color="#555555",
                va="top", ha="right", zorder=6, clip_on=True)


def _draw_rtt(ax, rtt, t_end, ticker) -> None:
    samples = [r for r in rtt if r.sample is not None]
    srtt = [r for r in rtt if r.srtt is not None]
    rto = [r for r in rtt if r.rto is not None]
    if samples:
        ax.plot([r.t for r in samples], [r.sample * 1000 for r in samples], linestyle="none", marker=".",
                markersize=4, color="#7f7f7f", label="RTT sample", zorder=3)
    if srtt:
        ax.step([r.t for r in srtt] + [t_end], [r.srtt * 1000 for r in srtt] + [srtt[-1].srtt * 1000],
                where="post", color="#1f5fbf", linewidth=1.5, label="SRTT (smoothed RTT)", zorder=4)
    if rto:
        ax.step([r.t for r in rto] + [t_end], [r.rto * 1000 for r in rto] + [rto[-1].rto * 1000],
                where="post", color="#d62728", linewidth=1.3, linestyle="--", label="RTO (retransmission timeout)",
                zorder=4)
    values = [r.sample for r in samples] + [r.srtt for r in srtt] + [r.rto for r in rto]
    if not values:
        ax.text(0.5, 0.5, "no RTT samples or RTO values in the trace", transform=ax.transAxes,
                ha="center", va="center", color="#777777")
        ax.set_ylabel("time (ms)")
        return
    low = min(v for v in values if v > 0) if any(v > 0 for v in values) else 1e-3
    if max(values) / low > 15:  # RTO at 200 ms+ would flatten a 10 ms RTT: use a log scale
        ax.set_yscale("log")
        ax.set_ylim(low * 1000 / 1.5, max(values) * 1000 * 1.8)
        ax.yaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_minor_locator(ticker.NullLocator())
        ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_ylabel("time (ms, log scale)")
    else:
        ax.set_ylim(0, max(values) * 1000 * 1.15)
        ax.set_ylabel("time (ms)")
    ax.set_title("Round-trip time and retransmission timeout", fontsize=11, loc="left")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8.5, frameon=False)


# ============================================================================ a run to look at
DEMO_IMPAIR = "rate=10mbit,queue=25,drop=data:60x4"


@dataclass
class DemoRun:
    pcap: str
    trace: str
    conn: str              # the sender's connection name
    duration: float        # virtual seconds the transfer took
    intact: bool           # the receiver got exactly the bytes sent


def record_demo(pcap_path, trace_path, impair: str = DEMO_IMPAIR, size: int = 1_000_000,
                delay: float = 0.020, congestion: str = "newreno", sack: bool = True,
                rcvbuf: int = 384 * 1024, seed: int = 1) -> DemoRun:
    """Record a pcap and a trace of one bulk transfer in the simulator (virtual time, no TUN,
    no root): host 192.0.2.1 sends ``size`` bytes to 192.0.2.2:80 over a link with one-way
    ``delay`` whose sender-to-receiver direction is impaired by ``impair``; the receiver's
    buffer is ``rcvbuf`` bytes. The pcap is captured at the sender, before the link (what
    tcpdump on the sender would see). Same arguments, same packets.
    """
    import random
    from .link.impair import Impairment, ImpairSpec
    from .pcap import PcapWriter
    from .sim import Simulation
    from .tcp.config import TcpConfig
    from .trace import JsonLinesSink, Tracer

    try:
        spec = ImpairSpec.parse(impair)
        from .tcp import congestion as cc_registry
        cc_registry.create(congestion, 1460, 0.0)
    except ValueError as exc:
        raise PlotError(str(exc)) from None
    if not 1 <= size <= 200_000_000:
        raise PlotError(f"size out of range 1..200000000 bytes: {size}")
    if not 0 < delay <= 10:
        raise PlotError(f"delay out of range (0, 10] seconds: {delay}")
    if rcvbuf < 2048:
        raise PlotError(f"receive buffer too small (at least 2048 bytes): {rcvbuf}")
    try:
        trace_file = open(trace_path, "w")
        pcap = PcapWriter(pcap_path)
    except OSError as exc:
        raise PlotError(f"cannot write {exc.filename!r}: {exc.strerror}") from None
    sink = JsonLinesSink(trace_file)
    tracer = Tracer(sink)
    try:
        sim = Simulation(seed=seed, delay=delay, tracer=tracer,
                         config_a=TcpConfig(congestion=congestion, sack=sack),
                         config_b=TcpConfig(congestion=congestion, sack=sack, rcvbuf=rcvbuf),
                         impair_ab=Impairment(spec, seed=seed, direction="ab", tracer=tracer))
        host = sim.a
        take_output, receive = host.take_output, host.receive

        def captured_output(now):
            packets = take_output(now)
            for packet in packets:
                pcap.write(packet, now)
            return packets

        def captured_receive(packet, now):
            pcap.write(packet, now)
            return receive(packet, now)

        host.take_output, host.receive = captured_output, captured_receive
        listener = sim.listen(sim.b, 80)
        sender = sim.connect(sim.a, 80)
        if not sim.run(until=60, condition=lambda: listener.readable):
            raise PlotError("the simulated connection was not established (is the SYN always dropped?)")
        receiver = listener.accept()
        began = sim.now
        data = random.Random(seed).randbytes(size)
        got = sim.transfer(sim.a, sender, sim.b, receiver, data, until=sim.now + 3600)
        duration = sim.now - began
        sim.close(sim.b, receiver)
        sim.run(until=sim.now + 5)
        return DemoRun(os.fspath(pcap_path), os.fspath(trace_path), sender.name, duration, got == data)
    finally:
        pcap.close()
        sink.close()


# ============================================================================ command line
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
                    "'timeseq' reads a pcap (tunstack serve --pcap), 'cwnd' reads a JSON-lines "
                    "trace (tunstack serve --trace). Needs matplotlib (pip install 'tunstack[plot]').",
        epilog="examples:\n"
               "  tunstack serve --http 8080 --pcap run.pcap --trace run.jsonl --impair-out loss=2%\n"
               "  tunstack plot timeseq run.pcap -o timeseq.png\n"
               "  tunstack plot cwnd run.jsonl -o cwnd.png --segments\n"
               "  tunstack plot timeseq run.pcap -o zoom.png --from 1.2 --to 1.6\n"
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

    dm = sub.add_parser(
        "demo", help="record a transfer in the simulator and draw both graphs (no TUN, no root)",
        description="Run one bulk transfer in the simulator (virtual time: no TUN, no root, a second or "
                    "two), write DIR/demo.pcap and DIR/demo.jsonl, and draw DIR/demo-timeseq.png and "
                    "DIR/demo-cwnd.png. Host 192.0.2.1 sends to 192.0.2.2:80; --impair applies to the "
                    "data direction. The defaults show slow start, a window-limited sender, SACK recovery, "
                    "a lost retransmission and an RTO.",
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
        if args.kind == "demo":
            return _demo(args)
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
    except PlotError as exc:
        print(f"tunstack plot: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(plot_main())
