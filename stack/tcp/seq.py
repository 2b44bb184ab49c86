"""Sequence-number arithmetic modulo 2**32 (RFC 9293 3.4, RFC 1982 serial numbers)."""

MASK = 0xFFFFFFFF
HALF = 0x80000000


def seq_add(a: int, n: int) -> int:
    return (a + n) & MASK


def seq_diff(a: int, b: int) -> int:
    """Signed distance a - b, in [-2**31, 2**31)."""
    d = (a - b) & MASK
    return d - 0x100000000 if d & HALF else d


def seq_lt(a: int, b: int) -> bool:
    return a != b and (a - b) & MASK >= HALF


def seq_le(a: int, b: int) -> bool:
    return a == b or (a - b) & MASK >= HALF


def seq_gt(a: int, b: int) -> bool:
    return a != b and (b - a) & MASK >= HALF


def seq_ge(a: int, b: int) -> bool:
    return a == b or (b - a) & MASK >= HALF


def seq_in(x: int, low: int, high: int) -> bool:
    """low <= x < high, modulo 2**32."""
    return (x - low) & MASK < (high - low) & MASK


def acceptable(seg_seq: int, seg_len: int, rcv_nxt: int, rcv_wnd: int) -> bool:
    """RFC 9293 3.10.7.4 first check: may a segment occupying [SEG.SEQ, SEG.SEQ+SEG.LEN) be accepted?
    (The four cases of the RFC's table; a seam of ``tunstack exercise`` 7.)"""
    if seg_len == 0:
        if rcv_wnd == 0:
            return seg_seq == rcv_nxt  # case 1: SEG.SEQ = RCV.NXT
        return seq_in(seg_seq, rcv_nxt, seq_add(rcv_nxt, rcv_wnd))  # case 2
    if rcv_wnd == 0:
        return False  # case 3: not acceptable
    right = seq_add(rcv_nxt, rcv_wnd)  # case 4: the first or the last octet lies in the window
    return seq_in(seg_seq, rcv_nxt, right) or seq_in(seq_add(seg_seq, seg_len - 1), rcv_nxt, right)
