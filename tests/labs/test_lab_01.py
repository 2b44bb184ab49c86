"""docs/labs/01-handshake.md: every block runs and prints what the lab shows; every claim holds.

The simulator parts are exact (virtual time, seed 1). The real-TUN part runs the lab's own
shell commands in this run's private network namespace and checks what the lab says is
certain about them (not the times, ports and timestamps, which it says vary).
"""
from __future__ import annotations

import json
import sys

import pytest

from labdoc import LANGS, Lab, run_shell, unique_tun
from stack.pcap import read_pcap
from stack.sim import SIM_BUFFER, Simulation
from stack.tcp.config import TcpConfig
from stack.tcp.isn import IsnGenerator
from stack.tcp.states import State
from stack.wire.ipv4 import parse_ipv4
from stack.wire.tcp import ACK, FIN, PSH, SYN, TcpSegment, parse_tcp, tcp_header_len

NAME = "01-handshake.md"
LAB = Lab(NAME)  # the English page: its block ids (the twins' blocks are equal: test_translations.py)


@pytest.fixture(scope="module", params=LANGS)
def lab(request):
    """The lab in each language: every check below runs on the English page and on its translation."""
    return Lab(NAME, request.param)


@pytest.fixture(scope="module")
def s(lab):
    return lab.run()


def segments(log, start=0):
    """(time, source address, TcpSegment) for each packet of a tap log."""
    out = []
    for t, packet in log[start:]:
        ip, payload = parse_ipv4(packet)
        out.append((t, ip.src, parse_tcp(payload)))
    return out


@pytest.mark.parametrize("block", LAB.output_ids())
def test_each_block_prints_what_the_lab_shows(lab, s, block):
    assert s.out[block] == lab.output(block)


# ------------------------------------------------------------ 2. the handshake
@pytest.fixture(scope="module")
def hs(lab):
    """The handshake part again, alone: (sim, log, client, server)."""
    return lab.run(["setup", "handshake"]).ns


def test_syn_syn_ack_ack_numbers(hs):
    """'SYN: the client's ISS 1194239060, no ACK flag'; 'SYN-ACK: the server's ISS 4252128952,
    ack = client ISS + 1'; 'ACK: seq = client ISS + 1, ack = server ISS + 1'; at 0, 5 and 10 ms."""
    client, server = hs["client"], hs["server"]
    (t1, _, syn), (t2, _, synack), (t3, _, ack) = segments(hs["log"])
    assert (t1, t2, t3) == (0.0, 0.005, 0.010)
    assert syn.flags == SYN and syn.seq == client.iss == 1194239060
    assert synack.flags == SYN | ACK and synack.seq == server.iss == 4252128952
    assert synack.ack == (client.iss + 1) % 2**32 == 1194239061
    assert ack.flags == ACK and ack.seq == client.iss + 1 and ack.ack == server.iss + 1


def test_syn_options_and_the_echo(hs):
    """MSS 1460 = 1500 - 20 - 20; wscale 7; SACK-permitted; TSecr 0 in the SYN; the SYN-ACK repeats
    every option and echoes the client's TSval 2056372524."""
    (_, _, syn), (_, _, synack), _ = segments(hs["log"])
    assert syn.mss == 1500 - 20 - 20 == 1460
    assert syn.wscale == 7 and syn.sack_perm and syn.tsecr == 0 and syn.tsval == 2056372524
    assert (synack.mss, synack.wscale, synack.sack_perm) == (1460, 7, True)
    assert synack.tsecr == syn.tsval


def test_window_field_is_scaled_by_seven_except_in_syns(hs):
    """'the field carries 32768 and both sides agreed to shift it by 7 (32768 x 2^7 = 4 MiB, the
    receive buffer). The SYNs' own window fields (65535) are never scaled.'"""
    (_, _, syn), (_, _, synack), (_, _, ack) = segments(hs["log"])
    assert syn.window == synack.window == 65535
    assert ack.window == 32768 and 32768 << 7 == 4194304 == 4 << 20 == SIM_BUFFER  # the simulator's fixed buffers
    assert hs["client"].rcv_wscale == hs["client"].snd_wscale == 7
    assert 0xFFFF << 6 < SIM_BUFFER <= 0xFFFF << 7  # 7 is the smallest shift that covers it


