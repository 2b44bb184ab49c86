"""Seeded impairment layer (stack/link/impair.py): every feature, in virtual time.

scapy crafts the TCP segments the scripted rules look at and is the oracle for
"corruption makes the checksum fail".
"""
from __future__ import annotations

import argparse
import math

import pytest
from hypothesis import given, settings, strategies as st
from scapy.layers.inet import ICMP, IP, TCP, in4_chksum
from scapy.utils import checksum

from stack.link.impair import (
    DEFAULT_QUEUE_PACKETS, DropRule, ImpairSpec, Impairment, STAT_KEYS, derive_seed, peek_tcp,
)
from stack.link.impair_cli import add_impairment_arguments, impairments_from_args
from stack.trace import ListSink, NULL_TRACER, Tracer

A, B = "192.0.2.1", "192.0.2.2"


# --- helpers -----------------------------------------------------------------------------

def seg(flags="A", seq=1000, payload=b"", sport=80, dport=40000, src=B, dst=A) -> bytes:
    return bytes(IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags=flags, seq=seq,
                                             ack=1, window=65535) / payload)


def numbered(i: int, size: int = 100) -> bytes:
    """A non-TCP packet whose first 4 bytes carry its number (for order checks)."""
    return i.to_bytes(4, "big") + bytes(size - 4)


def num(p: bytes) -> int:
    return int.from_bytes(p[:4], "big")


def run(imp: Impairment, arrivals) -> list[tuple[float, bytes]]:
    """Drive ``imp`` like an event loop in virtual time: offer each (t, packet) at t,
    poll at every arrival and at every next_deadline. Returns (delivery time, packet)."""
    out = []
    arrivals = list(arrivals)
    i = 0
    while True:
        nd = imp.next_deadline()
        na = arrivals[i][0] if i < len(arrivals) else None
        if na is None and nd is None:
            return out
        if na is not None and (nd is None or na <= nd):
            imp.offer(arrivals[i][1], na)
            i += 1
            t = na
        else:
            t = nd
        out.extend((t, p) for p in imp.poll(t))


def periodic(n: int, gap: float, size: int = 100, start: float = 0.0):
    return [(start + k * gap, numbered(k, size)) for k in range(n)]


def inversions(order: list[int]) -> int:
    """Packets delivered after a higher-numbered one."""
    seen_max, count = -1, 0
    for k in order:
        if k < seen_max:
            count += 1
        seen_max = max(seen_max, k)
    return count


def within(count: int, n: int, p: float, sigmas: float = 5.0) -> bool:
    sd = math.sqrt(n * p * (1 - p))
    return abs(count - n * p) <= sigmas * sd


# --- the null path -------------------------------------------------------------------------

def test_null_spec_passes_everything_through_at_once():
    imp = Impairment(ImpairSpec())
    assert imp.is_null and ImpairSpec.parse("").is_null and ImpairSpec.parse("none").is_null
    assert imp.next_deadline() is None
    imp.offer(b"a", 1.5)
    imp.offer(b"b", 1.5)
    assert imp.next_deadline() == 1.5
    assert imp.poll(1.5) == [b"a", b"b"]
    assert imp.poll(1.5) == [] and imp.next_deadline() is None
    assert imp.stats == {**dict.fromkeys(STAT_KEYS, 0), "offered": 2, "delivered": 2}
    assert ImpairSpec().describe() == "none" and str(ImpairSpec()) == "none"


def test_untimed_impairments_deliver_survivors_immediately():
    imp = Impairment("loss=50%", seed=3)
    for k in range(100):
        imp.offer(numbered(k), 2.0)
    out = imp.poll(2.0)
    assert len(out) == 100 - imp.stats["dropped_loss"]
    assert [num(p) for p in out] == sorted(num(p) for p in out)
    assert imp.next_deadline() is None


# --- reproducibility -----------------------------------------------------------------------

MIXED = "loss=3%,burst=2%/40%,delay=5ms,jitter=2ms,reorder=5%,dup=3%,corrupt=2%,rate=20mbit,queue=30"


