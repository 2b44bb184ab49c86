"""The real-TUN end-to-end run: curl, the kernel's own TCP, downloads from the stack with the student's part.

``real_curl_check`` (a check function) starts this module as a process of its own:
``python -m stack.exercises.tun_e2e N PATH BYTES SEED``. That process first moves itself
into a new, empty network namespace (unshare(CLONE_NEWNET)), so its TUN device, addresses
and every packet exist only there and vanish when it exits, also on a crash or a kill.
It then installs the student's part, runs the stack over the TUN with 5 % loss each way
(the stack's own impairment layer), serves a seeded random file over HTTP, fetches it with
curl (bounded by --max-time) and prints one JSON line: what arrived, its hash, errors.
Here the kernel is the oracle: it drops any segment whose checksum is wrong and answers
sequence numbers the way Linux does.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from .framework import NotApplicable

CLONE_NEWNET = 0x40000000
STACK_ADDR, HOST_ADDR = "192.0.2.2", "192.0.2.1/24"
CURL_MAX_TIME = 90
# curl's --connect-timeout: 10 s rides out SYN losses at 5 % (the kernel resends at 1, 3, 7 s);
# the checker's own tests lower it for a part that can never connect.
CONNECT_TIMEOUT = float(os.environ.get("TUNSTACK_EXERCISE_CONNECT_TIMEOUT", "10"))


def available() -> str:
    """'' when a real-TUN run is possible here, else the reason it is not."""
    if os.geteuid() != 0:
        return "needs root (the TUN device and a private network namespace)"
    if not os.path.exists("/dev/net/tun"):
        return "no /dev/net/tun"
    if shutil.which("curl") is None:
        return "curl is not installed"
    return ""


def real_curl_check(ex, part, t, o, *, iss: int | None = None, upload: bool = False) -> None:
    """Run the real-TUN download in its own process and namespace; fail the check unless byte-exact.
    ``upload``: curl sends the file to the stack instead (the stack is the receiver: exercise 3)."""
    why = available()
    if why or not o.get("real_tun", True):
        raise NotApplicable(f"real-TUN curl run skipped: {why or 'turned off'}")
    nbytes = o["e2e_bytes"]
    path = o.get("student_path") or "-"
    t.note(f"curl {'uploads' if upload else 'fetches'} {nbytes} bytes {'to' if upload else 'from'} the stack "
           f"over a real TUN, 5 % loss each way, in a network namespace of its own")
    cmd = [sys.executable, "-m", "stack.exercises.tun_e2e", str(ex.number), path, str(nbytes), str(iss or 0)] \
        + (["upload"] if upload else [])
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=CURL_MAX_TIME + 30)
    except subprocess.TimeoutExpired:
        t.fail(f"the real-TUN run did not finish in {CURL_MAX_TIME + 30} s")
    lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
    if not lines:
        t.fail(f"the real-TUN run produced no result (exit {proc.returncode}): "
               + " | ".join(proc.stderr.strip().splitlines()[-5:]))
    res = json.loads(lines[-1])
    if res.get("error"):
        t.fail(res["error"])
    t.note(f"curl exit status {res['curl_rc']}, {res['received']} bytes{' received by the stack' if upload else ''}"
           f" in {res['seconds']:.2f} s, {res['retransmits']} retransmissions by the stack")
    if res.get("curl_err"):
        t.note(f"curl said: {res['curl_err'].strip()}")
    t.expect("TCP segments the kernel dropped for a bad checksum (its InCsumErrors counter)",
             res.get("csum_errors", 0), 0)
    t.expect("the kernel's TCP segments the stack dropped for a bad checksum (computed with your part)",
             res.get("our_csum_drops", 0), 0)
    if res.get("loop_error"):
        t.fail("the stack's thread failed with your part installed:\n" + res["loop_error"])
    t.expect("curl's exit status", res["curl_rc"], 0)
    t.expect(f"sha256 of what {'the stack' if upload else 'curl'} received equals the file", res["sha256"],
             res["want_sha256"])


def _kernel_tcp_csum_errors() -> int:
    """Tcp InCsumErrors of this network namespace: segments the kernel dropped for a bad checksum."""
    with open("/proc/net/snmp") as f:
        rows = [line.split() for line in f if line.startswith("Tcp:")]
    return int(dict(zip(rows[0][1:], rows[1][1:])).get("InCsumErrors", 0))


def _unshare_net() -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare(CLONE_NEWNET): {os.strerror(err)}")


def _upload_app(environ, start_response):
    """WSGI: read the request body (the stack receives it) and answer with its length and sha256."""
    n = int(environ.get("CONTENT_LENGTH") or 0)
    body, stream = bytearray(), environ["wsgi.input"]
    while len(body) < n:
        chunk = stream.read(min(65536, n - len(body)))
        if not chunk:
            break
        body += chunk
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{len(body)} {hashlib.sha256(body).hexdigest()[:16]}".encode()]


def _main(argv: list[str]) -> int:
    number, path, nbytes, iss = argv[0], argv[1], int(argv[2]), int(argv[3])
    upload = argv[4:] == ["upload"]
    out = sys.stdout
    sys.stdout = sys.stderr
    try:
        _unshare_net()  # from here on, nothing this process does can reach the host's network
    except OSError as exc:
        print(json.dumps({"error": f"cannot make a private network namespace: {exc}"}), file=out)
        return 0
    from ..apps.servers import http_server, wsgi_server
    from ..link.impair import Impairment, ImpairSpec
    from ..link.netconf import configure_host_side
    from ..link.tun import TunLink
    from ..runtime.stack import Stack
    from ..tcp.config import TcpConfig
    from ..tcp.isn import FixedIsn
    from ..trace import ListSink, Tracer
    from .catalog import find
    from .framework import load_part, student_traceback
    from .seams import install

    ex = find(number)
    if path != "-" or ex.tcp_config:  # a part that runs under a name of its own is installed for the reference too
        install(ex.replacements(ex.reference() if path == "-" else load_part(ex, path)))
    blob = random.Random(nbytes).randbytes(nbytes)
    name = f"tx{os.getpid()}"[:15]
    result = {"received": 0, "curl_rc": None, "sha256": "", "want_sha256": hashlib.sha256(blob).hexdigest()[:16],
              "retransmits": 0, "seconds": 0.0, "loop_error": None}
    with tempfile.TemporaryDirectory() as root:
        with open(os.path.join(root, "blob"), "wb") as f:
            f.write(blob)
        link = TunLink(name, mtu=1500)
        stack = server = None
        try:
            configure_host_side(name, HOST_ADDR, 1500)
            sink = ListSink()
            tracer = Tracer(sink)
            stack = Stack(link, STACK_ADDR, tracer=tracer, isn=FixedIsn(iss) if iss else None, seed=nbytes,
                          tcp_config=TcpConfig(**ex.tcp_config) if ex.tcp_config else None,
                          impair_in=Impairment(ImpairSpec.parse("loss=5%"), seed=21, direction="in"),
                          impair_out=Impairment(ImpairSpec.parse("loss=5%"), seed=22, direction="out")).start()
            server = wsgi_server(stack, 80, _upload_app, quiet=True) if upload else \
                http_server(stack, 80, root, quiet=True)
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
            start = time.monotonic()
            curl = ["curl", "-sS", "--connect-timeout", f"{CONNECT_TIMEOUT:g}", "--max-time", str(CURL_MAX_TIME),
                    f"http://{STACK_ADDR}/blob"]
            if upload:  # POST the file; the answer is "<length> <sha256 prefix>" of what the stack read
                curl[-1:-1] = ["--data-binary", "@" + os.path.join(root, "blob"), "-H", "Expect:",
                               "-H", "Content-Type: application/octet-stream"]
            proc = subprocess.run(curl, capture_output=True, timeout=CURL_MAX_TIME + 10)
            received, digest = len(proc.stdout), hashlib.sha256(proc.stdout).hexdigest()[:16]
            if upload:
                parts = proc.stdout.decode(errors="replace").split()
                received, digest = (int(parts[0]), parts[1]) if len(parts) == 2 and parts[0].isdigit() else (0, "")
            result.update(curl_rc=proc.returncode, received=received, sha256=digest,
                          seconds=time.monotonic() - start, retransmits=len(sink.of("retransmit")),
                          csum_errors=_kernel_tcp_csum_errors(),
                          our_csum_drops=stack.host.drops.get("tcp_checksum", 0),
                          curl_err=proc.stderr.decode(errors="replace")[-200:])
            if stack.loop_error is not None:
                result["loop_error"] = student_traceback(stack.loop_error, None if path == "-" else path)
        finally:
            if server is not None:
                server.shutdown()
                server.server_close()
            if stack is not None:
                stack.close()
            link.close()
    print(json.dumps(result), file=out, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
