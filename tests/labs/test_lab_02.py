"""docs/labs/02-loss-and-retransmission.md: every block prints what the lab shows; every claim holds.

Claims about single packets (which ACK carried which SACK block, when the sender stayed
silent) are checked by running the lab's own ``run`` with the simulator class swapped for
one that also records every packet on the wire.
"""
from __future__ import annotations

import contextlib
import io
import json

import pytest

from labdoc import LANGS, Lab, run_shell, unique_tun
from stack.link.impair import Impairment
from stack.sim import Simulation
from stack.tcp import congestion
from stack.tcp.config import TcpConfig
from stack.wire.ipv4 import parse_ipv4
from stack.trace import ListSink, Tracer
from stack.wire.tcp import FIN, parse_tcp

NAME = "02-loss-and-retransmission.md"
LAB = Lab(NAME)  # the English page: its block ids (the twins' blocks are equal: test_translations.py)


@pytest.fixture(scope="module", params=LANGS)
def lab(request):
    """The lab in each language: every check below runs on the English page and on its translation."""
    return Lab(NAME, request.param)
MSS = 1448


@pytest.fixture(scope="module")
def s(lab):
    return lab.run()


@pytest.mark.parametrize("block", LAB.output_ids())
def test_each_block_prints_what_the_lab_shows(lab, s, block):
    assert s.out[block] == lab.output(block)


# ------------------------------------------------------------ helpers
class _Tapped(Simulation):
    """The lab's simulator, recording (time, packet) of everything either host sends."""

    log: list = []

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        log = _Tapped.log = []
        for wire in (self.ab, self.ba):
            def offer(packets, now, _offer=wire.offer):
                log.extend((now, p) for p in packets)
                _offer(packets, now)
            wire.offer = offer


class Run:
    """One call of the lab's run(): its sender, trace, and the packets, with relative numbers."""

    def __init__(self, lab, *args, **kw):
        ns = lab.run(["setup"]).ns
        ns["Simulation"] = _Tapped
        with contextlib.redirect_stdout(io.StringIO()) as out:
            self.sim, self.sink, self.a = ns["run"](*args, **kw)
        self.summary = out.getvalue().strip()
        a = self.a
        self.packets = []  # (t, 'a>b' | 'b>a', flags, seq, ack, len, sack blocks)
        for t, raw in _Tapped.log:
            ip, payload = parse_ipv4(raw)
            seg = parse_tcp(payload)
            out_ = ip.src == a.local[0]
            me, peer = (a.iss, a.irs) if out_ else (a.irs, a.iss)
            self.packets.append((round(t, 6), "a>b" if out_ else "b>a", seg.flags, (seg.seq - me) % 2**32,
                                 (seg.ack - peer) % 2**32, len(seg.payload),
                                 [((l - peer) % 2**32, (r - peer) % 2**32) for l, r in seg.sack or []]))

    def rel(self, seq):
        return (seq - self.a.iss) % 2**32

    def events(self, ev, **match):
        return [e for e in self.sink.of(ev) if e.get("conn") == self.a.name
                and all(e.get(k) == v for k, v in match.items())]

    def retransmits(self):
        return [(e["t"], self.rel(e["seq"]), e["why"]) for e in self.events("retransmit")]

    def data_from_a(self, t0, t1):
        return [p for p in self.packets if p[1] == "a>b" and p[5] and t0 < p[0] < t1]


def test_setup_numbers(lab):
    """'a 100 000 bytes ... 5 ms of delay each way (a 10 ms round trip)'; 'the first data byte is 1'."""
    r = Run(lab, "data:5")
    assert Simulation().ab.delay == Simulation().ba.delay == 0.005
    assert r.a.stats["bytes_out"] == 100_000
    first = next(p for p in r.packets if p[1] == "a>b" and p[5])
    assert first[3] == 1


# ------------------------------------------------------------ 2. one loss, no SACK
@pytest.fixture(scope="module")
def one(lab):
    return Run(lab, "data:5")


def test_initial_window_is_ten_segments_and_the_fifth_is_lost(one):
    assert congestion.rfc6928_initial_window(MSS) == 10 * MSS
    first_flight = [p for p in one.packets if p[1] == "a>b" and p[5] and p[0] == 0.015]
    assert [p[3] for p in first_flight] == [1 + i * MSS for i in range(10)]
    assert [one.rel(e["seq"]) for e in one.sink.of("impair")] == [5793] == [4 * MSS + 1]


