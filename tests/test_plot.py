"""stack.plot: the time-sequence graph and the cwnd/RTT plot, their data, and ``tunstack plot``.

Real inputs come from the simulator (stack.plot.record_demo: a pcap captured at the sender
and a JSON-lines trace of the same transfer); edge cases (wraparound, window scaling,
captures without SYNs, a sender past the window) come from packets built here.
"""
from __future__ import annotations

import json
import struct
import sys

import pytest

pytest.importorskip("matplotlib")

from stack import plot  # noqa: E402
from stack.pcap import PcapWriter  # noqa: E402
from stack.plot import PlotError, cwnd_data, parse_conn, plot_main, time_sequence_data  # noqa: E402
from stack.wire.ipv4 import aton, build_ipv4  # noqa: E402
from stack.wire.tcp import ACK, SYN, TcpSegment, build_tcp  # noqa: E402
from stack.wire.udp import build_udp  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ONE_DROP = "drop=data:12"          # exactly one data segment lost: one SACK retransmission


# ------------------------------------------------------------------ recorded runs
@pytest.fixture(scope="module")
def one_drop(tmp_path_factory):
    """200 kB over a link that drops the 12th data segment, and nothing else."""
    d = tmp_path_factory.mktemp("one_drop")
    run = plot.record_demo(d / "run.pcap", d / "run.jsonl", impair=ONE_DROP, size=200_000,
                           delay=0.005, rcvbuf=4 << 20)
    assert run.intact
    return run


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The docs' example run: slow start, window limit, SACK recovery, lost retransmission, RTO."""
    d = tmp_path_factory.mktemp("demo")
    run = plot.record_demo(d / "demo.pcap", d / "demo.jsonl")
    assert run.intact
    return run


@pytest.fixture(scope="module")
def tail_loss(tmp_path_factory):
    """20 segments; the last one (it carries the FIN) is dropped three times."""
    d = tmp_path_factory.mktemp("tail")
    run = plot.record_demo(d / "t.pcap", d / "t.jsonl", impair="drop=data:20x3", size=20 * 1448, delay=0.005)
    assert run.intact
    return run


def _events(trace_path):
    return [json.loads(line) for line in open(trace_path)]


def _png_size(path) -> tuple[int, int]:
    data = open(path, "rb").read()
    assert data[:8] == PNG_MAGIC, "not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack("!II", data[16:24])


def _assert_good_png(path, min_bytes=20_000, max_bytes=600_000):
    size = path.stat().st_size
    assert min_bytes < size < max_bytes, size
    width, height = _png_size(path)
    assert 900 <= width <= 1400 and 500 <= height <= 1000, (width, height)


# ------------------------------------------------------------------ time-sequence data
def test_time_sequence_flags_exactly_the_retransmitted_segment(one_drop):
    d = time_sequence_data(one_drop.pcap)
    assert d.name == one_drop.conn  # the direction with the data
    rxt = [e for e in _events(one_drop.trace) if e["ev"] == "retransmit" and e["conn"] == one_drop.conn]
    assert len(rxt) == 1
    assert [(s.seq, s.length) for s in d.retransmissions] == [((rxt[0]["seq"] - d.isn) % 2**32, rxt[0]["len"])]
    # the capture is at the sender, before the link: the lost original is in it, sent once before
    originals = [s for s in d.segments if s.seq == d.retransmissions[0].seq and not s.retransmit]
    assert len(originals) == 1 and originals[0].t < d.retransmissions[0].t


