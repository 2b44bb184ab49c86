"""The receive reassembler (stack/tcp/reassembly.py): a pure data structure checked against a model,
its caps, and bounded work per segment whatever the number of out-of-order blocks (issue 12).

RFC 9293 3.10.7.4 seventh check (out-of-order data kept, delivered in order), RFC 2018 3-4 (SACK
blocks: maximal, disjoint, the one holding the latest segment first, then the most recent).
"""
import sys

from hypothesis import given, settings, strategies as st
from scapy.layers.inet import IP

from harness import LOCAL, PEER, TcpHarness
from stack.tcp.reassembly import Reassembler

MASK = 0xFFFFFFFF


# ------------------------------------------------------------------ against a model
@settings(max_examples=300, deadline=None)
@given(base=st.sampled_from([0, 1000, 2**32 - 3000, 2**31 - 10]),
       segments=st.lists(st.tuples(st.integers(0, 3000), st.integers(0, 300), st.booleans()),
                         min_size=1, max_size=40),
       limit=st.sampled_from([3, 4]))
def test_store_insert_and_sack_blocks_match_a_model(base, segments, limit):
    """Any arrival order: the blocks are exactly the received ranges (maximal, sorted, not adjacent),
    SACK blocks are received ranges with the latest arrival's first, as many as fit; delivery from
    RCV.NXT returns exactly the octets received, in order."""
    r = Reassembler()
    have = {}  # offset -> octet
    stream = bytes((i * 7 + 3) & 0xFF for i in range(4000))
    for off, n, _fin in segments:
        off += 1  # never at RCV.NXT: everything stays out of order
        payload = stream[off:off + n]
        if not payload:
            continue
        assert r.store((base + off) & MASK, payload, False, base)
        for i in range(off, off + n):
            have[i] = stream[i]
        ranges, i, keys = [], 0, sorted(have)
        while i < len(keys):
            j = i
            while j + 1 < len(keys) and keys[j + 1] == keys[j] + 1:
                j += 1
            ranges.append(((base + keys[i]) & MASK, (base + keys[j] + 1) & MASK))
            i = j + 1
        assert [(s, (s + len(d)) & MASK) for s, d, _ in r.blocks()] == ranges
        sack = r.sack_blocks(limit)
        assert len(sack) == min(limit, len(ranges)) and len(set(sack)) == len(sack)
        assert all(b in ranges for b in sack)
        left, right = sack[0]
        assert (((base + off) - left) & MASK) < ((right - left) & MASK)  # the latest arrival's block first
    chunks = r.insert(base, stream[:1], False, base)  # fill RCV.NXT: deliver what connects
    got = b"".join(bytes(d) for d, _ in chunks)
    n = 1
    while n in have:
        n += 1
    assert got == stream[:n]
    assert all(((s - base) & MASK) > n for s, _, _ in r.blocks())  # what is left lies beyond the next gap


def test_fin_block_delivers_fin_and_nothing_after():
    r = Reassembler()
    assert r.store(105, b"fghij", True, 100)
    assert r.insert(100, b"abcde", False, 100) == [(b"abcde", False), (bytearray(b"fghij"), True)]
    assert len(r) == 0 and r.sack_blocks(4) == []


def test_segment_spanning_two_blocks_merges_them():
    r = Reassembler()
    r.store(110, b"b" * 10, False, 100)
    r.store(130, b"d" * 10, False, 100)
    r.store(115, b"c" * 20, False, 100)
    assert [(s, len(d)) for s, d, _ in r.blocks()] == [(110, 30)]


def test_full_queue_drops_segments_above_and_prunes_the_top_for_segments_below():
    """Capped in blocks: a segment above the highest block is dropped; one below prunes the highest
    block (as Linux's tcp_prune_ofo_queue, RFC 2018 8 allows reneging)."""
    r = Reassembler(max_blocks=3)
    for s in (110, 130, 150):
        assert r.store(s, b"x", False, 100)
    assert not r.store(170, b"y", False, 100) and r.dropped == 1
    assert r.store(120, b"z", False, 100) and r.pruned == 1
    assert [s for s, _, _ in r.blocks()] == [110, 120, 130]
    assert r.store(131, b"w", False, 100)  # merges with a block: room without pruning
    assert [s for s, _, _ in r.blocks()] == [110, 120, 130] and r.pruned == 1


def test_base_moves_forward_over_a_long_connection():
    """Offsets stay small however far RCV.NXT travels (modulo 2**32 several times)."""
    r = Reassembler()
    rcv_nxt = 100
    for _ in range(10):
        assert r.store((rcv_nxt + 10) & MASK, b"k", False, rcv_nxt)
        rcv_nxt = (rcv_nxt + (1 << 29)) & MASK  # pretend the hole before moved on, data kept far ahead
        assert r.store((rcv_nxt + 10) & MASK, b"n", False, rcv_nxt)
        r.clear()
    assert r.store((rcv_nxt + 5) & MASK, b"a", False, rcv_nxt)
    assert r.pop_ready(rcv_nxt) is None
    assert r.pop_ready((rcv_nxt + 5) & MASK) == (bytearray(b"a"), False)


# ------------------------------------------------------------------ bounded work per segment
def _python_lines(fn) -> int:
    """Lines of Python executed by fn(): an operation count that does not depend on the machine."""
    count = 0

    def tracer(frame, event, arg):
        nonlocal count
        if event == "line":
            count += 1
        return tracer

    sys.settrace(tracer)
    try:
        fn()
    finally:
        sys.settrace(None)
    return count


def _cost_with_blocks(n: int) -> dict[str, int]:
    """A SACK connection with ``n`` one-octet out-of-order blocks (3-octet gaps between them), then
    the Python lines one segment costs, through IP input to the ACK it produces (with SACK blocks)."""
    h = TcpHarness(sack=True)
    h.established(syn_options=[("MSS", 1460), ("SAckOK", b"")])
    conn, r = h.conn, h.p_nxt
    for i in range(n):
        assert conn.reasm.store((r + 10 + 4 * i) & MASK, b"x", False, conn.rcv_nxt)
    costs = {}

    def one(name, seq, load):
        raw = bytes(IP(src=PEER, dst=LOCAL) / h.seg("PA", seq=seq, load=load))
        costs[name] = _python_lines(lambda: (h.host.receive(raw, h.now), h.host.take_output(h.now)))
    one("new_block_in_the_middle", r + 10 + 4 * (n // 2) + 2, b"m")  # touches no block
    one("joins_two_blocks", r + 11 + 4 * (n // 4), b"jjj")             # fills a gap: two blocks become one
    one("new_block_at_the_top", r + 12 + 4 * n, b"t")                  # above every block
    one("in_order_fills_the_first_gap", r, b"a" * 10)                  # delivers the first block too
    assert len(conn.reasm) == n  # + middle - join + top - delivered: the work really happened
    assert conn.rcv_nxt == (r + 11) & MASK
    return costs


def test_work_per_segment_does_not_grow_with_out_of_order_blocks():
    """Issue 12: 1,500 gapped one-octet segments stalled every client (O(n**2) SACK blocks). The Python
    work one segment costs is the same at 10, 1,000 and 4,000 out-of-order blocks (give or take the
    few lines a different merge path takes), instead of growing with n."""
    small, mid, large = (_cost_with_blocks(n) for n in (10, 1000, 4000))
    for kind in small:
        assert abs(mid[kind] - small[kind]) <= 10, (kind, small, mid)
        assert abs(large[kind] - small[kind]) <= 10, (kind, small, large)
        assert small[kind] < 2000  # and it is small in absolute terms
