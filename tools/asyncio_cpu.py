"""asyncio on tunstack vs on the kernel: CPU while 100 connections sit idle, and while draining to
a slow reader (issue 8's figures). Not a test: a measurement, printed as lines.

    .venv/bin/python tools/asyncio_cpu.py [--conns 100] [--idle-time 5] [--mib 8]
    .venv/bin/python tools/asyncio_cpu.py --tun [--offload] [--mtu 1500] [--repeat N] [--reader-pause S]  (root)

Default (no ``--tun``): in-process, no root; it charges both Python stacks to the stack side.

``--tun``: the fair comparison issue 8 asks for ("over a real TUN"). The run creates two network
namespaces of its own (``tsa<pid>c``, ``tsa<pid>l``, a veth pair between them; tools/robust.py's
``Topology``), moves this process into ``tsa<pid>c`` and removes both at the end. The asyncio
server or sender runs in this process, the clients or the slow reader are kernel sockets in a
child process, and the CPU measured is this process's (user + sys, ``time.process_time``):

- stack: a Stack on a TUN in ``tsa<pid>c`` (192.0.2.2; the TUN's kernel side 192.0.2.1 holds the
  child), MTU ``--mtu``; ``--offload`` opens the TUN as ``tunstack serve --offload`` does;
- kernel: the same asyncio code on kernel sockets, the child in ``tsa<pid>l`` across the veth
  (203.0.113.1 -> .2), same MTU. Without ``--offload`` the veth's TSO/GSO/GRO are turned off
  (plain packets both sides); with it the veth keeps its default offloads.

In both, the receiving kernel's TCP work runs in this process's context (the TUN write or the
veth transmit delivers the packet), so each side is charged the same peer work.

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
import os
import selectors
import socket
import statistics
import subprocess
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # this checkout's stack/, whatever the venv points at

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


def _asyncio_send(make_sender, addr, total: int) -> None:
    """The measured sender: asyncio's sock_connect + sock_sendall of ``total`` bytes on a counting
    selector loop (``Counting.wakeups`` starts at 0); bounded, so a wedged stack is a result, not a hang."""
    async def send():
        loop = asyncio.get_running_loop()
        s = make_sender()
        s.setblocking(False)
        await loop.sock_connect(s, addr)
        await loop.sock_sendall(s, bytes(total))
        s.close()

    Counting.wakeups = 0
    loop = asyncio.SelectorEventLoop(Counting())
    try:
        loop.run_until_complete(asyncio.wait_for(send(), 300))
    finally:
        loop.close()


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

    wall0, cpu0 = time.monotonic(), time.process_time()
    _asyncio_send(make_sender, addr, total)
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


# ---------------------------------------------------------------- --tun: over a real TUN, peers in the kernel
TUN_HOST, TUN_STACK = "192.0.2.1", "192.0.2.2"
VETH_C, VETH_L = "203.0.113.1", "203.0.113.2"

# the slow reader: a kernel socket in a child process, 16 KiB every argv[3] s (5 ms), prints the bytes it got
READER = r"""
import socket, sys, time
pause = float(sys.argv[3])
ls = socket.create_server((sys.argv[1], int(sys.argv[2])))
print("ready", flush=True)
ls.settimeout(30)
s, _ = ls.accept()
s.settimeout(60)
got = 0
while chunk := s.recv(16384):
    got += len(chunk)
    time.sleep(pause)
print(got, flush=True)
"""

# idle clients: kernel sockets in a child process; connect, echo one byte, hold until stdin closes
CLIENTS = r"""
import socket, sys
cs = []
for _ in range(int(sys.argv[3])):
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
    c.sendall(b"x")
    assert c.recv(1) == b"x"
    cs.append(c)
