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

The merged segment (``GroChain.segment``) is the first segment with the payloads joined, PSH if
the last one had it, and ``gso_size`` set to the MSS (as Linux marks a GRO packet). Unlike
Linux, the packets stay available (``GroChain.segments``): TCP takes a chain whole only where
that does exactly what the packets one by one would do (``Connection.takes_whole``), and the
netstack hands it over packet by packet otherwise.
"""
from __future__ import annotations

from .tcp import ACK, PSH, TcpSegment
from .tcpip import segment_of

GRO_MAX_SIZE = 65536  # bytes of the merged datagram, headers included (Linux gro_max_size)
_SEQ_MASK = 0xFFFFFFFF


class GroChain:
    """The packets merged so far, as ``stack.wire.tcpip.parse_ipv4_tcp_fields`` gave them: ``offer``
    adds one if it fits; ``segment`` makes the one segment TCP sees, ``segments`` the packets' own."""

    __slots__ = ("packets", "key", "end", "mss", "size", "closed")

    def __init__(self, head: tuple):
        src, dst, sport, dport, seq, ack, _, window, _, _, tsval, tsecr, payload = head
        self.packets = [head]
        self.key = (src, dst, sport, dport, ack, window, tsval, tsecr)  # what every packet shares
        self.mss = len(payload)
        self.end = (seq + self.mss) & _SEQ_MASK
        self.size = self.mss + (40 if tsval is None else 52)
        self.closed = False

    def offer(self, fields: tuple) -> bool:
        """Merge this packet into the chain if the rules above allow it; False: the chain is complete."""
        src, dst, sport, dport, seq, ack, flags, window, _, _, tsval, tsecr, payload = fields
        n = len(payload)
        if (self.closed or seq != self.end or not 0 < n <= self.mss or flags & ~PSH != ACK
                or self.size + n >= GRO_MAX_SIZE or (src, dst, sport, dport, ack, window, tsval, tsecr) != self.key):
            return False
        self.packets.append(fields)
        self.end = (seq + n) & _SEQ_MASK
        self.size += n
        if n < self.mss or flags & PSH:
            self.closed = True
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
            return segment_of(packets[0])
        seg = segment_of(packets[0], b"".join([f[12] for f in packets]))
        seg.flags = packets[-1][6]
        seg.gso_size = self.mss
        return seg

    def segments(self) -> list[TcpSegment]:
        """Each packet's own segment, in order (what TCP would have seen without GRO)."""
        return [segment_of(f) for f in self.packets]


def chain_start(fields: tuple) -> GroChain | None:
    """A chain headed by this packet, or None when it cannot head one (flags other than ACK, no data)."""
    if fields[6] != ACK or not fields[12]:
        return None
    return GroChain(fields)
