"""RttEstimator against RFC 6298, value by value.

Samples are binary fractions (0.5, 0.25, ...) so that alpha = 1/8 and beta = 1/4
give exact floats and the assertions can use ==.
"""
import pytest

from stack.tcp.rtt import RttEstimator


def test_initial_rto_before_any_sample():
    """RFC 6298 2.1: until a measurement is made, RTO = 1 s; SRTT, RTTVAR unset."""
    est = RttEstimator()
    assert est.srtt is None and est.rttvar is None
    assert est.rto == 1.0
    assert est.current_rto() == 1.0
    assert est.backoff == 0


def test_first_sample():
    """RFC 6298 2.2: SRTT = R, RTTVAR = R/2, RTO = SRTT + max(G, K*RTTVAR)."""
    est = RttEstimator()
    est.sample(0.5)
    assert est.srtt == 0.5
    assert est.rttvar == 0.25
    assert est.rto == 0.5 + 4 * 0.25 == 1.5
    assert est.latest_rtt == 0.5


def test_subsequent_samples_exact():
    """RFC 6298 2.3: RTTVAR = 3/4 RTTVAR + 1/4 |SRTT - R'| (old SRTT), then SRTT = 7/8 SRTT + 1/8 R'."""
    est = RttEstimator()
    est.sample(0.5)
    est.sample(1.0)
    assert est.rttvar == 0.75 * 0.25 + 0.25 * 0.5 == 0.3125
    assert est.srtt == 0.875 * 0.5 + 0.125 * 1.0 == 0.5625
    assert est.rto == 0.5625 + 4 * 0.3125 == 1.8125
    est.sample(0.5)
    assert est.rttvar == 0.75 * 0.3125 + 0.25 * abs(0.5625 - 0.5)
    assert est.srtt == 0.875 * 0.5625 + 0.125 * 0.5
    assert est.rto == est.srtt + 4 * est.rttvar


def test_rttvar_uses_srtt_from_before_the_sample():
    """RFC 6298 2.3: the RTTVAR update must use SRTT before it absorbs R' (order of updates)."""
    est = RttEstimator()
    est.sample(1.0)
    est.sample(2.0)
    assert est.rttvar == 0.75 * 0.5 + 0.25 * abs(1.0 - 2.0)  # |old SRTT - R'| = 1.0, not |1.125 - 2.0|


def test_granularity_floor():
    """RFC 6298 2.2/2.3: the variance term is max(G, K*RTTVAR), so a steady RTT still gets G of slack."""
    est = RttEstimator(min_rto=0.0, granularity=0.5)
    est.sample(0.0625)  # K*RTTVAR = 0.125 < G
    assert est.rto == 0.0625 + 0.5
    for _ in range(50):
        est.sample(0.0625)  # RTTVAR decays towards 0
    assert est.rttvar < 0.5 / 4
    assert est.rto == 0.0625 + 0.5


def test_min_rto_clamp():
    """RFC 6298 2.4: a computed RTO below the minimum is rounded up (ours: 0.2 s by default)."""
    est = RttEstimator()
    est.sample(0.015625)
    assert est.srtt + 4 * est.rttvar == 0.046875
    assert est.rto == 0.2


def test_min_rto_rfc_value_configurable():
    """RFC 6298 2.4: the RFC's 1 s floor is one argument away."""
    est = RttEstimator(min_rto=1.0)
    est.sample(0.125)
    assert est.rto == 1.0


def test_max_rto_clamp():
    """RFC 6298 2.5: a maximum may be placed on RTO (ours: 120 s, as Linux)."""
    est = RttEstimator()
    est.sample(100.0)
    assert est.srtt + 4 * est.rttvar == 300.0
    assert est.rto == 120.0


def test_backoff_doubles_and_caps():
    """RFC 6298 5.5: each expiry doubles the RTO; capped at max_rto (2.5)."""
    est = RttEstimator()
    seen = []
    for _ in range(9):
        seen.append(est.current_rto())
        est.on_timeout()
    assert seen == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 120.0, 120.0]
    assert est.backoff == 9
    assert est.rto == 1.0  # the base RTO is unchanged; backoff is applied on top


def test_backoff_survives_many_timeouts():
    """RFC 6298 5.5: a huge backoff count stays at max_rto (no float overflow)."""
    est = RttEstimator()
    for _ in range(5000):
        est.on_timeout()
    assert est.current_rto() == 120.0


