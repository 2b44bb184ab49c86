"""Smoke test of the benchmark harness (tools/bench/) and the ceiling (tools/ceiling.py).

The end-to-end tests run a tiny benchmark: its own network namespace (tools/bench
re-executes itself under `unshare --net`), the ceiling, the kernel serving the same apps
over a veth pair into a nested namespace, and the stack when it starts; then the ceiling
and the stack with TUN offloads. They check the JSON's shape and that the numbers are sane,
not how fast anything is. The other tests cover the pure helpers and need no privileges
(the ofo micro-benchmark runs the TCP core in virtual time, in process).
"""
from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tools"))

import bench  # noqa: E402
import ceiling  # noqa: E402

PHASE_FIELDS = {
    "download": ("bytes", "seconds", "MBps"),
    "upload": ("bytes", "seconds", "MBps"),
    "connections": ("attempted", "completed", "errors", "conn_per_s", "p50_ms", "p99_ms"),
    "concurrency": ("clients", "requests", "errors", "req_per_s", "p50_ms", "p99_ms"),
    "ping": ("sent", "received", "p50_ms", "p99_ms"),
}
IDLE_FIELDS = ("attempted", "held", "rss_empty_kib", "rss_held_kib", "rss_per_conn_kib",
               "idle_cpu_empty", "idle_cpu_held", "idle_wakeups_per_s_empty", "idle_wakeups_per_s_held")
BENCH = os.path.join(REPO, "tools", "bench")

can_run = (os.geteuid() == 0 and os.path.exists("/dev/net/tun") and shutil.which("unshare")
           and shutil.which("curl") and shutil.which("ping") and shutil.which("ip"))


TINY = ["--quick", "--size", "3M", "--conns", "40", "--clients", "8", "--concurrency-time", "0.5",
        "--pings", "10", "--time-limit", "4", "--startup-timeout", "10", "--idle-conns", "30",
        "--idle-time", "0.3", "--ofo-blocks", "4"]


def run_bench(tmp_path, *flags):
    out = tmp_path / "bench.json"
    r = subprocess.run([sys.executable, BENCH, *TINY, *flags, "--json", str(out)], cwd=REPO,
                       capture_output=True, text=True, timeout=110)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    assert "download MB/s" in r.stdout and "goals (stack):" in r.stdout
    return json.loads(out.read_text()), r.stdout


