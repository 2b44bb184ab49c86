"""Header prediction's pure-ACK path (``ConnectionInput._ack_prediction``: a pure ACK at RCV.NXT that
moves SND.UNA and/or the window) does exactly what RFC 9293 3.10.7.4's general path does for it.

Differential: hypothesis draws a sequence of peer segments (new ACKs with changing windows, window
updates, duplicate ACKs that start fast retransmit, old ACKs, ACKs of unsent data, stale timestamps,
data, an ACK right behind data while ours is delayed, out-of-order data, a zero window), timeouts,
more data from the application and a close; each sequence runs twice, with the fast path and with it switched off, and the two runs must emit the
same datagrams at the same times, leave the same connection state and write the same traces.
"""
from __future__ import annotations

from hypothesis import given, settings, strategies as st

from stack.tcp.connection import Connection
from stack.trace import ListSink, Tracer

from harness import TcpHarness, s32

MSS = 1460
WSCALE = 2  # the peer's window scale: window fields below are in units of 4 octets

KINDS = ["ack", "ack", "ack", "ack", "ack_psh", "window", "dup", "old", "unsent", "stale_ts", "data",
         "data_ack", "ofo", "send", "wait", "zero", "close"]
STEPS = st.lists(st.tuples(st.sampled_from(KINDS), st.integers(0, 12), st.sampled_from([1, 90, 500, 700, 4000])),
                 max_size=24)


def _plain(obj) -> dict:
    fields = vars(obj) if hasattr(obj, "__dict__") else {k: getattr(obj, k) for k in obj.__slots__}
    return {k: v for k, v in fields.items() if isinstance(v, (int, float, str, bool, bytes, tuple, type(None)))}


def _snapshot(conn, trace) -> dict:
    return {"conn": _plain(conn), "timers": _plain(conn.timers), "cc": conn.cc.state_dict(),
            "rtt": (conn.rtt.srtt, conn.rtt.rttvar, conn.rtt.current_rto()), "recovery": _plain(conn.recovery),
            "sacked": list(conn.recovery.sacked), "stats": dict(conn.stats), "state": conn.state.name,
            "sndbuf": bytes(conn.sndbuf), "rcvbuf": bytes(conn.rcvbuf), "trace": list(trace.events)}


def _run(timestamps: bool, sack: bool, steps) -> tuple[list, dict]:
    h = TcpHarness(timestamps=timestamps, sack=sack, window_scaling=True)
    trace = ListSink()
    h.host.tcp.tracer = Tracer(trace)
    h.syn_received(syn_options=h.peer_syn_options(mss=MSS, wscale=WSCALE, sack=sack,
                                                  tsval=100 if timestamps else None))
    ts = [100, 0]  # the peer's TSval, and the last TSval the stack sent (echoed)
    emitted = []

    def collect():
        for e in h.drain():
            emitted.append((e.at, bytes(e.ip)))
            if "Timestamp" in e.options:  # not on a RST
                ts[1] = e.options["Timestamp"][0]

    def peer(flags="A", load=b"", tsval=None, **kw):
        if tsval is None:
            ts[0] += 1
        options = ([("NOP", None), ("NOP", None), ("Timestamp", (ts[0] if tsval is None else tsval, ts[1]))]
                   if timestamps else [])
        h.send(h.seg(flags, load=load, options=options, **kw))
        collect()

    peer(window=65535)
    conn = h.listener.accept()
    h.app_send(bytes(range(256)) * (30 * MSS // 256))
    collect()
    acked, window = conn.snd_una, 65535
    for kind, n, wnd in [("ack", 2, 700)] + steps:  # the first step: a new ACK and a new window
        h.advance(0.003)
        collect()
        if kind in ("ack", "ack_psh"):
            acked = min(s32(acked + n * MSS), conn.snd_max) if n else acked
            window = wnd
            peer("PA" if kind == "ack_psh" else "A", ack=acked, window=window)
        elif kind == "window":
            window = wnd
            peer(ack=acked, window=window)
        elif kind == "dup":
            for _ in range(1 + n % 4):
                peer(ack=acked, window=window)
        elif kind == "old":
            peer(ack=s32(acked - 1 - n * 100), window=window)
        elif kind == "unsent":
            peer(ack=s32(conn.snd_max + 1 + n), window=window)
        elif kind == "stale_ts":
            acked = min(s32(acked + n * MSS), conn.snd_max)
            peer(ack=acked, window=window, tsval=ts[0] - (n % 2))  # the same TSval, or an older one (PAWS)
        elif kind in ("data", "data_ack"):
            load = bytes([n]) * (1 + n * 100)
            peer("PA", load=load, ack=acked, window=window)
            h.p_nxt = s32(h.p_nxt + len(load))
            if kind == "data_ack":  # an ACK right behind it, ours for the data maybe still delayed
                window = wnd
                peer(ack=acked, window=window)
        elif kind == "ofo":
            peer("PA", load=b"o" * 50, seq=s32(h.p_nxt + 200), ack=acked, window=window)
        elif kind == "send":
            h.app_send(bytes([n]) * (n * MSS + 17))
        elif kind == "wait":
            h.advance(0.05 * n)
        elif kind == "zero":
            window = 0
            peer(ack=acked, window=0)
        elif kind == "close":
            h.app_close()
        collect()
    h.app_recv()
    collect()
    return emitted, _snapshot(conn, trace)


@settings(max_examples=50, deadline=None)
@given(timestamps=st.booleans(), sack=st.booleans(), steps=STEPS)
def test_ack_prediction_does_what_the_general_path_does(timestamps, sack, steps):
    real_take, real_predicted = Connection._ack_prediction, Connection._predicted
    taken = []

    def counted(self, seg, now):
        taken.append(seg.ack)
        real_take(self, seg, now)
    try:
        Connection._ack_prediction = counted
        fast = _run(timestamps, sack, steps)
        Connection._predicted = lambda self, seg: bool(seg.payload) and real_predicted(self, seg)
        general = _run(timestamps, sack, steps)
    finally:
        Connection._ack_prediction, Connection._predicted = real_take, real_predicted
    assert taken, "the first ACK (new data acknowledged, a new window) takes the fast path"
    assert fast[0] == general[0]
    assert fast[1] == general[1]


def test_a_window_update_without_new_data_takes_the_fast_path():
    """The slow reader's case: the window moves on an ACK of nothing new; SND.WND follows it at once
    (RFC 9293 3.10.7.4, SND.WL1/SND.WL2 rule), traced as the general path traces it."""
    h = TcpHarness(window_scaling=True)
    trace = ListSink()
    h.host.tcp.tracer = Tracer(trace)
    conn = h.listen_and_establish(syn_options=h.peer_syn_options(wscale=WSCALE))
    h.app_send(bytes(4 * MSS))
    h.drain()
    real, taken = Connection._ack_prediction, []
    try:
        Connection._ack_prediction = lambda self, seg, now: taken.append(seg.ack) or real(self, seg, now)
        h.send(h.seg("A", ack=h.iss + 1, window=900))
    finally:
        Connection._ack_prediction = real
    assert taken == [h.iss + 1]
    assert conn.snd_wnd == 900 << WSCALE and conn.snd_wl2 == h.iss + 1
    assert [e["wnd"] for e in trace.of("snd_wnd")] == [900 << WSCALE]
