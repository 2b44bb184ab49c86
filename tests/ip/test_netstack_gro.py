"""GRO in the netstack (stack/netstack.py:NetStack.receive_batch, stack/wire/gro.py): a batch of
packets has exactly the effect of the same packets received one by one -- every byte written,
every counter, the receive buffer, the connection's state -- and in-order full-sized data reaches
TCP as one segment per chain."""
from __future__ import annotations

import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stack.wire.tcp import ACK, FIN, PSH, TcpSegment
from stack.wire.tcpip import template_for

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tcp"))
from harness import LOCAL_B, PEER_B, TcpHarness, s32  # noqa: E402  (the packet harness of tests/tcp)

MSS = 1448  # the peer's full-sized segment: MSS 1460 less the timestamp option (RFC 6691)
PEER_TSVAL = 100


def established(**config) -> TcpHarness:
    """A connection with timestamps, SACK and window scaling, as Linux opens one."""
    h = TcpHarness(timestamps=True, sack=True, window_scaling=True, **config)
    h.syn_received(syn_options=h.peer_syn_options(mss=1460, wscale=7, sack=True, tsval=PEER_TSVAL))
    h.our_tsval = h.syn_ack.options["Timestamp"][0]
    h.send(h.seg("A", options=[("Timestamp", (PEER_TSVAL, h.our_tsval))]))
    h.listener.accept()
    h.drain()
    return h


class Peer:
    """Builds the peer's packets (the fast builder: the same bytes scapy makes, tests/wire)."""

    def __init__(self, h: TcpHarness):
        self.h, self.seq, self.tsval, self.window, self.ident = h, h.p_nxt, PEER_TSVAL, 65535, 0
        self.tpl = template_for(PEER_B, LOCAL_B)

    def packet(self, size: int, flags: int = ACK, seq: int | None = None, sport: int | None = None,
               ts: bool = True, tpl=None) -> bytes:
        seq = self.seq if seq is None else seq
        seg = TcpSegment(sport or self.h.pport, self.h.lport, s32(seq), self.h.l_nxt, flags, self.window,
                         bytes([seq & 0xFF, 0x5A]) * (size // 2) + b"z" * (size % 2),
                         tsval=self.tsval if ts else None, tsecr=self.h.our_tsval if ts else None)
        self.ident += 1
        return (tpl or self.tpl).build(seg, self.ident)

    def step(self, op: tuple) -> list[bytes]:
        kind, n = op
        if kind == "data":
            out = [self.packet(n)]
            self.seq = s32(self.seq + n)
        elif kind == "run":  # four of a size: a chain, unless something breaks it
            out = []
            for _ in range(4):
                out.append(self.packet(n))
                self.seq = s32(self.seq + n)
        elif kind == "psh":
            out = [self.packet(n, ACK | PSH)]
            self.seq = s32(self.seq + n)
        elif kind == "gap":
            self.seq = s32(self.seq + n)
            out = []
        elif kind == "old":
            out = [self.packet(MSS, seq=self.seq - n)]
        elif kind == "ack":
            out = [self.packet(0)]
        elif kind == "tick":
            self.tsval = s32(self.tsval + n)
            out = []
        elif kind == "window":
            self.window = n
            out = []
        elif kind == "fin":
            out = [self.packet(n, ACK | FIN)]
            self.seq = s32(self.seq + n + 1)
        elif kind == "no_ts":
            out = [self.packet(n, ts=False)]
            self.seq = s32(self.seq + n)
        elif kind == "other_flow":
            out = [self.packet(MSS, sport=self.h.pport + 1)]
        elif kind == "martian":  # the next data, from a source no one may use (or to another host)
            src, dst = (bytes([127, 0, 0, 1]), LOCAL_B) if n else (PEER_B, bytes([192, 0, 2, 9]))
            out = [self.packet(MSS, tpl=template_for(src, dst))]
        else:  # a corrupted packet: dropped by its checksum
            bad = bytearray(self.packet(MSS))
            bad[-1] ^= 0xFF
            out = [bytes(bad)]
        return out


sizes = st.sampled_from([MSS, MSS, MSS, MSS, 1460, 1000, 1])
ops = st.one_of(
    st.tuples(st.just("data"), sizes), st.tuples(st.just("run"), sizes),
    st.tuples(st.just("psh"), sizes), st.tuples(st.just("gap"), st.sampled_from([1, MSS])),
    st.tuples(st.just("old"), st.sampled_from([MSS, 100])), st.tuples(st.just("ack"), st.just(0)),
    st.tuples(st.just("tick"), st.sampled_from([1, 2 ** 31 + 5])),
    st.tuples(st.just("window"), st.sampled_from([65535, 1000, 0])), st.tuples(st.just("fin"), sizes),
    st.tuples(st.just("no_ts"), sizes), st.tuples(st.just("other_flow"), st.just(0)),
    st.tuples(st.just("martian"), st.sampled_from([0, 1])),
    st.tuples(st.just("corrupt"), st.just(0)))


def run(script, cuts, batched: bool, config: dict):
    """Feed the packets of ``script`` in batches (cut after the packets in ``cuts``); return what
    the host wrote after each batch and after the timers, and every piece of state we compare."""
    h = established(**config)
    peer = Peer(h)
    packets = [p for op in script for p in peer.step(op)]
    written = []
    batches, start = [], 0
    for cut in sorted({c % (len(packets) + 1) for c in cuts}) + [len(packets)]:
        batches.append(packets[start:cut])
        start = cut
    for batch in batches:
        if batched:
            h.host.receive_batch((p for p in batch), h.now)  # read as it goes, as the runtime hands it over
        else:
            for packet in batch:
                h.host.receive(packet, h.now)
        written.append([bytes(p) for p in h.host.take_output(h.now)])
        h.now += 0.001
    h.advance(1.0)  # the delayed ACK and whatever else the timers owe
    written.append([bytes(p) for p in h.host.take_output(h.now)])
    conn = h.conn
    state = {k: getattr(conn, k) for k in ("state", "rcv_nxt", "rcv_adv", "ts_recent", "last_ack_sent",
                                           "unacked_segs", "ack_now", "snd_wnd", "ofo_bytes")}
    closed = h.conn_for(h.pport + 1)
    return (written, bytes(conn.rcvbuf), state, conn.reasm.sack_blocks(4), dict(conn.stats),
            dict(h.host.stats), dict(h.host.tcp.stats), None if closed is None else closed.state)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ops, min_size=1, max_size=60), st.lists(st.integers(0, 200), max_size=4),
       st.sampled_from([{}, {"rcvbuf": 8192}, {"mem_limit": 30000}]))
