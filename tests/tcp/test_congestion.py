"""Congestion control (Reno, NewReno, CUBIC) formula by formula, in virtual time.

The sender model used by ``ack_round``: the sender is cwnd-limited; one round
(one RTT) acknowledges the cwnd bytes that were in flight at its start, in pieces
of ``ack_size`` (1 SMSS = an ACK per segment, 2 SMSS = delayed ACKs); after each
ACK the sender refills the window, so ``in_flight`` is reported honestly.
"""
import math

import pytest

from stack.tcp import congestion
from stack.tcp.congestion import (
    INFINITE_SSTHRESH,
    Cubic,
    NewReno,
    Reno,
    create,
    rfc5681_initial_window,
    rfc6928_initial_window,
)
from stack.tcp.congestion.cubic import alpha_cubic, cubic_k

MSS = 1000
RENO_FAMILY = [Reno, NewReno, Cubic]


def ack_round(cc, now, ack_size=MSS, rtt=None, duration=0.0):
    """One RTT of a cwnd-limited sender; ACKs spread evenly over ``duration``."""
    flight = cc.cwnd
    to_ack = cc.cwnd
    n_acks = math.ceil(to_ack / ack_size)
    for i in range(n_acks):
        n = min(ack_size, to_ack)
        to_ack -= n
        flight -= n
        cc.on_ack(n, now + duration * i / n_acks, rtt, flight)
        flight = max(flight, cc.cwnd)  # refill the window


def trajectory(cc, rounds, **kw):
    out = [cc.cwnd]
    for r in range(rounds):
        ack_round(cc, now=float(r), **kw)
        out.append(cc.cwnd)
    return out


def in_congestion_avoidance(cls, cwnd_segments=10, **kw):
    """A Reno or NewReno with cwnd == ssthresh == cwnd_segments * MSS, via one recovery episode."""
    cc = cls(MSS, 0.0, initial_window=2 * cwnd_segments, **kw)
    cc.on_enter_recovery(0.0, in_flight=2 * cwnd_segments * MSS)  # ssthresh = FlightSize / 2
    cc.on_exit_recovery(0.0, in_flight=cwnd_segments * MSS)  # cwnd = min(ssthresh, flight + SMSS)
    assert cc.cwnd == cc.ssthresh == cwnd_segments * MSS
    return cc


# ---------------------------------------------------------------- initial window


@pytest.mark.parametrize("mss, expected", [(536, 5360), (1460, 14600), (4000, 14600)])
def test_iw_rfc6928_is_what_initial_window_10_gives(mss, expected):
    """RFC 6928 2: IW = min(10*MSS, max(2*MSS, 14600)); Linux's choice, offered as initial_window=10."""
    assert rfc6928_initial_window(mss) == expected
    for cls in RENO_FAMILY:
        assert cls(mss, 0.0, initial_window=10).cwnd == 10 * mss
        if mss <= 1460:
            assert cls(mss, 0.0, initial_window=10).cwnd == expected


@pytest.mark.parametrize(
    "mss, expected", [(536, 4 * 536), (1095, 4 * 1095), (1096, 3 * 1096), (1460, 4380), (2190, 3 * 2190), (2191, 2 * 2191), (4000, 8000), (9000, 18000)]
)
def test_iw_rfc5681(mss, expected):
    """RFC 5681 3.1: IW = 4, 3 or 2 segments for SMSS <= 1095, <= 2190, > 2190 bytes; the default for every algorithm."""
    assert rfc5681_initial_window(mss) == expected
    for cls in RENO_FAMILY:
        assert cls(mss, 0.0).cwnd == cls(mss, 0.0).initial_window == expected


@pytest.mark.parametrize("mss, expected", [(536, 2144), (1095, 4380), (1460, 4380), (9000, 18000)])
def test_iw_rfc5681_formula(mss, expected):
    """RFC 5681 3.1 (RFC 3390's form): IW = min(4*SMSS, max(2*SMSS, 4380 bytes)), checked independently."""
    assert min(4 * mss, max(2 * mss, 4380)) == expected
    assert rfc5681_initial_window(mss) == expected
    assert NewReno(mss, 0.0).cwnd == expected


def test_iw_configured_in_segments():
    """RFC 5681 3.1 / RFC 6928: the IW is configurable, in segments (like Linux initcwnd)."""
    assert NewReno(1460, 0.0, initial_window=4).cwnd == 4 * 1460
    assert NewReno(1460, 0.0, initial_window=4).initial_window == 4 * 1460
    with pytest.raises(ValueError):
        NewReno(1460, 0.0, initial_window=0)