def test_first_ack_covers_four_then_each_later_segment_gets_an_immediate_duplicate(one):
    acks = [p for p in one.packets if p[1] == "b>a" and p[0] == 0.020]
    assert [p[4] for p in acks] == [5793] * 5  # one for segments 1-4, four duplicates (segments 7-10)
    assert len([e for e in one.events("dupack") if e["t"] == 0.025]) == 4


def test_limited_transmit_then_fast_retransmit_on_the_third(one):
    """First ACK raised cwnd to 17376 (12 segments): 6 new segments; then one new segment on each of
    duplicate ACKs #1 and #2 (RFC 3042); the retransmission on #3, not before; flight 14 segments."""
    sent = [p[3] for p in one.packets if p[1] == "a>b" and p[5] and p[0] == 0.025]
    assert sent == [14481 + i * MSS for i in range(8)] + [5793]
    assert one.events("cc", why="ack")[0]["cwnd"] == 17376 == 12 * MSS
    evs = [e for e in one.sink.events if e.get("conn") == one.a.name and e["ev"] in ("dupack", "retransmit")]
    first = next(i for i, e in enumerate(evs) if e["ev"] == "retransmit")
    assert [e["n"] for e in evs[:first]] == [1, 2, 3] and evs[first]["why"] == "fast"
    fr = one.events("cc", why="fast_retransmit")[0]
    assert fr["flight"] == 20272 == 14 * MSS
    assert fr["ssthresh"] == 20272 // 2 == 10136 and fr["cwnd"] == 10136 + 3 * MSS == 14480


def test_inflation_is_one_segment_per_further_duplicate_ack():
    cc = congestion.create("newreno", MSS, 0.0)
    cc.on_enter_recovery(0.0, 20272)
    before = cc.cwnd
    cc.on_dupack_in_recovery()
    assert cc.cwnd - before == MSS


def test_recovery_ends_when_the_retransmission_is_acked(one):
    exit_ = one.events("cc", why="recovery_exit")[0]
    assert exit_["t"] == 0.035 and exit_["cwnd"] == min(10136, 5792 + MSS) == 7240
    assert one.retransmits() == [(0.025, 5793, "fast")]


# ------------------------------------------------------------ 3. SACK
@pytest.fixture(scope="module")
def sack(lab):
    return Run(lab, "data:5", sack=True)


def test_the_new_ack_already_sacked_segment_six_and_islost_fires_on_the_second_duplicate(sack):
    acks = [p for p in sack.packets if p[1] == "b>a" and p[0] == 0.020]
    assert acks[0][4] == 5793 and acks[0][6] == [(7241, 8689)]           # the ACK of 1-4: segment 6 SACKed
    assert [a[6] for a in acks[1:3]] == [[(7241, 10137)], [(7241, 11585)]]
    assert 11585 - 7241 == 3 * MSS == 4344 > 2 * MSS                     # RFC 6675 IsLost
    evs = [e for e in sack.sink.events if e.get("conn") == sack.a.name and e["ev"] in ("dupack", "retransmit")]
    first = next(i for i, e in enumerate(evs) if e["ev"] == "retransmit")
    assert [e["n"] for e in evs[:first]] == [1, 2] and evs[first]["why"] == "sack"
    fr = sack.events("cc", why="fast_retransmit")[0]
    assert fr["cwnd"] == fr["ssthresh"] == 18824 // 2 == 9412


def test_islost_rule_is_more_than_two_mss_sacked_above(lab):
    r = Run(lab, "data:5", sack=True)
    rec = r.a.recovery
    una = r.a.snd_una
    rec.sacked = [[una + 100, una + 100 + 2 * r.a.eff_mss]]
    assert not rec._is_lost(una, r.a.eff_mss)
    rec.sacked = [[una + 100, una + 101 + 2 * r.a.eff_mss]]
    assert rec._is_lost(una, r.a.eff_mss)


# ------------------------------------------------------------ 4. several losses
@pytest.fixture(scope="module")
def several(lab):
    return {name: Run(lab, "data:5,7,9", cc=cc, sack=sk)
            for name, cc, sk in (("newreno", "newreno", False), ("reno", "reno", False),
                                 ("sack", "newreno", True))}