def test_isn_is_a_keyed_hash_plus_a_clock():
    """'they are a keyed hash of the addresses and ports plus a clock (RFC 6528)'."""
    a, b = (b"\xc0\x00\x02\x01", 40000), (b"\xc0\x00\x02\x02", 80)
    g = IsnGenerator(secret=bytes(16))
    assert g(a, b, 0.0) == g(a, b, 0.0)
    assert g(a, b, 1.0) - g(a, b, 0.0) == 250_000            # a 4-microsecond clock
    assert g((a[0], 40001), b, 0.0) != g(a, b, 0.0)          # other port, other ISN
    assert IsnGenerator(secret=bytes(15) + b"\1")(a, b, 0.0) != g(a, b, 0.0)  # other key


def test_same_seed_same_isns():
    """'With the seed fixed they are the same every run.'"""
    isns = []
    for _ in range(2):
        sim = Simulation(seed=1)
        isns.append(sim.connect(sim.a, 80).iss)
    assert isns == [1194239060, 1194239060]


def test_effective_mss_is_1460_less_the_12_byte_timestamp_option(hs):
    """'The effective MSS is 1448, not 1460: every segment will carry a 12-byte timestamp option'."""
    seg = TcpSegment(1, 2, 0, 0, ACK, 0, tsval=1, tsecr=2)
    assert tcp_header_len(seg) - 20 == 12
    assert hs["client"].eff_mss == hs["server"].eff_mss == 1460 - 12 == 1448
    client = hs["client"]
    assert client.sack_enabled and client.ts_enabled


# ------------------------------------------------------------ 3. request, answer, teardown
@pytest.fixture(scope="module")
def conv(lab):
    """Parts 2 to 5 alone (later blocks rebind sim, client, log ...)."""
    return lab.run(["setup", "handshake", "conversation", "states", "timewait"]).ns


def test_request_answer_and_four_segment_goodbye(conv):
    client, server, log, mark = (conv[k] for k in ("client", "server", "log", "mark"))
    segs = segments(log, mark)
    ci, si = client.iss, server.iss
    rel = [(round(t, 6), src == client.local[0], seg.flags, (seg.seq - (ci if src == client.local[0] else si)) % 2**32,
            (seg.ack - (si if src == client.local[0] else ci)) % 2**32, len(seg.payload))
           for t, src, seg in segs]
    assert rel == [
        (0.015, True, PSH | ACK, 1, 1, 18),    # the request: seq 1..18
        (0.020, False, PSH | ACK, 1, 19, 25),  # the answer acknowledges it (ack 19): no separate ACK
        (0.025, True, FIN | ACK, 19, 26, 0),   # the client's FIN acknowledges the answer
        (0.030, False, ACK, 26, 20, 0),        # ack 20: the FIN took sequence number 19; sent on arrival
        (0.030, False, FIN | ACK, 26, 20, 0),  # the server's FIN, a separate segment
        (0.035, True, ACK, 20, 27, 0),
    ]
    assert conv["request"] == b"GET / HTTP/1.0\r\n\r\n" and len(conv["request"]) == 18


def test_the_servers_ack_left_before_its_application_closed(lab):
    """'the server's ACK of the client's FIN went out as soon as the FIN arrived, before the
    server's application had called close()': the FIN arrived at 0.030 and the ACK went out in
    that same step, while the application's close() could only come after the step."""
    probe = "acks_before_close = [x for x in log[mark:] if x[0] == sim.now]\nsim.close(sim.b, server)"
    ns = lab.run(["setup", "handshake", "conversation"],
                 edit=lambda id_, code: code.replace("sim.close(sim.b, server)", probe)).ns
    before = [parse_tcp(parse_ipv4(p)[1]) for _, p in ns["acks_before_close"]]
    assert [seg.flags for seg in before] == [ACK] and ns["sim"].now >= 0.030


