"""docs/labs/03-flow-control.md: every block prints what the lab shows; every claim holds."""
from __future__ import annotations

import json

import pytest

from labdoc import LANGS, Lab, run_shell, unique_tun
from scapy.layers.inet import IP, TCP
from scapy.utils import rdpcap
from stack.apps.servers import FileHandler
from stack.link.memory import SocketPairLink
from stack.runtime.stack import Stack
from stack.sim import Simulation
from stack.socket import IPPROTO_TCP, TCP_NODELAY
from stack.tcp.config import TcpConfig
from stack.tcp.states import State
from stack.trace import ListSink, Tracer
from stack.wire.ipv4 import parse_ipv4
from stack.wire.tcp import ACK, SYN, TcpSegment, parse_tcp

NAME = "03-flow-control.md"
LAB = Lab(NAME)  # the English page: its block ids (the twins' blocks are equal: test_translations.py)


@pytest.fixture(scope="module", params=LANGS)
def lab(request):
    """The lab in each language: every check below runs on the English page and on its translation."""
    return Lab(NAME, request.param)
MSS = 1448


@pytest.fixture(scope="module")
def s(lab):
    return lab.run()


@pytest.mark.parametrize("block", LAB.output_ids())
def test_each_block_prints_what_the_lab_shows(lab, s, block):
    assert s.out[block] == lab.output(block)


def packets(log, conn):
    """(t, 'a>b'|'b>a', seq, ack, window in bytes, len) with relative numbers, as show() prints."""
    out = []
    for t, raw in log:
        ip, payload = parse_ipv4(raw)
        seg = parse_tcp(payload)
        a2b = ip.src == conn.local[0]
        me, peer = (conn.iss, conn.irs) if a2b else (conn.irs, conn.iss)
        shift = 0 if seg.flags & SYN else (conn.rcv_wscale if a2b else conn.snd_wscale)
        out.append((round(t, 6), "a>b" if a2b else "b>a", (seg.seq - me) % 2**32, (seg.ack - peer) % 2**32,
                    seg.window << shift, len(seg.payload)))
    return out


@pytest.fixture(scope="module")
def zw(lab):
    """Parts 2 to 4 alone."""
    return lab.run(["setup", "window", "fill", "fill-events", "update"]).ns


# ------------------------------------------------------------ 2. the window
def test_syn_ack_offers_the_whole_buffer_unscaled(zw):
    synack = parse_tcp(parse_ipv4(zw["log"][1][1])[1])
    assert synack.window == 14480 == 10 * MSS == zw["b"].rcvbuf_cap
    assert synack.wscale == 0 and zw["b"].rcv_wscale == 0 and 14480 < 0xFFFF


# ------------------------------------------------------------ 3. zero window, persist
def test_initial_window_fills_the_buffer_and_the_ack_closes_it(lab, zw):
    p = packets(zw["log"], zw["a"])
    first = [x for x in p if x[1] == "a>b" and x[5] and x[0] == 0.015]
    assert len(first) == 10
    assert [x for x in p if x[1] == "b>a" and x[0] == 0.020] == [(0.020, "b>a", 1, 14481, 0, 0)]
    a = lab.run(["setup", "window", "fill"]).ns["a"]  # as it is at 5 s, before the read
    assert a.cc.cwnd > 10 * MSS                      # cwnd would allow more
    assert len(a.sndbuf) == 50_000 - 14480 == 35520  # waiting in the send buffer


