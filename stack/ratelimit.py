"""One token bucket for every rate limit of the stack (sans-I/O: ``now`` is an argument).

Used for ICMP errors (RFC 1812 4.3.2.8, RFC 1122 3.2.2: stack/ip/layer.py) and for RFC 5961
challenge ACKs (RFC 5961 7: stack/tcp/layer.py). It sits below both layers so either may import it.
"""
from __future__ import annotations


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; starts full at time ``start``."""

    __slots__ = ("rate", "burst", "tokens", "last")

    def __init__(self, rate: float, burst: float, start: float = 0.0):
        self.rate, self.burst, self.tokens, self.last = rate, burst, float(burst), start

    def take(self, now: float) -> bool:
        """Refill for the time since the last call, then spend one token if there is one."""
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False
