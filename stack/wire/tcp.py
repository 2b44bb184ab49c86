"""TCP header and options (RFC 9293 3.1, RFC 7323, RFC 2018): parse and build.

``TcpSegment`` is both the parsed form and what the TCP core emits; the core
never sees bytes. Options are plain attributes: ``mss``, ``wscale``,
``sack_perm``, ``sack`` (list of (left, right)), ``tsval``/``tsecr`` (None when absent).
"""
from __future__ import annotations

import struct

from .checksum import IPPROTO_TCP, finish, ones_sum, pseudo_header_sum
from .errors import MalformedPacket

FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80
_FLAG_NAMES = ((SYN, "S"), (FIN, "F"), (RST, "R"), (PSH, "P"), (ACK, "."), (URG, "U"), (ECE, "E"), (CWR, "W"))

OPT_EOL, OPT_NOP, OPT_MSS, OPT_WSCALE, OPT_SACK_PERM, OPT_SACK, OPT_TS = 0, 1, 2, 3, 4, 5, 8
_OPT_LEN = {OPT_MSS: 4, OPT_WSCALE: 3, OPT_SACK_PERM: 2, OPT_TS: 10}

_HDR = struct.Struct("!HHIIBBHHH")
_H = struct.Struct("!H")
_I = struct.Struct("!I")
_II = struct.Struct("!II")
HEADER_LEN = 20


def flag_string(flags: int) -> str:
    """tcpdump-style flags: S, F, R, P, '.', U, E, W."""
    return "".join(name for bit, name in _FLAG_NAMES if flags & bit) or "none"


class TcpSegment:
    """One TCP segment: header fields, options and payload."""

    __slots__ = ("sport", "dport", "seq", "ack", "flags", "window", "urg", "checksum",
                 "mss", "wscale", "sack_perm", "sack", "tsval", "tsecr", "payload", "gso_size", "ip_fields")

    def __init__(self, sport: int = 0, dport: int = 0, seq: int = 0, ack: int = 0, flags: int = 0,
                 window: int = 0, payload=b"", urg: int = 0, mss: int | None = None,
                 wscale: int | None = None, sack_perm: bool = False, sack=None,
                 tsval: int | None = None, tsecr: int | None = None, checksum: int = 0):
        # one plain store per field: made for every segment in and out (tuple stores cost more)
        self.sport = sport
        self.dport = dport
        self.seq = seq
        self.ack = ack
        self.flags = flags
        self.window = window
        self.urg = urg
        self.checksum = checksum
        self.mss = mss
        self.wscale = wscale
        self.sack_perm = sack_perm
        self.sack = sack
        self.tsval = tsval
        self.tsecr = tsecr
        self.payload = payload
        self.gso_size = 0  # > 0: a TSO super-segment that the link splits into pieces of this size
        self.ip_fields = None  # (TTL, TOS) of the IP header when not the defaults (64, 0): IP_TTL, IP_TOS

    @property
    def seg_len(self) -> int:
        """RFC 9293 SEG.LEN: payload octets plus one each for SYN and FIN."""
        return len(self.payload) + (self.flags & SYN and 1) + (self.flags & FIN and 1)

    def __repr__(self) -> str:
        opts = []
        if self.mss is not None:
            opts.append(f"mss={self.mss}")
        if self.wscale is not None:
            opts.append(f"wscale={self.wscale}")
        if self.sack_perm:
            opts.append("sackOK")
        if self.sack:
            opts.append("sack=" + ",".join(f"{l}-{r}" for l, r in self.sack))
        if self.tsval is not None:
            opts.append(f"ts={self.tsval}/{self.tsecr}")
        return (f"TCP({self.sport}>{self.dport} [{flag_string(self.flags)}] seq={self.seq} ack={self.ack} "
                f"win={self.window} len={len(self.payload)}{' ' + ' '.join(opts) if opts else ''})")


def _parse_options(seg: TcpSegment, opts) -> None:
    """RFC 9293 3.1: kinds 0 and 1 are single octets; others carry a length; unknown kinds are skipped."""
    i, n = 0, len(opts)
    while i < n:
        kind = opts[i]
        if kind == OPT_EOL:
            return
        if kind == OPT_NOP:
            i += 1
            continue
        if i + 1 >= n:
            raise MalformedPacket("tcp_option_truncated", f"kind {kind}")
        length = opts[i + 1]
        if length < 2 or i + length > n:
            raise MalformedPacket("tcp_option_length", f"kind {kind} length {length}")
        expected = _OPT_LEN.get(kind)
        if expected is not None and length != expected:
            raise MalformedPacket("tcp_option_length", f"kind {kind} length {length}")
        if kind == OPT_MSS:
            seg.mss = _H.unpack_from(opts, i + 2)[0]
        elif kind == OPT_WSCALE:
            seg.wscale = opts[i + 2]
        elif kind == OPT_SACK_PERM:
            seg.sack_perm = True
        elif kind == OPT_TS:
            seg.tsval, seg.tsecr = _II.unpack_from(opts, i + 2)
        elif kind == OPT_SACK:
            if (length - 2) % 8:
                raise MalformedPacket("tcp_option_length", f"sack length {length}")
            seg.sack = [_II.unpack_from(opts, j) for j in range(i + 2, i + length, 8)]
        i += length


