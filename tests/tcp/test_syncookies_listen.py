"""SYN flood defence at a listener, packet-exact in virtual time: SYN cookies (RFC 4987 3.6, Linux's
encoding in stack/tcp/syncookies.py) once the SYN queue is full, and fewer SYN-ACK retries for old
half-open entries when the queue is under pressure (Linux reqsk_timer_handler)."""
import pytest

from harness import ANY, LOCAL_B, PEER_B, PEER_ISN, TcpHarness, s32
from stack.tcp.states import State
from stack.tcp.syncookies import MAX_AGE, TICK, SynCookies, decode_ts

FLOOD_PORTS = range(41000, 41006)


def flooded(n_queue: int = 2, backlog: int = 8, **options) -> TcpHarness:
    """A listener whose SYN queue (``n_queue`` entries) is full of half-open connections."""
    h = TcpHarness(syn_backlog=n_queue, **options)
    h.listen(backlog=backlog)
    for port in range(39000, 39000 + n_queue):
        h.send(h.seg("S", seq=PEER_ISN, sport=port, options=[("MSS", 1460)]))
        h.expect(flags="SA", dport=port)
    assert len(h.listener.syn_queue) == n_queue
    return h


def oracle(h: TcpHarness) -> SynCookies:
    """An independent SynCookies with the layer's secret (drawn from the stack's seeded rng)."""
    return SynCookies(h.host.tcp.cookies.secret)


def cookie_for(h: TcpHarness, sport: int, mss: int, peer_isn: int = PEER_ISN) -> int:
    return oracle(h).make_isn(PEER_B, sport, LOCAL_B, 80, peer_isn, mss, h.now)[0]


SYN_OPTS = [("MSS", 1400), ("SAckOK", b""), ("Timestamp", (777, 0)), ("WScale", 5)]


def test_flood_past_the_syn_queue_gets_cookie_syn_acks_and_no_state():
    """RFC 4987 3.6: with the SYN queue full, each SYN is answered by a SYN-ACK whose ISN is the cookie
    (MSS 1400 -> table value 1300) and the listener keeps nothing: no connection, no timer, no retransmission."""
    h = flooded(timestamps=True, sack=True, window_scaling=True)
    before = dict(h.host.tcp.conns)
    for port in FLOOD_PORTS:
        h.send(h.seg("S", seq=PEER_ISN, sport=port, options=SYN_OPTS))
        e = h.expect(flags="SA", dport=port, seq=cookie_for(h, port, 1300), ack=PEER_ISN + 1, window=65535,
                     options={"MSS": 1460, "SAckOK": True, "WScale": 7, "Timestamp": (ANY, 777)})
        tsval = e.options["Timestamp"][0]
        assert decode_ts(tsval) == (5, True)  # the peer's window scale and SACK-permitted, in the TSval
    h.expect_nothing()
    assert h.host.tcp.conns == before
    assert len(h.listener.syn_queue) == 2
    assert h.host.tcp.stats["syncookies_sent"] == len(FLOOD_PORTS)
    assert h.listener.stats["syncookies_sent"] == len(FLOOD_PORTS)
    h.advance(0.9)  # the two queued embryos retransmit at 1 s; the cookie answers never do
    h.expect_nothing()


def _cookie_handshake(h: TcpHarness, sport: int, syn_opts, ack_opts=None, load: bytes = b"", ack_at=0.05):
    h.pport = sport
    h.send(h.seg("S", seq=PEER_ISN, options=syn_opts))
    synack = h.expect(flags="SA", ack=PEER_ISN + 1)
    h.l_nxt = s32(synack.tcp.seq + 1)
    h.p_nxt = s32(PEER_ISN + 1)
    h.send(h.seg("PA" if load else "A", options=ack_opts(synack) if ack_opts else None, load=load),
           at=h.now + ack_at)
    return synack


