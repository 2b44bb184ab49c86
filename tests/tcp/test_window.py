"""Sliding window: receive window and receiver SWS avoidance, Nagle and PSH, zero-window probing,
delayed ACKs (RFC 9293 3.8.6, RFC 1122 4.2.3.3-4.2.3.4 and 4.2.2.17, RFC 5681 4.2, RFC 896)."""
import pytest

from harness import TcpHarness, s32
from stack.tcp.states import State

MSS = 1460


def rx(rcvbuf=10000, **kw):
    h = TcpHarness(rcvbuf=rcvbuf, **kw)
    conn = h.established()
    return h, conn


def feed(h, n, byte=b"d"):
    """The peer sends n octets in MSS-sized segments at p_nxt; returns what the stack emitted."""
    out = []
    while n:
        k = min(n, MSS)
        h.send(h.seg("PA", load=byte * k))
        h.p_nxt += k
        n -= k
        out += h.drain()
    return out


# ------------------------------------------------------------------ receive window
def test_initial_window_is_the_buffer():
    """RFC 9293 3.8.6: the window offered in the SYN,ACK is the free receive buffer (10000 octets)."""
    h, conn = rx()
    assert h.syn_ack.tcp.window == 10000 and conn.rcv_wnd == 10000


def test_window_shrinks_as_unread_data_arrives():
    """RFC 9293 3.8.6: while the application does not read, the window offered shrinks by what arrived and
    the right edge RCV.NXT + RCV.WND stays put."""
    h, conn = rx()
    h.send(h.seg("PA", load=b"a" * 1000))
    h.advance(h.config.delack)
    h.expect(flags="A", ack=h.p_nxt + 1000, window=9000)
    h.p_nxt += 1000
    h.send(h.seg("PA", load=b"b" * 2000))
    h.advance(h.config.delack)
    h.expect(flags="A", ack=h.p_nxt + 2000, window=7000)


def test_right_edge_never_moves_left():
    """RFC 9293 3.8.6 (RFC 1122 4.2.2.16): the receiver SHOULD NOT shrink the window (move the right edge
    left), through any mix of arrivals and small application reads."""
    h, conn = rx()
    edges = [h.syn_ack.tcp.ack + h.syn_ack.tcp.window]
    for step, (arrive, read) in enumerate([(1000, 0), (1460, 100), (1460, 0), (500, 3000), (1460, 10),
                                           (1460, 1), (700, 0), (0, 2500), (1460, 0)]):
        if arrive:
            h.send(h.seg("PA", load=bytes([step]) * arrive))
            h.p_nxt += arrive
        if read:
            h.app_recv(read)
        h.advance(h.config.delack)
        h.send(h.seg("A", seq=h.p_nxt + 10**6))  # out of window: forces an ACK showing the edge
        for e in h.drain():
            edges.append(e.tcp.ack + e.tcp.window)
    assert edges == sorted(edges), edges


def test_receiver_sws_no_small_window_update():
    """RFC 9293 3.8.6.2.2 (RFC 1122 4.2.3.3): receiver SWS avoidance: after a zero window, reading less than
    min(RCV.BUFF/2, Eff.snd.MSS) sends no update, and a probe is still answered with window 0."""
    h, conn = rx()
    feed(h, 10000)
    h.advance(h.config.delack)
    h.drain()
    assert conn.rcv_wnd == 0
    h.app_recv(1000)
    h.expect_nothing()
    h.send(h.seg("PA", load=b"p"))  # zero-window probe
    h.expect(flags="A", ack=h.p_nxt, window=0)
    h.expect_nothing()


def test_window_update_once_reads_reach_one_mss():
    """RFC 9293 3.8.6.2.2: the window opens (and an update ACK goes out at once) when the free space reaches
    min(RCV.BUFF/2, Eff.snd.MSS)."""
    h, conn = rx()
    feed(h, 10000)
    h.advance(h.config.delack)
    h.drain()
    h.app_recv(1000)
    h.expect_nothing()
    h.app_recv(460)
    h.expect(flags="A", seq=h.l_nxt, ack=h.p_nxt, window=1460)
    h.expect_nothing()


