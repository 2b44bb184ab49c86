"""docs/labs/06-congestion.md: every block prints what the lab shows; every claim holds.

The simulator parts are exact (virtual time, seed 1). Their numbers depend on the stack's
default initial window (the lab prints it): if that default changes, regenerate the outputs
(python tests/labs/labdoc.py docs/labs/06-congestion.md --write), reread the prose, update
the Chinese twin, and these tests say which quoted numbers no longer hold.
"""
from __future__ import annotations

import contextlib
import io
import json
import re

import pytest

from labdoc import LANGS, Lab, run_shell, unique_tun
from stack.tcp.congestion import rfc5681_initial_window
from stack.tcp.config import TcpConfig

NAME = "06-congestion.md"
LAB = Lab(NAME)  # the English page: its block ids (the twins' blocks are equal: test_translations.py)
MSS = 1448


@pytest.fixture(scope="module", params=LANGS)
def lab(request):
    """The lab in each language: every check below runs on the English page and on its translation."""
    return Lab(NAME, request.param)


@pytest.fixture(scope="module")
def s(lab):
    return lab.run()


@pytest.fixture(scope="module")
def runs():
    """The lab's run() for each setting it uses, quietly: {(cc, queue): (sim, sink, a, start)}."""
    ns = LAB.run(["setup"]).ns
    out = {}
    with contextlib.redirect_stdout(io.StringIO()):
        for cc, queue in (("reno", 20), ("newreno", 20), ("cubic", 20), ("reno", 5), ("reno", 80)):
            out[cc, queue] = ns["run"](cc, queue=queue)
    return out


def cc_of(r, *whys):
    sim, sink, a, start = r
    return [(round(e["t"] - start, 3), e["why"], e["cwnd"] / MSS, e["ssthresh"] / MSS, e["flight"] / MSS, e)
            for e in sink.of("cc") if e["conn"] == a.name and (not whys or e["why"] in whys)]


@pytest.mark.parametrize("block", LAB.output_ids())
def test_each_block_prints_what_the_lab_shows(lab, s, block):
    assert s.out[block] == lab.output(block)


def test_the_bottleneck_numbers():
    """'a 1500-byte packet takes 1.2 ms'; 'the bandwidth-delay product, 10 Mbit/s x 10 ms = 12 500 bytes
    ~ 8 packets'; 2 MB over 10 Mbit/s takes at least 1.6 s."""
    assert 1500 * 8 / 10e6 == 0.0012
    assert 10e6 * 0.010 / 8 == 12_500 and round(12_500 / 1500) == 8
    assert 2_000_000 * 8 / 10e6 == 1.6


# ------------------------------------------------------------ 2. slow start
def test_slow_start_from_the_initial_window(runs):
    r = runs["reno", 20]
    a = r[2]
    assert TcpConfig().initial_window is None                # the default: RFC 5681 3.1
    assert a.cc.initial_window == rfc5681_initial_window(MSS) == 3 * MSS  # 'RFC 5681's (3 segments of 1448 bytes)'
    ss = [x for x in cc_of(r, "ack") if x[5]["phase"] == "slow_start"]
    steps = [round((y[2] - x[2]) * MSS) for x, y in zip([(0, 0, a.cc.initial_window / MSS)] + ss, ss)]
    assert steps and all(step in (MSS, 2 * MSS) for step in steps)  # one segment per segment acked, <= 2 per ACK
    # 'cwnd goes 3, 5, 9': the first windows' ACKs come in one burst per round trip (>= 9 ms apart)
    early = [x for x in ss if x[2] <= 9]
    assert [x[2] for x in early] == [5.0, 7.0, 9.0] and early[1][0] - early[0][0] >= 0.009
    # 'from about 0.035 s ... cwnd grows by about 8 segments every 10 ms': 10 Mbit/s / 1500 bytes per 10 ms
    late = [x for x in ss if x[0] >= 0.035]
    rate = (late[-1][2] - late[0][2]) / (late[-1][0] - late[0][0]) / 100
    assert round(rate) == round(10e6 / 8 / 1500 / 100) == 8
    assert all(y[0] - x[0] <= 0.004 for x, y in zip(late, late[1:]))  # paced: an ACK every 2 packets (2.4 ms)


def test_the_slow_start_plot_doubles_then_rises_by_about_eight_per_step(s):
    rows = [line.split() for line in s.out["slowstart"].splitlines() if line.split()[1] == "cwnd"]
    cwnd = [float(r[2]) for r in rows if r[5] == "slow_start"]
    assert cwnd[:4] == [3.0, 3.0, 5.0, 9.0]
    late = cwnd[cwnd.index(15.0):]
    assert late == [15.0, 21.0, 29.0, 37.0, 47.0, 55.0]
    assert round((late[-1] - late[0]) / (len(late) - 1)) == 8


