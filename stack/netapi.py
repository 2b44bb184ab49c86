"""The socket module's convenience functions over a ``Stack``: name lookup and connection helpers.

``getaddrinfo``, ``gethostbyname``, ``create_connection`` and ``create_server`` with the
standard library's signatures, results and errors, plus a leading ``stack`` argument. They
use only the stack's public socket API (``stack.socket()`` and the socket methods).

Names come from a small hosts table per stack (no DNS: the stack has no resolver):
``localhost`` and ``tunstack`` are the stack's own address; ``set_hosts(stack, {...})`` adds
more (``tunstack run`` adds ``host`` for the TUN's host side). Literal dotted quads pass
through. IPv6 does not exist on the stack: asking for ``AF_INET6`` is ``EAI_FAMILY``.
"""
from __future__ import annotations

import ipaddress
import socket as _std
import weakref

from .runtime.stack import Stack

_HOSTS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_TYPES = ((_std.SOCK_STREAM, _std.IPPROTO_TCP), (_std.SOCK_DGRAM, _std.IPPROTO_UDP), (_std.SOCK_RAW, 0))


def set_hosts(stack, table: dict[str, str]) -> None:
    """Add ``name -> dotted quad`` entries to ``stack``'s hosts table."""
    hosts = _HOSTS.setdefault(stack, {})
    for name, addr in table.items():
        hosts[name.lower()] = str(ipaddress.IPv4Address(addr))


def hosts(stack) -> dict[str, str]:
    """The hosts table: the defaults (``localhost``, ``tunstack``) and what ``set_hosts`` added."""
    table = {"localhost": stack.address_str, "tunstack": stack.address_str}
    table.update(_HOSTS.get(stack, {}))
    return table


def _lookup(stack, host) -> str:
    """A dotted quad for ``host`` (a literal or a hosts-table name), else gaierror EAI_NONAME."""
    if isinstance(host, (bytes, bytearray)):
        host = host.decode("ascii")
    try:
        return str(ipaddress.IPv4Address(host))
    except ValueError:
        pass
    addr = hosts(stack).get(str(host).lower().rstrip("."))
    if addr is None:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise _std.gaierror(_std.EAI_NONAME, "Name or service not known") from None
        raise _std.gaierror(_std.EAI_ADDRFAMILY, "Address family for hostname not supported")
    return addr


def _port(port, socktype: int) -> int:
    """The service as glibc's getaddrinfo() takes it: a number (negative: EAI_SERVICE; beyond 65535 it
    keeps the low 16 bits, as glibc's htons() does) or a name from /etc/services."""
    if port is None:
        return 0
    text = str(port) if isinstance(port, int) else (port.decode() if isinstance(port, (bytes, bytearray)) else str(port))
    if text.isdigit():
        return int(text) & 0xFFFF
    proto = "udp" if socktype == _std.SOCK_DGRAM else "tcp"
    try:
        return _std.getservbyname(text, proto)  # /etc/services: a local file, no network
    except OSError:
        raise _std.gaierror(_std.EAI_SERVICE, "Servname not supported for ai_socktype") from None


def getaddrinfo(stack, host, port, family=0, type=0, proto=0, flags=0):
    """``socket.getaddrinfo`` on the stack: IPv4 only, names from the hosts table."""
    if family not in (0, _std.AF_UNSPEC, _std.AF_INET):
        if family == _std.AF_INET6:
            raise _std.gaierror(_std.EAI_ADDRFAMILY if host else _std.EAI_FAMILY,
                                "Address family for hostname not supported")
        raise _std.gaierror(_std.EAI_FAMILY, "ai_family not supported")
    if host == "":
        raise _std.gaierror(_std.EAI_NONAME, "Name or service not known")  # glibc: an empty name is no name
    if host is None:  # the wildcard to bind (AI_PASSIVE), else "loopback": the stack's own address
        addr = "0.0.0.0" if flags & _std.AI_PASSIVE else stack.address_str
    elif flags & _std.AI_NUMERICHOST:
        try:
            addr = str(ipaddress.IPv4Address(host))
        except ValueError:
            raise _std.gaierror(_std.EAI_NONAME, "Name or service not known") from None
    else:
        addr = _lookup(stack, host)
    result = []
    for socktype, sproto in _TYPES:
        if (type and type != socktype) or (proto and proto != sproto):
            continue
        result.append((_std.AF_INET, _std.SocketKind(socktype), sproto, "", (addr, _port(port, socktype))))
    if not result:
        raise _std.gaierror(_std.EAI_SOCKTYPE, "ai_socktype not supported")
    return result


def gethostbyname(stack, name) -> str:
    return _lookup(stack, name)


def gethostbyname_ex(stack, name):
    addr = _lookup(stack, name)
    return (str(name), [], [addr])


def getfqdn(stack, name: str = "") -> str:
    """The name itself: the hosts table has no domain names (and never asks DNS)."""
    return name or "tunstack"


def create_connection(stack, address, timeout=_std._GLOBAL_DEFAULT_TIMEOUT, source_address=None,
                      *, all_errors: bool = False):
    """``socket.create_connection``: try each address of ``getaddrinfo`` until one connects."""
    host, port = address
    errors = []
    for family, socktype, proto, _, sockaddr in getaddrinfo(stack, host, port, 0, _std.SOCK_STREAM):
        sock = None
        try:
            sock = stack.socket(family, socktype, proto)
            if timeout is not _std._GLOBAL_DEFAULT_TIMEOUT:
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            errors.append(exc)
            if sock is not None:
                sock.close()
    if not errors:
        raise OSError("getaddrinfo returns an empty list")
    if all_errors:
        raise ExceptionGroup("create_connection failed", errors)
    raise errors[0]


def create_server(stack, address, *, family=_std.AF_INET, backlog=None, reuse_port=False,
                  dualstack_ipv6=False):
    """``socket.create_server``: a listening TCP socket on the stack (IPv4 only)."""
    if family != _std.AF_INET or dualstack_ipv6:
        raise ValueError("tunstack sockets are IPv4 only (family=AF_INET, dualstack_ipv6=False)")
    sock = stack.socket(_std.AF_INET, _std.SOCK_STREAM)
    try:
        sock.setsockopt(_std.SOL_SOCKET, _std.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(_std.SOL_SOCKET, _std.SO_REUSEPORT, 1)
        host, port = address
        sock.bind((_lookup(stack, host) if host else "", port))
        sock.listen() if backlog is None else sock.listen(backlog)
        return sock
    except BaseException:
        sock.close()
        raise


# ------------------------------------------------------------------------------ on the Stack itself
def _method(fn):
    def method(self, *args, **kwargs):
        return fn(self, *args, **kwargs)
    method.__name__, method.__qualname__, method.__doc__ = fn.__name__, f"Stack.{fn.__name__}", fn.__doc__
    return method


# ``st.create_connection(...)``, ``st.create_server(...)``, ``st.getaddrinfo(...)``: what a user of
# ``st.socket()`` reaches for next, with the socket module's signatures (the stack comes first implicitly)
for _fn in (getaddrinfo, gethostbyname, gethostbyname_ex, getfqdn, create_connection, create_server, set_hosts):
    setattr(Stack, _fn.__name__, _method(_fn))
del _fn
