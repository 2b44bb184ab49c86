"""Loss recovery in virtual time, with scripted drops: exactly which segments are resent, and why.

RFC 5681 3.2 (fast retransmit on the third duplicate ACK), RFC 6582 (NewReno partial ACKs),
RFC 6675 (SACK recovery resends only the holes), RFC 6298 5.5 (RTO backoff).
"""
from __future__ import annotations

import random

from stack.link.impair import Impairment, ImpairSpec
from stack.sim import Simulation
from stack.tcp.config import TcpConfig
from stack.trace import ListSink, Tracer
from stack.wire.tcp import parse_tcp

SENDER = "192.0.2.1"


def _run(drop: str, size: int = 200_000, capture: list | None = None, **cfg):
    """a sends ``size`` bytes to b with the given data segments of a dropped; returns (sim, sink, conn).
    ``capture``, if given, receives (time, IP packet) for every packet a sends."""
    sink = ListSink()
    tracer = Tracer(sink)
    config = TcpConfig(**cfg)
    sim = Simulation(seed=1, config_a=config, config_b=config, tracer=tracer,
                     impair_ab=Impairment(ImpairSpec.parse(f"drop={drop}"), seed=1, direction="ab", tracer=tracer))
    if capture is not None:
        offer = sim.ab.offer

        def recording_offer(packets, now):
            capture.extend((now, bytes(p)) for p in packets)
            offer(packets, now)
        sim.ab.offer = recording_offer
    lst = sim.listen(sim.b, 80)
    a = sim.connect(sim.a, 80)
    assert sim.run(until=10, condition=lambda: lst.readable)
    b = lst.accept()
    data = random.Random(5).randbytes(size)
    assert sim.transfer(sim.a, a, sim.b, b, data, until=sim.now + 600) == data
    return sim, sink, a


def _segments(captured):
    """(time, TCP header values) of captured IPv4 packets, parsed by stack.wire."""
    out = []
    for t, raw in captured:
        ihl = (raw[0] & 0x0F) * 4
        out.append((t, parse_tcp(raw[ihl:])))
    return out


def _sender(events):
    return [e for e in events if e.get("conn", "").startswith(SENDER)]


def _retransmits(sink):
    return _sender(sink.of("retransmit"))


def _dropped_seqs(sink):
    return [e["seq"] for e in sink.of("impair") if e.get("action") == "drop"]


def test_fast_retransmit_after_exactly_three_duplicate_acks():
    """RFC 5681 3.2 step 2: the lost segment is resent on the third duplicate ACK, not before."""
    sim, sink, a = _run("data:12", sack=False, congestion="newreno")
    events = _sender(sink.events)
    first_rxt = next(i for i, e in enumerate(events) if e["ev"] == "retransmit")
    dupacks_before = [e for e in events[:first_rxt] if e["ev"] == "dupack"]
    assert [d["n"] for d in dupacks_before] == [1, 2, 3]
    assert events[first_rxt]["why"] == "fast"
    assert events[first_rxt]["seq"] == _dropped_seqs(sink)[0]
    assert len(_retransmits(sink)) == 1


def test_limited_transmit_sends_new_data_on_first_two_dupacks():
    """RFC 3042: each of the first two duplicate ACKs lets exactly one new segment out (the next one
    after SND.MAX); the third sends only the retransmission of the lost segment. A 10 Mbit/s
    bottleneck spaces the segments, so each duplicate ACK arrives alone and what the sender emits
    at that instant is its answer to it."""
    sent: list[tuple[float, bytes]] = []
    sim, sink, a = _run("data:12,rate=10mbit", sack=False, congestion="newreno", capture=sent)
    assert a.stats["retrans"] == 1 and a.recovery.fast_retransmits == 1
    data = [(round(t, 6), seg.seq, len(seg.payload)) for t, seg in _segments(sent) if seg.payload]
    dupacks = _sender(sink.of("dupack"))
    assert [d["n"] for d in dupacks[:3]] == [1, 2, 3]
    for d in dupacks[:3]:
        before = [(s_, n) for t, s_, n in data if t < d["t"]]
        snd_max = max(s_ + n for s_, n in before)
        answer = [(s_, n) for t, s_, n in data if t == d["t"]]
        if d["n"] < 3:
            assert answer == [(snd_max, 1448)]  # one new full segment at SND.MAX
        else:
            assert answer == [(_dropped_seqs(sink)[0], 1448)]  # the fast retransmission, nothing else


