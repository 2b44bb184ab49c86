"""A run to look at: one seeded bulk transfer in the simulator, written as a pcap and a trace."""
from __future__ import annotations

import os
from dataclasses import dataclass

from .data import PlotError

DEMO_IMPAIR = "rate=10mbit,queue=25,drop=data:60x4"


@dataclass
class DemoRun:
    pcap: str
    trace: str
    conn: str              # the sender's connection name
    duration: float        # virtual seconds the transfer took
    intact: bool           # the receiver got exactly the bytes sent


def record_demo(pcap_path, trace_path, impair: str = DEMO_IMPAIR, size: int = 1_000_000,
                delay: float = 0.020, congestion: str = "newreno", sack: bool = True,
                rcvbuf: int = 384 * 1024, seed: int = 1) -> DemoRun:
    """Record a pcap and a trace of one bulk transfer in the simulator (virtual time, no TUN,
    no root): host 192.0.2.1 sends ``size`` bytes to 192.0.2.2:80 over a link with one-way
    ``delay`` whose sender-to-receiver direction is impaired by ``impair``; the receiver's
    buffer is ``rcvbuf`` bytes. The pcap is captured at the sender, before the link (what
    tcpdump on the sender would see). Same arguments, same packets.
    """
    import random
    from ..link.impair import Impairment, ImpairSpec
    from ..pcap import PcapWriter
    from ..sim import Simulation
    from ..tcp.config import TcpConfig
    from ..trace import JsonLinesSink, Tracer

    try:
        spec = ImpairSpec.parse(impair)
        from ..tcp import congestion as cc_registry
        cc_registry.create(congestion, 1460, 0.0)
    except ValueError as exc:
        raise PlotError(str(exc)) from None
    if not 1 <= size <= 200_000_000:
        raise PlotError(f"size out of range 1..200000000 bytes: {size}")
    if not 0 < delay <= 10:
        raise PlotError(f"delay out of range (0, 10] seconds: {delay}")
    if rcvbuf < 2048:
        raise PlotError(f"receive buffer too small (at least 2048 bytes): {rcvbuf}")
    try:
        trace_file = open(trace_path, "w")
        pcap = PcapWriter(pcap_path)
    except OSError as exc:
        raise PlotError(f"cannot write {exc.filename!r}: {exc.strerror}") from None
    sink = JsonLinesSink(trace_file)
    tracer = Tracer(sink)
    try:
        sim = Simulation(seed=seed, delay=delay, tracer=tracer,
                         config_a=TcpConfig(congestion=congestion, sack=sack),
                         config_b=TcpConfig(congestion=congestion, sack=sack, rcvbuf=rcvbuf),
                         impair_ab=Impairment(spec, seed=seed, direction="ab", tracer=tracer))
        host = sim.a
        take_output, receive = host.take_output, host.receive

        def captured_output(now):
            packets = take_output(now)
            for packet in packets:
                pcap.write(packet, now)
            return packets

        def captured_receive(packet, now):
            pcap.write(packet, now)
            return receive(packet, now)

        host.take_output, host.receive = captured_output, captured_receive
        listener = sim.listen(sim.b, 80)
        sender = sim.connect(sim.a, 80)
        if not sim.run(until=60, condition=lambda: listener.readable):
            raise PlotError("the simulated connection was not established (is the SYN always dropped?)")
        receiver = listener.accept()
        began = sim.now
        data = random.Random(seed).randbytes(size)
        got = sim.transfer(sim.a, sender, sim.b, receiver, data, until=sim.now + 3600)
        duration = sim.now - began
        sim.close(sim.b, receiver)
        sim.run(until=sim.now + 5)
        return DemoRun(os.fspath(pcap_path), os.fspath(trace_path), sender.name, duration, got == data)
    finally:
        pcap.close()
        sink.close()