def test_a_fin_can_ride_on_the_ack_when_the_application_closes_first(lab):
    """Answer 4: 'had the server's application closed before that ACK left, one segment could have
    done both jobs': an application that closes while the FIN is being processed sends one FIN,ACK."""
    ns = lab.run(["setup", "handshake"]).ns
    sim, client, log = ns["sim"], ns["client"], ns["log"]
    server = ns["server"]
    receive = sim.b.receive

    def receive_and_close_at_once(packet, now):
        receive(packet, now)
        if server.rcv_closed and server.state is State.CLOSE_WAIT:
            server.close(now)          # before the step flushes the pending ACK
            sim.b.tcp.touch(server, now)

    sim.b.receive = receive_and_close_at_once
    mark = len(log)
    sim.close(sim.a, client)
    sim.run(until=1)
    flags = [(src == client.local[0], seg.flags) for _, src, seg in segments(log, mark)]
    assert flags == [(True, FIN | ACK), (False, FIN | ACK), (True, ACK)]


# ------------------------------------------------------------ 4. states, 5. TIME-WAIT
def test_states_each_side_visits(conv):
    client, server = conv["client"], conv["server"]
    events = conv["sink"].of("state")
    path = lambda name: [(e["old"], e["new"]) for e in events if e["conn"] == name]
    assert [n for _, n in path(client.name)] == ["SYN_SENT", "ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2",
                                                 "TIME_WAIT", "CLOSED"]
    assert path(server.name) == [("CLOSED", "SYN_RECEIVED"), ("SYN_RECEIVED", "ESTABLISHED"),
                                 ("ESTABLISHED", "CLOSE_WAIT"), ("CLOSE_WAIT", "LAST_ACK"),
                                 ("LAST_ACK", "CLOSED")]
    assert not [e for e in events if "LISTEN" in (e["old"], e["new"])]
    assert all(e["ev"] == "state" for e in events)


def test_time_wait_is_two_msl(s):
    """'This stack's MSL is 30 s'; 'entered TIME_WAIT at 0.035 s and left it at 60.035 s'."""
    events = s.ns["sink"].of("state")  # only the first simulation traced into the sink
    client = events[0]["conn"]          # its first event: the client's connect
    entered = next(e["t"] for e in events if e["conn"] == client and e["new"] == "TIME_WAIT")
    left = next(e["t"] for e in events if e["conn"] == client and e["old"] == "TIME_WAIT")
    assert TcpConfig().msl == 30.0
    assert (entered, left) == (0.035, 60.035) and round(left - entered, 6) == 2 * TcpConfig().msl


# ------------------------------------------------------------ 6. experiments
def test_lost_syn_is_resent_after_the_initial_rto_and_rto_is_then_3s(lab, s):
    """Answer 6: resent at 1.000 s, the initial RTO of 1 s (RFC 6298 2.1); same sequence number;
    RTO 3 s once established (RFC 6298 5.7)."""
    assert TcpConfig().initial_rto == 1.0
    ns = lab.run(["setup", "lostsyn"]).ns
    syns = [(t, seg) for t, _, seg in segments(ns["log"]) if seg.flags == SYN]
    assert [t for t, _ in syns] == [0.0, 1.0]
    assert syns[0][1].seq == syns[1][1].seq == ns["client"].iss
    assert ns["client"].rtt.current_rto() == 3.0


def test_no_options_offered_none_used(lab, s):
    """Answer 7: only MSS in the SYN-ACK; effective MSS 1460; the server's window at most 65535;
    65535 bytes per 100 ms round trip is about 5 Mbit/s."""
    ns = lab.run(["setup", "noopts"]).ns
    synack = segments(ns["log"])[1][2]
    assert synack.flags == SYN | ACK and synack.mss == 1460
    assert synack.wscale is None and not synack.sack_perm and synack.tsval is None
    server = ns["server"]
    assert ns["client"].eff_mss == 1460 and server.rcv_wscale == 0 and server.rcv_wnd == 65535
    assert not server.sack_enabled and not server.ts_enabled
    assert round(65535 * 8 / 0.100 / 1e6, 1) == 5.2


