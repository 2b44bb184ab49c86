"""Per-segment cost of the receive path with N out-of-order blocks queued: the TCP core in virtual time.

A ``Host`` (the whole core: IP, TCP, no link, no threads) is fed real IPv4 packets through its
public input, ``Host.receive(packet, now)``, and drained with ``Host.take_output(now)``, so the
figure holds whatever data structure the core keeps its out-of-order queue and SACK blocks in.
The peer opens a connection (MSS, window scale, SACK-permitted), leaves a hole at RCV.NXT and
sends N one-segment blocks with a hole before each; then it times M segments that arrive in
order right after the last block (the common case during recovery: data keeps coming behind a
loss), each answered by a duplicate ACK with SACK blocks. Blocks = 0 is the in-order baseline.

``bulk_in_order`` is the upload phase's shape in the same virtual time: full-sized segments
(1,448 bytes and timestamps, as Linux sends them at MTU 1500) read in batches of 64, each batch
handed to ``Host.receive_batch`` (GRO; one by one where a core has no such method), the output
pulled and the receive buffer read after it, as the runtime and the discard server do.
"""
from __future__ import annotations

import os
import random
import sys
import time

from .config import REPO

if REPO not in sys.path:
    sys.path.insert(0, REPO)

LOCAL, PEER = bytes([192, 0, 2, 2]), bytes([192, 0, 2, 1])
LPORT, PPORT = 80, 40000
PAYLOAD = 100  # bytes per segment: 1,000 blocks and their holes stay well inside the window
MASK = 0xFFFFFFFF


def _core():
    """The core's public pieces this benchmark uses (imported late: the bench runs without them)."""
    from stack.netstack import NetStack as Host
    from stack.tcp.config import TcpConfig
    from stack.wire.checksum import IPPROTO_TCP
    from stack.wire.ipv4 import build_ipv4, parse_ipv4
    from stack.wire.tcp import ACK, SYN, TcpSegment, build_tcp, parse_tcp
    return Host, TcpConfig, IPPROTO_TCP, build_ipv4, parse_ipv4, ACK, SYN, TcpSegment, build_tcp, parse_tcp


class Peer:
    """The test's side: builds IPv4/TCP packets and reads what the host sends back."""

    def __init__(self, blocks: int):
        (Host, TcpConfig, self.proto, self.build_ipv4, self.parse_ipv4, self.ACK, self.SYN,
         self.Seg, self.build_tcp, self.parse_tcp) = _core()
        # a fixed 4 MiB receive buffer: nobody reads, and an autotuned one (64 KiB at first) would fill
        # and time the full-buffer drop instead of the receive path
        settings = {"timestamps": False, "ofo_max_segments": max(4096, 2 * blocks + 16), "rcvbuf": 4 << 20}
        defaults = TcpConfig()
        cfg = TcpConfig(**{k: v for k, v in settings.items() if hasattr(defaults, k)})  # a bound that may go
        self.host = Host(LOCAL, mtu=1500, tcp_config=cfg, rng=random.Random(blocks))
        self.host.tcp.listen(LOCAL, LPORT, 8)
        self.now = 0.0

    def packet(self, flags: int, seq: int, ack: int, payload: bytes = b"", **opts) -> bytes:
        seg = self.Seg(PPORT, LPORT, seq & MASK, ack & MASK, flags, 65535, payload, **opts)
        tcp = self.build_tcp(seg, PEER, LOCAL)
        return self.build_ipv4(PEER, LOCAL, self.proto, len(tcp)) + tcp

    def exchange(self, pkt: bytes) -> list:
        self.host.receive(pkt, self.now)
        out = []
        for raw in self.host.take_output(self.now):
            hdr, payload = self.parse_ipv4(raw)
            out.append(self.parse_tcp(payload))
        return out

    def open(self, isn: int = 5000) -> tuple[int, int]:
        """Three-way handshake; returns (our next seq, the host's next seq)."""
        out = self.exchange(self.packet(self.SYN, isn, 0, mss=1460, wscale=7, sack_perm=True))
        synack = next(s for s in out if s.flags & self.SYN)
        self.exchange(self.packet(self.ACK, isn + 1, synack.seq + 1))
        return isn + 1, synack.seq + 1