def test_valid_cookie_ack_completes_with_the_encoded_options():
    """RFC 4987 3.6: the ACK returning a valid cookie rebuilds the connection as ESTABLISHED on the accept
    queue, with the MSS from the cookie (table value not above the peer's 1400), window scale and
    SACK-permitted from the TSval's low bits, timestamps on; our data then goes with scaled windows."""
    h = flooded(timestamps=True, sack=True, window_scaling=True)
    synack = _cookie_handshake(h, 42000, SYN_OPTS,
                               ack_opts=lambda sa: [("Timestamp", (800, sa.options["Timestamp"][0]))])
    h.expect_nothing()
    conn = h.listener.accept()
    assert conn is not None and conn.state is State.ESTABLISHED
    assert h.host.tcp.stats["syncookies_recv"] == 1
    assert conn.iss == synack.tcp.seq and conn.irs == PEER_ISN
    assert (conn.snd_mss, conn.snd_wscale, conn.rcv_wscale) == (1300, 5, 7)
    assert conn.sack_enabled and conn.ts_enabled and conn.ts_recent == 800
    assert conn.eff_mss == 1300 - 12
    assert conn.snd_wnd == 65535 << 5
    assert conn.rtt.srtt == pytest.approx(0.05, abs=0.064)  # RFC 7323: timed by the echo (<= 63 ms early)
    h.conn = conn
    h.app_send(b"hello")
    e = h.expect(flags="PA", seq=synack.tcp.seq + 1, ack=PEER_ISN + 1, payload=b"hello")
    tsval, tsecr = e.options["Timestamp"]
    assert tsecr == 800 and 0 <= (tsval - synack.options["Timestamp"][0]) & 0xFFFFFFFF < 64 + 50
    assert e.tcp.window == (4 << 20) >> 7  # the scaled window after the handshake


def test_cookie_without_timestamps_carries_only_the_mss():
    """Linux: without timestamps a cookie has no room for window scale or SACK, so none is offered in the
    SYN-ACK and the connection has neither; no RTT sample either (when the SYN-ACK left is unknown)."""
    h = flooded(timestamps=True, sack=True, window_scaling=True)
    opts = [("MSS", 1460), ("SAckOK", b""), ("WScale", 5)]
    synack = _cookie_handshake(h, 42001, opts)
    assert synack.options == {"MSS": 1460}
    conn = h.listener.accept()
    assert conn.state is State.ESTABLISHED
    assert (conn.snd_mss, conn.snd_wscale, conn.rcv_wscale) == (1460, 0, 0)
    assert not conn.sack_enabled and not conn.ts_enabled
    assert conn.rtt.srtt is None


def test_forged_ack_gets_rst_and_counts_failed():
    """RFC 9293 3.10.7.2 second check: an ACK in LISTEN that is not a valid cookie -> <SEQ=SEG.ACK><CTL=RST>;
    counted as syncookies_failed; nothing is created."""
    h = flooded()
    h.send(h.seg("S", seq=PEER_ISN, sport=42002, options=[("MSS", 1460)]))
    isn = h.expect(flags="SA", dport=42002).tcp.seq
    h.pport = 42002
    for forged in (isn + 1 + (1 << 24), isn + 2, 0xDEADBEEF):
        h.send(h.seg("A", seq=PEER_ISN + 1, ack=s32(forged)))
        h.expect(flags="R", seq=s32(forged), ack=0)
    h.send(h.seg("A", seq=PEER_ISN + 1001, ack=s32(isn + 1)))  # the right cookie for another peer ISN
    h.expect(flags="R", seq=s32(isn + 1))
    h.expect_nothing()
    assert h.host.tcp.stats["syncookies_failed"] == 4
    assert "syncookies_recv" not in h.host.tcp.stats
    assert h.conn_for(42002) is None and not h.listener.accept_queue


def test_ack_without_recent_cookies_is_not_checked():
    """Linux tcp_synq_no_recent_overflow: a listener that sent no cookie lately answers any ACK with the RFC's
    RST without counting a failed cookie."""
    h = TcpHarness()
    h.listen()
    h.send(h.seg("A", seq=PEER_ISN + 1, ack=1234))
    h.expect(flags="R", seq=1234)
    assert "syncookies_failed" not in h.host.tcp.stats


