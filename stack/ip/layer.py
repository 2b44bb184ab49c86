"""The IP layer, sans-I/O: IPv4 in and out, fragment reassembly, ICMP, UDP demultiplexing.

``receive(packet, now)`` validates one IPv4 packet and hands its payload to the handler
registered for its protocol in ``protocols`` (TCP is registered by stack/netstack.py: this
package never imports stack/tcp), to ICMP or to a UDP port handler. Datagrams this layer
originates itself (ICMP replies and errors, UDP, fragments) wait in ``outq`` until the
netstack's ``take_output`` pulls them. Every dropped packet is counted in ``stats`` under a
named reason.
"""
from __future__ import annotations

import random
from collections import Counter
from typing import Callable

from ..ratelimit import TokenBucket
from ..trace import NULL_TRACER, Tracer
from ..wire import icmp as icmpw
from ..wire.checksum import IPPROTO_ICMP, IPPROTO_UDP
from ..wire.errors import MalformedPacket
from ..wire.ipv4 import HEADER_LEN, build_ipv4, header_of, parse_ipv4
from ..wire.udp import build_udp, parse_udp
from ..wire import vnet
from .reassembly import Reassembler

UdpHandler = Callable[[bytes, int, bytes, int, bytes, float], None]  # (src, sport, dst, dport, payload, now)
ProtocolHandler = Callable[..., None]  # (hdr, payload, now, trusted): an upper layer's input
# (type, code, rest, quoted src, quoted dst, quoted payload (>= 8 octets), now): an ICMP error about
# a datagram of that protocol that we sent (RFC 1122 3.2.2, RFC 9293 3.9.1.3)
ErrorHandler = Callable[[int, int, int, bytes, bytes, bytes, float], None]


def martian_source(addr: bytes) -> bool:
    """RFC 1122 3.2.1.3 / RFC 1812 5.3.7: sources a host must not accept."""
    first = addr[0]
    return first == 0 or first == 127 or first >= 224 or addr == b"\xff\xff\xff\xff"


