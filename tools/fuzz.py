#!/usr/bin/env python3
"""Fuzz the sans-I/O TCP/IP core with mutated segments of valid conversations, in every TCP state.

A *case* is: a fresh core, a valid conversation that brings one connection to a chosen state
(CLOSED port, LISTEN, SYN-SENT, SYN-RECEIVED, ESTABLISHED, FIN-WAIT-1, FIN-WAIT-2, CLOSE-WAIT,
CLOSING, LAST-ACK, TIME-WAIT; with or without timestamps/SACK/window scaling, with or without
data in flight and out-of-order data queued, sequence numbers near the 2**32 wrap or not),
then the *valid next segment* of that conversation with 1-4 mutations applied (flags; SEQ/ACK
at window edges, at +-2**31, at random; window; payload length; urgent pointer; valid and
malformed options; data offset; TCP checksum; truncation; IP version/IHL/length/TTL/protocol/
flags/fragment offset/checksum/options/addresses; IP fragmentation in and out of order,
overlapping, incomplete; duplicates; scapy's ``fuzz()`` of the TCP header), then timers.

Checks after every packet and timer run:
  * no exception escapes the core's entry points (receive, take_output, on_timers);
  * the connection's state is a valid RFC 9293 state and its invariants hold
    (SND.UNA <= SND.NXT <= SND.MAX, buffers within their caps, out-of-order blocks sorted ...);
  * a packet that changed nothing (no output, no state or variable change) incremented a
    counter, i.e. every drop is counted under a named reason. A pure duplicate ACK
    (ACK = SND.UNA, no data, no SYN/FIN/RST) is processed, not dropped, and is exempt.

The core is driven only through tools/fuzz_adapter.py (one module to adapt when the core's
entry points are renamed). Cases are deterministic: ``(seed, index)`` reproduces one, and
``--replay SEED:INDEX`` prints what it does.

  scripts/fuzz --cases 1000000 --seed 1            the long run (apart from CI)
  scripts/fuzz --time-limit 600 --json out/fuzz.json
  scripts/fuzz --replay 1:123456                   one case, packet by packet
"""
from __future__ import annotations

import argparse
import json
import os
import random
import struct
import sys
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools.fuzz_adapter import Core  # noqa: E402  (the only import of the core)

LOCAL = bytes([192, 0, 2, 2])
PEER = bytes([192, 0, 2, 1])
LISTEN_PORT, CLOSED_PORT, ACTIVE_PORT = 80, 81, 50000
MASK = 0xFFFFFFFF
FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80

STATES = ("CLOSED", "LISTEN", "SYN_SENT", "SYN_RECEIVED", "ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2",
          "CLOSE_WAIT", "CLOSING", "LAST_ACK", "TIME_WAIT")
OPS = ("flags", "flip_flag", "seq", "ack", "window", "payload_len", "urg", "opt_valid", "opt_malformed",
       "doff", "tcp_csum", "truncate", "ip_field", "fragment", "dup", "scapy")
#: relative weights of the operations in random cases (scapy's fuzz() is ~100x slower: rare)
OP_WEIGHTS = (6, 4, 8, 8, 3, 4, 2, 4, 5, 2, 2, 2, 5, 4, 1, 0.3)


# ---------------------------------------------------------------- packets (independent of the stack)
def ones_sum(data: bytes) -> int:
    if len(data) & 1:
        data += b"\0"
    return int.from_bytes(data, "big") % 0xFFFF  # 2**16 == 1 (mod 0xFFFF): the one's-complement sum


def _csum(data: bytes, initial: int = 0) -> int:
    """RFC 1071 Internet checksum of ``data`` plus an already summed ``initial`` (pseudo-header)."""
    return 0xFFFF - (ones_sum(data) + initial) % 0xFFFF


@dataclass
class Seg:
    """A segment from the peer, before encoding (every field a mutation may touch)."""
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int
    window: int = 65535
    payload: bytes = b""
    urg: int = 0
    options: bytes = b""
    doff: int | None = None          # None: from the options' length
    bad_tcp_csum: bool = False
    ip: dict = field(default_factory=dict)  # overrides: ver, ihl, tos, total, ident, df, mf, rsv, frag, ttl, proto, csum, src, dst, opts

    def tcp_bytes(self, src: bytes, dst: bytes) -> bytes:
        opts = self.options + b"\0" * (-len(self.options) % 4)
        doff = self.doff if self.doff is not None else (20 + len(opts)) // 4
        hdr = struct.pack("!HHIIBBHHH", self.sport, self.dport, self.seq & MASK, self.ack & MASK,
                          (doff & 0xF) << 4, self.flags & 0xFF, self.window & 0xFFFF, 0, self.urg & 0xFFFF)
        body = hdr + opts + self.payload
        pseudo = ones_sum(src + dst + struct.pack("!BBH", 0, 6, len(body)))
        c = _csum(body, pseudo)
        if self.bad_tcp_csum:
            c ^= 0x5A5A
        return body[:16] + struct.pack("!H", c) + body[18:]


