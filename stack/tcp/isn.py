"""Initial sequence numbers per RFC 6528: ISN = M + F(localip, localport, remoteip, remoteport, secretkey).

M is a 4-microsecond timer (RFC 9293 3.4.1); F is a keyed hash (BLAKE2b keyed with a
128-bit secret). Both the clock (``now``) and the secret are arguments, so tests can
inject fixed values or a whole generator.
"""
from __future__ import annotations

import hashlib
import random


class IsnGenerator:
    def __init__(self, rng: random.Random | None = None, secret: bytes | None = None):
        rng = rng or random.Random()
        self.secret = secret if secret is not None else rng.getrandbits(128).to_bytes(16, "big")

    def __call__(self, local: tuple[bytes, int], remote: tuple[bytes, int], now: float) -> int:
        tuple_bytes = local[0] + local[1].to_bytes(2, "big") + remote[0] + remote[1].to_bytes(2, "big")
        f = int.from_bytes(hashlib.blake2b(tuple_bytes, key=self.secret, digest_size=4).digest(), "big")
        m = int(now * 250_000)  # RFC 9293 3.4.1: a clock that ticks every 4 microseconds
        return (m + f) & 0xFFFFFFFF


class FixedIsn:
    """For tests: always the same ISN (say, 2**32 - 100 to exercise wraparound)."""

    def __init__(self, value: int):
        self.value = value & 0xFFFFFFFF

    def __call__(self, local, remote, now) -> int:
        return self.value
