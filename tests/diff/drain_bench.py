"""Measure an asyncio sender draining to a slow reader over two in-memory stacks (not a test).

    scripts/test --co -q >/dev/null; .venv/bin/python tests/diff/drain_bench.py [MiB]

Stack A runs asyncio's selector event loop with a non-blocking stack socket and
``loop.sock_sendall`` of N MiB (default 8); stack B's reader takes 16 KiB every 5 ms.
Prints the selector wake-ups (``select()`` calls that returned events), the wall time
and the process CPU time (both stacks' threads, the reader and the loop) as one line.
With a fileno() that is always writable the loop spins on POLLOUT; with tcp_poll()'s
low-water mark it sleeps until a third of the send buffer is free again.
"""
from __future__ import annotations

import asyncio
import selectors
import sys
import threading
import time

import stack.socket  # noqa: F401  (registers Stack.socket_type)
from stack.link.memory import SocketPairLink
from stack.runtime.stack import Stack
from stack.tcp.config import TcpConfig


def main(mib: int = 8) -> None:
    la, lb = SocketPairLink.pair()
    cfg = TcpConfig(sndbuf=256 << 10, rcvbuf=256 << 10)
    a = Stack(la, "198.18.0.1", tcp_config=cfg, seed=1).start()
    b = Stack(lb, "198.18.0.2", tcp_config=cfg, seed=2).start()
    total = mib << 20
    ls = b.socket()
    ls.bind(("", 9000))
    ls.listen()
    got = [0]

    def reader():
        s, _ = ls.accept()
        while True:
            chunk = s.recv(16384)
            if not chunk:
                break
            got[0] += len(chunk)
            time.sleep(0.005)
        s.close()

    t = threading.Thread(target=reader, daemon=True)
    t.start()

    class Counting(selectors.DefaultSelector):
        wakeups = 0

        def select(self, timeout=None):
            events = super().select(timeout)
            if events:
                Counting.wakeups += 1
            return events

    async def send():
        loop = asyncio.get_running_loop()
        s = a.socket()
        s.setblocking(False)
        await loop.sock_connect(s, ("198.18.0.2", 9000))
        while True:  # the old always-writable fd let sock_connect return during SYN-SENT
            try:
                s.getpeername()
                break
            except OSError:
                await asyncio.sleep(0.001)
        await loop.sock_sendall(s, bytes(total))
        s.close()

    wall0, cpu0 = time.monotonic(), time.process_time()
    loop = asyncio.SelectorEventLoop(Counting())
    try:
        loop.run_until_complete(send())
    finally:
        loop.close()
    t.join(60)
    wall, cpu = time.monotonic() - wall0, time.process_time() - cpu0
    a.close()
    b.close()
    print(f"{mib} MiB drained ({got[0]} bytes read): {Counting.wakeups} selector wake-ups, "
          f"{wall:.2f} s wall, {cpu:.2f} s CPU ({100 * cpu / wall:.0f} % of a core)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 8)
