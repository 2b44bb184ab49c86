"""Exercise 3: the receive reassembler (RFC 9293 3.10.7.4 eighth step, RFC 2018 3-4). Lab 2.

Wired after the core merge: ``stack/tcp/reassembly.py`` (being carved out of the connection)
gets this interface, and the seam's home moves there.
"""
from __future__ import annotations

from types import SimpleNamespace

from .framework import Check, Exercise

MASK = 0xFFFFFFFF
MAX_SACK_BLOCKS = 4  # RFC 2018 3: at most 4 blocks fit in 40 bytes of options (3 with timestamps)


def _diff(a: int, b: int) -> int:
    d = (a - b) & MASK
    return d - (1 << 32) if d & 0x80000000 else d


class Reassembler:
    """Out-of-order segments in, in-order bytes out; SACK blocks of what is held (reference).

    Internally offsets are unwrapped integers (``_base`` + distance from RCV.NXT), so the
    wrap of sequence numbers never reaches the interval arithmetic.
    """

    def __init__(self, rcv_nxt: int) -> None:
        self._nxt = 0                                  # unwrapped RCV.NXT
        self._base = rcv_nxt & MASK                    # the sequence number of unwrapped offset 0
        self._blocks: dict[int, bytearray] = {}        # start -> data, disjoint and not adjacent
        self._recent: list[int] = []                   # block starts, most recently changed first
        self._fin: int | None = None                   # unwrapped sequence number of the FIN
        self.fin_received = False                      # the FIN has been reached in order

    @property
    def rcv_nxt(self) -> int:
        return (self._base + self._nxt + (1 if self.fin_received else 0)) & MASK

    def _unwrap(self, seq: int) -> int:
        return self._nxt + _diff(seq, (self._base + self._nxt) & MASK)

    def insert(self, seq: int, data: bytes, fin: bool = False) -> bytes:
        """A segment's data (and FIN) at ``seq``: return the bytes that are now in order."""
        start = self._unwrap(seq)
        end = start + len(data)
        if fin and not self.fin_received:
            self._fin = end
        if start < self._nxt:  # RFC 9293 3.10.7.4: octets before RCV.NXT are duplicates: trim them
            data = data[self._nxt - start:] if end > self._nxt else b""
            start = self._nxt
        if data:
            self._add(start, bytes(data))
        out = bytearray()
        first = self._blocks.get(self._nxt)
        if first is not None:  # RFC 9293 3.10.7.4 eighth step: deliver the in-order prefix
            del self._blocks[self._nxt]
            self._recent.remove(self._nxt)
            out += first
            self._nxt += len(first)
        if self._fin is not None and self._nxt == self._fin and not self.fin_received:
            self.fin_received = True  # RFC 9293 3.10.7.4 eighth check: FIN in order, RCV.NXT advances over it
        return bytes(out)

    def _add(self, start: int, data: bytes) -> None:
        end = start + len(data)
        merged = bytearray(data)
        for s in sorted(self._blocks):
            d = self._blocks[s]
            e = s + len(d)
            if e < start or s > end:
                continue  # neither overlapping nor adjacent
            if s < start:
                merged[:0] = d[:start - s]
                start = s
            if e > end:
                merged += d[end - s:]
                end = e
            del self._blocks[s]
            self._recent.remove(s)
        self._blocks[start] = merged
        self._recent.insert(0, start)  # RFC 2018 4: the block holding the latest segment comes first

    def sack_blocks(self) -> list[tuple[int, int]]:
        """RFC 2018 4: (left, right) of held blocks, most recent first, at most four."""
        out = []
        for s in self._recent[:MAX_SACK_BLOCKS]:
            out.append(((self._base + s) & MASK, (self._base + s + len(self._blocks[s])) & MASK))
        return out


def reference():
    return SimpleNamespace(Reassembler=Reassembler)