def test_same_seed_same_decisions_different_seed_different():
    arrivals = periodic(2000, 0.0003, size=500)
    a = run(Impairment(MIXED, seed=42), arrivals)
    b = run(Impairment(MIXED, seed=42), arrivals)
    c = run(Impairment(MIXED, seed=43), arrivals)
    assert a == b
    assert a != c
    ia, ic = Impairment(MIXED, seed=42), Impairment(MIXED, seed=43)
    run(ia, arrivals), run(ic, arrivals)
    assert ia.stats != ic.stats


def test_each_feature_has_its_own_stream():
    """Adding duplication or jitter does not move which packets the loss stream drops."""
    arrivals = periodic(3000, 0.001)

    def survivors(spec):
        return {num(p) for _, p in run(Impairment(spec, seed=9), arrivals)}

    base = survivors("loss=10%")
    assert survivors("loss=10%,dup=20%") == base
    assert survivors("loss=10%,delay=3ms,jitter=2ms") == base


def test_direction_sub_seeds_differ():
    assert derive_seed(1, "in") != derive_seed(1, "out")
    assert derive_seed(1, "in") == derive_seed(1, "in") != derive_seed(2, "in")


# --- loss ----------------------------------------------------------------------------------

def test_random_loss_rate_within_bounds():
    n, p = 20000, 0.05
    imp = Impairment(ImpairSpec(loss=p), seed=1)
    pkt = bytes(60)
    for k in range(n):
        imp.offer(pkt, k * 1e-4)
    delivered = len(imp.poll(n))
    dropped = imp.stats["dropped_loss"]
    assert delivered + dropped == n
    assert within(dropped, n, p)


def _bursts(lost: list[bool]) -> list[int]:
    runs, cur = [], 0
    for x in lost:
        if x:
            cur += 1
        elif cur:
            runs.append(cur)
            cur = 0
    if cur:
        runs.append(cur)
    return runs


def _loss_pattern(spec: str, n: int, seed: int) -> list[bool]:
    imp = Impairment(spec, seed=seed)
    lost = []
    for k in range(n):
        before = imp.stats["dropped_burst"] + imp.stats["dropped_loss"]
        imp.offer(b"x" * 40, float(k))
        lost.append(imp.stats["dropped_burst"] + imp.stats["dropped_loss"] > before)
    return lost


def test_gilbert_elliott_is_bursty():
    p, r, n = 0.05, 0.3, 20000
    lost = _loss_pattern(f"burst={p}/{r}", n, seed=5)
    bursts = _bursts(lost)
    mean = sum(bursts) / len(bursts)
    # bursts are geometric with mean 1/r; sd of the mean ~ sqrt((1-r)/r^2 / #bursts)
    sd = math.sqrt((1 - r) / r ** 2 / len(bursts))
    assert abs(mean - 1 / r) < 5 * sd, (mean, 1 / r)
    # stationary share of the bad state p / (p + r)
    assert abs(sum(lost) / n - p / (p + r)) < 0.02
    # independent loss at the same average rate has bursts of ~1/(1-q) ≈ 1.17
    q = sum(lost) / n
    plain = _bursts(_loss_pattern(f"loss={q}", n, seed=5))
    assert sum(plain) / len(plain) < 1.4 < mean


def test_gilbert_elliott_partial_loss_in_states():
    lost = _loss_pattern("burst=10%/10%/50%/1%", 20000, seed=2)
    # half the time bad (loses 50%), half good (loses 1%): about 25.5% overall
    assert abs(sum(lost) / 20000 - 0.255) < 0.03


# --- scripted rules --------------------------------------------------------------------------

def server_stream() -> list[bytes]:
    """Packets a server sends: SYN-ACK, 6 data segments with pure ACKs between, FIN."""
    pkts = [seg("SA", seq=999)]
    seq = 1000
    for k in range(6):
        pkts.append(seg("PA", seq=seq, payload=bytes([65 + k]) * 100))
        seq += 100
        if k % 2:
            pkts.append(seg("A", seq=seq))
    pkts.append(seg("FA", seq=seq))
    return pkts


