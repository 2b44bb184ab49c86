"""`tunstack serve --http` in both modes over a real TUN: threads (the standard library's handler in
a worker pool) and epoll (one thread on stack.epoll). curl and kernel sockets are the clients."""
from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import threading

import pytest

STACK = "192.0.2.2"


@pytest.fixture(scope="module")
def web_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("www")
    (root / "index.html").write_text("<h1>tunstack</h1>\n")
    (root / "big.bin").write_bytes(os.urandom(4 << 20))
    (root / "sub").mkdir()
    (root / "sub" / "a.txt").write_text("a\n")
    for i in range(8):
        (root / f"f{i}.bin").write_bytes(os.urandom(48_000 + 1_000 * i))
    return root


@pytest.fixture(params=["threads", "epoll"])
def http(request, serve_process, web_root):
    return serve_process("--http", 80, "--root", web_root, "--quiet", "--http-mode", request.param)


def curl(*args, timeout=60):
    return subprocess.run(["curl", "-sS", "--max-time", str(timeout), *args], capture_output=True,
                          timeout=timeout + 5)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_curl_download_4mib_intact(http, web_root):
    r = curl(f"http://{STACK}/big.bin")
    assert r.returncode == 0, r.stderr
    assert sha(r.stdout) == sha((web_root / "big.bin").read_bytes())


def test_curl_reuses_the_kept_alive_connection(http):
    r = curl("-w", "|%{num_connects}|%{http_code}\n", f"http://{STACK}/index.html", f"http://{STACK}/big.bin",
             f"http://{STACK}/index.html", "-o", "/dev/null", "-o", "/dev/null", "-o", "/dev/null")
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().split() == ["|1|200", "|0|200", "|0|200"]


def test_404_head_and_directory(http):
    r = curl("-w", "%{http_code}", "-o", "/dev/null", f"http://{STACK}/missing")
    assert r.stdout == b"404"
    r = curl("-I", f"http://{STACK}/big.bin")
    assert r.stdout.startswith(b"HTTP/1.1 200") and b"Content-Length: 4194304" in r.stdout
    r = curl("-w", "%{http_code} %{redirect_url}", "-o", "/dev/null", f"http://{STACK}/sub")
    assert r.stdout == f"301 http://{STACK}/sub/".encode()
    r = curl(f"http://{STACK}/sub/")
    assert b'href="a.txt"' in r.stdout


def test_pipelined_requests_on_one_connection(http, web_root):
    """Two GETs and a HEAD in one write: three responses, in order, on one connection."""
    with socket.create_connection((STACK, 80), timeout=10) as s:
        s.sendall(b"GET /f1.bin HTTP/1.1\r\nHost: x\r\n\r\nHEAD /f2.bin HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /index.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    f1 = (web_root / "f1.bin").read_bytes()
    first, rest = data.split(b"\r\n\r\n", 1)
    assert first.startswith(b"HTTP/1.1 200") and rest[:len(f1)] == f1
    second, third = rest[len(f1):].split(b"\r\n\r\n", 1)
    assert b"Content-Length: 50000" in second
    assert third.startswith(b"HTTP/1.1 200") and third.endswith(b"<h1>tunstack</h1>\n")


def _get(path: str) -> bytes:
    with socket.create_connection((STACK, 80), timeout=60) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = bytearray()
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    return body


def test_200_concurrent_kernel_clients_epoll_mode(serve_process, web_root):
    """200 kernel clients at once against the one-thread server: every byte of every file checked."""
    serve_process("--http", 80, "--root", web_root, "--quiet", "--http-mode", "epoll")
    want = {i: (web_root / f"f{i}.bin").read_bytes() for i in range(8)}
    start = threading.Barrier(200)
    results, errors = {}, []

    def client(k: int) -> None:
        try:
            start.wait(30)
            results[k] = _get(f"/f{k % 8}.bin")
        except Exception as exc:  # reported below with the client's number
            errors.append((k, repr(exc)))

    threads = [threading.Thread(target=client, args=(k,)) for k in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:5]
    assert len(results) == 200
    assert all(results[k] == want[k % 8] for k in range(200))


@pytest.mark.parametrize("mode", ["threads", "epoll"])
def test_segments_of_small_keepalive_responses(serve_process, web_root, tmp_path, mode):
    """epoll mode writes headers and body at once: one data segment per small response. The
    threaded mode keeps the standard library's two writes (head, then body: the labs show the
    two segments), with TCP_NODELAY so that the body never waits behind Nagle."""
    from scapy.all import TCP, rdpcap
    pcap = tmp_path / "s.pcap"
    srv = serve_process("--http", 80, "--root", web_root, "--quiet", "--http-mode", mode, "--pcap", pcap)
    with socket.create_connection((STACK, 80), timeout=10) as s:
        port = s.getsockname()[1]
        for _ in range(3):
            s.sendall(b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            while not data.endswith(b"<h1>tunstack</h1>\n"):
                data += s.recv(4096)
    srv.stop()
    packets = [p for p in rdpcap(str(pcap)) if TCP in p and port in (p[TCP].sport, p[TCP].dport)]
    data_idx = [i for i, p in enumerate(packets) if p.src == STACK and len(p[TCP].payload)]
    data_segs = [bytes(packets[i][TCP].payload) for i in data_idx]
    if mode == "epoll":
        assert len(data_segs) == 3, data_segs
        assert all(d.startswith(b"HTTP/1.1 200") and d.endswith(b"<h1>tunstack</h1>\n") for d in data_segs)
        return
    assert len(data_segs) == 6, data_segs
    for h, b in zip(data_idx[::2], data_idx[1::2]):
        head, body = packets[h][TCP], packets[b][TCP]
        assert bytes(head.payload).endswith(b"\r\n\r\n") and bytes(body.payload) == b"<h1>tunstack</h1>\n"
        assert body.seq == head.seq + len(head.payload)