def test_persist_probes_back_off_from_the_rto(zw):
    probes = [e for e in zw["sink"].of("persist_probe")]
    assert [e["t"] for e in probes] == [0.225, 0.625, 1.425, 3.025]
    times = [0.025] + [e["t"] for e in probes]
    assert [round(b - a, 6) for a, b in zip(times, times[1:])] == [0.2, 0.4, 0.8, 1.6]
    assert zw["a"].rtt.current_rto() == 0.2 and TcpConfig().persist_max == 60.0
    a = zw["a"]
    # every probe: the same empty segment at SND.UNA - 1 (14480; SND.UNA is 14481), on the wire too
    assert {(e["seq"] - a.iss) % 2**32 for e in probes} == {14480} and {e["len"] for e in probes} == {0}
    sent = [x for x in packets(zw["log"], a) if x[1] == "a>b" and 0.2 < x[0] < 5.0]
    assert sent == [(t, "a>b", 14480, 1, 4194304, 0) for t in (0.225, 0.625, 1.425, 3.025)]
    # b finds each one unacceptable (left of its window) and answers with its window, still 0
    assert [(e["t"], (e["seq"] - a.iss) % 2**32, e["len"]) for e in zw["sink"].of("window_probe_in")] == \
        [(t + 0.005, 14480, 0) for t in (0.225, 0.625, 1.425, 3.025)]
    answers = [x for x in packets(zw["log"], a) if x[1] == "b>a" and 0.2 < x[0] < 5.0]
    assert [(x[0], x[3], x[4]) for x in answers] == [(t + 0.005, 14481, 0) for t in (0.225, 0.625, 1.425, 3.025)]


def test_empty_probes_leave_snd_nxt_at_snd_una(lab):
    """'it carries no data, so SND.NXT stays at 14481 and nothing is sent beyond b's window'."""
    ns = lab.run(["setup", "window", "fill"]).ns  # at 5 s, after four probes, before the read
    a, b = ns["a"], ns["b"]
    assert TcpConfig().zero_window_probe == "ack" and a.config.zero_window_probe == "ack"
    assert (a.snd_una - a.iss) % 2**32 == (a.snd_nxt - a.iss) % 2**32 == (b.rcv_nxt - a.iss) % 2**32 == 14481
    assert b.rcv_wnd == 0 and len(b.rcvbuf) == 14480


def test_the_rfc_octet_probe_moves_snd_nxt_past_the_window(lab):
    """The octet block: same times and answers, each probe the byte at 14481 (len=1), SND.NXT 14482,
    one past b's window; b drops the octet but still reads the ACK field on it."""
    ns = lab.run(["setup", "octet"]).ns
    a, b = ns["rfc_a"], ns["rfc_b"]
    assert a.config.zero_window_probe == "octet"
    p = packets(ns["rfc_log"], a)[14:]
    assert p == [(0.225, "a>b", 14481, 1, 4194304, 1), (0.23, "b>a", 1, 14481, 0, 0),
                 (0.625, "a>b", 14481, 1, 4194304, 1), (0.63, "b>a", 1, 14481, 0, 0)]
    assert (a.snd_nxt - a.iss) % 2**32 == 14482 and (b.rcv_nxt - a.iss) % 2**32 == 14481 and b.rcv_wnd == 0
    # at b, a one-octet segment at RCV.NXT against a zero window: its octet is dropped, its ACK goes on
    seg = TcpSegment(a.local[1], a.remote[1], b.rcv_nxt, b.snd_nxt, ACK, 0, b"x")
    assert b._check_sequence(seg, 1.0) is True and seg.payload == b"" and seg.ack == b.snd_nxt
    assert (b.rcv_nxt - a.iss) % 2**32 == 14481
    # the empty probe at SND.UNA - 1 is not acceptable: dropped whole, answered with an ACK
    empty = TcpSegment(a.local[1], a.remote[1], (b.rcv_nxt - 1) % 2**32, b.snd_nxt, ACK, 0)
    assert b._check_sequence(empty, 1.0) is False


def test_persist_interval_is_capped_and_the_sender_never_gives_up():
    """'up to 60 s'; 'the sender never gives up as long as the probes are answered'; answer 2: the
    next probe after 3.025 s comes at 6.225 s."""
    sink = ListSink()
    sim = Simulation(seed=1, tracer=Tracer(sink), config_a=TcpConfig(initial_window=10),
                     config_b=TcpConfig(rcvbuf=10 * MSS))  # as the lab: IW10
    lst = sim.listen(sim.b, 80)
    a = sim.connect(sim.a, 80)
    sim.run(until=1, condition=lambda: lst.readable)
    lst.accept()
    sim.send(sim.a, a, bytes(50_000))
    sim.run(until=1000.0)
    times = [e["t"] for e in sink.of("persist_probe")]
    assert times[4] == 6.225
    gaps = [round(b - a_, 6) for a_, b in zip(times, times[1:])]
    assert max(gaps) == 60.0 and gaps[-3:] == [60.0, 60.0, 60.0]
    assert a.state is State.ESTABLISHED and len(times) > 20