def test_initial_ssthresh_is_arbitrarily_high():
    """RFC 5681 3.1: the initial ssthresh SHOULD be arbitrarily high."""
    for cls in RENO_FAMILY:
        cc = cls(MSS, 0.0)
        assert cc.ssthresh == INFINITE_SSTHRESH == 2**31 - 1
        assert cc.phase == "slow_start"


# ----------------------------------------------------------------------- slow start


@pytest.mark.parametrize("cls", RENO_FAMILY)
def test_slow_start_doubles_per_rtt(cls):
    """RFC 5681 3.1 eq. 2: cwnd += min(N, SMSS) per ACK: with an ACK per segment, cwnd doubles per RTT."""
    cc = cls(MSS, 0.0)  # RFC 5681 3.1: IW = 4 segments of 1000 bytes
    assert trajectory(cc, 4) == [4000, 8000, 16000, 32000, 64000]


@pytest.mark.parametrize("cls", RENO_FAMILY)
def test_slow_start_doubles_with_delayed_acks(cls):
    """RFC 3465 2.2: with L = 2*SMSS, an ACK for 2 segments grows cwnd by 2 SMSS: still doubling."""
    cc = cls(MSS, 0.0)
    assert trajectory(cc, 3, ack_size=2 * MSS) == [4000, 8000, 16000, 32000]


def test_abc_limit_l_2_smss():
    """RFC 3465 2.2: a stretch ACK grows cwnd by at most L = 2*SMSS in slow start."""
    cc = NewReno(MSS, 0.0, initial_window=10)  # IW pinned: the numbers below are about L, not the default window
    cc.on_ack(5 * MSS, 0.1, None, in_flight=5 * MSS)
    assert cc.cwnd == 12000
    cc.on_ack(500, 0.1, None, in_flight=cc.cwnd - 500)
    assert cc.cwnd == 12500  # a partial segment grows cwnd by what it ACKed


def test_abc_limit_after_rto_is_1_smss():
    """RFC 3465 2.3: in the slow start that follows an RTO, L = 1*SMSS (delayed ACKs give 1.5x per RTT)."""
    cc = NewReno(MSS, 0.0)
    cc.on_rto(1.0, in_flight=20 * MSS)
    cc.on_ack(3 * MSS, 1.1, None, in_flight=0)
    assert cc.cwnd == 2 * MSS
    assert trajectory(cc, 2, ack_size=2 * MSS) == [2000, 3000, 5000]


def test_slow_start_stops_at_ssthresh_and_carries_over():
    """RFC 5681 3.1: slow start while cwnd < ssthresh; bytes beyond ssthresh count toward congestion avoidance."""
    cc = NewReno(MSS, 0.0, initial_window=20)
    cc.on_enter_recovery(0.0, in_flight=20 * MSS)  # ssthresh = 10000
    cc.on_exit_recovery(0.0, in_flight=7 * MSS)  # cwnd = min(10000, 8000) = 8000
    assert (cc.cwnd, cc.ssthresh) == (8000, 10000)
    cc.on_ack(MSS, 0.1, None, in_flight=7 * MSS)
    assert cc.cwnd == 9000
    cc.on_ack(2 * MSS, 0.1, None, in_flight=7 * MSS)
    assert cc.cwnd == 10000 and cc.phase == "congestion_avoidance"  # capped; 1000 bytes carried over
    for _ in range(8):
        cc.on_ack(MSS, 0.2, None, in_flight=9 * MSS)
    assert cc.cwnd == 10000  # 9000 of 10000 bytes counted
    cc.on_ack(MSS, 0.2, None, in_flight=9 * MSS)
    assert cc.cwnd == 11000


# ------------------------------------------------------------ congestion avoidance


@pytest.mark.parametrize("cls", [Reno, NewReno])
def test_congestion_avoidance_one_mss_per_rtt(cls):
    """RFC 5681 3.1 / RFC 3465 2.1: +1 SMSS each time cwnd bytes have been ACKed."""
    cc = in_congestion_avoidance(cls)
    assert cc.phase == "congestion_avoidance"
    assert trajectory(cc, 4) == [10000, 11000, 12000, 13000, 14000]
    assert trajectory(cc, 2, ack_size=2 * MSS) == [14000, 15000, 16000]


def test_congestion_avoidance_increase_lands_on_the_cwnd_th_byte():
    """RFC 3465 2.1: when bytes_acked >= cwnd: bytes_acked -= cwnd, then cwnd += SMSS."""
    cc = in_congestion_avoidance(NewReno)
    for _ in range(9):
        cc.on_ack(MSS, 1.0, None, in_flight=9 * MSS)
    assert cc.cwnd == 10000
    cc.on_ack(1500, 1.0, None, in_flight=9 * MSS)  # 10500 >= 10000 -> +MSS, 500 carried
    assert cc.cwnd == 11000
    for _ in range(10):
        cc.on_ack(MSS, 1.0, None, in_flight=10 * MSS)
    assert cc.cwnd == 11000  # 10500 < 11000
    cc.on_ack(500, 1.0, None, in_flight=10 * MSS)
    assert cc.cwnd == 12000