def test_newreno_one_recovery_partial_acks_one_hole_per_rtt(several):
    r = several["newreno"]
    assert [e["why"] for e in r.events("cc") if e["why"] != "ack"] == [
        "fast_retransmit", "partial_ack", "partial_ack", "recovery_exit"]
    assert r.retransmits() == [(0.035, 5793, "fast"), (0.045, 8689, "fast"), (0.055, 11585, "fast")]
    acks_at_a = [p[4] for p in r.packets if p[1] == "b>a" and p[0] == 0.040]
    assert acks_at_a[0] == 8689  # the partial ACK stops at the next hole
    # the cwnd arithmetic of the partial ACKs (RFC 6582: deflate by the ACKed bytes, add one MSS back)
    assert 14480 + 6 * MSS - (8689 - 5793) + MSS == 21720
    assert 21720 + 2 * MSS - (11585 - 8689) + MSS == 23168
    assert "done in 0.105 s" in r.summary


def test_reno_exits_at_the_first_partial_ack_falls_silent_and_times_out(several):
    r = several["reno"]
    ex = r.events("cc", why="recovery_exit")[0]
    assert (ex["t"], ex["cwnd"], ex["ssthresh"], ex["flight"]) == (0.045, 10136, 10136, 20272)
    assert r.data_from_a(0.045, 0.245) == []                          # "it may send nothing"
    assert [e["n"] for e in r.events("dupack") if 0.045 <= e["t"] < 0.245] == [1, 2]
    rto = r.events("cc", why="rto")[0]
    assert rto["t"] == 0.245 and round(0.245 - 0.045, 6) == TcpConfig().min_rto and rto["cwnd"] == MSS
    assert r.retransmits()[1:] == [(0.245, 8689, "rto"), (0.255, 11585, "rto"), (0.255, 13033, "rto")]
    assert 13033 not in [r.rel(e["seq"]) for e in r.sink.of("impair")]  # it had arrived long before
    assert [e["ack"] for e in r.events("dupack") if e["t"] == 0.265] == [r.a.iss + 28961]
    assert 0.335 / 0.105 > 3 and "done in 0.335 s" in r.summary


def test_sack_repairs_all_three_holes_within_one_round_trip(several):
    r = several["sack"]
    assert r.retransmits() == [(0.025, 5793, "sack"), (0.035, 8689, "sack"), (0.035, 11585, "sack")]
    second = r.events("dupack")[1]
    blocks = [(r.rel(a), r.rel(b)) for a, b in second["sack"]]
    assert blocks == [(13033, 14481), (10137, 11585), (7241, 8689)]  # the most recent first
    assert "done in 0.095 s" in r.summary


# ------------------------------------------------------------ 5. RTO and backoff
@pytest.fixture(scope="module")
def rto(lab):
    return Run(lab, "data:5x4")


def test_a_lost_fast_retransmit_is_found_only_by_the_timer(rto):
    assert [t for t, _, _ in rto.retransmits()] == [0.025, 0.225, 0.625, 1.425]
    assert [w for _, _, w in rto.retransmits()] == ["fast", "rto", "rto", "rto"]
    # duplicate ACKs keep coming but no second fast retransmit; nothing advanced SND.UNA after 0.025
    dups = [e for e in rto.events("dupack") if 0.025 < e["t"] < 0.225]
    assert dups and {rto.rel(e["ack"]) for e in dups} == {5793} and max(e["n"] for e in rto.events("dupack")) == 62
    last_advance = max(e["t"] for e in rto.events("cc", why="ack") if e["t"] < 0.225)
    assert last_advance == 0.025 and round(0.225 - last_advance, 6) == 0.2


def test_rto_floor_backoff_and_cwnd(rto):
    assert TcpConfig().min_rto == 0.2 and TcpConfig().max_rto == 120.0
    samples = [e for e in rto.events("rtt") if e["t"] <= 0.025]
    assert samples and all(e["srtt"] + 4 * e["rttvar"] < 0.2 for e in samples)
    assert all(e["rto"] == 0.2 for e in samples)
    rtos = rto.events("cc", why="rto")
    assert [e["t"] for e in rtos] == [0.225, 0.625, 1.425]
    gaps = [round(b - a, 6) for a, b in zip([0.025] + [e["t"] for e in rtos], [e["t"] for e in rtos])]
    assert gaps == [0.2, 0.4, 0.8]
    assert all(e["cwnd"] == MSS and e["ssthresh"] == 10136 for e in rtos)