@pytest.mark.parametrize("ticks,valid", [(MAX_AGE, True), (MAX_AGE + 1, False)])
def test_cookie_is_refused_after_two_ticks(ticks, valid):
    """A cookie is good in the tick (minute) it was made and the MAX_AGE = 2 after it; later it is refused
    (RST, syncookies_failed)."""
    h = TcpHarness(syncookies=2)
    h.listen()
    h.advance_to(30.0)  # the middle of tick 0
    h.pport = 42003
    h.send(h.seg("S", seq=PEER_ISN, options=[("MSS", 1460)]))
    isn = h.expect(flags="SA").tcp.seq
    h.send(h.seg("S", seq=PEER_ISN, sport=42999), at=30.0 + ticks * TICK - 1)  # keeps the listener checking
    h.drain()
    h.send(h.seg("A", seq=PEER_ISN + 1, ack=s32(isn + 1)), at=30.0 + ticks * TICK)
    if valid:
        h.expect_nothing()
        assert h.listener.accept().state is State.ESTABLISHED
    else:
        h.expect(flags="R", seq=s32(isn + 1))
        assert h.host.tcp.stats["syncookies_failed"] == 1 and not h.listener.accept_queue


def test_data_on_the_cookie_ack_is_delivered_and_acked():
    """RFC 9293 3.10.7.4: the handshake-completing ACK may carry data; through a cookie too."""
    h = flooded()
    synack = _cookie_handshake(h, 42004, [("MSS", 1460)], load=b"GET / HTTP/1.0\r\n\r\n")
    conn = h.listener.accept()
    assert conn.state is State.ESTABLISHED and bytes(conn.rcvbuf) == b"GET / HTTP/1.0\r\n\r\n"
    h.advance(h.config.delack)
    h.expect(flags="A", seq=synack.tcp.seq + 1, ack=PEER_ISN + 1 + 18)


def test_cookie_ack_with_full_accept_queue_is_dropped_then_completes():
    """Linux: a valid cookie ACK that finds the accept queue full is dropped (listen_overflow), no RST; the
    cookie still holds, so the peer's retransmission completes once accept() made room."""
    h = flooded(n_queue=1, backlog=1)
    h.pport = 39000
    h.p_nxt, h.l_nxt = s32(PEER_ISN + 1), s32(h.iss + 1)
    h.send(h.seg("A"))  # the queued embryo completes: the accept queue (1) is full
    assert len(h.listener.accept_queue) == 1
    h.send(h.seg("S", seq=PEER_ISN, sport=42005, options=[("MSS", 1460)]))
    h.expect_nothing()  # a SYN finding the accept queue full is dropped (Linux tcp_conn_request)
    h.listener.accept()
    synack = _cookie_handshake(h, 42005, [("MSS", 1460)])  # SYN queue empty now: a normal SYN-ACK...
    assert synack.tcp.seq == h.iss
    h.listener.accept()
    # ...so fill it again and take a cookie, then fill the accept queue before its ACK arrives
    h.send(h.seg("S", seq=PEER_ISN, sport=39500, options=[("MSS", 1460)]))
    h.expect(flags="SA", dport=39500)
    h.send(h.seg("S", seq=PEER_ISN, sport=42006, options=[("MSS", 1460)]))
    isn = h.expect(flags="SA", dport=42006).tcp.seq
    assert isn == cookie_for(h, 42006, 1460)
    h.send(h.seg("A", seq=PEER_ISN + 1, ack=h.iss + 1, sport=39500))
    assert len(h.listener.accept_queue) == 1
    h.send(h.seg("A", seq=PEER_ISN + 1, ack=s32(isn + 1), sport=42006))
    h.expect_nothing()
    assert h.host.tcp.stats["syncookies_recv"] == 1 and h.listener.stats["ack_overflow"] == 1
    assert h.conn_for(42006) is None
    h.listener.accept()
    h.send(h.seg("A", seq=PEER_ISN + 1, ack=s32(isn + 1), sport=42006), at=h.now + 0.2)
    h.expect_nothing()
    conn = h.listener.accept()
    assert conn.remote[1] == 42006 and conn.state is State.ESTABLISHED


def test_syncookies_always():
    """tcp_syncookies = 2: every SYN gets a cookie, even with room in the SYN queue."""
    h = TcpHarness(syncookies=2)
    h.listen()
    h.send(h.seg("S", seq=PEER_ISN, options=[("MSS", 1460)]))
    h.expect(flags="SA", seq=cookie_for(h, h.pport, 1460))
    assert h.host.tcp.conns == {} and not h.listener.syn_queue


def test_syncookies_off_drops_instead():
    h = flooded(syncookies=0)
    h.send(h.seg("S", seq=PEER_ISN, sport=42007))
    h.expect_nothing()
    assert h.host.tcp.stats["listen_overflow"] == 1 and "syncookies_sent" not in h.host.tcp.stats


