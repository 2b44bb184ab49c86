"""TCP options: MSS (RFC 9293 3.7.1, RFC 6691), window scale and timestamps (RFC 7323), SACK (RFC 2018)."""
import pytest

from harness import ANY, ISS, LOCAL_B, PEER_B, PEER_ISN, TcpHarness, s32
from stack.tcp.states import State

ALL = dict(timestamps=True, sack=True, window_scaling=True)


def passive(syn_options, **kw):
    """LISTEN + the peer's SYN with ``syn_options``; returns (h, the SYN,ACK)."""
    h = TcpHarness(**kw)
    h.listen()
    h.send(h.seg("S", seq=PEER_ISN, options=syn_options))
    e = h.expect(flags="SA", seq=ISS, ack=PEER_ISN + 1)
    h.expect_nothing()
    h.conn = h.conn_for(h.pport)
    return h, e


# ------------------------------------------------------------------ MSS
def test_syn_carries_our_mss():
    """RFC 9293 3.7.1: our SYN carries MSS = MTU - 40 (IPv4 + TCP headers without options)."""
    h = TcpHarness()
    h.connect(complete=False)
    assert h.syn.options == {"MSS": 1460}


def test_segments_bounded_by_peer_mss():
    """RFC 9293 3.7.1: a segment's payload never exceeds the peer's MSS (here 1000 < ours)."""
    h = TcpHarness()
    h.established(mss=1000)
    h.app_send(b"m" * 4000)
    lens = [len(e.payload) for e in h.drain()]
    assert lens[:4] == [1000, 1000, 1000, 1000]
    assert max(lens) == 1000


def test_segments_bounded_by_our_mss_when_peer_is_larger():
    """RFC 9293 3.7.1 Eff.snd.MSS = min(SendMSS + 20, MMS_S) - TCPhdrsize - IPoptionsize: our MTU bounds it
    even when the peer offers MSS 9000."""
    h = TcpHarness()
    h.established(mss=9000)
    h.app_send(b"m" * 2920)
    assert [len(e.payload) for e in h.drain()] == [1460, 1460]


def test_segments_bounded_by_mss_minus_timestamps():
    """RFC 6691 / RFC 9293 3.7.1: the MSS excludes TCP options, so with timestamps (12 octets in every
    segment) the payload is at most min(peer MSS, ours) - 12."""
    h = TcpHarness(timestamps=True)
    h.established(syn_options=[("MSS", 1000), ("Timestamp", (1, 0))], ack_options=[("Timestamp", (2, 0))])
    h.app_send(b"t" * 2964)
    lens = [len(e.payload) for e in h.drain()]
    assert lens == [988, 988, 988]


def test_default_mss_536_when_absent():
    """RFC 9293 3.7.1 (RFC 1122 4.2.2.6): without an MSS option the sender assumes 536."""
    h = TcpHarness()
    h.established(mss=None)
    h.app_send(b"d" * 1072)
    assert [len(e.payload) for e in h.drain()] == [536, 536]


def test_configured_mss_announced_and_used():
    """RFC 9293 3.7.1: a configured MSS (TcpConfig.mss) is what we announce and what we send at most."""
    h = TcpHarness(mss=700)
    h.established(mss=1460)
    assert h.syn_ack.options == {"MSS": 700}
    h.app_send(b"c" * 1400)
    assert [len(e.payload) for e in h.drain()] == [700, 700]


# ------------------------------------------------------------------ SYN option negotiation
def test_active_syn_offers_everything_enabled():
    """RFC 7323 1.3, RFC 2018 2: our SYN offers window scale (shift for a 4 MiB buffer: 7), SACK-permitted,
    timestamps (TSecr 0) along with the MSS."""
    h = TcpHarness(**ALL)
    h.connect(complete=False)
    assert h.syn.options == {"MSS": 1460, "SAckOK": True, "Timestamp": (ANY, 0), "WScale": 7}


