"""What the plots show, read from a pcap or a trace: plain dataclasses, no drawing.

:func:`time_sequence_data` (pcap) and :func:`cwnd_data` (JSON-lines trace) return what a plot
draws, so tests and labs can assert on it; connection names (``parse_conn``) and the trace
reader (``read_trace``) are shared with the ladder. Only reads files; never touches the stack.
"""
from __future__ import annotations

import math
import os
import socket
from dataclasses import dataclass, field

from ..pcap import read_pcap
from ..trace import read_events
from ..units import INFINITE_SSTHRESH
from ..wire.errors import MalformedPacket
from ..wire.ipv4 import parse_ipv4
from ..wire.tcp import ACK, FIN, RST, SYN, parse_tcp

IPPROTO_TCP = 6
RETRANSMIT_KINDS = ("rto", "rto_syn", "fast", "sack", "tlp")  # Mark.kind of a retransmission
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
        return [m for m in self.marks if m.kind in RETRANSMIT_KINDS]


def read_trace(trace_path) -> tuple[list[dict], int]:
    """The events of a JSON-lines trace and the number of lines that were not events
    (``stack.trace.read_events``; bad input raises PlotError)."""
    try:
        return read_events(trace_path)
    except ValueError as exc:
        raise PlotError(str(exc)) from None


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


# ============================================================================ the send window at one moment
@dataclass
class WindowSnapshot:
    """The sender's view of its sequence space at time ``t`` (RFC 9293 3.3.1, the picture
    of the send sequence space), read from the capture: relative sequence numbers."""
    t: float                     # seconds since the connection's first packet
    snd_una: int                 # oldest unacknowledged: the highest cumulative ACK received
    snd_nxt: int                 # next to send: one past the highest sequence number sent
    snd_wnd: int                 # the window the receiver last offered (octets)
    sacked: list[tuple[int, int]]   # SACK blocks the last ACK reported above SND.UNA
    mss: int | None              # the largest payload sent (cells of the picture)
    name: str

    @property
    def in_flight(self) -> int:
        return self.snd_nxt - self.snd_una

    @property
    def usable(self) -> int:
        """What may still be sent now: SND.UNA + SND.WND - SND.NXT (never below 0)."""
        return max(0, self.snd_una + self.snd_wnd - self.snd_nxt)


def window_at(ts: TimeSeqData, t: float) -> WindowSnapshot:
    """SND.UNA, SND.NXT, SND.WND and the SACKed blocks at ``t`` seconds (the time axis of the
    time-sequence graph), from what the sender had sent and received by then."""
    sent = [s for s in ts.segments if s.t <= t]
    acks = [a for a in ts.acks if a.t <= t]
    if not sent or not acks:
        raise PlotError(f"nothing sent and acknowledged by {t:g} s in {ts.name} "
                        f"(the transfer starts at {ts.segments[0].t:g} s)")
    una = max(a.ack for a in acks)
    last = acks[-1]
    sacked = sorted((lo, hi) for lo, hi in last.sack if hi > una)
    mss = max((s.length for s in sent), default=0) or ts.mss
    return WindowSnapshot(t, una, max(s.end for s in sent), last.window, sacked, mss, ts.name)
