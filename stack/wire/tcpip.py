"""IPv4 + TCP in one step: the fast paths for the datagrams a bulk transfer is made of.

The general code builds a datagram in layers (``build_ipv4``, then ``build_tcp_after`` with
``encode_options``) and parses it in layers (``parse_ipv4`` makes an ``IPv4Header``, then
``parse_tcp``). Nearly every datagram of a transfer is the same shape: a 20-byte IP header
without options, DF set, TTL 64, and a TCP header with no options or with only the
timestamps option (RFC 7323, NOP NOP TS). For that shape this module does it in one go:

- output (``DatagramTemplate.build``): one precompiled ``struct`` packs IP and TCP headers
  together; the IP header checksum is a per-(src, dst) residue plus the total length and
  Identification, the only fields that change (RFC 1071 / RFC 1624 arithmetic); the TCP
  checksum is the pseudo-header residue plus the header's fields plus the payload's sum
  (a 32-bit field adds to the residue as it is: 2**16 == 1 mod 0xffff). The bytes equal
  ``build_ipv4`` + ``build_tcp_after`` exactly (tests/wire/test_tcpip.py checks it);
  ``build`` returns None for any other shape and the caller uses the general builder;
- input (``parse_ipv4_tcp``): one ``unpack_from`` of both headers, the IP header checksum from
  the unpacked fields, and the TCP checksum from ONE sum over the whole packet (the IP header
  sums to zero once it is checked, so what is left is the TCP segment's sum). No
  ``IPv4Header`` is made and the payload is copied once. Anything unusual (IP options,
  fragments, the reserved flag, padding, other TCP options, a bad checksum) returns None:
  the general path then parses the packet again and counts why it drops it, if it does.
"""
from __future__ import annotations

import struct

from .checksum import IPPROTO_TCP, addr_sum, folds, ones_sum_unreduced, residue
from .ipv4 import FLAG_DF
from .tcp import PSH, TcpSegment
from .vnet import gso_header

_IP_TCP = struct.Struct("!BBHHHBBH4s4sHHIIBBHHH")        # IPv4 (20) + TCP (20), no options
_IP_TCP_TS = struct.Struct("!BBHHHBBH4s4sHHIIBBHHHIII")  # + NOP NOP TS 10 (4) + TSval + TSecr: 52
_TS_LEAD = 0x0101080A  # NOP, NOP, kind 8, length 10 (RFC 7323 Appendix A layout, as Linux sends it)
_TS_LEAD_SUM = 0x0101 + 0x080A
TTL = 64
_TTL_PROTO = TTL << 8 | IPPROTO_TCP
_HLEN_WORD = {20: 5 << 12, 32: 8 << 12}  # data offset nibble in the TCP header's 7th word