def test_newreno_recovers_several_losses_in_one_window_without_rto():
    """RFC 6582: partial ACKs resend the next hole; three losses in one window, no timeout."""
    sim, sink, a = _run("data:12,14,16", sack=False, congestion="newreno")
    whys = [e["why"] for e in _retransmits(sink)]
    assert "rto" not in whys
    assert sorted(e["seq"] for e in _retransmits(sink)) == sorted(_dropped_seqs(sink))
    assert a.recovery.fast_retransmits == 1  # one recovery episode for all three
    assert [e for e in _sender(sink.of("cc")) if e["why"] == "partial_ack"]


def test_reno_leaves_recovery_on_first_partial_ack():
    """Reno (RFC 5681) exits fast recovery at the first new ACK: later holes need another episode or an RTO."""
    sim, sink, a = _run("data:12,14,16", sack=False, congestion="reno")
    assert a.recovery.fast_retransmits >= 2 or any(e["why"] == "rto" for e in _retransmits(sink))
    assert not [e for e in _sender(sink.of("cc")) if e["why"] == "partial_ack"]


def test_sack_recovery_resends_only_the_holes():
    """RFC 6675: with SACK, exactly the lost segments are retransmitted, once each, no RTO."""
    sim, sink, a = _run("data:12,14,16,30", sack=True, congestion="cubic")
    rxt = _retransmits(sink)
    assert sorted(e["seq"] for e in rxt) == sorted(_dropped_seqs(sink))
    assert all(e["why"] in ("sack", "fast") for e in rxt)


def test_rto_backoff_doubles_when_retransmissions_are_lost():
    """RFC 6298 5.5: each timeout doubles the RTO (the segment and three retransmissions dropped)."""
    sim, sink, a = _run("data:12x4", sack=False, congestion="newreno", size=30_000)
    rxt = _retransmits(sink)
    assert [e["why"] for e in rxt] == ["fast", "rto", "rto", "rto"]
    gaps = [round(b["t"] - a_["t"], 6) for a_, b in zip(rxt, rxt[1:])]
    assert gaps[1] == 2 * gaps[0] and gaps[2] == 2 * gaps[1]


def test_tail_loss_probe_repairs_a_lost_tail_without_rto():
    """RFC 8985 7: the last two segments of a transfer are lost; the probe's SACK starts recovery, no RTO."""
    size = 30 * 1448
    sim, sink, a = _run("data:29,30", sack=True, congestion="cubic", size=size)
    whys = [e["why"] for e in _retransmits(sink)]
    assert "tlp" in whys and "rto" not in whys
    assert set(_dropped_seqs(sink)) <= {e["seq"] for e in _retransmits(sink)}


def test_lost_retransmission_is_detected_without_rto():
    """RFC 8985 6.2 (by sequence): a hole's retransmission is lost too; once later data is SACKed
    the hole is resent again, and the transfer never waits for the RTO."""
    sim, sink, a = _run("data:12x2", sack=True, congestion="cubic", size=400_000)
    rxt = [e for e in _retransmits(sink) if e["seq"] == _dropped_seqs(sink)[0]]
    assert len(rxt) == 2 and all(e["why"] == "sack" for e in rxt)
    assert _sender(sink.of("lost_retransmit"))
    assert a.recovery.lost_retransmits == 1


def test_without_sack_a_tail_loss_waits_for_the_rto():
    """The contrast the labs show: no SACK, no probe; the lost tail is found by the RTO."""
    sim, sink, a = _run("data:29,30", sack=False, congestion="newreno", size=30 * 1448)
    assert "rto" in [e["why"] for e in _retransmits(sink)]


def test_time_wait_table_is_bounded():
    """Like Linux's tcp_max_tw_buckets: past the limit, closing connections skip TIME-WAIT (counted)."""
    config = TcpConfig(max_time_wait=3)
    sim = Simulation(seed=2, config_a=config, config_b=config)
    lst = sim.listen(sim.b, 80)
    for _ in range(6):
        a = sim.connect(sim.a, 80)
        assert sim.run(until=sim.now + 5, condition=lambda: lst.readable)
        b = lst.accept()
        sim.close(sim.a, a)  # the active closer ends in TIME-WAIT
        assert sim.run(until=sim.now + 5, condition=lambda: b.rcv_closed)
        sim.close(sim.b, b)
        sim.run(until=sim.now + 1)
    in_time_wait = [c for c in sim.a.tcp.conns.values() if c.state.name == "TIME_WAIT"]
    assert len(in_time_wait) == 3
    assert sim.a.tcp.stats["time_wait_overflow"] == 3