# ------------------------------------------------------------ 4. the window update
def test_window_update_at_once_then_a_full_window_from_snd_una(zw):
    p = packets(zw["log"], zw["a"])
    after = [x for x in p if x[0] >= 5.0]
    assert after[0] == (5.0, "b>a", 1, 14481, 14480, 0)     # a pure ACK, same ack, new window
    data = [x for x in after if x[1] == "a>b"]
    assert [x[0] for x in data] == [5.005] * 10 and data[0][2] == 14481 and {x[5] for x in data} == {MSS}
    assert after[-1] == (5.01, "b>a", 1, 28961, 0, 0)
    assert zw["sink"].of("window_update") == [{"t": 5.0, "ev": "window_update", "conn": zw["b"].name,
                                               "old": 0, "new": 14480}]


def test_receiver_sws_avoidance_waits_for_one_mss():
    """'it waits until the window has grown by at least one MSS (or half the buffer)'."""
    sink = ListSink()
    sim = Simulation(seed=1, tracer=Tracer(sink), config_a=TcpConfig(initial_window=10),
                     config_b=TcpConfig(rcvbuf=10 * MSS))  # as the lab: IW10
    lst = sim.listen(sim.b, 80)
    a = sim.connect(sim.a, 80)
    sim.run(until=1, condition=lambda: lst.readable)
    b = lst.accept()
    sim.send(sim.a, a, bytes(50_000))
    sim.run(until=0.1)
    sim.recv(sim.b, b, 1000)
    sim.run(until=0.15)
    assert sink.of("window_update") == [] and a.snd_wnd == 0
    sim.recv(sim.b, b, MSS - 1000)
    sim.run(until=0.2)
    assert [(e["old"], e["new"]) for e in sink.of("window_update")] == [(0, MSS)]


# ------------------------------------------------------------ 5. a slow reader
def test_one_segment_five_ms_after_each_read(lab, s):
    ns = lab.run(["setup", "slow"]).ns
    sent = ns["sent"]
    assert sent[:10] == [0.015] * 10
    assert sent[10:] == [round(0.105 + 0.1 * i, 3) for i in range(20)]
    assert ns["a"].cc.cwnd == 17376 and ns["a"].cc.grow_only_when_cwnd_limited


def test_reading_twice_as_much_sends_two_segments_per_read(lab):
    """Answer 4."""
    ns = lab.run(["setup", "slow"], edit=lambda id_, code: code.replace("sim.recv(sim.b, b, 1448)",
                                                                         "sim.recv(sim.b, b, 2896)")).ns
    sent = ns["sent"]
    assert sent[10:16] == [0.105, 0.105, 0.205, 0.205, 0.305, 0.305]


# ------------------------------------------------------------ 6. delayed ACK, 7. Nagle
def test_delayed_ack_40ms_and_every_second_full_segment_at_once(lab, s):
    assert TcpConfig().delack == 0.040
    ns = lab.run(["setup", "delack"]).ns
    p = packets(ns["log"][3:], ns["a"])
    acks = [x for x in p if x[1] == "b>a"]
    assert [(x[0], x[3]) for x in acks] == [(0.060, 1449), (0.120, 4345)]
    assert round(0.060 - 0.020, 6) == 0.040 and 0.120 == round(0.115 + 0.005, 6)


def test_nagle_holds_the_second_message_for_the_delayed_ack(lab, s):
    probe = "    show(log, a, start=mark)\n    runs[nodelay] = (log[mark:], a)"
    ns = lab.run(["setup", "nagle"], edit=lambda id_, code: code.replace("    show(log, a, start=mark)", probe)
                 .replace("for nodelay in", "runs = {}\nfor nodelay in")).ns
    runs = {k: [(t, d, seq, ln) for t, d, seq, _, _, ln in packets(log, a)] for k, (log, a) in ns["runs"].items()}
    assert runs[False] == [(0.015, "a>b", 1, 100), (0.060, "b>a", 1, 0), (0.065, "a>b", 101, 100),
                           (0.110, "b>a", 1, 0)]
    assert round(0.065 - 0.016, 6) == 0.049
    assert runs[True] == [(0.015, "a>b", 1, 100), (0.016, "a>b", 101, 100), (0.060, "b>a", 1, 0)]