def through(spec: str, pkts: list[bytes], seed: int = 0) -> tuple[list[bytes], Impairment]:
    imp = Impairment(spec, seed=seed)
    for k, p in enumerate(pkts):
        imp.offer(p, k * 0.001)
    return imp.poll(1.0), imp


def test_rule_drops_exactly_the_nth_data_segment():
    pkts = server_stream()
    out, imp = through("drop=data:3", pkts)
    data = [p for p in pkts if len(IP(p)[TCP].payload)]
    assert [p for p in pkts if p not in out] == [data[2]]
    assert IP(data[2])[TCP].seq == 1200
    assert imp.stats["dropped_rule"] == 1 and len(out) == len(pkts) - 1


@pytest.mark.parametrize("rule, expect, count", [
    ("synack:1", lambda t: t.flags == "SA", 1),
    ("fin:1", lambda t: t.flags.F, 1),
    ("pkt:5", lambda t: t.seq == 1200 and t.flags == "PA", 1),   # 5th packet: 3rd data seg
    ("ack:1", lambda t: t.flags == "A", 1),
    ("ack:2", lambda t: t.flags == "A" and t.seq == 1400, 1),
    ("tcp/FA:1", lambda t: t.flags.F, 1),
    ("data/F:1", None, 0),                                       # no data segment has FIN
    ("data:2-3", lambda t: t.seq in (1100, 1200), 2),
    ("data:1,6", lambda t: t.seq in (1000, 1500), 2),
    ("data:7", None, 0),                                         # only 6 data segments
])
def test_rules_by_kind(rule, expect, count):
    pkts = server_stream()
    out, imp = through("drop=" + rule, pkts)
    dropped = [p for p in pkts if p not in out]
    assert len(dropped) == count == imp.stats["dropped_rule"]
    assert all(expect(IP(p)[TCP]) for p in dropped)
    assert out == [p for p in pkts if p not in dropped]          # order kept


def test_syn_rule_list_drops_first_two_syns_only():
    syns = [seg("S", seq=7, sport=40000, dport=80, src=A, dst=B) for _ in range(3)]
    out, _ = through("drop=syn:1,2", syns + [seg("SA", seq=5)])
    assert len(out) == 2 and IP(out[0])[TCP].flags == "S" and IP(out[1])[TCP].flags == "SA"
    out, _ = through("drop=syn:1", [seg("SA", seq=5)] + syns)   # a SYN-ACK is not a SYN
    assert len(out) == 3


def test_rule_times_drops_retransmissions_of_that_segment():
    a, b, c = (seg("PA", seq=s, payload=b"z" * 100) for s in (1000, 1100, 1200))
    pkts = [a, b, c, b, b, b]                 # b retransmitted three times
    out, imp = through("drop=data:2x3", pkts)
    assert out == [a, c, b]                   # 2nd data seg and its first 2 retransmissions
    assert imp.stats["dropped_rule"] == 3


def test_rst_rule_and_non_tcp_packets():
    icmp = bytes(IP(src=B, dst=A) / ICMP())
    pkts = [icmp, seg("R", seq=1), icmp, seg("RA", seq=2)]
    out, _ = through("drop=rst:2", pkts)
    assert out == pkts[:3]
    out, _ = through("drop=pkt:1,3", pkts)    # pkt counts every packet, TCP or not
    assert out == [pkts[1], pkts[3]]
    out, _ = through("drop=tcp:1", pkts)
    assert out == [icmp, icmp, pkts[3]]


def test_several_rules_count_independently():
    pkts = server_stream()
    out, imp = through("drop=data:1+fin:1,drop=synack:1", pkts)
    assert imp.stats["dropped_rule"] == 3
    assert [IP(p)[TCP].flags for p in pkts if p not in out] == ["SA", "PA", "FA"]


