"""render_ladder / ladder_main on scapy-crafted conversations."""
from __future__ import annotations

import re

from scapy.layers.inet import ICMP, IP, TCP, UDP

from stack.ladder import ladder_main, parse_tcp_options, render_ladder
from stack.pcap import PcapWriter

HOST, STACK = "192.0.2.1", "192.0.2.2"
CISN, SISN = 4_294_967_000, 777  # the client's ISN wraps past 2**32 during the transfer


def c2s(flags, seq, ack=0, data=b"", **kw):
    return IP(src=HOST, dst=STACK) / TCP(sport=40000, dport=80, flags=flags, seq=seq % 2**32,
                                         ack=ack % 2**32, **kw) / data


def s2c(flags, seq, ack=0, data=b"", **kw):
    return IP(src=STACK, dst=HOST) / TCP(sport=80, dport=40000, flags=flags, seq=seq % 2**32,
                                         ack=ack % 2**32, **kw) / data


REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 20  # 540 bytes: crosses the seq wrap
CONVERSATION = [
    c2s("S", CISN, window=64240, options=[("MSS", 1460), ("SAckOK", b""),
                                          ("Timestamp", (2873, 0)), ("NOP", None),
                                          ("WScale", 7)]),
    s2c("SA", SISN, CISN + 1, window=65535, options=[("MSS", 1460), ("WScale", 7)]),
    c2s("A", CISN + 1, SISN + 1, window=502),
    c2s("PA", CISN + 1, SISN + 1, REQUEST, window=502),
    s2c("A", SISN + 1, CISN + 1 + len(REQUEST), window=65535),
    s2c("FA", SISN + 1, CISN + 1 + len(REQUEST), window=65535),
    c2s("R", CISN + 1 + len(REQUEST)),
]


def lines_of(pkts, **kw):
    return render_ladder([(100 + i * 0.5, bytes(p)) for i, p in enumerate(pkts)],
                         **kw).splitlines()


def test_handshake_data_and_teardown():
    header, *rows = lines_of(CONVERSATION)
    assert header.split() == ["time", "client", "server"]
    assert len(rows) == len(CONVERSATION)
    expect = [  # (direction, label) relative to each side's ISN, like Wireshark
        ("->", "SYN seq=0 win=64240 len=0"),
        ("<-", "SYN-ACK seq=0 ack=1 win=65535 len=0"),
        ("->", "ACK seq=1 ack=1 win=64256 len=0"),  # 502 << wscale 7
        ("->", f"PSH,ACK seq=1 ack=1 win=64256 len={len(REQUEST)}"),
        ("<-", f"ACK seq=1 ack={1 + len(REQUEST)} win={65535 << 7} len=0"),
        ("<-", f"FIN,ACK seq=1 ack={1 + len(REQUEST)} win={65535 << 7} len=0"),
        ("->", f"RST seq={1 + len(REQUEST)} win={8192 << 7} len=0"),
    ]
    for row, (direction, label), i in zip(rows, expect, range(99)):
        assert row.startswith(f"{i * 0.5:10.6f}  |")
        assert f" {label} " in row, row
        arrow = row[12:]
        if direction == "->":
            assert re.match(r"\|-- .* -+>\|", arrow), row
        else:
            assert re.match(r"\|<-+ .* --\|", arrow), row
    assert rows[0].endswith("|  mss=1460 sack_perm ts=2873/0 wscale=7")
    assert rows[1].endswith("|  mss=1460 wscale=7")
    assert rows[2].endswith("|")  # no options shown on non-SYN segments
    assert len({row.rindex("|") for row in rows}) == 1  # right column lines up


def test_labels_and_stack_on_the_right_even_when_it_speaks_first():
    pkts = [CONVERSATION[1], CONVERSATION[2]]
    header, first, second = lines_of(pkts, local_label="kernel", remote_label="tunstack")
    assert header.split() == ["time", "kernel", "tunstack"]
    assert "|<-" in first and "|--" in second


def test_without_stack_address_first_sender_is_left():
    pkts = [p.copy() for p in CONVERSATION[:2]]
    for p in pkts:
        p[IP].src, p[IP].dst = {HOST: ("10.0.0.5", "10.0.0.9"),
                                STACK: ("10.0.0.9", "10.0.0.5")}[p[IP].src]
    _, first, second = lines_of(pkts)
    assert "|-- SYN " in first and "|<-" in second


def test_mid_stream_capture_counts_from_first_seen():
    _, row = lines_of([c2s("PA", 5000, 9000, b"abc")])
    assert " PSH,ACK seq=0 ack=0 win=8192 len=3 " in row  # no SYNs seen: raw window