SKELETON = '''"""Exercise 3 -- the receive reassembler: segments in any order in, bytes in order out.

Read: RFC 9293 3.10.7.4, the eighth step ("process the segment text": deliver in order,
      advance RCV.NXT) and the note on segments that arrive out of order; RFC 9293 3.4
      (sequence numbers wrap modulo 2**32); RFC 2018 3 and 4 (the SACK option: which
      blocks to report, the most recent first, at most 4).
Lab:  docs/labs/02-loss-and-retransmission.md, section 3 (the same loss with SACK).

Wired after the core merge: the graded scenarios run against your class now; inside the
stack it will replace stack/tcp/reassembly.py's reassembler.

Check your work:  tunstack exercise check 3 DIR
"""

MOD = 2**32


class Reassembler:
    def __init__(self, rcv_nxt: int):
        """rcv_nxt: the next sequence number expected (RCV.NXT)."""
        # TODO: your data structure for the bytes held out of order.
        raise NotImplementedError("Reassembler")

    @property
    def rcv_nxt(self) -> int:
        """RCV.NXT (modulo 2**32): advances over in-order bytes, and by one more over a FIN reached in order."""
        raise NotImplementedError("rcv_nxt")

    def insert(self, seq: int, data: bytes, fin: bool = False) -> bytes:
        """A segment's bytes at ``seq`` (and its FIN flag). Return the bytes that are now in order
        (b"" if none). Bytes before RCV.NXT were already delivered: ignore them, keep the rest."""
        # TODO 1: trim what lies before RCV.NXT (a segment may be partly old, partly new).
        # TODO 2: store the rest, merging with what you hold (overlaps and neighbours).
        # TODO 3: deliver the in-order prefix; remember where the FIN is.
        raise NotImplementedError("insert")

    def sack_blocks(self) -> list:
        """RFC 2018: [(left, right), ...] of the blocks held beyond RCV.NXT (right = one past the
        last byte), the block with the most recently received segment first, at most 4."""
        raise NotImplementedError("sack_blocks")
'''


def _insert(t, r, seq, data, fin=False, want=b""):
    t.expect(f"insert({seq}, {data!r}{', fin=True' if fin else ''})", r.insert(seq, data, fin), want)


def check_in_order(part, t, o):
    """RFC 9293 3.10.7.4 eighth step: in-order bytes are delivered at once and RCV.NXT advances."""
    r = part.Reassembler(1000)
    t.note("r = Reassembler(1000)")
    _insert(t, r, 1000, b"abc", want=b"abc")
    _insert(t, r, 1003, b"de", want=b"de")
    t.expect("r.rcv_nxt", r.rcv_nxt, 1005)
    t.expect("r.sack_blocks()", r.sack_blocks(), [])


def check_fill_the_hole(part, t, o):
    """RFC 9293 3.10.7.4: out-of-order bytes are held; the segment that fills the hole releases them."""
    r = part.Reassembler(1000)
    t.note("r = Reassembler(1000)")
    _insert(t, r, 1003, b"def")
    t.expect("r.rcv_nxt", r.rcv_nxt, 1000)
    _insert(t, r, 1006, b"gh")
    _insert(t, r, 1000, b"abc", want=b"abcdefgh")
    t.expect("r.rcv_nxt", r.rcv_nxt, 1008)


def check_partly_old_segment(part, t, o):
    """RFC 9293 3.10.7.4: a segment partly before RCV.NXT: the old octets are trimmed, the new kept."""
    r = part.Reassembler(1000)
    t.note("r = Reassembler(1000)")
    _insert(t, r, 1000, b"abc", want=b"abc")
    _insert(t, r, 1001, b"bcdef", want=b"def")
    _insert(t, r, 990, b"x" * 10)
    t.expect("r.rcv_nxt", r.rcv_nxt, 1006)


def check_overlapping_pending(part, t, o):
    """RFC 9293 3.10.7.4 / RFC 2018: overlapping out-of-order segments merge into one block."""
    r = part.Reassembler(1000)
    t.note("r = Reassembler(1000)")
    _insert(t, r, 1005, b"fghij")
    _insert(t, r, 1003, b"defgh")
    t.expect("r.sack_blocks()", r.sack_blocks(), [(1003, 1010)])
    _insert(t, r, 1008, b"ijklm")
    t.expect("r.sack_blocks()", r.sack_blocks(), [(1003, 1013)])
    _insert(t, r, 1000, b"abcd", want=b"abcdefghijklm")
    t.expect("r.sack_blocks()", r.sack_blocks(), [])