def test_peek_tcp_matches_scapy():
    p = bytes(IP(src=A, dst=B, options=[b"\x01" * 4]) / TCP(flags="PA", seq=77,
                                                            options=[("MSS", 1460)]) / b"hello")
    info = peek_tcp(p)
    assert (info.seq, info.flags, info.paylen) == (77, int(IP(p)[TCP].flags), 5)
    assert peek_tcp(bytes(IP() / ICMP())) is None
    assert peek_tcp(p[:30]) is None and peek_tcp(b"") is None
    frag = bytes(IP(src=A, dst=B, frag=10, proto=6) / (b"\0" * 40))
    assert peek_tcp(frag) is None              # a later fragment has no TCP header


# --- delay, jitter, reordering ---------------------------------------------------------------

def test_constant_delay_is_exact_in_virtual_time():
    imp = Impairment("delay=20ms")
    imp.offer(b"p", 1.0)
    assert imp.next_deadline() == pytest.approx(1.02, abs=1e-12)
    assert imp.poll(1.0199) == []
    assert imp.poll(imp.next_deadline()) == [b"p"]
    out = run(Impairment("delay=20ms"), periodic(50, 0.001))
    assert all(t - k * 0.001 == pytest.approx(0.02, abs=1e-9) for k, (t, _) in enumerate(out))
    assert [num(p) for _, p in out] == list(range(50))


def test_uniform_jitter_bounds_and_reordering():
    imp = Impairment("delay=20ms,jitter=5ms", seed=4)
    out = run(imp, periodic(2000, 0.0005))
    lat = [t - num(p) * 0.0005 for t, p in out]
    assert min(lat) >= 0.015 - 1e-9 and max(lat) <= 0.025 + 1e-9
    assert min(lat) < 0.0155 and max(lat) > 0.0245           # the whole range is used
    assert inversions([num(p) for _, p in out]) > 0            # jitter reorders ...
    out = run(Impairment("delay=20ms,jitter=5ms,preserve_order", seed=4), periodic(2000, 0.0005))
    assert inversions([num(p) for _, p in out]) == 0           # ... unless told not to
    lat = [t - num(p) * 0.0005 for t, p in out]
    assert min(lat) >= 0.015 - 1e-9


def test_normal_jitter_is_never_negative():
    imp = Impairment("delay=1ms,jitter=5ms/normal", seed=8)
    for k in range(2000):
        imp.offer(numbered(k), 5.0)
    lat = []
    while (d := imp.next_deadline()) is not None:
        lat.extend(d - 5.0 for _ in imp.poll(d))
    assert len(lat) == 2000
    assert min(lat) >= 0 and sum(1 for x in lat if x == 0) > 500  # clamped, not negative
    assert max(lat) > 0.01                                       # a real spread


def test_reorder_swap_lets_the_next_packet_overtake():
    imp = Impairment("reorder=10%", seed=11)
    out = run(imp, periodic(2000, 0.001))
    order = [num(p) for _, p in out]
    assert sorted(order) == list(range(2000))
    held = imp.stats["reordered"]
    assert within(held, 2000, 0.1)
    assert held - 1 <= inversions(order) <= held             # the last may just time out
    # a held packet comes right after the one that overtook it, at the same time
    pos = {k: i for i, k in enumerate(order)}
    for k in range(1999):
        if pos[k] > pos[k + 1] and pos[k] == pos[k + 1] + 1:
            assert out[pos[k]][0] == out[pos[k + 1]][0]


def test_reorder_swap_times_out_without_a_next_packet():
    imp = Impairment("reorder=100%/swap/7ms")
    imp.offer(b"alone", 0.0)
    assert imp.next_deadline() == pytest.approx(0.007)
    assert imp.poll(0.0069) == [] and imp.poll(0.007) == [b"alone"]


