"""The whole stack of one host (stack/netstack.py): output pulled in production order, ACKs coalesced
per input batch, the IP layer usable without TCP, a fault in one packet isolated."""
from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest
from scapy.all import ICMP, IP, TCP, IPOption_NOP, Raw, raw

from stack.ip.layer import IpLayer
from stack.netstack import NetStack
from stack.tcp.layer import TcpLayer
from stack.tcp.states import State
from stack.wire import vnet
from stack.wire.ipv4 import aton

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tcp"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "wire"))
from harness import LOCAL, PEER, TcpHarness  # noqa: E402  (the packet harness of tests/tcp)
from wire_helpers import kernel_finish  # noqa: E402  (what the kernel does with a partial checksum)

MSS = 1460


def _segments(h, n: int) -> list[bytes]:
    out = []
    for i in range(n):
        tcp = h.seg("A", seq=h.p_nxt + i * MSS, load=bytes(MSS))
        tcp.sport, tcp.dport = h.pport, h.lport
        out.append(raw(IP(src=PEER, dst=LOCAL) / tcp))
    return out


def test_ten_segments_in_one_batch_draw_one_ack():
    """RFC 9293 MUST-58/59 (like GRO): the ACKs a batch owes are sent once, when the driver pulls."""
    h = TcpHarness()
    h.listen_and_establish()
    for packet in _segments(h, 10):
        h.host.receive(packet, h.now)           # one read batch: nothing pulled in between
    h._collect()
    h.expect(flags="A", ack=h.p_nxt + 10 * MSS)
    h.expect_nothing()


def test_the_same_segments_one_per_batch_draw_an_ack_every_second_segment():
    """The batch boundary is what coalesces: pulled after each segment, RFC 5681 4.2's every-second ACK."""
    h = TcpHarness()
    h.listen_and_establish()
    for packet in _segments(h, 10):
        h.send_raw(packet)
    acks = [e.tcp.ack for e in h.drain()]
    assert acks == [h.p_nxt + k * MSS for k in (2, 4, 6, 8, 10)]


class _Conn:
    """The few members of a Connection that the layer's output path uses."""

    def __init__(self, name: str):
        self.local, self.remote = (aton("192.0.2.2"), 80), (aton("192.0.2.1"), hash(name) & 0xFFFF)
        self.outq, self.state, self.listener, self._scheduled = [], State.ESTABLISHED, None, None
        self.ip_fields = None
        self.mem_charged = 0  # the memory budget charges nothing for a connection outside the table
        self.name = name

    def flush(self, now):
        pass

    def next_deadline(self):
        return None


def test_segments_leave_in_the_order_they_were_produced_across_connections():
    tcp = TcpLayer(1460, rng=random.Random(1))
    a, b = _Conn("a"), _Conn("b")
    a.outq.append("a1")
    tcp.after_user_call(a, 0.0)
    b.outq.append("b1")
    tcp.after_user_call(b, 0.0)
    a.outq.append("a2")
    tcp.after_user_call(a, 0.0)
    assert [seg for _, _, seg in tcp.segments_to_send(0.0)] == ["a1", "b1", "a2"]
    assert a.outq == [] and b.outq == [] and tcp.segments_to_send(0.0) == []


def test_output_not_yet_noted_stays_in_the_connection_until_its_next_event():
    tcp = TcpLayer(1460, rng=random.Random(1))
    a = _Conn("a")
    a.outq.append("a1")
    tcp.after_user_call(a, 0.0)
    a.outq.append("late")                      # produced after the event was noted
    assert [seg for _, _, seg in tcp.segments_to_send(0.0)] == ["a1"]
    assert a.outq == ["late"]
    tcp.after_user_call(a, 0.0)
    assert [seg for _, _, seg in tcp.segments_to_send(0.0)] == ["late"]


def test_the_ip_layer_alone_answers_tcp_with_protocol_unreachable():
    """stack/ip knows no TCP: without the netstack's handler, protocol 6 is just an unknown protocol."""
    ip = IpLayer(aton(LOCAL), rng=random.Random(1))
    ip.receive(raw(IP(src=PEER, dst=LOCAL) / TCP(sport=1, dport=2, flags="S")), 0.0)
    [err] = [IP(p) for p in ip.outq]
    assert (err[ICMP].type, err[ICMP].code) == (3, 2)
    assert ip.drops == {"ip_unknown_protocol": 1}