@pytest.mark.parametrize("cls", RENO_FAMILY)
def test_no_growth_when_application_limited(cls):
    """RFC 9438 5.8 / RFC 7661: an ACK while flight + SMSS <= cwnd did not test the window: no growth."""
    cc = cls(MSS, 0.0, initial_window=10)  # IW pinned: the numbers below are about the cwnd-limited check, not the default window
    cc.on_ack(MSS, 0.1, None, in_flight=2 * MSS)  # 3000 in flight of a 10000 window
    assert cc.cwnd == 10000
    cc.on_ack(MSS, 0.1, None, in_flight=8 * MSS + 1)  # 9001 + 1000 > 10000: window was full
    assert cc.cwnd == 11000


def test_textbook_rfc5681_grows_when_application_limited():
    """RFC 5681 3.1: without the cwnd-limited check, every ACK of new data grows cwnd."""
    cc = NewReno(MSS, 0.0, initial_window=10)  # IW pinned: the numbers below are about the check, not the default window
    cc.grow_only_when_cwnd_limited = False
    cc.on_ack(MSS, 0.1, None, in_flight=0)
    assert cc.cwnd == 11000


# ------------------------------------------------------------ fast retransmit, recovery


@pytest.mark.parametrize("cls", [Reno, NewReno])
@pytest.mark.parametrize("flight, ssthresh", [(20000, 10000), (20500, 10250), (3000, 2000), (0, 2000)])
def test_ssthresh_on_fast_retransmit(cls, flight, ssthresh):
    """RFC 5681 3.2 step 2, eq. 4: ssthresh = max(FlightSize / 2, 2*SMSS)."""
    cc = cls(MSS, 0.0, initial_window=30)
    cc.on_enter_recovery(1.0, in_flight=flight)
    assert cc.ssthresh == ssthresh
    assert cc.cwnd == ssthresh + 3 * MSS  # RFC 5681 3.2 step 3
    assert cc.in_recovery and cc.phase == "recovery"


def test_ssthresh_uses_flightsize_not_cwnd():
    """RFC 5681 3.1 eq. 4: FlightSize, not cwnd (an application-limited cwnd does not count)."""
    cc = NewReno(MSS, 0.0, initial_window=100)
    cc.on_enter_recovery(1.0, in_flight=10 * MSS)
    assert cc.ssthresh == 5000


@pytest.mark.parametrize("cls", RENO_FAMILY)
def test_dupack_inflation(cls):
    """RFC 5681 3.2 step 4: each further duplicate ACK adds SMSS to cwnd."""
    cc = cls(MSS, 0.0, initial_window=20)
    cc.on_enter_recovery(1.0, in_flight=20 * MSS)
    start = cc.cwnd
    for i in range(1, 6):
        cc.on_dupack_in_recovery()
        assert cc.cwnd == start + i * MSS


def test_sack_recovery_does_not_inflate():
    """RFC 6675 5 step 4.2: SACK-based recovery sets cwnd = ssthresh and counts pipe instead."""
    cc = NewReno(MSS, 0.0, initial_window=20)
    cc.on_enter_recovery(1.0, in_flight=20 * MSS, inflate=False)
    assert cc.cwnd == cc.ssthresh == 10000


def test_newreno_partial_ack_deflation():
    """RFC 6582 3.2 step 3: deflate by the new data ACKed; add back SMSS if at least SMSS was ACKed."""
    cc = NewReno(MSS, 0.0, initial_window=20)
    cc.on_enter_recovery(1.0, in_flight=20 * MSS)  # ssthresh 10000, cwnd 13000
    cc.on_dupack_in_recovery()
    cc.on_dupack_in_recovery()  # cwnd 15000
    cc.on_partial_ack(3 * MSS)
    assert cc.cwnd == 15000 - 3000 + 1000
    cc.on_partial_ack(500)
    assert cc.cwnd == 13000 - 500  # less than SMSS ACKed: nothing added back
    assert cc.in_recovery
    cc.on_partial_ack(100 * MSS)
    assert cc.cwnd == MSS  # floor of one segment