def cost_per_segment(blocks: int, segments: int = 300, max_seconds: float = 1.5,
                     max_setup: float = 15.0) -> dict:
    """Microseconds of core work per arriving segment with ``blocks`` out-of-order blocks queued."""
    peer = Peer(blocks)
    wanted = blocks
    base, their = peer.open()
    data = bytes(PAYLOAD)
    # blocks: [base + (2i+1)L, base + (2i+2)L) for i < blocks: a hole of L before each
    t_setup = time.perf_counter()
    for i in range(blocks):  # one batch, one output pass (as the runtime reads a batch of packets)
        peer.host.receive(peer.packet(peer.ACK, base + (2 * i + 1) * PAYLOAD, their, data), peer.now)
        if time.perf_counter() - t_setup > max_setup:
            blocks = i + 1  # bounded: report the queue length actually reached
            break
    peer.host.take_output(peer.now)
    setup_s = time.perf_counter() - t_setup
    start = base + (2 * blocks) * PAYLOAD if blocks else base
    timed = [peer.packet(peer.ACK, start + j * PAYLOAD, their, data) for j in range(segments)]
    receive, take = peer.host.receive, peer.host.take_output
    last = []
    done = 0
    t0 = time.perf_counter()
    for pkt in timed:
        peer.now += 1e-5
        receive(pkt, peer.now)
        last = take(peer.now) or last
        done += 1
        if done >= 20 and time.perf_counter() - t0 > max_seconds:
            break  # bounded: a slow queue still gives its figure
    elapsed = time.perf_counter() - t0
    if not blocks:  # in order, small segments: the ACK is delayed; let the timer send it
        peer.now += 1.0
        peer.host.on_timers(peer.now)
        last = take(peer.now) or last
    acks = [peer.parse_tcp(peer.parse_ipv4(raw)[1]) for raw in last]
    ack = acks[-1] if acks else None
    want_ack = (base if blocks else start + done * PAYLOAD) & MASK
    ok = ack is not None and ack.ack == want_ack and (not blocks or bool(ack.sack))
    out = {"blocks": blocks, "segments": done, "us_per_segment": round(elapsed / done * 1e6, 2),
           "setup_s": round(setup_s, 2), "status": "ok" if ok else "error"}
    if blocks != wanted:
        out["blocks_wanted"] = wanted
    if not ok:
        out["error"] = f"unexpected reply: {ack!r} (wanted ack {want_ack}{' with SACK' if blocks else ''})"
    return out


BULK_MSS = 1448  # MSS 1460 less the timestamp option


def bulk_in_order(batches: int = 300, batch: int = 64, max_seconds: float = 3.0) -> dict:
    """Microseconds of core work per full-sized in-order segment, in batches (see the module text)."""
    Host, TcpConfig, proto, build_ipv4, parse_ipv4, ACK, SYN, Seg, build_tcp, parse_tcp = _core()
    host = Host(LOCAL, mtu=1500, tcp_config=TcpConfig(rcvbuf=4 << 20), rng=random.Random(1))
    host.tcp.listen(LOCAL, LPORT, 8)

    def packet(flags, seq, ack, payload=b"", **opts) -> bytes:
        tcp = build_tcp(Seg(PPORT, LPORT, seq & MASK, ack & MASK, flags, 65535, payload, **opts), PEER, LOCAL)
        return build_ipv4(PEER, LOCAL, proto, len(tcp)) + tcp

    host.receive(packet(SYN, 5000, 0, mss=1460, wscale=7, sack_perm=True, tsval=1, tsecr=0), 0.0)
    synack = next(s for s in (parse_tcp(parse_ipv4(r)[1]) for r in host.take_output(0.0)) if s.flags & SYN)
    host.receive(packet(ACK, 5001, synack.seq + 1, tsval=1, tsecr=synack.tsval), 0.0)
    host.take_output(0.0)
    conn = next(iter(host.tcp.conns.values()))
    receive_batch = getattr(host, "receive_batch", None)
    sink = memoryview(bytearray(1 << 20))
    data = bytes(range(256)) * 6
    seq, now, elapsed, done = 5001, 0.0, 0.0, 0
    for i in range(batches):
        now += 0.001  # a new TSval each batch: the peer's 1 ms clock
        pkts = [packet(ACK, seq + j * BULK_MSS, synack.seq + 1, data[j:j + BULK_MSS], tsval=2 + i, tsecr=synack.tsval)
                for j in range(batch)]
        t0 = time.perf_counter()
        if receive_batch is not None:
            receive_batch(pkts, now)
        else:
            for p in pkts:
                host.receive(p, now)
        host.take_output(now)
        while conn.recv_into(sink, now):
            pass
        host.take_output(now)
        elapsed += time.perf_counter() - t0
        seq, done = seq + batch * BULK_MSS, done + batch
        if elapsed > max_seconds:
            break  # bounded: a slow core still gives its figure
    ok = conn.rcv_nxt == seq & MASK
    return {"segments": done, "batch": batch, "payload": BULK_MSS, "gro": receive_batch is not None,
            "us_per_segment": round(elapsed / done * 1e6, 2), "status": "ok" if ok else "error",
            **({} if ok else {"error": f"RCV.NXT {conn.rcv_nxt}, wanted {seq & MASK}"})}


def phase_ofo(block_counts, segments: int = 300) -> dict:
    """The micro-benchmark for each block count, plus the in-order baseline (0 blocks)."""
    try:
        rows = [cost_per_segment(n, segments) for n in [0, *block_counts]]
        bulk = bulk_in_order()
    except (ImportError, AttributeError, TypeError) as e:  # the core's interface moved under us
        return {"status": "error", "error": f"{type(e).__name__}: {e}"}
    base = rows[0]["us_per_segment"]
    for r in rows:
        r["vs_in_order"] = round(r["us_per_segment"] / base, 2) if base else None
    bad = [r for r in [*rows, bulk] if r["status"] != "ok"]
    return {"status": "error" if bad else "ok", "rows": rows, "payload": PAYLOAD, "bulk": bulk,
            **({"error": bad[0]["error"]} if bad else {})}


if __name__ == "__main__":  # python -m bench.ofo (from tools/): no root, no network
    import json
    print(json.dumps(phase_ofo([int(x) for x in (sys.argv[1:] or ["10", "100", "1000"])]), indent=1))
    os._exit(0)
