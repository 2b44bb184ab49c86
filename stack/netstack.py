"""The whole protocol stack of one host, sans-I/O: the IP layer with TCP on top of it.

``NetStack`` ties stack/ip (IPv4, fragments, ICMP, UDP) and stack/tcp together; neither of
those packages imports the other. It is what a driver (stack/runtime for a real link,
stack/sim.py in virtual time) talks to:

- ``receive(packet, now)``: one packet from the link (never raises: a bad packet is counted,
  an internal error is isolated, see ``_internal_error``); ``receive_batch(packets, now)``: the
  packets of one read, the same with GRO (``stack.wire.gro``); ``answer_ping(packet)`` first, if
  the driver writes a ping's reply itself, at once (then ``ping_answered()``);
- ``take_output(now)``: PULL every datagram to write now: what the IP layer originated
  (ICMP, UDP) and the segments of every TCP connection with work (``TcpLayer.segments_to_send``,
  which also sends the ACKs coalesced over the input batch); packets to our own address
  loop back into the input here, as the kernel's ``lo`` does;
- ``next_deadline()`` (when the stack next needs the clock: smoltcp's ``poll_at``) and
  ``on_timers(now)``.
"""
from __future__ import annotations

import logging
import random
import struct

from .tcp.config import TcpConfig
from .tcp.layer import TcpLayer
from .tcp.states import State
from .trace import NULL_TRACER, Tracer
from .ip.layer import IpLayer, martian_source
from .ip.udp import UdpLayer
from .wire import vnet
from .wire.gro import chain_start
from .wire.checksum import IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP
from .wire.errors import MalformedPacket
from .wire.ipv4 import build_ipv4
from .wire.tcp import build_tcp_after, parse_tcp, tcp_header_len
from .wire.tcpip import SegmentTrain, parse_ipv4_tcp, parse_ipv4_tcp_fields, segment_of, template_for

log = logging.getLogger(__name__)
LOOPBACK_ROUNDS = 256  # bound on ping-pong between two of our own sockets within one pull