@pytest.mark.parametrize(
    "flight, cwnd", [(12000, 10000), (9000, 10000), (4000, 5000), (0, 2000)]
)
def test_newreno_full_ack_exit(flight, cwnd):
    """RFC 6582 3.2 step 3, full ACK, option (1): cwnd = min(ssthresh, max(FlightSize, SMSS) + SMSS)."""
    cc = NewReno(MSS, 0.0, initial_window=20)
    cc.on_enter_recovery(1.0, in_flight=20 * MSS)
    cc.on_dupack_in_recovery()
    cc.on_exit_recovery(1.5, in_flight=flight)
    assert cc.cwnd == cwnd
    assert not cc.in_recovery


def test_reno_exit_deflates_to_ssthresh():
    """RFC 5681 3.2 step 6: the first ACK of new data sets cwnd = ssthresh and ends recovery."""
    cc = Reno(MSS, 0.0, initial_window=20)
    cc.on_enter_recovery(1.0, in_flight=20 * MSS)
    for _ in range(7):
        cc.on_dupack_in_recovery()
    cc.on_exit_recovery(1.5, in_flight=0)
    assert cc.cwnd == cc.ssthresh == 10000
    assert cc.phase == "congestion_avoidance"


def test_reno_and_newreno_differ_only_in_recovery():
    """RFC 5681 3.2 vs RFC 6582 3.2: same growth and decrease; the connection reads partial_ack_recovery."""
    assert Reno.partial_ack_recovery is False
    assert NewReno.partial_ack_recovery is True
    assert Cubic.partial_ack_recovery is True
    reno, newreno = Reno(MSS, 0.0), NewReno(MSS, 0.0)
    assert trajectory(reno, 3) == trajectory(newreno, 3)
    reno.on_enter_recovery(1.0, 40 * MSS)
    newreno.on_enter_recovery(1.0, 40 * MSS)
    assert (reno.cwnd, reno.ssthresh) == (newreno.cwnd, newreno.ssthresh)


def test_calls_out_of_order_raise():
    """RFC 5681 3.2: inflation, deflation and exit only make sense inside fast recovery."""
    cc = NewReno(MSS, 0.0)
    for call in (cc.on_dupack_in_recovery, lambda: cc.on_partial_ack(MSS), lambda: cc.on_exit_recovery(0.0, 0)):
        with pytest.raises(RuntimeError):
            call()
    cc.on_enter_recovery(0.0, 10 * MSS)
    with pytest.raises(RuntimeError):
        cc.on_enter_recovery(0.0, 10 * MSS)
    with pytest.raises(RuntimeError):
        cc.on_ack(MSS, 0.0, None, 0)


# ------------------------------------------------------------------------- timeout


@pytest.mark.parametrize("cls", [Reno, NewReno])
def test_rto_loss_window(cls):
    """RFC 5681 3.1: on RTO, ssthresh = max(FlightSize/2, 2*SMSS) and cwnd = LW = 1 SMSS."""
    cc = cls(MSS, 0.0, initial_window=20)
    cc.on_rto(2.0, in_flight=16 * MSS)
    assert (cc.cwnd, cc.ssthresh) == (MSS, 8000)
    assert cc.phase == "slow_start"


def test_repeated_rto_holds_ssthresh():
    """RFC 5681 3.1: ssthresh is held constant when the same segment times out again."""
    cc = NewReno(MSS, 0.0, initial_window=20)
    cc.on_rto(2.0, in_flight=16 * MSS)
    cc.on_rto(4.0, in_flight=16 * MSS)
    assert (cc.cwnd, cc.ssthresh) == (MSS, 8000)
    cc.on_ack(MSS, 4.5, None, in_flight=15 * MSS)  # new data ACKed: the next RTO is a new loss
    cc.on_rto(6.0, in_flight=15 * MSS)
    assert (cc.cwnd, cc.ssthresh) == (MSS, 7500)


def test_rto_ends_recovery():
    """RFC 6582 3.2 step 4: a timeout during fast recovery abandons it."""
    cc = NewReno(MSS, 0.0, initial_window=20)
    cc.on_enter_recovery(1.0, in_flight=20 * MSS)
    cc.on_rto(2.0, in_flight=20 * MSS)
    assert not cc.in_recovery and cc.cwnd == MSS


# ---------------------------------------------------------------------------- idle


@pytest.mark.parametrize("cls", RENO_FAMILY)
def test_idle_restart_window(cls):
    """RFC 5681 4.1: after an idle period longer than RTO, cwnd = min(IW, cwnd)."""
    cc = cls(MSS, 0.0)  # RFC 5681 3.1: IW = 4000
    trajectory(cc, 2)
    assert cc.cwnd == 16000
    cc.on_idle(5.0, idle_time=0.5, rto=1.0)
    assert cc.cwnd == 16000  # not idle long enough
    cc.on_idle(7.0, idle_time=1.5, rto=1.0)
    assert cc.cwnd == 4000  # RW = IW of RFC 5681 3.1
    small = cls(MSS, 0.0, initial_window=10)
    small.on_rto(1.0, in_flight=10 * MSS)
    small.on_idle(9.0, idle_time=5.0, rto=1.0)
    assert small.cwnd == MSS  # RW = min(IW, cwnd): never raised