class DatagramTemplate:
    """What every IPv4+TCP datagram from ``src`` to ``dst`` shares: addresses and checksum residues.

    A netstack keeps one per address pair (``template_for``); ``build`` makes a datagram of the
    common shape from a segment, or returns None (then use ``build_ipv4`` + ``build_tcp_after``).
    """

    __slots__ = ("src", "dst", "ip_sum", "pseudo_sum")

    def __init__(self, src: bytes, dst: bytes):
        self.src, self.dst = src, dst
        addrs = addr_sum(src) + addr_sum(dst)
        # RFC 791 header words that never change here: version/IHL/TOS, flags (DF), TTL/protocol
        self.ip_sum = 0x4500 + FLAG_DF + _TTL_PROTO + addrs
        self.pseudo_sum = addrs + IPPROTO_TCP  # RFC 9293 3.1 pseudo-header, without the TCP length

    def build(self, seg: TcpSegment, ident: int):
        """The datagram's bytes (DF, TTL 64, no IP options), or None when ``seg`` has options
        other than timestamps. Equal to ``build_ipv4(src, dst, 6, len, ident)`` followed by
        ``build_tcp_after`` for the same segment."""
        if seg.mss is not None or seg.wscale is not None or seg.sack_perm or seg.sack:
            return None
        payload = seg.payload
        sport, dport, seq, ack, flags, window, urg = (seg.sport, seg.dport, seg.seq, seg.ack,
                                                       seg.flags, seg.window, seg.urg)
        tsval = seg.tsval
        if tsval is None:
            tcp_len = 20 + len(payload)
            total = tcp_len + 20
            csum = (self.pseudo_sum + tcp_len + sport + dport + seq + ack + (0x5000 | flags) + window
                    + urg + ones_sum_unreduced(payload)) % 0xFFFF
            ip_csum = (self.ip_sum + total + ident) % 0xFFFF
            return _IP_TCP.pack(0x45, 0, total, ident, FLAG_DF, TTL, IPPROTO_TCP,
                                0xFFFF - ip_csum if ip_csum else 0, self.src, self.dst,  # checksum.finish
                                sport, dport, seq, ack, 0x50, flags, window,
                                0xFFFF - csum if csum else 0, urg) + payload
        tsecr = seg.tsecr or 0
        tcp_len = 32 + len(payload)
        total = tcp_len + 20
        csum = (self.pseudo_sum + tcp_len + sport + dport + seq + ack + (0x8000 | flags) + window
                + urg + _TS_LEAD_SUM + tsval + tsecr + ones_sum_unreduced(payload)) % 0xFFFF
        ip_csum = (self.ip_sum + total + ident) % 0xFFFF
        return _IP_TCP_TS.pack(0x45, 0, total, ident, FLAG_DF, TTL, IPPROTO_TCP,
                               0xFFFF - ip_csum if ip_csum else 0, self.src, self.dst,  # checksum.finish
                               sport, dport, seq, ack, 0x80, flags, window,
                               0xFFFF - csum if csum else 0, urg, _TS_LEAD, tsval, tsecr) + payload

    def build_partial(self, seg: TcpSegment, ident: int):
        """``build`` under TUN offloads (``stack.wire.vnet``): the virtio-net header leads, the TCP
        checksum field holds only the pseudo-header's sum (NEEDS_CSUM: the kernel adds the rest),
        a segment longer than ``gso_size`` is marked for the kernel to cut (TSO), and the payload
        is not copied: ``(headers, payload)`` for one ``writev``, the headers alone without payload.
        None for the shapes ``build`` refuses. Equal to the layered offload builder
        (``NetStack._wrap_segment``: ``vnet.gso_header`` + ``build_ipv4`` + ``build_tcp_after(partial=True)``)."""
        if seg.mss is not None or seg.wscale is not None or seg.sack_perm or seg.sack:
            return None
        payload = seg.payload
        tsval = seg.tsval
        hlen = 20 if tsval is None else 32
        tcp_len = hlen + len(payload)
        total = tcp_len + 20
        csum = (self.pseudo_sum + tcp_len) % 0xFFFF or 0xFFFF  # checksum.pseudo_header_sum, never 0
        ip_csum = (self.ip_sum + total + ident) % 0xFFFF
        ip_csum = 0xFFFF - ip_csum if ip_csum else 0  # checksum.finish
        vnet_hdr = gso_header(20, hlen, seg.gso_size, total)
        if tsval is None:
            head = vnet_hdr + _IP_TCP.pack(0x45, 0, total, ident, FLAG_DF, TTL, IPPROTO_TCP, ip_csum, self.src,
                                           self.dst, seg.sport, seg.dport, seg.seq, seg.ack, 0x50, seg.flags,
                                           seg.window, csum, seg.urg)
        else:
            head = vnet_hdr + _IP_TCP_TS.pack(0x45, 0, total, ident, FLAG_DF, TTL, IPPROTO_TCP, ip_csum, self.src,
                                              self.dst, seg.sport, seg.dport, seg.seq, seg.ack, 0x80, seg.flags,
                                              seg.window, csum, seg.urg, _TS_LEAD, tsval, seg.tsecr or 0)
        return (head, payload) if payload else head

    def build_train(self, train: "SegmentTrain", ident: int, out: list) -> int:
        """Append the datagrams of ``train`` to ``out``, the first with Identification ``ident + 1``;
        returns the last Identification used. Each equals ``build`` of the train's segment (same
        bytes): the fields the segments share enter both checksums once, and per segment only SEQ,
        the length, the payload's sum, the Identification (and PSH on the last) are added."""
        sport, dport, ack, flags, window = train.sport, train.dport, train.ack, train.flags, train.window
        seq, tsval = train.seq, train.tsval
        payloads = train.payloads
        src, dst = self.src, self.dst
        last = len(payloads) - 1
        ip_base = self.ip_sum
        if tsval is None:
            pack, hlen, off = _IP_TCP.pack, 40, 0x50
            tcp_base = self.pseudo_sum + 20 + sport + dport + ack + (0x5000 | flags) + window
            opts = ()
        else:
            tsecr = train.tsecr or 0
            pack, hlen, off = _IP_TCP_TS.pack, 52, 0x80
            tcp_base = self.pseudo_sum + 32 + sport + dport + ack + (0x8000 | flags) + window + _TS_LEAD_SUM + tsval + tsecr
            opts = (_TS_LEAD, tsval, tsecr)
        append = out.append
        steps_n, steps = -1, ()
        for i, payload in enumerate(payloads):
            n = len(payload)
            ident = (ident + 1) & 0xFFFF
            f = flags
            if n != steps_n:  # the payloads of a train are of one length (its MSS): the folds once
                steps_n, steps = n, folds(n)
            value = int.from_bytes(payload, "little")  # the checksum module text: residue() inline
            for half, mask in steps:
                value = (value >> half) + (value & mask)
            csum = tcp_base + n + seq + value % 0xFFFF * 256
            if i == last and train.psh:
                f |= PSH
                csum += PSH
            csum %= 0xFFFF
            ip_csum = (ip_base + hlen + n + ident) % 0xFFFF
            append(pack(0x45, 0, hlen + n, ident, FLAG_DF, TTL, IPPROTO_TCP,
                        0xFFFF - ip_csum if ip_csum else 0, src, dst,  # checksum.finish
                        sport, dport, seq, ack, off, f, window, 0xFFFF - csum if csum else 0, 0, *opts) + payload)
            seq = (seq + n) & 0xFFFFFFFF
        return ident