class IpLayer:
    def __init__(self, address: bytes, mtu: int = 1500, tracer: Tracer = NULL_TRACER,
                 rng: random.Random | None = None, icmp_rate: float = 100.0, icmp_burst: float = 20.0):
        self.address = address
        self.mtu = mtu
        self.tracer = tracer
        self.stats: Counter = Counter()
        self.reassembler = Reassembler()
        self.protocols: dict[int, ProtocolHandler] = {}  # upper layers by IP protocol number (TCP: netstack)
        self.udp_handlers: dict[int, UdpHandler] = {}
        self.error_handlers: dict[int, ErrorHandler] = {}  # ICMP errors by quoted protocol (TCP, UDP: netstack)
        self.icmp_limiter = TokenBucket(icmp_rate, icmp_burst)
        self.ident = (rng or random.Random()).getrandbits(16)  # RFC 791 Identification of the last datagram
        self.outq: list = []  # datagrams to write, in order (pulled by the netstack's take_output)
        self.offload = False  # packets carry a virtio-net header (TUN IFF_VNET_HDR)

    # ------------------------------------------------------------ input
    def receive(self, packet, now: float) -> None:
        """RFC 791 / RFC 1122 3.2.1: validate, reassemble, dispatch. Never raises on bad input."""
        trusted = False
        if self.offload:
            trusted = vnet.checksum_trusted(packet)  # the kernel made it: its checksum may be unfinished
            packet = memoryview(packet)[vnet.VNET_HDR_LEN:]
        self.input(packet, now, trusted)

    def input(self, packet, now: float, trusted: bool) -> None:
        """One IPv4 packet without link header (also our own looped-back packets: see stack/netstack.py)."""
        self.stats["ip_in"] += 1
        try:
            hdr, payload = parse_ipv4(packet)
        except MalformedPacket as exc:
            self.drop(exc.reason, now)
            return
        if hdr.dst != self.address:
            self.drop("ip_not_for_us", now)
            return
        if martian_source(hdr.src):
            self.drop("ip_bad_source", now)
            return
        if hdr.is_fragment:
            self.stats["ip_fragments"] += 1
            whole = self.reassembler.add(hdr, payload, now, self.drop_reason_counter(now))
            if whole is None:
                return
            self.stats["ip_reassembled"] += 1
            hdr.mf, hdr.frag_offset, hdr.total_length = False, 0, hdr.header_len + len(whole)
            payload = memoryview(whole)
        try:
            self._dispatch(hdr, payload, now, trusted)
        except MalformedPacket as exc:
            self.drop(exc.reason, now)

    def _dispatch(self, hdr, payload, now: float, trusted: bool = False) -> None:
        proto = hdr.proto
        upper = self.protocols.get(proto)
        if upper is not None:
            upper(hdr, payload, now, trusted)
        elif proto == IPPROTO_ICMP:
            self._icmp_arrives(hdr, payload, now)
        elif proto == IPPROTO_UDP:
            self._udp_arrives(hdr, payload, now, trusted)
        else:
            self.drop("ip_unknown_protocol", now)
            self.icmp_error(icmpw.DEST_UNREACH, icmpw.CODE_PROTO_UNREACH, hdr, payload, now)

    def _icmp_arrives(self, hdr, payload, now: float) -> None:
        msg = icmpw.parse_icmp(payload)
        self.stats["icmp_in"] += 1
        if msg.type == icmpw.ECHO_REQUEST:
            self.stats["icmp_echo_replies"] += 1
            self.send_ip(hdr.src, IPPROTO_ICMP, icmpw.echo_reply(msg), now)
        elif msg.type in (icmpw.DEST_UNREACH, icmpw.TIME_EXCEEDED):
            self.stats["icmp_errors_in"] += 1
            self._icmp_error_arrives(msg, now)
        else:
            self.drop("icmp_type_ignored", now)

    def answer_echo(self, packet) -> bool:
        """The fast path of ping inside ``receive``: ``echo_reply``'s reply queued like any output.
        False: take the general path."""
        reply = self.echo_reply(packet)
        if reply is None:
            return False
        self.echo_replied()
        self.outq.append(reply)
        return True

    def echo_reply(self, packet):
        """A valid echo request of the common shape for us (no IP options, not a fragment:
        ``icmp.echo_reply_datagram``) -> its reply datagram, with the same bytes as ``input`` ->
        ``_icmp_arrives`` -> ``send_ip`` (the IP identification is taken); counted by
        ``echo_replied``, which a driver calls once the reply is written (``NetStack.answer_ping``).
        None: take the general path. With TUN offloads a virtio-net header leads the request; only a
        plain one (no flags, no GSO: the kernel asked for nothing) is answered here, and the reply
        carries ``vnet.PLAIN`` as every datagram we send then does."""
        if self.offload:
            if packet[0] or packet[1]:  # flags, gso_type (stack.wire.vnet): receive's job
                return None
            reply = self._echo_reply(memoryview(packet)[vnet.VNET_HDR_LEN:])
            return None if reply is None else vnet.PLAIN + reply
        return self._echo_reply(packet)

    def _echo_reply(self, packet):
        ident = (self.ident + 1) & 0xFFFF
        reply = icmpw.echo_reply_datagram(packet, self.address, ident)
        if reply is None or martian_source(reply[16:20]):
            return None
        self.ident = ident
        return reply

    def echo_replied(self) -> None:
        """The counters of an echo request answered by ``echo_reply``, as ``_icmp_arrives`` counts one."""
        stats = self.stats
        stats["ip_in"] += 1
        stats["icmp_in"] += 1
        stats["icmp_echo_replies"] += 1

    def _icmp_error_arrives(self, msg, now: float) -> None:
        """RFC 1122 3.2.2: pass an error to the protocol of the datagram it quotes (its IP header and at
        least 8 octets: ports and, for TCP, the sequence number). Only datagrams we sent count."""
        q = msg.payload
        ihl = (q[0] & 0x0F) * 4 if q else 0
        if len(q) < 20 or q[0] >> 4 != 4 or ihl < 20 or len(q) < ihl + 8:
            self.drop("icmp_error_short_quote", now)
            return
        src, dst = bytes(q[12:16]), bytes(q[16:20])
        handler = self.error_handlers.get(q[9])
        if src != self.address or handler is None:
            self.drop("icmp_error_unhandled", now)
            return
        handler(msg.type, msg.code, msg.rest, src, dst, bytes(q[ihl:]), now)

    def _udp_arrives(self, hdr, payload, now: float, trusted: bool = False) -> None:
        dgram = parse_udp(payload, None, None) if trusted else parse_udp(payload, hdr.src, hdr.dst)
        self.stats["udp_in"] += 1
        handler = self.udp_handlers.get(dgram.dport)
        if handler is None:
            self.drop("udp_port_unreachable", now)
            self.icmp_error(icmpw.DEST_UNREACH, icmpw.CODE_PORT_UNREACH, hdr, payload, now)
            return
        handler(hdr.src, dgram.sport, hdr.dst, dgram.dport, dgram.payload, now)

    def icmp_error(self, type_: int, code: int, hdr, payload, now: float) -> None:
        """RFC 1122 3.2.2: errors quote the header and 8 octets; rate-limited; never about broadcasts."""
        if hdr.proto == IPPROTO_ICMP and (len(payload) < 1 or payload[0] not in (icmpw.ECHO_REQUEST, icmpw.ECHO_REPLY)):
            self.stats["icmp_error_about_error_suppressed"] += 1  # RFC 1122 3.2.2: never about an ICMP error
            return
        if not self.icmp_limiter.take(now):
            self.stats["icmp_error_rate_limited"] += 1
            return
        self.stats["icmp_errors_out"] += 1
        self.send_ip(hdr.src, IPPROTO_ICMP, icmpw.error_message(type_, code, header_of(hdr), payload), now)

    def drop(self, reason: str, now: float) -> None:
        self.stats["drop:" + reason] += 1
        if self.tracer.enabled:
            self.tracer.emit("drop", now, layer="ip", reason=reason)

    def drop_reason_counter(self, now: float):
        return lambda reason: self.drop(reason, now)

    @property
    def drops(self) -> dict[str, int]:
        return {k[5:]: v for k, v in self.stats.items() if k.startswith("drop:")}

    # ------------------------------------------------------------ output
    @property
    def _plain(self) -> bytes:
        return vnet.PLAIN if self.offload else b""

    def send_ip(self, dst: bytes, proto: int, payload: bytes, now: float, df: bool = True,
                ip_fields: tuple[int, int] | None = None) -> None:
        """RFC 791: one datagram, fragmented when it exceeds the MTU; ``ip_fields``: (TTL, TOS), RFC 1122
        3.2.1.6/3.2.1.7 (the transport's IP_TTL/IP_TOS), else 64 and 0."""
        self.ident = (self.ident + 1) & 0xFFFF
        ttl, tos = ip_fields or (64, 0)
        if HEADER_LEN + len(payload) <= self.mtu:
            self.outq.append(self._plain + build_ipv4(self.address, dst, proto, len(payload), self.ident, ttl=ttl,
                                                      df=df, tos=tos) + payload)
            return
        chunk = (self.mtu - HEADER_LEN) & ~7
        for off in range(0, len(payload), chunk):
            part = payload[off:off + chunk]
            more = off + chunk < len(payload)
            self.outq.append(self._plain + build_ipv4(self.address, dst, proto, len(part), self.ident, ttl=ttl,
                                                      df=False, tos=tos, mf=more, frag_offset=off) + part)
        self.stats["ip_fragmented_out"] += 1

    def send_udp(self, sport: int, dst: bytes, dport: int, payload: bytes, now: float,
                 ip_fields: tuple[int, int] | None = None) -> None:
        self.send_ip(dst, IPPROTO_UDP, build_udp(sport, dport, payload, self.address, dst), now, df=False,
                     ip_fields=ip_fields)

    # ------------------------------------------------------------ timers
    def next_deadline(self) -> float | None:
        return self.reassembler.next_deadline()

    def on_timers(self, now: float) -> None:
        """RFC 1122 3.3.2: expire reassembly; ICMP time exceeded (code 1) for a first fragment."""
        for hdr, first in self.reassembler.expire(now):
            self.drop("frag_timeout", now)
            self.icmp_error(icmpw.TIME_EXCEEDED, icmpw.CODE_REASSEMBLY_TIMEOUT, hdr, first, now)
