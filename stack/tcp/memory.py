"""The TCP memory budget, like Linux's ``tcp_mem``: the octets held in every connection's send
buffer, receive buffer and out-of-order queue, against three thresholds made from one limit.

- below ``low``: nothing is limited;
- above ``pressure`` (entered there, left again below ``low``): buffers stop growing, out-of-order
  queues are pruned (RFC 2018 8 allows reneging on SACKed data), windows grow by at most a few
  segments (Linux ``tcp_clamp_window``/``rcv_ssthresh``);
- above ``limit`` (Linux ``tcp_mem[2]``): new data is refused, received (dropped) or sent (``send``
  takes nothing; blocking sockets wait, like ``sk_stream_wait_memory``), except that a connection
  holding less than ``GUARANTEED`` in a buffer may always fill it that far (Linux ``tcp_rmem[0]``,
  ``tcp_wmem[0]``), so every connection can still make progress.

Linux's default ratio is low:pressure:limit = 3:4:6, so here low = limit/2, pressure = 2*limit/3.
A pure counter: the layer charges each connection's bytes after every event (``TcpLayer._settle``).
"""
from __future__ import annotations

GUARANTEED = 4096  # per connection and buffer, held even above the limit (tcp_rmem[0], tcp_wmem[0])


class TcpMemory:
    """Octets in all TCP buffers of one stack, and the pressure state."""

    def __init__(self, limit: int):
        if limit <= 0:
            raise ValueError("the TCP memory limit must be positive")
        self.limit = limit
        self.pressure_at = limit * 2 // 3
        self.low = limit // 2
        self.used = 0
        self.pressure = False
        self.peak = 0
        self.pressure_entered = 0           # times pressure was entered (like TCPMemoryPressures)

    def charge(self, delta: int) -> None:
        """Add ``delta`` octets (negative: freed) and move between the states."""
        self.used += delta
        if self.used > self.peak:
            self.peak = self.used
        if self.pressure:
            if self.used < self.low:
                self.pressure = False   # Linux sk_leave_memory_pressure: below tcp_mem[0]
        elif self.used > self.pressure_at:
            self.pressure = True        # Linux tcp_enter_memory_pressure: above tcp_mem[1]
            self.pressure_entered += 1

    @property
    def over_limit(self) -> bool:
        return self.used > self.limit

    def may_grow(self) -> bool:
        """Autotuning may enlarge a buffer: not under pressure."""
        return not self.pressure

    def state(self) -> str:
        return "over limit" if self.over_limit else "pressure" if self.pressure else "normal"

    def summary(self) -> dict:
        return {"used": self.used, "limit": self.limit, "pressure_at": self.pressure_at, "low": self.low,
                "state": self.state(), "peak": self.peak, "pressures": self.pressure_entered}