class SegmentTrain:
    """A run of data segments that share every header field but SEQ: what a bulk sender emits in one
    go (``ConnectionOutput._send_train``). The segments are back to back from ``seq``, one per
    payload, with ``flags`` (PSH too on the last when ``psh``), no options but timestamps, no
    urgent data. ``segments()`` gives them as ``TcpSegment`` objects, for every path but
    ``DatagramTemplate.build_train``."""

    __slots__ = ("sport", "dport", "seq", "ack", "flags", "window", "tsval", "tsecr", "payloads", "psh",
                 "ip_fields")

    def __init__(self, sport: int, dport: int, seq: int, ack: int, flags: int, window: int,
                 tsval: int | None, tsecr: int | None, payloads: list, psh: bool):
        self.sport, self.dport, self.seq, self.ack, self.flags, self.window = sport, dport, seq, ack, flags, window
        self.tsval, self.tsecr, self.payloads, self.psh = tsval, tsecr, payloads, psh
        self.ip_fields = None  # (TTL, TOS), as TcpSegment.ip_fields (set by the TCP layer)

    def segments(self) -> list[TcpSegment]:
        out = []
        seq, last = self.seq, len(self.payloads) - 1
        for i, payload in enumerate(self.payloads):
            seg = TcpSegment(self.sport, self.dport, seq, self.ack, self.flags | (PSH if i == last and self.psh else 0),
                             self.window, payload, tsval=self.tsval, tsecr=self.tsecr if self.tsval is not None else None)
            seg.ip_fields = self.ip_fields
            out.append(seg)
            seq = (seq + len(payload)) & 0xFFFFFFFF
        return out

    def __repr__(self) -> str:
        return f"SegmentTrain(seq={self.seq} x{len(self.payloads)} psh={self.psh})"


_TEMPLATES: dict[tuple[bytes, bytes], DatagramTemplate] = {}


def template_for(src: bytes, dst: bytes) -> DatagramTemplate:
    """The (cached) template of an address pair: a host talks to few addresses."""
    key = (src, dst)
    tpl = _TEMPLATES.get(key)
    if tpl is None:
        if len(_TEMPLATES) > 4096:
            _TEMPLATES.clear()
        tpl = _TEMPLATES[key] = DatagramTemplate(bytes(src), bytes(dst))
    return tpl


