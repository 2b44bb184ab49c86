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

Checking a packet that continues a chain needs no full parse (``GroChain.take_from``, one loop
over the rest of the read batch): a packet of the chain's length whose header equals the first
one's except in the fields every packet has its own (IP Identification and checksum, SEG.SEQ,
the TCP checksum) has the same valid shape. The packet is read once as a little-endian integer,
which the TCP checksum needs anyway (``stack.wire.checksum``); its low 40 or 52 bytes are the
header, compared under a mask. SEG.SEQ must be where the chain ends; the IP header checksum is
verified as its own 20 bytes' residue (RFC 791); the TCP checksum as ``parse_ipv4_tcp_fields``
verifies it (RFC 9293 3.1), with ``checksum.residue``'s folds for the chain's length inline.

The merged segment (``GroChain.segment``) is the first segment with the payloads joined, PSH if
the last one had it, and ``gso_size`` set to the MSS (as Linux marks a GRO packet). Unlike
Linux, the packets stay available (``GroChain.segments``): TCP takes a chain whole only where
that does exactly what the packets one by one would do (``Connection.takes_whole``), and the
netstack hands it over packet by packet otherwise.
"""
from __future__ import annotations

import struct

from .checksum import IPPROTO_TCP, folds
from .tcp import ACK, PSH, TcpSegment
from .tcpip import parse_ipv4_tcp_fields, segment_of

GRO_MAX_SIZE = 65536  # bytes of the merged datagram, headers included (Linux gro_max_size)
_SEQ_MASK = 0xFFFFFFFF


_IP_HEADER = (1 << 160) - 1  # the IPv4 header's 20 bytes (a chain's have no options), read little-endian


def _layout(hlen: int) -> tuple[int, int]:
    """For a packet read as one little-endian integer (byte i at bits 8i..8i+7), the masks of its
    ``hlen`` header bytes and of the header's bytes that every packet of a chain shares: all but IP
    Identification (bytes 4-5), the IP checksum (10-11), SEG.SEQ (24-27) and the TCP checksum (36-37)."""
    header = (1 << hlen * 8) - 1
    own = (0xFFFF << 4 * 8) | (0xFFFF << 10 * 8) | (_SEQ_MASK << 24 * 8) | (0xFFFF << 36 * 8)
    return header, header ^ own


_LAYOUTS = {40: _layout(40), 52: _layout(52)}  # no options; NOP NOP TS
_SEQ = struct.Struct("!I")  # SEG.SEQ, at byte 24


class GroChain:
    """The packets merged so far: ``take_from`` adds those that continue the chain at its length,
    ``offer`` one that ``stack.wire.tcpip.parse_ipv4_tcp_fields`` parsed; ``segment`` makes the one
    segment TCP sees, ``segments`` the packets' own."""

    __slots__ = ("head", "packets", "key", "end", "mss", "room", "hlen", "length", "header", "mask",
                 "same", "pseudo", "folds")

    def __init__(self, head: tuple, packet):
        src, dst, sport, dport, seq, ack, _, window, _, _, tsval, tsecr, payload = head
        self.head, self.packets = head, [packet]
        self.key = (src, dst, sport, dport, ack, window, tsval, tsecr)  # what every packet shares
        self.mss = len(payload)
        self.end = (seq + self.mss) & _SEQ_MASK
        self.hlen = 40 if tsval is None else 52
        self.length = self.hlen + self.mss
        self.room = (GRO_MAX_SIZE - 1 - self.length) // self.mss  # full-sized packets that still fit
        self.header, self.mask = _LAYOUTS[self.hlen]
        self.same = int.from_bytes(packet[:self.hlen], "little") & self.mask  # what each packet's header must hold
        self.pseudo = int.from_bytes(packet[12:20], "big") + IPPROTO_TCP + self.length - 20
        self.folds = folds(self.length)

    def take(self, packet) -> bool:
        """Merge ``packet`` if it is the chain's next packet, of the chain's length and without PSH
        (``take_from`` of this one packet); False: not such a packet (parse it and ``offer`` it)."""
        return self.take_from((packet,)) is None

    def take_from(self, packets):
        """Merge packets from the iterable ``packets`` while each is the chain's next packet, of the
        chain's length and without PSH (checked in full, see the module text); return the first one
        that is not, taken from ``packets`` but not merged (parse it and ``offer`` it), or None when
        ``packets`` ran out. One loop over the batch: it runs once per packet of a bulk transfer."""
        room, length, end, mss = self.room, self.length, self.end, self.mss
        header_of, mask, same, pseudo, fold = self.header, self.mask, self.same, self.pseudo, self.folds
        append, from_bytes, seq_of = self.packets.append, int.from_bytes, _SEQ.unpack_from
        for packet in packets:
            if not room or len(packet) != length:
                break
            value = from_bytes(packet, "little")  # (byte order: see stack.wire.checksum)
            header = value & header_of
            if header & mask != same or seq_of(packet, 24)[0] != end:
                break
            if (header & _IP_HEADER) % 0xFFFF:
                break  # RFC 791 header checksum (its other fields are the first packet's)
            for half, low in fold:  # checksum.residue, its folds for this length
                value = (value >> half) + (value & low)
            if (value % 0xFFFF * 256 + pseudo) % 0xFFFF:
                break  # RFC 9293 3.1, as parse_ipv4_tcp_fields checks it
            append(packet)
            end = (end + mss) & _SEQ_MASK
            room -= 1
        else:
            packet = None
        self.room, self.end = room, end
        return packet

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