# ----------------------------------------------------------------------- set_mss


def test_set_mss_before_data_recomputes_iw():
    """RFC 5681 3.1 / RFC 9293 3.7.1: the IW follows the negotiated MSS (4 segments of 536, 3 of 1460)."""
    cc = NewReno(536, 0.0)
    assert cc.cwnd == 2144
    cc.set_mss(1460)
    assert cc.cwnd == cc.initial_window == 4380
    linux = NewReno(536, 0.0, initial_window=10)
    linux.set_mss(1460)
    assert linux.cwnd == 14600  # a configured IW stays 10 segments


def test_set_mss_later_keeps_segments():
    """RFC 5681 3.1: cwnd and ssthresh are windows of segments; an MSS change keeps their segment count."""
    cc = in_congestion_avoidance(NewReno)
    cc.set_mss(500)
    assert (cc.cwnd, cc.ssthresh, cc.mss) == (5000, 5000, 500)


# -------------------------------------------------------------------------- CUBIC


def cubic_after_loss(w_max_segments, mss=MSS, **kw):
    """CUBIC that lost at cwnd = w_max_segments and is now in congestion avoidance at beta*W_max."""
    cc = Cubic(mss, 0.0, initial_window=w_max_segments, **kw)
    cc.on_enter_recovery(0.0, in_flight=w_max_segments * mss)
    cc.on_exit_recovery(0.0, in_flight=cc.ssthresh)
    return cc


def test_cubic_constants():
    """RFC 9438 4.6/5.1/4.3: beta = 0.7, C = 0.4, alpha_cubic = 3(1-beta)/(1+beta) = 0.9/1.7."""
    assert Cubic.BETA == 0.7 and Cubic.C == 0.4
    assert alpha_cubic() == pytest.approx(0.9 / 1.7, rel=1e-15)


def test_cubic_multiplicative_decrease():
    """RFC 9438 4.6: ssthresh = cwnd * beta_cubic (>= 2 SMSS); W_max = cwnd before the reduction."""
    cc = Cubic(MSS, 0.0, initial_window=100)
    cc.on_enter_recovery(1.0, in_flight=60 * MSS)  # cwnd, not FlightSize (Linux; RFC 9438 4.6 note)
    assert cc.ssthresh == 70000
    assert cc.cwnd == 70000 + 3 * MSS  # NewReno-style inflation during recovery
    assert cc.w_max == 100 and cc.cwnd_prior == 100
    cc.on_exit_recovery(1.2, in_flight=70 * MSS)
    assert cc.cwnd == 70000
    tiny = Cubic(MSS, 0.0, initial_window=2)
    tiny.on_enter_recovery(1.0, in_flight=2 * MSS, inflate=False)
    assert tiny.cwnd == tiny.ssthresh == 2 * MSS  # RFC 9438 4.6: at least 2 MSS


def test_cubic_k_exact():
    """RFC 9438 4.2 eq. 2: K = cbrt((W_max - cwnd_epoch)/C) = cbrt(W_max*(1-beta)/C) after a loss."""
    assert cubic_k(36, 36 * 0.7) == pytest.approx(3.0, rel=1e-12)  # 36 * 0.3 / 0.4 = 27
    assert cubic_k(288, 288 * 0.7) == pytest.approx(6.0, rel=1e-12)  # 216
    assert cubic_k(10, 12) == 0.0
    cc = cubic_after_loss(36)
    cc.on_ack(MSS, 1.0, 0.1, in_flight=cc.cwnd - MSS)  # first ACK in CA starts the epoch
    assert cc.t_epoch == 1.0 and cc.cwnd_epoch == pytest.approx(25.2, rel=1e-15)
    assert cc.k == pytest.approx(math.cbrt(36 * (1 - 0.7) / 0.4), rel=1e-12)
    assert cc.k == pytest.approx(3.0, rel=1e-12)


def test_cubic_w_cubic_formula():
    """RFC 9438 4.2 eq. 1: W_cubic(t) = C*(t-K)^3 + W_max, with W_cubic(0) = cwnd_epoch and W_cubic(K) = W_max."""
    cc = cubic_after_loss(36)
    cc.on_ack(MSS, 1.0, 0.1, in_flight=cc.cwnd - MSS)
    for t, expected in [(0.0, 25.2), (1.0, 36 - 0.4 * 8), (2.0, 36 - 0.4), (3.0, 36.0), (4.0, 36.4), (5.0, 39.2)]:
        assert cc.w_cubic(t) == pytest.approx(expected, rel=1e-12), t
        assert cc.w_cubic(t) == pytest.approx(0.4 * (t - cc.k) ** 3 + 36, rel=1e-15)