# ------------------------------------------------------------------------------ pruning old embryos
def test_old_embryos_get_fewer_synack_retries_when_the_queue_fills():
    """Linux reqsk_timer_handler: with the SYN queue more than half full and its entries no longer young
    (their SYN-ACK timed out once), the retries drop from tcp_synack_retries (5) towards 2: the spoofed
    entries of a flood go after 1 + 2 + 4 = 7 s with two retransmissions, not after 63 s with five, until
    the queue is no longer more than half full."""
    h = flooded(n_queue=8, backlog=8)
    h.advance(8.0)
    sent = [round(e.at, 6) for e in h.drain()]
    assert sent == [1.0] * 8 + [3.0] * 8 + [7.0] * 4  # at 7 s: 4 pruned (8 -> 4 = half), 4 go on
    assert len(h.listener.syn_queue) == 4 and len(h.host.tcp.conns) == 4
    assert h.host.tcp.stats["synack_pruned"] == 4 == h.listener.stats["synack_pruned"]


def test_a_lightly_used_queue_keeps_all_synack_retries():
    """Below half full (qlen * 2 <= max(8, backlog)), tcp_synack_retries applies unchanged."""
    h = flooded(n_queue=4, backlog=8)
    h.advance(70.0)
    times = sorted({round(e.at, 6) for e in h.drain()})
    assert times == [1.0, 3.0, 7.0, 15.0, 31.0]
    assert not h.listener.syn_queue and "synack_pruned" not in h.host.tcp.stats


def test_young_entries_keep_their_retries():
    """Half of the room is reserved for young embryos: while enough have not timed out, no cut."""
    h = TcpHarness(syn_backlog=16)
    lst = h.listen(backlog=16)
    for port in range(39000, 39012):
        h.send(h.seg("S", seq=PEER_ISN, sport=port))
    h.drain()
    assert lst.synack_retries(5) == 5  # 12 * 2 > 16, but all 12 are young
    lst.young.clear()
    assert lst.synack_retries(5) == 2


# ------------------------------------------------------------------------------ a flood, end to end
def test_clients_are_served_at_once_during_a_spoofed_flood():
    """The simulator (two stacks, 1 ms each way): 1,200 spoofed SYNs at 10 per ms at a listener with backlog
    16 while a client makes 10 connections in a row. Every client is accepted 1.5 RTT after its connect()
    (its SYN gets a cookie SYN-ACK; its ACK rebuilds the connection), the server holds at most 16
    half-open connections, and once the flood stops the pruned queue empties."""
    from scapy.layers.inet import IP, TCP as ScapyTCP
    from stack.sim import Simulation

    sim = Simulation(seed=3, delay=0.001)
    lst = sim.listen(sim.b, 80, backlog=16)
    flood = [bytes(IP(src=f"198.51.100.{1 + i % 250}", dst="192.0.2.2") /
                   ScapyTCP(sport=1024 + i, dport=80, flags="S", seq=i * 7919, options=[("MSS", 1460)]))
             for i in range(1200)]
    sent = 0
    largest = 0

    def run_until(cond):
        nonlocal sent, largest
        for _ in range(100000):
            if cond():
                return
            due = sent / 10 * 0.001
            sim._flush()
            nxt = sim.next_event()
            if sent < len(flood) and (nxt is None or due <= nxt):
                sim.now = max(sim.now, due)
                for _ in range(10):
                    sim.b.receive(flood[sent], sim.now)
                    sent += 1
            else:
                sim.step()
            largest = max(largest, len(lst.syn_queue))
        raise AssertionError("did not settle")

    handshakes = []
    for _ in range(10):
        start = sim.now
        c = sim.connect(sim.a, 80)
        run_until(lambda: c.state is State.ESTABLISHED and lst.readable)
        handshakes.append(round(sim.now - start, 6))
        s = lst.accept()
        sim.close(sim.b, s)
        run_until(lambda: c.state is State.CLOSE_WAIT)
        sim.close(sim.a, c)
    assert sent < len(flood)  # the clients were served while the flood went on
    assert handshakes == [0.003] * 10
    assert largest == 16
    assert sim.b.tcp.stats["syncookies_recv"] == 10
    run_until(lambda: sent == len(flood))
    sim.run(until=sim.now + 70)
    assert not lst.syn_queue and sim.b.tcp.stats["synack_pruned"] > 0