@pytest.mark.timeout(120)
@pytest.mark.skipif(not can_run, reason="needs root, /dev/net/tun, unshare, curl, ping and ip")
def test_quick_run_writes_sane_json(tmp_path):
    rep, stdout = run_bench(tmp_path, "--mtu", "1500,65535")
    assert rep["schema"] == bench.SCHEMA
    for key in ("started_at", "duration_s", "machine", "config", "runs", "rows", "goals", "ofo"):
        assert key in rep
    assert rep["config"]["size"] == 3_000_000
    assert {(x["target"], x["mtu"]) for x in rep["runs"]} == {
        (t, m) for t in ("ceiling", "kernel", "stack") for m in (1500, 65535)}
    assert "stack/kern" in stdout and "4 out-of-order blocks" in stdout

    for run in rep["runs"]:
        if run["target"] == "stack" and run["status"] != "ok":
            assert run["status"] in ("unavailable", "skipped") and run["reason"]
            continue
        assert run["status"] == "ok", run
        ph = run["phases"]
        idle = run["target"] == "stack" and run["mtu"] == 1500
        assert set(ph) == set(PHASE_FIELDS) | ({"idle"} if idle else set())
        for name, fields in PHASE_FIELDS.items():
            for f in fields:
                assert f in ph[name], (run["target"], run["mtu"], name, f)
        where = f"{run['target']} @ {run['mtu']}"
        for name in ("download", "upload"):
            assert ph[name]["status"] == "ok", (where, ph[name])
            assert ph[name]["bytes"] == 3_000_000, where
            assert 0.1 < ph[name]["MBps"] < 100_000, where
        assert ph["connections"]["completed"] == 40 and ph["connections"]["errors"] == 0, where
        assert 0 < ph["connections"]["p50_ms"] <= ph["connections"]["p99_ms"] < 2000, where
        assert ph["concurrency"]["requests"] > 0, where
        assert ph["ping"]["received"] >= 8, where
        assert 0 < ph["ping"]["p50_ms"] <= ph["ping"]["p99_ms"] < 1000, where
        assert 0 <= ph["download"]["server_cpu"] <= 4
        if run["target"] in ("ceiling", "kernel"):
            assert ph["concurrency"]["errors"] == 0, where
        if run["target"] == "ceiling":
            assert run["server_stats"]["echo"] >= 8
        if idle:  # 30 connections held by the stack's epoll echo server, each echoing a byte
            for f in IDLE_FIELDS:
                assert f in ph["idle"], f
            assert ph["idle"]["held"] == 30 and ph["idle"]["status"] == "ok", ph["idle"]
            assert ph["idle"]["rss_held_kib"] > 0 and 0 <= ph["idle"]["idle_cpu_held"] <= 4
            assert ph["idle"]["idle_wakeups_per_s_held"] >= 0
            # SYN, ACK, byte, echo and ACKs for each of the 30: the held part alone crossed the link
            assert ph["idle"]["link_until_close"]["packets_to_server"] >= 3 * 30

    rows = {(r["mtu"], r["metric"]): r for r in rep["rows"]}
    for mtu in (1500, 65535):
        row = rows[(mtu, "download_MBps")]
        assert row["ceiling"] > 0 and row["kernel"] > 0
        if row["stack"] is not None:
            # ratios are rounded to 3 decimals (report.ratio): allow that beside 1 %
            assert row["ratio_ceiling"] == pytest.approx(row["stack"] / row["ceiling"], rel=0.01, abs=0.001)
            assert row["ratio_kernel"] == pytest.approx(row["stack"] / row["kernel"], rel=0.01, abs=0.001)
    assert [g["mode"] for g in rep["goals"]] == [m for _, m, *_ in bench.GOALS if m in ("plain", "any")]
    assert rep["ofo"]["status"] == "ok", rep["ofo"]
    assert [r["blocks"] for r in rep["ofo"]["rows"]] == [0, 4]
    assert rep["send"]["status"] == "ok", rep["send"]


@pytest.mark.timeout(120)
@pytest.mark.skipif(not can_run, reason="needs root, /dev/net/tun, unshare, curl, ping and ip")
def test_offload_run_uses_the_offload_ceiling(tmp_path):
    rep, stdout = run_bench(tmp_path, "--offload", "--mtu", "65535", "--targets", "ceiling,stack",
                            "--phases", "download,upload,ping", "--repeat", "2")
    assert "[--offload]" in stdout and rep["config"]["offload"] and rep["config"]["repeat"] == 2
    assert "--offload" in rep["config"]["stack_cmd"]
    ceiling = next(r for r in rep["runs"] if r["target"] == "ceiling")
    assert ceiling["status"] == "ok" and ceiling["tries"] == 2
    for name in ("download", "upload"):
        ph = ceiling["phases"][name]
        assert ph["status"] == "ok" and ph["bytes"] == 3_000_000, ph
        assert len(ph["tries"]) == 2
        assert ph["MBps"] == pytest.approx(sorted(t["MBps"] for t in ph["tries"])[0] / 2
                                           + sorted(t["MBps"] for t in ph["tries"])[1] / 2, abs=0.002)
    # with TSO the kernel takes 64 KiB super-segments: far fewer packets than 3 MB / MSS
    assert 0 < ceiling["phases"]["download"]["link"]["packets_from_server"] < 3_000_000 // 1460
    assert {g["mode"] for g in rep["goals"]} == {"offload", "any"}