def test_syn_ack_answers_every_offered_option():
    """RFC 7323 2.2/3.2, RFC 2018 2: the SYN,ACK carries WScale, SACK-permitted and timestamps (TSecr = the
    SYN's TSval) because the SYN offered them."""
    h, e = passive([("MSS", 1460), ("SAckOK", b""), ("Timestamp", (777, 0)), ("WScale", 3)], **ALL)
    assert e.options == {"MSS": 1460, "SAckOK": True, "Timestamp": (ANY, 777), "WScale": 7}


def test_syn_ack_offers_nothing_not_offered():
    """RFC 7323 1.3 / 2.2: window scale and timestamps are used only if both SYNs carry them (a SYN,ACK
    MUST NOT carry them unless the SYN did); RFC 2018 2: likewise SACK-permitted."""
    h, e = passive([("MSS", 1460)], **ALL)
    assert e.options == {"MSS": 1460}
    assert e.tcp.window == 65535


@pytest.mark.parametrize("offer,expect", [
    ([("WScale", 2)], {"WScale": 7}),
    ([("SAckOK", b"")], {"SAckOK": True}),
    ([("Timestamp", (5, 0))], {"Timestamp": (ANY, 5)}),
])
def test_syn_ack_answers_each_option_alone(offer, expect):
    """RFC 7323 / RFC 2018: each option is negotiated independently."""
    h, e = passive([("MSS", 1460)] + offer, **ALL)
    assert e.options == {"MSS": 1460, **expect}


@pytest.mark.parametrize("off", ["window_scaling", "sack", "timestamps"])
def test_disabled_option_not_answered(off):
    """RFC 7323 / RFC 2018: an option we disabled is not answered even when the peer offers it."""
    kw = dict(ALL)
    kw[off] = False
    h, e = passive([("MSS", 1460), ("SAckOK", b""), ("Timestamp", (9, 0)), ("WScale", 2)], **kw)
    name = {"window_scaling": "WScale", "sack": "SAckOK", "timestamps": "Timestamp"}[off]
    assert name not in e.options and len(e.options) == 3


# ------------------------------------------------------------------ window scale
def test_scaled_window_advertised_in_established():
    """RFC 7323 2.2/2.3: after negotiation our window field is RCV.WND >> Rcv.Wind.Shift (4 MiB >> 7), while
    the SYN,ACK's window is unscaled (min(free, 65535))."""
    h = TcpHarness(**ALL)
    h.established(syn_options=[("MSS", 1460), ("WScale", 2)])
    assert h.syn_ack.tcp.window == 65535
    h.send(h.seg("PA", load=b"x"))
    h.advance(h.config.delack)
    e = h.expect(flags="A", ack=h.p_nxt + 1)
    assert e.tcp.window == ((4 << 20) - 1 + 127) >> 7


def test_peer_window_scaled_in_established():
    """RFC 7323 2.3: SND.WND = SEG.WND << Snd.Wind.Shift for every non-SYN segment: window 730 << 2 = 2920
    lets exactly two full segments out."""
    h = TcpHarness(window_scaling=True)
    conn = h.established(syn_options=[("MSS", 1460), ("WScale", 2)], ack_window=730)
    assert conn.snd_wnd == 2920
    h.app_send(b"w" * 5000)
    assert [len(e.payload) for e in h.drain()] == [1460, 1460]


def test_no_scaling_unless_both_offer():
    """RFC 7323 1.3: the peer offers WScale but we have it off -> neither side scales; SEG.WND taken as is."""
    h = TcpHarness(window_scaling=False)
    conn = h.established(syn_options=[("MSS", 1460), ("WScale", 2)], ack_window=3000)
    assert "WScale" not in h.syn_ack.options
    assert conn.snd_wnd == 3000
    h.send(h.seg("PA", load=b"x"))
    h.advance(h.config.delack)
    assert h.expect(flags="A").tcp.window == 65535