def ip_packet(payload: bytes, ip: dict, src: bytes = PEER, dst: bytes = LOCAL) -> bytes:
    src, dst = ip.get("src", src), ip.get("dst", dst)
    opts = ip.get("opts", b"")
    opts += b"\0" * (-len(opts) % 4)
    ihl = ip.get("ihl", 5 + len(opts) // 4)
    total = ip.get("total", 20 + len(opts) + len(payload))
    flags = (0x8000 if ip.get("rsv") else 0) | (0x4000 if ip.get("df", True) else 0) | (0x2000 if ip.get("mf") else 0)
    frag = ip.get("frag", 0) // 8
    hdr = struct.pack("!BBHHHBBH4s4s", (ip.get("ver", 4) & 0xF) << 4 | (ihl & 0xF), ip.get("tos", 0), total & 0xFFFF,
                      ip.get("ident", 0x1234), flags | (frag & 0x1FFF), ip.get("ttl", 64), ip.get("proto", 6), 0,
                      src, dst) + opts
    c = ip.get("csum", _csum(hdr))
    return hdr[:10] + struct.pack("!H", c & 0xFFFF) + hdr[12:] + payload


@dataclass
class Out:
    """One packet the core wrote, parsed just enough for the peer to answer it."""
    proto: int
    flags: int = 0
    seq: int = 0
    ack: int = 0
    window: int = 0
    length: int = 0
    tsval: int | None = None


def parse_out(pkt: bytes) -> Out:
    ihl = (pkt[0] & 0xF) * 4
    proto = pkt[9]
    if proto != 6:
        return Out(proto)
    t = pkt[ihl:]
    sport, dport, seq, ack, off, flags, window = struct.unpack_from("!HHIIBBH", t)
    doff = (off >> 4) * 4
    o, tsval = t[20:doff], None
    i = 0
    while i < len(o):
        if o[i] == 0:
            break
        if o[i] == 1:
            i += 1
            continue
        if i + 1 >= len(o) or o[i + 1] < 2:
            break
        if o[i] == 8 and o[i + 1] == 10:
            tsval = struct.unpack_from("!I", o, i + 2)[0]
        i += o[i + 1]
    return Out(6, flags, seq, ack, window, len(t) - doff, tsval)


def opt_mss(v=1460):
    return struct.pack("!BBH", 2, 4, v)


def opt_ws(v=7):
    return struct.pack("!BBB", 3, 3, v) + b"\1"


def opt_sackok():
    return b"\1\1\4\2"


def opt_ts(val, ecr):
    return b"\1\1" + struct.pack("!BBII", 8, 10, val & MASK, ecr & MASK)


def opt_sack(blocks):
    return b"\1\1" + struct.pack("!BB", 5, 2 + 8 * len(blocks)) + b"".join(
        struct.pack("!II", a & MASK, b & MASK) for a, b in blocks)


# ---------------------------------------------------------------- the peer and the conversations
class Peer:
    """The other end of one conversation: a well-behaved TCP whose next segment is then mutated."""

    def __init__(self, core: Core, port: int, isn: int, options: bool):
        self.core, self.port, self.options = core, port, options
        self.nxt = isn & MASK            # our next sequence number
        self.rcv = 0                     # what we acknowledge (their next sequence number)
        self.snd_una_seen = 0
        self.ts = 1000                   # our TSval clock
        self.ts_recent = 0               # their latest TSval
        self.now = 0.0
        self.outputs: list[Out] = []

    def opts(self, syn: bool = False) -> bytes:
        o = b""
        if syn:
            o += opt_mss(1460)
            if self.options:
                o += opt_sackok() + opt_ws(7)
        if self.options:
            o += opt_ts(self.ts, self.ts_recent)
        return o

    def seg(self, flags: int, payload: bytes = b"", port: int = LISTEN_PORT, syn_opts: bool = False,
            seq: int | None = None, ack: int | None = None) -> Seg:
        return Seg(self.port, port, self.nxt if seq is None else seq, self.rcv if ack is None else ack, flags,
                   65535, payload, options=self.opts(syn_opts))

    def send(self, s: Seg, advance: bool = True) -> None:
        self.deliver(ip_packet(s.tcp_bytes(PEER, LOCAL), s.ip))
        if advance:
            self.nxt = (self.nxt + len(s.payload) + (1 if s.flags & SYN else 0) + (1 if s.flags & FIN else 0)) & MASK
        self.ts += 1

    def deliver(self, pkt: bytes) -> None:
        self.core.receive(pkt, self.now)
        self.collect()

    def collect(self) -> list[Out]:
        outs = [parse_out(p) for p in self.core.take_output(self.now)]
        for o in outs:
            if o.proto == 6 and not o.flags & RST:
                end = (o.seq + o.length + (1 if o.flags & SYN else 0) + (1 if o.flags & FIN else 0)) & MASK
                if (end - self.rcv) & MASK < 0x80000000 or self.rcv == 0:
                    self.rcv = end
                if o.tsval is not None:
                    self.ts_recent = o.tsval
        self.outputs.extend(outs)
        return outs

    def tick(self, dt: float) -> None:
        self.now += dt
        self.core.on_timers(self.now)
        self.collect()


@dataclass
class Scene:
    """A core with one connection in ``state`` (or a listening/closed port) and its peer."""
    core: Core
    peer: Peer
    state: str
    conn: object | None
    port: int               # the core's port the next segment goes to
    base: Seg               # the valid next segment


def build_scene(state: str, variant: int, seed: int) -> Scene:
    """Reach ``state`` with a valid conversation. ``variant`` bits: 1 options, 2 data in flight from
    the core, 4 out-of-order data queued, 8 sequence numbers near the wrap."""
    options, inflight, ofo, wrap = bool(variant & 1), bool(variant & 2), bool(variant & 4), bool(variant & 8)
    rng = random.Random(seed)
    iss = (MASK - rng.randrange(64)) if wrap else rng.getrandbits(32)
    core = Core(LOCAL, options=options, seed=seed, iss=iss)
    peer_isn = (MASK - rng.randrange(64)) if wrap else rng.getrandbits(32)
    peer = Peer(core, 40000 + rng.randrange(20000), peer_isn, options)
    if state == "CLOSED":
        return Scene(core, peer, state, None, CLOSED_PORT, peer.seg(SYN, port=CLOSED_PORT, syn_opts=True))
    if state == "SYN_SENT":
        conn = core.connect(ACTIVE_PORT, PEER, peer.port, 0.0)
        peer.port = peer.port  # the core connects to the peer's port
        peer.collect()
        base = Seg(peer.port, ACTIVE_PORT, peer.nxt, peer.rcv, SYN | ACK, 65535, options=peer.opts(True))
        return Scene(core, peer, state, conn, ACTIVE_PORT, base)
    core.listen(LISTEN_PORT)
    if state == "LISTEN":
        return Scene(core, peer, state, None, LISTEN_PORT, peer.seg(SYN, syn_opts=True))
    peer.send(peer.seg(SYN, syn_opts=True))
    conn = core.find(LISTEN_PORT, PEER, peer.port)
    if state == "SYN_RECEIVED":
        return Scene(core, peer, state, conn, LISTEN_PORT, peer.seg(ACK))
    peer.send(peer.seg(ACK))
    core.accept(LISTEN_PORT)
    peer.tick(0.001)
    if inflight:
        conn.send(rng.randbytes(1 + rng.randrange(3000)), peer.now)
        peer.collect()
        peer.rcv = conn.rcv_nxt  # the peer acknowledges nothing of it yet
    if ofo:  # a segment beyond a hole: out-of-order queue and SACK state
        hole = 1 + rng.randrange(1000)
        peer.send(peer.seg(ACK | PSH, b"o" * (1 + rng.randrange(500)), seq=(peer.nxt + hole) & MASK,
                           ack=conn.snd_una), advance=False)
    ack = conn.snd_una if inflight else None
    if state == "ESTABLISHED":
        return Scene(core, peer, state, conn, LISTEN_PORT, peer.seg(ACK | PSH, b"data" * 8, ack=ack))
    if state in ("CLOSE_WAIT", "LAST_ACK"):
        peer.send(peer.seg(FIN | ACK, ack=ack))
        if state == "LAST_ACK":
            conn.close(peer.now)
            peer.collect()
        return Scene(core, peer, state, conn, LISTEN_PORT, peer.seg(ACK, ack=conn.snd_max))
    conn.close(peer.now)  # FIN-WAIT-1 (after the data, if any)
    peer.collect()
    if state == "FIN_WAIT_1":
        return Scene(core, peer, state, conn, LISTEN_PORT, peer.seg(ACK | PSH, b"more", ack=ack))
    if state == "CLOSING":
        peer.send(peer.seg(FIN | ACK, ack=conn.snd_una))
        return Scene(core, peer, state, conn, LISTEN_PORT, peer.seg(ACK, ack=conn.snd_max))
    for _ in range(4):  # FIN-WAIT-2: acknowledge everything (the FIN leaves after the data in flight)
        peer.send(peer.seg(ACK, ack=conn.snd_max))
        if conn.state != "FIN_WAIT_1":
            break
    if state == "FIN_WAIT_2":
        return Scene(core, peer, state, conn, LISTEN_PORT, peer.seg(ACK | PSH, b"tail", ack=conn.snd_max))
    peer.send(peer.seg(FIN | ACK, ack=conn.snd_max))  # TIME-WAIT
    return Scene(core, peer, state, conn, LISTEN_PORT, peer.seg(FIN | ACK, seq=(peer.nxt - 1) & MASK,
                                                                 ack=conn.snd_max))


# ---------------------------------------------------------------- mutations
def _edge(r: int, wnd: int) -> int:
    v = r >> 8
    choices = (0, -1, 1, wnd - 1, wnd, wnd + 1, 0x7FFFFFFF, 0x80000000, 0x80000001, -wnd, -(1 << 16),
               1 << 16, v, -(v & 0xFFFF), v & 0xFFFF)
    return choices[r % len(choices)]


_MALFORMED = (
    b"\2",                      # MSS kind, no length
    b"\2\0\5\xb4",              # length 0
    b"\2\1\5\xb4",              # length 1
    b"\2\x28\5\xb4",            # length beyond the header
    b"\2\3\5",                  # MSS of length 3
    b"\3\2",                    # window scale of length 2
    b"\3\3\xff\1",              # window scale 255
    b"\4\3\0\1",                # SACK-permitted of length 3
    b"\x08\x09" + b"\0" * 7,    # timestamps of length 9
    b"\5\3\0",                  # SACK of length 3
    b"\5\x0b" + b"\0" * 9,      # SACK not a multiple of 8
    b"\5\x22" + b"\0" * 32,     # SACK with four blocks, all zero
    b"\xfe\4\0\0",              # experimental kind
    b"\x99\2",                  # unknown kind, minimal
    b"\1" * 40,                 # forty NOPs
    b"\0\2\4\5",                # EOL then junk
    b"\x1d\x10" + b"\xaa" * 14, # TCP-AO-like option
    b"\x22\2",                  # TFO cookie request
)


_PATTERN = bytes(range(256)) * 256


def mutate(scene: Scene, ops: list[tuple[str, int]]) -> tuple[list[bytes], bool]:
    """Apply ``ops`` to the scene's valid next segment; return the packets to feed and whether to run timers."""
    s = scene.base
    s = Seg(s.sport, s.dport, s.seq, s.ack, s.flags, s.window, s.payload, s.urg, s.options, s.doff, False, dict(s.ip))
    conn = scene.conn
    wnd = conn.rcv_wnd if conn is not None else 65535
    una_wnd = 65535
    frag, dup, timers, raw_cut, scapy_r = None, False, False, None, None
    for op, r in ops:
        if op == "flags":
            s.flags = r & 0xFF
        elif op == "flip_flag":
            s.flags ^= 1 << (r % 8)
        elif op == "seq":
            s.seq = (s.seq + _edge(r, max(wnd, 1))) & MASK
        elif op == "ack":
            base = (conn.snd_una, conn.snd_nxt, conn.snd_max)[r % 3] if conn is not None else s.ack
            s.ack = (base + _edge(r >> 2, una_wnd)) & MASK
        elif op == "window":
            s.window = (0, 1, 0xFFFF, r & 0xFFFF)[r % 4]
        elif op == "payload_len":
            n = (0, 1, 535, 536, 1459, 1460, 1461, 2920, (r >> 4) % 3000, wnd, wnd + 1)[r % 11]
            s.payload = _PATTERN[r & 0xFF:(r & 0xFF) + max(0, min(n, 65000))]
        elif op == "urg":
            s.flags |= URG
            s.urg = (0, 1, len(s.payload), len(s.payload) + 1, r & 0xFFFF)[r % 5]
        elif op == "opt_valid":
            o = b""
            if r & 1:
                o += opt_mss((0, 1, 88, 536, 1460, 65535, r >> 16)[(r >> 1) % 7] & 0xFFFF)
            if r & 2:
                o += opt_ws((r >> 4) % 20)
            if r & 4:
                o += opt_sackok()
            if r & 8:
                o += opt_ts(scene.peer.ts + _edge(r >> 9, 1000), (r >> 3) * 2654435761)
            if r & 16 and len(o) <= 8:
                base = conn.snd_una if conn is not None else 0
                o += opt_sack([(base + _edge(r >> (5 + 3 * i), 3000), base + _edge(r >> (6 + 3 * i), 3000))
                               for i in range(1 + (r >> 24) % 4)])
            s.options = o[:40]
        elif op == "opt_malformed":
            s.options = (s.options + _MALFORMED[r % len(_MALFORMED)])[-40:] if r & 0x100 else _MALFORMED[r % len(_MALFORMED)]
        elif op == "doff":
            s.doff = r % 16
        elif op == "tcp_csum":
            s.bad_tcp_csum = True
        elif op == "truncate":
            raw_cut = r
        elif op == "ip_field":
            k = r % 16
            v = r >> 4
            if k == 0:
                s.ip["ver"] = (6, 0, 15, 5)[v % 4]
            elif k == 1:
                s.ip["ihl"] = v % 16
            elif k == 2:
                s.ip["total"] = (0, 19, 20, 21, 40, 0xFFFF, v & 0xFFFF)[v % 7]
            elif k == 3:
                s.ip["ttl"] = v % 2
            elif k == 4:
                s.ip["proto"] = (0, 1, 17, 41, 255, v & 0xFF)[v % 6]
            elif k == 5:
                s.ip["csum"] = v & 0xFFFF
            elif k == 6:
                s.ip["src"] = ((0, 0, 0, 0), (127, 0, 0, 1), (224, 0, 0, 1), (255, 255, 255, 255),
                               (192, 0, 2, 2), (192, 0, 2, 99))[v % 6]
                s.ip["src"] = bytes(s.ip["src"])
            elif k == 7:
                s.ip["dst"] = bytes(((192, 0, 2, 3), (255, 255, 255, 255), (192, 0, 2, 255), (0, 0, 0, 0))[v % 4])
            elif k == 8:
                s.ip["rsv"] = True
            elif k == 9:
                s.ip["mf"] = True
            elif k == 10:
                s.ip["frag"] = (8, 1480, 65528, (v & 0x1FFF) * 8)[v % 4]
            elif k == 11:
                s.ip["opts"] = (b"\1\1\1\0", b"\x44\x04\x05\x00", b"\x07\x07\x04" + b"\0" * 5, b"\x83\x03\x00\x00",
                                bytes([v & 0xFF, (v >> 8) & 0xFF, 0, 0]), b"\x94\x04\0\0")[v % 6]
            elif k == 12:
                s.ip["tos"] = v & 0xFF
            elif k == 13:
                s.ip["df"] = False
            elif k == 14:
                s.ip["ident"] = v & 0xFFFF
            else:
                s.ip["total"] = 20 + 20 + len(s.payload) + len(s.options) + (1 + v % 8)  # claims more than there is
        elif op == "fragment":
            frag = r
        elif op == "dup":
            dup = True
        elif op == "scapy":
            scapy_r = r
        if r & 0x80000000 and op not in ("truncate",):
            timers = True
    tcp = s.tcp_bytes(s.ip.get("src", PEER), s.ip.get("dst", LOCAL))
    if scapy_r is not None:
        tcp = _scapy_fuzz(s, scapy_r)
    packets = _fragments(tcp, s.ip, frag) if frag is not None else [ip_packet(tcp, s.ip)]
    if raw_cut is not None:
        p = packets[-1]
        packets[-1] = p[: raw_cut % (len(p) + 1)]
    if dup:
        packets = packets + packets
    return packets, timers


def _fragments(tcp: bytes, ip: dict, r: int) -> list[bytes]:
    """Split the datagram: in order, reversed, overlapping, tiny, or with a piece missing."""
    size = (8, 16, 24, 64, 512)[r % 5]
    pieces = []
    for off in range(0, len(tcp), size):
        pieces.append((off, tcp[off:off + size], off + size < len(tcp)))
    kind = (r >> 4) % 5
    if kind == 1:
        pieces.reverse()
    elif kind == 2 and len(pieces) > 1:
        off, data, mf = pieces[1]
        pieces.insert(1, (max(0, off - 8), bytes(len(data) + 8), mf))  # overlapping, different bytes
    elif kind == 3 and len(pieces) > 1:
        del pieces[len(pieces) // 2]  # a hole: reassembly waits, then times out
    elif kind == 4:
        pieces = pieces + pieces  # every fragment twice
    return [ip_packet(d, dict(ip, frag=off, mf=mf, df=False, ident=(r >> 8) & 0xFFFF)) for off, d, mf in pieces]


def _scapy_fuzz(s: Seg, r: int) -> bytes:
    """scapy's own mutator: ``fuzz(TCP(...))`` randomises every field not fixed (ports fixed)."""
    from scapy.layers.inet import IP, TCP  # scapy is the mutator here, not the engine: imported lazily
    from scapy.packet import Raw, fuzz
    state = random.getstate()
    random.seed(r)
    try:
        pkt = IP(src="192.0.2.1", dst="192.0.2.2") / fuzz(TCP(sport=s.sport, dport=s.dport)) / Raw(s.payload)
        raw = bytes(pkt)
    finally:
        random.setstate(state)
    return raw[(raw[0] & 0xF) * 4:]


# ---------------------------------------------------------------- one case and its checks
@dataclass
class Finding:
    kind: str               # "exception", "invariant", "silent_drop"
    key: str                # what groups equal findings
    case: str               # SEED:INDEX that reproduces it
    detail: str


def _is_old_ack(pkt: bytes, conn) -> bool:
    """A pure ACK (no data, no SYN/FIN/RST) with SEG.ACK =< SND.UNA: RFC 9293 3.10.7.4 says it "can be
    ignored" -- processed, not dropped, so it needs no drop counter."""
    if len(pkt) < 40 or pkt[9] != 6 or conn is None:
        return False
    ihl = (pkt[0] & 0xF) * 4
    t = pkt[ihl:]
    if len(t) < 20:
        return False
    ack, off, flags = struct.unpack_from("!IBB", t, 8)
    return (flags & (SYN | FIN | RST | ACK) == ACK and len(t) == (off >> 4) * 4
            and (conn.snd_una - ack) & MASK < 0x80000000)


def _describe(pkt: bytes) -> str:
    if len(pkt) < 20 or pkt[0] >> 4 != 4:
        return "not IPv4"
    ihl = (pkt[0] & 0xF) * 4
    if pkt[9] != 6 or len(pkt) < ihl + 20:
        return f"proto {pkt[9]}"
    t = pkt[ihl:]
    flags = t[13]
    names = "".join(n for b, n in ((SYN, "S"), (FIN, "F"), (RST, "R"), (PSH, "P"), (ACK, "."), (URG, "U"),
                                   (ECE, "E"), (CWR, "W")) if flags & b) or "none"
    data = "data" if len(t) > (t[12] >> 4) * 4 else "no data"
    return f"flags [{names}] {data}"


def _drop_class(pkt: bytes) -> str:
    """Coarse class of a silently dropped segment, after the RFC 9293 3.10.7 check that drops it."""
    if len(pkt) < 40 or pkt[9] != 6:
        return _describe(pkt)
    flags = pkt[(pkt[0] & 0xF) * 4 + 13]
    if flags & RST:
        return "RST not acted on"
    if flags & SYN:
        return "SYN not acted on"
    if not flags & ACK:
        return "ACK bit off"
    return "ACK segment not acted on"


_EXEMPT = {"ip:ip_in", "ip:tcp_in", "ip:ip_out"}  # every packet moves these


def run_case(seed: int, index: int, state: str | None = None, variant: int | None = None,
             ops: list[tuple[str, int]] | None = None, log=None) -> list[Finding]:
    """One case; ``state``/``variant``/``ops`` default to those drawn from (seed, index)."""
    rng = random.Random(seed * 1_000_003 + index)
    if state is None:
        state = STATES[rng.randrange(len(STATES))]
    if variant is None:
        variant = rng.randrange(16)
    if ops is None:
        ops = [(op, rng.getrandbits(32)) for op in rng.choices(OPS, OP_WEIGHTS, k=1 + rng.randrange(4))]
    case = f"{seed}:{index}"
    findings: list[Finding] = []
    where = "building the conversation"
    try:
        scene = build_scene(state, variant, rng.getrandbits(32))
        if scene.conn is not None and scene.conn.state != state:
            findings.append(Finding("conversation", f"{state} reached {scene.conn.state}", case,
                                    f"variant {variant}"))
            return findings
        packets, timers = mutate(scene, ops)
        peer, core, conn = scene.peer, scene.core, scene.conn
        for pkt in packets:
            where = f"receive({_describe(pkt)}) in {state}"
            silent = feed(scene, pkt)
            if log:
                log(f"in  {len(pkt)}B {_describe(pkt)} -> {'silently dropped' if silent else 'acted on or counted'}; "
                    f"state {conn.state if conn else '-'}")
            if silent:
                findings.append(Finding("silent_drop", f"{state}: {_drop_class(pkt)}", case,
                                        f"variant {variant} ops {ops}: no output, no change, no counter"))
            findings.extend(_check(conn, case, f"after {_describe(pkt)} in {state}"))
        if timers:
            for _ in range(6):  # bounded: a few timer expiries
                deadline = core.next_deadline()
                if deadline is None:
                    break
                where = f"on_timers in {state}"
                peer.tick(max(0.0, deadline - peer.now) + 1e-6)
                findings.extend(_check(conn, case, f"after a timer in {state}"))
    except Exception as exc:  # the point of the fuzzer: nothing may escape
        tb = traceback.extract_tb(exc.__traceback__)
        frame = next((f for f in reversed(tb) if "/stack/" in f.filename), tb[-1])
        key = f"{type(exc).__name__} at {os.path.relpath(frame.filename)}:{frame.lineno} ({frame.name})"
        findings.append(Finding("exception", key, case,
                                f"{where}: {type(exc).__name__}: {exc}; state {state} variant {variant} ops {ops}"))
    return findings


def feed(scene: Scene, pkt: bytes) -> bool:
    """Give one packet to the scene's core; True when it was dropped without being counted (no output,
    no change of the connection or the connection table, no counter moved)."""
    core, conn, peer = scene.core, scene.conn, scene.peer
    before = (core.counters(), conn.fingerprint() if conn else None, core.connection_count(),
              dict(conn.stats) if conn else None)
    old_ack = _is_old_ack(pkt, conn)
    core.receive(pkt, peer.now)
    outs = peer.collect()
    after = (core.counters(), conn.fingerprint() if conn else None, core.connection_count(),
             dict(conn.stats) if conn else None)
    return not outs and not old_ack and _unchanged(before, after)


def _unchanged(before, after) -> bool:
    c0, f0, n0, s0 = before
    c1, f1, n1, s1 = after
    if f0 != f1 or n0 != n1:
        return False
    if s0 is not None and any(s1[k] != v for k, v in s0.items() if k != "segs_in"):
        return False
    return all(c1.get(k, 0) == c0.get(k, 0) for k in c0.keys() | c1.keys() if k not in _EXEMPT)


def _check(conn, case: str, where: str) -> list[Finding]:
    if conn is None:
        return []
    return [Finding("invariant", v.split(":")[0], case, f"{where}: {v}") for v in conn.violations()]


# ---------------------------------------------------------------- the run
@dataclass
class Summary:
    seed: int
    cases: int = 0
    seconds: float = 0.0
    per_state: Counter = field(default_factory=Counter)
    findings: dict = field(default_factory=dict)    # (kind, key) -> [count, first case, detail]

    def add(self, f: Finding) -> None:
        slot = self.findings.setdefault((f.kind, f.key), [0, f.case, f.detail])
        slot[0] += 1

    def count(self, kind: str) -> int:
        return sum(v[0] for (k, _), v in self.findings.items() if k == kind)

    def as_json(self) -> dict:
        return {"schema": "tunstack-fuzz/1", "seed": self.seed, "cases": self.cases,
                "seconds": round(self.seconds, 1),
                "cases_per_s": round(self.cases / self.seconds, 1) if self.seconds else None,
                "per_state": dict(self.per_state),
                "exceptions": self.count("exception"), "invariant_violations": self.count("invariant"),
                "silent_drops": self.count("silent_drop"), "conversation_errors": self.count("conversation"),
                "findings": [{"kind": k, "key": key, "count": v[0], "reproduce": v[1], "detail": v[2]}
                             for (k, key), v in sorted(self.findings.items(), key=lambda kv: -kv[1][0])]}


def run(seed: int, cases: int, time_limit: float | None, progress=None, start: int = 0) -> Summary:
    summary = Summary(seed)
    t0 = time.monotonic()
    last = t0
    for index in range(start, start + cases):
        rng = random.Random(seed * 1_000_003 + index)
        summary.per_state[STATES[rng.randrange(len(STATES))]] += 1
        for f in run_case(seed, index):
            summary.add(f)
        summary.cases += 1
        now = time.monotonic()
        if progress and now - last >= 30:
            last = now
            progress(summary, now - t0)
        if time_limit is not None and now - t0 >= time_limit:
            break
    summary.seconds = time.monotonic() - t0
    return summary


def _progress(summary: Summary, elapsed: float) -> None:
    print(f"fuzz: {summary.cases} cases in {elapsed:.0f} s ({summary.cases / elapsed:.0f}/s); "
          f"exceptions {summary.count('exception')}, invariant violations {summary.count('invariant')}, "
          f"silent drops {summary.count('silent_drop')}", file=sys.stderr, flush=True)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="scripts/fuzz", formatter_class=argparse.RawDescriptionHelpFormatter,
                                description=__doc__.split("\n\n")[0],
                                epilog="Cases are reproducible: a finding names SEED:INDEX; --replay SEED:INDEX "
                                       "runs that case alone and prints each packet.\n"
                                       "The exit status is 1 when an exception escaped or an invariant broke, "
                                       "else 0 (silent drops are reported, not fatal).")
    p.add_argument("--cases", type=_positive_int, default=1_000_000, help="how many cases (default 1,000,000)")
    p.add_argument("--seed", type=int, default=1, help="seed of the run (default 1)")
    p.add_argument("--start", type=int, default=0, metavar="INDEX", help="first case index (to split a run)")
    p.add_argument("--time-limit", type=float, default=None, metavar="SEC", help="stop after this many seconds")
    p.add_argument("--json", metavar="FILE", help="write the summary as JSON here")
    p.add_argument("--replay", metavar="SEED:INDEX", help="run one case and print what happens")
    return p


def _positive_int(text: str) -> int:
    try:
        v = int(text.replace("_", "").replace(",", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}")
    if v <= 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return v


def _write_json(path: str, out: dict) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w") as fh:
        json.dump(out, fh, indent=1)
    os.replace(path + ".tmp", path)


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    if a.replay:
        try:
            seed, index = (int(x) for x in a.replay.split(":"))
        except ValueError:
            print(f"fuzz: --replay wants SEED:INDEX, e.g. 1:12345 (got {a.replay!r})", file=sys.stderr)
            return 2
        rng = random.Random(seed * 1_000_003 + index)
        state, variant = STATES[rng.randrange(len(STATES))], rng.randrange(16)
        print(f"case {seed}:{index}: state {state}, variant {variant}")
        findings = run_case(seed, index, log=print)
        for f in findings:
            print(f"{f.kind}: {f.key}: {f.detail}")
        return 1 if any(f.kind in ("exception", "invariant") for f in findings) else 0
    def progress(summary: Summary, elapsed: float) -> None:
        _progress(summary, elapsed)
        if a.json:  # a checkpoint: a run stopped from outside still leaves its figures
            summary.seconds = elapsed
            _write_json(a.json, summary.as_json())

    summary = run(a.seed, a.cases, a.time_limit, progress, a.start)
    out = summary.as_json()
    print(f"fuzz: {out['cases']} cases in {out['seconds']} s ({out['cases_per_s']}/s), seed {a.seed}: "
          f"{out['exceptions']} exception(s), {out['invariant_violations']} invariant violation(s), "
          f"{out['silent_drops']} silent drop(s), {out['conversation_errors']} conversation error(s)")
    for f in out["findings"][:30]:
        print(f"  {f['kind']:<12} {f['count']:>7}  {f['key']}  (e.g. --replay {f['reproduce']})")
    if a.json:
        _write_json(a.json, out)
    return 1 if out["exceptions"] or out["invariant_violations"] else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