def test_the_ack_of_the_fourth_transmission_collapses_the_rto(rto):
    after = [e for e in rto.events("rtt") if e["t"] > 1.425]
    assert after and after[0]["rto"] == 0.2
    assert rto.a.rtt.backoff == 0 and rto.a.rtt.current_rto() == 0.2


def test_with_sack_lost_retransmissions_are_found_without_a_timer(lab):
    r = Run(lab, "data:5x4", sack=True)
    assert r.retransmits() == [(0.025, 5793, "sack"), (0.045, 5793, "sack"), (0.055, 5793, "sack"),
                               (0.065, 5793, "sack")]
    assert [e["t"] for e in r.events("lost_retransmit")] == [0.045, 0.055, 0.065]
    assert not r.events("cc", why="rto")
    # answer 7: at 0.045 the SACK reached 26065, past the 24617 sent when the retransmission left
    fr = r.events("cc", why="fast_retransmit")[0]
    assert 5793 + fr["flight"] == 24617
    edge = lambda e: max(r.rel(b) for _, b in e["sack"])
    assert max(edge(e) for e in r.events("dupack") if e["t"] < 0.045) == 24617
    assert edge(next(e for e in r.events("dupack") if e["t"] == 0.045)) == 26065
    assert "done in 0.115 s" in r.summary


# ------------------------------------------------------------ 6. tail loss probe
def test_tail_loss_probe_two_srtt_after_the_last_ack(lab):
    r = Run(lab, "data:69,70", sack=True, size=70 * MSS)
    last_ack = max(e["t"] for e in r.events("cc", why="ack") if e["t"] < 0.085)
    assert last_ack == 0.065 and r.a.rtt.srtt == pytest.approx(0.010)
    assert r.retransmits() == [(0.085, 99913, "tlp"), (0.095, 98465, "sack")]
    assert round(0.085 - last_ack, 6) == round(2 * 0.010, 6)
    dup = r.events("dupack")[0]
    assert dup["t"] == 0.095 and [(r.rel(a), r.rel(b)) for a, b in dup["sack"]] == [(99913, 101361)]
    assert "done in 0.085 s" in r.summary


def test_without_sack_the_tail_waits_for_the_rto_and_a_delayed_ack(lab):
    r = Run(lab, "data:69,70", sack=False, size=70 * MSS)
    assert r.retransmits() == [(0.265, 98465, "rto"), (0.315, 99913, "rto")]
    assert not r.events("tlp")
    acks = [p for p in r.packets if p[1] == "b>a" and 0.265 < p[0] < 0.315]
    assert [p[0] for p in acks] == [0.310] and round(0.310 - 0.270, 6) == TcpConfig().delack == 0.040
    assert "done in 0.305 s" in r.summary


def test_flight_of_2897_is_two_segments_and_the_fin(lab):
    r = Run(lab, "data:69,70", sack=True, size=70 * MSS)
    last = [p for p in r.packets if p[1] == "a>b" and p[3] == 99913][0]
    assert last[2] & FIN and r.events("cc", why="fast_retransmit")[0]["flight"] == 2 * MSS + 1


def test_single_segment_probe_waits_for_a_delayed_ack_but_never_beyond_the_rto():
    """Answer 8: for one segment in flight PTO = 2 SRTT + 200 ms, never later than the RTO: here
    0.22 s > 0.2 s, so the probe goes out when the RTO would have fired, in its place. (The
    transfer is not closed: a FIN on the last segment counts as one more byte in flight.)"""
    sink = ListSink()
    tracer = Tracer(sink)
    config = TcpConfig(congestion="newreno", sack=True, initial_window=10)  # as the lab: IW10
    sim = Simulation(seed=1, config_a=config, config_b=config, tracer=tracer,
                     impair_ab=Impairment("drop=data:70", tracer=tracer))
    listener = sim.listen(sim.b, 80)
    a = sim.connect(sim.a, 80)
    sim.run(until=1, condition=lambda: listener.readable)
    b = listener.accept()
    assert len(sim.transfer(sim.a, a, sim.b, b, bytes(70 * MSS), close=False)) == 70 * MSS
    acks = [e for e in sink.of("cc") if e["conn"] == a.name and e["why"] == "ack"]
    assert acks[-1]["flight"] == MSS  # one segment in flight after the last ACK
    rxt = [e for e in sink.of("retransmit") if e["conn"] == a.name]
    assert [(e["t"], e["why"]) for e in rxt] == [(round(acks[-1]["t"] + min(2 * 0.010 + 0.2, 0.2), 6), "tlp")]
    assert not [e for e in sink.of("cc") if e["conn"] == a.name and e["why"] == "rto"]