# ------------------------------------------------------------ 7. the real thing
def test_real_tun_curl_against_the_stack(lab, private_netns, tmp_path):
    """The lab's shell commands, run as written (minus sudo/unshare/venv/exit, which the test run
    provides: it is root in its own network namespace), with a unique TUN name and temp files."""
    script = []
    tun = unique_tun("lab1t")
    for line in lab.shell("tun").splitlines():
        if line.startswith(("sudo unshare", "source ", "exit")):
            continue
        script.append(line.replace("tun0", tun).replace("/tmp/lab1", str(tmp_path / "lab1")))
    res = run_shell("\n".join(script), tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == "HTTP 200"
    rows = [line for line in lines if line[:12].strip().replace(".", "").isdigit() and "|" in line]
    syn, synack, ack = rows[:3]
    assert "|-- SYN seq=0 " in syn and "mss=1460 sack_perm ts=" in syn and "wscale=" in syn
    assert "|<" in synack and " SYN-ACK seq=0 ack=1 win=65535 len=0 --|" in synack
    opts = synack.split("|")[-1].split()
    assert opts[:2] == ["mss=1460", "sack_perm"] and opts[3] == "wscale=7"
    client_tsval = [o for o in syn.split("|")[-1].split() if o.startswith("ts=")][0][3:].split("/")[0]
    assert opts[2].startswith("ts=") and opts[2].endswith("/" + client_tsval)
    assert "|-- ACK seq=1 ack=1 " in ack
    # one FIN each way; the page: usually curl's first (the stack is the passive closer), but the two race
    fins = [r for r in rows if "FIN" in r]
    assert len(fins) == 2 and sorted("|<" in f for f in fins) == [False, True]
    client_first = "|-- FIN,ACK" in fins[0]
    stack_fin = fins[1] if client_first else fins[0]
    stack_fin_seq = int(stack_fin.split("seq=")[1].split()[0])
    assert any("|-- " in r and f" ack={stack_fin_seq + 1} " in r for r in rows)  # the client ACKs our FIN
    # the stack's states, from the trace
    states = [(e["old"], e["new"]) for e in (json.loads(line) for line in lines if line.startswith("{"))]
    assert states[:2] == [("CLOSED", "SYN_RECEIVED"), ("SYN_RECEIVED", "ESTABLISHED")]
    if client_first:  # passive close: CLOSE_WAIT -> LAST_ACK -> CLOSED
        assert states[2:] == [("ESTABLISHED", "CLOSE_WAIT"), ("CLOSE_WAIT", "LAST_ACK"), ("LAST_ACK", "CLOSED")]
    else:  # active close: FIN_WAIT_1 -> FIN_WAIT_2 or CLOSING -> TIME_WAIT (the run ends within 2 MSL)
        assert states[2] == ("ESTABLISHED", "FIN_WAIT_1") and states[-1][1] == "TIME_WAIT"
        assert states[3][1] in ("FIN_WAIT_2", "CLOSING")
    # 'the HTTP response header and body went out as separate segments'
    stack_data = []
    for _, packet in read_pcap(str(tmp_path / "lab1.pcap")):
        ip, payload = parse_ipv4(packet)
        seg = parse_tcp(payload)
        if ip.src == bytes([192, 0, 2, 2]) and seg.payload:
            stack_data.append(bytes(seg.payload))
    assert stack_data[0].startswith(b"HTTP/1.") and stack_data[0].endswith(b"\r\n\r\n")
    # '... the body being exactly the 20 bytes of hello.txt'; the header names the Python version
    assert stack_data[1:] == [b"hello from tunstack\n"] and len(stack_data[1]) == 20
    assert b"\r\nServer: SimpleHTTP/" in stack_data[0] and f"Python/{sys.version.split()[0]}".encode() in stack_data[0]
    # the body segment's ladder row shows len=20; the page does not depend on a file in the repo
    assert any("<" in r and " len=20 --|" in r for r in rows)
