"""Compact TIME-WAIT records (stack/tcp/timewait.py): once a connection's last ACK is out, the layer's table
holds a small record instead of the Connection; it answers by RFC 9293 3.10.7.4's TIME-WAIT rules exactly as
the Connection would (checked segment by segment against the Connection's own code), and the Connection is
freed when nobody else holds it. (tests/tcp/test_rfc9293_*.py run their TIME-WAIT tests through it too.)"""
import gc
import sys
import weakref

import pytest
from scapy.layers.inet import TCP

from harness import ANY, TcpHarness, s32
from stack.tcp.states import State
from stack.tcp.timewait import TimeWaitRecord
from stack.trace import ListSink, Tracer
from stack.wire.tcp import parse_tcp

TS_SYN = [("MSS", 1460), ("Timestamp", (100, 0))]


def time_wait(**kw) -> tuple[TcpHarness, TimeWaitRecord]:
    h = TcpHarness(timestamps=True, **kw)
    h.time_wait(syn_options=TS_SYN)
    (rec,) = h.host.tcp.conns.values()
    assert type(rec) is TimeWaitRecord
    return h, rec


def test_the_table_holds_a_record_and_the_connection_is_freed():
    """The Connection (buffers, RTT, congestion control, recovery) is gone once nothing but the table held it."""
    h, rec = time_wait()
    ref = weakref.ref(h.conn)
    h.conn = None
    gc.collect()
    assert ref() is None and rec.connection is None
    assert h.host.tcp.conns == {rec.key: rec}


def deep_size(obj) -> int:
    """sys.getsizeof of the record and of every field it holds (tuples and their items included)."""
    seen, total, todo = set(), 0, [obj]
    while todo:
        o = todo.pop()
        if id(o) in seen:
            continue
        seen.add(id(o))
        total += sys.getsizeof(o)
        if isinstance(o, TimeWaitRecord):
            todo.extend(getattr(o, name) for name in TimeWaitRecord.__slots__)
        elif isinstance(o, tuple):
            todo.extend(o)
    return total


def test_the_record_is_under_one_kilobyte():
    h, rec = time_wait()
    assert deep_size(rec) < 1024
    assert not hasattr(rec, "__dict__")


def test_many_time_wait_connections_cost_a_record_each():
    """tracemalloc over N sequential connections that end in TIME-WAIT: what stays per connection (record,
    table entries, timer-heap entries) is under 2 KB, a fraction of what it is when the Connections are
    kept alive (here: by the test holding them, as the table did before)."""
    import tracemalloc
    N = 12
    h = TcpHarness()
    h.listen(backlog=8)
    kept = []

    def run(first: int, keep: bool) -> float:
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        for port in range(first, first + N):
            h.pport = port
            h.conn = None
            conn = h.time_wait()
            if keep:
                kept.append(conn)
            del conn
            h.conn = None
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
        return grown / N

    run(20000, False)  # warm caches (first-use allocations)
    per_record = run(21000, False)
    per_connection = run(22000, True)
    assert all(type(c) is TimeWaitRecord for c in h.host.tcp.conns.values())
    assert len(h.host.tcp.conns) == 3 * N
    assert per_record < 2048, f"{per_record:.0f} bytes per TIME-WAIT connection"
    print(f"{per_record:.0f} B per record, {per_connection:.0f} B per kept connection")
    assert per_connection > 3 * per_record, (per_connection, per_record)


def test_retransmitted_fin_is_reacked_with_timestamps_and_2msl_restarted():
    """RFC 9293 3.10.7.4 TIME-WAIT: ACK a retransmitted FIN and restart the 2 MSL timeout; RFC 7323: the ACK
    carries our clock's TSval and TS.Recent (no Connection behind the record any more)."""
    h, rec = time_wait()
    tsval0 = h.syn_ack.options["Timestamp"][0]
    h.conn = None
    gc.collect()
    msl2 = 2 * h.config.msl
    h.send(h.seg("FA", seq=h.p_nxt - 1, options=[("Timestamp", (300, 0))]), at=10.0)
    h.expect(flags="A", seq=h.l_nxt, ack=h.p_nxt, window=65535, at=10.0,
             options={"Timestamp": (s32(tsval0 + 10000), 100)})
    h.expect_nothing()
    h.advance_to(10.0 + msl2 - 0.001)
    assert h.host.tcp.conns == {rec.key: rec}
    h.advance_to(10.0 + msl2)
    assert h.host.tcp.conns == {}
    h.send(h.seg("A"))
    h.expect(flags="R", seq=h.l_nxt)  # RFC 9293 3.10.7.1: the TCB is gone


def test_paws_old_duplicate_is_acked_and_dropped():
    """RFC 7323 5.3: a segment whose TSval is older than TS.Recent is an old duplicate: ACK, drop."""
    h, rec = time_wait()
    h.conn = None
    h.send(h.seg("FA", seq=h.p_nxt - 1, options=[("Timestamp", (50, 0))]), at=5.0)
    h.expect(flags="A", seq=h.l_nxt, ack=h.p_nxt, options={"Timestamp": (ANY, 100)})
    assert rec.deadline == 2 * h.config.msl  # not restarted: PAWS dropped it first