def test_app_read_of_everything_sends_window_update():
    """RFC 9293 3.8.6.2.2 / RFC 1122 4.2.3.3: the application drains a full buffer -> window update ACK."""
    h, conn = rx()
    feed(h, 10000)
    h.advance(h.config.delack)
    h.drain()
    assert h.app_recv() == b"d" * 10000
    h.expect(flags="A", seq=h.l_nxt, ack=h.p_nxt, window=10000)
    h.expect_nothing()


def test_no_window_update_when_window_already_large():
    """RFC 9293 3.8.6.2.2: a read that leaves the offered window large changes nothing worth a segment."""
    h, conn = rx()
    feed(h, 1000)
    h.advance(h.config.delack)
    h.drain()
    h.app_recv()
    h.expect_nothing()


# ------------------------------------------------------------------ sender: Nagle, PSH, window
def tx(**kw):
    h = TcpHarness(**kw)
    conn = h.established()
    return h, conn


def test_nagle_holds_small_write_while_data_unacked():
    """RFC 9293 3.7.4 (RFC 896, RFC 1122 4.2.3.4): a small segment waits while earlier data is unacknowledged;
    the ACK releases it."""
    h, conn = tx()
    h.app_send(b"a" * 100)
    h.expect(flags="PA", seq=h.l_nxt, payload=b"a" * 100)
    h.app_send(b"b" * 100)
    h.expect_nothing()
    h.send(h.seg("A", ack=h.l_nxt + 100))
    h.expect(flags="PA", seq=h.l_nxt + 100, payload=b"b" * 100)
    h.expect_nothing()


def test_nagle_coalesces_small_writes():
    """RFC 896: the small writes queued behind unacknowledged data leave as one segment."""
    h, conn = tx()
    h.app_send(b"0")
    h.drain()
    for c in b"123":
        h.app_send(bytes([c]) * 50)
    h.expect_nothing()
    h.send(h.seg("A", ack=h.l_nxt + 1))
    h.expect(flags="PA", seq=h.l_nxt + 1, payload=b"1" * 50 + b"2" * 50 + b"3" * 50)


def test_nodelay_sends_small_write_at_once():
    """RFC 9293 3.7.4: the application can disable Nagle (TCP_NODELAY): the second small write goes at once."""
    h, conn = tx()
    conn.nodelay = True
    h.app_send(b"a" * 100)
    h.app_send(b"b" * 100)
    h.expect(flags="PA", seq=h.l_nxt, payload=b"a" * 100)
    h.expect(flags="PA", seq=h.l_nxt + 100, payload=b"b" * 100)


def test_nodelay_from_config():
    """TcpConfig(nodelay=True) starts connections with Nagle off."""
    h, conn = tx(nodelay=True)
    h.app_send(b"a")
    h.app_send(b"b")
    assert [e.payload for e in h.drain()] == [b"a", b"b"]


def test_nagle_does_not_hold_full_segments():
    """RFC 896 / RFC 1122 4.2.3.4: only less-than-MSS segments wait; full ones go even with data in flight."""
    h, conn = tx()
    h.app_send(b"a" * 10)
    h.drain()
    h.app_send(b"b" * (2 * MSS))
    h.expect(length=MSS, seq=h.l_nxt + 10)
    h.expect(length=MSS, seq=h.l_nxt + 10 + MSS)
    h.expect_nothing()


def test_psh_on_last_segment_of_a_write():
    """RFC 9293 3.9.1 (RFC 1122 4.2.2.2): PSH is set on the last segment of what the user wrote."""
    h, conn = tx()
    h.app_send(b"x" * (2 * MSS))
    h.expect(flags="A", length=MSS)
    h.expect(flags="PA", length=MSS)
    h.expect_nothing()


def test_single_small_write_has_psh():
    """RFC 9293 3.9.1: a write that fits one segment carries PSH."""
    h, conn = tx()
    h.app_send(b"hello")
    h.expect(flags="PA", payload=b"hello")


def test_sender_respects_peer_window():
    """RFC 9293 3.8.6: never send beyond SND.UNA + SND.WND: window 3000 lets two full segments out and the
    sender SWS rule holds back the 80-octet tail (RFC 9293 3.8.6.2.1)."""
    h, conn = tx()
    h.send(h.seg("A", window=3000))
    h.app_send(b"w" * 10000)
    assert [len(e.payload) for e in h.drain()] == [MSS, MSS]
    h.send(h.seg("A", ack=h.l_nxt + 2 * MSS, window=3000))
    assert [len(e.payload) for e in h.drain()] == [MSS, MSS]


