"""Buffers and the memory budget, packet by packet in virtual time: autotuned buffers that start
small (the window scale chosen for the largest), SO_RCVBUF-like locks inherited from the listener,
and the tcp_mem-like budget (stack/tcp/memory.py): pressure prunes out-of-order data and keeps
windows small, the hard limit drops new data, and ACKs and zero-window probes still flow."""
from __future__ import annotations

import pytest
from harness import TcpHarness, s32
from stack.tcp.connection import SNDBUF_CWNDS
from stack.tcp.memory import GUARANTEED, TcpMemory
from stack.trace import ListSink, Tracer

MSS = 1460
AUTO = dict(rcvbuf=None, sndbuf=None, rcvbuf_initial=64 << 10, sndbuf_initial=8 << 10, rcvbuf_max=6 << 20,
            sndbuf_max=4 << 20)
# a small budget: pressure above 200,000 octets, low below 150,000, limit 300,000; a fixed 1 MiB
# receive buffer whose window (scaled) was offered before the budget filled, as many connections'
# windows together would be
SMALL = dict(mem_limit=300_000, rcvbuf=1 << 20, window_scaling=True)
WS = [("MSS", MSS), ("WScale", 0)]


def feed(h: TcpHarness, n: int, size: int = MSS, window: int = 65535) -> None:
    """The peer sends ``n`` in-order segments of ``size`` octets, each inside the window."""
    for _ in range(n):
        h.send(h.seg("PA", load=b"d" * size, window=window))
        h.p_nxt = s32(h.p_nxt + size)


def acks(h: TcpHarness) -> list:
    return [e for e in h.drain() if not e.payload]


def traced(h: TcpHarness) -> ListSink:
    sink = ListSink()
    h.host.tcp.tracer = h.conn.tracer = Tracer(sink)
    return sink


# ------------------------------------------------------------------ the budget's states
def test_budget_thresholds_and_hysteresis():
    """Linux's tcp_mem ratio: pressure entered above 2/3 of the limit, left only below 1/2."""
    m = TcpMemory(300)
    assert (m.low, m.pressure_at, m.limit) == (150, 200, 300)
    m.charge(200)
    assert m.state() == "normal"
    m.charge(1)
    assert m.state() == "pressure" and m.pressure_entered == 1
    m.charge(-40)                      # 161: still above low
    assert m.pressure
    m.charge(200)                      # 361
    assert m.state() == "over limit" and m.peak == 361
    m.charge(-212)                     # 149: below low
    assert m.state() == "normal"
    with pytest.raises(ValueError):
        TcpMemory(0)


# ------------------------------------------------------------------ autotuning
def test_window_scale_from_the_largest_buffer_and_a_small_first_window():
    """The SYN,ACK offers the scale for rcvbuf_max (6 MiB -> 7, as Linux for tcp_rmem[2]); the first
    scaled window is only the 64 KiB buffer (65536 >> 7 = 512), not 6 MiB."""
    h = TcpHarness(window_scaling=True, **AUTO)
    h.established(syn_options=[("MSS", MSS), ("WScale", 7)])
    assert h.syn_ack.tcp.window == 65535 and h.syn_ack.options["WScale"] == 7
    h.send(h.seg("PA", load=b"x"))
    h.p_nxt += 1
    h.advance(h.config.delack)
    h.expect(flags="A", ack=h.p_nxt, window=((64 << 10) - 1 + 127) >> 7)


def test_receive_buffer_grows_with_what_the_app_reads_per_rtt():
    """Dynamic right-sizing (Linux tcp_rcv_space_adjust): after an RTT in which the app read more
    than ever before, the buffer becomes 2 * that + 16 segments, and the window follows."""
    h = TcpHarness(window_scaling=True, **AUTO)
    h.established(syn_options=[("MSS", MSS), ("WScale", 7)], rtt=0.1)
    assert h.conn.rtt.srtt == pytest.approx(0.1)
    feed(h, 40)                                   # 58,400 octets, inside the 64 KiB window
    assert len(h.app_recv()) == 40 * MSS          # t=0.1: starts the first measurement
    assert h.conn.rcvbuf_cap == 64 << 10
    h.advance(0.1)
    feed(h, 40)
    assert len(h.app_recv()) == 40 * MSS          # t=0.2: one RTT later, 80 segments read in it
    want = 2 * 80 * MSS + 16 * MSS
    assert h.conn.rcvbuf_cap == want
    last = acks(h)[-1]                            # the window update after the read
    assert last.tcp.window == (want - 1 + 127) >> 7