def test_reorder_swap_does_not_resend_a_packet_released_by_timeout():
    for seed in range(200):
        imp = Impairment("reorder=50%/swap/5ms", seed=seed)
        imp.offer(b"P", 0.0)
        if imp.stats["reordered"] != 1:
            continue
        assert imp.poll(0.005) == [b"P"]                       # hold expired
        imp.offer(b"Q", 0.005)                                 # due exactly then
        if imp.stats["reordered"] == 1:
            assert imp.poll(0.005) == [b"Q"]
            assert imp.next_deadline() is None and imp.pending == 0
            return
    pytest.fail("no seed held the first packet only")


def test_reorder_delay_mode_holds_by_extra_delay():
    imp = Impairment("delay=2ms,reorder=100%/delay/5ms")
    imp.offer(b"p", 0.0)
    assert imp.next_deadline() == pytest.approx(0.007)
    imp = Impairment("reorder=20%/3ms", seed=2)               # a time alone means delay mode
    assert imp.spec.reorder_mode == "delay"
    out = run(imp, periodic(1000, 0.001))
    assert inversions([num(p) for _, p in out]) > 100
    lat = sorted(round(t - num(p) * 0.001, 9) for t, p in out)
    assert set(lat) == {0.0, 0.003}


# --- duplication and corruption --------------------------------------------------------------

def test_duplication_count():
    imp = Impairment("dup=10%", seed=6)
    out = run(imp, periodic(5000, 0.0001))
    assert len(out) == 5000 + imp.stats["duplicated"]
    assert within(imp.stats["duplicated"], 5000, 0.1)
    order = [num(p) for _, p in out]
    assert sorted(set(order)) == list(range(5000))
    assert sum(1 for a, b in zip(order, order[1:]) if a == b) == imp.stats["duplicated"]


def _bit_diff(a: bytes, b: bytes) -> list[tuple[int, int]]:
    return [(i, bin(x ^ y).count("1")) for i, (x, y) in enumerate(zip(a, b)) if x != y]


def test_corruption_flips_one_bit_past_ip_header_and_scapy_sees_bad_checksum():
    original = seg("PA", seq=5000, payload=b"hello world " * 20)
    assert in4_chksum(6, IP(original), original[20:]) == 0    # valid to begin with
    imp = Impairment("corrupt=100%", seed=1)
    for k in range(300):
        imp.offer(original, k * 0.001)
    out = imp.poll(1.0)
    assert len(out) == 300 and imp.stats["corrupted"] == 300
    for bad in out:
        diff = _bit_diff(original, bad)
        assert len(bad) == len(original) and len(diff) == 1 and diff[0][1] == 1
        assert diff[0][0] >= 20                                # past the IP header
        assert checksum(bad[:20]) == 0                         # IP header intact
        assert in4_chksum(6, IP(bad), bad[20:]) != 0           # scapy: TCP checksum fails
    assert len({bytes(p) for p in out}) > 200                  # bits are spread around


def test_corruption_anywhere_can_hit_the_ip_header():
    original = seg("PA", seq=1, payload=b"x" * 20)             # 60 bytes, 20 of them IP
    imp = Impairment("corrupt=100%/any", seed=3)
    for k in range(400):
        imp.offer(original, 0.0)
    offsets = [_bit_diff(original, p)[0][0] for p in imp.poll(0.0)]
    assert min(offsets) < 20 and max(offsets) >= 20


# --- bottleneck --------------------------------------------------------------------------------

RATE = 1_000_000            # 1 Mbit/s
SIZE = 1250                 # bytes -> 10 ms serialization
SER = SIZE * 8 / RATE


def test_bottleneck_throughput_equals_rate_when_saturated():
    imp = Impairment("rate=1mbit,queue=20")
    out = run(imp, periodic(1000, SER / 2, size=SIZE))        # offered at twice the rate
    times = [t for t, _ in out]
    rate = (len(times) - 1) * SIZE * 8 / (times[-1] - times[0])
    assert rate == pytest.approx(RATE, rel=0.01)
    assert imp.stats["dropped_queue"] > 400                    # the excess is dropped ...
    lat = [t - num(p) * SER / 2 for t, p in out]
    assert max(lat) <= 20 * SER + 1e-9                         # ... and delay is bounded
    assert max(lat) > 18 * SER                                 # by a full queue