def test_cubic_one_ack_in_cubic_region_exact():
    """RFC 9438 4.2/4.4: outside the Reno-friendly region, cwnd += (target - cwnd)/cwnd per segment ACKed."""
    cc = cubic_after_loss(288)  # cwnd 201600, K = 6
    cc.on_ack(MSS, 10.0, 0.1, in_flight=cc.cwnd - MSS)  # epoch starts at t_epoch = 10
    w = cc.cwnd_segments
    w_est = cc.w_est
    cc.on_ack(MSS, 11.0, 0.1, in_flight=cc.cwnd - MSS)  # t = 1
    target = 0.4 * (1.0 + 0.1 - 6.0) ** 3 + 288
    assert cc.w_cubic(1.0) > w_est + alpha_cubic() / w  # cubic region, not Reno-friendly
    assert w < target < 1.5 * w
    assert cc.cwnd_segments == pytest.approx(w + (target - w) / w, rel=1e-12)
    assert cc.cwnd == int((w + (target - w) / w) * MSS)


def test_cubic_target_clamped_to_1_5_cwnd():
    """RFC 9438 4.2: target = min(W_cubic(t+RTT), 1.5*cwnd)."""
    cc = cubic_after_loss(10000)  # cwnd 7000 segments, K = cbrt(7500)
    cc.on_ack(MSS, 0.0, 0.0, in_flight=cc.cwnd - MSS)
    w = cc.cwnd_segments
    cc.on_ack(MSS, 1.0, 30.0, in_flight=cc.cwnd - MSS)  # W_cubic(31) far above 1.5*cwnd
    assert cc.w_cubic(31.0) > 1.5 * w
    assert cc.cwnd_segments == pytest.approx(w + (1.5 * w - w) / w, rel=1e-12)  # = w + 0.5


def test_cubic_target_not_below_cwnd():
    """RFC 9438 4.2: target = max(W_cubic(t+RTT), cwnd): cwnd never shrinks in congestion avoidance."""
    cc = cubic_after_loss(10000)
    cc.on_ack(MSS, 0.0, 0.0, in_flight=cc.cwnd - MSS)
    big = cc.cwnd  # one ACK covering the whole window, with a huge RTT: cwnd jumps to 1.5x
    cc.on_ack(big, 1.0, 30.0, in_flight=0)
    jumped = cc.cwnd
    assert jumped == pytest.approx(1.5 * big, rel=1e-3)
    cc.on_ack(MSS, 2.0, 0.0, in_flight=cc.cwnd - MSS)  # now W_cubic(t+RTT) < cwnd, W_est < W_cubic
    assert cc.w_cubic(2.0) < jumped / MSS and cc.w_est < cc.w_cubic(2.0)
    assert cc.cwnd == jumped


def test_cubic_stretch_ack_stops_at_target():
    """RFC 9438 4.2: cwnd aims at target = W_cubic(t + RTT); an ACK for many segments does not overshoot it."""
    cc = cubic_after_loss(288)
    cc.on_ack(MSS, 10.0, 0.1, in_flight=cc.cwnd - MSS)
    cc.on_ack(3 * cc.cwnd, 11.0, 0.1, in_flight=0)  # covers three windows
    assert cc.cwnd_segments == pytest.approx(cc.w_cubic(1.0 + 0.1), rel=1e-12)


def test_cubic_concave_then_convex():
    """RFC 9438 4.4/4.5: growth per RTT shrinks towards W_max (concave), then grows past it (convex)."""
    cc = cubic_after_loss(288)  # K = 6 s, RTT 0.1 s: cubic region throughout
    rtt, now, samples = 0.1, 0.0, []
    while now < 9.0:
        ack_round(cc, now, ack_size=2 * MSS, rtt=rtt, duration=rtt)
        now = round(now + rtt, 10)
        samples.append((now - cc.t_epoch, cc.cwnd / MSS))
    growth = [(b[0], b[1] - a[1]) for b, a in zip(samples[1:], samples)]
    concave = [g for t, g in growth if 1.0 <= t <= 5.5]
    convex = [g for t, g in growth if 6.5 <= t <= 9.0]
    assert all(x >= y for x, y in zip(concave, concave[1:]))
    assert all(x <= y for x, y in zip(convex, convex[1:]))
    plateau = [w for t, w in samples if abs(t - 6.0) < 0.15]
    assert all(abs(w - 288) < 1.5 for w in plateau)  # cwnd ~ W_max around t = K
    for t, w in samples:  # each ACK aims at W_cubic(t + RTT); cwnd follows the curve within a segment
        assert cc.w_cubic(t) - 1.0 <= w <= cc.w_cubic(t + rtt)