def test_exact_rst_ends_time_wait_and_is_traced():
    """RFC 9293 3.10.7.4 second check, TIME-WAIT: RST at RCV.NXT -> CLOSED, TCB deleted (RFC 1337's
    TIME-WAIT assassination, as the RFC and Linux allow); the trace still shows the state change."""
    h = TcpHarness(timestamps=True)
    sink = ListSink()
    h.host.tcp.tracer = Tracer(sink)
    h.time_wait(syn_options=TS_SYN)
    h.conn = None
    gc.collect()
    h.send(h.seg("R"), at=3.0)
    h.expect_nothing()
    assert h.host.tcp.conns == {}
    last = sink.of("state")[-1]
    assert (last["old"], last["new"], last["t"]) == ("TIME_WAIT", "CLOSED", 3.0)


def test_reopen_from_time_wait_record():
    """RFC 9293 3.10.7.4 / RFC 6191: a new SYN above RCV.NXT at a listening port replaces the record."""
    h, rec = time_wait()
    h.conn = None
    h.send(h.seg("S", seq=h.p_nxt + 100000))
    e = h.expect(flags="SA", ack=h.p_nxt + 100001)
    assert 0 < s32(e.tcp.seq - rec.snd_nxt) < 2**31
    new = h.conn_for(h.pport)
    assert new.state is State.SYN_RECEIVED and h.host.tcp._time_wait == {}


def test_time_wait_table_bound_counts_records():
    """max_time_wait (Linux tcp_max_tw_buckets) bounds the records; beyond it the connection closes at once,
    after its last ACK went out."""
    h = TcpHarness(max_time_wait=1)
    h.listen()
    h.pport = 20001
    h.time_wait()
    h.pport = 20002
    conn = h.fin_wait_2()
    h.send(h.seg("FA"))
    h.expect(flags="A", seq=h.l_nxt, ack=h.p_nxt + 1)
    assert conn.state is State.CLOSED and h.host.tcp.stats["time_wait_overflow"] == 1
    assert len(h.host.tcp.conns) == 1


# ----------------------------------------------------------------- the record agrees with the Connection
def _segments(h: TcpHarness) -> dict:
    p, l = h.p_nxt, h.l_nxt
    ts = lambda v: [("Timestamp", (v, 0))]
    return {
        "retransmitted FIN": h.seg("FA", seq=p - 1),
        "retransmitted FIN, newer TS": h.seg("FA", seq=p - 1, options=ts(500)),
        "FIN at RCV.NXT": h.seg("FA", seq=p),
        "bare ACK": h.seg("A"),
        "bare ACK, TS": h.seg("A", options=ts(500)),
        "old TS (PAWS)": h.seg("A", options=ts(50)),
        "old data": h.seg("PA", seq=p - 20, load=b"x" * 10),
        "data in window": h.seg("PA", load=b"late"),
        "data beyond window": h.seg("PA", seq=p + 70000, load=b"far"),
        "ACK of unsent": h.seg("A", ack=l + 10),
        "ACK too old": h.seg("A", ack=l - 100000),
        "RST exact": h.seg("R"),
        "RST in window": h.seg("R", seq=p + 5),
        "RST out of window": h.seg("R", seq=p + 100000),
        "RST,ACK exact": h.seg("RA"),
        "old SYN": h.seg("S", seq=p - 10),
        "SYN in window": h.seg("S", seq=p + 5),
        "SYN,ACK": h.seg("SA", seq=p + 5),
        "no flags": h.seg("", seq=p, load=b"?"),
        "URG data": h.seg("UA", load=b"u", urgptr=1),
    }


NAMES = list(_segments(TcpHarness()).keys())


def _wire(tcp: TCP):
    return parse_tcp(bytes(tcp))


def _fields(seg) -> tuple:
    return (seg.seq, seg.ack, seg.flags, seg.window, seg.tsval, seg.tsecr, bytes(seg.payload))


@pytest.mark.parametrize("timestamps", [False, True])
@pytest.mark.parametrize("name", NAMES)
def test_record_answers_like_the_connection(name, timestamps):
    """Differential: the same segment, 7 s into TIME-WAIT (an active opener's: no listener to reopen it),
    given to the record (through the layer) and to the Connection's own RFC 9293 code, in a second identical
    harness: the same reply (every field), the same end (closed or not) and the same 2 MSL deadline."""
    h = TcpHarness(timestamps=timestamps)
    conn = h.time_wait(active=True, syn_ack_options=TS_SYN if timestamps else None)  # no listener: no reopen
    (rec,) = h.host.tcp.conns.values()
    assert rec.connection is conn and conn.state is State.TIME_WAIT
    tcp = _segments(h)[name]
    h.send(tcp, at=7.0)
    got = [parse_tcp(bytes(e.tcp)) for e in h.drain()]
    ended = rec.key not in h.host.tcp.conns
    # the reference: the same segment straight into a Connection in the same TIME-WAIT (a second run)
    ref = TcpHarness(timestamps=timestamps)
    rconn = ref.time_wait(active=True, syn_ack_options=TS_SYN if timestamps else None)
    ref.advance_to(7.0)
    rconn.segment_arrives(_wire(tcp), 7.0)
    rconn.flush(7.0)
    want = list(rconn.outq)
    assert [_fields(s) for s in got] == [_fields(s) for s in want], name
    assert ended == (rconn.state is State.CLOSED), name
    if not ended:
        assert rec.deadline == rconn.timers.time_wait, name
        assert conn.state is State.TIME_WAIT
    else:
        assert conn.state is State.CLOSED