def test_bottleneck_queue_delay_is_queue_length_times_serialization():
    imp = Impairment("rate=1mbit,queue=50,delay=30ms")
    for k in range(10):
        imp.offer(numbered(k, SIZE), 0.0)
    out = run(imp, [])
    assert [num(p) for _, p in out] == list(range(10))
    for k, (t, _) in enumerate(out):                         # k packets ahead, then itself
        assert t == pytest.approx(k * SER + SER + 0.030, abs=1e-9)
    # a packet arriving mid-backlog waits for what is left of the queue
    imp = Impairment("rate=1mbit")
    for k in range(4):
        imp.offer(numbered(k, SIZE), 0.0)
    imp.offer(numbered(9, SIZE), 0.015)                       # 2.5 packets still ahead
    assert run(imp, [])[-1][0] == pytest.approx(5 * SER)


def test_bottleneck_drops_tail_when_full_and_accepts_after_draining():
    imp = Impairment("rate=1mbit,queue=5")
    for k in range(10):
        imp.offer(numbered(k, SIZE), 0.0)
    assert imp.stats["dropped_queue"] == 5
    assert [num(p) for _, p in run(imp, [])] == [0, 1, 2, 3, 4]   # drop-tail: the last go
    imp.offer(numbered(99, SIZE), 1.0)
    assert imp.stats["dropped_queue"] == 5 and imp.pending == 1
    imp = Impairment("rate=1mbit,queue=3000b")                 # a byte limit
    for k in range(5):
        imp.offer(numbered(k, 1000), 0.0)
    assert imp.stats["dropped_queue"] == 2
    assert Impairment("rate=1mbit").spec.queue_limit == (DEFAULT_QUEUE_PACKETS, None)


def test_bottleneck_under_rate_never_drops_or_queues():
    imp = Impairment("rate=1mbit,queue=2,delay=5ms")
    out = run(imp, periodic(500, SER / 0.8, size=SIZE))      # 80 % load
    assert imp.stats["dropped_queue"] == 0 and len(out) == 500
    assert all(t - num(p) * SER / 0.8 == pytest.approx(SER + 0.005, abs=1e-9) for t, p in out)


def test_bottleneck_queueing_delay_grows_with_backlog():
    """What congestion control reacts to: RTT rises as the sender overdrives the link."""
    imp = Impairment("rate=1mbit,queue=100")
    out = run(imp, periodic(60, SER / 1.5, size=SIZE))        # 150 % load, queue not full
    lat = [t - num(p) * SER / 1.5 for t, p in out]
    assert all(b > a for a, b in zip(lat, lat[1:]))
    assert imp.stats["dropped_queue"] == 0


# --- tracing ---------------------------------------------------------------------------------

def test_every_impairment_is_a_trace_event():
    sink = ListSink()
    imp = Impairment("drop=data:1,delay=1ms,dup=100%,corrupt=100%,rate=1mbit,queue=2",
                     direction="in", tracer=Tracer(sink))
    imp.offer(seg("PA", seq=10, payload=b"a" * 10), 0.0)       # dropped by the rule
    imp.offer(seg("PA", seq=20, payload=b"b" * 10), 0.0)       # dup, both corrupted, queued
    imp.offer(seg("PA", seq=30, payload=b"c" * 10), 0.0)       # the queue is full by now
    events = sink.of("impair")
    actions = [e["action"] for e in events]
    assert actions[0] == "drop" and events[0]["reason"] == "rule data:1"
    assert events[0]["seq"] == 10 and events[0]["flags"] == "P."
    assert {"dup", "corrupt", "delay", "queue_drop"} <= set(actions)
    assert all(e["dir"] == "in" and e["len"] > 40 for e in events)
    qd = [e for e in events if e["action"] == "queue_drop"]
    assert qd and qd[0]["reason"] == "queue_full"
    Impairment("loss=100%", tracer=NULL_TRACER).offer(b"x", 0.0)   # disabled: no events