def parse_ipv4_tcp(packet):
    """``(src, dst, segment)`` of a valid IPv4 TCP datagram of the common shape, else None.

    The common shape: IHL 5, not a fragment (MF clear, offset 0; DF either way), the
    reserved flag clear, total length equal to the packet's length, a TCP header of 20
    bytes or of 32 with exactly NOP NOP TS. Both checksums are verified (RFC 791, RFC 9293
    3.1). The segment equals what ``parse_tcp`` makes of the TCP part. None says nothing
    about validity: parse the packet with ``parse_ipv4`` / ``parse_tcp`` then."""
    fields = parse_ipv4_tcp_fields(packet)
    if fields is None:
        return None
    return fields[0], fields[1], segment_of(fields)


def parse_ipv4_tcp_fields(packet, trusted: bool = False, view: bool = False):
    """``parse_ipv4_tcp`` without making the segment: ``(src, dst, sport, dport, seq, ack, flags,
    window, urg, checksum, tsval, tsecr, payload)`` (tsval and tsecr None without the option), or
    None. GRO (``stack.wire.gro``) compares these and makes one segment per chain.

    ``trusted``: the kernel vouched for the TCP checksum (TUN offloads: ``vnet.checksum_trusted``),
    which is then not verified; ``view``: a payload in a view of ``bytes`` stays a view. Both as
    ``parse_tcp`` takes them on the general path under offloads (``IpLayer.receive``).

    It runs once per received packet: one unpack (of the timestamp option too when the
    packet is long enough), the addresses' checksum residue from one integer (a 64-bit
    number is congruent to the sum of its four 16-bit words modulo 0xffff), the sums inline."""
    n = len(packet)
    if n >= 52:
        (vihl, tos, total, ident, frag, ttl_proto, ipcsum, src, dst, sport, dport, seq, ack, off, flags,
         window, csum, urg, ts_lead, tsval, tsecr) = _IN_TS.unpack_from(packet)
    elif n >= 40:
        (vihl, tos, total, ident, frag, ttl_proto, ipcsum, src, dst,
         sport, dport, seq, ack, off, flags, window, csum, urg) = _IN.unpack_from(packet)
        ts_lead = 0
    else:
        return None
    if vihl != 0x45 or ttl_proto & 0xFF != IPPROTO_TCP or frag & ~FLAG_DF or total != n:
        return None
    addrs = int.from_bytes(packet[12:20], "big")
    if ((vihl << 8 | tos) + total + ident + frag + ttl_proto + ipcsum + addrs) % 0xFFFF:
        return None  # RFC 791 header checksum
    # RFC 9293 3.1: the IP header sums to 0 now, so the packet's sum is the segment's (byte order:
    # see stack.wire.checksum, ones_sum_unreduced)
    if not trusted:
        value = int.from_bytes(packet, "little")
        if ((residue(value, n) if n > 256 else value % 0xFFFF) * 256 + addrs + IPPROTO_TCP + n - 20) % 0xFFFF:
            return None  # (residue folds long packets only: a short one is divided at once)
    if off == 0x50:
        payload = packet[40:]
        tsval = tsecr = None
    elif off == 0x80 and ts_lead == _TS_LEAD:
        payload = packet[52:]
    else:
        return None
    if type(payload) is not bytes and not (view and type(payload) is memoryview and type(payload.obj) is bytes):
        payload = bytes(payload)
    return src, dst, sport, dport, seq, ack, flags, window, urg, csum, tsval, tsecr, payload


def segment_of(fields, payload=None) -> TcpSegment:
    """The segment of ``parse_ipv4_tcp_fields``'s answer (with ``payload`` instead of its own, if given)."""
    _, _, sport, dport, seq, ack, flags, window, urg, csum, tsval, tsecr, own = fields
    seg = TcpSegment(sport, dport, seq, ack, flags, window, own if payload is None else payload, urg,
                     checksum=csum)
    if tsval is not None:
        seg.tsval, seg.tsecr = tsval, tsecr
    return seg


_IN = struct.Struct("!BBHHHHH4s4sHHIIBBHHH")  # as _IP_TCP, TTL and protocol in one word
_IN_TS = struct.Struct("!BBHHHHH4s4sHHIIBBHHHIII")  # _IN + the 12 bytes a timestamp option takes
