"""Smoke test of the benchmark harness (tools/bench.py) and the ceiling (tools/ceiling.py).

The end-to-end test runs a tiny `--quick` style benchmark: its own network namespace
(bench.py re-executes itself under `unshare --net`), the ceiling at both MTUs, and the
stack when it starts. It checks the JSON's shape and that the numbers are sane, not
how fast anything is. The other tests cover the pure helpers and need no privileges.
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

can_run = (os.geteuid() == 0 and os.path.exists("/dev/net/tun") and shutil.which("unshare")
           and shutil.which("curl") and shutil.which("ping") and shutil.which("ip"))


@pytest.mark.timeout(90)
@pytest.mark.skipif(not can_run, reason="needs root, /dev/net/tun, unshare, curl, ping and ip")
def test_quick_run_writes_sane_json(tmp_path):
    out = tmp_path / "bench.json"
    cmd = [sys.executable, os.path.join(REPO, "tools", "bench.py"), "--quick", "--size", "3M",
           "--conns", "40", "--clients", "8", "--concurrency-time", "0.5", "--pings", "10",
           "--time-limit", "4", "--startup-timeout", "10", "--mtu", "1500,65535", "--json", str(out)]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=80)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    assert "download MB/s" in r.stdout and "goals (stack):" in r.stdout

    rep = json.loads(out.read_text())
    assert rep["schema"] == bench.SCHEMA
    for key in ("started_at", "duration_s", "machine", "config", "runs", "rows", "goals"):
        assert key in rep
    assert rep["config"]["size"] == 3_000_000
    assert {(x["target"], x["mtu"]) for x in rep["runs"]} == {
        (t, m) for t in ("ceiling", "stack") for m in (1500, 65535)}

    for run in rep["runs"]:
        if run["target"] == "stack" and run["status"] != "ok":
            assert run["status"] in ("unavailable", "skipped") and run["reason"]
            continue
        assert run["status"] == "ok", run
        ph = run["phases"]
        assert set(ph) == set(PHASE_FIELDS)
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
        if run["target"] == "ceiling":
            assert ph["concurrency"]["errors"] == 0, where
            assert run["server_stats"]["echo"] >= 8

    rows = {(r["mtu"], r["metric"]): r for r in rep["rows"]}
    for mtu in (1500, 65535):
        row = rows[(mtu, "download_MBps")]
        assert row["ceiling"] > 0
        if row["stack"] is not None:
            assert row["ratio"] == pytest.approx(row["stack"] / row["ceiling"], rel=0.01)
    assert len(rep["goals"]) == len(bench.GOALS)


def test_help_lists_every_flag():
    r = subprocess.run([sys.executable, os.path.join(REPO, "tools", "bench.py"), "--help"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0
    for flag in ("--quick", "--json", "--mtu", "--targets", "--phases", "--size", "--conns",
                 "--clients", "--concurrency-time", "--pings", "--time-limit", "--budget",
                 "--profile"):
        assert flag in r.stdout


def test_bad_flag_is_one_clean_line():
    r = subprocess.run([sys.executable, os.path.join(REPO, "tools", "bench.py"), "--size", "lots"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "not a size" in r.stderr and "Traceback" not in r.stderr


def test_parse_size_and_percentile():
    assert bench.parse_size("200M") == 200_000_000
    assert bench.parse_size("4k") == 4000
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