# --- the spec language -----------------------------------------------------------------------

def test_parse_full_example():
    s = ImpairSpec.parse("loss=5%,delay=20ms,jitter=5ms,reorder=1%,dup=1%,corrupt=0.5%,"
                         "rate=10mbit,queue=50,burst=0.01/0.3,drop=data:3")
    assert (s.loss, s.delay, s.jitter, s.reorder, s.dup) == (0.05, 0.02, 0.005, 0.01, 0.01)
    assert s.corrupt == 0.005 and s.rate == 10e6 and s.queue_packets == 50
    assert (s.p_good_to_bad, s.p_bad_to_good, s.loss_bad, s.loss_good) == (0.01, 0.3, 1.0, 0.0)
    assert s.drop == (DropRule("data", ((3, 3),)),)
    assert not s.is_null
    assert "loss 5%" in s.describe() and "rate 10mbit" in s.describe()
    assert ImpairSpec.parse("drop=syn:1,2,loss=1%").drop == (DropRule("syn", ((1, 1), (2, 2))),)


@pytest.mark.parametrize("text, value", [
    ("rate=512kbit", 512e3), ("rate=1gbit", 1e9), ("rate=125kbyte", 1e6),
    ("rate=1MB/s", 8e6), ("rate=8000bit", 8000),
])
def test_rate_units(text, value):
    assert ImpairSpec.parse(text).rate == pytest.approx(value)


def test_time_and_queue_units():
    assert ImpairSpec.parse("delay=500us").delay == pytest.approx(5e-4)
    assert ImpairSpec.parse("delay=1.5s").delay == 1.5
    assert ImpairSpec.parse("rate=1mbit,queue=64kb").queue_bytes == 64000
    assert ImpairSpec.parse("rate=1mbit,queue=20p").queue_packets == 20
    assert ImpairSpec.parse("loss=0.05").loss == 0.05


@pytest.mark.parametrize("text, names", [
    ("loss=abc", "loss=abc"),
    ("loss=150%", "150%"),
    ("loss=5", "5%"),
    ("delay=-5ms", "-5ms"),
    ("delay=20", "unit"),
    ("delay=20 parsecs", "parsecs"),
    ("wobble=1", "wobble"),
    ("rate=10mbps", "ambiguous"),
    ("rate=fast", "fast"),
    ("queue=50", "needs a rate"),
    ("rate=1mbit,queue=-3", "queue"),
    ("burst=0.1", "burst"),
    ("burst=10%/0", "never recovers"),
    ("drop=data", "data"),
    ("drop=bogus:1", "bogus"),
    ("drop=data:0", "data:0"),
    ("drop=data:5-2", "5-2"),
    ("drop=tcp/Z:1", "'Z'"),
    ("jitter=5ms/pareto", "pareto"),
    ("reorder=1%/sideways", "sideways"),
    ("corrupt=1%/everywhere", "everywhere"),
    ("loss", "loss=VALUE"),
    ("preserve_order=maybe", "maybe"),
])
def test_parse_errors_name_the_bad_part(text, names):
    with pytest.raises(ValueError) as e:
        ImpairSpec.parse(text)
    assert names in str(e.value)


probs = st.sampled_from([0.0, 0.001, 0.01, 0.05, 0.5, 1.0, 0.123456, 1 / 3])
times = st.sampled_from([0.0, 1e-6, 0.0005, 0.02, 0.1234567, 1.5])


@settings(max_examples=150, deadline=None)
@given(loss=probs, delay=times, jitter=times, reorder=probs, dup=probs, corrupt=probs,
       any_=st.booleans(), normal=st.booleans(), order=st.booleans(),
       rate=st.sampled_from([0.0, 64e3, 10e6, 1e9, 1234567.0]),
       queue=st.sampled_from([None, 1, 50]), qbytes=st.sampled_from([None, 3000]),
       burst=st.sampled_from([None, (0.01, 0.3, 1.0, 0.0), (0.1, 0.5, 0.7, 0.02)]),
       rules=st.lists(st.sampled_from(["data:3", "syn:1,2", "synack:1x2", "pkt:5-9",
                                       "tcp/FA:2", "rst:1"]), max_size=3),
       mode=st.sampled_from(["swap", "delay"]))