@pytest.mark.parametrize("where, options", [("_icmp_arrives", [IPOption_NOP()] * 4),  # the general path
                                             ("answer_echo", [])])                     # the fast path
def test_a_fault_while_processing_a_packet_is_counted_not_raised(monkeypatch, caplog, where, options):
    host = NetStack(aton(LOCAL), rng=random.Random(1))

    def broken(self, *args):
        raise RuntimeError("injected")

    monkeypatch.setattr(IpLayer, where, broken)
    with caplog.at_level("ERROR", logger="stack.netstack"):
        host.receive(raw(IP(src=PEER, dst=LOCAL, options=options) / ICMP(type=8) / Raw(b"x")), 0.0)
    assert host.stats["ip_internal_error"] == 1
    assert len([r for r in caplog.records if "internal error" in r.getMessage()]) == 1
    monkeypatch.undo()
    host.receive(raw(IP(src=PEER, dst=LOCAL) / ICMP(type=8) / Raw(b"x")), 0.0)
    assert [IP(p)[ICMP].type for p in host.take_output(0.0)] == [0]  # and it keeps answering


def _break(monkeypatch, *methods):
    from stack.tcp.connection import Connection

    def broken(self, *args, **kw):
        raise RuntimeError("injected")

    for m in methods:
        monkeypatch.setattr(Connection, m, broken)


def test_a_fault_in_segment_processing_resets_the_connection_with_an_acceptable_rst(monkeypatch):
    import errno
    h = TcpHarness()
    conn = h.listen_and_establish()
    _break(monkeypatch, "segment_arrives")
    h.send(h.seg("PA", load=b"hello"))
    h.expect(flags="R", seq=h.l_nxt)            # RFC 9293 3.10.5 ABORT: RST at SND.NXT
    h.expect_nothing()
    assert h.host.tcp.stats["internal_error"] == 1
    assert h.host.tcp.conns == {} and conn.error == errno.ECONNRESET


def test_a_connection_too_broken_to_abort_is_still_forgotten_and_its_socket_told(monkeypatch):
    import errno
    h = TcpHarness()
    conn = h.listen_and_establish()
    _break(monkeypatch, "segment_arrives", "abort")
    h.send(h.seg("PA", load=b"hello"))
    h.expect_nothing()
    assert h.host.tcp.stats["internal_error"] == 1
    assert h.host.tcp.conns == {} and conn.error == errno.ECONNRESET and conn.state is State.CLOSED


def _fast_and_layered_run(fast: bool) -> tuple[list[bytes], dict, dict]:
    """One scripted exchange; every datagram the host writes, and its counters."""
    h = TcpHarness(timestamps=True, sack=True, window_scaling=True)
    h.host.fast_path = fast
    written: list[bytes] = []
    take = h.host.take_output

    def record(now):
        out = take(now)
        written.extend(bytes(p) for p in out)
        return out
    h.host.take_output = record
    h.listen_and_establish(syn_options=h.peer_syn_options(wscale=7, sack=True, tsval=100))
    ts = [("NOP", None), ("NOP", None), ("Timestamp", (101, 1))]
    data = [h.seg("PA", seq=h.p_nxt + i * 100, load=bytes([i]) * 100, options=ts) for i in range(6)]
    for i in (0, 1, 3, 2, 5, 4):  # in order, then out of order (SACK blocks, the general builder)
        h.send(data[i])
    bad = bytearray(raw(IP(src=PEER, dst=LOCAL) / h.seg("PA", seq=h.p_nxt + 600, load=b"x" * 10, options=ts)))
    bad[-1] ^= 0xFF  # a TCP checksum error: counted, dropped
    h.send_raw(bytes(bad))
    frag = IP(src=PEER, dst=LOCAL, flags=1) / h.seg("PA", seq=h.p_nxt + 600, load=b"y" * 40)  # MF: reassembly
    h.send_raw(raw(frag))
    h.app_send(bytes(range(256)) * 20)  # data out: full-sized segments, timestamps
    h.send(h.seg("A", ack=h.l_nxt + 5120, options=ts))
    pings = [IP(src=PEER, dst=LOCAL) / ICMP(type=8, id=7, seq=1) / b"ping",            # the fast path
             IP(src=PEER, dst=LOCAL, flags=1) / ICMP(type=8, id=7, seq=2) / b"frag",   # MF: reassembly
             IP(src=PEER, dst=LOCAL, options=[IPOption_NOP()] * 4) / ICMP(type=8, id=7, seq=3),
             IP(src=PEER, dst=LOCAL) / ICMP(type=8, code=3, id=0, seq=0)]              # all-zero reply
    for ping in pings:
        h.send_raw(raw(ping))
    bad = bytearray(raw(IP(src=PEER, dst=LOCAL) / ICMP(type=8, id=7, seq=4)))
    bad[-1] ^= 0xFF  # an ICMP checksum error: counted, dropped
    h.send_raw(bytes(bad))
    return written, dict(h.host.stats), dict(h.host.tcp.stats)


