"""IPv4 header (RFC 791): parse with validation, build with checksum."""
from __future__ import annotations

import socket
import struct

from .checksum import addr_sum, finish, verify
from .errors import MalformedPacket

_HDR = struct.Struct("!BBHHHBBH4s4s")
HEADER_LEN = 20
FLAG_RESERVED = 0x8000
FLAG_DF = 0x4000
FLAG_MF = 0x2000
OFFSET_MASK = 0x1FFF


class IPv4Header:
    """A parsed IPv4 header. Addresses are 4-byte ``bytes``; ``frag_offset`` in bytes."""

    __slots__ = ("ihl", "tos", "total_length", "ident", "df", "mf", "frag_offset",
                 "ttl", "proto", "checksum", "src", "dst", "options", "reserved")

    def __init__(self, src: bytes, dst: bytes, proto: int, total_length: int = HEADER_LEN,
                 ident: int = 0, ttl: int = 64, tos: int = 0, df: bool = False, mf: bool = False,
                 frag_offset: int = 0, ihl: int = 5, checksum: int = 0, options: bytes = b""):
        self.src, self.dst, self.proto = src, dst, proto
        self.total_length, self.ident, self.ttl, self.tos = total_length, ident, ttl, tos
        self.df, self.mf, self.frag_offset = df, mf, frag_offset
        self.ihl, self.checksum, self.options = ihl, checksum, options
        self.reserved = False  # RFC 791's reserved flag bit (RFC 3514's "evil bit"), kept for quoting

    @property
    def header_len(self) -> int:
        return self.ihl * 4

    @property
    def is_fragment(self) -> bool:
        return self.mf or self.frag_offset != 0

    def __repr__(self) -> str:
        return (f"IPv4({socket.inet_ntoa(self.src)} > {socket.inet_ntoa(self.dst)} proto={self.proto} "
                f"len={self.total_length} id={self.ident} df={int(self.df)} mf={int(self.mf)} "
                f"off={self.frag_offset} ttl={self.ttl})")


def parse_ipv4(packet) -> tuple[IPv4Header, memoryview]:
    """Validate and parse an IPv4 packet; return the header and its payload (trailing padding cut).

    Raises MalformedPacket with reasons: ip_short, ip_version, ip_ihl, ip_length, ip_checksum.
    """
    n = len(packet)
    if n < HEADER_LEN:
        raise MalformedPacket("ip_short", f"{n} bytes")
    ver_ihl, tos, total, ident, flags_off, ttl, proto, csum, src, dst = _HDR.unpack_from(packet)
    if ver_ihl >> 4 != 4:
        raise MalformedPacket("ip_version", str(ver_ihl >> 4))
    ihl = ver_ihl & 0x0F
    hlen = ihl * 4
    if ihl < 5 or hlen > n:
        raise MalformedPacket("ip_ihl", str(ihl))
    if total < hlen or total > n:
        raise MalformedPacket("ip_length", f"total_length={total} captured={n}")
    view = memoryview(packet)
    if ihl == 5:  # the header's words from the fields already unpacked: no second pass over the bytes
        ok = ((ver_ihl << 8 | tos) + total + ident + flags_off + (ttl << 8 | proto) + csum
              + addr_sum(src) + addr_sum(dst)) % 0xFFFF == 0
    else:
        ok = verify(view[:hlen])
    if not ok:
        raise MalformedPacket("ip_checksum")
    hdr = IPv4Header(src, dst, proto, total, ident, ttl, tos, bool(flags_off & FLAG_DF),
                     bool(flags_off & FLAG_MF), (flags_off & OFFSET_MASK) * 8, ihl, csum,
                     bytes(view[HEADER_LEN:hlen]))
    if flags_off & FLAG_RESERVED:
        hdr.reserved = True
    return hdr, view[hlen:total]


def build_ipv4(src: bytes, dst: bytes, proto: int, payload_len: int, ident: int = 0, ttl: int = 64,
               df: bool = True, tos: int = 0, mf: bool = False, frag_offset: int = 0) -> bytes:
    """An IPv4 header (no options) with a correct header checksum."""
    flags_off = (FLAG_DF if df else 0) | (FLAG_MF if mf else 0) | (frag_offset // 8)
    total = HEADER_LEN + payload_len
    csum = finish((0x4500 | tos) + total + ident + flags_off + (ttl << 8 | proto) + addr_sum(src) + addr_sum(dst))
    return _HDR.pack(0x45, tos, total, ident, flags_off, ttl, proto, csum, src, dst)


def header_of(hdr: IPv4Header) -> bytes:
    """Re-encode a parsed header as it was (for ICMP errors that quote it)."""
    flags_off = ((FLAG_RESERVED if hdr.reserved else 0) | (FLAG_DF if hdr.df else 0) | (FLAG_MF if hdr.mf else 0)
                 | (hdr.frag_offset // 8))
    return _HDR.pack(0x40 | hdr.ihl, hdr.tos, hdr.total_length, hdr.ident, flags_off, hdr.ttl,
                     hdr.proto, hdr.checksum, hdr.src, hdr.dst) + hdr.options


def aton(text: str) -> bytes:
    return socket.inet_aton(text)


def ntoa(addr: bytes) -> str:
    return socket.inet_ntoa(addr)