def check_sack_order(part, t, o):
    """RFC 2018 4: the first block holds the most recent segment; then the others, most recent first."""
    r = part.Reassembler(1000)
    t.note("r = Reassembler(1000)")
    _insert(t, r, 1100, b"b" * 10)
    _insert(t, r, 1200, b"c" * 10)
    _insert(t, r, 1050, b"a" * 10)
    t.expect("r.sack_blocks()", r.sack_blocks(), [(1050, 1060), (1200, 1210), (1100, 1110)])
    _insert(t, r, 1110, b"b" * 10)
    t.expect("r.sack_blocks()", r.sack_blocks(), [(1100, 1120), (1050, 1060), (1200, 1210)])


def check_at_most_four(part, t, o):
    """RFC 2018 3: at most 4 blocks are reported (the 4 most recent)."""
    r = part.Reassembler(0)
    t.note("r = Reassembler(0)")
    for i in range(1, 7):
        _insert(t, r, 100 * i, b"x" * 10)
    t.expect("r.sack_blocks()", r.sack_blocks(), [(600, 610), (500, 510), (400, 410), (300, 310)])


def check_fin(part, t, o):
    """RFC 9293 3.10.7.4 eighth check: a FIN reached in order advances RCV.NXT by one; an early FIN waits."""
    r = part.Reassembler(1000)
    t.note("r = Reassembler(1000)")
    _insert(t, r, 1002, b"cd", fin=True)
    t.expect("r.rcv_nxt (the FIN is not in order yet)", r.rcv_nxt, 1000)
    _insert(t, r, 1000, b"ab", want=b"abcd")
    t.expect("r.rcv_nxt (4 bytes and the FIN)", r.rcv_nxt, 1005)


def check_wraparound(part, t, o):
    """RFC 9293 3.4: bytes on both sides of 2**32 come out in order; SACK edges are modulo 2**32."""
    top = 2**32
    r = part.Reassembler(top - 4)
    t.note(f"r = Reassembler({top - 4})")
    _insert(t, r, 2, b"gh")
    t.expect("r.sack_blocks()", r.sack_blocks(), [(2, 4)])
    _insert(t, r, top - 2, b"cdef")
    _insert(t, r, top - 4, b"ab", want=b"abcdefgh")
    t.expect("r.rcv_nxt", r.rcv_nxt, 4)


EXERCISE = Exercise(
    number=3, slug="reassembler", title="The receive reassembler and SACK blocks",
    lab="docs/labs/02-loss-and-retransmission.md",
    clauses=["RFC 9293 3.10.7.4 (eighth step)", "RFC 2018 3-4", "RFC 9293 3.4"],
    filename="reassembler.py", names=["Reassembler"], skeleton=SKELETON, reference=reference, wired=False,
    wiring="after the core merge: stack/tcp/reassembly.py exposes insert/sack_blocks/rcv_nxt and the "
           "connection builds it from a module-level name the seam rebinds; then packet scenarios and the "
           "end-to-end run grade it inside the stack",
    checks=[
        Check("in_order", "unit", check_in_order.__doc__, check_in_order),
        Check("fill_the_hole", "unit", check_fill_the_hole.__doc__, check_fill_the_hole),
        Check("partly_old_segment", "unit", check_partly_old_segment.__doc__, check_partly_old_segment),
        Check("overlapping_pending", "unit", check_overlapping_pending.__doc__, check_overlapping_pending),
        Check("sack_most_recent_first", "unit", check_sack_order.__doc__, check_sack_order),
        Check("sack_at_most_four", "unit", check_at_most_four.__doc__, check_at_most_four),
        Check("fin_in_order", "unit", check_fin.__doc__, check_fin),
        Check("wraparound", "unit", check_wraparound.__doc__, check_wraparound),
    ],
)
