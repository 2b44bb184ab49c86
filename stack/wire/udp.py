"""UDP (RFC 768): parse with length and checksum checks, build with checksum."""
from __future__ import annotations

import struct

from .checksum import IPPROTO_UDP, finish, ones_sum, pseudo_header_sum
from .errors import MalformedPacket

_HDR = struct.Struct("!HHHH")
HEADER_LEN = 8


class UdpDatagram:
    __slots__ = ("sport", "dport", "length", "checksum", "payload")

    def __init__(self, sport: int, dport: int, payload=b"", length: int = 0, checksum: int = 0):
        self.sport, self.dport, self.payload = sport, dport, payload
        self.length, self.checksum = length or HEADER_LEN + len(payload), checksum

    def __repr__(self) -> str:
        return f"UDP({self.sport}>{self.dport} len={len(self.payload)})"


def parse_udp(data, src: bytes | None = None, dst: bytes | None = None) -> UdpDatagram:
    """Raises MalformedPacket: udp_short, udp_length, udp_checksum (checksum 0 means none, RFC 768)."""
    if len(data) < HEADER_LEN:
        raise MalformedPacket("udp_short", f"{len(data)} bytes")
    sport, dport, length, csum = _HDR.unpack_from(data)
    if length < HEADER_LEN or length > len(data):
        raise MalformedPacket("udp_length", str(length))
    data = data[:length]
    if csum and src is not None and (ones_sum(data) + pseudo_header_sum(src, dst, IPPROTO_UDP, length)) % 0xFFFF:
        raise MalformedPacket("udp_checksum")
    return UdpDatagram(sport, dport, bytes(data[HEADER_LEN:]), length, csum)


def build_udp(sport: int, dport: int, payload, src: bytes, dst: bytes) -> bytes:
    length = HEADER_LEN + len(payload)
    hdr = _HDR.pack(sport, dport, length, 0)
    csum = finish(ones_sum(hdr) + ones_sum(payload) + pseudo_header_sum(src, dst, IPPROTO_UDP, length))
    return _HDR.pack(sport, dport, length, csum or 0xFFFF) + bytes(payload)  # RFC 768: 0 is sent as all ones
