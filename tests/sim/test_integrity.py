"""Simulation: two stacks over an impaired in-memory link in virtual time; data arrives intact.

20 seeds x {1 %, 5 %, 20 % loss, burst loss, reorder + duplicate + corrupt}, impaired in both
directions, with a transfer each way; and a transfer that still completes at 30 % loss.
"""
from __future__ import annotations

import hashlib
import random

import pytest

from stack.link.impair import Impairment, ImpairSpec
from stack.sim import Simulation
from stack.tcp.config import TcpConfig

CONDITIONS = {
    "loss1": "loss=1%",
    "loss5": "loss=5%",
    "loss20": "loss=20%",
    "burst": "burst=1%/40%",          # Gilbert-Elliott: mean burst 2.5 packets
    "mixed": "reorder=5%,dup=5%,corrupt=3%,delay=2ms,jitter=1ms",
}
SEEDS = range(20)


def _sim(spec: str, seed: int, **cfg) -> Simulation:
    config = TcpConfig(**cfg)
    return Simulation(seed=seed, config_a=config, config_b=config,
                      impair_ab=Impairment(ImpairSpec.parse(spec), seed=seed * 2 + 1, direction="ab"),
                      impair_ba=Impairment(ImpairSpec.parse(spec), seed=seed * 2 + 2, direction="ba"))


def _connect(sim: Simulation):
    lst = sim.listen(sim.b, 80)
    conn = sim.connect(sim.a, 80)
    assert sim.run(until=300, condition=lambda: lst.readable or conn.error), "handshake never completed"
    assert not conn.error
    return conn, lst.accept()


def _payload(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


@pytest.mark.parametrize("name", CONDITIONS)
@pytest.mark.parametrize("seed", SEEDS)
def test_transfer_both_ways_intact(name, seed):
    """Byte-exact delivery under impairment, a -> b then b -> a on the same connection."""
    sim = _sim(CONDITIONS[name], seed)
    a, b = _connect(sim)
    up, down = _payload(seed, 120_000), _payload(seed + 1000, 120_000)
    got_up = sim.transfer(sim.a, a, sim.b, b, up, until=sim.now + 3000, close=False)
    assert hashlib.sha256(got_up).digest() == hashlib.sha256(up).digest()
    got_down = sim.transfer(sim.b, b, sim.a, a, down, until=sim.now + 3000)
    assert hashlib.sha256(got_down).digest() == hashlib.sha256(down).digest()
    assert not a.error and not b.error


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("cc", ["reno", "newreno", "cubic"])
def test_transfer_completes_at_30_percent_loss(seed, cc):
    """At 30 % loss each way, RTO backoff and retransmission still get every byte through."""
    sim = _sim("loss=30%", seed, congestion=cc)
    a, b = _connect(sim)
    data = _payload(seed, 60_000)
    got = sim.transfer(sim.a, a, sim.b, b, data, until=sim.now + 20000)
    assert got == data
    assert a.stats["retrans"] > 0


@pytest.mark.parametrize("sack", [True, False])
@pytest.mark.parametrize("cc", ["reno", "newreno", "cubic"])
def test_every_algorithm_with_and_without_sack_at_5_percent(cc, sack):
    sim = _sim("loss=5%", 7, congestion=cc, sack=sack)
    a, b = _connect(sim)
    data = _payload(7, 400_000)
    assert sim.transfer(sim.a, a, sim.b, b, data, until=sim.now + 3000) == data