def test_time_sequence_relative_numbers_acks_and_sack(one_drop):
    d = time_sequence_data(one_drop.pcap)
    assert d.isn_seen and d.segments[0].syn and (d.segments[0].seq, d.segments[0].end) == (0, 1)
    data = [s for s in d.segments if s.length]
    assert data[0].seq == 1
    assert d.data_bytes == 200_000 and d.bytes_sent == 200_000 + d.retransmissions[0].length
    assert d.segments[-1].fin and d.segments[-1].end == 200_002
    assert max(a.ack for a in d.acks) == 200_002 and d.bytes_acked == 200_001
    assert d.sack_permitted and d.wscale is not None and d.mss == 1460
    hole = d.retransmissions[0].seq
    sacked = [a for a in d.acks if a.sack]
    assert sacked and all(a.ack == hole for a in sacked)           # stuck at the hole ...
    assert all(left > hole for a in sacked for left, _ in a.sack)  # ... with the data above it SACKed
    assert all(a.window > 0 and a.edge == a.ack + a.window for a in d.acks)
    assert d.beyond_window == []


def test_time_sequence_either_order_of_conn_and_default_choice(one_drop):
    (a, b) = parse_conn(one_drop.conn)
    forward = time_sequence_data(one_drop.pcap, one_drop.conn)
    backward = time_sequence_data(one_drop.pcap, f"{b[0]}:{b[1]}-{a[0]}:{a[1]}")
    assert forward.sender == backward.sender == a  # the receiver sent no data: the data direction is used
    assert len(forward.segments) == len(backward.segments)
    assert plot.pcap_connections(one_drop.pcap)[one_drop.conn] == forward.bytes_sent


# ------------------------------------------------------------------ cwnd data
def test_cwnd_series_equals_the_cc_events(demo):
    d = cwnd_data(demo.trace)
    assert d.conn == demo.conn
    cc = [e for e in _events(demo.trace) if e["ev"] == "cc" and e["conn"] == demo.conn]
    assert [(round(p.t + d.start, 6), p.cwnd, p.why, p.phase) for p in d.cc] == \
           [(e["t"], e["cwnd"], e["why"], e["phase"]) for e in cc]
    assert [p.ssthresh for p in d.cc] == [None if e["ssthresh"] >= 2**31 - 1 else e["ssthresh"] for e in cc]
    assert d.algorithms == ["newreno"]
    assert {p.phase for p in d.cc} >= {"slow_start", "recovery", "congestion_avoidance"}


def test_cwnd_marks_every_retransmission_with_its_why(demo):
    d = cwnd_data(demo.trace)
    rxt = [e for e in _events(demo.trace) if e.get("conn") == demo.conn and e["ev"] == "retransmit"]
    assert rxt and [(m.kind, m.seq, m.length) for m in d.retransmits] == [(e["why"], e["seq"], e["len"]) for e in rxt]
    assert {m.kind for m in d.retransmits} <= set(plot.RETRANSMIT_STYLE)
    assert "SYN_SENT→ESTABLISHED" in [m.label for m in d.states]
    samples = [r for r in d.rtt if r.sample is not None]
    assert [r.sample for r in samples] == [e["sample"] for e in _events(demo.trace)
                                           if e["ev"] == "rtt" and e["conn"] == demo.conn]


def test_tail_loss_rto_backoff_in_both_views(tail_loss):
    """The last segment lost three times: probe, RTO, RTO again (RFC 6298 5.5 doubles the RTO)."""
    d = cwnd_data(tail_loss.trace)
    rtos = [m for m in d.retransmits if m.kind == "rto"]
    assert len(rtos) >= 2 and len({m.seq for m in d.retransmits}) == 1
    after = [next(r.rto for r in d.rtt if r.t >= m.t and r.rto) for m in rtos]
    assert after[1] == 2 * after[0]
    assert [p.cwnd for p in d.cc if p.why == "rto"][0] == d.cc[0].mss  # RFC 5681 3.1: LW = 1 SMSS
    assert len([m for m in d.marks if m.kind == "drop"]) == 3
    ts = time_sequence_data(tail_loss.pcap)
    assert {(s.seq, s.length) for s in ts.retransmissions} == \
           {((m.seq - ts.isn) % 2**32, m.length) for m in d.retransmits}
    assert len(ts.retransmissions) == len(d.retransmits)


