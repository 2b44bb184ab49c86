"""ICMPv4 (RFC 792): parse with checksum check, build echo replies and errors."""
from __future__ import annotations

import struct

from .checksum import checksum, verify
from .errors import MalformedPacket

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