class NetStack:
    def __init__(self, address: bytes, mtu: int = 1500, tcp_config: TcpConfig | None = None,
                 tracer: Tracer = NULL_TRACER, rng: random.Random | None = None, isn=None,
                 icmp_rate: float = 100.0, icmp_burst: float = 20.0):
        self.rng = rng or random.Random()
        self.tcp = TcpLayer(mtu - 40, tcp_config, tracer, self.rng, isn)  # draws from rng first (seeded runs)
        self.ip = IpLayer(address, mtu, tracer, self.rng, icmp_rate, icmp_burst)
        self.ip.protocols[IPPROTO_TCP] = self._tcp_arrives
        # UDP sockets (stack/ip/udp.py); its rng is derived from the state without drawing from it: seeded
        # runs keep every TCP number they had before UDP existed
        self.udp = UdpLayer(self.ip, random.Random(hash(self.rng.getstate())))
        self.ip.protocols[IPPROTO_UDP] = self.udp.datagram_arrives
        self.ip.error_handlers[IPPROTO_UDP] = self.udp.icmp_error_arrives
        self.ip.error_handlers[IPPROTO_TCP] = self._tcp_icmp_error
        self.tracer = tracer
        self._loop: list[bytes] = []  # packets to ourselves, delivered without the link
        self.fast_path = True  # the IPv4+TCP fast paths (stack.wire.tcpip); False: the layered code only
        self.gro = True  # receive_batch merges in-sequence segments (stack.wire.gro); False: one by one
        # what the IP layer owns, under the names drivers and tests use (the same objects)
        self.address, self.mtu, self.offload = address, mtu, False
        self.stats = self.ip.stats  # one Counter for the host (the TCP layer keeps its own)
        self.udp_handlers = self.ip.udp_handlers
        self.reassembler = self.ip.reassembler
        self.icmp_limiter = self.ip.icmp_limiter

    @property
    def drops(self) -> dict[str, int]:
        return self.ip.drops

    def send_udp(self, sport: int, dst: bytes, dport: int, payload: bytes, now: float) -> None:
        self.ip.send_udp(sport, dst, dport, payload, now)

    def set_offload(self, on: bool) -> None:
        """TUN offloads: checksums left to the kernel and TSO super-segments (stack.wire.vnet)."""
        self.ip.offload = self.offload = on
        self.tcp.tso = on

    # ------------------------------------------------------------ input
    def receive(self, packet, now: float) -> None:
        """One packet from the link. Bad input is counted by the layers; a bug is isolated here.

        The fast paths: a valid, unfragmented IPv4 TCP datagram of the common shape for us
        (``stack.wire.tcpip.parse_ipv4_tcp``) goes straight to TCP, and a ping is answered at once
        (``IpLayer.answer_echo``), with the same counters as the general path (``IpLayer.receive``
        -> ``_tcp_arrives`` or ``_icmp_arrives``), which takes every other packet."""
        try:
            if self.fast_path:
                if self.offload:
                    if self._receive_offloaded(packet, now):
                        return
                elif len(packet) >= 28 and packet[9] == IPPROTO_ICMP:
                    if self.ip.answer_echo(packet):
                        return
                else:
                    parsed = parse_ipv4_tcp(packet)
                    if parsed is not None and parsed[1] == self.address and not martian_source(parsed[0]):
                        self._tcp_fast(parsed[0], parsed[1], parsed[2], 1, now)
                        return
            self.ip.receive(packet, now)
        except Exception as exc:  # the stack thread must not die of one packet
            self._internal_error(packet, now, exc)

    def _receive_offloaded(self, packet, now: float) -> bool:
        """The TCP fast path under TUN offloads: the virtio-net header off, the checksum checked
        only where ``IpLayer.receive`` would check it (the kernel did not vouch for it), the payload
        kept as a view as there. False: take the general path (ICMP too: ``answer_ping`` had it)."""
        fields = parse_ipv4_tcp_fields(memoryview(packet)[vnet.VNET_HDR_LEN:], vnet.checksum_trusted(packet),
                                       view=True)  # (None for what is too short or not TCP)
        if fields is None or fields[1] != self.address or martian_source(fields[0]):
            return False
        self._tcp_fast(fields[0], fields[1], segment_of(fields), 1, now)
        return True

    def answer_ping(self, packet):
        """The driver's ping path: the reply to a valid echo request of the common shape for us
        (``IpLayer.echo_reply``), for the driver to write at once, before it looks at the clock, the
        rest of the batch or TCP, and to count after the write (``ping_answered``): a lone ping then
        runs the least code between the wake-up and the write (docs/benchmarks.md, *Ping*). None:
        give the packet to ``receive``, which also meets and counts any fault met here."""
        at = 9 + vnet.VNET_HDR_LEN if self.ip.offload else 9  # the IP protocol field
        if not self.fast_path or len(packet) < at + 19 or packet[at] != IPPROTO_ICMP:
            return None
        try:
            return self.ip.echo_reply(packet)
        except Exception:  # receive() runs into it again, isolated and counted there (_internal_error)
            return None

    def ping_answered(self) -> None:
        """Count a reply from ``answer_ping`` the driver has written: what ``receive`` and
        ``take_output`` count for it."""
        self.ip.echo_replied()
        self.stats["ip_out"] += 1

    def receive_batch(self, packets, now: float) -> None:
        """The packets of one read from the link, in order (any iterable: the runtime reads each one
        as this loop takes it), each as ``receive`` would take it, except that on the fast path the
        in-sequence data segments of a flow reach TCP merged into one segment (GRO,
        ``stack.wire.gro``: Linux runs ``tcp_gro_receive`` over a driver's poll the same way) where
        that is exactly what the packets one by one would do (``_tcp_chain``). Every packet is still
        parsed and checksummed on its own, and counted (``ip_in``, ``tcp_in``, TCP's ``segs_in``)."""
        if not (self.gro and self.fast_path) or self.offload:
            for packet in packets:
                self.receive(packet, now)
            return
        me, chain, packets = self.address, None, iter(packets)
        packet = next(packets, None)
        while packet is not None:
            try:
                fields = parse_ipv4_tcp_fields(packet)
                if fields is not None and chain is not None and chain.offer(fields, packet):
                    packet = chain.take_from(packets)  # (its addresses are the chain's, checked when it started)
                    continue  # then the chain's next packets (checked in full: GroChain.take_from)
                if chain is not None:  # the chain is complete: TCP sees it before this packet
                    held, chain = chain, None
                    self._tcp_chain(held, now)
                if fields is None or fields[1] != me or martian_source(fields[0]):
                    self.receive(packet, now)  # the general path (or a ping's fast answer)
                else:
                    chain = chain_start(fields, packet)
                    if chain is not None:
                        packet = chain.take_from(packets)
                        continue
                    self._tcp_fast(fields[0], fields[1], segment_of(fields), 1, now)
            except OSError:
                raise  # the link's read (``packets``): not one packet's fault
            except Exception as exc:  # as receive: the stack thread must not die of one packet
                self._internal_error(packet, now, exc)  # (a chain held meanwhile is kept: offer raises before it merges)
            packet = next(packets, None)
        if chain is not None:
            try:
                self._tcp_chain(chain, now)
            except Exception as exc:
                self._internal_error(chain.packets[-1], now, exc)

    def _tcp_chain(self, chain, now: float) -> None:
        """A GRO chain -> TCP: whole where its connection takes it exactly as it would take the packets
        one by one (``Connection.takes_whole``: in-order full-sized data on the fast path), else the
        packets one by one."""
        src, dst = chain.src, chain.dst
        if len(chain) == 1:
            self._tcp_fast(src, dst, chain.segment(), 1, now)
            return
        seg = chain.segment()
        conn = self.tcp.conns.get((dst, seg.dport, src, seg.sport))
        if conn is not None and conn.state is State.ESTABLISHED and conn.takes_whole(seg):
            self._tcp_fast(src, dst, seg, len(chain), now)
            return
        for piece in chain.segments():
            self._tcp_fast(src, dst, piece, 1, now)

    def _tcp_fast(self, src: bytes, dst: bytes, seg, packets: int, now: float) -> None:
        """Fast path -> TCP: ``seg`` came in ``packets`` datagrams (more than one: merged by GRO)."""
        stats = self.stats
        stats["ip_in"] += packets
        stats["tcp_in"] += packets
        try:
            self.tcp.segment_arrives(src, dst, seg, now)
        except MalformedPacket as exc:  # as IpLayer.input counts it for any upper layer
            self.ip.drop(exc.reason, now)

    def _tcp_arrives(self, hdr, payload, now: float, trusted: bool) -> None:
        """IP -> TCP: checksum over the pseudo-header (RFC 9293 3.1) unless the kernel vouched for it."""
        seg = parse_tcp(payload, view=True) if trusted else parse_tcp(payload, hdr.src, hdr.dst, view=True)
        self.stats["tcp_in"] += 1
        self.tcp.segment_arrives(hdr.src, hdr.dst, seg, now)

    def _tcp_icmp_error(self, type_: int, code: int, rest: int, src: bytes, dst: bytes, quoted: bytes,
                        now: float) -> None:
        """IP -> TCP: an ICMP error quoting one of our segments (RFC 9293 3.9.1.3): its ports and SEQ."""
        sport, dport, seq = struct.unpack_from("!HHI", quoted)
        self.tcp.icmp_error((src, sport), (dst, dport), seq, type_, code, rest & 0xFFFF, now)

    def _internal_error(self, packet, now: float, exc: Exception) -> None:
        """An exception outside any one connection's code (those the TCP layer isolates itself)."""
        self.stats["ip_internal_error"] += 1
        log.error("internal error on a packet of %d bytes (%s): %r", len(packet), bytes(packet[:40]).hex(), exc,
                  exc_info=exc)
        if self.tracer.enabled:
            self.tracer.emit("internal_error", now, layer="ip", error=repr(exc))

    # ------------------------------------------------------------ output (pulled by the driver)
    def take_output(self, now: float) -> list:
        """Every datagram to write now, in the order it was produced (ACKs coalesced per input batch).

        Packets to our own address never reach the link: they loop back into the IP input (as the
        kernel's ``lo`` does), until no more are produced (bounded)."""
        ip = self.ip
        for _ in range(LOOPBACK_ROUNDS):
            self._tcp_datagrams(now)
            if not self._loop:
                break
            looped, self._loop = self._loop, []
            self.stats["ip_loopback"] += len(looped)
            for packet in looped:
                ip.input(packet, now, trusted=True)
        out, ip.outq = ip.outq, []
        self.stats["ip_out"] += len(out)
        return out

    def take_ip_output(self) -> list:
        """What the IP layer itself answered so far (a ping's reply, an ICMP error), without pulling
        TCP's output: the driver writes a ping's reply as soon as the ping is processed, while the
        ACKs of a batch are still coalesced by ``take_output`` after it. Production order holds:
        ``take_output`` puts TCP's datagrams after whatever the IP layer queued before them."""
        ip = self.ip
        out, ip.outq = ip.outq, []
        self.stats["ip_out"] += len(out)
        return out

    def _tcp_datagrams(self, now: float) -> None:
        """TCP -> IP: wrap each segment the TCP layer has to send (RFC 791 header; TSO via vnet).

        A ``SegmentTrain`` (a bulk sender's run of full-sized segments) is built in one go by the
        fast path (``DatagramTemplate.build_train``); anywhere else it is taken segment by segment.
        Under TUN offloads the fast path builds each segment with ``build_partial``."""
        segments = self.tcp.segments_to_send(now)
        if not segments:
            return
        ip = self.ip
        ident = ip.ident
        out = ip.outq
        me = ip.address
        fast, offload = self.fast_path, ip.offload
        tpl = None
        for src, dst, seg in segments:
            if fast and dst != me and seg.ip_fields is None:  # the fast path (stack.wire.tcpip): same bytes, one step
                if tpl is None or tpl.src != src or tpl.dst != dst:
                    tpl = template_for(src, dst)
                if type(seg) is SegmentTrain:
                    if not offload:  # (the core makes trains without TSO only: _send_train)
                        ident = tpl.build_train(seg, ident, out)
                        continue
                else:
                    packet = (tpl.build_partial if offload else tpl.build)(seg, (ident + 1) & 0xFFFF)
                    if packet is not None:
                        ident = (ident + 1) & 0xFFFF
                        out.append(packet)
                        continue
            for one in seg.segments() if type(seg) is SegmentTrain else (seg,):
                ident = (ident + 1) & 0xFFFF
                self._wrap_segment(src, dst, one, ident)
        ip.ident = ident

    def _wrap_segment(self, src: bytes, dst: bytes, seg, ident: int) -> None:
        """The layered builder: IPv4 header, then TCP header and options; TSO and loopback."""
        ip = self.ip
        ip_fields = seg.ip_fields
        tcp_len = tcp_header_len(seg) + len(seg.payload)
        if ip_fields is None:
            hdr = build_ipv4(src, dst, IPPROTO_TCP, tcp_len, ident)
        else:  # RFC 1122 3.2.1.6 / 3.2.1.7: the transport sets TOS and TTL (IP_TTL, IP_TOS)
            hdr = build_ipv4(src, dst, IPPROTO_TCP, tcp_len, ident, ttl=ip_fields[0], tos=ip_fields[1])
        if dst == ip.address:
            self._loop.append(build_tcp_after(hdr, seg, src, dst, partial=False))
        elif ip.offload:
            hdr = vnet.gso_header(20, tcp_len - len(seg.payload), seg.gso_size, 20 + tcp_len) + hdr
            ip.outq.append(build_tcp_after(hdr, seg, src, dst, partial=True))
        else:
            ip.outq.append(build_tcp_after(hdr, seg, src, dst))

    # ------------------------------------------------------------ timers
    def next_deadline(self) -> float | None:
        """When the stack next needs ``on_timers`` (None: never, until something arrives)."""
        a = self.tcp.next_deadline()
        if not self.reassembler.pending:  # the usual case: no fragments waiting (one call less a turn)
            return a
        b = self.reassembler.next_deadline()  # IpLayer.next_deadline, one call less
        if a is None:
            return b
        return a if b is None or a < b else b

    def timers_due(self, now: float) -> bool:
        """Whether ``next_deadline()`` may be due at ``now``; False: it is not (a cheap lower bound)."""
        return self.tcp.may_be_due(now) or bool(self.reassembler.pending)

    def on_timers(self, now: float) -> None:
        self.tcp.on_timers(now)
        self.ip.on_timers(now)