def test_cwnd_link_drops_are_attributed_by_sequence_number(one_drop):
    d = cwnd_data(one_drop.trace)
    drops = [m for m in d.marks if m.kind == "drop"]
    rxt = d.retransmits
    assert len(drops) == 1 and drops[0].seq == rxt[0].seq and drops[0].t < rxt[0].t


def test_cwnd_picks_the_busiest_connection_and_accepts_either_name(one_drop):
    a, b = parse_conn(one_drop.conn)
    assert cwnd_data(one_drop.trace).conn == one_drop.conn
    receiver = f"{b[0]}:{b[1]}-{a[0]}:{a[1]}"
    assert cwnd_data(one_drop.trace).others == [receiver]
    assert cwnd_data(one_drop.trace, receiver).conn == receiver  # the receiver's own (few) cc events
    events = [e for e in _events(one_drop.trace) if e.get("conn") != receiver]
    assert cwnd_data(events, receiver).conn == one_drop.conn      # reversed name, when only one side is traced


# ------------------------------------------------------------------ drawing
def test_plots_are_valid_pngs(demo, tmp_path):
    ts = plot.time_sequence(demo.pcap, tmp_path / "ts.png")
    cw = plot.cwnd_plot(demo.trace, tmp_path / "cw.png")
    assert len(ts.retransmissions) > 0 and len(cw.retransmits) > 0
    _assert_good_png(tmp_path / "ts.png")
    _assert_good_png(tmp_path / "cw.png")
    plot.cwnd_plot(demo.trace, tmp_path / "seg.png", segments=True, tmin=0.1, tmax=0.6)
    plot.time_sequence(demo.pcap, tmp_path / "zoom.svg", tmin=0.2, tmax=0.5)
    _assert_good_png(tmp_path / "seg.png")
    assert (tmp_path / "zoom.svg").read_text().lstrip().startswith("<?xml")


# ------------------------------------------------------------------ crafted packets
A, B = ("10.0.0.1", 1000), ("10.0.0.2", 80)


def _tcp(src, dst, seq, ack=0, flags=ACK, window=1000, payload=b"", **opts) -> bytes:
    seg = TcpSegment(src[1], dst[1], seq % 2**32, ack % 2**32, flags, window, payload, **opts)
    body = build_tcp(seg, aton(src[0]), aton(dst[0]))
    return build_ipv4(aton(src[0]), aton(dst[0]), 6, len(body)) + body


def _write(path, packets):
    with PcapWriter(str(path)) as w:
        for i, p in enumerate(packets):
            w.write(p, 1000.0 + i * 0.01)
    return path


def _handshake(isn_a, isn_b, ws_a=2, ws_b=3, win_b=60000):
    return [_tcp(A, B, isn_a, 0, SYN, 65535, mss=1000, wscale=ws_a, sack_perm=True),
            _tcp(B, A, isn_b, isn_a + 1, SYN | ACK, win_b, mss=1000, wscale=ws_b, sack_perm=True),
            _tcp(A, B, isn_a + 1, isn_b + 1)]


def test_sequence_numbers_unwrap_and_window_is_scaled(tmp_path):
    isn = 2**32 - 1500  # the data crosses 2**32
    pkts = _handshake(isn, 7)
    pkts += [_tcp(A, B, isn + 1 + i * 1000, 8, payload=b"x" * 1000) for i in range(3)]
    pkts += [_tcp(B, A, 8, isn + 2001, window=500, sack=[((isn + 3001) % 2**32, (isn + 4001) % 2**32)])]
    pkts += [_tcp(A, B, isn + 1001, 8, payload=b"x" * 1000)]  # resend: across the wrap
    pkts += [_tcp(B, A, 8, isn + 4001, window=500)]
    d = time_sequence_data(_write(tmp_path / "w.pcap", pkts))
    assert d.wscale == 3 and d.mss == 1000 and d.sack_permitted
    assert [(s.seq, s.end, s.retransmit) for s in d.segments] == \
           [(0, 1, False), (1, 1001, False), (1001, 2001, False), (2001, 3001, False), (1001, 2001, True)]
    assert [(a.ack, a.window) for a in d.acks] == [(1, 60000), (2001, 4000), (4001, 4000)]  # SYN,ACK unscaled
    assert d.acks[1].sack == [(3001, 4001)]