def test_peer_without_wscale_means_no_scaling_our_side():
    """RFC 7323 1.3: if the peer's SYN has no WScale, we must not scale our advertised window either."""
    h = TcpHarness(window_scaling=True, rcvbuf=1 << 20)
    h.established(syn_options=[("MSS", 1460)])
    h.send(h.seg("PA", load=b"x"))
    h.advance(h.config.delack)
    assert h.expect(flags="A").tcp.window == 65535


def test_window_in_syn_ack_is_not_scaled():
    """RFC 7323 2.2: "The window field in a segment where the SYN bit is set (i.e., a <SYN> or <SYN,ACK>)
    MUST NOT be scaled." SYN,ACK window 1460 with WScale 2 -> SND.WND 1460: one full segment may go."""
    h = TcpHarness(window_scaling=True)
    conn = h.connect(syn_ack_options=[("MSS", 1460), ("WScale", 2)], window=1460)
    assert conn.snd_wnd == 1460
    h.app_send(b"s" * 5840)
    assert [len(e.payload) for e in h.drain()] == [1460]


def test_window_in_syn_not_scaled_passive():
    """RFC 7323 2.2: the window in the peer's SYN is taken unscaled (SND.WND until the next segment)."""
    h, _ = passive([("MSS", 1460), ("WScale", 2)], window_scaling=True)
    assert h.conn.snd_wnd == 65535


def test_wscale_above_14_is_taken_as_14():
    """RFC 7323 2.3: a shift above 14 is logged and 14 is used instead."""
    h = TcpHarness(window_scaling=True)
    conn = h.established(syn_options=[("MSS", 1460), ("WScale", 15)], ack_window=2)
    assert conn.snd_wscale == 14 and conn.snd_wnd == 2 << 14


def test_our_wscale_follows_buffer():
    """RFC 7323 2.3: our shift is the smallest that lets 65535 << shift cover the receive buffer."""
    h = TcpHarness(window_scaling=True, rcvbuf=200000)
    h.connect(complete=False)
    assert h.syn.options["WScale"] == 2


# ------------------------------------------------------------------ timestamps
def ts_opts(tsval, tsecr=0):
    return [("NOP", None), ("NOP", None), ("Timestamp", (tsval, tsecr))]


def ts_pair():
    h2 = TcpHarness(timestamps=True)
    conn = h2.established(syn_options=[("MSS", 1460), ("Timestamp", (100, 0))], ack_options=ts_opts(101))
    return h2, conn


def test_tsecr_echoes_ts_recent():
    """RFC 7323 3.2/4.3: TSecr in our ACK is TS.Recent, the TSval of the segment being acknowledged."""
    h, conn = ts_pair()
    h.send(h.seg("PA", load=b"a", options=ts_opts(200)))
    h.advance(h.config.delack)
    assert h.expect(flags="A", ack=h.p_nxt + 1).options["Timestamp"][1] == 200
    h.send(h.seg("PA", seq=h.p_nxt + 1, load=b"b", options=ts_opts(300)))
    h.advance(h.config.delack)
    assert h.expect(flags="A", ack=h.p_nxt + 2).options["Timestamp"][1] == 300


def test_ts_recent_is_the_earliest_unacknowledged_segment():
    """RFC 7323 4.3 (2): TS.Recent is updated only if SEG.SEQ =< Last.ACK.sent, so with delayed ACKs TSecr
    echoes the earliest segment's TSval (the RTT includes the delay)."""
    h, conn = ts_pair()
    mss = conn.eff_mss
    h.send(h.seg("A", load=b"1" * mss, options=ts_opts(200)))
    h.send(h.seg("A", seq=h.p_nxt + mss, load=b"2" * mss, options=ts_opts(250)))
    e = h.expect(flags="A", ack=h.p_nxt + 2 * mss)
    assert e.options["Timestamp"][1] == 200