def test_sample_resets_backoff():
    """RFC 6298 5 (note after 5.7): a new RTT measurement collapses the backed-off RTO."""
    est = RttEstimator()
    est.sample(0.5)
    est.on_timeout()
    est.on_timeout()
    assert est.current_rto() == 1.5 * 4
    est.sample(0.5)
    assert est.backoff == 0
    assert est.current_rto() == est.rto


def test_reset_backoff():
    """RFC 6298 5.5: the caller may drop the backoff explicitly."""
    est = RttEstimator()
    est.on_timeout()
    est.reset_backoff()
    assert est.current_rto() == 1.0


def test_syn_timeout_fallback_to_3s():
    """RFC 6298 5.7: after a SYN timeout, an RTO below 3 s is re-initialized to 3 s when data begins."""
    est = RttEstimator()
    est.on_timeout()  # SYN retransmitted; by Karn's rule the SYN-ACK gives no sample
    est.reset_for_data_after_syn_timeout()
    assert est.rto == 3.0
    assert est.backoff == 0
    assert est.current_rto() == 3.0


def test_syn_timeout_fallback_keeps_larger_rto():
    """RFC 6298 5.7 applies only to an RTO less than 3 s."""
    est = RttEstimator(initial_rto=5.0)
    est.reset_for_data_after_syn_timeout()
    assert est.rto == 5.0


@pytest.mark.parametrize(
    "kwargs",
    [dict(min_rto=2.0, max_rto=1.0), dict(initial_rto=0.1), dict(initial_rto=200.0), dict(granularity=-1.0)],
)
def test_invalid_parameters(kwargs):
    """RFC 6298 2.4/2.5: the bounds must make sense: min_rto <= initial_rto <= max_rto."""
    with pytest.raises(ValueError):
        RttEstimator(**kwargs)


def test_negative_sample_rejected():
    """RFC 6298 2: an RTT measurement is a duration; a negative one is a caller bug."""
    with pytest.raises(ValueError):
        RttEstimator().sample(-0.001)


def test_state_dict():
    """Trace view: every RFC 6298 variable, plus the effective timeout."""
    est = RttEstimator()
    est.sample(0.5)
    est.on_timeout()
    assert est.state_dict() == {
        "srtt": 0.5,
        "rttvar": 0.25,
        "rto": 1.5,
        "backoff": 1,
        "current_rto": 3.0,
        "latest_rtt": 0.5,
    }


# ------------------------------------------------------------------ RttSampler: where samples come from
from stack.tcp.rtt import RttSampler  # noqa: E402


def test_sampler_times_the_newest_segment_an_ack_covers():
    s = RttSampler(RttEstimator())
    s.on_send(2000, 0.0)
    s.on_send(3000, 0.1)
    s.on_send(4000, 0.2)
    assert s.on_ack(3000, None, 0, 0.5) == pytest.approx(0.4)  # segment ending at 3000, sent at 0.1
    assert s.on_ack(3500, None, 0, 0.6) is None  # covers no whole segment


def test_sampler_karn_forgets_retransmitted_and_later_segments_then_uses_the_echo():
    """RFC 6298 3: no sample from a retransmitted segment; RFC 7323 4.1: the echo may give it."""
    s = RttSampler(RttEstimator())
    s.on_send(2000, 0.0)
    s.on_send(3000, 0.1)
    s.on_retransmit(1500)
    assert s.on_ack(3000, None, 0, 0.5) is None
    s.on_send(4000, 0.6)
    s.on_retransmit(3500)
    assert s.on_ack(4000, 1000, 1250, 0.9) == pytest.approx(0.25)


def test_sampler_ignores_an_echo_from_before_the_last_timeout():
    s = RttSampler(RttEstimator())
    s.on_send(2000, 0.0)
    s.on_timeout(1000, ts_now=500)
    assert s.on_ack(2000, 400, 900, 0.9) is None   # echoes a copy sent before the RTO
    assert s.on_ack(2000, 500, 900, 0.9) == pytest.approx(0.4)


def test_sampler_times_the_syn_only_if_sent_once():
    s = RttSampler(RttEstimator())
    s.on_syn_sent(1.0, first=True)
    s.on_syn_sent(2.0, first=False)
    assert s.on_syn_acked(False, None, 0, 1.3) == pytest.approx(0.3)
    assert s.on_syn_acked(True, None, 0, 3.0) is None
    assert s.on_syn_acked(True, 2900, 3000, 3.0) == pytest.approx(0.1)
