"""Test-run setup: the whole pytest process moves into a private network namespace.

Safety model: as root, ``pytest_configure`` (run once, before any test or thread) calls
``unshare(CLONE_NEWNET)``, so this process and every subprocess it starts get a brand-new,
empty network namespace with only ``lo`` (brought up here). Every TUN device and address
a test creates therefore lives in a namespace this run created, and the kernel destroys
that namespace, with everything in it, when the last process in it exits, even if pytest
crashes or is killed. Nothing a test does can touch the host's interfaces or routes,
and two runs at once never see each other's devices.

Tests that need it (tests/tun) fail, rather than skip, when the namespace could not be
made (not root, or no CAP_SYS_ADMIN): see ``private_netns`` below.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

import pytest

CLONE_NEWNET = 0x40000000

_netns = {"private": False, "why": "pytest_configure has not run"}


def _unshare_net() -> None:
    """Move this process into a new network namespace (Python 3.11 has no os.unshare)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare(CLONE_NEWNET): {os.strerror(err)}")


def pytest_configure(config):
    if _netns["private"]:
        return
    if os.geteuid() != 0:
        _netns["why"] = "not running as root: TUN tests need root (run: sudo scripts/test)"
        return
    before = os.readlink("/proc/self/ns/net")
    try:
        _unshare_net()
        from stack.link.netconf import bring_up_loopback
        bring_up_loopback()
    except Exception as e:  # noqa: BLE001 - reported by every test that needs the netns
        _netns["why"] = f"could not create a private network namespace: {e}"
        return
    if os.readlink("/proc/self/ns/net") == before:
        _netns["why"] = "unshare(CLONE_NEWNET) returned but the namespace did not change"
        return
    _netns.update(private=True, why="", ns=os.readlink("/proc/self/ns/net"))


def pytest_report_header(config):
    if _netns["private"]:
        return f"network: private namespace {_netns['ns']} (dies with this run)"
    return f"network: host namespace ({_netns['why']}); tests/tun will fail"


@pytest.fixture
def private_netns() -> str:
    """The id of the run's private network namespace; FAILS the test if there is none."""
    if not _netns["private"]:
        pytest.fail(f"refusing to touch the network: {_netns['why']}", pytrace=False)
    if os.readlink("/proc/self/ns/net") != _netns["ns"]:
        pytest.fail("this process left the test run's private network namespace", pytrace=False)
    return _netns["ns"]


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory) -> tuple[str, str]:
    """(certificate, key) PEM files of a self-signed certificate made for this run with ``openssl``:
    names host, peer, localhost and addresses 192.0.2.1, 192.0.2.2, 127.0.0.1; it is its own CA."""
    import subprocess
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "2", "-subj", "/CN=tunstack test", "-keyout", str(key), "-out", str(cert),
                    "-addext", "subjectAltName=DNS:host,DNS:peer,DNS:localhost,IP:192.0.2.1,IP:192.0.2.2,"
                                                "IP:127.0.0.1",
                    "-addext", "basicConstraints=critical,CA:TRUE"],
                   check=True, capture_output=True, timeout=60)
    return str(cert), str(key)