def test_every_segment_carries_timestamps_once_negotiated():
    """RFC 7323 3.2: once negotiated, TSopt MUST be sent in every non-<RST> segment (data, ACK, FIN)."""
    h, conn = ts_pair()
    h.app_send(b"data")
    assert "Timestamp" in h.expect(flags="PA").options
    h.send(h.seg("PA", load=b"x", options=ts_opts(150)))
    h.advance(h.config.delack)
    assert "Timestamp" in h.expect(flags="A").options
    h.app_shutdown()
    assert "Timestamp" in h.expect(flags="FA").options


def test_no_timestamps_when_not_negotiated():
    """RFC 7323 3.2: without TSopt in both SYNs, no segment carries it."""
    h = TcpHarness(timestamps=True)
    h.established(syn_options=[("MSS", 1460)])
    h.app_send(b"data")
    assert h.expect(flags="PA").options == {}


def test_tsval_is_a_1ms_clock():
    """RFC 7323 5.4: TSval ticks with a clock of 1 ms to 1 s per tick, monotonic: 2.5 s later it grew by 2500
    (this stack: 1 ms)."""
    h, conn = ts_pair()
    h.app_send(b"a")
    t0 = h.expect(flags="PA").options["Timestamp"][0]
    h.send(h.seg("A", ack=h.l_nxt + 1, options=ts_opts(150)))
    h.advance(2.5)
    h.app_send(b"b")
    t1 = h.expect(flags="PA").options["Timestamp"][0]
    assert s32(t1 - t0) == 2500


def test_paws_drops_old_timestamp_with_ack():
    """RFC 7323 5.3 R1: SEG.TSval < TS.Recent (and not RST) -> not acceptable: send an ACK, drop (text too)."""
    h, conn = ts_pair()
    h.send(h.seg("PA", load=b"new", options=ts_opts(500)))
    h.p_nxt += 3
    h.advance(h.config.delack)
    h.drain()
    h.send(h.seg("PA", load=b"replayed", options=ts_opts(400)))
    e = h.expect(flags="A", seq=h.l_nxt, ack=h.p_nxt)
    assert e.options["Timestamp"][1] == 500
    h.expect_nothing()
    assert conn.rcvbuf == b"new"


def test_paws_accepts_equal_and_wrapped_newer_timestamps():
    """RFC 7323 5.3: the comparison is modulo 2**32: TSval equal to TS.Recent, or newer across the wrap, passes."""
    h = TcpHarness(timestamps=True)
    conn = h.established(syn_options=[("MSS", 1460), ("Timestamp", (2**32 - 20, 0))],
                         ack_options=ts_opts(2**32 - 15))
    h.send(h.seg("PA", load=b"a", options=ts_opts(2**32 - 10)))
    h.send(h.seg("PA", seq=h.p_nxt + 1, load=b"b", options=ts_opts(2**32 - 10)))
    h.send(h.seg("PA", seq=h.p_nxt + 2, load=b"c", options=ts_opts(5)))
    assert conn.rcvbuf == b"abc"


def test_paws_does_not_drop_rst():
    """RFC 7323 5.3 R1: PAWS applies only if the RST bit is not set: an exact RST with an old TSval resets."""
    h, conn = ts_pair()
    h.send(h.seg("PA", load=b"x", options=ts_opts(500)))
    h.p_nxt += 1
    h.send(h.seg("R", options=ts_opts(1)))
    assert conn.state is State.CLOSED


# ------------------------------------------------------------------ SACK
def sack_pair(**kw):
    h = TcpHarness(sack=True, **kw)
    conn = h.established(syn_options=[("MSS", 1460), ("SAckOK", b"")])
    return h, conn


def test_sack_permitted_negotiated():
    """RFC 2018 2: SACK-permitted in both SYNs -> SACK may be used (and is, in the SYN,ACK)."""
    h, conn = sack_pair()
    assert h.syn_ack.options == {"MSS": 1460, "SAckOK": True}
    assert conn.sack_enabled