def test_slow_start_overshoots_and_the_first_ssthresh_is_half_the_flight(runs):
    first = cc_of(runs["reno", 20], "fast_retransmit")[0]
    assert first[:5] == (0.095, "fast_retransmit", 29.5, 29.5, 59.0)


# ------------------------------------------------------------ 3. the sawtooth
def test_sawtooth_numbers(runs):
    r = runs["reno", 20]
    fr = cc_of(r, "fast_retransmit")
    assert [x[0] for x in fr] == [0.095, 0.161, 0.557, 0.998, 1.438]
    exits = cc_of(r, "recovery_exit")
    assert exits[0][:5] == (0.129, "recovery_exit", 29.5, 29.5, 56.0)     # Reno leaves at the first new ACK
    assert fr[1][2:5] == (15.0, 15.0, 30.0)                              # 30 / 2 = 15 segments
    assert all(x[4] == 31.0 and x[3] == x[2] == 15.5 for x in fr[2:])        # 31 in flight, halved to 15.5
    gaps = [round(y[0] - x[0], 2) for x, y in zip(fr[2:], fr[3:])]
    assert gaps == [0.44, 0.44]
    assert exits[1][:4] == (0.192, "recovery_exit", 15.0, 15.0)
    assert all(0.032 <= e[0] - f[0] <= 0.035 and e[2] == e[3] for f, e in zip(fr[2:], exits[2:]))  # later teeth
    assert not cc_of(r, "rto")
    acks = [x for x in cc_of(r, "ack") if 0.192 < x[0] < 0.557]
    assert min(x[2] for x in acks) >= 15.0 and max(x[2] for x in acks) == 29.0   # 'from 15 to 29'
    later = [x for x in cc_of(r, "ack") if 0.591 < x[0] < 0.998 or 1.031 < x[0] < 1.438]
    assert max(x[2] for x in later) == 29.5                                       # '15.5 -> 29.5 -> 15.5'
    srtts = [x[5]["srtt"] for x in acks]
    assert round(min(srtts) * 1000) == 20 and round(srtts[-1] * 1000) == 33      # 'falls to about 20 ms ... 33 ms'
    assert srtts[0] > min(srtts)
    # 'about 14 round trips for 14 segments': the round trips between the two losses
    trips = sum((y[0] - x[0]) / x[5]["srtt"] for x, y in zip(acks, acks[1:]))
    assert 13.5 <= trips <= 14.5 and 29.0 - 15.0 == 14


# ------------------------------------------------------------ 4. queueing delay
def test_queueing_delay_grows_with_the_queue(runs):
    longest = {}
    for q in (5, 20, 80):
        sink = runs["reno", q][1]
        longest[q] = max(e["queue_wait"] for e in sink.of("impair") if e["action"] == "delay")
    assert {q: round(w * 1000, 1) for q, w in longest.items()} == {5: 6.0, 20: 23.6, 80: 95.6}
    assert all(w <= q * 0.0012 + 1e-9 for q, w in longest.items())
    fr = cc_of(runs["reno", 5], "fast_retransmit")
    assert len(fr) == 16 and fr[-1][3] == 7.5 and 7.5 < 8 + 5


# ------------------------------------------------------------ 5. CUBIC
def test_cubic_reduces_to_seven_tenths(runs):
    fr = cc_of(runs["cubic", 20], "fast_retransmit")
    before = [next(x[2] for x in reversed(cc_of(runs["cubic", 20], "ack")) if x[0] < f[0]) for f in fr]
    assert [round(f[3], 1) for f in fr] == [39.9, 27.9, 19.6, 21.0, 20.7]
    assert round(0.7 * 57, 1) == 39.9 and before[0] == 57.0
    assert all(abs(f[3] - 0.7 * b) < 0.1 for f, b in zip(fr[1:], [39.9, 27.9]))
    assert [round(b) for b in before[3:]] == [30, 30] and all(abs(f[3] - 0.7 * b) < 0.1 for f, b in zip(fr[3:], before[3:]))


def test_cubic_curve_flattens_then_rises(lab, s):
    lines = [line for line in s.out["cubic"].splitlines() if line.split()[1] == "cwnd"]  # the plot's rows
    cwnd = {round(float(line.split()[0]), 2): float(line.split()[2]) for line in lines}
    steps = [round(cwnd[round(0.35 + 0.05 * (i + 1), 2)] - cwnd[round(0.35 + 0.05 * i, 2)], 1) for i in range(10)]
    assert steps[0] >= 1.0 and max(steps[4:9]) <= 1.0 and steps[-1] > max(steps[4:9])