def test_window_update_releases_data():
    """RFC 9293 3.10.7.4 fifth check: a window update (SND.WL1/WL2 newer) opens the window; data flows."""
    h, conn = tx()
    h.send(h.seg("A", window=0))
    h.app_send(b"q" * 100)
    h.expect_nothing()
    h.send(h.seg("A", window=5000))
    h.expect(flags="PA", seq=h.l_nxt, payload=b"q" * 100)


def test_old_window_update_ignored():
    """RFC 9293 3.10.7.4 fifth check: SND.WND is updated only if SND.WL1 < SEG.SEQ or (SND.WL1 = SEG.SEQ and
    SND.WL2 =< SEG.ACK): a reordered older ACK (same SEG.SEQ, lower SEG.ACK) does not reopen the window."""
    h, conn = tx()
    h.app_send(b"x" * 100)
    h.drain()
    h.send(h.seg("A", ack=h.l_nxt + 100, window=0))
    assert conn.snd_wnd == 0
    h.send(h.seg("A", ack=h.l_nxt + 50, window=60000))
    h.expect_nothing()
    assert conn.snd_wnd == 0 and conn.snd_una == h.l_nxt + 100


def test_newer_segment_updates_window_even_if_smaller():
    """RFC 9293 3.10.7.4 fifth check: a newer segment (higher SEG.SEQ) sets SND.WND, also to a smaller value."""
    h, conn = tx()
    h.send(h.seg("PA", load=b"x" * 10, window=3000))
    assert conn.snd_wnd == 3000


# ------------------------------------------------------------------ zero window: persist timer
def zero_peer_window(**kw):
    """ESTABLISHED, SND.WND = 0 from the handshake's ACK, RTO = 1 s (min_rto=1), 100 octets queued."""
    h = TcpHarness(min_rto=1.0, **kw)
    conn = h.listen_and_establish(ack_window=0)
    assert conn.snd_wnd == 0 and conn.rtt.current_rto() == 1.0
    h.app_send(bytes(range(100)))
    h.expect_nothing()
    return h, conn


def test_persist_probe_times_back_off_exponentially():
    """RFC 9293 3.8.6.1 (RFC 1122 4.2.2.17): the first zero-window probe after one RTO, then exponentially
    increasing intervals (1, 2, 4, 8, 16, 32 s, capped at persist_max 60 s); each probe is Linux's
    empty segment at SND.UNA-1 (tcp_xmit_probe_skb), which leaves SND.NXT where it was."""
    h, conn = zero_peer_window()
    h.advance_to(250.0)
    times = [e.at for e in h.out]
    assert times == [1.0, 3.0, 7.0, 15.0, 31.0, 63.0, 123.0, 183.0, 243.0]
    assert all(len(e.payload) == 0 and e.tcp.seq == s32(h.l_nxt - 1) and e.flags == "A" for e in h.out)
    assert conn.snd_nxt == h.l_nxt and conn.state is State.ESTABLISHED


def test_one_octet_persist_probe_is_an_option():
    """RFC 9293 3.8.6.1's one-octet probe with ``zero_window_probe="octet"``: the same schedule, the first
    unacknowledged octet each time."""
    h, conn = zero_peer_window(zero_window_probe="octet")
    h.advance_to(20.0)
    assert [e.at for e in h.out] == [1.0, 3.0, 7.0, 15.0]
    assert all(e.payload == b"\x00" and e.tcp.seq == h.l_nxt for e in h.out)


def answer_probes(h, conn, rounds):
    """Run ``rounds`` timer expiries; answer every segment with ACK(SND.UNA), window still 0."""
    emitted = []
    for _ in range(rounds):
        h.run_next_timer()
        for e in h.drain():
            emitted.append(e)
            h.send(h.seg("A", ack=h.l_nxt, window=0))
            emitted += h.drain()
        if conn.state is not State.ESTABLISHED:
            break
    return emitted


