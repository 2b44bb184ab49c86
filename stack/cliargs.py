"""Building blocks shared by the command-line entry points (``tunstack`` and its subcommands
living in other modules: run, get, nc): one-line errors, argument types, output files."""
from __future__ import annotations

import argparse
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


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range 1-65535: {value}")
    return value


def _mtu(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an MTU: {text!r}") from None
    if not 576 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"MTU out of range 576-65535: {value}")
    return value


def _iw(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of segments: {text!r}") from None
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"initial window out of range 1-1000 segments: {value}")
    return value


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