# ------------------------------------------------------------ 6. side by side
def test_reno_leaves_the_first_recovery_early_newreno_does_not_and_they_tie(runs):
    reno, newreno = cc_of(runs["reno", 20], "recovery_exit"), cc_of(runs["newreno", 20], "recovery_exit")
    assert reno[0][0] == 0.129 and reno[0][4] == 56.0 and newreno[0][0] == 0.195
    reno_fr, newreno_fr = cc_of(runs["reno", 20], "fast_retransmit"), cc_of(runs["newreno", 20], "fast_retransmit")
    assert reno_fr[1][0] == 0.161 and newreno_fr[1][0] == 0.198       # each halves a second time
    assert newreno[0][3] == 29.5 > 29                                  # NewReno leaves with 29.5: over the path's 29
    assert runs["reno", 20][0].now == runs["newreno", 20][0].now       # 'both finish in 1.729 s'
    assert round(runs["reno", 20][0].now - runs["reno", 20][3], 3) == 1.729


def test_from_linux_initial_window_reno_is_slower():
    """Part 6, iw=10: Reno halves at 0.072 and 0.139 s, NewReno stays in recovery until 0.207 s."""
    ns = LAB.run(["setup"]).ns
    with contextlib.redirect_stdout(io.StringIO()):
        reno, newreno = ns["run"]("reno", iw=10), ns["run"]("newreno", iw=10)
    assert reno[2].cc.initial_window == 10 * MSS
    assert [x[0] for x in cc_of(reno, "fast_retransmit")][:2] == [0.072, 0.139]
    assert cc_of(reno, "recovery_exit")[0][0] == 0.105 and cc_of(reno, "recovery_exit")[0][4] == 59.0
    assert cc_of(newreno, "recovery_exit")[0][0] == 0.207
    assert reno[0].now > newreno[0].now


def test_cubic_keeps_a_larger_window_on_average(runs):
    def mean_cwnd(r):
        ev = [(x[0], x[2]) for x in cc_of(r)]
        return sum((t1 - t0) * w for (t0, w), (t1, _) in zip(ev, ev[1:])) / (ev[-1][0] - ev[0][0])
    assert mean_cwnd(runs["cubic", 20]) > mean_cwnd(runs["newreno", 20]) and mean_cwnd(runs["cubic", 20]) > mean_cwnd(runs["reno", 20])


# ------------------------------------------------------------ 7. the real thing
def test_real_tun_bottleneck(lab, private_netns, tmp_path):
    script = []
    tun = unique_tun("lab6t")  # one name for every line of this run
    for line in lab.shell("tun").splitlines():
        if line.startswith(("sudo unshare", "source ", "exit")):
            continue
        script.append(line.replace("tun0", tun).replace("/tmp/lab6", str(tmp_path / "lab6")))
    res = run_shell("\n".join(script), tmp_path, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout.splitlines()
    m = re.fullmatch(r"HTTP 200, 2000000 bytes in ([\d.]+) s", out[0])
    assert m and float(m[1]) >= 1.6 and out[1] == "intact"
    assert int(out[2]) > 0                                   # the queue dropped packets
    events = [json.loads(line) for line in (tmp_path / "lab6.jsonl").read_text().splitlines()]
    cc = [e for e in events if e["ev"] == "cc" and e["why"] in ("fast_retransmit", "rto")]
    assert cc and all(e["why"] == "fast_retransmit" for e in cc)
    assert all(e["ssthresh"] == max(e["flight"] // 2, 2 * e["mss"]) for e in cc)  # halved (Reno)
    assert sum(e["ev"] == "impair" and e["action"] == "queue_drop" for e in events) == int(out[2])
    assert (tmp_path / "lab6-cwnd.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_picture_in_part_3_is_this_run(lab, runs):
    """docs/img/lab6-cwnd.png (tools/figures.py lab6-cwnd) plots part 3's Reno run: same losses, same windows."""
    doc = json.loads((LAB.path.parents[1] / "img" / "lab6-cwnd.json").read_text())
    fr = cc_of(runs["reno", 20], "fast_retransmit")
    assert doc["summary"]["ssthresh_after_loss"] == [x[5]["ssthresh"] for x in fr]
    assert doc["summary"]["flight_at_loss"] == [x[5]["flight"] for x in fr]
    t = doc["summary"]["fast_retransmits"]
    assert len(t) == len(fr) and all(abs((b - t[0]) - (x[5]["t"] - fr[0][5]["t"])) < 1e-5 for b, x in zip(t, fr))
    assert doc["run"]["impair"] == "rate=10mbit,queue=20" and doc["run"]["initial_window"] is None
    assert re.search(r"img/lab6-cwnd(-zh)?\.png\)", lab.path.read_text())
