"""Kernel-side interface setup over netlink (pyroute2), in the caller's network namespace.

The library never shells out to ``ip``. What ``configure_host_side("tun0")`` does is
what you would type as::

    ip link set tun0 mtu 1500 txqueuelen 4096
    sysctl net.ipv6.conf.tun0.disable_ipv6=1   # IPv4-only stack: no RS/MLD noise
    ip addr add 192.0.2.1/24 dev tun0     # also installs the connected route 192.0.2.0/24
    ip link set tun0 up

after which the kernel routes 192.0.2.0/24 (our stack is 192.0.2.2) into the TUN.
These calls change the namespace they run in: run them only inside a namespace your
own run created (the test suite and scripts/demo do).
"""
from __future__ import annotations

import errno
import ipaddress

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

# Packets the kernel may queue towards our reader (a TUN's default is 500). A bulk upload
# keeps up to one receive window in flight: 4 MiB (TcpConfig.rcvbuf) is about 2,900
# segments of 1448 bytes. With 500 the queue overflowed whenever the stack thread fell
# behind the kernel's sender for a moment; each drop then costs a recovery episode.
TXQUEUELEN = 4096


def _index(ipr: IPRoute, ifname: str) -> int:
    found = ipr.link_lookup(ifname=ifname)
    if not found:
        raise LookupError(f"no network interface named {ifname!r} in this namespace")
    return found[0]


def link_index(ifname: str) -> int | None:
    """The interface index of ``ifname`` in this namespace, or None if it does not exist."""
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=ifname)
    return found[0] if found else None


def set_mtu(ifname: str, mtu: int) -> None:
    """Set the interface MTU (``ip link set IF mtu N``)."""
    with IPRoute() as ipr:
        ipr.link("set", index=_index(ipr, ifname), mtu=mtu)


def disable_ipv6(ifname: str) -> bool:
    """Stop the kernel using IPv6 on ``ifname`` (no router solicitations, MLD reports).

    Writes the per-namespace sysctl under /proc/sys/net (it follows the caller's network
    namespace). Returns False where the kernel has no IPv6.
    """
    try:
        with open(f"/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6", "w") as f:
            f.write("1")
    except FileNotFoundError:
        return False
    return True


def set_txqueuelen(ifname: str, qlen: int) -> None:
    """Set how many packets the kernel queues on the interface (``ip link set IF txqueuelen N``)."""
    with IPRoute() as ipr:
        ipr.link("set", index=_index(ipr, ifname), txqlen=qlen)


def configure_host_side(ifname: str, host_cidr: str = "192.0.2.1/24",
                        mtu: int = 1500, ipv6: bool = False, txqueuelen: int = TXQUEUELEN) -> None:
    """Give ``ifname`` the kernel's address ``host_cidr``, the MTU, a queue of ``txqueuelen``
    packets (``TXQUEUELEN``: the kernel's TUN default of 500 overflows under a bulk upload),
    and bring it up.

    Our stack speaks IPv4 only, so unless ``ipv6`` is true the kernel's IPv6 is turned
    off on the device before it comes up: the TUN (and any pcap) then carries only the
    traffic you cause. Idempotent: an address that is already there is not an error.
    """
    iface = ipaddress.ip_interface(host_cidr)
    with IPRoute() as ipr:
        index = _index(ipr, ifname)
        ipr.link("set", index=index, mtu=mtu, txqlen=txqueuelen)
        if not ipv6:
            disable_ipv6(ifname)
        try:
            ipr.addr("add", index=index, address=str(iface.ip),
                     prefixlen=iface.network.prefixlen)
        except NetlinkError as e:
            if e.code != errno.EEXIST:
                raise
        ipr.link("set", index=index, state="up")


def bring_up_loopback() -> None:
    """``ip link set lo up``: a new namespace starts with lo down (no 127.0.0.1)."""
    with IPRoute() as ipr:
        ipr.link("set", index=_index(ipr, "lo"), state="up")


def remove_link(ifname: str) -> bool:
    """Delete the interface; returns False if it did not exist.

    A non-persistent TUN device also goes away by itself when its fd is closed.
    """
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=ifname)
        if not found:
            return False
        try:
            ipr.link("del", index=found[0])
        except NetlinkError as e:
            if e.code != errno.ENODEV:
                raise
            return False
    return True