def test_out_of_order_data_produces_sack_block():
    """RFC 2018 4: an ACK for out-of-order data carries a SACK block for it: [RCV.NXT+1000, RCV.NXT+1100)."""
    h, conn = sack_pair()
    r = h.p_nxt
    h.send(h.seg("PA", seq=r + 1000, load=b"o" * 100))
    h.expect(flags="A", ack=r, options={"SAck": [(r + 1000, r + 1100)]})
    h.expect_nothing()


def test_no_sack_blocks_without_negotiation():
    """RFC 2018 2: without SACK-permitted from the peer, never send SACK blocks."""
    h = TcpHarness(sack=True)
    h.established()
    h.send(h.seg("PA", seq=h.p_nxt + 1000, load=b"o" * 100))
    h.expect(flags="A", ack=h.p_nxt, options={})


def test_sack_blocks_merge_contiguous_data():
    """RFC 2018 3: a block is a contiguous range; adjacent out-of-order segments form one block."""
    h, conn = sack_pair()
    r = h.p_nxt
    h.send(h.seg("PA", seq=r + 1000, load=b"a" * 100))
    h.drain()
    h.send(h.seg("PA", seq=r + 1100, load=b"b" * 100))
    h.expect(flags="A", ack=r, options={"SAck": [(r + 1000, r + 1200)]})


def test_first_sack_block_is_most_recent_when_higher():
    """RFC 2018 4: the first block reports the segment that triggered this ACK (here the highest)."""
    h, conn = sack_pair()
    r = h.p_nxt
    h.send(h.seg("PA", seq=r + 1000, load=b"a" * 100))
    h.drain()
    h.send(h.seg("PA", seq=r + 2000, load=b"b" * 100))
    h.expect(flags="A", ack=r, options={"SAck": [(r + 2000, r + 2100), (r + 1000, r + 1100)]})


def test_first_sack_block_is_most_recent_when_lower():
    """RFC 2018 4: "The first SACK block (i.e., the one immediately following the kind and length fields in the
    option) MUST specify the contiguous block of data containing the segment which triggered this ACK"; the
    others repeat the most recently reported blocks."""
    h, conn = sack_pair()
    r = h.p_nxt
    h.send(h.seg("PA", seq=r + 2000, load=b"a" * 100))
    h.drain()
    h.send(h.seg("PA", seq=r + 1000, load=b"b" * 100))
    h.expect(flags="A", ack=r, options={"SAck": [(r + 1000, r + 1100), (r + 2000, r + 2100)]})


def test_first_sack_block_contains_the_triggering_segment_after_merge():
    """RFC 2018 4: the first block contains the triggering segment even when it extends an older block."""
    h, conn = sack_pair()
    r = h.p_nxt
    h.send(h.seg("PA", seq=r + 1000, load=b"a" * 100))
    h.send(h.seg("PA", seq=r + 3000, load=b"b" * 100))
    h.drain()
    h.send(h.seg("PA", seq=r + 1100, load=b"c" * 100))
    h.expect(flags="A", ack=r, options={"SAck": [(r + 1000, r + 1200), (r + 3000, r + 3100)]})