def test_receive_buffer_stops_at_its_maximum_and_a_lock_keeps_it():
    h = TcpHarness(window_scaling=True, **dict(AUTO, rcvbuf_max=100_000))
    h.established(syn_options=[("MSS", MSS), ("WScale", 7)], rtt=0.1)
    feed(h, 40)
    h.app_recv()
    h.advance(0.1)
    feed(h, 40)
    h.app_recv()
    assert h.conn.rcvbuf_cap == 100_000           # min(2 * read + 16 segments, rcvbuf_max)
    h2 = TcpHarness(window_scaling=True, **AUTO)
    h2.established(syn_options=[("MSS", MSS), ("WScale", 7)], rtt=0.1)
    h2.conn.lock_rcvbuf(64 << 10)                 # SO_RCVBUF: SOCK_RCVBUF_LOCK, no autotuning
    feed(h2, 40)
    h2.app_recv()
    h2.advance(0.1)
    feed(h2, 40)
    h2.app_recv()
    assert h2.conn.rcvbuf_cap == 64 << 10


def test_listener_buffer_sizes_reach_the_syn_ack():
    """A listener's fixed receive buffer sets its connections' SYN,ACK window and window scale
    (Linux children inherit sk_rcvbuf and the lock), before accept."""
    h = TcpHarness(window_scaling=True, **AUTO)
    h.listen().rcvbuf = 10_000
    h.listener.sndbuf = 20_000
    h.syn_received(syn_options=[("MSS", MSS), ("WScale", 7)])
    assert h.syn_ack.tcp.window == 10_000 and h.syn_ack.options["WScale"] == 0
    assert (h.conn.rcvbuf_cap, h.conn.sndbuf_cap) == (10_000, 20_000)
    assert h.conn.rcvbuf_locked and h.conn.sndbuf_locked


def test_send_buffer_grows_with_the_congestion_window():
    """Linux tcp_sndbuf_expand: SNDBUF_CWNDS congestion windows of at least ten segments, from the
    handshake on and as cwnd grows."""
    h = TcpHarness(**dict(AUTO, initial_window=10))
    h.established(active=True)
    cwnd = h.conn.cc.cwnd
    assert cwnd == 10 * MSS and h.conn.sndbuf_cap == SNDBUF_CWNDS * cwnd
    assert h.app_send(b"s" * 100_000) == SNDBUF_CWNDS * cwnd
    sent = [e for e in h.drain() if e.payload]
    assert sum(len(e.payload) for e in sent) == cwnd
    h.send(h.seg("A", ack=s32(h.iss + 1 + cwnd)))  # all acknowledged: slow start grows cwnd
    assert h.conn.cc.cwnd > cwnd and h.conn.sndbuf_cap == SNDBUF_CWNDS * h.conn.cc.cwnd


# ------------------------------------------------------------------ the budget
def test_pressure_prunes_out_of_order_data_and_keeps_windows_small():
    """Above 2/3 of the limit: the out-of-order queue is emptied (RFC 2018 8 reneging, Linux
    tcp_prune_ofo_queue), a new out-of-order segment is dropped, and the window offered beyond
    what is buffered is at most four segments."""
    h = TcpHarness(sack=True, **SMALL)
    h.established(syn_options=WS + [("SAckOK", b"")])
    sink = traced(h)
    mem = h.host.tcp.memory
    feed(h, 2)                                    # the ACK offers the 1 MiB window
    far = s32(h.p_nxt + 250_000)
    h.send(h.seg("PA", seq=far, load=b"o" * 1000))
    assert h.conn.reasm and h.conn.ofo_bytes == 1000
    dup = acks(h)[-1]
    assert dup.options["SAck"] == [(far, s32(far + 1000))]
    feed(h, 136)                                  # 201,480 octets in order: pressure
    assert mem.pressure and not mem.over_limit
    assert h.conn.reasm                           # pruned when the next out-of-order segment comes
    h.send(h.seg("PA", seq=s32(h.p_nxt + 30_000), load=b"o" * 1000))
    assert not h.conn.reasm and h.conn.ofo_bytes == 0
    dup = acks(h)[-1]
    assert dup.tcp.ack == h.p_nxt and "SAck" not in dup.options
    assert [e["reason"] for e in sink.of("drop")] == ["ofo_prune_pressure", "ofo_mem_pressure"]
    edge = dup.tcp.ack + (dup.tcp.window << 5)    # the right edge offered (scale 5 for 1 MiB)
    h.app_recv(4 * MSS)                           # a read frees four segments' worth of buffer ...
    feed(h, 2)
    h.advance(h.config.delack)
    ack = acks(h)[-1]
    assert ack.tcp.ack == h.p_nxt
    # ... but the right edge stays, up to the 32-octet rounding of the scaled field (under pressure no
    # growth beyond RCV.NXT + 4 segments; without pressure it would move on by about 4 * MSS)
    assert 0 <= ack.tcp.ack + (ack.tcp.window << 5) - edge < 32


