"""SYN cookies (RFC 4987 3.6, Linux's encoding): what a cookie carries and when it is refused."""
import pytest

from stack.tcp.syncookies import MAX_AGE, MSS_TABLE, TICK, SynCookies, decode_ts, encode_ts

PEER, US = bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2])
SECRET = bytes(range(16))


@pytest.fixture
def cookies():
    return SynCookies(SECRET)


@pytest.mark.parametrize("mss,carried", [(1460, 1460), (9000, 1460), (1452, 1440), (1400, 1300),
                                         (1300, 1300), (1000, 536), (100, 536)])
def test_cookie_round_trip_carries_mss_not_above_the_peers(cookies, mss, carried):
    isn, used = cookies.make_isn(PEER, 40000, US, 80, 12345, mss, now=1000.0)
    assert used == carried
    assert cookies.check_ack(PEER, 40000, US, 80, 12345, (isn + 1) & 0xFFFFFFFF, now=1000.5) == carried


def test_cookie_is_valid_for_max_age_ticks_then_refused(cookies):
    isn, _ = cookies.make_isn(PEER, 40000, US, 80, 7, 1460, now=59.0)
    ack = (isn + 1) & 0xFFFFFFFF
    for ticks in range(MAX_AGE + 1):
        assert cookies.check_ack(PEER, 40000, US, 80, 7, ack, now=59.0 + ticks * TICK) == 1460
    assert cookies.check_ack(PEER, 40000, US, 80, 7, ack, now=59.0 + (MAX_AGE + 1) * TICK) is None


@pytest.mark.parametrize("change", ["sport", "dport", "src", "peer_isn", "ack", "secret"])
def test_cookie_refused_when_anything_differs(cookies, change):
    isn, _ = cookies.make_isn(PEER, 40000, US, 80, 99, 1460, now=500.0)
    args = dict(src=PEER, sport=40000, dst=US, dport=80, peer_isn=99, ack=(isn + 1) & 0xFFFFFFFF)
    checker = cookies
    if change == "sport":
        args["sport"] = 40001
    elif change == "dport":
        args["dport"] = 81
    elif change == "src":
        args["src"] = bytes([192, 0, 2, 3])
    elif change == "peer_isn":
        args["peer_isn"] = 99 + 1000  # (a shift below 4 moves the MSS index, as in Linux)
    elif change == "ack":
        args["ack"] = (args["ack"] + (1 << 24)) & 0xFFFFFFFF  # a different tick, same low bits
    else:
        checker = SynCookies(bytes(16))
    assert checker.check_ack(now=500.0, **args) is None


def test_forged_acks_almost_never_validate(cookies):
    """A blind attacker guessing ACK numbers: at most len(MSS_TABLE) in 2**24 per tick pass."""
    hits = sum(cookies.check_ack(PEER, 1000 + i, US, 80, i, i * 2654435761 & 0xFFFFFFFF, now=0.0)
               is not None for i in range(20000))
    assert hits <= 2


def test_cookie_wraps_modulo_2_32(cookies):
    for peer_isn in (0xFFFFFFFF, 0xFFFFFF00):
        isn, _ = cookies.make_isn(PEER, 1, US, 2, peer_isn, 536, now=3 * TICK)
        assert 0 <= isn < 1 << 32
        assert cookies.check_ack(PEER, 1, US, 2, peer_isn, (isn + 1) & 0xFFFFFFFF, now=3 * TICK) == 536


@pytest.mark.parametrize("wscale,sack", [(None, False), (None, True), (0, True), (7, False), (14, True)])
def test_timestamp_carries_wscale_and_sack_and_never_runs_ahead(wscale, sack):
    for ts in (1000, 64, 0x12345678):
        enc = encode_ts(ts, wscale, sack)
        assert decode_ts(enc) == (wscale, sack)
        assert (ts - enc) & 0xFFFFFFFF < 64  # at most 2**6 - 1 ticks behind, never ahead


def test_short_secret_refused():
    with pytest.raises(ValueError):
        SynCookies(b"short")


def test_mss_table_is_linux_msstab():
    assert MSS_TABLE == (536, 1300, 1440, 1460)