def test_nothing_beyond_probe_octet_sent_into_zero_window():
    """RFC 9293 3.8.6.1 / 3.8.6: while SND.WND = 0 the sender may only probe (one octet at most); answered
    probes keep the persist schedule 1, 3, 7, 15 s."""
    h, conn = zero_peer_window(zero_window_probe="octet")
    emitted = answer_probes(h, conn, 4)
    assert [len(e.payload) for e in emitted] == [1, 1, 1, 1], emitted
    h, conn = zero_peer_window()
    emitted = answer_probes(h, conn, 4)
    assert [len(e.payload) for e in emitted] == [0, 0, 0, 0], emitted
    assert [e.at for e in emitted] == [1.0, 3.0, 7.0, 15.0]


def test_answered_probes_keep_connection_alive():
    """RFC 9293 3.8.6.1 (RFC 1122 4.2.2.17): the sender MUST NOT close the connection as long as the receiver
    keeps answering the zero-window probes (here: more probes than retries2=3)."""
    h, conn = zero_peer_window(retries2=3)
    answer_probes(h, conn, 10)
    assert conn.state is State.ESTABLISHED and conn.error == 0


def test_window_opening_stops_probes_and_data_flows():
    """RFC 9293 3.8.6.1: once the window opens the queued data is sent (and eventually all of it arrives
    in order at a peer that only ACKs what it took)."""
    h, conn = zero_peer_window(zero_window_probe="octet")
    h.advance(1.0)
    probe = h.expect(length=1)
    got = bytearray(probe.payload)  # the peer's window opened in time to take the probe octet
    h.send(h.seg("A", ack=h.l_nxt + 1, window=5000))
    for _ in range(20):
        for e in h.drain():
            off = e.tcp.seq - h.l_nxt
            if off == len(got):
                got += e.payload
        if len(got) == 100:
            break
        h.send(h.seg("A", ack=h.l_nxt + len(got), window=5000))
        if not h.out:
            h.run_next_timer()
    assert bytes(got) == bytes(range(100))


# ------------------------------------------------------------------ delayed ACK
def test_delayed_ack_after_one_full_segment():
    """RFC 9293 3.8.6.3 / RFC 5681 4.2: one full-size segment is ACKed after the delayed-ACK timeout
    (TcpConfig.delack, < 0.5 s), not at once."""
    h, conn = tx()
    h.send(h.seg("A", load=b"f" * MSS), at=1.0)
    h.expect_nothing()
    h.advance(1.0)
    h.expect(flags="A", seq=h.l_nxt, ack=h.p_nxt + MSS, at=1.0 + h.config.delack)
    h.expect_nothing()


def test_delayed_ack_after_small_segment():
    """RFC 9293 3.8.6.3: a small segment is ACKed within the delayed-ACK timeout too."""
    h, conn = tx(delack=0.2)
    h.send(h.seg("PA", load=b"s"))
    h.advance(0.199)
    h.expect_nothing()
    h.advance(0.001)
    h.expect(flags="A", ack=h.p_nxt + 1, at=0.2)


def test_ack_every_second_full_segment():
    """RFC 5681 4.2 / RFC 9293 3.8.6.3: an ACK SHOULD be generated for at least every second full-sized
    segment: the second one is ACKed at once, covering both."""
    h, conn = tx()
    h.send(h.seg("A", load=b"1" * MSS))
    h.expect_nothing()
    h.send(h.seg("A", seq=h.p_nxt + MSS, load=b"2" * MSS))
    h.expect(flags="A", ack=h.p_nxt + 2 * MSS, at=0.0)
    h.expect_nothing()
    h.advance(1.0)
    h.expect_nothing()


def test_out_of_order_segment_acked_immediately():
    """RFC 5681 4.2: "A TCP receiver SHOULD send an immediate duplicate ACK when an out-of-order segment
    arrives" - one per segment."""
    h, conn = tx()
    h.send(h.seg("A", seq=h.p_nxt + MSS, load=b"2" * MSS))
    h.expect(flags="A", ack=h.p_nxt, at=0.0)
    h.send(h.seg("A", seq=h.p_nxt + 2 * MSS, load=b"3" * MSS))
    h.expect(flags="A", ack=h.p_nxt, at=0.0)
    h.expect_nothing()


