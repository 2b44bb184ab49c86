"""ICMPv4 (RFC 792): parse with checksum check, build echo replies and errors."""
from __future__ import annotations

import struct

from .checksum import IPPROTO_ICMP, checksum, verify
from .errors import MalformedPacket
from .ipv4 import FLAG_DF

ECHO_REPLY, DEST_UNREACH, ECHO_REQUEST, TIME_EXCEEDED = 0, 3, 8, 11
CODE_PROTO_UNREACH, CODE_PORT_UNREACH, CODE_FRAG_NEEDED = 2, 3, 4
CODE_REASSEMBLY_TIMEOUT = 1

_HDR = struct.Struct("!BBHI")
HEADER_LEN = 8


class IcmpMessage:
    __slots__ = ("type", "code", "checksum", "rest", "payload")

    def __init__(self, type: int, code: int, rest: int = 0, payload=b"", checksum: int = 0):
        self.type, self.code, self.rest, self.payload, self.checksum = type, code, rest, payload, checksum

    @property
    def ident(self) -> int:
        return self.rest >> 16

    @property
    def sequence(self) -> int:
        return self.rest & 0xFFFF

    def __repr__(self) -> str:
        return f"ICMP(type={self.type} code={self.code} rest={self.rest:#x} len={len(self.payload)})"


def parse_icmp(data) -> IcmpMessage:
    """Raises MalformedPacket: icmp_short, icmp_checksum."""
    if len(data) < HEADER_LEN:
        raise MalformedPacket("icmp_short", f"{len(data)} bytes")
    if not verify(data):
        raise MalformedPacket("icmp_checksum")
    type_, code, csum, rest = _HDR.unpack_from(data)
    return IcmpMessage(type_, code, rest, bytes(data[HEADER_LEN:]), csum)


def build_icmp(type_: int, code: int, rest: int, payload=b"") -> bytes:
    body = _HDR.pack(type_, code, 0, rest) + bytes(payload)
    return body[:2] + checksum(body).to_bytes(2, "big") + body[4:]


def echo_reply(request: IcmpMessage) -> bytes:
    """RFC 792 echo reply: same identifier, sequence and data."""
    return build_icmp(ECHO_REPLY, 0, request.rest, request.payload)


def error_message(type_: int, code: int, quoted_ip_header: bytes, quoted_payload, rest: int = 0) -> bytes:
    """RFC 792 / RFC 1812 4.3.2.3: an error quotes the IP header and at least 8 payload octets."""
    return build_icmp(type_, code, rest, quoted_ip_header + bytes(quoted_payload[:8]))


# The fast path of ping: the IPv4 header (no options) and the ICMP type/code and checksum, as words
_ECHO_WORDS = struct.Struct("!12H")
_DF_TTL_ICMP = FLAG_DF + (64 << 8 | IPPROTO_ICMP)


def echo_reply_datagram(packet, me: bytes, ident: int):
    """The whole reply datagram to a ping, made from the request in one copy; None if ``packet`` is
    not a valid echo request of the common shape for ``me`` (parse it the general way then).

    The common shape: IHL 5, not a fragment (DF either way, the reserved flag clear), total
    length equal to the packet's length, ICMP type 8 (RFC 792), both checksums right. The
    bytes equal what ``build_ipv4(me, src, ICMP, n, ident)`` + ``echo_reply(parse_icmp(...))``
    make: our header (TTL 64, DF, ``ident``), type 0 and code 0, the same identifier, sequence
    and data. The reply's checksum comes from the request's (RFC 1624): the request verified,
    its sum without the checksum field is the field's complement, and the reply differs from it
    in the type and code word only. The source is not checked here (``martian_source``).
    Sums are of 16-bit words modulo 0xffff (``stack.wire.checksum``), inline: this runs per ping."""
    n = len(packet)
    if n < 28:
        return None
    (vihl_tos, total, ip_ident, frag, ttl_proto, _, src_hi, src_lo, dst_hi, dst_lo,
     type_code, csum) = words = _ECHO_WORDS.unpack_from(packet)
    if (vihl_tos >> 8 != 0x45 or type_code >> 8 != ECHO_REQUEST or ttl_proto & 0xFF != IPPROTO_ICMP
            or frag & ~FLAG_DF or total != n or packet[16:20] != me):
        return None
    if sum(words[:10]) % 0xFFFF:
        return None  # RFC 791 header checksum
    if int.from_bytes(packet[20:], "little") % 0xFFFF:
        return None  # RFC 792 checksum (byte order: see stack.wire.checksum; type 8: never all zeros)
    rest = ((0xFFFF - csum) - type_code) % 0xFFFF  # the reply's words but its checksum field
    if not rest:
        return None  # a sum of zero: RFC 1071's +0 / -0 question; the general builder answers it
    hdr = (0x4500 + n + ident + _DF_TTL_ICMP + src_hi + src_lo + dst_hi + dst_lo) % 0xFFFF
    out = bytearray(packet)
    _ECHO_WORDS.pack_into(out, 0, 0x4500, n, ident, FLAG_DF, 64 << 8 | IPPROTO_ICMP,
                          0xFFFF - hdr if hdr else 0, dst_hi, dst_lo, src_hi, src_lo,
                          ECHO_REPLY << 8, 0xFFFF - rest)
    return out