def test_a_batch_has_exactly_the_effect_of_its_packets_one_by_one(script, cuts, config):
    """Whatever the packets (gaps, retransmissions, PSH, FIN, other flows, martian sources, other
    hosts, corrupted, window and timestamp changes, a full window, memory pressure), GRO changes no
    byte written and no state."""
    assert run(script, cuts, True, config) == run(script, cuts, False, config)


def test_in_order_full_sized_data_reaches_tcp_as_one_segment(monkeypatch):
    """Ten in-sequence full-sized segments with one timestamp: one segment for TCP (gso_size: the MSS),
    counted as ten packets and ten segments; one ACK for the batch."""
    h = established()
    peer = Peer(h)
    packets = [p for _ in range(10) for p in peer.step(("data", MSS))]
    seen = []
    arrives = h.host.tcp.segment_arrives
    monkeypatch.setattr(h.host.tcp, "segment_arrives", lambda src, dst, seg, now: (
        seen.append((seg.seq, len(seg.payload), seg.gso_size)), arrives(src, dst, seg, now)))
    ip_in, segs_in = h.host.stats["ip_in"], h.conn.stats["segs_in"]
    h.host.receive_batch(packets, h.now)
    h._collect()
    assert seen == [(h.p_nxt, 10 * MSS, MSS)]
    assert h.host.stats["ip_in"] - ip_in == 10 and h.conn.stats["segs_in"] - segs_in == 10
    assert bytes(h.conn.rcvbuf) == b"".join(p[52:] for p in packets)
    h.expect(flags="A", ack=h.p_nxt + 10 * MSS)
    h.expect_nothing()


def test_what_the_fast_path_would_not_take_whole_goes_packet_by_packet(monkeypatch):
    """A chain after a hole (out of order) reaches TCP as its packets: each draws its duplicate ACK
    (RFC 5681 4.2), as without GRO."""
    h = established()
    peer = Peer(h)
    peer.step(("gap", MSS))
    packets = [p for _ in range(3) for p in peer.step(("data", MSS))]
    seen = []
    arrives = h.host.tcp.segment_arrives
    monkeypatch.setattr(h.host.tcp, "segment_arrives", lambda src, dst, seg, now: (
        seen.append(len(seg.payload)), arrives(src, dst, seg, now)))
    h.host.receive_batch(packets, h.now)
    h._collect()
    assert seen == [MSS, MSS, MSS]
    assert [e.tcp.ack for e in h.drain()] == [h.p_nxt] * 3
