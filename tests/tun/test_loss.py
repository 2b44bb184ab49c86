"""Real TUN with the stack's own impairment layer: curl over a lossy link still gets every byte."""
from __future__ import annotations

import hashlib
import itertools
import os
import subprocess
import threading

import pytest

from stack.apps.servers import http_server
from stack.link.impair import Impairment, ImpairSpec
from stack.link.netconf import configure_host_side
from stack.link.tun import TunLink
from stack.runtime.stack import Stack
from stack.tcp.config import TcpConfig
from stack.trace import ListSink, Tracer

STACK = "192.0.2.2"
_names = itertools.count()


@pytest.mark.parametrize("cc", ["cubic", "newreno"])
def test_curl_16mib_with_5_percent_loss_each_way(private_netns, tmp_path, cc):
    """5 % loss in both directions: the download is intact and the trace shows our retransmissions."""
    root = tmp_path / "www"
    root.mkdir()
    blob = os.urandom(16 << 20)
    (root / "blob").write_bytes(blob)
    name = f"tsl{os.getpid() % 10000}{next(_names)}"
    link = TunLink(name, mtu=1500)
    configure_host_side(name, "192.0.2.1/24", 1500)
    sink = ListSink()
    tracer = Tracer(sink)
    stack = Stack(link, STACK, tracer=tracer, tcp_config=TcpConfig(congestion=cc),
                  impair_in=Impairment(ImpairSpec.parse("loss=5%"), seed=11, direction="in", tracer=tracer),
                  impair_out=Impairment(ImpairSpec.parse("loss=5%"), seed=12, direction="out", tracer=tracer)).start()
    server = http_server(stack, 80, str(root), quiet=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    try:
        result = subprocess.run(["curl", "-sS", "--max-time", "100",
                                 f"http://{STACK}/blob"], capture_output=True, timeout=110)
    finally:
        server.shutdown()
        server.server_close()
        stack.close()
        link.close()
    assert result.returncode == 0, result.stderr
    assert hashlib.sha256(result.stdout).digest() == hashlib.sha256(blob).digest()
    retransmits = sink.of("retransmit")
    dropped = [e for e in sink.of("impair") if e.get("action") == "drop"]
    assert len(dropped) > 100
    assert len(retransmits) > 50
    assert {e["why"] for e in retransmits} & {"fast", "sack"}, "no fast/SACK retransmission at all"
    assert stack.loop_error is None