def test_to_string_round_trips(loss, delay, jitter, reorder, dup, corrupt, any_, normal, order,
                               rate, queue, qbytes, burst, rules, mode):
    kw = dict(loss=loss, delay=delay, jitter=jitter, reorder=reorder, dup=dup, corrupt=corrupt,
              corrupt_anywhere=any_ and corrupt > 0, jitter_dist="normal" if normal and jitter else "uniform",
              preserve_order=order, rate=rate, reorder_mode=mode if reorder else "swap",
              drop=tuple(DropRule.parse(r) for r in rules))
    if rate:
        kw["queue_packets"], kw["queue_bytes"] = (None, qbytes) if qbytes else (queue, None)
    if burst:
        kw.update(zip(("p_good_to_bad", "p_bad_to_good", "loss_bad", "loss_good"), burst))
    spec = ImpairSpec(**kw).validate()
    assert ImpairSpec.parse(spec.to_string()) == spec
    assert spec.describe()


# --- command line ----------------------------------------------------------------------------

def _parser():
    p = argparse.ArgumentParser(prog="tunstack serve")
    add_impairment_arguments(p)
    return p


def test_cli_per_direction_specs_and_seeds():
    args = _parser().parse_args(["--impair", "loss=1%,delay=5ms", "--impair-out",
                                 "delay=50ms,drop=data:3", "--seed", "7"])
    inbound, outbound = impairments_from_args(args, tracer=None)
    assert (inbound.direction, outbound.direction) == ("in", "out")
    assert inbound.spec.loss == outbound.spec.loss == 0.01
    assert inbound.spec.delay == 0.005 and outbound.spec.delay == 0.05    # override
    assert not inbound.spec.drop and outbound.spec.drop[0].kind == "data"
    assert inbound.seed == derive_seed(7, "in") != outbound.seed == derive_seed(7, "out")
    plain = _parser().parse_args([])
    assert not hasattr(plain, "seed")              # our default pins nobody else's seed
    none_in, none_out = impairments_from_args(plain)
    assert none_in.is_null and none_out.is_null and none_in.seed == derive_seed(0, "in")
    only_in, only_out = impairments_from_args(_parser().parse_args(["--impair-in", "dup=1%"]))
    assert only_in.spec.dup == 0.01 and only_out.is_null
    args = _parser().parse_args(["--impair", "loss=5%", "--impair-in", "loss=0"])
    assert impairments_from_args(args)[0].is_null                      # explicit 0 wins


def test_cli_bad_spec_is_a_clean_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        _parser().parse_args(["--impair-in", "loss=12"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "argument --impair-in: bad impairment 'loss=12'" in err and "Traceback" not in err
    with pytest.raises(SystemExit):
        _parser().parse_args(["--seed", "abc"])
    assert "seed 'abc' is not an integer" in capsys.readouterr().err


def test_cli_help_lists_the_syntax(capsys):
    with pytest.raises(SystemExit):
        _parser().parse_args(["--help"])
    out = capsys.readouterr().out
    for word in ("--impair-in", "--impair-out", "--seed", "drop=KIND:N", "synack:1", "rate=R"):
        assert word in out


def test_existing_seed_option_is_reused():
    p = argparse.ArgumentParser()
    p.add_argument("--seed", type=int, default=3)
    add_impairment_arguments(p)
    assert p.parse_args([]).seed == 3


# --- speed -----------------------------------------------------------------------------------

def test_null_path_is_cheap():
    import time
    imp = Impairment()
    pkt = bytes(1500)
    t0 = time.perf_counter()
    for k in range(20000):
        imp.offer(pkt, 0.0)
        imp.poll(0.0)
    per = (time.perf_counter() - t0) / 20000
    assert per < 20e-6, per            # generous: about 1 us on these machines
