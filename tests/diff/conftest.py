"""Differential socket tests: one test function, run on kernel sockets and on stack sockets.

The ``net`` fixture is parametrized ``kernel`` / ``stack``. Either way the socket under test
comes from ``net.socket()`` and talks to a *kernel* peer (``net.peer_*``), so the only
thing that changes between the two runs is the implementation of the socket under test:

- ``kernel``: ``socket.socket`` on 127.0.0.1, the peer on 127.0.0.1 too;
- ``stack``: ``stack.socket()`` of a Stack at 198.51.100.2 over a TUN whose host (kernel)
  side is 198.51.100.1, where the peer lives. One Stack and TUN serve the whole package
  (created in the run's private network namespace, tests/conftest.py, removed at the end;
  TEST-NET-2 so it never meets tests/tun's 192.0.2.0/24 devices).

A test asserts what Linux does; the kernel run proves the expectation. Where the stack
differs today the stack run is marked ``xfail(strict=True)`` from ``differences.py`` (so a fix
turns it into an XPASS failure until the entry is removed); docs/api.md lists the same table.
"""
from __future__ import annotations

import os
import socket

import pytest

from differences import STACK_DIFFERENCES
from diffnet import HOST_ADDR, STACK_ADDR, Net


def pytest_collection_modifyitems(config, items):
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is None or callspec.params.get("net") != "stack":
            continue
        module = item.module.__name__.rsplit(".", 1)[-1]
        reason = (STACK_DIFFERENCES.get(f"{module}::{item.name}")       # one parameter set
                  or STACK_DIFFERENCES.get(f"{module}::{item.originalname}")  # every one
                  or STACK_DIFFERENCES.get(f"{module}::*"))  # the whole module
        if reason is not None:
            item.add_marker(pytest.mark.xfail(strict=True, reason=reason))


class _TunStack:
    """The package's Stack over a TUN (made lazily, on the first stack test)."""

    def __init__(self):
        self.stack = self.link = None

    def get(self, request):
        if self.stack is None:
            request.getfixturevalue("private_netns")  # fails the test when there is none
            from stack.link import netconf
            from stack.link.tun import TunLink
            from stack.runtime.stack import Stack
            from stack.tcp.config import TcpConfig
            name = f"df{os.getpid()}"
            self.link = TunLink(name, mtu=1500)
            netconf.configure_host_side(name, f"{HOST_ADDR}/24", 1500)
            config = TcpConfig(delack=0.01, msl=0.5, fin_timeout=1.0, min_rto=0.05, initial_rto=1.0)
            self.stack = Stack(self.link, STACK_ADDR, tcp_config=config).start()
        return self.stack

    def close(self):
        if self.stack is not None:
            self.stack.close()
            self.link.close()
            self.stack = self.link = None


@pytest.fixture(scope="package")
def _tun_stack():
    holder = _TunStack()
    yield holder
    holder.close()


@pytest.fixture(params=["kernel", "stack"])
def net(request, _tun_stack):
    if request.param == "kernel":
        n = Net("kernel", socket.socket, "127.0.0.1", "127.0.0.1")
    else:
        st = _tun_stack.get(request)
        n = Net("stack", lambda family, type: st.socket(family, type), STACK_ADDR, HOST_ADDR)
    yield n
    n.close_all()