def test_sack_block_limit_with_timestamps():
    """RFC 2018 3 / RFC 7323: 40 option octets hold at most 3 SACK blocks next to the 10-octet timestamps."""
    h = TcpHarness(sack=True, timestamps=True)
    h.established(syn_options=[("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1, 0))], ack_options=ts_opts(2))
    r = h.p_nxt
    for i in range(5):
        h.send(h.seg("PA", seq=r + 1000 * (i + 1), load=b"z" * 10, options=ts_opts(3)))
    e = h.drain()[-1]
    assert len(e.options["SAck"]) == 3
    assert len(e.tcp.options) and e.tcp.dataofs * 4 <= 60


def test_sack_block_limit_without_timestamps():
    """RFC 2018 3: at most 4 SACK blocks fit in the option space without timestamps."""
    h, conn = sack_pair()
    r = h.p_nxt
    for i in range(6):
        h.send(h.seg("PA", seq=r + 1000 * (i + 1), load=b"z" * 10))
    assert len(h.drain()[-1].options["SAck"]) == 4


def test_sack_gone_when_hole_filled():
    """RFC 2018 4: once the out-of-order data is in sequence, the cumulative ACK covers it; no SACK block."""
    h, conn = sack_pair()
    r = h.p_nxt
    h.send(h.seg("PA", seq=r + 100, load=b"b" * 100))
    h.drain()
    h.send(h.seg("PA", seq=r, load=b"a" * 100))
    h.expect(flags="A", ack=r + 200, options={})
    assert conn.rcvbuf == b"a" * 100 + b"b" * 100


def test_active_open_peer_declines_every_option():
    """RFC 7323 1.3 / RFC 2018 2: we offered window scale, SACK and timestamps; the SYN,ACK carries only MSS ->
    none of them is used: no TSopt, no SACK blocks, our window field unscaled."""
    h = TcpHarness(**ALL)
    conn = h.connect(syn_ack_options=[("MSS", 1460)])
    assert not conn.ts_enabled and not conn.sack_enabled and conn.rcv_wscale == 0
    h.send(h.seg("PA", seq=h.p_nxt + 100, load=b"ooo"))
    e = h.expect(flags="A", ack=h.p_nxt)
    assert e.options == {} and e.tcp.window == 65535


def test_active_open_all_options_accepted():
    """RFC 7323 2.2/3.2: after a SYN,ACK with WScale and TSopt, our ACK of it carries TSecr = its TSval and a
    window field scaled by our shift (4 MiB >> 7)."""
    h = TcpHarness(**ALL)
    h.lport, h.pport = 50000, 80
    conn = h.host.tcp.connect((LOCAL_B, 50000), (PEER_B, 80), h.now)
    h._collect()
    h.expect(flags="S")
    h.send(h.seg("SA", seq=PEER_ISN, ack=ISS + 1, options=[("MSS", 1460), ("SAckOK", b""),
                                                            ("Timestamp", (4242, 1)), ("WScale", 5)]))
    e = h.expect(flags="A", seq=ISS + 1, ack=PEER_ISN + 1)
    assert e.options == {"Timestamp": (ANY, 4242)}
    assert e.tcp.window == (4 << 20) >> 7
    assert conn.snd_wscale == 5 and conn.sack_enabled



from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 6000), st.integers(1, 700)), min_size=1, max_size=12),
       st.booleans())
def test_sack_blocks_are_true_maximal_and_recent_first(segments, timestamps):
    """RFC 2018 3-4, for any arrival of out-of-order segments (RCV.NXT never filled): every ACK's SACK blocks
    are received, isolated (disjoint, non-adjacent, maximal) ranges above RCV.NXT; the first block contains the
    segment that triggered the ACK; as many blocks as fit (3 with timestamps, else 4) are reported."""
    kw = dict(sack=True, timestamps=timestamps)
    h = TcpHarness(**kw)
    syn = [("MSS", 1460), ("SAckOK", b"")] + ([("Timestamp", (1, 0))] if timestamps else [])
    h.established(syn_options=syn, ack_options=ts_opts(2) if timestamps else None)
    r = h.p_nxt
    have = bytearray(8000)
    for off, n in segments:
        h.send(h.seg("PA", seq=r + off, load=b"s" * n, options=ts_opts(3) if timestamps else None))
        have[off:off + n] = b"\x01" * n
        acks = h.drain()
        assert len(acks) == 1
        blocks = acks[0].options["SAck"]
        ranges, i = [], 0
        while i < len(have):
            if have[i]:
                j = i
                while j < len(have) and have[j]:
                    j += 1
                ranges.append((r + i, r + j))
                i = j
            else:
                i += 1
        assert all(b in ranges for b in blocks), (blocks, ranges)
        assert len(set(blocks)) == len(blocks)
        assert len(blocks) == min(len(ranges), 3 if timestamps else 4)
        left, right = blocks[0]
        assert left <= r + off and r + off + n <= right