def parse_tcp(data, src: bytes | None = None, dst: bytes | None = None, view: bool = False) -> TcpSegment:
    """Parse a TCP segment; verify the checksum when the IP addresses are given.

    The payload is ``bytes``; with ``view``, a ``memoryview`` when ``data`` is a view of ``bytes`` (the
    packet as read from the link: immutable, so the receive buffer keeps it without a copy).

    Raises MalformedPacket: tcp_short, tcp_offset, tcp_checksum, tcp_option_*.
    """
    n = len(data)
    if n < HEADER_LEN:
        raise MalformedPacket("tcp_short", f"{n} bytes")
    sport, dport, seq, ack, off, flags, window, csum, urg = _HDR.unpack_from(data)
    hlen = (off >> 4) * 4
    if hlen < HEADER_LEN or hlen > n:
        raise MalformedPacket("tcp_offset", str(off >> 4))
    if src is not None and (ones_sum(data) + pseudo_header_sum(src, dst, IPPROTO_TCP, n)) % 0xFFFF:
        raise MalformedPacket("tcp_checksum")
    payload = data[hlen:]
    if not view or type(payload) is not memoryview or type(payload.obj) is not bytes:
        payload = bytes(payload)  # one copy, unless a view of a packet that cannot change will do
    seg = TcpSegment(sport, dport, seq, ack, flags, window, payload, urg, checksum=csum)
    if hlen > HEADER_LEN:
        _parse_options(seg, bytes(data[HEADER_LEN:hlen]))
    return seg


def tcp_header_len(seg: TcpSegment) -> int:
    """Header length with options, without encoding them (the same layout as encode_options)."""
    n = HEADER_LEN
    if seg.mss is not None:
        n += 4
    if seg.tsval is not None:
        n += 12
    elif seg.sack_perm:
        n += 4
    if seg.wscale is not None:
        n += 4
    if seg.sack:
        n += 4 + 8 * len(seg.sack)
    return n


def encode_options(seg: TcpSegment) -> bytes:
    """Options in the order Linux sends them: MSS, SACK-permitted+timestamps, window scale, SACK."""
    out = b""
    if seg.mss is not None:
        out += struct.pack("!BBH", OPT_MSS, 4, seg.mss)
    if seg.sack_perm and seg.tsval is not None:
        out += struct.pack("!BBBBII", OPT_SACK_PERM, 2, OPT_TS, 10, seg.tsval, seg.tsecr or 0)
    elif seg.tsval is not None:
        out += struct.pack("!BBBBII", OPT_NOP, OPT_NOP, OPT_TS, 10, seg.tsval, seg.tsecr or 0)
    elif seg.sack_perm:
        out += struct.pack("!BBBB", OPT_NOP, OPT_NOP, OPT_SACK_PERM, 2)
    if seg.wscale is not None:
        out += struct.pack("!BBBB", OPT_NOP, OPT_WSCALE, 3, seg.wscale)
    if seg.sack:
        out += struct.pack("!BBBB", OPT_NOP, OPT_NOP, OPT_SACK, 2 + 8 * len(seg.sack))
        out += b"".join(_II.pack(l, r) for l, r in seg.sack)
    if len(out) & 3:
        out += b"\x00" * (4 - (len(out) & 3))
    return out


def build_tcp(seg: TcpSegment, src: bytes, dst: bytes, partial: bool = False) -> bytes:
    """Encode header, options and payload with a correct checksum over the pseudo-header.

    ``partial``: leave the checksum for the kernel to finish (TUN offload, NEEDS_CSUM): the
    field then holds the folded pseudo-header sum, as Linux's CHECKSUM_PARTIAL expects.
    """
    built = build_tcp_after(b"", seg, src, dst, partial)
    return bytes(built) if not isinstance(built, tuple) else bytes(built[0]) + bytes(built[1])


