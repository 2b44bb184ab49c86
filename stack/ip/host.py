"""The whole protocol stack of one host, sans-I/O: IPv4 in and out, ICMP, UDP, TCP.

``receive(packet, now)`` takes one IPv4 packet; ``take_output(now)`` returns the
packets to write; ``next_deadline()`` and ``on_timers(now)`` drive the timers.
Every dropped packet is counted in ``stats`` under a named reason.
"""
from __future__ import annotations

import random
from collections import Counter
from typing import Callable

from ..trace import NULL_TRACER, Tracer
from ..wire import icmp as icmpw
from ..wire.checksum import IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP
from ..wire.errors import MalformedPacket
from ..wire.ipv4 import HEADER_LEN, build_ipv4, header_of, parse_ipv4
from ..wire.tcp import build_tcp_after, parse_tcp, tcp_header_len
from ..wire.udp import build_udp, parse_udp
from ..wire import vnet
from ..tcp.config import TcpConfig
from ..tcp.layer import TcpLayer
from .reassembly import Reassembler

UdpHandler = Callable[[bytes, int, bytes, int, bytes, float], None]  # (src, sport, dst, dport, payload, now)


class TokenBucket:
    """Rate limiter for ICMP errors (RFC 1812 4.3.2.8, RFC 1122 3.2.2)."""

    def __init__(self, rate: float, burst: float):
        self.rate, self.burst, self.tokens, self.last = rate, burst, burst, 0.0

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


def _martian_source(addr: bytes) -> bool:
    """RFC 1122 3.2.1.3 / RFC 1812 5.3.7: sources a host must not accept."""
    first = addr[0]
    return first == 0 or first == 127 or first >= 224 or addr == b"\xff\xff\xff\xff"