def test_no_syn_in_capture_means_unknown_scale(tmp_path):
    pkts = [_tcp(A, B, 5000 + i * 100, 9, payload=b"y" * 100) for i in range(4)] + [_tcp(B, A, 9, 5400, window=7)]
    d = time_sequence_data(_write(tmp_path / "n.pcap", pkts))
    assert not d.isn_seen and d.wscale is None
    assert [s.seq for s in d.segments] == [0, 100, 200, 300] and d.acks[0].window == 7


def test_segments_past_the_offered_window_are_flagged(tmp_path):
    pkts = _handshake(100, 200, ws_a=0, ws_b=0, win_b=2000)                  # edge: rel 1 + 2000
    pkts += [_tcp(A, B, 101 + i * 1000, 201, payload=b"z" * 1000) for i in range(3)]  # the third ends at 3001
    pkts += [_tcp(B, A, 201, 2101, window=0)]                                # zero window at 2101 ...
    pkts += [_tcp(A, B, 2101, 201, payload=b"p")]                            # ... a 1-octet probe: allowed
    d = time_sequence_data(_write(tmp_path / "b.pcap", pkts))
    assert [(s.seq, s.end) for s in d.beyond_window] == [(2001, 3001)]
    assert d.acks[-1].window == 0 and d.segments[-1].retransmit  # the probe octet was sent before
    plot.time_sequence(tmp_path / "b.pcap", tmp_path / "b.png")
    _png_size(tmp_path / "b.png")


# ------------------------------------------------------------------ the command line
def _run(capsys, *argv):
    code = plot_main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def test_cli_draws_both_plots(demo, tmp_path, capsys):
    code, out, err = _run(capsys, "timeseq", demo.pcap, "-o", tmp_path / "t.png", "--conn", demo.conn)
    assert code == 0 and "wrote" in out and err == ""
    code, out, err = _run(capsys, "cwnd", demo.trace, "-o", tmp_path / "c.png", "--segments",
                          "--from", "0.1", "--to", "1")
    assert code == 0 and demo.conn in out
    _assert_good_png(tmp_path / "t.png")
    _assert_good_png(tmp_path / "c.png")


def test_cli_default_output_next_to_the_input(one_drop, tmp_path, capsys):
    import shutil
    trace = shutil.copy(one_drop.trace, tmp_path / "run.jsonl")
    assert _run(capsys, "cwnd", trace)[0] == 0
    assert (tmp_path / "run.cwnd.png").exists()


def test_cli_demo_writes_data_and_plots(tmp_path, capsys):
    code, out, _ = _run(capsys, "demo", tmp_path / "d", "--size", "100000", "--impair", ONE_DROP, "--cc", "cubic")
    assert code == 0
    for name in ("demo.pcap", "demo.jsonl", "demo-timeseq.png", "demo-cwnd.png"):
        assert (tmp_path / "d" / name).stat().st_size > 0
    assert cwnd_data(tmp_path / "d" / "demo.jsonl").algorithms == ["cubic"]


def test_cli_help(capsys):
    code, out, _ = _run(capsys, "--help")
    assert code == 0 and "timeseq" in out and "cwnd" in out and "demo" in out
    code, out, _ = _run(capsys, "timeseq", "--help")
    assert code == 0 and "--conn" in out and "--from" in out


def _one_line_error(capsys, *argv, expect=""):
    code, out, err = _run(capsys, *argv)
    assert code == 1, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tunstack plot: "), err
    assert expect in lines[0], lines[0]
    return lines[0]


