"""Adding a congestion-control algorithm is one file and one registry line (issue 13): a test-only
fixed-window algorithm (tests/tcp/cc_constant.py), registered here, drives a real transfer with a
loss in the simulator, and its window is the only thing that limits the flight."""
import random

import pytest

from cc_constant import WINDOW_SEGMENTS, Constant
from stack.link.impair import Impairment, ImpairSpec
from stack.sim import Simulation
from stack.tcp import congestion
from stack.tcp.config import TcpConfig
from stack.trace import ListSink, Tracer


@pytest.fixture
def constant_registered():
    congestion.register(Constant)  # the one registry line
    yield
    del congestion.ALGORITHMS["constant"]


def test_a_registered_algorithm_runs_a_transfer_with_its_own_window(constant_registered):
    sink = ListSink()
    tracer = Tracer(sink)
    config = TcpConfig(congestion="constant", sack=True)
    sim = Simulation(seed=3, config_a=config, config_b=TcpConfig(), tracer=tracer,
                     impair_ab=Impairment(ImpairSpec.parse("drop=data:20"), seed=1, direction="ab", tracer=tracer))
    lst = sim.listen(sim.b, 80)
    a = sim.connect(sim.a, 80)
    assert sim.run(until=10, condition=lambda: lst.readable)
    b = lst.accept()
    data = random.Random(7).randbytes(300_000)
    start = sim.now
    assert sim.transfer(sim.a, a, sim.b, b, data, until=sim.now + 120) == data
    elapsed = sim.now - start
    cc = a.cc
    assert isinstance(cc, Constant) and a.info()["cc"] == "constant"
    assert cc.cwnd == WINDOW_SEGMENTS * a.eff_mss  # never grew, never shrank
    assert cc.seen["loss"] == 1 and cc.seen["acked"] > 200_000 and cc.seen["sent"] >= len(data) // a.eff_mss
    flights = [e["flight"] for e in sink.of("cc") if e.get("conn", "").startswith("192.0.2.1")]
    # the window bounds the flight, plus at most the two segments limited transmit adds (RFC 3042)
    assert flights and max(flights) <= (WINDOW_SEGMENTS + 2) * a.eff_mss
    rounds = len(data) // (WINDOW_SEGMENTS * a.eff_mss)  # one window per 10 ms round trip
    assert rounds * 0.010 <= elapsed < (rounds + 10) * 0.010, elapsed


def test_registry_rejects_what_is_not_an_algorithm():
    with pytest.raises(TypeError):
        congestion.register(object)
    assert "constant" not in congestion.ALGORITHMS
