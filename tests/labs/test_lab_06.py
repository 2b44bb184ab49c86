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
import os
import re

import pytest

from labdoc import LANGS, Lab, run_shell
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
    iw = TcpConfig().initial_window
    assert a.cc.initial_window == (iw * MSS if iw else 10 * MSS)  # the default the lab prints
    ss = [x for x in cc_of(r, "ack") if x[5]["phase"] == "slow_start"]
    steps = [round((y[2] - x[2]) * MSS) for x, y in zip([(0, 0, a.cc.initial_window / MSS)] + ss, ss)]
    assert steps and all(step in (MSS, 2 * MSS) for step in steps)  # one segment per segment acked, <= 2 per ACK
    # 'cwnd grows by about 8 segments every 10 ms': the bottleneck's 10 Mbit/s / 1500 bytes per 10 ms
    rate = (ss[-1][2] - ss[0][2]) / (ss[-1][0] - ss[0][0]) / 100
    assert round(rate) == round(10e6 / 8 / 1500 / 100) == 8


def test_the_slow_start_plot_rises_by_eight_per_step(s):
    rows = [line.split() for line in s.out["slowstart"].splitlines() if line.split()[1] == "cwnd"]
    cwnd = [float(r[2]) for r in rows if r[5] == "slow_start"]
    assert [round(y - x) for x, y in zip(cwnd[1:], cwnd[2:])] == [8] * (len(cwnd) - 2)


def test_slow_start_overshoots_and_the_first_ssthresh_is_half_the_flight(runs):
    first = cc_of(runs["reno", 20], "fast_retransmit")[0]
    assert first[:5] == (0.072, "fast_retransmit", 30.0, 30.0, 60.0)


# ------------------------------------------------------------ 3. the sawtooth
def test_sawtooth_numbers(runs):
    r = runs["reno", 20]
    fr = cc_of(r, "fast_retransmit")
    assert [x[0] for x in fr] == [0.072, 0.139, 0.543, 0.984, 1.424]
    assert all(x[4] == 31.0 and x[3] == x[2] == 15.5 for x in fr[1:])        # 31 in flight, halved to 15.5
    gaps = [round(y[0] - x[0], 2) for x, y in zip(fr[2:], fr[3:])]
    assert gaps == [0.44, 0.44]
    exits = cc_of(r, "recovery_exit")
    assert all(0.032 <= e[0] - f[0] <= 0.035 and e[2] == e[3] for f, e in zip(fr, exits) if f[0] > 0.1)
    assert not cc_of(r, "rto")
    acks = [x for x in cc_of(r, "ack") if 0.171 < x[0] < 0.543]
    assert max(x[2] for x in acks) == 29.5
    srtt = lambda t: next(x[5]["srtt"] for x in acks if x[0] >= t)
    assert round(srtt(0.199) * 1000) == 21 and round(srtt(0.528) * 1000) == 33
    # 'about 13 round trips for 14 segments': the round trips between the two losses
    trips = sum((y[0] - x[0]) / x[5]["srtt"] for x, y in zip(acks, acks[1:]))
    assert 12 <= trips <= 14.5 and 29.5 - 15.5 == 14


# ------------------------------------------------------------ 4. queueing delay
def test_queueing_delay_grows_with_the_queue(runs):
    longest = {}
    for q in (5, 20, 80):
        sink = runs["reno", q][1]
        longest[q] = max(e["queue_wait"] for e in sink.of("impair") if e["action"] == "delay")
    assert {q: round(w * 1000, 1) for q, w in longest.items()} == {5: 6.0, 20: 23.6, 80: 95.6}
    assert all(w <= q * 0.0012 + 1e-9 for q, w in longest.items())
    fr = cc_of(runs["reno", 5], "fast_retransmit")
    assert len(fr) == 15 and fr[-1][3] == 7.5 and 7.5 < 8 + 5


# ------------------------------------------------------------ 5. CUBIC
def test_cubic_reduces_to_seven_tenths(runs):
    fr = cc_of(runs["cubic", 20], "fast_retransmit")
    before = [next(x[2] for x in reversed(cc_of(runs["cubic", 20], "ack")) if x[0] < f[0]) for f in fr]
    assert [round(f[3], 1) for f in fr] == [40.6, 28.4, 19.9, 21.0, 20.7]
    assert round(0.7 * 58, 1) == 40.6 and before[0] == 58.0
    assert all(abs(f[3] - 0.7 * b) < 0.1 for f, b in zip(fr[1:], [40.6, 28.4]))


def test_cubic_curve_flattens_then_rises(lab, s):
    lines = [line for line in s.out["cubic"].splitlines() if line.split()[1] == "cwnd"]  # the plot's rows
    cwnd = {round(float(line.split()[0]), 2): float(line.split()[2]) for line in lines}
    steps = [round(cwnd[round(0.35 + 0.05 * (i + 1), 2)] - cwnd[round(0.35 + 0.05 * i, 2)], 1) for i in range(10)]
    assert steps[0] >= 1.0 and max(steps[4:9]) <= 1.0 and steps[-1] > max(steps[4:9])


# ------------------------------------------------------------ 6. side by side
def test_reno_leaves_the_first_recovery_early_newreno_does_not(runs):
    reno, newreno = cc_of(runs["reno", 20], "recovery_exit"), cc_of(runs["newreno", 20], "recovery_exit")
    assert reno[0][0] == 0.105 and reno[0][4] == 59.0 and newreno[0][0] == 0.207
    assert runs["reno", 20][0].now > runs["newreno", 20][0].now


def test_cubic_keeps_a_larger_window_on_average(runs):
    def mean_cwnd(r):
        ev = [(x[0], x[2]) for x in cc_of(r)]
        return sum((t1 - t0) * w for (t0, w), (t1, _) in zip(ev, ev[1:])) / (ev[-1][0] - ev[0][0])
    assert mean_cwnd(runs["cubic", 20]) > mean_cwnd(runs["newreno", 20]) and mean_cwnd(runs["cubic", 20]) > mean_cwnd(runs["reno", 20])


# ------------------------------------------------------------ 7. the real thing
def test_real_tun_bottleneck(lab, private_netns, tmp_path):
    script = []
    for line in lab.shell("tun").splitlines():
        if line.startswith(("sudo unshare", "source ", "exit")):
            continue
        script.append(line.replace("tun0", f"lab6t{os.getpid() % 100000}").replace("/tmp/lab6", str(tmp_path / "lab6")))
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
