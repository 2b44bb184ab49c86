"""Smoke test of tools/compare_cc.py: a tiny grid through main(), sane numbers, clean errors.

The grid is small on purpose (3 algorithms x 2 loss rates x 1 delay, 300 kB): it checks the
table's shape and that the numbers make sense, not which algorithm wins.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tools"))

import compare_cc  # noqa: E402

RATE = 20e6
# a 1500-byte packet carries at most 1460 bytes of payload: goodput can never reach the rate
MAX_GOODPUT = RATE / 8 * 1460 / 1500


def _rows(table: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in table.splitlines() if line.startswith("| ") and "algorithm" not in line]


@pytest.mark.timeout(60)
def test_tiny_grid_table_and_json(tmp_path, capsys):
    out = tmp_path / "cc.json"
    rc = compare_cc.main(["--loss", "0,2%", "--delay", "10ms", "--size", "300k", "--seeds", "2",
                          "--jobs", "1", "--json", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text

    rows = _rows(text)
    # loss 0 runs once (seeds cannot change it), loss 2 % twice: 3 + 3 rows either way
    assert len(rows) == 6, text
    assert {r[2] for r in rows} == {"reno", "newreno", "cubic"}
    assert {r[1] for r in rows} == {"0%", "2%"}
    for r in rows:
        mean = float(r[3].split()[0])
        lo, hi = (float(x) for x in re.search(r"\(([\d.]+)–([\d.]+)\)", r[3]).groups())
        assert 0 < lo <= mean <= hi <= MAX_GOODPUT * 8 / 1e6, r
        assert 0 < int(r[4]) <= 100, r

    doc = json.loads(out.read_text())
    runs = doc["runs"]
    assert len(runs) == 3 * 1 + 3 * 2
    for run in runs:
        assert run["status"] == "ok", run
        assert run["received"] == run["size"] == 300_000
        assert 0 < run["goodput_Bps"] <= MAX_GOODPUT
        assert 0 <= run["retrans_pct"] < 100
        assert run["data_segs"] >= run["size"] // run["mss"]
        assert run["mean_cwnd_segs"] is not None and run["mean_cwnd_segs"] > 0
        if run["loss"] == 0.02:
            assert run["retrans"] > 0  # 2 % of ~210 segments
    assert {r["algorithm"] for r in doc["summary"]} == {"reno", "newreno", "cubic"}
    assert doc["params"]["sack"] is True


@pytest.mark.timeout(30)
def test_one_run_counts_retransmissions_on_the_wire():
    s = compare_cc.Scenario("newreno", 0.03, 0.005, 1, 200_000, RATE, 17)
    r = compare_cc.run_one(s)
    assert r["status"] == "ok", r
    # every segment the impairment dropped had to be sent again
    drops = r["impair_stats"]["dropped_loss"] + r["impair_stats"]["dropped_queue"]
    assert r["retrans"] >= drops - 2  # (the handshake's packets count in impair_stats too)
    assert r["seconds"] > 0 and r["goodput_Bps"] == pytest.approx(200_000 / r["seconds"])


@pytest.mark.timeout(30)
@pytest.mark.parametrize("args, message", [
    (["--loss", "5"], "probability must be between 0 and 1"),
    (["--cc", "vegas"], "unknown algorithm"),
    (["--delay", "20"], "give a unit"),
    (["--queue", "lots"], "bad queue"),
    (["--size", "0"], "size must be positive"),
    (["--seeds", "0"], "at least 1"),
    (["--json", "/nonexistent-dir/x.json"], "does not exist"),
])
def test_bad_arguments_are_one_line_errors(args, message):
    r = subprocess.run([sys.executable, os.path.join(REPO, "tools", "compare_cc.py"), *args],
                       capture_output=True, text=True, timeout=25)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert message in r.stderr, r.stderr


@pytest.mark.timeout(30)
def test_help_explains_the_grid():
    r = subprocess.run([sys.executable, os.path.join(REPO, "tools", "compare_cc.py"), "--help"],
                       capture_output=True, text=True, timeout=25)
    assert r.returncode == 0
    for word in ("--algorithms", "--loss", "--delay", "--seeds", "--size", "--no-sack", "--json",
                 "--plot", "Goodput"):
        assert word in r.stdout, word


@pytest.mark.timeout(60)
def test_plot_writes_a_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png = tmp_path / "cwnd.png"
    rc = compare_cc.main(["--loss", "1%", "--delay", "10ms", "--size", "200k", "--seeds", "1",
                          "--jobs", "1", "--plot", str(png), "--plot-loss", "1%", "--plot-delay", "10ms"])
    assert rc == 0, capsys.readouterr().out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_scenario_follows_the_loss_and_delay_given():
    """Issue 9: '--loss 1% --plot' plotted 0.1 % (a fixed --plot-loss default)."""
    def scenario(*argv):
        return compare_cc.plot_scenario(compare_cc.build_parser().parse_args(list(argv)))
    assert scenario("--loss", "1%", "--delay", "10ms") == (0.01, 0.01)
    assert scenario() == (0.001, 0.025)                          # the grid's 0,0.1%,1%,3% x 5,25,50ms
    assert scenario("--loss", "0,3%", "--delay", "5ms,50ms") == (0.03, 0.05)
    assert scenario("--loss", "0") == (0.0, 0.025)
    assert scenario("--loss", "1%", "--plot-loss", "3%", "--plot-delay", "1ms") == (0.03, 0.001)


@pytest.mark.timeout(60)
def test_plot_with_loss_1pct_plots_1pct(tmp_path, capsys, monkeypatch):
    drawn = {}
    monkeypatch.setattr(compare_cc, "plot_cwnd", lambda path, series, title: drawn.update(
        title=title, losses={alg: s.get("loss") for alg, s in series.items()}))
    rc = compare_cc.main(["--loss", "1%", "--delay", "10ms", "--size", "100k", "--seeds", "1",
                          "--algorithms", "reno", "--jobs", "1", "--plot", str(tmp_path / "c.png")])
    assert rc == 0, capsys.readouterr().out
    assert "loss 1%," in drawn["title"] and "one-way delay 10" in drawn["title"], drawn["title"]
    assert drawn["losses"] == {"reno": 0.01}


def test_parse_size_has_one_home():
    from stack import units
    assert compare_cc.parse_size is units.parse_size
    assert units.parse_size("4M") == 4_000_000 and units.parse_size("500k") == 500_000
    assert units.parse_size("64KiB") == 65536 and units.parse_size("1.5G") == 1_500_000_000
    for bad in ("lots", "0", "4Q", "-1"):
        with pytest.raises(ValueError):
            units.parse_size(bad)
