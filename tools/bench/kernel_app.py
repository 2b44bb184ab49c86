#!/usr/bin/env python3
"""The kernel baseline: the applications `tunstack serve` runs, on the kernel's own sockets.

The same request handlers (``stack.apps.servers``: ``FileHandler`` for HTTP, ``EchoHandler``,
``DiscardHandler``) under the standard library's own threading servers, bound to kernel
sockets, as a user would run them without tunstack. tools/bench starts it as
``unshare --net -- python kernel_app.py ...``: it waits for the veth end the harness moves
into its namespace, gives it the address, and serves until SIGTERM. The harness's clients
then reach it over the veth pair exactly as they reach a TUN target.

Refuses to run unless its network namespace is a fresh private one (only ``lo`` at start,
not init's, not the harness's).
"""
from __future__ import annotations

import argparse
import functools
import http.server
import os
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO not in sys.path:
    sys.path.insert(0, REPO)


def fresh_private_netns() -> bool:
    me = os.readlink("/proc/self/ns/net")
    try:
        if me == os.readlink("/proc/1/ns/net"):
            return False
    except OSError:
        pass
    if me in (os.environ.get("TSBENCH_OUTER_NETNS"), os.environ.get("TSBENCH_NETNS")):
        return False
    return all(name == "lo" for _, name in socket.if_nameindex())


def wait_for_link(name: str, timeout: float) -> bool:
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        if any(n == name for _, n in socket.if_nameindex()):
            return True
        time.sleep(0.02)
    return False


def configure(name: str, addr: str) -> None:
    for cmd in (["ip", "link", "set", "lo", "up"], ["ip", "addr", "add", addr, "dev", name],
                ["ip", "link", "set", name, "up"]):
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        if r.returncode:
            raise SystemExit(f"kernel-app: {' '.join(cmd)} failed: {r.stderr.strip()}")


class ThreadingTCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False


def make_servers(a, ip: str):
    from stack.apps.servers import DiscardHandler, EchoHandler, FileHandler
    servers = []
    if a.http:
        httpd = http.server.ThreadingHTTPServer((ip, a.http), functools.partial(FileHandler, directory=a.root))
        httpd.quiet = True
        servers.append(("http", a.http, httpd))
    if a.echo:
        servers.append(("echo", a.echo, ThreadingTCPServer((ip, a.echo), EchoHandler)))
    if a.discard:
        servers.append(("discard", a.discard, ThreadingTCPServer((ip, a.discard), DiscardHandler)))
    return servers


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="kernel_app", description=__doc__.split("\n\n")[0])
    p.add_argument("--link", required=True, help="the veth end to wait for and configure")
    p.add_argument("--addr", default="192.0.2.2/24", help="ADDR/PREFIX for the link (default 192.0.2.2/24)")
    p.add_argument("--http", type=int, default=0, metavar="PORT")
    p.add_argument("--root", default=".")
    p.add_argument("--echo", type=int, default=0, metavar="PORT")
    p.add_argument("--discard", type=int, default=0, metavar="PORT")
    p.add_argument("--link-timeout", type=float, default=10.0)
    a = p.parse_args(argv)
    if not fresh_private_netns():
        print("kernel-app: refusing to run outside a fresh private network namespace "
              "(tools/bench starts it under `unshare --net`)", file=sys.stderr)
        return 2
    print(f"kernel-app: waiting for link {a.link}", flush=True)
    if not wait_for_link(a.link, a.link_timeout):
        print(f"kernel-app: link {a.link} did not appear within {a.link_timeout:g} s", file=sys.stderr)
        return 2
    configure(a.link, a.addr)
    ip = a.addr.split("/")[0]
    try:
        servers = make_servers(a, ip)
    except (OSError, ImportError) as e:
        print(f"kernel-app: cannot start the servers: {e}", file=sys.stderr)
        return 2
    for _, _, srv in servers:
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    what = ", ".join(f"{name} :{port}" for name, port, _ in servers)
    print(f"kernel-app: serving on {ip} via {a.link}: {what}", flush=True)
    while not stop.wait(0.5):
        pass
    for _, _, srv in servers:
        srv.shutdown()
        srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