def test_gap_fill_acked_immediately():
    """RFC 5681 4.2: "A TCP receiver SHOULD send an immediate ACK when the incoming segment fills in all or part
    of a gap in the sequence space"."""
    h, conn = tx()
    h.send(h.seg("A", seq=h.p_nxt + 100, load=b"2" * 100))
    h.drain()
    h.send(h.seg("A", load=b"1" * 100))
    h.expect(flags="A", ack=h.p_nxt + 200, at=0.0)
    h.expect_nothing()
    assert conn.rcvbuf == b"1" * 100 + b"2" * 100


def test_partial_gap_fill_acked_immediately():
    """RFC 5681 4.2: filling part of a gap is ACKed at once too."""
    h, conn = tx()
    h.send(h.seg("A", seq=h.p_nxt + 200, load=b"3" * 100))
    h.drain()
    h.send(h.seg("A", load=b"1" * 100))
    h.expect(flags="A", ack=h.p_nxt + 100, at=0.0)
    h.expect_nothing()


def test_delayed_ack_piggybacks_on_data():
    """RFC 9293 3.8.6.3 / RFC 1122 4.2.3.2: data sent before the delayed-ACK timer fires carries the ACK; no
    separate pure ACK follows."""
    h, conn = tx()
    h.send(h.seg("PA", load=b"request"))
    h.advance(0.010)
    h.app_send(b"response")
    h.expect(flags="PA", ack=h.p_nxt + 7, payload=b"response", at=0.010)
    h.p_nxt += 7
    h.send(h.seg("A", ack=h.l_nxt + 8))
    h.advance(1.0)
    h.expect_nothing()


def test_delack_must_be_under_half_a_second():
    """RFC 9293 3.8.6.3 (MUST-40): the delay MUST be less than 0.5 seconds (the default config)."""
    h, conn = tx()
    h.send(h.seg("PA", load=b"x"))
    h.advance(0.5)
    e = h.expect(flags="A")
    assert e.at < 0.5


def test_sender_sws_sends_half_max_window():
    """RFC 9293 3.8.6.2.1 (sender SWS avoidance): send when at least Fs * Max(SND.WND) (Fs = 1/2) can go, even
    below one MSS: the peer's largest window is 1000, so 1000 octets leave at once."""
    h = TcpHarness()
    conn = h.listen_and_establish(window=1000)
    h.app_send(b"s" * 3000)
    h.expect(seq=h.l_nxt, length=1000)
    h.expect_nothing()


def test_sender_sws_holds_small_usable_window():
    """RFC 9293 3.8.6.2.1: with a usable window below min(MSS, Max(SND.WND)/2) and more data queued than fits,
    wait (for a larger window or the override timeout) instead of sending a tiny segment."""
    h = TcpHarness()
    conn = h.listen_and_establish(window=1000)
    h.app_send(b"s" * 3000)
    h.drain()
    h.send(h.seg("A", ack=h.l_nxt + 1000, window=300))
    h.expect_nothing()
    h.send(h.seg("A", ack=h.l_nxt + 1000, window=1000))
    h.expect(seq=h.l_nxt + 1000, length=1000)


def test_peer_shrinking_window_stops_new_data():
    """RFC 9293 3.8.6 (MUST-34 robustness): if the peer shrinks its window below what is in flight, no new data
    is sent beyond SND.UNA + SND.WND."""
    h = TcpHarness()
    conn = h.established()
    h.app_send(b"a" * 2920)
    assert len(h.drain()) == 2
    h.send(h.seg("A", ack=h.l_nxt, window=1000))
    h.app_send(b"b" * 1460)
    h.expect_nothing()


def test_delayed_ack_timer_not_pushed_back_by_more_data():
    """RFC 9293 3.8.6.3 (MUST-40): the ACK is delayed at most delack from the first unacknowledged segment; a
    second small segment does not restart the timer, the one ACK covers both."""
    h, conn = tx()
    h.send(h.seg("PA", load=b"a"), at=0.0)
    h.send(h.seg("PA", seq=h.p_nxt + 1, load=b"b"), at=0.030)
    h.expect_nothing()
    h.advance_to(0.5)
    h.expect(flags="A", ack=h.p_nxt + 2, at=h.config.delack)
    h.expect_nothing()
