"""The client side of each phase: the same clients against every target (ceiling, kernel, stack).

Every loop is bounded by a count and by ``--time-limit`` (or ``--concurrency-time``), and every
packet goes to ``ADDR`` inside the run's namespace.
"""
from __future__ import annotations

import fcntl
import os
import selectors
import shutil
import socket
import struct
import subprocess
import termios
import time

from .config import ADDR, BIG, DISCARD_PORT, HTTP_PORT, MB, SMALL, SMALL_BODY
from .measure import http_response_done, percentile, r3


def phase_download(a, size: int) -> dict:
    curl = shutil.which("curl")
    if not curl:
        return {"status": "error", "error": "curl not found"}
    cmd = [curl, "-s", "--noproxy", "*", "--http1.1", "-o", "/dev/null", "--max-time", str(a.time_limit),
           "-w", "%{http_code} %{size_download} %{time_total} %{time_connect}",
           f"http://{ADDR}:{HTTP_PORT}/{BIG}"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=a.time_limit + 10)
    try:
        code, got, total, tconn = r.stdout.split()
        got, total, tconn = int(got), float(total), float(tconn)
    except ValueError:
        return {"status": "error", "error": f"curl exit {r.returncode}: {r.stderr.strip() or r.stdout!r}"}
    out = {"bytes": got, "seconds": r3(total), "MBps": r3(got / total / MB) if total > 0 and got else 0.0}
    if r.returncode == 28:
        out["status"] = "truncated"
    elif r.returncode != 0 or code != "200":
        out.update(status="error", error=f"curl exit {r.returncode}, HTTP {code}")
    elif got != size:
        out.update(status="error", error=f"got {got} of {size} bytes")
    else:
        out["status"] = "ok"
    return out


def phase_upload(a, size: int) -> dict:
    chunk = memoryview(bytes(range(256)) * 4096)  # 1 MiB
    t_end = time.monotonic() + a.time_limit
    try:
        s = socket.create_connection((ADDR, DISCARD_PORT), timeout=min(5.0, a.time_limit))
    except OSError as e:
        return {"status": "error", "error": f"connect: {e}"}
    sent = 0
    status = "ok"
    err = None
    t0 = time.perf_counter()
    try:
        s.settimeout(0.25)
        while sent < size:
            if time.monotonic() > t_end:
                status = "truncated"
                break
            try:
                sent += s.send(chunk[: min(len(chunk), size - sent)])
            except socket.timeout:
                continue
        while True:  # wait until the receiver has acknowledged every byte
            unacked = struct.unpack("i", fcntl.ioctl(s, termios.TIOCOUTQ, b"\0" * 4))[0]
            if unacked == 0 or time.monotonic() > t_end:
                break
            time.sleep(0.0005)
        elapsed = time.perf_counter() - t0
        if unacked:
            status = "truncated"
        acked = sent - unacked
    except OSError as e:
        elapsed = time.perf_counter() - t0
        acked, status, err = sent, "error", f"send: {e}"
    finally:
        try:
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        s.close()
    out = {"status": status, "bytes": acked, "seconds": r3(elapsed),
           "MBps": r3(acked / elapsed / MB) if elapsed > 0 else 0.0}
    if err:
        out["error"] = err
    return out


def one_get(path: str, timeout: float):
    s = socket.create_connection((ADDR, HTTP_PORT), timeout=timeout)
    try:
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: bench\r\n\r\n".encode())
        buf = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            buf += d
            status, complete, _ = http_response_done(buf)
            if complete:
                break
        status, complete, _ = http_response_done(buf)
        if status != 200:
            raise OSError(f"HTTP status {status}" if status else "no HTTP response")
        if not buf.endswith(SMALL_BODY):
            raise OSError("wrong body")
    finally:
        s.close()


def phase_connections(a) -> dict:
    lat = []
    errors = 0
    first_error = None
    t_end = time.monotonic() + a.time_limit
    t0 = time.perf_counter()
    attempted = 0
    for _ in range(a.conns):
        if time.monotonic() > t_end:
            break
        attempted += 1
        t = time.perf_counter()
        try:
            one_get("/" + SMALL, timeout=min(2.0, a.time_limit))
            lat.append(time.perf_counter() - t)
        except OSError as e:
            errors += 1
            first_error = first_error or str(e) or type(e).__name__
            if errors >= 20 and not lat:
                break  # nothing works: stop early
    elapsed = time.perf_counter() - t0
    out = {"status": "ok" if attempted == a.conns else "truncated", "attempted": attempted,
           "completed": len(lat), "errors": errors, "seconds": r3(elapsed),
           "conn_per_s": r3(len(lat) / elapsed) if elapsed > 0 else 0.0,
           "p50_ms": r3(percentile(lat, 50) * 1e3) if lat else None,
           "p99_ms": r3(percentile(lat, 99) * 1e3) if lat else None}
    if errors:
        out["first_error"] = first_error
        if not lat:
            out["status"] = "error"
    return out


