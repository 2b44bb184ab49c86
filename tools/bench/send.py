"""Per-segment cost of the send path in bulk: the TCP core in virtual time.

A ``Host`` (the whole core: IP, TCP, no link, no threads) accepts a connection from a peer
played here with real IPv4 packets (MSS 1460, window scale, SACK-permitted, timestamps on or
off). The application keeps the send buffer full (``Connection.send`` of what fits, then the
layer's ``after_user_call``, as a socket's ``send`` does); the peer acknowledges the oldest
``PER_ACK`` (11) data segments it got with each ACK (about what a slow reader's ACKs and window
updates cover in ``tools/asyncio_cpu.py --tun``) and offers a window that moves as a slow
reader's does: two ACKs in three carry a window other than the one before (in that run about two
thirds of the ACKs move it; header prediction's pure-ACK case takes them). The figure is the
core's CPU time per data segment sent: the ACK's processing (``Host.receive``), the segments it
lets out and the datagrams' bytes (``Host.take_output``), amortised over the data segments. The
application's ``send`` (its copy into the send buffer) is not timed.
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
MASK = 0xFFFFFFFF
WINDOW = 256 << 10       # the peer's receive window (window scale 7: the field is 2048)
PER_ACK = 11             # data segments each ACK covers (tools/asyncio_cpu.py --tun: ~11)


def _core():
    from stack.netstack import NetStack as Host
    from stack.tcp.config import TcpConfig
    from stack.wire.checksum import IPPROTO_TCP
    from stack.wire.ipv4 import build_ipv4
    from stack.wire.tcp import ACK, SYN, TcpSegment, build_tcp
    from stack.wire.ipv4 import parse_ipv4
    from stack.wire.tcp import parse_tcp

    def parse(raw):
        return parse_tcp(parse_ipv4(raw)[1])
    return Host, TcpConfig, IPPROTO_TCP, build_ipv4, ACK, SYN, TcpSegment, build_tcp, parse


class Sender:
    """The host sending bulk data and the peer acknowledging it."""

    def __init__(self, timestamps: bool):
        (Host, TcpConfig, self.proto, self.build_ipv4, self.ACK, self.SYN, self.Seg, self.build_tcp,
         self.parse) = _core()
        cfg = TcpConfig(timestamps=timestamps, sndbuf=1 << 20)
        self.host = Host(LOCAL, mtu=1500, tcp_config=cfg, rng=random.Random(1))
        self.listener = self.host.tcp.listen(LOCAL, LPORT, 8)
        self.ts = timestamps
        self.now = 0.0

    def packet(self, flags: int, seq: int, ack: int, window: int, **opts) -> bytes:
        if self.ts:
            opts.setdefault("tsval", int(self.now * 1000) & MASK)
            opts.setdefault("tsecr", 0)
        seg = self.Seg(PPORT, LPORT, seq & MASK, ack & MASK, flags, window, b"", **opts)
        tcp = self.build_tcp(seg, PEER, LOCAL)
        return self.build_ipv4(PEER, LOCAL, self.proto, len(tcp)) + tcp

    def segments(self) -> list:
        return [self.parse(raw) for raw in self.host.take_output(self.now)]

    def open(self, isn: int = 5000):
        self.host.receive(self.packet(self.SYN, isn, 0, 65535, mss=1460, wscale=7, sack_perm=True), self.now)
        synack = next(s for s in self.segments() if s.flags & self.SYN)
        self.host.receive(self.packet(self.ACK, isn + 1, synack.seq + 1, WINDOW >> 7, tsecr=synack.tsval or 0),
                          self.now)
        self.segments()
        self.rcv_nxt = isn + 1
        return self.listener.accept(), synack.seq + 1


def cost_per_segment(timestamps: bool, segments: int = 3000, per_ack: int = PER_ACK,
                     max_seconds: float = 3.0) -> dict:
    """Microseconds of core work per data segment sent in bulk."""
    s = Sender(timestamps)
    conn, acked = s.open()
    layer = s.host.tcp
    chunk = bytes(range(256)) * 256  # 64 KiB per send call
    pending: list = []  # (end seq, tsval) of the data segments the peer has not acknowledged yet
    sent = acks = 0
    receive, take, parse = s.host.receive, s.host.take_output, s.parse
    clock = time.thread_time  # CPU time: a loaded machine's waits for a core are not counted
    busy = 0.0  # the host's calls only: the peer's packet building and parsing are not timed
    t_end = time.perf_counter() + max_seconds
    while sent < segments:
        if conn.send_space():  # as a socket's send: what fits now (not timed: the application's copy)
            conn.send(chunk, s.now)
            layer.after_user_call(conn, s.now)
        t0 = clock()
        out = take(s.now)
        busy += clock() - t0
        for raw in out:
            seg = parse(raw)
            if seg.payload:
                pending.append(((seg.seq + len(seg.payload)) & MASK, seg.tsval))
                sent += 1
        if not pending or time.perf_counter() > t_end:
            break  # bounded
        s.now += 1e-4
        upto, tsval = pending[min(per_ack, len(pending)) - 1]
        del pending[:per_ack]
        field = (WINDOW >> 7) - (acks % 3 == 1)  # W, W-1, W, W, W-1, W: it moves on two ACKs in three
        ack = s.packet(s.ACK, s.rcv_nxt, upto, field, **({"tsecr": tsval} if timestamps else {}))
        t0 = clock()
        receive(ack, s.now)
        busy += clock() - t0
        acks += 1
        acked = upto
    elapsed = busy
    ok = sent > 0 and conn.snd_una == acked and conn.stats["retrans"] == 0
    out = {"timestamps": timestamps, "segments": sent, "acks": acks,
           "us_per_segment": round(elapsed / max(sent, 1) * 1e6, 2), "status": "ok" if ok else "error"}
    if not ok:
        out["error"] = f"sent {sent}, SND.UNA {conn.snd_una} (want {acked}), retrans {conn.stats['retrans']}"
    return out


def phase_send(segments: int = 3000, repeat: int = 3) -> dict:
    """The micro-benchmark with timestamps off and on; each the best of ``repeat`` runs."""
    try:
        rows = [min((cost_per_segment(ts, segments) for _ in range(repeat)), key=lambda r: r["us_per_segment"])
                for ts in (False, True)]
    except (ImportError, AttributeError, TypeError) as e:  # the core's interface moved under us
        return {"status": "error", "error": f"{type(e).__name__}: {e}"}
    bad = [r for r in rows if r["status"] != "ok"]
    return {"status": "error" if bad else "ok", "rows": rows, "per_ack": PER_ACK,
            **({"error": bad[0]["error"]} if bad else {})}


if __name__ == "__main__":  # python -m bench.send (from tools/): no root, no network
    import json
    print(json.dumps(phase_send(int(sys.argv[1]) if sys.argv[1:] else 3000), indent=1))
    os._exit(0)
