"""Generic receive offload (GRO) for plain IPv4 TCP: the in-sequence segments of one flow in a
read batch, merged into one segment before TCP sees them (Linux net/ipv4/tcp_offload.c
``tcp_gro_receive``, which a NIC driver's poll runs over the packets it has just taken).

TCP's per-segment work (the connection lookup, RFC 9293 3.10.7's checks, the receive buffer,
the ACK and readiness bookkeeping) then runs once per chain instead of once per packet. Every
packet is still parsed and both its checksums verified on its own
(``stack.wire.tcpip.parse_ipv4_tcp_fields``); only what TCP would do alike for each is done once.

A chain holds packets that TCP would treat alike, one after the other (Linux's rules, where a
packet that breaks one "flushes" the chain: the chain goes to TCP, the packet starts anew):

- the chain starts with a data segment whose only flag is ACK;
- the same flow (addresses and ports), ACK number, window, options (none, or timestamps with
  the same TSval and TSecr: Linux compares the option bytes) and flags (PSH allowed on the last);
- SEG.SEQ is where the chain ends (no gap, no overlap);
- a payload no longer than the first's (the chain's MSS), and never empty: a pure ACK is
  never merged (a duplicate ACK counts, RFC 5681 3.2);
- a segment shorter than the MSS, or with PSH, is merged and closes the chain;
- the merged datagram stays under 64 KiB (Linux ``gro_max_size``, 65536).

Checking a packet that continues a chain needs no full parse (``GroChain.take``): a packet of
the chain's length whose header equals the first one's except in the fields every packet has
its own (IP Identification and checksum, SEG.SEQ, the TCP checksum) has the same valid shape; its IP header checksum follows from the first one's (RFC 1624: only the Identification
and the checksum differ); its TCP checksum is verified as ``parse_ipv4_tcp_fields`` does. The
header is compared as one integer (52 or 40 bytes, big-endian) under a mask.

The merged segment (``GroChain.segment``) is the first segment with the payloads joined, PSH if
the last one had it, and ``gso_size`` set to the MSS (as Linux marks a GRO packet). Unlike
Linux, the packets stay available (``GroChain.segments``): TCP takes a chain whole only where
that does exactly what the packets one by one would do (``Connection.takes_whole``), and the
netstack hands it over packet by packet otherwise.
"""
from __future__ import annotations

from .checksum import IPPROTO_TCP, residue
from .tcp import ACK, PSH, TcpSegment
from .tcpip import parse_ipv4_tcp_fields, segment_of

GRO_MAX_SIZE = 65536  # bytes of the merged datagram, headers included (Linux gro_max_size)
_SEQ_MASK = 0xFFFFFFFF


def _layout(hlen: int) -> tuple[int, int, int, int]:
    """For a header of ``hlen`` bytes read as one big-endian integer: the mask of the fields every
    packet has its own, and the shifts of IP Identification, IP checksum and SEG.SEQ."""
    def at(offset: int, size: int) -> int:
        return (hlen - offset - size) * 8
    own = (0xFFFF << at(4, 2)) | (0xFFFF << at(10, 2)) | (_SEQ_MASK << at(24, 4)) | (0xFFFF << at(36, 2))
    return ((1 << hlen * 8) - 1) ^ own, at(4, 2), at(10, 2), at(24, 4)  # (Identification, checksums, SEQ)


_LAYOUTS = {40: _layout(40), 52: _layout(52)}  # no options; NOP NOP TS


