"""The bulk sender's fast path (``ConnectionOutput._send_train``) sends exactly what the general path
(``_send_one`` segment by segment) sends: the same datagrams byte for byte, at the same times, and
leaves the same connection state behind. Each scenario runs twice, with trains and with
``_send_train`` switched off, and the two runs are compared; a scenario must produce trains (the
comparison would otherwise say nothing). Checksums: the harness checks every datagram with scapy.
"""
from __future__ import annotations

import pytest

from stack.tcp import output
from stack.tcp.connection import Connection
from stack.tcp.states import State
from stack.trace import ListSink, Tracer
from stack.wire.tcpip import SegmentTrain

from harness import TcpHarness, s32

MSS = 1460


class _CountedTrain:
    """Stands in for the class in stack.tcp.output: makes the real thing and counts."""
    made = with_psh = 0

    def __new__(cls, *args):
        train = SegmentTrain(*args)
        cls.made += 1
        cls.with_psh += train.psh
        return train


def _scenario(timestamps: bool, close_wait: bool, size: int, sack: bool, peer_data: bool):
    """Open, optionally get the peer's FIN (CLOSE-WAIT) or data (an ACK owed), then send ``size``
    octets while the peer acknowledges two segments at a time, opening its window as it goes;
    finally close (the FIN after the data). Returns what was emitted and the state at the end."""
    h = TcpHarness(timestamps=timestamps, sack=sack, window_scaling=True)
    trace = ListSink()
    h.host.tcp.tracer = Tracer(trace)  # the traces must agree too
    h.syn_received(syn_options=h.peer_syn_options(mss=MSS, wscale=2, sack=sack, tsval=100 if timestamps else None))
    ts = [100]

    def peer(flags="A", load=b"", **kw):
        ts[0] += 1
        options = [("NOP", None), ("NOP", None), ("Timestamp", (ts[0], 0))] if timestamps else []
        h.send(h.seg(flags, load=load, options=options, **kw))
    peer()
    conn = h.listener.accept()
    assert conn.state is State.ESTABLISHED and conn.ts_enabled == timestamps
    if peer_data:
        peer("PA", load=b"x" * 300)  # one small segment: its ACK is delayed and rides on the data
        h.p_nxt = s32(h.p_nxt + 300)
    if close_wait:
        peer("FA")
        h.p_nxt = s32(h.p_nxt + 1)
    data = bytes(range(251)) * (size // 251 + 1)
    h.app_send(data[:size])
    emitted = h.drain()
    acked = h.iss + 1
    window = 200000
    for _ in range(400):
        if conn.snd_una == conn.snd_max and not conn.sndbuf:
            break
        h.advance(0.01)
        top = max([e.tcp.seq + len(e.payload) for e in emitted if e.payload] or [acked])  # ISS 1000: no wrap
        acked = min(acked + 2 * MSS, top)
        window = min(window + 3000, 260000)
        peer(ack=acked, window=window >> 2)
        emitted += h.drain()
        if not conn.sndbuf:
            break
    h.app_close()
    emitted += h.drain()
    state = {k: getattr(conn, k) for k in ("snd_una", "snd_nxt", "snd_max", "rcv_adv", "last_ack_sent", "ack_now",
                                            "unacked_segs", "last_send_time")}
    state.update(stats=dict(conn.stats), timers=(conn.timers.rto, conn.timers.delack, conn.timers.pto),
                 sent_times=list(conn.rtx.sampler.sent_times), state=conn.state.name, trace=trace.events)
    return [(e.at, bytes(e.ip)) for e in emitted], state


@pytest.mark.parametrize("timestamps", [False, True])
@pytest.mark.parametrize("close_wait", [False, True])
@pytest.mark.parametrize("tail", [0, 700])  # PSH on a full segment / on a short tail
@pytest.mark.parametrize("sack, peer_data", [(False, False), (True, True)])
def test_trains_send_what_the_general_path_sends(monkeypatch, timestamps, close_wait, tail, sack, peer_data):
    eff_mss = MSS - (12 if timestamps else 0)
    size = 41 * eff_mss + tail  # 41: the last train ends with the data (see the PSH check)
    monkeypatch.setattr(output, "SegmentTrain", _CountedTrain)
    _CountedTrain.made = _CountedTrain.with_psh = 0
    with_trains = _scenario(timestamps, close_wait, size, sack, peer_data)
    assert _CountedTrain.made >= 3, "the scenario must send trains"
    psh_trains = _CountedTrain.with_psh
    monkeypatch.setattr(Connection, "_send_train", lambda self, now: None)
    _CountedTrain.made = 0
    general = _scenario(timestamps, close_wait, size, sack, peer_data)
    assert _CountedTrain.made == 0
    assert with_trains[0] == general[0]
    assert with_trains[1] == general[1]
    assert with_trains[1]["stats"]["bytes_out"] == size
    lengths = [len(raw) - (52 if timestamps else 40) for _, raw in with_trains[0]]
    psh = [n for (_, raw), n in zip(with_trains[0], lengths) if raw[33] & 0x08]
    assert psh[-1] == (tail or eff_mss)  # the last segment of what the user wrote carries PSH
    assert bool(psh_trains) == (tail == 0)  # a train ends with it only when the data does


def test_no_train_after_close_nor_in_recovery(monkeypatch):
    """The FIN never rides in a train: after close (FIN-WAIT-1) the data goes segment by segment, the
    FIN on the last; nor does a train go out during loss recovery."""
    monkeypatch.setattr(output, "SegmentTrain", _CountedTrain)
    _CountedTrain.made = 0
    h = TcpHarness()
    conn = h.listen_and_establish()
    h.app_send(bytes(20 * MSS))
    assert _CountedTrain.made == 1 and len(h.drain()) == 3  # the initial window: one train
    h.app_close()
    assert conn.state is State.FIN_WAIT_1
    h.send(h.seg("A", ack=h.iss + 1 + 3 * MSS))
    out = h.drain()
    assert len(out) == 5 and _CountedTrain.made == 1 and not any("F" in str(e.tcp.flags) for e in out)
    h = TcpHarness()
    conn = h.listen_and_establish()
    conn.sndbuf += bytes(10 * MSS)
    conn.recovery.in_recovery = True
    conn._send_train(h.now)
    assert conn.outq == []
    conn.recovery.in_recovery = False
    conn._send_train(h.now)
    assert [len(t.payloads) for t in conn.outq] == [3]


def test_a_zero_window_to_advertise_sends_no_train(monkeypatch):
    """Our receive buffer is full: every segment says window 0 and traces it, one by one."""
    monkeypatch.setattr(output, "SegmentTrain", _CountedTrain)
    _CountedTrain.made = 0
    h = TcpHarness(rcvbuf=3000)
    trace = ListSink()
    h.host.tcp.tracer = Tracer(trace)
    conn = h.listen_and_establish()
    h.send(h.seg("PA", load=bytes(3000)))
    h.p_nxt = s32(h.p_nxt + 3000)
    h.drain()
    trace.events.clear()
    h.app_send(bytes(6 * MSS))
    out = [e for e in h.drain() if e.payload]
    assert len(out) == 3 and all(e.tcp.window == 0 for e in out)
    assert _CountedTrain.made == 0
    assert len(trace.of("zero_window")) == 3  # one per segment, none for the train that did not go
