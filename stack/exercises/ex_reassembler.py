"""Exercise 3: the receive reassembler (RFC 9293 3.10.7.4 eighth step, RFC 2018 3-4). Lab 2.

Wired: every connection builds its out-of-order queue from the name ``Reassembler`` in
``stack.tcp.connection`` (bound from ``stack/tcp/reassembly.py``, the seam). The student's class has
the exercise's interface (``insert``/``sack_blocks``/``rcv_nxt``); ``adapt`` below turns it into the
core's (``store``/``pop_ready``/``sack_blocks(limit)``/``clear``/``queue``/``pruned``/``len``/``blocks``),
so the stack itself is unchanged. The core keeps its fast path -- a segment at RCV.NXT with nothing
queued is delivered without asking the reassembler -- so every out-of-order segment, every merge,
every SACK block on the wire and every release of held data is the student's.
"""
from __future__ import annotations

from types import SimpleNamespace

from ..tcp.config import TcpConfig
from ..tcp.reassembly import Reassembler as _CoreReassembler
from .framework import Check, Exercise
from .scenarios import Peer, transfer

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


class CoreReassembly:
    """The core's reassembler interface (stack/tcp/reassembly.py) over a class with the exercise's.

    The core never hands in-order segments to the reassembler while nothing is queued, so the
    student's RCV.NXT falls behind; the adapter catches it up: with nothing held, a fresh instance at
    the core's RCV.NXT; with blocks held (the core just delivered the segment that reached them),
    ``filler`` octets for what the core delivered, whose echo it strips from the student's answer.
    """

    student_class = Reassembler
    pruned = 0   # the student's queue is not bounded: nothing is pruned
    dropped = 0

    def __init__(self, max_blocks: int = 4096) -> None:
        self.max_blocks = max_blocks
        self._r = None                 # the student's object, built at the first out-of-order segment
        self._ready: list[tuple[bytes, bool]] = []  # released by the student before the core asked
        self._blocks: list | None = []  # the student's sack_blocks(), cached until the next change

    def _held(self) -> list:
        if self._blocks is None:
            self._blocks = list(self._r.sack_blocks()) if self._r is not None else []
        return self._blocks

    def __len__(self) -> int:
        return len(self._held())

    def __bool__(self) -> bool:
        return bool(self._ready) or bool(self._held())

    @property
    def queue(self) -> bool:
        return self.__bool__()

    def blocks(self) -> list[tuple[int, bytes, bool]]:
        """(left, data, fin) lowest first; the exercise's interface does not show the data: zeros."""
        return [(left, bytes((right - left) & MASK), False) for left, right in sorted(self._held())]

    def clear(self) -> None:
        self._r, self._ready, self._blocks = None, [], []

    def _catch_up(self, rcv_nxt: int) -> None:
        """Feed the student the octets the core delivered itself, up to ``rcv_nxt``; keep what it releases."""
        r = self._r
        before = r.rcv_nxt
        gap = (rcv_nxt - before) & MASK
        if gap == 0 or gap >= 1 << 31:
            return
        out = r.insert(before, bytes(gap), False)
        self._blocks = None
        fin = (r.rcv_nxt - before) & MASK == len(out) + 1
        if len(out) > gap or fin:
            self._ready.append((bytes(out[gap:]), fin))

    def store(self, seq: int, payload, fin: bool, rcv_nxt: int) -> bool:
        r = self._r
        if r is None or (r.rcv_nxt != rcv_nxt and not self._ready and not self._held()):
            r = self._r = self.student_class(rcv_nxt)
        elif r.rcv_nxt != rcv_nxt:
            self._catch_up(rcv_nxt)
        before = r.rcv_nxt
        out = r.insert(seq, bytes(payload), fin)
        self._blocks = None
        took_fin = (r.rcv_nxt - before) & MASK == len(out) + 1
        if out or took_fin:
            self._ready.append((bytes(out), took_fin))  # released out of order: the student's answer stands
        return True

    def pop_ready(self, rcv_nxt: int):
        if not self._ready and self._r is not None:
            self._catch_up(rcv_nxt)
        return self._ready.pop(0) if self._ready else None

    # the core's own "whole job in one call", over this adapter's store/pop_ready/clear (the class as
    # imported, before any seam swaps the name)
    insert = _CoreReassembler.insert

    def sack_blocks(self, limit: int) -> list[tuple[int, int]]:
        return [(left & MASK, right & MASK) for left, right in self._held()[:limit]]


