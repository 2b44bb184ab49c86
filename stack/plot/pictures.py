"""Teaching pictures: the send window at one moment, and a Stevens-style ladder.

* :func:`window_diagram` draws RFC 9293's send sequence space at one moment of a capture:
  acknowledged | sent, not yet acknowledged (SACKed blocks hatched) | may send now | may not
  send yet, with SND.UNA, SND.NXT and SND.UNA + SND.WND marked.
* :func:`ladder_picture` draws the rows of ``tunstack ladder`` as slanted arrows between
  two time lines (as in Stevens' TCP/IP Illustrated): retransmissions in red, segments the
  link dropped ending in ×, SACK blocks written on the ACKs.

Both only read a pcap (and, for drops, the trace of the same run).
"""
from __future__ import annotations

from .data import PlotError, WindowSnapshot, time_sequence_data, window_at
from .draw import _matplotlib, _save

C_ACKED, C_FLIGHT, C_SACKED, C_USABLE, C_RXT = "#d9d9d9", "#9ecae1", "#74c476", "#e5f5e0", "#d62728"


def window_data(pcap_path, at: float, conn=None) -> WindowSnapshot:
    return window_at(time_sequence_data(pcap_path, conn), at)


def window_diagram(pcap_path, out_png, at: float, conn=None) -> WindowSnapshot:
    """Draw the send window of ``conn`` (default: the busiest) at ``at`` seconds."""
    w = window_data(pcap_path, at, conn)
    Figure, _ticker = _matplotlib()
    fig = Figure(figsize=(11, 3.8), dpi=100)
    ax = fig.add_axes((0.04, 0.28, 0.92, 0.42))
    mss = w.mss or 1460
    right = w.snd_una + w.snd_wnd
    lo = max(0, w.snd_una - 4 * mss)
    hi = max(right, w.snd_nxt)
    hi += max(3 * mss, (hi - lo) // 12)
    bands = [(lo, w.snd_una, C_ACKED, "acknowledged"),
             (w.snd_una, w.snd_nxt, C_FLIGHT, "sent, not yet acknowledged"),
             (w.snd_nxt, max(w.snd_nxt, right), C_USABLE, "may send now (usable window)"),
             (max(w.snd_nxt, right), hi, "white", "may not send yet")]
    for a, b, colour, label in bands:
        if b > a:
            ax.axvspan(a, b, 0.35, 0.85, facecolor=colour, edgecolor="#555555", linewidth=0.8, label=label)
    for a, b in w.sacked:
        ax.axvspan(max(a, lo), min(b, hi), 0.35, 0.85, facecolor=C_SACKED, edgecolor="#2d6a2d",
                   hatch="///", linewidth=0.8, label="SACKed (the receiver holds it)" if a == w.sacked[0][0] else None)
    if (hi - lo) / mss <= 80:  # segment boundaries, as in the textbook picture
        first = w.snd_una - ((w.snd_una - lo) // mss) * mss
        for x in range(first, hi, mss):
            ax.axvline(x, 0.35, 0.85, color="#888888", linewidth=0.4)
    marks = [(w.snd_una, "SND.UNA"), (w.snd_nxt, "SND.NXT"), (right, "SND.UNA + SND.WND")]
    align = ["center"] * 3
    for i in range(2):  # two marks close together: their labels lean apart
        if (marks[i + 1][0] - marks[i][0]) / (hi - lo) < 0.12:
            align[i], align[i + 1] = "right", "left"
    for (x, name), ha in zip(marks, align):
        ax.annotate(f"{name}\n{x}", (x, 0.85), (x, 1.2), ha=ha, va="bottom", fontsize=9,
                    arrowprops=dict(arrowstyle="-|>", color="black", linewidth=0.8),
                    xycoords=("data", "axes fraction"), textcoords=("data", "axes fraction"))
    ax.annotate("", (w.snd_una, 0.25), (right, 0.25), xycoords=("data", "axes fraction"),
                arrowprops=dict(arrowstyle="<->", color="#555555", linewidth=0.8))
    ax.text((w.snd_una + right) / 2, 0.12, f"SND.WND = {w.snd_wnd} octets (offered by the receiver)",
            transform=ax.get_xaxis_transform(), ha="center", va="center", fontsize=9)
    ax.set_xlim(lo, hi)
    ax.set_yticks([])
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    ax.set_xlabel("sequence number (relative to the ISN)", fontsize=9)
    fig.suptitle(f"Send window of {w.name} at t = {w.t:g} s: {w.in_flight} octets in flight, "
                 f"{w.usable} usable", x=0.03, ha="left", fontsize=11)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.42), ncol=5, fontsize=8, frameon=False)
    _save(fig, out_png)
    return w