def test_cli_errors_are_one_line(one_drop, tmp_path, capsys):
    out = tmp_path / "x.png"
    _one_line_error(capsys, "timeseq", tmp_path / "missing.pcap", "-o", out, expect="no such file")
    _one_line_error(capsys, "cwnd", tmp_path / "missing.jsonl", "-o", out, expect="no such file")
    _one_line_error(capsys, "timeseq", one_drop.trace, "-o", out, expect="not a pcap")
    _one_line_error(capsys, "cwnd", one_drop.pcap, "-o", out, expect="not a JSON-lines trace")
    _one_line_error(capsys, "timeseq", tmp_path, "-o", out, expect="directory")
    line = _one_line_error(capsys, "timeseq", one_drop.pcap, "-o", out, "--conn", "1.2.3.4:5-6.7.8.9:10",
                           expect="no connection 1.2.3.4:5-6.7.8.9:10")
    assert one_drop.conn in line  # says which connections there are
    line = _one_line_error(capsys, "cwnd", one_drop.trace, "-o", out, "--conn", "1.2.3.4:5-6.7.8.9:10",
                           expect="no cc events for connection")
    assert one_drop.conn in line
    _one_line_error(capsys, "cwnd", one_drop.trace, "-o", out, "--conn", "nonsense", expect="IP:PORT-IP:PORT")
    _one_line_error(capsys, "cwnd", one_drop.trace, "-o", out, "--conn", "1.2.3:4-5.6.7.8:9", expect="bad endpoint")
    _one_line_error(capsys, "cwnd", one_drop.trace, "-o", out, "--from", "50", expect="after 50 s")
    _one_line_error(capsys, "cwnd", one_drop.trace, "-o", out, "--from", "2", "--to", "1", expect="empty time range")
    _one_line_error(capsys, "cwnd", one_drop.trace, "-o", tmp_path / "no" / "dir.png", expect="cannot write")
    _one_line_error(capsys, "cwnd", one_drop.trace, "-o", tmp_path / "x.nosuchformat", expect="cannot write")
    _one_line_error(capsys, "demo", tmp_path / "d", "--impair", "loss=lots", expect="loss")
    _one_line_error(capsys, "demo", tmp_path / "d", "--cc", "vegas", expect="unknown congestion control")
    assert not out.exists()


def test_cli_no_tcp_and_no_cc_events(tmp_path, capsys):
    udp = build_udp(53, 53, b"q", aton("10.0.0.1"), aton("10.0.0.2"))
    udp = build_ipv4(aton("10.0.0.1"), aton("10.0.0.2"), 17, len(udp)) + udp
    _one_line_error(capsys, "timeseq", _write(tmp_path / "udp.pcap", [udp]), expect="no TCP segments")
    _one_line_error(capsys, "timeseq", _write(tmp_path / "empty.pcap", []), expect="no TCP segments")
    _one_line_error(capsys, "timeseq", _write(tmp_path / "hs.pcap", _handshake(1, 2)), expect="no TCP data")
    trace = tmp_path / "t.jsonl"
    trace.write_text('{"t":0.0,"ev":"state","conn":"a","old":"CLOSED","new":"SYN_SENT"}\n{"t": 0.1, "ev"')
    _one_line_error(capsys, "cwnd", trace, expect="no cc (congestion control) events")
    (tmp_path / "e.jsonl").write_text("")
    _one_line_error(capsys, "cwnd", tmp_path / "e.jsonl", expect="not a JSON-lines trace")


