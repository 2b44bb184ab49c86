"""Building blocks shared by the command-line entry points (``tunstack`` and its subcommands
living in other modules: run, get, nc): one-line errors, argument types, output files, and a
stack on a new TUN device built from the device flags."""
from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os

DEFAULT_ADDR = "192.0.2.2"          # TEST-NET-1 (RFC 5737): never a real network
DEFAULT_HOST_ADDR = "192.0.2.1/24"


class CliError(Exception):
    """An error the user can fix; printed as one line, exit status 1."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (with a pointer to --help), exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _int_between(text: str, low: int, high: int, what: str, name: str, unit: str = "") -> int:
    """An integer argument in [low, high]; else argparse's one-line error naming ``what``/``name``."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not {what}: {text!r}") from None
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"{name} out of range {low}-{high}{unit}: {value}")
    return value


def _port(text: str) -> int:
    return _int_between(text, 1, 65535, "a port number", "port")


def _mtu(text: str) -> int:
    return _int_between(text, 576, 65535, "an MTU", "MTU")


def _iw(text: str) -> int:
    return _int_between(text, 1, 1000, "a number of segments", "initial window", " segments")


IW_HELP = ("initial congestion window in segments for every connection (default: RFC 5681 3.1's 2-4 "
           "by MSS; 10 is Linux's, RFC 6928)")


def _ipv4(text: str) -> str:
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an IPv4 address: {text!r}") from None


def _ipv4_cidr(text: str) -> str:
    try:
        iface = ipaddress.IPv4Interface(text if "/" in text else text + "/24")
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an IPv4 address/prefix: {text!r}") from None
    return str(iface)


def _ifname(text: str) -> str:
    if not 1 <= len(text) <= 15 or "/" in text or " " in text:
        raise argparse.ArgumentTypeError(f"not a valid interface name (1-15 characters, no '/' or spaces): {text!r}")
    return text


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"seconds out of range 0-3600: {text}")
    return value


def _directory(text: str) -> str:
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"not a directory: {text!r}")
    return os.path.abspath(text)


def _add_impairment_arguments(parser: argparse.ArgumentParser) -> None:
    try:
        from .link.impair_cli import add_impairment_arguments
    except ImportError:  # the impairment layer is optional for serve
        return
    add_impairment_arguments(parser)


def _open_out(path: str, mode: str):
    try:
        return open(path, mode)
    except OSError as exc:
        raise CliError(f"cannot open {path!r}: {exc.strerror}") from None


# ------------------------------------------------------------------ a stack on a new TUN device
def check_stack_args(args) -> None:
    """The device flags serve and run share, checked before anything is opened (one-line errors)."""
    from .tcp import congestion
    host_if = ipaddress.IPv4Interface(args.host_addr)
    if ipaddress.IPv4Address(args.addr) == host_if.ip:
        raise CliError(f"--addr {args.addr} equals the host side's address; pick another")
    if ipaddress.IPv4Address(args.addr) not in host_if.network:
        raise CliError(f"--addr {args.addr} is not inside --host-addr {args.host_addr}'s network")
    if args.cc is not None and args.cc not in congestion.ALGORITHMS:
        raise CliError(f"unknown congestion control {args.cc!r}; choose one of: "
                       f"{', '.join(sorted(congestion.ALGORITHMS))}")
    if args.offload and any(getattr(args, k, None) is not None and not getattr(args, k).is_null
                            for k in ("impair", "impair_in", "impair_out")):
        raise CliError("--offload and impairment cannot be combined (impairment works on plain packets)")


@contextlib.contextmanager
def tun_stack(args):
    """A Stack (not started) on a new TUN device whose host side is configured from the flags
    (check them first: ``check_stack_args``), with its trace, pcap and impairment; the device and
    the files are closed afterwards."""
    from .link.tun import TunLink
    from .runtime.stack import Stack
    from .tcp.config import TcpConfig
    from .trace import JsonLinesSink, Tracer
    try:
        from .link.netconf import configure_host_side
    except ImportError as exc:
        raise CliError(f"pyroute2 is needed for the TUN set-up: {exc} (pip install pyroute2)") from None
    tracer, sink, pcap, link = None, None, None, None
    try:
        if args.trace:
            sink = JsonLinesSink(_open_out(args.trace, "w"))
            tracer = Tracer(sink)
        if args.pcap:
            from .pcap import PcapWriter
            pcap = PcapWriter(_open_out(args.pcap, "wb"))
        impair_in = impair_out = None
        if hasattr(args, "impair"):
            from .link.impair_cli import impairments_from_args
            impair_in, impair_out = impairments_from_args(args, tracer)
            impair_in = None if impair_in.spec.is_null else impair_in
            impair_out = None if impair_out.spec.is_null else impair_out
        try:
            link = TunLink(args.tun, mtu=args.mtu, offload=args.offload)
        except OSError as exc:
            raise CliError(f"cannot create TUN device {args.tun!r}: {exc.strerror or exc}") from None
        try:
            configure_host_side(args.tun, args.host_addr, args.mtu)
        except Exception as exc:  # pyroute2's NetlinkError and friends
            raise CliError(f"cannot configure {args.tun}: {exc}") from None
        config = TcpConfig(congestion=args.cc or TcpConfig.congestion, initial_window=getattr(args, "iw", None),
                           mem_limit=getattr(args, "mem_limit", None) or TcpConfig.mem_limit)
        yield Stack(link, args.addr, mtu=args.mtu, tcp_config=config, tracer=tracer, impair_in=impair_in,
                    impair_out=impair_out, pcap=pcap, seed=getattr(args, "seed", None))
    finally:
        for thing in (link, pcap, sink):
            if thing is not None:
                thing.close()