def test_window_unscaled_unless_both_syns_offer_wscale():
    syn = c2s("S", CISN, window=1000, options=[("WScale", 7)])
    synack = s2c("SA", SISN, CISN + 1, window=2000)  # no wscale: RFC 7323 2.2, off
    rows = lines_of([syn, synack, c2s("A", CISN + 1, SISN + 1, window=300)])
    assert " win=1000 " in rows[1] and " win=2000 " in rows[2] and " win=300 " in rows[3]


def test_several_connections_get_headers_and_own_isns():
    other = IP(src=HOST, dst=STACK) / TCP(sport=40001, dport=80, flags="S", seq=42)
    text = lines_of([CONVERSATION[0], other, CONVERSATION[1]])
    assert text[1].strip() == "== 192.0.2.1:40000 -> 192.0.2.2:80 =="
    assert text[3].strip() == "== 192.0.2.1:40001 -> 192.0.2.2:80 =="
    assert " SYN seq=0 " in text[4] and " SYN-ACK seq=0 ack=1 " in text[5]


def test_non_tcp_and_malformed_packets():
    pkts = [IP(src=HOST, dst=STACK) / UDP(sport=5, dport=9) / b"xy",
            IP(src=STACK, dst=HOST) / ICMP(type=0)]
    rows = render_ladder([(0, bytes(p)) for p in pkts] + [(1, b"\x60" + bytes(39)),
                                                          (2, b"\x45\x00")]).splitlines()
    assert " UDP 5>9 len=2 " in rows[1] and "|--" in rows[1]
    assert " ICMP echo-reply code=0 " in rows[2] and "|<-" in rows[2]
    assert rows[3] == "(2 non-IPv4 or malformed packet(s) not shown)"


def test_options_parser():
    opts = bytes(TCP(options=[("MSS", 536), ("NOP", None), ("SAck", (10, 20, 30, 40)),
                              ("WScale", 14), ("EOL", None)]))[20:]
    assert parse_tcp_options(opts) == ["mss=536", "sack=10-20,30-40", "wscale=14"]
    assert parse_tcp_options(b"\x02\x04\x05") == ["bad-options"]
    assert parse_tcp_options(b"\xfe\x02") == ["opt254"]


