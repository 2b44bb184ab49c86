"""The send and receive buffers: a queue of octets kept as immutable chunks.

A ``bytearray`` appended at the back and deleted at the front copies the whole buffer again and
again: CPython keeps a front offset after ``del b[:n]``, but the next append that has to grow the
block (``PyByteArray_Resize`` with an offset) allocates a new one and copies all it holds, and so
does a shrink below half the allocation: a 64 KiB append and a 64 KiB read cost 9-48 us here
against 1.5 us for the one copy they need (docs/benchmarks.md, "Chunked buffers").

``ByteQueue`` (the receive buffer) keeps what was appended as it came (``bytes``, or a view of
``bytes``: both immutable, so nothing is copied), and copies only the octets a reader takes or a
segment carries. ``SendQueue`` (the send buffer) copies appends once into blocks it recycles (why:
its docstring).
Small appends are joined to a small last chunk, so that a run of tiny writes does not leave a
chunk per octet: any two neighbouring chunks hold more than ``SMALL`` octets together, and a read
of n octets touches at most about n / (SMALL / 2) + 2 chunks.

The chunks live in a list with their start offsets (counted from the queue's creation), so
``slice(off, n)`` (a retransmission deep in the send buffer) finds its chunk by bisection; the
front is an index into that list, moved by ``trim`` over the chunks it drops; the list is
compacted when more than half of it is dropped, and reset when the queue runs empty.
"""
from __future__ import annotations

from bisect import bisect_right

SMALL = 1024  # appends that leave the last chunk at most this long are joined to it (below an MSS)
COMPACT = 32  # drop the consumed head of the chunk list once it is this long and half the list
BLOCK = 1 << 16  # SendQueue: the size of the blocks appends are copied into
SPARE_BLOCKS = 8  # SendQueue: free blocks kept for reuse while the queue holds data
LARGE = 1 << 20  # SendQueue: ``bytes`` this long (sendfile's pieces) are queued as they are, not copied


def _immutable(data):
    """``data`` as an immutable octet string: ``bytes`` and views of ``bytes`` as they are, anything
    else (a ``bytearray``, a view of one, the caller's reusable buffer) copied once."""
    kind = type(data)
    if kind is bytes:
        return data
    if kind is memoryview and type(data.obj) is bytes and data.c_contiguous:
        return data if data.format == "B" and data.ndim == 1 else data.cast("B")
    return bytes(data)


class ByteQueue:
    """A FIFO of octets: ``append`` at the back, ``take``/``take_into``/``trim`` at the front,
    ``peek`` and ``slice`` read without consuming. Compares equal to the ``bytes`` it holds."""

    __slots__ = ("_chunks", "_starts", "_i", "_base", "_end")

    def __init__(self, data=b""):
        self.clear()
        if data:
            self.append(data)

    def clear(self) -> None:
        self._chunks: list = []       # bytes or memoryviews of bytes; None once dropped
        self._starts: list[int] = []  # offset of each chunk's first octet, counted from the start
        self._i = 0                   # the chunk holding the front octet
        self._base = 0                # offset of the front octet
        self._end = 0                 # offset past the last octet

    def __len__(self) -> int:
        return self._end - self._base

    def __bool__(self) -> bool:
        return self._end != self._base

    def append(self, data) -> None:
        """Queue ``data`` at the back: no copy for ``bytes`` (and views of them), one otherwise."""
        data = _immutable(data)
        n = len(data)
        if not n:
            return
        chunks = self._chunks
        if n < SMALL and len(chunks) > self._i and len(chunks[-1]) + n <= SMALL:
            chunks[-1] = b"".join((chunks[-1], data))  # a tiny write joins a small tail (one short copy)
        else:
            chunks.append(data)
            self._starts.append(self._end)
        self._end += n

    def __iadd__(self, data) -> ByteQueue:
        self.append(data)
        return self

    def peek(self, n: int) -> bytes:
        """The first ``n`` octets (fewer if fewer are queued), left in place."""
        n = min(n, self._end - self._base)
        return self._read(self._base, n) if n > 0 else b""

    def slice(self, off: int, n: int) -> bytes:
        """Octets ``off`` to ``off + n`` from the front (a segment's payload): the chunk itself when it
        is exactly that ``bytes``, else one copy."""
        if off < 0 or n < 0 or off + n > self._end - self._base:
            raise IndexError(f"slice({off}, {n}) of a queue of {len(self)} octets")
        return self._read(self._base + off, n) if n else b""

    def take(self, n: int) -> bytes:
        """Remove and return the first ``n`` octets (fewer if fewer are queued)."""
        data = self.peek(n)
        self.trim(len(data))
        return data

    def take_into(self, view: memoryview) -> int:
        """Move the first octets into ``view`` (as many as fit): one copy. Returns the count."""
        k = min(len(view), self._end - self._base)
        if k <= 0:
            return 0
        chunks, i = self._chunks, self._i
        o = self._base - self._starts[i]
        w = 0
        while w < k:
            chunk = chunks[i]
            m = min(len(chunk) - o, k - w)
            view[w:w + m] = memoryview(chunk)[o:o + m]  # (a view of a view is a view of its bytes)
            w += m
            i += 1
            o = 0
        self.trim(k)
        return k

    def trim(self, n: int) -> None:
        """Drop the first ``n`` octets (all, if ``n`` is larger): O(chunks dropped)."""
        if n <= 0:
            return
        base = self._base + n
        if base >= self._end:
            self.clear()
            return
        self._base = base
        chunks, starts, i = self._chunks, self._starts, self._i
        last = len(chunks) - 1
        while i < last and starts[i + 1] <= base:
            self._release(chunks[i])
            chunks[i] = None          # let the dropped chunk go now, not at the next compaction
            i += 1
        if i > COMPACT and 2 * i > len(chunks):
            del chunks[:i], starts[:i]
            i = 0
        self._i = i

    def _release(self, chunk) -> None:
        """A chunk leaves the front (SendQueue recycles its block)."""

    def __delitem__(self, key) -> None:
        """``del q[:n]``, as on the ``bytearray`` this replaces: ``trim(n)``."""
        if not isinstance(key, slice) or key.start not in (None, 0) or key.step is not None or (
                key.stop is not None and key.stop < 0):
            raise TypeError("a ByteQueue only deletes from the front: del q[:n]")
        self.trim(len(self) if key.stop is None else key.stop)

    def __bytes__(self) -> bytes:
        return self.peek(len(self))

    def __eq__(self, other) -> bool:
        if isinstance(other, ByteQueue):
            other = bytes(other)
        try:
            return bytes(self) == bytes(memoryview(other))
        except TypeError:
            return NotImplemented

    __hash__ = None  # mutable, as the bytearray was

    def __repr__(self) -> str:
        return f"ByteQueue({len(self)} octets in {len(self._chunks) - self._i} chunks)"

    def _read(self, pos: int, n: int) -> bytes:
        """``n`` > 0 octets from offset ``pos``: the chunk by bisection unless it is the front one."""
        chunks, starts = self._chunks, self._starts
        i = self._i
        if pos - starts[i] >= len(chunks[i]):
            i = bisect_right(starts, pos, i) - 1
        chunk = chunks[i]
        o = pos - starts[i]
        m = len(chunk)
        if o + n <= m:  # inside one chunk: the chunk itself, or one copy
            if type(chunk) is bytes:
                return chunk if o == 0 and n == m else chunk[o:o + n]
            return chunk[o:o + n].tobytes()
        parts = [memoryview(chunk)[o:]]
        n -= m - o
        while n > 0:
            i += 1
            chunk = chunks[i]
            m = len(chunk)
            if m <= n:
                parts.append(chunk)
                n -= m
            else:
                parts.append(memoryview(chunk)[:n])
                break
        return b"".join(parts)  # the one copy


