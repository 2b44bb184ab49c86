"""Tests of the robustness harness (tools/robust.py) itself, not of the stack's figures.

The whole --quick run takes minutes (a SYN flood waits for the stack to recover, a black-holed
curl waits for its timeout), so the suite runs the fast scenarios end to end and tests the
pieces: namespaces made and removed (also when the run is interrupted), stale namespaces of
dead runs removed, result lines built from results, the trend figure, the CLI's errors.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tools"))

import robust  # noqa: E402

ROBUST = [sys.executable, os.path.join(REPO, "tools", "robust.py")]


def _netns() -> set[str]:
    return set(robust.netns_list())


def _procs_with(text: str) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if text.encode() in f.read():
                        found.append(int(pid))
            except OSError:
                pass
    return found


def test_topology_up_and_close_leaves_nothing(private_netns):
    topo = robust.Topology(tag=f"tsr{os.getpid()}")
    try:
        topo.up()
        topo.pmtu_up()
        assert {topo.ns_c, topo.ns_l, topo.ns_p} <= _netns()
        links = robust.sh("ip", "-n", topo.ns_c, "-o", "link")
        assert topo.veth_c in links and topo.pm_c in links
        assert "mtu 1280" in robust.sh("ip", "-n", topo.ns_c, "-o", "link", "show", topo.pm_c)
        assert "mtu 1500" in robust.sh("ip", "-n", topo.ns_p, "-o", "link", "show", topo.pm_p)
    finally:
        topo.close()
    assert not {topo.ns_c, topo.ns_l, topo.ns_p} & _netns()
    assert topo.created == []


def test_stale_namespaces_of_dead_runs_are_removed(private_netns):
    dead, alive = "tsr99999999c", f"tsr{os.getpid()}l"
    for ns in (dead, alive):
        robust.sh("ip", "netns", "add", ns)
    try:
        removed = robust.remove_stale()
        assert dead in removed and alive not in removed
        assert dead not in _netns() and alive in _netns()
    finally:
        for ns in (dead, alive):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def test_fast_scenarios_end_to_end(private_netns, tmp_path):
    out = tmp_path / "r.json"
    r = subprocess.run(ROBUST + ["--quick", "--scenarios", "concurrent,sequential,sigterm", "--conns", "50",
                                 "--seq-conns", "100", "--seq-drain", "0.5", "--term-conns", "5",
                                 "--term-size", "2000000", "--json", str(out)],
                       capture_output=True, text=True, timeout=110, cwd=REPO)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.strip().splitlines()
    assert [ln.split(":")[0] for ln in lines] == [f"{s} {t}" for s in ("concurrent", "sequential", "sigterm")
                                                  for t in ("tunstack", "linux")]
    data = robust.load_results(str(out))
    res = data["results"]
    for scenario in ("concurrent", "sequential", "sigterm"):
        for target in ("tunstack", "linux"):
            assert "error" not in res[scenario][target], res[scenario][target]
            assert res[scenario][target]["line"] in lines
    linux = {k: res[k]["linux"] for k in res}
    assert linux["concurrent"]["connected"] == linux["concurrent"]["answered"] == 50
    assert linux["sequential"]["conns"] == 100 and linux["sequential"]["failed"] == 0
    t = linux["sigterm"]
    assert t["transfers"] == 5 and t["fin"] + t["rst"] + t["hung"] + t["other"] == 5 and t["server_exited"]
    assert res["concurrent"]["tunstack"]["conns"] == 50
    assert isinstance(res["sequential"]["tunstack"].get("stack_stats"), dict)  # the stack's counters came back
    tag = data["tag"]
    assert not {tag + "c", tag + "l", tag + "p"} & _netns()


def test_an_interrupted_run_removes_its_namespaces_and_servers(private_netns, tmp_path):
    p = subprocess.Popen(ROBUST + ["--quick", "--scenarios", "zerowindow", "--targets", "tunstack",
                                   "--json", str(tmp_path / "r.json")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    tag = f"tsr{p.pid}"
    try:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and not _procs_with(f"--tun {tag}t".replace(" ", "\0")):
            time.sleep(0.2)
        assert _procs_with(f"--tun {tag}t".replace(" ", "\0")), "the stack server never started"
        assert tag + "c" in _netns()
        time.sleep(2.0)  # mid-scenario
        p.send_signal(signal.SIGINT)
        p.wait(30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 130
    assert not {tag + "c", tag + "l", tag + "p"} & _netns()
    assert _procs_with(f"--tun {tag}t".replace(" ", "\0")) == []


SAMPLES = {
    "synflood": dict(get_served=96, get_planned=100, get_gets=100, get_slowest_attempt_ms=15020.0, rss_peak_MiB=38.4,
                     back_to_normal_s=62.8, syns_sent=20000, flood_seconds=0.5),
    "concurrent": dict(connected=748, conns=1000, all_connected_s=None, answered=748, client_syn_retrans=3016,
                       link_tx_drops=2387, server_threads=525),
    "ofo": dict(get_p50_ms=2.4, get_max_ms=13000.0, get_served=70, get_failed=0, baseline_ms=1.0, segments_sent=1500),
    "zerowindow": dict(conns=200, offered_MiB=400.0, accepted_MiB=390.0, rss_peak_MiB=510.0, get_served=10, get_gets=10, get_max_ms=30.0),
    "sequential": dict(conns=20000, conn_per_s=500.0, conn_per_s_first=700.0, conn_per_s_last=500.0,
                       trend_percent_per_10k=-14.2, rss_start_MiB=36.0, rss_end_MiB=152.0, rss_drained_MiB=150.0,
                       drain_wait_s=65.0),
    "neverread": dict(completed=0, conns=200, wedged=200, errors=0, rss_peak_MiB=900.0, kernel_tcp_mem_peak_MiB=80.0),
    "sigterm": dict(transfers=50, fin=30, rst=8, hung=12, other=0, wait_limit_s=15.0, server_exited=True,
                    server_exit_s=1.2),
    "pmtu": dict(finished=False, bytes=0, size=20971520, seconds=60.0, path_mtu=1280, curl_exit=28),
}


@pytest.mark.parametrize("scenario", robust.SCENARIOS)
def test_summary_line_of_every_scenario(scenario):
    line = robust.summary_line(scenario, "tunstack", SAMPLES[scenario])
    assert line.startswith(f"{scenario} tunstack: ") and "incomplete" not in line and "None" not in line
    expected = {"synflood": "96/100 GETs served, slowest 15.02 s", "concurrent": "748/1000 connected, 748 answered",
                "ofo": "max 13.00 s", "zerowindow": "RSS peak 510.0 MiB", "sequential": "trend -14.2 %/10k",
                "neverread": "200 wedged", "sigterm": "12 hung", "pmtu": "did not finish"}[scenario]
    assert expected in line


def test_summary_line_of_errors_and_incomplete_results():
    assert robust.summary_line("ofo", "linux", {"error": "no SYN,ACK"}) == "ofo linux: error: no SYN,ACK"
    assert "incomplete result" in robust.summary_line("pmtu", "linux", {"bytes": 1})


def test_trend_figure():
    flat = [[t, 500.0] for t in range(10)]
    falling = [[t, 700.0 - 20 * t] for t in range(10)]
    assert robust._slope_percent(flat) == 0.0
    assert robust._slope_percent(falling) < 0
    assert robust._slope_percent(flat[:2]) is None


def test_results_file_schema_is_checked(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text(json.dumps({"schema": "something-else"}))
    with pytest.raises(robust.RobustError):
        robust.load_results(str(bad))


def test_cli_rejects_bad_input_in_one_line():
    r = subprocess.run(ROBUST + ["--scenarios", "synflood,nonsense"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "choose from" in r.stderr and "Traceback" not in r.stderr
    h = subprocess.run(ROBUST + ["--help"], capture_output=True, text=True, timeout=30)
    assert h.returncode == 0 and all(s in h.stdout for s in robust.SCENARIOS)
