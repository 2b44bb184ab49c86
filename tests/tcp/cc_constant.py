"""A test-only congestion control: a fixed window. The whole of an algorithm is this file plus one
``congestion.register(Constant)`` line (tests/tcp/test_congestion_registry.py does that)."""
from stack.tcp.congestion import CongestionControl, RateSample

WINDOW_SEGMENTS = 4


class Constant(CongestionControl):
    """cwnd is always WINDOW_SEGMENTS full segments, whatever happens; it records the events it saw."""

    name = "constant"

    def __init__(self, mss: int, now: float, initial_window: int | None = None):
        super().__init__(mss, now, WINDOW_SEGMENTS)
        self.seen = {"sent": 0, "acked": 0, "loss": 0, "rto": 0}

    def on_packet_sent(self, now: float, seq: int, length: int, in_flight: int) -> None:
        self.seen["sent"] += 1

    def on_ack_sample(self, rs: RateSample) -> None:
        self.seen["acked"] += rs.delivered

    def on_congestion_event(self, now: float, in_flight: int, *, sack: bool = False) -> None:
        self.seen["loss"] += 1
        self.in_recovery = True

    def on_dupack_in_recovery(self) -> None:
        pass

    def on_partial_ack(self, acked: int) -> None:
        pass

    def on_exit_recovery(self, now: float, in_flight: int) -> None:
        self.in_recovery = False

    def on_rto(self, now: float, in_flight: int, *, during_recovery: bool = False) -> None:
        self.seen["rto"] += 1
        self.in_recovery = False

    def on_idle(self, now: float, idle_time: float, rto: float) -> None:
        pass