def test_cubic_reno_friendly_region_for_small_rtt():
    """RFC 9438 4.3: with a short RTT, W_est (alpha_cubic per RTT) exceeds W_cubic(t) and cwnd follows W_est."""
    cc = cubic_after_loss(36)  # cwnd 25.2 segments, K = 3 s
    cc.on_ack(MSS, 0.0, 0.001, in_flight=cc.cwnd - MSS)
    w = 25.2
    assert cc.w_est == pytest.approx(w + alpha_cubic() / w, rel=1e-12)  # RFC 9438 4.3 eq. 4
    assert cc.cwnd == int(cc.w_est * MSS)
    now = 0.0
    for _ in range(10):  # 10 RTTs of 1 ms
        now += 0.001
        ack_round(cc, now, rtt=0.001, duration=0.001)
        t = now - cc.t_epoch
        assert cc.w_est > cc.w_cubic(t)
        assert cc.cwnd == int(cc.w_est * MSS) or cc.cwnd == int(cc.w_est * MSS) - 1
    # ~alpha_cubic segments per RTT (Reno's 1 scaled for beta = 0.7), far above the cubic curve
    assert cc.w_est == pytest.approx(25.2 + 10 * alpha_cubic(), abs=0.1)
    assert cc.w_cubic(now - cc.t_epoch) < 25.4 < 30.0 < cc.cwnd / MSS


def test_cubic_alpha_becomes_1_at_cwnd_prior():
    """RFC 9438 4.3: once W_est >= cwnd_prior, alpha_cubic is 1 (Reno's AIMD(1, 0.5) rate)."""
    cc = cubic_after_loss(20)  # cwnd 14, cwnd_prior 20
    now = 0.0
    while cc.w_est is None or cc.w_est < cc.cwnd_prior:
        ack_round(cc, now, rtt=0.001, duration=0.001)
        now += 0.001
    w_est, w = cc.w_est, cc.cwnd_segments
    cc.on_ack(MSS, now, 0.001, in_flight=cc.cwnd - MSS)
    assert cc.w_est == pytest.approx(w_est + 1.0 / w, rel=1e-12)


def test_cubic_fast_convergence():
    """RFC 9438 4.7: a loss below W_max sets W_max = cwnd*(1+beta)/2; at or above, W_max = cwnd."""
    cc = cubic_after_loss(100)  # W_max 100, cwnd 70
    cc.on_enter_recovery(5.0, in_flight=cc.cwnd)
    assert cc.w_max == pytest.approx(70 * 1.7 / 2, rel=1e-12)  # 59.5
    assert cc.ssthresh == 49000
    slow = cubic_after_loss(100, fast_convergence=False)
    slow.on_enter_recovery(5.0, in_flight=slow.cwnd)
    assert slow.w_max == 70
    grown = cubic_after_loss(100)
    grown.cwnd = 120 * MSS  # past the old W_max
    grown.on_enter_recovery(5.0, in_flight=grown.cwnd)
    assert grown.w_max == 120


def test_cubic_timeout():
    """RFC 9438 4.8: RTO: ssthresh = cwnd*beta, cwnd = 1 MSS; next CA stage has K = 0, W_max = W_est = cwnd_epoch."""
    cc = Cubic(MSS, 0.0, initial_window=100)
    cc.on_rto(1.0, in_flight=100 * MSS)
    assert (cc.cwnd, cc.ssthresh) == (MSS, 70000)
    assert cc.cwnd_prior == 100
    cc.on_rto(3.0, in_flight=100 * MSS)  # RFC 5681 3.1: repeated timeout holds ssthresh
    assert (cc.cwnd, cc.ssthresh) == (MSS, 70000)
    now = 3.0
    while cc.cwnd < cc.ssthresh:  # slow start (L = 1 SMSS after RTO) up to ssthresh
        now += 0.001
        cc.on_ack(MSS, now, 0.01, in_flight=cc.cwnd - MSS)
    assert cc.cwnd == 70000 and cc.t_epoch is None
    cc.on_ack(MSS, now + 0.001, 0.01, in_flight=cc.cwnd - MSS)  # first ACK of the CA stage
    assert cc.k == 0.0 and cc.w_max == cc.cwnd_epoch == 70.0
    assert cc.w_est == pytest.approx(70.0 + alpha_cubic() / 70.0, rel=1e-12)
    assert cc.w_cubic(0.0) == 70.0


