"""The idle phase: N connections opened to the stack's one-thread epoll echo server and held.

It reports what each held connection costs the server process (RSS above the same process
just before, with no connection open) and the server's CPU while nothing happens, with the
connections held and, for reference, without them. Each connection is checked to be held by
the application: one byte sent on it comes back (the echo server accepted and serves it).
"""
from __future__ import annotations

import errno
import selectors
import socket
import time

from .config import ADDR, ECHO_PORT
from .measure import CpuMeter, context_switches, link_counters, link_delta, r3, rss_kib, switches_between

IN_FLIGHT = 128  # connects outstanding at once: a burst the listen backlog can hold


def _open_all(n: int, t_end: float, port: int):
    """Connect ``n`` sockets (at most IN_FLIGHT pending at a time). Returns (open sockets, errors, first error)."""
    sel = selectors.DefaultSelector()
    done, errors, first = [], 0, None
    pending = 0
    started = 0
    while (started < n or pending) and time.monotonic() < t_end:
        while started < n and pending < IN_FLIGHT:
            s = socket.socket()
            s.setblocking(False)
            err = s.connect_ex((ADDR, port))
            started += 1
            if err not in (0, errno.EINPROGRESS):
                errors += 1
                first = first or f"connect: {errno.errorcode.get(err, err)}"
                s.close()
                continue
            sel.register(s, selectors.EVENT_WRITE)
            pending += 1
        for key, _ in sel.select(timeout=0.1):
            s = key.fileobj
            sel.unregister(s)
            pending -= 1
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                errors += 1
                first = first or f"connect: {errno.errorcode.get(err, err)}"
                s.close()
            else:
                done.append(s)
        if errors > max(50, n // 10) and not done:
            break  # nothing works: stop early
    for key in list(sel.get_map().values()):
        key.fileobj.close()
    sel.close()
    return done, errors, first


def _echo_check(socks, t_end: float) -> int:
    """Send one byte on each socket; count those that get it back before t_end."""
    sel = selectors.DefaultSelector()
    for s in socks:
        try:
            s.send(b"x")
            sel.register(s, selectors.EVENT_READ)
        except OSError:
            pass
    ok = 0
    while sel.get_map() and time.monotonic() < t_end:
        for key, _ in sel.select(timeout=0.1):
            try:
                got = key.fileobj.recv(16)
            except BlockingIOError:
                continue
            except OSError:
                got = b""
            sel.unregister(key.fileobj)
            ok += got == b"x"
    sel.close()
    return ok


def _cpu_over(pid: int, seconds: float) -> tuple[float | None, float | None]:
    """The server's cores and its threads' wake-ups (context switches) per second over ``seconds``."""
    meter = CpuMeter(pid)
    t0, switches0 = time.monotonic(), context_switches(pid)
    time.sleep(seconds)
    switches1, dt = context_switches(pid), time.monotonic() - t0
    rate = r3(switches_between(switches0, switches1) / dt) if switches0 is not None and switches1 is not None else None
    return meter.done().get("server_cpu"), rate


def phase_idle(a, pid: int, link: str | None = None, port: int = ECHO_PORT) -> dict:
    t_end = time.monotonic() + 2 * a.time_limit  # connecting thousands takes a while: twice the limit
    cpu_empty, wakeups_empty = _cpu_over(pid, min(2.0, a.idle_time))
    rss_empty = rss_kib(pid)
    link0 = link_counters(link) if link else None
    t0 = time.perf_counter()
    socks, errors, first = _open_all(a.idle_conns, t_end, port)
    connect_s = time.perf_counter() - t0
    try:
        held = _echo_check(socks, t_end + 5)
        time.sleep(0.5)  # let delayed ACKs and the echo server's last wake-ups pass
        rss_held = rss_kib(pid)
        cpu_held, wakeups_held = _cpu_over(pid, a.idle_time)
        link_held = link_delta(link0, link_counters(link)) if link else {}
    finally:
        for s in socks:
            s.close()
    out = {"status": "ok" if held == a.idle_conns else ("truncated" if held else "error"),
           "attempted": a.idle_conns, "connected": len(socks), "held": held, "errors": errors,
           "connect_seconds": r3(connect_s), "conn_per_s": r3(len(socks) / connect_s) if connect_s > 0 else None,
           "rss_empty_kib": rss_empty, "rss_held_kib": rss_held,
           "rss_per_conn_kib": r3((rss_held - rss_empty) / held) if held and rss_empty and rss_held else None,
           "idle_cpu_empty": cpu_empty, "idle_cpu_held": cpu_held, "idle_seconds": a.idle_time,
           "idle_wakeups_per_s_empty": wakeups_empty, "idle_wakeups_per_s_held": wakeups_held,
           "link_until_close": link_held}  # `link` (the whole phase) also counts the burst of FINs at close
    if first:
        out["first_error"] = first
    if not held:
        out["error"] = first or "no connection was echoed"
    return out
