"""The receive reassembler: out-of-order data kept until the gap before it fills, and the SACK
blocks that describe it (RFC 9293 3.10.7.4 seventh check, RFC 2018). A pure data structure:
no time, no connection, no I/O; sequence numbers modulo 2**32 come in, in-order octets go out.

    >>> r = Reassembler(max_blocks=16)
    >>> r.store(seq=110, payload=b"world", fin=True, rcv_nxt=100)
    True
    >>> r.sack_blocks(limit=4)
    [(110, 115)]
    >>> r.insert(seq=100, payload=b"0123456789", fin=False, rcv_nxt=100)
    [(b'0123456789', False), (bytearray(b'world'), True)]
    >>> len(r)
    0

Work per segment is bounded whatever the number of blocks (an attacker can make thousands):
blocks are kept sorted by their offset from a fixed base with ``bisect``, so finding where a
segment goes, what it merges with, and which block a recent arrival belongs to is O(log n);
a merge removes the blocks it absorbs (each block is removed once after being created once);
``sack_blocks`` looks at most at the 8 most recent arrivals and a few blocks from the top.
The number of blocks is capped (``max_blocks``); when full, a segment below the highest block
prunes that block (as Linux's ``tcp_prune_ofo_queue`` drops from the top), else it is dropped.
The octets held are bounded by the receive window: the connection trims every segment to it.
"""
from __future__ import annotations

from bisect import bisect_right

MASK = 0xFFFFFFFF
RECENT = 8         # arrivals remembered for RFC 2018 4's "most recent first" ordering
REBASE_AT = 1 << 30  # move the base forward once RCV.NXT is this far past it
FILL_STEPS = 32    # bound on blocks looked at from the top when filling SACK blocks