def test_tcp_nodelay_sets_connection_nodelay_and_the_http_server_uses_it():
    la, lb = SocketPairLink.pair()
    st = Stack(la, "192.0.2.1")
    try:
        sock = st.socket()
        sock.setsockopt(IPPROTO_TCP, TCP_NODELAY, 1)
        sim = Simulation(seed=1)
        conn = sim.connect(sim.a, 80)
        assert not conn.nodelay
        sock._apply_options(conn)
        assert conn.nodelay
    finally:
        st.close()
        la.close()
        lb.close()
    assert FileHandler.disable_nagle_algorithm is True


def test_may_send_small_rule():
    """'a segment smaller than the MSS goes out only when nothing is unacknowledged (or with nodelay),
    or when it is at least half the largest window the peer ever offered'."""
    sim = Simulation(seed=1)
    c = sim.connect(sim.a, 80)
    c.max_snd_wnd = 10000
    assert c._may_send_small(100, 100, 0)                # idle, all queued data fits
    assert not c._may_send_small(100, 100, 500)          # something unacknowledged
    c.nodelay = True
    assert c._may_send_small(100, 100, 500)
    c.nodelay = False
    assert c._may_send_small(5000, 9000, 0) and not c._may_send_small(4999, 9000, 0)


def test_a_sub_mss_window_is_filled_by_the_persist_timer():
    """Part 8 / answer 8: a window below one MSS (and below half the largest) is not used at once;
    the persist timer fires after the RTO (0.2 s) and sends what fits, as a probe (a window that
    is small but not zero is probed with data); once the window is zero, the probes are empty
    segments at SND.UNA - 1."""
    sink = ListSink()
    sim = Simulation(seed=1, tracer=Tracer(sink), config_a=TcpConfig(congestion="newreno", initial_window=10),
                     config_b=TcpConfig(rcvbuf=16384))
    lst = sim.listen(sim.b, 80)
    a = sim.connect(sim.a, 80)
    sim.run(until=1, condition=lambda: lst.readable)
    lst.accept()
    sim.send(sim.a, a, bytes(50_000))
    sim.run(until=1.0)
    small = [e for e in sink.of("snd_wnd") if 0 < e["wnd"] < MSS][0]
    probes = sink.of("persist_probe")
    probe = probes[0]
    assert probe["len"] == small["wnd"] == 456 and probe["backoff"] == 0
    assert round(probe["t"] - small["t"], 6) == 0.2
    zero = [e for e in sink.of("snd_wnd") if e["t"] > probe["t"]]
    assert zero and zero[0]["wnd"] == 0                      # b took the data and closed its window
    una = (probe["seq"] + probe["len"]) % 2**32               # what b acknowledged
    assert a.snd_una == a.snd_nxt == una
    later = probes[1:]
    assert later and [(e["seq"], e["len"]) for e in later] == [((una - 1) % 2**32, 0)] * len(later)
    assert [e["backoff"] for e in probes] == list(range(len(probes)))


