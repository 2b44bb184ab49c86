"""A few thousand cases of scripts/fuzz in the suite: mutated segments of valid conversations in
every TCP state, against the sans-I/O core in virtual time (the long run is `scripts/fuzz`).

No exception may escape the core's entry points and the connection's invariants must hold.
Drop accounting is checked here on segments that must be acted on or counted; the kinds of
uncounted drops the fuzzer found are pinned as xfail tests in test_fuzz_findings.py.
"""
from __future__ import annotations

import os
import sys

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from tools import fuzz  # noqa: E402
from tools.fuzz_adapter import Core  # noqa: E402

VARIANTS = range(16)


def test_every_state_is_reached_by_a_valid_conversation():
    """The fuzzer's conversations reach the state they claim, in every variant (options, data in
    flight, out-of-order data, sequence numbers at the wrap)."""
    for state in fuzz.STATES:
        for variant in VARIANTS:
            scene = fuzz.build_scene(state, variant, seed=variant * 31 + 7)
            got = scene.conn.state if scene.conn is not None else None
            want = None if state in ("CLOSED", "LISTEN") else state
            assert got == want, (state, variant)


def test_the_valid_next_segment_is_accepted_in_every_state():
    """Unmutated, the next segment of each conversation is acted on (or counted): the silent-drop
    check does not fire on good traffic."""
    for state in fuzz.STATES:
        for variant in VARIANTS:
            scene = fuzz.build_scene(state, variant, seed=variant)
            packets, _ = fuzz.mutate(scene, [])
            assert not fuzz.feed(scene, packets[0]), (state, variant)
            if scene.conn is not None:
                assert scene.conn.violations() == []


def test_random_cases_raise_nothing_and_keep_invariants():
    summary = fuzz.run(seed=20261206, cases=2000, time_limit=None)
    assert summary.cases == 2000
    assert set(summary.per_state) == set(fuzz.STATES)
    bad = {k: v for k, v in summary.findings.items() if k[0] in ("exception", "invariant", "conversation")}
    assert not bad, bad


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(state=st.sampled_from(fuzz.STATES), variant=st.integers(0, 15),
       ops=st.lists(st.tuples(st.sampled_from([o for o in fuzz.OPS if o != "scapy"]), st.integers(0, 2**32 - 1)),
                    min_size=1, max_size=4))
def test_hypothesis_cases_raise_nothing_and_keep_invariants(state, variant, ops):
    findings = fuzz.run_case(0, 0, state=state, variant=variant, ops=ops)
    assert [f for f in findings if f.kind != "silent_drop"] == []


def test_scapy_mutations_raise_nothing():
    """scapy's fuzz() of the TCP header (slow, so a few) on an established connection."""
    for r in range(12):
        findings = fuzz.run_case(0, 0, state="ESTABLISHED", variant=r % 16, ops=[("scapy", r * 7919)])
        assert [f for f in findings if f.kind != "silent_drop"] == []


def test_an_exception_in_the_core_is_reported_not_raised(monkeypatch):
    """The harness itself can fail: an exception escaping receive() becomes a finding naming it."""
    def boom(self, packet, now):
        raise ZeroDivisionError("planted")
    monkeypatch.setattr(Core, "receive", boom)
    findings = fuzz.run_case(1, 1, state="LISTEN", variant=0, ops=[("window", 5)])
    assert [f.kind for f in findings] == ["exception"]
    assert "ZeroDivisionError" in findings[0].key and "planted" in findings[0].detail


def test_a_broken_invariant_is_reported():
    scene = fuzz.build_scene("ESTABLISHED", 0, seed=3)
    scene.conn._tcb.snd_nxt = (scene.conn.snd_una - 5) & 0xFFFFFFFF  # SND.NXT behind SND.UNA
    assert any("SND.UNA <= SND.NXT" in v for v in scene.conn.violations())


def test_packets_are_valid_ipv4_tcp_per_scapy():
    """The fuzzer's own packet builder agrees with scapy (checksums included) before mutation."""
    from scapy.layers.inet import IP, TCP
    scene = fuzz.build_scene("ESTABLISHED", 1, seed=5)
    packets, _ = fuzz.mutate(scene, [("opt_valid", 0b11111)])
    pkt = IP(packets[0])
    assert pkt[TCP].options and pkt[TCP].dport == fuzz.LISTEN_PORT
    rebuilt = IP(packets[0])
    del rebuilt[IP].chksum
    del rebuilt[TCP].chksum
    again = IP(bytes(rebuilt))
    assert again[IP].chksum == pkt[IP].chksum and again[TCP].chksum == pkt[TCP].chksum