class Reassembler:
    """Out-of-order blocks, sorted, disjoint and never adjacent: ``[offset, bytearray, fin]``,
    where ``offset`` is the block's first sequence number minus ``base`` (modulo 2**32)."""

    def __init__(self, max_blocks: int = 4096):
        self.max_blocks = max_blocks
        self.base = 0                   # a sequence number at or below RCV.NXT while blocks exist
        self._offs: list[int] = []      # block start offsets, sorted (the bisect keys)
        self._blocks: list[list] = []   # [offset, bytearray, fin], same order
        self.queue = self._blocks      # read-only alias: truthy while out-of-order data waits (cheap test)
        self._recent: list[int] = []    # offsets of the latest out-of-order arrivals, newest first
        self.dropped = 0                # segments refused because the queue was full
        self.pruned = 0                 # blocks pruned from the top to make room

    def __len__(self) -> int:
        return len(self._blocks)

    def _off(self, seq: int) -> int:
        return (seq - self.base) & MASK

    def _seq(self, off: int) -> int:
        return (self.base + off) & MASK

    def blocks(self) -> list[tuple[int, bytes, bool]]:
        """(first sequence number, data, fin) of each block, lowest first (for tests and views)."""
        return [(self._seq(off), bytes(data), fin) for off, data, fin in self._blocks]

    def clear(self) -> None:
        self._offs.clear()
        self._blocks.clear()
        self._recent.clear()

    # ------------------------------------------------------------ storing
    def store(self, seq: int, payload, fin: bool, rcv_nxt: int) -> bool:
        """Keep a segment that starts beyond RCV.NXT (already trimmed to the window), merged with the
        blocks it touches. False when the queue is full and the segment was dropped."""
        if not self._blocks:
            self.base = rcv_nxt
            self._recent.clear()
        elif (rcv_nxt - self.base) & MASK >= REBASE_AT:
            self._rebase(rcv_nxt)
        off = self._off(seq)
        blocks = self._blocks
        if blocks:
            last = blocks[-1]
            if off == last[0] + len(last[1]) and not last[2]:
                last[1] += payload  # the common case: the next segment behind the hole, O(1)
                last[2] = fin
                self._note_arrival(off)
                return True
        end = off + len(payload)
        hi = bisect_right(self._offs, end)  # blocks starting at or before our end
        lo = hi
        while lo > 0 and blocks[lo - 1][0] + len(blocks[lo - 1][1]) >= off:
            lo -= 1  # touches or overlaps us: merge (each block is absorbed at most once)
        if len(blocks) - (hi - lo) >= self.max_blocks and not self._prune_for(off, hi):
            self.dropped += 1
            return False
        hi = min(hi, len(blocks))
        block = self._merge(off, payload, fin, blocks[lo:hi])
        blocks[lo:hi] = [block]
        self._offs[lo:hi] = [block[0]]
        self._note_arrival(off)
        return True

    def _prune_for(self, off: int, hi: int) -> bool:
        """Full: make room by dropping the highest block if the new segment lies below it."""
        if hi >= len(self._blocks) or self._blocks[-1][0] <= off:
            return False
        self._blocks.pop()
        self._offs.pop()
        self.pruned += 1
        return True

    @staticmethod
    def _merge(off: int, payload, fin: bool, touched: list[list]) -> list:
        if not touched:
            return [off, bytearray(payload), fin]
        lo = min(off, touched[0][0])
        hi = max(off + len(payload), touched[-1][0] + len(touched[-1][1]))
        data = bytearray(hi - lo)
        for b_off, b_data, _fin in touched:
            data[b_off - lo:b_off - lo + len(b_data)] = b_data
        data[off - lo:off - lo + len(payload)] = payload  # same octets either way (TCP)
        return [lo, data, fin or any(b[2] for b in touched)]

    def _rebase(self, rcv_nxt: int) -> None:
        """Move the base up to RCV.NXT (all blocks lie above it): once per 2**30 octets received."""
        shift = (rcv_nxt - self.base) & MASK
        for block in self._blocks:
            block[0] -= shift
        self._offs = [b[0] for b in self._blocks]
        self._recent = [r - shift for r in self._recent]
        self.base = rcv_nxt

    def _note_arrival(self, off: int) -> None:
        recent = self._recent
        if off in recent:
            recent.remove(off)
        recent.insert(0, off)
        del recent[RECENT:]

    # ------------------------------------------------------------ in-order output
    def pop_ready(self, rcv_nxt: int) -> tuple[bytearray, bool] | None:
        """The next in-order chunk (data from RCV.NXT on, fin) now that RCV.NXT has reached the
        lowest block, or None. Blocks wholly below RCV.NXT are discarded on the way, in one step."""
        blocks, offs = self._blocks, self._offs
        nxt = self._off(rcv_nxt)
        i = bisect_right(offs, nxt)  # blocks[:i] start at or before RCV.NXT
        if i == 0:
            return None  # the lowest block still lies beyond RCV.NXT
        if i > 1:
            del blocks[:i - 1], offs[:i - 1]  # disjoint and sorted: all but the last end before RCV.NXT
        off, data, fin = blocks.pop(0)
        offs.pop(0)
        head = nxt - off
        if head <= len(data):
            return (data[head:] if head else data), fin
        return None  # it too lies wholly below RCV.NXT: nothing to deliver

    def insert(self, seq: int, payload, fin: bool, rcv_nxt: int) -> list[tuple[bytes, bool]]:
        """The whole job in one call: a segment at RCV.NXT returns the in-order chunks (its own payload,
        then every queued block it now reaches, up to a FIN); any other segment is stored and []."""
        if seq != rcv_nxt:
            self.store(seq, payload, fin, rcv_nxt)
            return []
        out = [(payload, fin)]
        rcv_nxt = (rcv_nxt + len(payload)) & MASK
        while not fin:
            chunk = self.pop_ready(rcv_nxt)
            if chunk is None:
                break
            out.append(chunk)
            data, fin = chunk
            rcv_nxt = (rcv_nxt + len(data)) & MASK
        if fin:
            self.clear()  # RFC 9293 3.10.7.4 eighth check: nothing follows a FIN
        return out

    # ------------------------------------------------------------ SACK
    def sack_blocks(self, limit: int) -> list[tuple[int, int]]:
        """RFC 2018 4: the block holding the segment that triggered this ACK first, then the blocks
        holding the most recent earlier arrivals, then the rest from the top; at most ``limit``
        (3 with timestamps for option space, else 4). O(log n) whatever the number of blocks."""
        blocks, offs = self._blocks, self._offs
        chosen: list[int] = []
        for off in self._recent:  # most recent arrival first
            i = bisect_right(offs, off) - 1
            if i >= 0 and off < blocks[i][0] + len(blocks[i][1]) and i not in chosen:
                chosen.append(i)
                if len(chosen) == limit:
                    break
        i = len(blocks) - 1
        steps = 0
        while len(chosen) < limit and i >= 0 and steps < FILL_STEPS:
            if blocks[i][1] and i not in chosen:
                chosen.append(i)
            i -= 1
            steps += 1
        return [(self._seq(blocks[i][0]), self._seq(blocks[i][0] + len(blocks[i][1]))) for i in chosen]