# ------------------------------------------------------------ 8. the real thing
def test_real_tun_kernel_slow_reader(lab, private_netns, tmp_path):
    lines = []
    tun = unique_tun("lab3t")  # one name for every line of this run
    for line in lab.shell("tun").splitlines():
        if line.startswith(("sudo unshare", "source ", "exit")):
            continue
        lines.append(line.replace("tun0", tun).replace("/tmp/lab3", str(tmp_path / "lab3")))
    res = run_shell("\n".join(lines), tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout.splitlines()
    n = int(out[0].split()[1])
    assert out[0] == f"received {n} bytes" and 150 < n - 100_000 < 300  # the HTTP header, then the file
    events = [json.loads(line) for line in out[1:]]
    wnds = [e for e in events if e["ev"] == "snd_wnd"]
    probes = [e for e in events if e["ev"] == "persist_probe"]
    zero = next(i for i, e in enumerate(events) if e["ev"] == "snd_wnd" and e["wnd"] == 0)
    after = [e for e in events[zero:] if e["ev"] == "persist_probe"]
    assert len(after) >= 2 and {e["len"] for e in after} == {0} and len({e["seq"] for e in after}) == 1
    # on the wire (scapy reads the lab's pcap): each empty probe sits at SND.UNA - 1, SND.UNA being
    # what the kernel had acknowledged; the kernel answers with that ACK and a zero window
    wire = [(float(p.time), p[IP].src, p[TCP].seq, p[TCP].ack, p[TCP].window, len(p[TCP].payload))
            for p in (IP(bytes(raw)) for raw in rdpcap(str(tmp_path / "lab3.pcap")))]
    ours = [w for w in wire if w[1] == "192.0.2.2"]
    empty = [i for i, w in enumerate(wire) if w[1] == "192.0.2.2" and w[5] == 0 and w[0] > wire[2][0]
             and w[2] == after[0]["seq"]]
    assert len(empty) == len(after)
    una = max(w[3] for w in wire[:empty[0]] if w[1] == "192.0.2.1")
    assert after[0]["seq"] == (una - 1) % 2**32
    answers = [w for w in wire[empty[0]:] if w[1] == "192.0.2.1" and w[4] == 0]
    assert answers and {w[3] for w in answers} == {una} and answers[0][0] - wire[empty[0]][0] < 0.1
    assert [w[2] for w in ours if w[5] and w[0] > wire[empty[-1]][0]][0] == una  # data resumes at SND.UNA
    assert [e["backoff"] for e in probes] == list(range(len(probes)))
    gaps = [b["t"] - a["t"] for a, b in zip(probes, probes[1:])]
    for g1, g2 in zip(gaps, gaps[1:]):
        assert 1.6 < g2 / g1 < 2.5                          # roughly doubling
    assert wnds[-1]["wnd"] > 0 and wnds[-1]["t"] > probes[-1]["t"]  # the kernel's window update
    before = events[:zero]
    small = [e for e in before if e["ev"] == "snd_wnd" and 0 < e["wnd"] < MSS]
    if small and probes[0]["t"] < events[zero]["t"]:   # as in the example: the sub-MSS window sent by the timer
        assert probes[0]["len"] == small[-1]["wnd"]


def test_receiver_sws_step_is_half_a_small_buffer():
    """'at least one MSS (or by half the buffer, if that is smaller)': a 2048-byte buffer announces
    a window update once 1024 bytes are free."""
    sink = ListSink()
    sim = Simulation(seed=1, tracer=Tracer(sink), config_b=TcpConfig(rcvbuf=2048))
    lst = sim.listen(sim.b, 80)
    a = sim.connect(sim.a, 80)
    sim.run(until=1, condition=lambda: lst.readable)
    b = lst.accept()
    sim.send(sim.a, a, bytes(10_000))
    sim.run(until=0.5)
    assert a.snd_wnd == 0 and len(b.rcvbuf) == 2048
    sim.recv(sim.b, b, 1023)
    sim.run(until=0.55)
    assert sink.of("window_update") == []
    sim.recv(sim.b, b, 1)
    sim.run(until=0.6)
    assert [(e["old"], e["new"]) for e in sink.of("window_update")] == [(0, 1024)]


def test_so_rcvbuf_sets_the_receive_buffer_before_the_handshake():
    """'TcpConfig.rcvbuf, what SO_RCVBUF sets on a socket'."""
    from stack.socket import SO_RCVBUF, SOL_SOCKET
    la, lb = SocketPairLink.pair()
    st = Stack(la, "192.0.2.1")
    try:
        sock = st.socket()
        sock.setsockopt(SOL_SOCKET, SO_RCVBUF, 10 * MSS)
        sim = Simulation(seed=1)
        conn = sim.connect(sim.a, 80)   # in SYN-SENT: still before the SYN-ACK fixes the scale
        sock._apply_options(conn)
        assert conn.rcvbuf_cap == 10 * MSS
    finally:
        st.close()
        la.close()
        lb.close()
