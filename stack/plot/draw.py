"""Drawing: the time-sequence graph and the cwnd/ssthresh + RTT plot (matplotlib's object API).

matplotlib (the ``plot`` extra) is imported only when drawing, and only through ``Figure``,
never ``pyplot``: no global state, no display needed.
"""
from __future__ import annotations

import bisect
import math
import os
from dataclasses import replace

from .data import (AckPoint, CwndData, LINK_LOSS, PlotError, TimeSeqData, cwnd_data,
                   time_sequence_data)

def _matplotlib():
    try:
        import matplotlib  # noqa: F401
        from matplotlib.figure import Figure
        from matplotlib import ticker
    except ImportError:
        raise PlotError("plots need matplotlib: pip install 'tunstack[plot]' (or: pip install matplotlib)") from None
    return Figure, ticker


def _save(fig, out_path) -> None:
    from .i18n import localize
    localize(fig)  # labels in the language chosen with i18n.language (English: untouched)
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


STATE_FONT = 7  # points


def _state_label_groups(states, span: float, axes_px: float, dpi: float) -> list[list]:
    """Group state changes so that labels (rotated text, one line high) stand at least one
    line height plus a gap apart on the time axis: a change closer than that to the last
    label joins it (SYN_SENT→ESTABLISHED→...). The gap is in pixels, converted to seconds
    with the axes' width, so labels never overprint whatever the time span."""
    gap_px = STATE_FONT * 2.2 / 72 * dpi  # a line of text plus most of a line between
    gap = span * gap_px / max(axes_px, 1.0)
    groups: list[list] = []
    for m in states:
        if groups and m.t - groups[-1][0].t < gap:
            groups[-1].append(m)
        else:
            groups.append([m])
    return groups


def _state_labels(ax, states, span: float) -> None:
    """State names along the top of the cwnd panel, one label per group of nearby changes."""
    from matplotlib.transforms import blended_transform_factory
    tr = blended_transform_factory(ax.transData, ax.transAxes)
    fig = ax.get_figure()
    axes_px = ax.get_position().width * fig.get_figwidth() * fig.dpi
    for g in _state_label_groups(states, span, axes_px, fig.dpi):
        names = [g[0].label.split("→")[0]] + [m.label.split("→")[-1] for m in g]
        if names[0] in ("CLOSED", "LISTEN") and len(names) > 2:
            names = names[1:]
        ax.text(g[0].t, 0.985, "→".join(names), transform=tr, rotation=90, fontsize=STATE_FONT,
                color="#555555", va="top", ha="right", zorder=6, clip_on=True)


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