def test_cli_without_matplotlib(one_drop, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    _one_line_error(capsys, "cwnd", one_drop.trace, "-o", tmp_path / "x.png", expect="pip install")


def test_cli_usage_error_returns_2(capsys):
    code, _, err = _run(capsys, "cwnd")
    assert code == 2 and "usage:" in err
    code, _, err = _run(capsys, "cwnd", "x.jsonl", "--from", "soon")
    assert code == 2 and "not a number of seconds" in err


def test_parse_conn():
    assert parse_conn("192.0.2.2:80-192.0.2.1:40000") == (("192.0.2.2", 80), ("192.0.2.1", 40000))
    for bad in ("192.0.2.2:80", "a:1-b:2", "1.2.3.4:99999-1.2.3.4:1", "1.2.3.4-1.2.3.4:1"):
        with pytest.raises(PlotError):
            parse_conn(bad)


@pytest.mark.parametrize("span", [1.0, 0.2, 30.0])
def test_state_labels_never_overlap(span):
    """Issue 9: cwnd.png's state labels overprinted; measure the drawn text boxes."""
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from stack.plot.data import Mark
    from stack.plot.draw import _state_labels
    names = ["CLOSED", "SYN_SENT", "ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2", "TIME_WAIT"]
    gaps = [0.0, 0.04, 0.016, 0.016, 0.9, 0.005]            # fractions of the span, some tiny
    t, states = 0.0, []
    for old, new, g in zip(names, names[1:], gaps[1:]):
        t += g * span
        states.append(Mark(t, "state", f"{old}→{new}"))
    fig = Figure(figsize=(11, 7.6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.07, 0.4, 0.62, 0.52))
    ax.set_xlim(0, span)
    _state_labels(ax, states, span)
    renderer = fig.canvas.get_renderer()
    boxes = sorted((txt.get_window_extent(renderer) for txt in ax.texts), key=lambda b: b.x0)
    assert 2 <= len(boxes) < len(states)                    # the close ones share a label
    for a, b in zip(boxes, boxes[1:]):
        assert b.x0 - a.x1 >= 4, (a, b)                     # side by side with a clear gap
    words = " ".join(txt.get_text() for txt in ax.texts)
    assert all(n in words for n in names[1:])               # every state is still named


# ------------------------------------------------------------------ window and ladder pictures
def test_window_at_reads_the_send_sequence_space(one_drop):
    ts = time_sequence_data(one_drop.pcap)
    hole = next(s for s in ts.segments if s.retransmit)     # the 12th data segment, resent
    lost_at = hole.seq
    w = plot.window_at(ts, hole.t)                           # as the hole is resent
    last = [a for a in ts.acks if a.t <= hole.t][-1]
    assert w.snd_una == lost_at == 1 + 11 * w.mss           # the hole is the oldest unacknowledged byte
    assert w.sacked and w.sacked[0][0] == lost_at + w.mss    # the receiver holds what came after it
    assert w.snd_nxt == max(s.end for s in ts.segments if s.t <= w.t)
    assert w.snd_wnd == last.window and w.usable == max(0, w.snd_una + w.snd_wnd - w.snd_nxt)
    with pytest.raises(PlotError, match="nothing sent and acknowledged"):
        plot.window_at(ts, -1.0)


def test_cli_window_and_ladder_pictures(one_drop, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    ts = time_sequence_data(one_drop.pcap)
    t = next(a.t for a in ts.acks if a.sack)
    code, out, _ = _run(capsys, "window", one_drop.pcap, "--at", t, "-o", tmp_path / "w.png")
    assert code == 0 and "SND.UNA=" in out and "1 SACK block(s)" in out
    assert _png_size(tmp_path / "w.png")[0] >= 900
    rows = [r for r in __import__("stack.ladder", fromlist=["x"]).ladder_rows(
        __import__("stack.pcap", fromlist=["x"]).read_pcap(one_drop.pcap)).rows if r.header is None]
    t_drop = next(r.t for r in rows if r.retransmit) - rows[0].t
    code, out, _ = _run(capsys, "ladder", one_drop.pcap, "--trace", one_drop.trace, "-o",
                        tmp_path / "l.png", "--from", t_drop - 0.02, "--to", t_drop)
    assert code == 0 and " 1 dropped, 1 retransmitted" in out, out
    assert _png_size(tmp_path / "l.png")[0] >= 900
    code, _, err = _run(capsys, "ladder", one_drop.pcap, "-o", tmp_path / "x.png")
    assert code == 1 and "too many for one picture" in err
    code, _, err = _run(capsys, "window", one_drop.pcap, "--at", "0.0001", "-o", tmp_path / "y.png")
    assert code == 1 and "nothing sent" in err