# ------------------------------------------------------------ answers
def test_one_reordered_segment_yields_one_duplicate_ack_and_no_retransmission(lab):
    """Answer 1: a segment overtaken by one other yields one duplicate ACK; no fast retransmit."""
    ns = lab.run(["setup"]).ns

    class Swapped(Simulation):
        def __init__(self, *args, **kw):
            super().__init__(*args, **kw)
            offer, held, count = self.ab.offer, [], [0]

            def swap_11th_and_12th(packets, now):
                out = []
                for p in packets:
                    if parse_tcp(parse_ipv4(p)[1]).payload:
                        count[0] += 1
                        if count[0] == 11:
                            held.append(p)
                            continue
                    out.append(p)
                    if held and count[0] == 12:
                        out.append(held.pop())
                offer(out, now)
            self.ab.offer = swap_11th_and_12th

    ns["Simulation"] = Swapped
    with contextlib.redirect_stdout(io.StringIO()):
        sim, sink, a = ns["run"]("data:999", sack=True)
    assert [e["n"] for e in sink.of("dupack") if e["conn"] == a.name] == [1]
    assert not sink.of("retransmit")


def test_answer_6_max_rto():
    assert TcpConfig().max_rto == 120.0


# ------------------------------------------------------------ 7. the real thing
def test_real_tun_kernel_receiver(lab, private_netns, tmp_path):
    lines = []
    tun = unique_tun("lab2t")  # one name for every line of this run
    for line in lab.shell("tun").splitlines():
        if line.startswith(("sudo unshare", "source ", "exit")):
            continue
        lines.append(line.replace("tun0", tun).replace("/tmp/lab2", str(tmp_path / "lab2")))
    res = run_shell("\n".join(lines), tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout.splitlines()
    assert out[:2] == ["HTTP 200, 200000 bytes", "intact"]
    events = [json.loads(line) for line in (tmp_path / "lab2.jsonl").read_text().splitlines()]
    drops = [e for e in events if e["ev"] == "impair"]
    rxt = [e for e in events if e["ev"] == "retransmit"]
    assert len(drops) == 1 and drops[0]["reason"] == "rule data:5"
    assert [(e["seq"], e["why"]) for e in rxt] == [(drops[0]["seq"], "sack")]
    assert "1" in out  # grep -c
    assert not [e for e in events if e["ev"] == "tlp" or (e["ev"] == "cc" and e["why"] == "rto")]
    before = events[:events.index(rxt[0])]
    dups = [e for e in before if e["ev"] == "dupack"]
    assert dups and all(e["sack"] for e in dups)
    sacked = lambda e: sum(r - l for l, r in e["sack"])
    assert sacked(dups[-1]) > 2 * MSS and all(sacked(e) <= 2 * MSS for e in dups[:-1])
    fr = next(e for e in events if e["ev"] == "cc" and e["why"] == "fast_retransmit")
    last_cwnd = [e["cwnd"] for e in events[:events.index(fr)] if e["ev"] == "cc"][-1]
    assert fr["algorithm"] == "cubic" and fr["ssthresh"] == max(round(0.7 * last_cwnd), 2 * MSS)


def test_where_the_events_come_from():
    """'dupack and lost_retransmit from stack/tcp/recovery.py, cc from Connection._trace_cc,
    retransmit from stack/tcp/connection.py (mostly Connection.retransmit_range), impair from
    stack/link/impair.py'; 'NewReno remembers how far it had sent (recover)'."""
    import inspect

    from stack.link import impair
    from stack.tcp import connection, recovery
    rec, conn = inspect.getsource(recovery), inspect.getsource(connection)
    assert '_trace("dupack"' in rec and '_trace("lost_retransmit"' in rec
    assert '"dupack"' not in conn and '"lost_retransmit"' not in conn
    assert 'emit("cc"' in inspect.getsource(connection.Connection._trace_cc)
    assert '_trace("retransmit"' in inspect.getsource(connection.Connection.retransmit_range)
    assert '_trace("retransmit"' not in rec and 'emit("impair"' in inspect.getsource(impair)
    assert "self.recover = seq_add(s.snd_max, -1)" in inspect.getsource(recovery.LossRecovery._enter_recovery)
