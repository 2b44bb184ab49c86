"""Two hosts over an in-memory link in virtual time: the simulation test layer and the labs' engine.

Nothing here sleeps or reads a clock: ``Simulation.run`` jumps from event to event
(packet deliveries, TCP timers, impairment releases), so a 60-second transfer with
losses and timeouts runs in the time its packets take to process, and the same seed
gives the same packets every time.

Buffers a host's config leaves autotuned (``rcvbuf``/``sndbuf`` None) are fixed at 4 MiB here
(``SIM_BUFFER``), so the windows the labs and tests look at do not depend on when the reads happen;
``Simulation(autotune=True)`` keeps them autotuned.
"""
from __future__ import annotations

import dataclasses
import heapq
import random
from itertools import count

from .netstack import NetStack
from .tcp.config import TcpConfig
from .trace import NULL_TRACER, Tracer
from .wire.ipv4 import aton

ADDR_A, ADDR_B = "192.0.2.1", "192.0.2.2"
SIM_BUFFER = 4 << 20  # send and receive buffers a config leaves autotuned (the stack's fixed size before autotuning)


def _fixed_buffers(config: TcpConfig | None) -> TcpConfig:
    config = config or TcpConfig()
    return dataclasses.replace(config, rcvbuf=SIM_BUFFER if config.rcvbuf is None else config.rcvbuf,
                               sndbuf=SIM_BUFFER if config.sndbuf is None else config.sndbuf)


class _Wire:
    """One direction: optional impairment, then a fixed propagation delay."""

    def __init__(self, delay: float, impairment=None):
        self.delay, self.impairment = delay, impairment
        self.queue: list = []
        self._tick = count()

    def offer(self, packets: list[bytes], now: float) -> None:
        if self.impairment is not None:
            for p in packets:
                self.impairment.offer(p, now)
            packets = self.impairment.poll(now)
        for p in packets:
            heapq.heappush(self.queue, (now + self.delay, next(self._tick), p))

    def release(self, now: float) -> None:
        if self.impairment is not None:
            for p in self.impairment.poll(now):
                heapq.heappush(self.queue, (now + self.delay, next(self._tick), p))

    def due(self, now: float) -> list[bytes]:
        out = []
        while self.queue and self.queue[0][0] <= now:
            out.append(heapq.heappop(self.queue)[2])
        return out

    def next_deadline(self) -> float | None:
        times = [self.queue[0][0]] if self.queue else []
        if self.impairment is not None and self.impairment.next_deadline() is not None:
            times.append(self.impairment.next_deadline())
        return min(times) if times else None


class Simulation:
    """Hosts ``a`` (192.0.2.1) and ``b`` (192.0.2.2) joined by a wire each way."""

    def __init__(self, seed: int = 0, delay: float = 0.005, mtu: int = 1500,
                 config_a: TcpConfig | None = None, config_b: TcpConfig | None = None,
                 impair_ab=None, impair_ba=None, tracer: Tracer = NULL_TRACER, start: float = 0.0,
                 autotune: bool = False):
        if not autotune:
            config_a, config_b = _fixed_buffers(config_a), _fixed_buffers(config_b)
        rng = random.Random(seed)
        self.now = start
        self.tracer = tracer
        self.a = NetStack(aton(ADDR_A), mtu, config_a, tracer, random.Random(rng.getrandbits(64)))
        self.b = NetStack(aton(ADDR_B), mtu, config_b, tracer, random.Random(rng.getrandbits(64)))
        self.ab = _Wire(delay, impair_ab)
        self.ba = _Wire(delay, impair_ba)
        self.steps = 0

    # ------------------------------------------------------------ the event loop
    def _flush(self) -> None:
        self.ab.offer(self.a.take_output(self.now), self.now)
        self.ba.offer(self.b.take_output(self.now), self.now)

    def next_event(self) -> float | None:
        times = [t for t in (self.a.next_deadline(), self.b.next_deadline(),
                             self.ab.next_deadline(), self.ba.next_deadline()) if t is not None]
        return min(times) if times else None

    def step(self) -> bool:
        """Advance to the next event and process it; False when nothing is left to happen."""
        self._flush()
        t = self.next_event()
        if t is None:
            return False
        self.now = max(self.now, t)
        self.steps += 1
        self.ab.release(self.now)
        self.ba.release(self.now)
        for p in self.ab.due(self.now):
            self.b.receive(p, self.now)
        for p in self.ba.due(self.now):
            self.a.receive(p, self.now)
        for host in (self.a, self.b):
            d = host.next_deadline()
            if d is not None and d <= self.now:
                host.on_timers(self.now)
        self._flush()
        return True

    def run(self, until: float | None = None, condition=None, max_steps: int = 2_000_000) -> bool:
        """Run until ``condition()`` is true (returns True), time ``until``, or nothing is left to do."""
        for _ in range(max_steps):
            if condition is not None and condition():
                return True
            self._flush()
            t = self.next_event()
            if t is None or (until is not None and t > until):
                if until is not None:
                    self.now = max(self.now, until)
                return condition() if condition is not None else True
            self.step()
        raise RuntimeError(f"simulation did not settle in {max_steps} steps")

    # ------------------------------------------------------------ conveniences for tests and labs
    def listen(self, host: NetStack, port: int, backlog: int = 16):
        return host.tcp.listen(host.address, port, backlog)

    def connect(self, host: NetStack, port: int, setup=None):
        other = self.b if host is self.a else self.a
        tcp = host.tcp
        local = (host.address, tcp.allocate_port(host.address, (other.address, port)))
        conn = tcp.connect(local, (other.address, port), self.now, setup)
        return conn

    def send(self, host: NetStack, conn, data: bytes) -> int:
        n = conn.send(data, self.now)
        host.tcp.after_user_call(conn, self.now)
        return n

    def recv(self, host: NetStack, conn, n: int = 1 << 30) -> bytes:
        data = conn.recv(n, self.now)
        host.tcp.after_user_call(conn, self.now)
        return data

    def close(self, host: NetStack, conn) -> None:
        conn.close(self.now)
        host.tcp.after_user_call(conn, self.now)

    def shutdown(self, host: NetStack, conn) -> None:
        conn.shutdown_write(self.now)
        host.tcp.after_user_call(conn, self.now)

    def transfer(self, sender: NetStack, sconn, receiver: NetStack, rconn, data: bytes,
                 until: float = 600.0, chunk: int = 1 << 16, close: bool = True) -> bytes:
        """Push ``data`` through ``sconn`` while the receiver reads; return what arrived (until EOF)."""
        view = memoryview(data)
        sent = 0
        got = bytearray()

        def progress() -> bool:
            nonlocal sent
            while sent < len(view) and sconn.send_space() > 0:
                n = self.send(sender, sconn, view[sent:sent + chunk])
                if n <= 0:
                    break
                sent += n
            if sent == len(view) and close and not sconn.fin_queued:
                self.shutdown(sender, sconn)
            if rconn.rcvbuf:
                got.extend(self.recv(receiver, rconn))
            return (rconn.at_eof if close else len(got) >= len(data)) or rconn.error or sconn.error

        self.run(until=until, condition=progress)
        return bytes(got)