def test_hard_limit_drops_new_data_and_recovers_after_pressure_ends():
    """Above the limit a data segment is dropped (counted, reason mem_limit) and ACKed with RCV.NXT
    unchanged; once the app reads and the budget falls below the low mark, data flows again."""
    h = TcpHarness(**SMALL)
    h.established(syn_options=WS)
    sink = traced(h)
    mem = h.host.tcp.memory
    feed(h, 206)                                  # 300,760 octets: over the limit
    h.drain()
    assert mem.over_limit
    rcv_nxt, drops = h.conn.rcv_nxt, h.conn.stats["drops"]
    h.send(h.seg("PA", load=b"x" * MSS))
    assert h.conn.rcv_nxt == rcv_nxt and h.conn.stats["drops"] == drops + 1
    assert sink.of("drop")[-1]["reason"] == "mem_limit"
    h.expect(flags="A", ack=rcv_nxt)              # the ACK tells the peer where we are
    h.expect_nothing()
    h.app_recv()                                  # everything read: the budget empties
    assert mem.used == 0 and not mem.pressure
    h.send(h.seg("PA", load=b"x" * MSS))          # the peer's retransmission is taken
    assert h.conn.rcv_nxt == s32(rcv_nxt + MSS)
    h.advance(h.config.delack)
    h.expect(flags="A", ack=h.conn.rcv_nxt)


def test_over_the_limit_a_connection_keeps_its_guaranteed_minimum():
    """Linux tcp_rmem[0]/tcp_wmem[0]: with an empty receive buffer a segment is taken even above
    the limit; send() takes up to 4 KiB into an empty send buffer and nothing beyond it."""
    h = TcpHarness(**SMALL)
    h.established(syn_options=WS)
    feed(h, 206)
    h.host.tcp.memory.charge(0)
    assert h.host.tcp.memory.over_limit
    assert h.app_send(b"s" * 10_000) == GUARANTEED
    assert h.conn.send_space() == 0 and h.app_send(b"s") == 0   # a blocking send() waits here
    h2_before = h.host.tcp.memory.used
    h.app_recv()
    assert h.host.tcp.memory.used == h2_before - 206 * MSS


def test_zero_window_and_full_budget_still_ack_and_probe():
    """Nothing wedges at the limit: our zero-window probes (at SND.UNA-1) go out on the persist
    timer, the peer's probes are ACKed, and an ACK that opens the peer's window lets data out."""
    h = TcpHarness(**SMALL)
    h.established(window=0, syn_options=WS)
    assert h.app_send(b"q" * 3000) == 3000 and not [e for e in h.drain() if e.payload]
    feed(h, 206, window=0)                        # the last few are dropped: over the limit
    h.drain()
    assert h.host.tcp.memory.over_limit and h.conn.stats["drops"] > 0
    peer_snd_nxt, h.p_nxt = h.p_nxt, h.conn.rcv_nxt  # the peer resends the dropped octets later
    h.advance_to(h.conn.timers.persist)
    probe = h.expect(flags="A", seq=s32(h.iss), length=0)
    assert probe.tcp.ack == h.p_nxt
    h.send(h.seg("A", seq=s32(h.p_nxt - 1), window=0))  # the peer's probe at RCV.NXT-1
    h.expect(flags="A", seq=s32(h.iss + 1), ack=h.p_nxt)
    h.send(h.seg("A", seq=peer_snd_nxt, window=65535))  # the peer opens its window
    data = [e for e in h.drain() if e.payload]
    assert data[0].tcp.seq == s32(h.iss + 1) and [len(e.payload) for e in data] == [MSS, MSS]  # Nagle: 80 wait