def test_the_fast_paths_write_and_count_exactly_what_the_layered_code_does():
    """stack.wire.tcpip's fast input and output change no byte written and no counter."""
    fast, layered = _fast_and_layered_run(True), _fast_and_layered_run(False)
    assert len(fast[0]) >= 8
    assert fast[0] == layered[0]
    assert fast[1] == layered[1] and fast[2] == layered[2]
    assert fast[1]["drop:tcp_checksum"] == 1 and fast[1]["ip_fragments"] == 2
    assert fast[1]["icmp_echo_replies"] == 3 and fast[1]["drop:icmp_checksum"] == 1


def _offload_run(fast: bool) -> tuple[list[bytes], dict, dict]:
    """One scripted exchange under TUN offloads: every packet reaches the host behind a virtio-net
    header whose flags cycle through none, NEEDS_CSUM and DATA_VALID; every datagram it writes
    (a writev pair joined), and its counters. The harness sees the datagrams as the kernel would
    pass them on: header off, checksum finished."""
    h = TcpHarness(timestamps=True, sack=True, window_scaling=True)
    h.host.fast_path = fast
    h.host.set_offload(True)
    written: list[bytes] = []
    receive, take, flags = h.host.receive, h.host.take_output, [0]

    def receive_with_header(packet, now):
        flags[0] = (flags[0] + 1) % 3  # 0, NEEDS_CSUM (1), DATA_VALID (2)
        receive(vnet.VNET_HDR.pack(flags[0], vnet.GSO_NONE, 0, 0, 0, 0) + bytes(packet), now)

    def finished(packet: bytes) -> bytes:
        ip_packet = packet[vnet.VNET_HDR_LEN:]
        if not packet[0] & vnet.F_NEEDS_CSUM:
            return ip_packet
        return ip_packet[:20] + kernel_finish(ip_packet[20:])

    def record(now):
        out = [b"".join(bytes(p) for p in d) if type(d) is tuple else bytes(d) for d in take(now)]
        written.extend(out)
        return [finished(p) for p in out]
    h.host.receive, h.host.take_output = receive_with_header, record
    h.listen_and_establish(syn_options=h.peer_syn_options(wscale=7, sack=True, tsval=100))
    ts = [("NOP", None), ("NOP", None), ("Timestamp", (101, 1))]
    data = [h.seg("PA", seq=h.p_nxt + i * 100, load=bytes([i]) * 100, options=ts) for i in range(6)]
    for i in (0, 1, 3, 2, 5, 4):  # in order, then out of order (SACK blocks: the general builder)
        h.send(data[i])
    for _ in range(3):  # a TCP checksum error behind each of the three flags: dropped only when unvouched
        bad = bytearray(raw(IP(src=PEER, dst=LOCAL) / h.seg("A", options=ts)))
        bad[36] ^= 0xFF
        h.send_raw(bytes(bad))
    frag = IP(src=PEER, dst=LOCAL, flags=1) / h.seg("PA", seq=h.p_nxt + 600, load=b"y" * 40)  # MF: reassembly
    h.send_raw(raw(frag))
    h.app_send(bytes(range(256)) * 40)  # data out: a TSO super-segment
    h.send(h.seg("A", ack=h.l_nxt + 5120, options=ts))
    h.send(h.seg("A", ack=h.l_nxt + 10240, options=ts))
    h.app_send(b"tail")
    h.call(h.conn.close)
    return written, dict(h.host.stats), dict(h.host.tcp.stats)


