"""Scenario helpers the checks share: a packet-exact peer in virtual time, and the end-to-end run.

``Peer`` plays the other end of one ``Host`` (as tests/tcp/harness.py does with scapy, but
with the stack's own ``struct`` codecs, so a check starts in milliseconds): it sends segments
as IPv4 bytes at given virtual times, fires the host's timers at their exact deadlines, and
collects what the host emits, each step written to the check's trace.

``transfer`` is the end-to-end run: two hosts of ``stack.sim`` in virtual time, impaired
each way, a seeded payload pushed through and compared byte for byte.
"""
from __future__ import annotations

import hashlib
import random

from ..netstack import NetStack as Host
from ..link.impair import Impairment, ImpairSpec
from ..sim import Simulation
from ..tcp.config import TcpConfig
from ..tcp.isn import FixedIsn
from ..wire import checksum as _checksum_module
from ..wire.ipv4 import aton, build_ipv4, parse_ipv4
from ..wire.tcp import IPPROTO_TCP, TcpSegment, build_tcp, flag_string, parse_tcp

LOCAL, PEER = aton("192.0.2.2"), aton("192.0.2.1")
FLAGS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10, ".": 0x10}

# Captured at import, before any part is installed: the oracle never runs the student's code.
_REF_ONES_SUM = _checksum_module.ones_sum


def oracle_packet_ok(packet) -> bool:
    """IPv4 header and TCP checksums verified with the reference sum (independent of any seam)."""
    data = bytes(packet)
    if len(data) < 20:
        return False
    hlen = (data[0] & 0x0F) * 4
    if _REF_ONES_SUM(data[:hlen]) % 0xFFFF:
        return False
    if data[9] != IPPROTO_TCP:
        return True
    total = int.from_bytes(data[2:4], "big")
    seg = data[hlen:total]
    pseudo = _REF_ONES_SUM(data[12:20]) + IPPROTO_TCP + len(seg)
    return (_REF_ONES_SUM(seg) + pseudo) % 0xFFFF == 0


def build_packet(seg: TcpSegment, src: bytes = PEER, dst: bytes = LOCAL) -> bytes:
    tcp = build_tcp(seg, src, dst)
    return build_ipv4(src, dst, IPPROTO_TCP, len(tcp)) + tcp


def describe(seg: TcpSegment) -> str:
    s = f"[{flag_string(seg.flags)}] seq={seg.seq} ack={seg.ack} win={seg.window}"
    if seg.payload:
        s += f" len={len(seg.payload)}"
    if seg.sack:
        s += f" sack={list(seg.sack)}"
    return s


class Peer:
    """The test's end of one connection to a ``Host`` (192.0.2.2) in virtual time."""

    def __init__(self, t, *, iss: int = 1000, config: TcpConfig | None = None, port: int = 80,
                 peer_port: int = 40000) -> None:
        self.t = t
        self.config = config or TcpConfig(timestamps=False, sack=False, window_scaling=False)
        self.host = Host(LOCAL, 1500, self.config, isn=FixedIsn(iss), rng=random.Random(1))
        self.now = 0.0
        self.port, self.peer_port = port, peer_port
        self.out: list[tuple[float, TcpSegment]] = []

    def listen(self):
        return self.host.tcp.listen(LOCAL, self.port, 16)

    def send(self, flags: str, seq: int, ack: int = 0, payload: bytes = b"", window: int = 65535,
             at: float | None = None, raw: bytes | None = None, note: str = "", sack_perm: bool = False,
             sack=None) -> None:
        if at is not None:
            self.advance_to(at)
        f = 0
        for ch in flags:
            f |= FLAGS[ch]
        seg = TcpSegment(self.peer_port, self.port, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, f, window, payload,
                         sack_perm=sack_perm, sack=sack)
        packet = raw if raw is not None else build_packet(seg)
        self.t.note(f"t={self.now:.3f} peer > {describe(seg)}{note}")
        self.host.receive(packet, self.now)
        self._collect()

    def _collect(self) -> None:
        for packet in self.host.take_output(self.now):
            hdr, payload = parse_ipv4(packet)
            seg = parse_tcp(payload)
            ok = oracle_packet_ok(packet)
            self.t.note(f"t={self.now:.3f} host > {describe(seg)}" + ("" if ok else "  (bad checksum)"))
            self.out.append((self.now, seg, ok))

    def advance_to(self, when: float) -> None:
        while True:
            d = self.host.next_deadline()
            if d is None or d > when:
                break
            self.now = max(self.now, d)
            self.host.on_timers(self.now)
            self._collect()
        self.now = when
        self._collect()

    def take(self) -> list:
        out, self.out = self.out, []
        return out


class OracleTap:
    """An impairment stage that also checks every packet's checksums with the reference code."""

    def __init__(self, inner) -> None:
        self.inner, self.bad = inner, 0

    def offer(self, packet, now: float) -> None:
        if not oracle_packet_ok(packet):
            self.bad += 1
        self.inner.offer(packet, now)

    def poll(self, now: float):
        return self.inner.poll(now)

    def next_deadline(self):
        return self.inner.next_deadline()


def transfer(t, nbytes: int, *, loss: str = "loss=5%", seed: int = 1, iss_a: int | None = None,
             config: TcpConfig | None = None, tap: bool = False, until: float = 3000.0) -> None:
    """Push ``nbytes`` from a to b through ``loss`` each way; fail the check unless byte-exact."""
    taps = []

    def impair(direction: str, s: int):
        imp = Impairment(ImpairSpec.parse(loss), seed=s, direction=direction)
        if tap:
            imp = OracleTap(imp)
            taps.append(imp)
        return imp

    sim = Simulation(seed=seed, config_a=config, config_b=config,
                     impair_ab=impair("ab", seed * 2 + 1), impair_ba=impair("ba", seed * 2 + 2))
    if iss_a is not None:
        sim.a.tcp.isn = FixedIsn(iss_a)
        t.note(f"host a's ISS = {iss_a} (0x{iss_a:08x}): its sequence numbers wrap during the transfer")
    t.note(f"{nbytes} bytes a -> b, {loss} each way, seed {seed}, in virtual time")
    lst = sim.listen(sim.b, 80)
    conn = sim.connect(sim.a, 80)
    sim.run(until=300, condition=lambda: lst.readable or conn.error)

    def check_taps() -> None:
        if tap:
            t.expect("packets on the wire whose checksum the reference rejects", sum(tp.bad for tp in taps), 0)

    if not lst.readable:
        check_taps()
        t.fail(f"the handshake did not complete in 300 s of virtual time (a's error: {_err(conn.error)})")
    peer = lst.accept()
    data = random.Random(seed).randbytes(nbytes)
    got = sim.transfer(sim.a, conn, sim.b, peer, data, until=sim.now + until)
    t.note(f"virtual time {sim.now:.2f} s, {conn.stats['segs_out']} segments out of a, "
           f"{conn.stats['retrans']} retransmitted")
    check_taps()
    if got != data:
        first = next((i for i, (x, y) in enumerate(zip(got, data)) if x != y), min(len(got), len(data)))
        t.fail(f"arrived {len(got)} of {nbytes} bytes; first difference at offset {first}; "
               f"a's error: {_err(conn.error)}, b's error: {_err(peer.error)}")
    t.expect("sha256 of what arrived equals what was sent",
             hashlib.sha256(got).hexdigest()[:16], hashlib.sha256(data).hexdigest()[:16])


def _err(code) -> str:
    import errno
    return errno.errorcode.get(code, str(code)) if code else "none"