class _Client:
    __slots__ = ("sock", "buf", "t_req", "state")


def phase_concurrency(a) -> dict:
    """a.clients keep-alive HTTP/1.1 clients in one selector loop for a.concurrency_time s."""
    req = f"GET /{SMALL} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
    sel = selectors.DefaultSelector()
    lat = []
    counts = {"errors": 0, "reconnects": 0, "connects": 0}
    first_error = []

    def fail(c, why):
        counts["errors"] += 1
        if not first_error:
            first_error.append(why)
        close(c)

    def close(c):
        try:
            sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        c.sock.close()
        c.sock = None

    def connect(c):
        s = socket.socket()
        s.setblocking(False)
        err = s.connect_ex((ADDR, HTTP_PORT))
        c.sock, c.buf, c.state = s, b"", "connecting"
        counts["connects"] += 1
        c.t_req = time.perf_counter()
        if err not in (0, 115):  # EINPROGRESS
            fail(c, f"connect: {os.strerror(err)}")
            return
        sel.register(s, selectors.EVENT_WRITE, c)

    def send_request(c):
        c.buf = b""
        c.t_req = time.perf_counter()
        try:
            c.sock.send(req)  # 40 bytes into an empty send buffer: always whole
        except OSError as e:
            fail(c, f"send: {e}")
            return
        c.state = "reading"
        sel.modify(c.sock, selectors.EVENT_READ, c)

    clients = [_Client() for _ in range(a.clients)]
    t_start = time.perf_counter()
    t_stop = t_start + a.concurrency_time
    for c in clients:
        connect(c)
    completed = 0
    while True:
        now = time.perf_counter()
        if now >= t_stop:
            break
        events = sel.select(timeout=min(0.05, t_stop - now))
        for key, mask in events:
            c = key.data
            if c.sock is None:
                continue
            if c.state == "connecting":
                err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    fail(c, f"connect: {os.strerror(err)}")
                    continue
                send_request(c)
                continue
            try:
                d = c.sock.recv(65536)
            except OSError as e:
                fail(c, f"recv: {e}")
                continue
            if not d:
                if c.buf:
                    status, _, _ = http_response_done(c.buf)
                    if status == 200 and c.buf.endswith(SMALL_BODY):
                        lat.append(time.perf_counter() - c.t_req)
                        completed += 1
                        counts["reconnects"] += 1
                        close(c)
                        continue
                fail(c, "connection closed before a response")
                continue
            c.buf += d
            status, complete, keep = http_response_done(c.buf)
            if not complete:
                continue
            if status != 200 or not c.buf.endswith(SMALL_BODY):
                fail(c, f"HTTP status {status}")
                continue
            lat.append(time.perf_counter() - c.t_req)
            completed += 1
            if keep:
                send_request(c)
            else:
                counts["reconnects"] += 1
                close(c)
        # reopen closed clients (server closed, or an error) while time remains
        if time.perf_counter() < t_stop:
            for c in clients:
                if c.sock is None and counts["errors"] < 10 * a.clients:
                    connect(c)
    elapsed = time.perf_counter() - t_start
    stuck = sum(1 for c in clients if c.sock is not None and c.state == "reading"
                and time.perf_counter() - c.t_req > 1.0)
    for c in clients:
        if c.sock is not None:
            close(c)
    sel.close()
    out = {"status": "ok" if completed else "error", "clients": a.clients, "seconds": r3(elapsed),
           "requests": completed, "req_per_s": r3(completed / elapsed), "errors": counts["errors"],
           "stalled_at_end": stuck, "reconnects": counts["reconnects"], "connects": counts["connects"],
           "p50_ms": r3(percentile(lat, 50) * 1e3) if lat else None,
           "p99_ms": r3(percentile(lat, 99) * 1e3) if lat else None}
    if first_error:
        out["first_error"] = first_error[0]
    return out


def phase_ping(a) -> dict:
    ping = shutil.which("ping")
    if not ping:
        return {"status": "error", "error": "ping not found"}
    deadline = int(a.pings * 0.01 + 3)
    cmd = [ping, "-n", "-c", str(a.pings), "-i", "0.01", "-W", "1", "-w", str(deadline), ADDR]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=deadline + 5)
    rtts = []
    for line in r.stdout.splitlines():
        if "time=" in line:
            try:
                rtts.append(float(line.split("time=")[1].split()[0]))
            except (IndexError, ValueError):
                pass
    if not rtts:
        return {"status": "error", "sent": a.pings, "received": 0,
                "error": (r.stderr.strip() or "no replies")[-200:]}
    return {"status": "ok" if len(rtts) == a.pings else "loss", "sent": a.pings, "received": len(rtts),
            "p50_ms": r3(percentile(rtts, 50)), "p99_ms": r3(percentile(rtts, 99)),
            "avg_ms": r3(sum(rtts) / len(rtts)), "min_ms": r3(min(rtts))}