def test_the_fast_paths_under_offloads_write_and_count_exactly_what_the_layered_code_does():
    """stack.wire.tcpip's offload paths (NetStack._receive_offloaded, DatagramTemplate.build_partial)
    change no byte written and no counter."""
    fast, layered = _offload_run(True), _offload_run(False)
    assert fast[0] == layered[0]
    assert fast[1] == layered[1] and fast[2] == layered[2]
    assert fast[1]["drop:tcp_checksum"] == 1 and fast[1]["ip_fragments"] == 1
    sizes = [len(p) - vnet.VNET_HDR_LEN for p in fast[0]]
    assert max(sizes) > 1500 and any(vnet.VNET_HDR.unpack_from(p)[1] == vnet.GSO_TCPV4 for p in fast[0])


@pytest.mark.parametrize("offload", [False, True], ids=["plain", "offload"])
def test_answer_ping_gives_the_bytes_and_counters_receive_gives(offload):
    """NetStack.answer_ping (the driver writes a ping's reply itself, then ping_answered): for an echo
    request of the common shape, the reply and counters of receive + take_output; None for every
    other packet, which receive then takes. With TUN offloads each packet and reply starts with a
    virtio-net header (a plain one on the reply); a request whose header asks for anything (checksum
    flags, GSO) is receive's."""
    head = vnet.PLAIN if offload else b""
    ping = raw(IP(src=PEER, dst=LOCAL) / ICMP(type=8, id=7, seq=1) / b"ping")
    bad = bytearray(raw(IP(src=PEER, dst=LOCAL) / ICMP(type=8, id=7, seq=4)))
    bad[-1] ^= 0xFF  # an ICMP checksum error
    others = [raw(IP(src=PEER, dst=LOCAL, flags=1) / ICMP(type=8, id=7, seq=2) / b"frag"),  # MF: reassembly
              raw(IP(src=PEER, dst=LOCAL, options=[IPOption_NOP()] * 4) / ICMP(type=8, id=7, seq=3)),
              raw(IP(src=PEER, dst=LOCAL) / ICMP(type=0, id=7, seq=5)),                      # a reply
              raw(IP(src="127.0.0.1", dst=LOCAL) / ICMP(type=8, id=7, seq=6)),               # martian source
              bytes(bad), raw(IP(src=PEER, dst=LOCAL) / TCP(sport=1, dport=2, flags="S"))]
    packets = [head + p for p in [ping, *others, ping]]
    if offload:  # the kernel vouches for the checksum: not the common shape, whatever it holds
        packets.insert(-1, vnet.VNET_HDR.pack(vnet.F_DATA_VALID, 0, 0, 0, 0, 0) + ping)
    driver, plain = NetStack(aton(LOCAL), rng=random.Random(1)), NetStack(aton(LOCAL), rng=random.Random(1))
    driver.set_offload(offload)
    plain.set_offload(offload)
    got, want, answered = [], [], []
    for packet in packets:
        reply = driver.answer_ping(packet)
        answered.append(reply is not None)
        if reply is None:
            driver.receive(packet, 0.0)
            got += driver.take_output(0.0)
        else:
            got.append(reply)
            driver.ping_answered()
        plain.receive(packet, 0.0)
        want += plain.take_output(0.0)
    assert answered == [True] + [False] * (len(packets) - 2) + [True]
    assert [bytes(p) for p in got] == [bytes(p) for p in want]
    replies = [p for p in got if bytes(p)[len(head) + 9] == 1]  # ICMP
    assert len(replies) == 3 + offload and all(bytes(p).startswith(head) for p in replies)
    assert driver.stats == plain.stats and driver.stats["icmp_echo_replies"] == 3 + offload  # with IP options: 3


def test_answer_ping_leaves_offload_and_faults_to_receive(monkeypatch, caplog):
    ping = raw(IP(src=PEER, dst=LOCAL) / ICMP(type=8, id=7, seq=1) / b"ping")
    host = NetStack(aton(LOCAL), rng=random.Random(1))
    host.set_offload(True)
    assert host.answer_ping(ping) is None      # with offloads a virtio-net header must lead: receive's job
    host = NetStack(aton(LOCAL), rng=random.Random(1))

    def broken(self, *args):
        raise RuntimeError("injected")

    monkeypatch.setattr(IpLayer, "echo_reply", broken)
    assert host.answer_ping(ping) is None and host.stats["ip_in"] == 0
    with caplog.at_level("ERROR", logger="stack.netstack"):
        host.receive(ping, 0.0)
    assert host.stats["ip_internal_error"] == 1 and host.stats["ip_out"] == 0