def ladder_picture(pcap_path, out_png, trace_path=None, conn=None, t_from=None, t_to=None,
                   stack_addr: str = "192.0.2.2", labels=("sender", "receiver"),
                   max_rows: int = 60):
    """Draw the ladder of a capture as slanted arrows, one row per segment in capture order
    (the capture point is the left column). Returns the rows drawn."""
    from ..ladder import RETRANSMIT, ladder_rows
    from ..pcap import read_pcap
    from .data import read_trace
    trace = read_trace(trace_path)[0] if trace_path else None
    try:
        lad = ladder_rows(read_pcap(pcap_path), stack_addr, trace=trace, conn=conn,
                          t_from=t_from, t_to=t_to)
    except (OSError, ValueError) as exc:
        raise PlotError(str(exc)) from None
    rows = [r for r in lad.rows if r.header is None]
    if not rows:
        raise PlotError("no segments to draw (check --conn and --from/--to)")
    if len(rows) > max_rows:
        raise PlotError(f"{len(rows)} segments are too many for one picture (at most {max_rows}): "
                        f"narrow it with --from/--to")
    Figure, _ticker = _matplotlib()
    height = 1.5 + 0.3 * len(rows)
    fig = Figure(figsize=(12, height), dpi=100)
    ax = fig.add_axes((0.40, 0.2 / height, 0.22, 1 - 0.75 / height))
    slant = 0.8  # rows are evenly spaced in capture order; an arrow crosses in 0.8 of a row
    for i, r in enumerate(rows):
        # the capture point is the left column: data leaves it at row i, an ACK reaches it there
        start, end = (i, i + slant) if r.rightward else (i - slant, i)
        x0, x1 = (0, 1) if r.rightward else (1, 0)
        colour = C_RXT if r.retransmit else "black"
        if r.dropped:   # the link lost it on the way: stop halfway, ×
            xm, ym = (x0 + x1) / 2, (start + end) / 2
            ax.plot([x0, xm], [start, ym], color=colour, linewidth=1)
            ax.plot([xm], [ym], marker="x", markersize=9, markeredgewidth=2, color=C_RXT)
        else:
            ax.annotate("", (x1, end), (x0, start),
                        arrowprops=dict(arrowstyle="-|>", color=colour, linewidth=1, shrinkA=0, shrinkB=0))
        text = r.label.replace(" " + RETRANSMIT, "")
        if r.retransmit:
            text += " (retransmission)"
        if r.dropped:
            text += " ×"
        if r.sack:
            text += "  SACK " + ",".join(f"{a}-{b}" for a, b in r.sack)
        if r.rightward:
            ax.text(1.05, end, text, fontsize=7.5, va="center", ha="left", color=colour, clip_on=False)
        else:
            ax.text(-0.05, end, text, fontsize=7.5, va="center", ha="right", color=colour, clip_on=False)
        ax.text(-1.75, i, f"{r.t - lad.t0:.4f}", fontsize=7, va="center", ha="left", color="#555555",
                clip_on=False)
    for x in (0, 1):
        ax.axvline(x, color="#333333", linewidth=1.5)
    ax.set_ylim(len(rows) + slant, -1 - slant)   # time runs down
    ax.set_xlim(-0.02, 1.02)
    ax.axis("off")
    ax.text(0, -1 - slant, labels[0], ha="center", va="bottom", fontsize=10, weight="bold")
    ax.text(1, -1 - slant, labels[1], ha="center", va="bottom", fontsize=10, weight="bold")
    ax.text(-1.75, -1 - slant, "time (s), at the " + labels[0], ha="left", va="bottom", fontsize=8,
            color="#555555")
    ax.text(-1.75, len(rows) + slant, "red: retransmission · ×: dropped by the link · "
            "seq/ack relative to each ISN", ha="left", va="top", fontsize=8, color="#555555")
    _save(fig, out_png)
    return rows
