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