def build_tcp_after(prefix: bytes, seg: TcpSegment, src: bytes, dst: bytes, partial: bool = False):
    """``prefix`` (say, the IP header) followed by the encoded segment, in one buffer, one checksum pass.

    With ``partial`` (the kernel finishes the checksum) the payload is not touched: the result
    is the pair (headers, payload), for one ``writev`` without copying the payload again.
    """
    opts = encode_options(seg) if (seg.mss is not None or seg.wscale is not None or seg.sack_perm
                                   or seg.sack or seg.tsval is not None) else b""
    hlen = HEADER_LEN + len(opts)
    buf = bytearray(prefix)
    start = len(buf)
    buf += _HDR.pack(seg.sport, seg.dport, seg.seq, seg.ack, (hlen // 4) << 4, seg.flags, seg.window, 0, seg.urg)
    buf += opts
    if partial:
        total = hlen + len(seg.payload)
        _H.pack_into(buf, start + 16, pseudo_header_sum(src, dst, IPPROTO_TCP, total) or 0xFFFF)
        return (buf, seg.payload) if seg.payload else buf
    buf += seg.payload
    total = len(buf) - start
    csum = finish(ones_sum(memoryview(buf)[start:]) + pseudo_header_sum(src, dst, IPPROTO_TCP, total))
    _H.pack_into(buf, start + 16, csum)
    return buf


def flag_bits(text: str) -> int:
    """The inverse of :func:`flag_string`: ``"P."`` -> PSH | ACK; ``"none"`` -> 0."""
    letters = {name: bit for bit, name in _FLAG_NAMES}
    return 0 if text == "none" else sum(letters.get(ch, 0) for ch in set(text))


# --- Lenient views for observers (impairment, ladder, plots): never raise, never verify ---

_IP_PEEK = struct.Struct("!BxHxxHxB")   # ver/ihl, total length, flags/fragment offset, protocol
_TCP_PEEK = struct.Struct("!HHIxxxxBB")  # sport, dport, seq, data offset, flags


class TcpPeek:
    """The facts of a TCP segment a link-level observer needs, read without validation."""

    __slots__ = ("flow", "seq", "flags", "paylen")

    def __init__(self, flow: tuple, seq: int, flags: int, paylen: int):
        self.flow, self.seq, self.flags, self.paylen = flow, seq, flags, paylen


def peek_ipv4_tcp(packet) -> TcpPeek | None:
    """TCP facts of an IPv4 packet without checksum checks: ``flow`` is (the 8 address
    bytes, sport, dport). None when it is not an unfragmented (or first-fragment) IPv4
    TCP segment with sane header lengths. Never raises."""
    if len(packet) < 20:
        return None
    vihl, total, frag, proto = _IP_PEEK.unpack_from(packet)
    if vihl >> 4 != 4 or proto != IPPROTO_TCP or frag & 0x1FFF:
        return None
    ihl = (vihl & 0x0F) * 4
    total = min(total, len(packet))
    if ihl < 20 or total < ihl + HEADER_LEN:
        return None
    sport, dport, seq, off, flags = _TCP_PEEK.unpack_from(packet, ihl)
    doff = (off >> 4) * 4
    if doff < HEADER_LEN or ihl + doff > total:
        return None
    return TcpPeek((bytes(packet[12:20]), sport, dport), seq, flags, total - ihl - doff)


def iter_options(opts):
    """Walk an options field: yields ``(kind, body)`` for each option but NOP, stopping at
    EOL (RFC 9293 3.1). A truncated option or one with a bad length yields
    ``(None, b"")`` and ends the walk, so observers can show it instead of failing."""
    i, n = 0, len(opts)
    while i < n:
        kind = opts[i]
        if kind == OPT_EOL:
            return
        if kind == OPT_NOP:
            i += 1
            continue
        if i + 1 >= n or opts[i + 1] < 2 or i + opts[i + 1] > n:
            yield None, b""
            return
        yield kind, bytes(opts[i + 2:i + opts[i + 1]])
        i += opts[i + 1]


def option_words(opts, sack_base: int | None = None) -> list[str]:
    """Options as short words, in wire order: ``mss=1460 sack_perm ts=VAL/ECR wscale=7
    sack=L-R,L-R``; an unknown kind shows as ``opt<kind>``, a broken field as
    ``bad-options``. ``sack_base``: subtract it from SACK edges (relative numbers)."""
    out = []
    for kind, body in iter_options(opts):
        if kind is None:
            out.append("bad-options")
        elif kind == OPT_MSS and len(body) == 2:
            out.append(f"mss={_H.unpack(body)[0]}")
        elif kind == OPT_WSCALE and len(body) == 1:
            out.append(f"wscale={body[0]}")
        elif kind == OPT_SACK_PERM:
            out.append("sack_perm")
        elif kind == OPT_SACK:
            base = sack_base or 0
            edges = [(_I.unpack_from(body, j)[0] - base) & 0xFFFFFFFF
                     for j in range(0, len(body) - 3, 4)]
            out.append("sack=" + ",".join(f"{a}-{b}" for a, b in zip(edges[::2], edges[1::2])))
        elif kind == OPT_TS and len(body) == 8:
            out.append("ts={}/{}".format(*_II.unpack(body)))
        else:
            out.append(f"opt{kind}")
    return out
