"""stack/tcp/buffers.py: ByteQueue against the bytearray it replaced (a differential model)."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stack.tcp.buffers import BLOCK, COMPACT, LARGE, SMALL, ByteQueue, SendQueue

# what a caller appends: immutable bytes (kept), or mutable buffers it may reuse (copied)
KINDS = ("bytes", "bytearray", "view_of_bytes", "view_of_bytearray", "sliced_view_of_bytes")
sizes = st.one_of(st.integers(0, 40), st.integers(SMALL - 40, SMALL + 40), st.integers(1, 5000),
                  st.integers(BLOCK - 50, BLOCK + 50))
ops = st.one_of(
    st.tuples(st.just("append"), sizes, st.sampled_from(KINDS)),
    st.tuples(st.just("take"), st.integers(0, 6000)),
    st.tuples(st.just("take_into"), st.integers(0, 6000)),
    st.tuples(st.just("peek"), st.integers(0, 6000)),
    st.tuples(st.just("slice"), st.integers(0, 3 * BLOCK), st.integers(0, 3000)),
    st.tuples(st.just("trim"), st.integers(0, BLOCK + 6000)),
    st.tuples(st.just("del"), st.integers(0, 6000)),
    st.tuples(st.just("clear")),
)


def _data(n: int, kind: str, counter: list[int]):
    counter[0] += 1
    raw = bytes((counter[0] * 7 + i) & 0xFF for i in range(n))
    if kind == "bytes":
        return raw, raw
    if kind == "bytearray":
        return bytearray(raw), raw
    if kind == "view_of_bytes":
        return memoryview(raw), raw
    if kind == "view_of_bytearray":
        return memoryview(bytearray(raw)), raw
    padded = b"<" + raw + b">"
    return memoryview(padded)[1:1 + n], raw


@pytest.mark.parametrize("cls", [ByteQueue, SendQueue])
@settings(max_examples=300, deadline=None)
@given(script=st.lists(ops, max_size=80))
def test_byte_queue_behaves_as_a_bytearray(cls, script):
    """Every operation returns what the same operation on a bytearray returns; mutating a mutable
    buffer after appending it does not change what the queue holds (SendQueue: nor a recycled block)."""
    q, model, counter = cls(), bytearray(), [0]
    for op in script:
        if op[0] == "append":
            data, raw = _data(op[1], op[2], counter)
            q.append(data)
            model += raw
            if isinstance(data, bytearray) or (isinstance(data, memoryview) and not data.readonly):
                data[:] = bytes(len(data))  # the caller reuses its buffer
        elif op[0] == "take":
            assert q.take(op[1]) == bytes(model[:op[1]])
            del model[:op[1]]
        elif op[0] == "take_into":
            buf = bytearray(b"\xee" * op[1])
            k = q.take_into(memoryview(buf))
            assert k == min(op[1], len(model)) and buf[:k] == model[:k] and buf[k:] == b"\xee" * (op[1] - k)
            del model[:k]
        elif op[0] == "peek":
            assert q.peek(op[1]) == bytes(model[:op[1]])
        elif op[0] == "slice":
            off, n = op[1], op[2]
            if off + n <= len(model):
                got = q.slice(off, n)
                assert type(got) is bytes and got == bytes(model[off:off + n])
            else:
                with pytest.raises(IndexError):
                    q.slice(off, n)
        elif op[0] == "trim":
            q.trim(op[1])
            del model[:op[1]]
        elif op[0] == "del":
            del q[:op[1]]
            del model[:op[1]]
        else:
            q.clear()
            model.clear()
        assert len(q) == len(model) and bool(q) == bool(model)
        assert q == bytes(model) and bytes(q) == bytes(model)


def test_appended_bytes_are_not_copied():
    """A bytes chunk read whole comes back as the same object (the zero-copy path of a segment)."""
    q = ByteQueue()
    a, b = bytes(range(256)) * 8, b"x" * 3000
    q.append(a)
    q += b
    assert q.slice(0, len(a)) is a and q.slice(len(a), len(b)) is b
    assert q.take(len(a)) is a and q.peek(len(b)) is b


def test_tiny_writes_are_joined_into_chunks_of_at_least_half_small():
    """A run of one-octet appends leaves about len/SMALL chunks, not one per octet."""
    q = ByteQueue()
    for i in range(10 * SMALL):
        q.append(bytes([i & 0xFF]))
    assert len(q._chunks) <= 11
    assert q.slice(3 * SMALL - 5, 10) == bytes(i & 0xFF for i in range(3 * SMALL - 5, 3 * SMALL + 5))


def test_front_trims_compact_the_chunk_list():
    """Consumed chunks are released at once and the list shrinks; the bound of work holds."""
    q = ByteQueue()
    for _ in range(4 * COMPACT):
        q.append(b"y" * 2000)
    q.trim(3 * COMPACT * 2000 + 10)
    assert len(q._chunks) < 2 * COMPACT and all(c is not None for c in q._chunks[q._i:])
    assert len(q) == COMPACT * 2000 - 10 and q.take(5) == b"yyyyy"
    q.trim(len(q))
    assert not q and q._chunks == [] and q._base == 0


@pytest.mark.parametrize("key", [slice(1, 3), slice(None, 3, 2), slice(None, -1), 0])
def test_only_front_deletes_are_allowed(key):
    q = ByteQueue(b"abcdef")
    with pytest.raises(TypeError):
        del q[key]
    assert q == b"abcdef"


def test_send_queue_recycles_its_blocks():
    """A sender that keeps its buffer full reuses the blocks the ACKs freed: no new allocation, and
    what a recycled block held before is never read again."""
    q = SendQueue()
    for i in range(6):
        q.append(bytes([i]) * BLOCK)
    first = [c.obj for c in q._chunks[:3]]
    q.trim(3 * BLOCK)
    assert sorted(map(id, q._spare)) == sorted(map(id, first))
    q.append(b"\x09" * BLOCK)
    assert any(q._chunks[-1].obj is b for b in first)
    assert q.slice(2 * BLOCK, BLOCK + 10) == b"\x05" * BLOCK + b"\x09" * 10
    assert bytes(q) == b"\x03" * BLOCK + b"\x04" * BLOCK + b"\x05" * BLOCK + b"\x09" * BLOCK
    q.trim(len(q))
    assert q._spare == [] and q._block is None  # an empty queue holds no block


def test_send_queue_keeps_large_bytes_as_they_are():
    """sendfile()'s pieces (``bytes`` of at least LARGE octets) are queued without a copy; small
    appends before and after them still go into blocks, and every octet reads back in order."""
    q = SendQueue()
    q.append(b"a" * 10)
    piece = b"b" * LARGE
    q.append(piece)
    q.append(bytearray(b"c" * 10))
    assert q.slice(10, LARGE) is piece  # the piece itself: no copy
    assert q.slice(5, 10) == b"a" * 5 + b"b" * 5
    assert q.slice(LARGE + 5, 15) == b"b" * 5 + b"c" * 10
    q.trim(LARGE + 10)  # the piece and the first block leave; only a block is recycled
    assert all(type(b) is bytearray for b in q._spare)
    assert bytes(q) == b"c" * 10
    assert len(q._spare) == 1