def adapt(cls):
    """The student's class behind the core's reassembler interface."""
    return type(f"Student{cls.__name__}", (CoreReassembly,), {"student_class": cls})


def replacements(part) -> dict:
    return {"reassembly.Reassembler": adapt(part.Reassembler)}


SKELETON = '''"""Exercise 3 -- the receive reassembler: segments in any order in, bytes in order out.

Read: RFC 9293 3.10.7.4, the eighth step ("process the segment text": deliver in order,
      advance RCV.NXT) and the note on segments that arrive out of order; RFC 9293 3.4
      (sequence numbers wrap modulo 2**32); RFC 2018 3 and 4 (the SACK option: which
      blocks to report, the most recent first, at most 4).
Lab:  docs/labs/02-loss-and-retransmission.md, section 3 (the same loss with SACK).

Inside the stack your class replaces stack/tcp/reassembly.py's reassembler: every segment that
arrives out of order goes to insert(), the SACK blocks the stack sends are your sack_blocks(),
and the bytes the application reads after a hole fills are the ones insert() returned.

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


TOP = 2**32
ISS = 5000


def _receiver(t, irs: int):
    """The stack accepts a connection (SACK on, no timestamps); the peer's ISS is ``irs``. Offsets in the
    steps count from the peer's first data octet (irs + 1)."""
    p = Peer(t, iss=ISS, config=TcpConfig(timestamps=False, sack=True, window_scaling=False))
    lst = p.listen()
    p.send("S", irs, sack_perm=True)
    p.send("A", irs + 1, ISS + 1)
    conn = lst.accept()
    p.take()
    if conn is None or not conn.sack_enabled:
        t.fail("the handshake did not complete with SACK permitted")
    t.note(f"connection established, SACK permitted; data offsets count from {(irs + 1) % TOP}")
    return p, conn


def _send(p, irs: int, off: int, data: bytes, fin: bool = False) -> None:
    p.send("FA" if fin else "PA", irs + 1 + off, ISS + 1, data,
           note=f"  (offsets {off}-{off + len(data)}{', FIN' if fin else ''})")


def _answer(t, p, irs: int, what: str, ack: int, sack: list) -> None:
    """The host's answers since the last look: exactly one ACK, at offset ``ack``, with ``sack`` blocks."""
    base = irs + 1
    got = [((s.ack - base) % TOP, [((l - base) % TOP, (r - base) % TOP) for l, r in (s.sack or [])])
           for _, s, _ in p.take()]
    t.expect(f"{what}: the host's ACKs as (ack offset, SACK blocks as offsets)", got, [(ack, sack)])


def _read(t, conn, p, want: bytes) -> None:
    got = conn.recv(1 << 20, p.now)
    t.expect("what the application reads", got, want)


def check_sack_through_stack(part, t, o):
    """RFC 9293 3.10.7.4 and RFC 2018 4 through the stack: each out-of-order segment is held and answered
    at once with a duplicate ACK whose SACK blocks list the block of that segment first; a segment
    overlapping two blocks merges them; the segment that fills the hole releases everything in order.
    The sequence numbers wrap past 2**32 on the way."""
    from .seams import swapped
    irs = TOP - 250
    data = bytes(range(256)) + bytes(range(144))
    with swapped({} if o["part_is_reference"] else replacements(part)):
        p, conn = _receiver(t, irs)
        _send(p, irs, 100, data[100:200])
        _answer(t, p, irs, "after 100-200", 0, [(100, 200)])
        _send(p, irs, 300, data[300:400])
        _answer(t, p, irs, "after 300-400", 0, [(300, 400), (100, 200)])
        _send(p, irs, 150, data[150:350])
        _answer(t, p, irs, "after 150-350 (overlaps both)", 0, [(100, 400)])
        t.expect("bytes readable before the hole fills", conn.readable_bytes(), 0)
        _send(p, irs, 0, data[:100])
        _answer(t, p, irs, "after 0-100 (fills the hole)", 400, [])
        _read(t, conn, p, data)


def check_four_blocks_through_stack(part, t, o):
    """RFC 2018 3-4 through the stack: five separate blocks held, the ACK carries the four most recent,
    newest first; a segment joining two of them reports the merged block first."""
    from .seams import swapped
    irs = 70000
    with swapped({} if o["part_is_reference"] else replacements(part)):
        p, conn = _receiver(t, irs)
        for i in range(1, 6):
            _send(p, irs, 200 * i, b"%d" % i * 100)
            p.take()
        _send(p, irs, 1100, b"6" * 100)
        _answer(t, p, irs, "after 1100-1200", 0, [(1000, 1200), (800, 900), (600, 700), (400, 500)])
        _send(p, irs, 300, b"x" * 100)
        _answer(t, p, irs, "after 300-400 (joins 200-300 and 400-500)", 0,
                [(200, 500), (1000, 1200), (800, 900), (600, 700)])


def check_fin_out_of_order_through_stack(part, t, o):
    """RFC 9293 3.10.7.4 eighth check through the stack: a bare FIN that arrives beyond a hole is held;
    when the hole fills, RCV.NXT covers the data and the FIN: the ACK is one past the data, the
    connection is in CLOSE-WAIT and the application reads the data, then end of file."""
    from .seams import swapped
    irs = 90000
    with swapped({} if o["part_is_reference"] else replacements(part)):
        p, conn = _receiver(t, irs)
        _send(p, irs, 100, b"b" * 100)
        _answer(t, p, irs, "after 100-200", 0, [(100, 200)])
        _send(p, irs, 200, b"", fin=True)
        _answer(t, p, irs, "after the FIN at 200", 0, [(100, 200)])
        _send(p, irs, 0, b"a" * 100)
        _answer(t, p, irs, "after 0-100 (fills the hole)", 201, [])
        t.expect("connection state", conn.state.name, "CLOSE_WAIT")
        _read(t, conn, p, b"a" * 100 + b"b" * 100)
        t.expect("end of file after the data", conn.at_eof, True)


def check_transfer_under_loss(part, t, o):
    """End to end: a byte-exact transfer through 5 % loss each way with your reassembler receiving
    (its SACK blocks steer the sender's recovery)."""
    from .seams import swapped
    with swapped({} if o["part_is_reference"] else replacements(part)):
        transfer(t, o["e2e_bytes"])


def check_real_tun_curl(part, t, o):
    """End to end over a real TUN (root only): curl uploads to the stack with your reassembler in it,
    through 5 % loss each way; the stack answers with the sha256 of what it received in order."""
    from .tun_e2e import real_curl_check
    real_curl_check(EXERCISE, part, t, o, upload=True)


EXERCISE = Exercise(
    number=3, slug="reassembler", title="The receive reassembler and SACK blocks",
    lab="docs/labs/02-loss-and-retransmission.md",
    clauses=["RFC 9293 3.10.7.4 (eighth step)", "RFC 2018 3-4", "RFC 9293 3.4"],
    filename="reassembler.py", names=["Reassembler"], skeleton=SKELETON, reference=reference,
    replacements=replacements,
    wiring="installed for Reassembler in stack.tcp.reassembly and stack.tcp.connection (behind an adapter to "
           "the core's interface): every connection opened while the part is installed holds its out-of-order "
           "data in your class",
    checks=[
        Check("in_order", "unit", check_in_order.__doc__, check_in_order),
        Check("fill_the_hole", "unit", check_fill_the_hole.__doc__, check_fill_the_hole),
        Check("partly_old_segment", "unit", check_partly_old_segment.__doc__, check_partly_old_segment),
        Check("overlapping_pending", "unit", check_overlapping_pending.__doc__, check_overlapping_pending),
        Check("sack_most_recent_first", "unit", check_sack_order.__doc__, check_sack_order),
        Check("sack_at_most_four", "unit", check_at_most_four.__doc__, check_at_most_four),
        Check("fin_in_order", "unit", check_fin.__doc__, check_fin),
        Check("wraparound", "unit", check_wraparound.__doc__, check_wraparound),
        Check("sack_through_stack", "packet", check_sack_through_stack.__doc__, check_sack_through_stack),
        Check("four_blocks_through_stack", "packet", check_four_blocks_through_stack.__doc__,
              check_four_blocks_through_stack),
        Check("fin_out_of_order_through_stack", "packet", check_fin_out_of_order_through_stack.__doc__,
              check_fin_out_of_order_through_stack),
        Check("transfer_5pct_loss", "e2e", check_transfer_under_loss.__doc__, check_transfer_under_loss,
              weight=2, timeout=120.0),
        Check("real_tun_curl", "e2e", check_real_tun_curl.__doc__, check_real_tun_curl, weight=2,
              timeout=150.0),
    ],
)