def test_help_lists_every_flag():
    r = subprocess.run([sys.executable, BENCH, "--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0
    for flag in ("--quick", "--json", "--mtu", "--targets", "--phases", "--size", "--conns",
                 "--clients", "--concurrency-time", "--pings", "--time-limit", "--budget",
                 "--profile", "--offload", "--repeat", "--idle-conns", "--idle-time", "--ofo-blocks"):
        assert flag in r.stdout


def test_bad_flag_is_one_clean_line():
    r = subprocess.run([sys.executable, BENCH, "--size", "lots"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "not a size" in r.stderr and "Traceback" not in r.stderr


def test_parse_size_and_percentile():
    assert bench.parse_size("200M") == 200_000_000
    assert bench.parse_size("4k") == 4000
    assert bench.config.units.parse_size is __import__("stack.units").units.parse_size  # one home
    assert bench.parse_size("65536") == 65536
    assert bench.parse_size("1.5G") == 1_500_000_000
    assert bench.percentile([3, 1, 2], 50) == 2
    assert bench.percentile(list(range(1, 101)), 99) == 99
    assert bench.percentile([], 50) is None


def test_http_response_done():
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
    assert bench.http_response_done(head + b"abc") == (200, False, True)
    assert bench.http_response_done(head + b"abcde") == (200, True, True)
    assert bench.http_response_done(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n") == (200, True, False)
    assert bench.http_response_done(b"HTTP/1.1 404 NF\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx") == (
        404, True, False)
    assert bench.http_response_done(b"HTTP/1.1 200") == (None, False, False)


def reference_sum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2))
    return s % 0xFFFF


@pytest.mark.parametrize("n", [0, 1, 2, 7, 8, 9, 1460, 1461, 9000, 65495, 65536])
def test_ceiling_payload_sum_matches_rfc1071(n):
    data = random.Random(n).randbytes(n)
    assert ceiling.payload_sum(data) == reference_sum(data)
    assert ceiling.payload_sum(b"\xff" * n) == reference_sum(b"\xff" * n)


def test_ceiling_header_checksums_verify():
    """Headers built from residues must checksum to zero like any other IPv4/TCP packet."""
    srv = ceiling.Ceiling(-1, bytes([192, 0, 2, 2]), bytes([192, 0, 2, 1]), 1500, 80, 9, ".", 9)
    c = ceiling.Conn(1, 40000, 80, True, 123456, 0xFFFFFF00, 1460, 7, 0)
    c.ck = (srv.addr_sum + c.sport + c.dport) % 0xFFFF
    payload = random.Random(1).randbytes(1001)
    hdr = srv.header(c, 0xFFFFFFF0, ceiling.ACK | ceiling.PSH, len(payload), ceiling.payload_sum(payload))
    pkt = hdr + payload
    assert reference_sum(pkt[:20]) == 0  # IPv4 header checksum (RFC 791)
    pseudo = pkt[12:20] + bytes([0, 6]) + len(pkt[20:]).to_bytes(2, "big")
    assert reference_sum(pseudo + pkt[20:]) == 0  # TCP checksum (RFC 9293 3.1)


def test_summarize_profile(tmp_path):
    raw = tmp_path / "p.txt"
    raw.write_text("process 1:\"python\";thread (0x1);main (a.py:1);f (a.py:5) 3\n"
                   "process 1:\"python\";thread (0x1);main (a.py:1);f (a.py:6) 1\n"
                   "process 1:\"python\";thread (0x2);main (a.py:1);g (b.py:9) 4\n")
    s = bench.summarize_profile(str(raw), 5)
    assert s["samples"] == 8
    assert s["self"][0] == {"function": "f (a.py)", "pct": 50.0}
    assert {"function": "main (a.py)", "pct": 100.0} in s["inclusive"]


def test_median_of_tries_per_field():
    tries = [{"status": "ok", "MBps": 10.0, "seconds": 3.0, "bytes": 30},
             {"status": "ok", "MBps": 30.0, "seconds": 1.0, "bytes": 30},
             {"status": "ok", "MBps": 20.0, "seconds": 1.5, "bytes": 30},
             {"status": "error", "MBps": 0.0, "error": "boom"}]
    m = bench.median_try("download", tries)
    assert m["MBps"] == 20.0 and m["seconds"] == 1.5 and m["status"] == "ok"
    two = bench.median_try("ping", [{"status": "ok", "p50_ms": 1.0}, {"status": "ok", "p50_ms": 2.0}])
    assert two["p50_ms"] == 1.5


def test_rows_and_goals_use_both_baselines():
    def run(target, mbps, conns):
        return {"target": target, "mtu": 1500, "status": "ok",
                "phases": {"download": {"status": "ok", "MBps": mbps, "link": {"drops_to_server": 0}},
                           "connections": {"status": "ok", "conn_per_s": conns}}}
    rows = bench.compute_rows([run("ceiling", 200.0, 5000.0), run("kernel", 1000.0, 1500.0),
                               run("stack", 130.0, 2100.0)], [1500])
    by = {r["metric"]: r for r in rows}
    assert by["download_MBps"]["ratio_ceiling"] == 0.65 and by["download_MBps"]["ratio_kernel"] == 0.13
    assert by["conn_per_s"]["ratio_kernel"] == 1.4
    goals = {g["goal"]: g for g in bench.evaluate_goals(rows, offload=False)}
    assert goals["MTU 1500 download >= 0.6 of the ceiling"]["met"] is True
    assert goals["sequential conn/s >= 1.0x the kernel"]["met"] is True
    assert goals[">= 2,000 sequential connections/s"]["met"] is True
    assert goals["MTU 1500 upload >= 0.5 of the ceiling"]["met"] is None  # not measured
    assert not any(g["mode"] == "offload" for g in goals.values())


@pytest.mark.timeout(60)
def test_ofo_micro_benchmark_goes_through_the_core():
    """In-order baseline and 5 out-of-order blocks: real figures, and the core answered as TCP must."""
    from bench import ofo
    res = ofo.phase_ofo([5], segments=40)
    assert res["status"] == "ok", res
    assert [r["blocks"] for r in res["rows"]] == [0, 5]
    assert all(r["us_per_segment"] > 0 and r["segments"] == 40 for r in res["rows"])


@pytest.mark.timeout(60)
def test_send_micro_benchmark_goes_through_the_core():
    """Timestamps off and on: real figures, every segment acknowledged, nothing resent."""
    from bench import send
    res = send.phase_send(segments=200, repeat=1)
    assert res["status"] == "ok", res
    assert [r["timestamps"] for r in res["rows"]] == [False, True]
    assert all(r["us_per_segment"] > 0 and r["segments"] >= 200 and r["acks"] >= 200 // send.PER_ACK
               for r in res["rows"])


def test_kernel_app_refuses_the_harness_namespace():
    """Started in the namespace the harness runs in (not one of its own), it refuses and exits."""
    env = dict(os.environ, TSBENCH_NETNS=os.readlink("/proc/self/ns/net"))
    r = subprocess.run([sys.executable, os.path.join(BENCH, "kernel_app.py"), "--link", "nosuchlink0",
                        "--link-timeout", "0.1"], capture_output=True, text=True, timeout=30, env=env)
    assert r.returncode == 2 and "refusing" in r.stderr, r.stderr


def test_ceiling_takes_syn_options_from_the_wire_parser():
    """An MSS of 1000 and window scale 20 (clamped to 14, RFC 7323 2.3) from a real SYN's options."""
    import socket as so
    import struct
    srv = ceiling.Ceiling(-1, bytes([192, 0, 2, 2]), bytes([192, 0, 2, 1]), 1500, 80, 9, ".", 9)
    sent = []
    srv.send_synack = lambda c: sent.append(c)
    opts = struct.pack("!BBH", 2, 4, 1000) + b"\x01" + struct.pack("!BBB", 3, 3, 20) + b"\x00" * 0
    opts += b"\x00" * (-len(opts) % 4)
    hl = 20 + len(opts)
    tcp = struct.pack("!HHIIBBHHH", 40000, 80, 7, 0, (hl // 4) << 4, ceiling.SYN, 5000, 0, 0) + opts
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + hl, 0, 0, 64, 6, 0, so.inet_aton("192.0.2.1"),
                     so.inet_aton("192.0.2.2"))
    pkt = memoryview(ip + tcp)
    srv.on_syn(pkt, 40000 << 16 | 80, 40000, 80, 7, hl, 5000)
    (c,) = sent
    assert c.mss == 1000 and c.wscale == 14 and c.wnd == 5000 and c.rcv_nxt == 8