class Host:
    def __init__(self, address: bytes, mtu: int = 1500, tcp_config: TcpConfig | None = None,
                 tracer: Tracer = NULL_TRACER, rng: random.Random | None = None, isn=None,
                 icmp_rate: float = 100.0, icmp_burst: float = 20.0):
        self.address = address
        self.mtu = mtu
        self.tracer = tracer
        self.rng = rng or random.Random()
        self.stats: Counter = Counter()
        self.tcp = TcpLayer(mtu - 40, tcp_config, tracer, self.rng, isn)
        self.reassembler = Reassembler()
        self.udp_handlers: dict[int, UdpHandler] = {}
        self.icmp_limiter = TokenBucket(icmp_rate, icmp_burst)
        self._ident = self.rng.getrandbits(16)
        self._out: list[bytes] = []
        self._loop: list[bytes] = []  # packets to ourselves, delivered without the link
        self.offload = False  # packets carry a virtio-net header (TUN IFF_VNET_HDR); see set_offload

    def set_offload(self, on: bool) -> None:
        """TUN offloads: checksums left to the kernel and TSO super-segments (stack.wire.vnet)."""
        self.offload = on
        self.tcp.tso = on

    # ------------------------------------------------------------ input
    def receive(self, packet, now: float) -> None:
        """RFC 791 / RFC 1122 3.2.1: validate, reassemble, dispatch. Never raises on bad input."""
        trusted = False
        if self.offload:
            trusted = vnet.checksum_trusted(packet)  # the kernel made it: its checksum may be unfinished
            packet = memoryview(packet)[vnet.VNET_HDR_LEN:]
        self._input(packet, now, trusted)

    def _input(self, packet, now: float, trusted: bool) -> None:
        self.stats["ip_in"] += 1
        try:
            hdr, payload = parse_ipv4(packet)
        except MalformedPacket as exc:
            self._drop(exc.reason, now)
            return
        if hdr.dst != self.address:
            self._drop("ip_not_for_us", now)
            return
        if _martian_source(hdr.src):
            self._drop("ip_bad_source", now)
            return
        if hdr.is_fragment:
            self.stats["ip_fragments"] += 1
            whole = self.reassembler.add(hdr, payload, now, self._drop_reason_counter(now))
            if whole is None:
                return
            self.stats["ip_reassembled"] += 1
            hdr.mf, hdr.frag_offset, hdr.total_length = False, 0, hdr.header_len + len(whole)
            payload = memoryview(whole)
        try:
            self._dispatch(hdr, payload, now, trusted)
        except MalformedPacket as exc:
            self._drop(exc.reason, now)

    def _dispatch(self, hdr, payload, now: float, trusted: bool = False) -> None:
        proto = hdr.proto
        if proto == IPPROTO_TCP:
            seg = parse_tcp(payload, None, None) if trusted else parse_tcp(payload, hdr.src, hdr.dst)
            self.stats["tcp_in"] += 1
            self.tcp.segment_arrives(hdr.src, hdr.dst, seg, now)
        elif proto == IPPROTO_ICMP:
            self._icmp_arrives(hdr, payload, now)
        elif proto == IPPROTO_UDP:
            self._udp_arrives(hdr, payload, now, trusted)
        else:
            self._drop("ip_unknown_protocol", now)
            self._icmp_error(icmpw.DEST_UNREACH, icmpw.CODE_PROTO_UNREACH, hdr, payload, now)

    def _icmp_arrives(self, hdr, payload, now: float) -> None:
        msg = icmpw.parse_icmp(payload)
        self.stats["icmp_in"] += 1
        if msg.type == icmpw.ECHO_REQUEST:
            self.stats["icmp_echo_replies"] += 1
            self.send_ip(hdr.src, IPPROTO_ICMP, icmpw.echo_reply(msg), now)
        elif msg.type in (icmpw.DEST_UNREACH, icmpw.TIME_EXCEEDED):
            self.stats["icmp_errors_in"] += 1  # RFC 5927: soft errors; TCP keeps retrying
        else:
            self._drop("icmp_type_ignored", now)

    def _udp_arrives(self, hdr, payload, now: float, trusted: bool = False) -> None:
        dgram = parse_udp(payload, None, None) if trusted else parse_udp(payload, hdr.src, hdr.dst)
        self.stats["udp_in"] += 1
        handler = self.udp_handlers.get(dgram.dport)
        if handler is None:
            self._drop("udp_port_unreachable", now)
            self._icmp_error(icmpw.DEST_UNREACH, icmpw.CODE_PORT_UNREACH, hdr, payload, now)
            return
        handler(hdr.src, dgram.sport, hdr.dst, dgram.dport, dgram.payload, now)

    def _icmp_error(self, type_: int, code: int, hdr, payload, now: float) -> None:
        """RFC 1122 3.2.2: errors quote the header and 8 octets; rate-limited; never about broadcasts."""
        if hdr.proto == IPPROTO_ICMP and (len(payload) < 1 or payload[0] not in (icmpw.ECHO_REQUEST, icmpw.ECHO_REPLY)):
            self.stats["icmp_error_about_error_suppressed"] += 1  # RFC 1122 3.2.2: never about an ICMP error
            return
        if not self.icmp_limiter.take(now):
            self.stats["icmp_error_rate_limited"] += 1
            return
        self.stats["icmp_errors_out"] += 1
        self.send_ip(hdr.src, IPPROTO_ICMP, icmpw.error_message(type_, code, header_of(hdr), payload), now)

    def _drop(self, reason: str, now: float) -> None:
        self.stats["drop:" + reason] += 1
        if self.tracer.enabled:
            self.tracer.emit("drop", now, layer="ip", reason=reason)

    def _drop_reason_counter(self, now: float):
        return lambda reason: self._drop(reason, now)

    @property
    def drops(self) -> dict[str, int]:
        return {k[5:]: v for k, v in self.stats.items() if k.startswith("drop:")}

    # ------------------------------------------------------------ output
    @property
    def _plain(self) -> bytes:
        return vnet.PLAIN if self.offload else b""

    def send_ip(self, dst: bytes, proto: int, payload: bytes, now: float, df: bool = True) -> None:
        """RFC 791: one datagram, fragmented when it exceeds the MTU."""
        self._ident = (self._ident + 1) & 0xFFFF
        if HEADER_LEN + len(payload) <= self.mtu:
            self._out.append(self._plain + build_ipv4(self.address, dst, proto, len(payload), self._ident, df=df)
                             + payload)
            return
        chunk = (self.mtu - HEADER_LEN) & ~7
        for off in range(0, len(payload), chunk):
            part = payload[off:off + chunk]
            more = off + chunk < len(payload)
            self._out.append(self._plain + build_ipv4(self.address, dst, proto, len(part), self._ident, df=False,
                                                      mf=more, frag_offset=off) + part)
        self.stats["ip_fragmented_out"] += 1

    def send_udp(self, sport: int, dst: bytes, dport: int, payload: bytes, now: float) -> None:
        self.send_ip(dst, IPPROTO_UDP, build_udp(sport, dport, payload, self.address, dst), now, df=False)

    def take_output(self, now: float) -> list[bytes]:
        """Everything to write now: ICMP/UDP packets and the TCP segments (ACKs coalesced per batch).

        Packets to our own address never reach the link: they loop back into ``_input`` (as the
        kernel's ``lo`` does), until no more are produced (bounded)."""
        for _ in range(256):
            self._build_tcp_output(now)
            if not self._loop:
                break
            looped, self._loop = self._loop, []
            self.stats["ip_loopback"] += len(looped)
            for packet in looped:
                self._input(packet, now, trusted=True)
        out, self._out = self._out, []
        self.stats["ip_out"] += len(out)
        return out

    def _build_tcp_output(self, now: float) -> None:
        tcp = self.tcp
        tcp.flush(now)
        if not tcp.out:
            return
        ident = self._ident
        out, loop = self._out, self._loop
        offload = self.offload
        me = self.address
        for src, dst, seg in tcp.take_output():
            tcp_len = tcp_header_len(seg) + len(seg.payload)
            ident = (ident + 1) & 0xFFFF
            ip = build_ipv4(src, dst, IPPROTO_TCP, tcp_len, ident)
            if dst == me:
                loop.append(build_tcp_after(ip, seg, src, dst, partial=False))
            elif offload:
                ip = vnet.gso_header(20, tcp_len - len(seg.payload), seg.gso_size, 20 + tcp_len) + ip
                out.append(build_tcp_after(ip, seg, src, dst, partial=True))
            else:
                out.append(build_tcp_after(ip, seg, src, dst))
        self._ident = ident

    # ------------------------------------------------------------ timers
    def next_deadline(self) -> float | None:
        a, b = self.tcp.next_deadline(), self.reassembler.next_deadline()
        if a is None:
            return b
        return a if b is None or a < b else b

    def on_timers(self, now: float) -> None:
        self.tcp.on_timers(now)
        for hdr, first in self.reassembler.expire(now):
            self._drop("frag_timeout", now)
            self._icmp_error(icmpw.TIME_EXCEEDED, icmpw.CODE_REASSEMBLY_TIMEOUT, hdr, first, now)