print("connected", flush=True)
sys.stdin.read()
"""


def _topology_class():
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from robust import Topology  # tools/robust.py: namespaces, veth, enter/close, child processes
    return Topology


def _child(topo, code: str, args: list, ns: str | None, expect: str) -> subprocess.Popen:
    """A kernel-socket peer in ``ns`` (None: this process's namespace); returns once it printed ``expect``."""
    p = topo.start([sys.executable, "-c", code, *map(str, args)], ns=ns, stdin=subprocess.PIPE,
                   stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline().strip()
    if line != expect:
        raise SystemExit(f"asyncio_cpu: peer said {line!r}, not {expect!r}")
    return p


# ethtool -K DEV tso off gso off gro off, with pyroute2 (run in the device's namespace)
OFFLOADS_OFF = r"""
import contextlib, sys
from pyroute2.ethtool import Ethtool
with contextlib.closing(Ethtool()) as et:
    f = et.get_features(sys.argv[1])
    for name in ("tx-tcp-segmentation", "tx-generic-segmentation", "rx-gro"):
        f.features[name].enable = False
    et.set_features(sys.argv[1], f)
"""


@contextlib.contextmanager
def tun_topology(mtu: int, offload: bool):
    """The run's namespaces (this process moved into the client one) and a started Stack on a TUN there."""
    from stack.link.netconf import configure_host_side
    from stack.link.tun import TunLink
    topo = _topology_class()(f"tsa{os.getpid()}")
    link = stack = None
    try:
        topo.up()
        for ns, dev in ((topo.ns_c, topo.veth_c), (topo.ns_l, topo.veth_l)):
            subprocess.run(["ip", "-n", ns, "link", "set", dev, "mtu", str(mtu)], check=True)
        topo.enter_clients()
        link = TunLink(topo.tun, mtu=mtu, offload=offload)
        configure_host_side(topo.tun, TUN_HOST + "/24", mtu)
        if not offload:
            for ns, dev in ((topo.ns_c, topo.veth_c), (topo.ns_l, topo.veth_l)):
                subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", OFFLOADS_OFF, dev], check=True)
        stack = Stack(link, TUN_STACK, mtu=mtu, tcp_config=TcpConfig(), seed=1).start()
        yield topo, stack
    finally:
        if stack is not None:
            stack.close()
        if link is not None:
            link.close()
        topo.close()


def _idle_server_cpu(host: str, port: int, topo, client_host: str, client_ns, conns: int, idle_time: float) -> float:
    """An asyncio echo server on host:port (socket module as patched, or the kernel's); ``conns`` kernel clients
    in a child process connect, echo a byte and sit idle; returns this process's CPU share while they do."""
    async def handle(reader, writer):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass  # the measurement is over
        writer.close()

    async def main():
        server = await asyncio.start_server(handle, host, port)
        loop = asyncio.get_running_loop()
        child = await loop.run_in_executor(None, _child, topo, CLIENTS, [client_host, port, conns], client_ns,
                                           "connected")
        wall0, cpu0 = time.monotonic(), time.process_time()
        await asyncio.sleep(idle_time)
        share = (time.process_time() - cpu0) / (time.monotonic() - wall0)
        child.stdin.close()
        await loop.run_in_executor(None, child.wait, 10)
        server.close()
        await server.wait_closed()
        return share
    return asyncio.run(main())


def _reap(child: subprocess.Popen) -> tuple[str, float]:
    """The child's output and its CPU (user + sys, from wait4's rusage)."""
    out = child.stdout.read()
    _, status, ru = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    return out, ru.ru_utime + ru.ru_stime


def _drain_to_child(topo, make_sender, host: str, port: int, reader_ns, mib: int, pause: float = 0.005):
    """(wake-ups, sender CPU, reader CPU, wall): until the reader, taking 16 KiB every ``pause``
    seconds, has every byte and exited."""
    total = mib << 20
    child = _child(topo, READER, [host, port, pause], reader_ns, "ready")

    wall0, cpu0 = time.monotonic(), time.process_time()
    _asyncio_send(make_sender, (host, port), total)
    out, reader_cpu = _reap(child)  # the stack may still be sending what sendall() queued: wait for the reader
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    if out.strip() != str(total):
        raise SystemExit(f"drain: the reader got {out.strip()!r} of {total} bytes")
    return Counting.wakeups, cpu, reader_cpu, wall


def tun_run(args) -> None:
    if os.geteuid() != 0:
        raise SystemExit("asyncio_cpu: --tun needs root (it creates network namespaces and a TUN)")
    mode = f"MTU {args.mtu}, " + ("offloads: stack --offload, veth default" if args.offload
                                   else "plain: no TUN offload, veth TSO/GSO/GRO off")
    if args.reader_pause != 0.005:
        mode += f", reader pause {args.reader_pause * 1000:g} ms"
    with tun_topology(args.mtu, args.offload) as (topo, stack):
        with SocketPatch(stack):
            s = _idle_server_cpu(TUN_STACK, 9000, topo, TUN_STACK, None, args.conns, args.idle_time)
        k = _idle_server_cpu(VETH_C, 9000, topo, VETH_C, topo.ns_l, args.conns, args.idle_time)
        print(f"idle [tun, {mode}]: {args.conns} connections to an asyncio echo server: "
              f"stack {100 * s:.1f} % of a core, kernel {100 * k:.1f} %", flush=True)
        ratios = []
        for _ in range(args.repeat):  # stack and kernel alternated: both see the same spells of load
            sw, sc, sr, st = _drain_to_child(topo, stack.socket, TUN_HOST, 9001, None, args.mib, args.reader_pause)
            kw, kc, kr, kt = _drain_to_child(topo, socket.socket, VETH_L, 9001, topo.ns_l, args.mib, args.reader_pause)
            ratios.append((sc + sr) / (kc + kr))
            print(f"drain [tun, {mode}]: {args.mib} MiB to a slow reader: stack sender {sc:.2f} s CPU + reader "
                  f"{sr:.2f} s in {st:.2f} s ({sw} wake-ups), kernel sender {kc:.2f} s + reader {kr:.2f} s in "
                  f"{kt:.2f} s ({kw} wake-ups): stack/kernel CPU, sender process {sc / kc:.2f}x, both processes "
                  f"{ratios[-1]:.2f}x", flush=True)
    if args.repeat > 1:
        print(f"drain [tun, {mode}]: both processes, stack/kernel CPU over {args.repeat} alternated pairs: median "
              f"{statistics.median(ratios):.2f}x (min {min(ratios):.2f}x, max {max(ratios):.2f}x)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--conns", type=int, default=100, help="idle connections (default 100)")
    p.add_argument("--idle-time", type=float, default=5.0, help="seconds measured while idle (default 5)")
    p.add_argument("--mib", type=int, default=8, help="MiB drained to the slow reader (default 8)")
    p.add_argument("--tun", action="store_true", help="over a real TUN, peers in the kernel (root; see above)")
    p.add_argument("--offload", action="store_true", help="with --tun: TUN offloads vs the veth's default ones")
    p.add_argument("--mtu", type=int, default=1500, help="with --tun: MTU of the TUN and the veth (default 1500)")
    p.add_argument("--repeat", type=int, default=1,
                   help="with --tun: drain this many times, stack and kernel alternated, and print the median "
                        "of the ratios too (default 1)")
    p.add_argument("--reader-pause", type=float, default=0.005, metavar="SECONDS",
                   help="with --tun: the slow reader's pause between 16 KiB reads (default 0.005; the figure "
                        "of issue 8 is at the default)")
    args = p.parse_args()
    if args.reader_pause != 0.005 and not args.tun:
        p.error("--reader-pause needs --tun")
    if not 0 <= args.reader_pause <= 1:
        p.error("--reader-pause must be between 0 and 1 second")
    if args.offload and not args.tun:
        p.error("--offload needs --tun")
    if args.repeat < 1 or (args.repeat > 1 and not args.tun):
        p.error("--repeat needs --tun and a count of at least 1")
    if args.tun:
        tun_run(args)
        return
    s, k = idle(args.conns, args.idle_time)
    print(f"idle: {args.conns} connections to an asyncio echo server: stack {100 * s:.1f} % of a core, "
          f"kernel {100 * k:.1f} %")
    (sw, sc, st), (kw, kc, kt) = drain(args.mib)
    print(f"drain: {args.mib} MiB to a slow reader: stack {sc:.2f} s CPU in {st:.2f} s ({sw} wake-ups), "
          f"kernel {kc:.2f} s CPU in {kt:.2f} s ({kw} wake-ups): stack/kernel CPU {sc / kc:.2f}x")


if __name__ == "__main__":
    main()
