"""asyncio on tunstack vs on the kernel: CPU while 100 connections sit idle, and while draining to
a slow reader (issue 8's figures). Not a test: a measurement, printed as lines.

    .venv/bin/python tools/asyncio_cpu.py [--conns 100] [--idle-time 5] [--mib 8]

"stack": two Stacks over an in-memory socketpair link in this process (an asyncio server or sender
on one, the clients or the slow reader on the other); "kernel": the same asyncio code on 127.0.0.1.
CPU is the whole process's (``time.process_time``): for the stack both stacks' threads, the loop and
the peers; for the kernel the loop and the peers plus the TCP work the kernel charges this process.
The slow reader takes 16 KiB every 5 ms; a selector wake-up is a select() that returned events.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import selectors
import socket
import threading
import time

from stack.link.memory import SocketPairLink
from stack.run import SocketPatch
from stack.runtime.stack import Stack
from stack.tcp.config import TcpConfig

SERVER, CLIENT = "198.18.0.2", "198.18.0.1"


class Counting(selectors.DefaultSelector):
    wakeups = 0

    def select(self, timeout=None):
        events = super().select(timeout)
        if events:
            Counting.wakeups += 1
        return events


@contextlib.contextmanager
def stacks():
    la, lb = SocketPairLink.pair()
    cfg = TcpConfig(sndbuf=256 << 10, rcvbuf=256 << 10)
    a = Stack(la, CLIENT, tcp_config=cfg, seed=1).start()
    b = Stack(lb, SERVER, tcp_config=cfg, seed=2).start()
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def _echo_server_and_idle_clients(host: str, make_client, conns: int, idle_time: float):
    """An asyncio echo server on ``host``:9000 (socket module as patched, or the kernel's); ``conns``
    clients connect, echo one byte, then sit idle; returns the CPU share while they are idle."""
    async def handle(reader, writer):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass  # the measurement is over: clients closed, or the loop is shutting down
        writer.close()

    async def main():
        server = await asyncio.start_server(handle, host, 9000)
        clients = []

        def connect_all():
            for _ in range(conns):
                c = make_client()
                c.settimeout(10)
                c.connect((host, 9000))
                c.sendall(b"x")
                assert c.recv(1) == b"x"
                clients.append(c)
        await asyncio.get_running_loop().run_in_executor(None, connect_all)
        wall0, cpu0 = time.monotonic(), time.process_time()
        await asyncio.sleep(idle_time)
        share = (time.process_time() - cpu0) / (time.monotonic() - wall0)
        for c in clients:
            c.close()
        server.close()
        await server.wait_closed()
        return share
    return asyncio.run(main())


def idle(conns: int, idle_time: float) -> tuple[float, float]:
    with stacks() as (a, b):
        with SocketPatch(b):
            on_stack = _echo_server_and_idle_clients(SERVER, a.socket, conns, idle_time)
    on_kernel = _echo_server_and_idle_clients("127.0.0.1", socket.socket, conns, idle_time)
    return on_stack, on_kernel


def _drain(listen, make_sender, addr, mib: int) -> tuple[int, float, float]:
    total, got = mib << 20, [0]

    def reader():
        s, _ = listen.accept()
        while chunk := s.recv(16384):
            got[0] += len(chunk)
            time.sleep(0.005)
        s.close()

    t = threading.Thread(target=reader, daemon=True)
    t.start()

    async def send():
        loop = asyncio.get_running_loop()
        s = make_sender()
        s.setblocking(False)
        await loop.sock_connect(s, addr)
        await loop.sock_sendall(s, bytes(total))
        s.close()

    Counting.wakeups = 0
    wall0, cpu0 = time.monotonic(), time.process_time()
    loop = asyncio.SelectorEventLoop(Counting())
    try:
        loop.run_until_complete(send())
    finally:
        loop.close()
    t.join(120)
    if got[0] != total:
        raise SystemExit(f"drain: the reader got {got[0]} of {total} bytes")
    return Counting.wakeups, time.process_time() - cpu0, time.monotonic() - wall0


def drain(mib: int):
    with stacks() as (a, b):
        ls = b.socket()
        ls.bind(("", 9001))
        ls.listen()
        on_stack = _drain(ls, a.socket, (SERVER, 9001), mib)
    with socket.create_server(("127.0.0.1", 0)) as ls:
        on_kernel = _drain(ls, socket.socket, ls.getsockname(), mib)
    return on_stack, on_kernel


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--conns", type=int, default=100, help="idle connections (default 100)")
    p.add_argument("--idle-time", type=float, default=5.0, help="seconds measured while idle (default 5)")
    p.add_argument("--mib", type=int, default=8, help="MiB drained to the slow reader (default 8)")
    args = p.parse_args()
    s, k = idle(args.conns, args.idle_time)
    print(f"idle: {args.conns} connections to an asyncio echo server: stack {100 * s:.1f} % of a core, "
          f"kernel {100 * k:.1f} %")
    (sw, sc, st), (kw, kc, kt) = drain(args.mib)
    print(f"drain: {args.mib} MiB to a slow reader: stack {sc:.2f} s CPU in {st:.2f} s ({sw} wake-ups), "
          f"kernel {kc:.2f} s CPU in {kt:.2f} s ({kw} wake-ups): stack/kernel CPU {sc / kc:.2f}x")


if __name__ == "__main__":
    main()
