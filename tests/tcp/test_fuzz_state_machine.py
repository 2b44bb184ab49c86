"""Hostile segments in every state: the TCP core never raises and keeps its invariants.

hypothesis drives a connection (passive or active open) with arbitrary segments (any flags,
sequence and acknowledgment numbers near and far from the expected ones, any window, any
options, data) interleaved with user calls and timer expiries, in virtual time.
"""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stack.netstack import NetStack as Host
from stack.tcp.config import TcpConfig
from stack.tcp.isn import FixedIsn
from stack.tcp.seq import seq_diff, seq_le
from stack.tcp.states import State
from stack.wire.ipv4 import aton, build_ipv4
from stack.wire.tcp import TcpSegment, build_tcp, tcp_header_len

LOCAL, PEER = aton("192.0.2.2"), aton("192.0.2.1")
ISS = 0xFFFFFF00  # close to the wrap on purpose

flags_st = st.integers(0, 0x3F)
offset_st = st.one_of(st.integers(-3, 3), st.integers(-70000, 70000), st.integers(0, 0xFFFFFFFF))
segment_st = st.fixed_dictionaries({
    "flags": flags_st,
    "seq_off": offset_st,
    "ack_off": offset_st,
    "window": st.integers(0, 0xFFFF),
    "payload": st.binary(max_size=3000),
    "mss": st.none() | st.integers(0, 0xFFFF),
    "wscale": st.none() | st.integers(0, 20),
    "sack_perm": st.booleans(),
    "ts": st.none() | st.tuples(st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF)),
    "sack": st.none() | st.lists(st.tuples(offset_st, st.integers(0, 5000)), max_size=4),
    "urg": st.integers(0, 0xFFFF),
})
action_st = st.one_of(
    st.tuples(st.just("seg"), segment_st),
    st.tuples(st.just("send"), st.binary(min_size=1, max_size=5000)),
    st.tuples(st.just("recv"), st.integers(1, 10000)),
    st.tuples(st.just("time"), st.floats(0.0, 200.0)),
    st.tuples(st.just("close"), st.none()),
    st.tuples(st.just("shutdown"), st.none()),
    st.tuples(st.just("abort"), st.none()),
)


def _packet(conn_view, spec, peer_port, local_port) -> bytes:
    base_seq, base_ack = conn_view
    seg = TcpSegment(peer_port, local_port, (base_seq + spec["seq_off"]) & 0xFFFFFFFF,
                     (base_ack + spec["ack_off"]) & 0xFFFFFFFF, spec["flags"], spec["window"],
                     spec["payload"], urg=spec["urg"], mss=spec["mss"], wscale=spec["wscale"],
                     sack_perm=spec["sack_perm"])
    if spec["ts"] is not None:
        seg.tsval, seg.tsecr = spec["ts"]
    if spec["sack"]:
        seg.sack = [((base_ack + o) & 0xFFFFFFFF, (base_ack + o + n) & 0xFFFFFFFF) for o, n in spec["sack"]]
    while seg.sack and tcp_header_len(seg) > 60:
        seg.sack = seg.sack[:-1]  # keep within the 40 octets of option space
    body = build_tcp(seg, PEER, LOCAL)
    return build_ipv4(PEER, LOCAL, 6, len(body)) + body


def _invariants(conn) -> None:
    if conn.state is State.CLOSED:
        return
    assert seq_le(conn.snd_una, conn.snd_nxt) and seq_le(conn.snd_nxt, conn.snd_max)
    assert seq_diff(conn.snd_max, conn.snd_una) <= len(conn.sndbuf) + 2  # data + SYN + FIN at most
    assert conn.rcv_wnd >= 0
    assert len(conn.rcvbuf) <= conn.rcvbuf_cap + (1 << conn.rcv_wscale)
    assert conn.cc.cwnd >= conn.eff_mss // 2 and conn.eff_mss > 0
    blocks = conn.reasm.blocks()
    for a, b in zip(blocks, blocks[1:]):
        assert seq_diff(b[0], a[0]) > len(a[1])  # disjoint, sorted, not adjacent


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(active=st.booleans(), options=st.booleans(), actions=st.lists(action_st, min_size=5, max_size=60))
def test_any_segments_any_state_never_raise(active, options, actions):
    config = TcpConfig(timestamps=options, sack=options, window_scaling=options, rcvbuf=65536,
                       sndbuf=65536, retries2=4, syn_retries=3, msl=5.0)
    host = Host(LOCAL, 1500, config, isn=FixedIsn(ISS))
    now = 0.0
    peer_port, local_port = 40000, 80
    if active:
        conn = host.tcp.connect((LOCAL, local_port), (PEER, peer_port), now)
        host.tcp.touch(conn, now)
    else:
        host.tcp.listen(LOCAL, local_port, 4)
        syn = _packet((1000, 0), {"flags": 0x02, "seq_off": 0, "ack_off": 0, "window": 65535, "payload": b"",
                                  "mss": 1460, "wscale": 7 if options else None, "sack_perm": options,
                                  "ts": (1, 0) if options else None, "sack": None, "urg": 0},
                      peer_port, local_port)
        host.receive(syn, now)
        conn = host.tcp.conns[(LOCAL, local_port, PEER, peer_port)]
    host.take_output(now)
    for kind, arg in actions:
        if kind == "seg":
            host.receive(_packet((conn.rcv_nxt, conn.snd_nxt), arg, peer_port, local_port), now)
        elif kind == "time":
            now += arg
            host.on_timers(now)
        elif kind == "send":
            conn.send(arg, now)
        elif kind == "recv":
            conn.recv(arg, now)
        elif kind == "close":
            conn.close(now)
        elif kind == "shutdown":
            conn.shutdown_write(now)
        elif kind == "abort":
            conn.abort(now)
        host.tcp.touch(conn, now)
        for packet in host.take_output(now):
            assert packet[9] in (1, 6)
        _invariants(conn)
        nd = host.next_deadline()
        assert nd is None or nd >= 0