def test_cubic_slow_start_same_as_reno():
    """RFC 9438 4.10: CUBIC MAY use Reno's slow start (RFC 5681); HyStart++ is not implemented."""
    assert trajectory(Cubic(MSS, 0.0), 4) == trajectory(NewReno(MSS, 0.0), 4)


def test_cubic_idle_moves_epoch():
    """RFC 9438 4.2 / 5.8: t excludes idle periods, so W_cubic does not jump after a pause."""
    cc = cubic_after_loss(36)
    cc.on_ack(MSS, 1.0, 0.1, in_flight=cc.cwnd - MSS)
    cc.on_idle(2.0, idle_time=0.5, rto=1.0)
    assert cc.t_epoch == 1.5
    assert cc.cwnd > 25000  # not idle longer than RTO: no restart


def test_cubic_state_dict():
    """Trace view: cwnd, ssthresh and the RFC 9438 variables."""
    cc = cubic_after_loss(36)
    cc.on_ack(MSS, 1.0, 0.1, in_flight=cc.cwnd - MSS)
    state = cc.state_dict()
    assert state["algorithm"] == "cubic" and state["phase"] == "congestion_avoidance"
    assert state["w_max"] == 36 and state["k"] == pytest.approx(3.0)
    assert set(state) >= {"cwnd", "ssthresh", "w_max", "k", "t_epoch", "cwnd_epoch", "w_est", "cwnd_prior"}


# ------------------------------------------------------------------------ registry


def test_registry():
    """Registry: names map to classes; create() passes mss, now, initial_window and options."""
    assert congestion.ALGORITHMS == {"reno": Reno, "newreno": NewReno, "cubic": Cubic}
    assert congestion.DEFAULT == "cubic"
    for name, cls in congestion.ALGORITHMS.items():
        cc = create(name, 1460, 0.0)
        assert type(cc) is cls and cc.name == name
    assert create("NewReno", 1460, 0.0, initial_window=3).cwnd == 4380
    assert create("cubic", 1460, 0.0, fast_convergence=False).fast_convergence is False


@pytest.mark.parametrize("name", ["x", "bbr", "", None])
def test_registry_unknown_name(name):
    """Registry: an unknown name is a ValueError listing the choices."""
    with pytest.raises(ValueError) as err:
        create(name, 1460, 0.0)
    assert str(err.value) == f"unknown congestion control {name!r}; choose one of: cubic, newreno, reno"


# ---------------------------------------------------------------- invariants (hypothesis)

from hypothesis import given, settings, strategies as st  # noqa: E402

EVENTS = st.lists(
    st.tuples(
        st.sampled_from(["ack", "dupack_loss", "rto", "idle", "mss"]),
        st.integers(min_value=1, max_value=40),
        st.floats(min_value=0.0, max_value=3.0),
    ),
    max_size=60,
)


def drive(cc, event, n, dt, now):
    """Apply one event the way a well-behaved connection would (loss recovery kept short)."""
    if event == "ack":
        acked = n * cc.mss // 4 + 1
        before = cc.cwnd
        cc.on_ack(acked, now, dt or None, in_flight=max(cc.cwnd - acked, 0))
        if not isinstance(cc, Cubic):  # RFC 3465 2.2 + 2.1: L in slow start, or 1 SMSS in CA, per ACK
            assert cc.cwnd - before <= 2 * cc.mss
    elif event == "dupack_loss":
        cc.on_enter_recovery(now, in_flight=n * cc.mss, inflate=n % 2 == 0)
        for _ in range(n % 5):
            cc.on_dupack_in_recovery()
        if cc.partial_ack_recovery and n % 3 == 0:
            cc.on_partial_ack(n * 100)
        cc.on_exit_recovery(now, in_flight=(n // 2) * cc.mss)
    elif event == "rto":
        cc.on_rto(now, in_flight=n * cc.mss)
    elif event == "idle":
        cc.on_idle(now, idle_time=dt, rto=1.0)
    else:
        cc.set_mss(500 + 100 * n)


@pytest.mark.parametrize("cls", RENO_FAMILY)
@settings(max_examples=150, deadline=None)
@given(events=EVENTS)
def test_invariants_under_any_event_sequence(cls, events):
    """RFC 5681 3.1/3.2, RFC 9438 4.6: cwnd >= 1 SMSS, ssthresh >= 2 SMSS once set, both integers."""
    import json

    cc = cls(1460, 0.0)
    now = 0.0
    for event, n, dt in events:
        now += dt
        drive(cc, event, n, dt, now)
        assert isinstance(cc.cwnd, int) and isinstance(cc.ssthresh, int)
        assert cc.cwnd >= cc.mss
        assert cc.ssthresh == INFINITE_SSTHRESH or cc.ssthresh >= 2 * cc.mss
        assert not cc.in_recovery
        json.dumps(cc.state_dict())