def test_ladder_main_reads_pcap(tmp_path, capsys):
    path = tmp_path / "c.pcap"
    with PcapWriter(path) as w:
        for i, p in enumerate(CONVERSATION):
            w.write(bytes(p), 50 + i)
    assert ladder_main([str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 + len(CONVERSATION)
    assert " SYN-ACK seq=0 ack=1 " in out[2] and out[2].startswith("  1.000000  |<")


def test_ladder_main_errors(tmp_path, capsys):
    assert ladder_main([str(tmp_path / "missing.pcap")]) == 1
    assert "tunstack ladder:" in capsys.readouterr().err
    (tmp_path / "bad.pcap").write_bytes(b"not a pcap at all, no no no")
    assert ladder_main([str(tmp_path / "bad.pcap")]) == 1
    assert "not a pcap file" in capsys.readouterr().err


# --- issue 9: options on every segment, retransmissions, drops, filters ----------------------

MSS = 100
DATA = [c2s("A", CISN + 1 + i * MSS, SISN + 1, bytes([65 + i]) * MSS, window=502) for i in range(4)]
SACKED = s2c("A", SISN + 1, CISN + 1 + MSS, window=65535,
             options=[("NOP", None), ("NOP", None), ("Timestamp", (7, 9)),
                      ("SAck", ((CISN + 1 + 2 * MSS) % 2**32, (CISN + 1 + 4 * MSS) % 2**32))])
RETX = DATA[1].copy()
LOSSY = CONVERSATION[:3] + DATA + [SACKED, RETX]


def test_sack_blocks_on_dup_acks_relative_and_timestamps_only_when_asked():
    rows = lines_of(LOSSY)[1:]
    dup = rows[3 + 4]
    assert dup.endswith(f"|  sack={1 + 2 * MSS}-{1 + 4 * MSS}"), dup      # relative, no ts
    with_ts = lines_of(LOSSY, show_ts=True)[1 + 3 + 4]
    assert with_ts.endswith(f"|  ts=7/9 sack={1 + 2 * MSS}-{1 + 4 * MSS}"), with_ts


def test_retransmissions_are_marked_and_first_transmissions_are_not():
    rows = lines_of(LOSSY)[1:]
    marked = [i for i, r in enumerate(rows) if "[retransmit]" in r]
    assert marked == [len(LOSSY) - 1]
    assert f" ACK seq={1 + MSS} ack=1 win=64256 len={MSS} [retransmit] " in rows[-1]


def _drop_event(t, pkt, reason="rule data:2", direction="ab"):
    return {"t": t, "ev": "impair", "dir": direction, "action": "drop", "reason": reason,
            "seq": pkt[TCP].seq, "flags": "P." if "P" in str(pkt[TCP].flags) else ".",
            "paylen": len(pkt[TCP].payload), "sport": pkt[TCP].sport, "dport": pkt[TCP].dport}


def test_a_drop_the_capture_holds_is_marked_on_its_row():
    trace = [_drop_event(100 + 4 * 0.5, DATA[1])]          # same clock as the capture (simulator)
    rows = lines_of(LOSSY, trace=trace)[1:]
    hit = rows[4]
    assert f" ACK seq={1 + MSS} ack=1 win=64256 len={MSS} " in hit
    assert re.search(r"-×   \|  dropped \(rule data:2\)$", hit), hit
    assert sum("×" in r for r in rows) == 1                # the retransmission got through
    assert "×" not in lines_of(LOSSY, trace=[_drop_event(100 + 9, DATA[1])])[5]  # another time


def test_a_drop_only_the_trace_saw_gets_its_own_row_on_the_capture_clock():
    wall, mono = 1_700_000_000.0, 5000.0                   # runtime: pcap wall clock, trace monotonic
    pkts = [p for p in LOSSY if p is not DATA[1]]          # the link lost it before the capture
    times = [wall + i * 0.5 for i in range(len(pkts))]
    trace = [{"t": mono, "ev": "state", "conn": "x", "old": "CLOSED", "new": "SYN_SENT"},
             _drop_event(mono + 3 * 0.5 + 0.25, DATA[1], direction="out")]
    rows = render_ladder(list(zip(times, map(bytes, pkts))), trace=trace).splitlines()[1:]
    assert len(rows) == len(LOSSY)
    dropped = rows[4]
    assert dropped.startswith("  1.750000  |-- ACK seq=101 len=100 ") and "×   |" in dropped
    assert dropped.endswith("dropped (rule data:2, from the trace)")
    assert "[retransmit]" in rows[-1]


def test_connection_and_time_filters():
    other = [IP(src=HOST, dst=STACK) / TCP(sport=40001, dport=80, flags="S", seq=42),
             IP(src=STACK, dst=HOST) / TCP(sport=80, dport=40001, flags="SA", seq=9, ack=43)]
    pkts = CONVERSATION[:2] + other + CONVERSATION[2:4]
    only = lines_of(pkts, conn="40001")[1:]
    assert len(only) == 2 and all("SYN" in r for r in only) and "==" not in "".join(only)
    assert len(lines_of(pkts, conn=f"{STACK}:80-{HOST}:40000")) == 1 + 4
    assert len(lines_of(pkts, conn=f"{HOST}:40000")) == 1 + 4
    window = lines_of(pkts, t_from=0.5, t_to=1.5)[1:]     # rows at 0.5, 1.0, 1.5
    assert [r[:10].strip() for r in window if not r.lstrip().startswith("==")] == \
        ["0.500000", "1.000000", "1.500000"]


def test_ladder_main_filters_and_trace_and_clean_errors(tmp_path, capsys):
    path, trace = tmp_path / "c.pcap", tmp_path / "t.jsonl"
    with PcapWriter(path) as w:
        for i, p in enumerate(LOSSY):
            w.write(bytes(p), 50 + i)
    trace.write_text(__import__("json").dumps(_drop_event(54, DATA[1])) + "\n")
    assert ladder_main([str(path), "--trace", str(trace), "--from", "4", "--to", "4"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and "×" in out[1] and "dropped (rule data:2)" in out[1]
    for argv, word in ((["--conn", "nonsense"], "bad connection"),
                       (["--from", "3", "--to", "1"], "empty time range"),
                       (["--trace", str(tmp_path / "none.jsonl")], "none.jsonl")):
        assert ladder_main([str(path)] + argv) == 1
        err = capsys.readouterr().err
        assert err.startswith("tunstack ladder:") and word in err and "Traceback" not in err


def test_serve_never_captures_a_segment_dropped_on_the_way_out():
    """'serve --pcap' writes outgoing packets after --impair-out: a dir=out drop is its own
    row even when a copy with the same seq (its retransmission) is in the capture."""
    trace = [_drop_event(100 + 4 * 0.5, DATA[1], direction="out")]
    rows = lines_of(LOSSY, trace=trace)[1:]
    assert len(rows) == len(LOSSY) + 1
    assert [r.endswith("dropped (rule data:2, from the trace)") for r in rows].count(True) == 1
    assert sum("×" in r for r in rows) == 1


def test_tunstack_ladder_passes_the_new_options_through(tmp_path, capsys):
    from stack.cli import main
    path, trace = tmp_path / "c.pcap", tmp_path / "t.jsonl"
    with PcapWriter(path) as w:
        for i, p in enumerate(LOSSY):
            w.write(bytes(p), 50 + i)
    trace.write_text(__import__("json").dumps(_drop_event(54, DATA[1])) + "\n")
    assert main(["ladder", str(path), "--trace", str(trace), "--conn", "40000", "--from", "3.5",
                 "--to", "8", "--ts"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 + 5 and "×" in out[1] and "ts=7/9" in out[-2] and "[retransmit]" in out[-1]