class SendQueue(ByteQueue):
    """The send buffer: a ``ByteQueue`` whose appends are copied (once) into blocks of ``BLOCK``
    octets that it recycles, instead of keeping the caller's ``bytes``.

    Measured in ``scripts/bench --offload`` download (docs/benchmarks.md, "Chunked buffers"): keeping
    the application's 64 KiB ``bytes`` until they were acknowledged cost fifteen times the page faults
    of the bytearray and more system time. The application's thread allocated
    them, the stack's thread freed them in FIFO order, and glibc kept returning the top of the
    thread's heap to the kernel and faulting it back in. A block here is taken from the queue's own
    spares when one is free, so a sender that keeps its buffer full allocates nothing; the spares
    go when the queue runs empty (an idle connection holds no block)."""

    __slots__ = ("_block", "_fill", "_spare")

    def clear(self) -> None:
        super().clear()
        self._block: bytearray | None = None  # the block being filled (the last chunk views it)
        self._fill = 0
        self._spare: list[bytearray] = []

    def append(self, data) -> None:
        """Copy ``data`` in at the back: one copy, into the last block and the next ones; ``bytes`` of
        at least ``LARGE`` octets (sendfile's pieces, allocated once per piece) are kept as they are."""
        if type(data) is bytes and len(data) >= LARGE:
            self._block, self._fill = None, 0  # the next small append starts a block of its own
            ByteQueue.append(self, data)
            return
        view = memoryview(data)
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B") if view.c_contiguous else memoryview(view.tobytes())
        n = len(view)
        pos = 0
        chunks = self._chunks
        while pos < n:
            block, fill = self._block, self._fill
            if block is None or fill == BLOCK:
                block = self._block = self._spare.pop() if self._spare else bytearray(BLOCK)
                fill = 0
                chunks.append(None)
                self._starts.append(self._end)
            k = min(BLOCK - fill, n - pos)
            block[fill:fill + k] = view[pos:pos + k]
            self._fill = fill = fill + k
            chunks[-1] = memoryview(block)[:fill]  # what is written so far; readers copy out of it
            self._end += k
            pos += k

    def _release(self, chunk) -> None:
        if type(chunk) is bytes:
            return  # a LARGE append, kept as it was given
        block = chunk.obj
        if block is not self._block and len(self._spare) < SPARE_BLOCKS:
            self._spare.append(block)  # every read copied out of it: nothing else sees it