class GroChain:
    """The packets merged so far: ``take`` adds one that continues the chain at its length, ``offer``
    one that ``stack.wire.tcpip.parse_ipv4_tcp_fields`` parsed; ``segment`` makes the one segment TCP
    sees, ``segments`` the packets' own."""

    __slots__ = ("head", "packets", "key", "end", "mss", "room", "hlen", "length", "mask", "same",
                 "ident_at", "csum_at", "seq_at", "ip_own", "pseudo")

    def __init__(self, head: tuple, packet):
        src, dst, sport, dport, seq, ack, _, window, _, _, tsval, tsecr, payload = head
        self.head, self.packets = head, [packet]
        self.key = (src, dst, sport, dport, ack, window, tsval, tsecr)  # what every packet shares
        self.mss = len(payload)
        self.end = (seq + self.mss) & _SEQ_MASK
        self.hlen = 40 if tsval is None else 52
        self.length = self.hlen + self.mss
        self.room = (GRO_MAX_SIZE - 1 - self.length) // self.mss  # full-sized packets that still fit
        self.mask, self.ident_at, self.csum_at, self.seq_at = _LAYOUTS[self.hlen]
        first = int.from_bytes(packet[:self.hlen], "big")
        self.same = first & self.mask  # the header every packet of the chain's length must have
        self.ip_own = (first >> self.ident_at & 0xFFFF) + (first >> self.csum_at & 0xFFFF)
        self.pseudo = int.from_bytes(packet[12:20], "big") + IPPROTO_TCP + self.length - 20

    def take(self, packet) -> bool:
        """Merge ``packet`` if it is the chain's next packet, of the chain's length and without PSH
        (checked in full, see the module text); False: not such a packet (parse it and ``offer`` it)."""
        if len(packet) != self.length or not self.room:
            return False
        header = int.from_bytes(packet[:self.hlen], "big")
        if header & self.mask != self.same or header >> self.seq_at & _SEQ_MASK != self.end:
            return False
        if ((header >> self.ident_at & 0xFFFF) + (header >> self.csum_at & 0xFFFF) - self.ip_own) % 0xFFFF:
            return False  # RFC 791 header checksum: the first one's, with this Identification
        if (residue(int.from_bytes(packet, "little"), self.length) * 256 + self.pseudo) % 0xFFFF:
            return False  # RFC 9293 3.1, as parse_ipv4_tcp_fields checks it
        self.packets.append(packet)
        self.end = (self.end + self.mss) & _SEQ_MASK
        self.room -= 1
        return True

    def offer(self, fields: tuple, packet) -> bool:
        """Merge this parsed packet into the chain if the rules above allow it; False: the chain is complete."""
        src, dst, sport, dport, seq, ack, flags, window, _, _, tsval, tsecr, payload = fields
        n = len(payload)
        if (not self.room or seq != self.end or not 0 < n <= self.mss or flags & ~PSH != ACK
                or (src, dst, sport, dport, ack, window, tsval, tsecr) != self.key):
            return False
        self.packets.append(packet)
        self.end = (seq + n) & _SEQ_MASK
        self.room = 0 if n < self.mss or flags & PSH else self.room - 1  # short or PSH: the last one
        return True

    def __len__(self) -> int:
        """How many packets the chain holds."""
        return len(self.packets)

    @property
    def src(self) -> bytes:
        return self.key[0]

    @property
    def dst(self) -> bytes:
        return self.key[1]

    def segment(self) -> TcpSegment:
        """The merged segment: the first packet's, with every payload (and the last one's PSH)."""
        packets = self.packets
        if len(packets) == 1:
            return segment_of(self.head)
        hlen = self.hlen
        seg = segment_of(self.head, b"".join([p[hlen:] for p in packets]))
        seg.flags = packets[-1][33]  # (a chain's flags are ACK, PSH on the last: the byte of them)
        seg.gso_size = self.mss
        return seg

    def segments(self) -> list[TcpSegment]:
        """Each packet's own segment, in order (what TCP would have seen without GRO)."""
        return [segment_of(parse_ipv4_tcp_fields(p)) for p in self.packets]


def chain_start(fields: tuple, packet) -> GroChain | None:
    """A chain headed by this packet (``fields``: its parse), or None when it cannot head one (flags
    other than ACK, no data)."""
    if fields[6] != ACK or not fields[12]:
        return None
    return GroChain(fields, packet)
