"""``tunstack run``: an unmodified Python program whose ``socket`` module goes over the stack.

``tunstack run [stack options] (-m MODULE | -c CODE | SCRIPT) [ARGS...]`` brings up the TUN
and the stack as ``serve`` does, patches the names the standard library looks up in the
``socket`` module, and runs the program in this interpreter with ``runpy`` (as ``python``
would: ``sys.argv``, ``sys.path[0]``, ``__main__``). ``socketserver``, ``http.server``,
``http.client``, ``urllib``, ``wsgiref``, ``selectors`` and ``asyncio`` are all built on those
names, so they reach the network through the userspace stack:

- ``socket.socket(AF_INET, ...)`` is a stack socket; ``AF_UNIX`` (asyncio's self-pipe
  ``socketpair()``), ``AF_NETLINK`` and ``socket(fileno=...)`` stay kernel sockets; ``AF_INET6``
  is refused (the stack is IPv4 only, and the program must not reach the kernel's network);
- ``getaddrinfo``, ``gethostbyname(_ex)``, ``getfqdn``, ``create_connection``, ``create_server``
  come from :mod:`stack.netapi` (hosts table: ``localhost``/``tunstack`` = the stack,
  ``host`` = the TUN's host side);
- TLS: ``ssl.SSLContext.wrap_socket`` of a stack socket runs the same context over memory BIOs
  (:mod:`stack.tls`: OpenSSL has no kernel fd to drive), so ``http.client`` and ``urllib`` HTTPS
  go over the stack.

The exit status is the program's. SIGTERM is turned into KeyboardInterrupt in the main
thread (as SIGINT is) so the program's own clean-up runs; then the stack lets open
connections finish for up to a second and stops.
"""
from __future__ import annotations

import argparse
import contextlib
import errno
import importlib.util
import ipaddress
import os
import runpy
import signal
import socket as _std
import sys
import threading
import traceback
import weakref

from . import netapi, tls  # tls before the patch: it takes socket.socket.makefile

_REAL = {name: getattr(_std, name) for name in (
    "socket", "create_connection", "create_server", "getaddrinfo", "gethostbyname",
    "gethostbyname_ex", "getfqdn", "fromfd")}
_TYPE_FLAGS = getattr(_std, "SOCK_NONBLOCK", 0) | getattr(_std, "SOCK_CLOEXEC", 0)


# ---------------------------------------------------------------------------------------- arguments
def add_stack_arguments(parser: argparse.ArgumentParser) -> None:
    """The device/address/impairment/trace/pcap options, as ``serve`` has them."""
    from .cliargs import DEFAULT_ADDR, DEFAULT_HOST_ADDR, IW_HELP, _add_impairment_arguments, _ifname, _ipv4, _ipv4_cidr, _iw, _mtu
    parser.add_argument("--tun", type=_ifname, default="tun0", metavar="NAME", help="TUN device name to create")
    parser.add_argument("--addr", type=_ipv4, default=DEFAULT_ADDR, help="the stack's own IPv4 address")
    parser.add_argument("--host-addr", type=_ipv4_cidr, default=DEFAULT_HOST_ADDR, metavar="ADDR/PREFIX",
                        help="address and prefix of the host (kernel) side of the TUN (the name 'host')")
    parser.add_argument("--mtu", type=_mtu, default=1500, help="MTU of the TUN device and the stack")
    parser.add_argument("--cc", default=None, metavar="NAME",
                        help="congestion control for every connection (reno, newreno, cubic; default: cubic)")
    parser.add_argument("--iw", type=_iw, default=None, metavar="SEGMENTS", help=IW_HELP)
    parser.add_argument("--pcap", metavar="FILE", help="write every packet the stack sends and receives to FILE")
    parser.add_argument("--trace", metavar="FILE", help="write trace events (JSON lines) to FILE")
    parser.add_argument("--offload", action="store_true",
                        help="TUN offloads (IFF_VNET_HDR: checksums, TSO/GRO); not with impairment")
    _add_impairment_arguments(parser)


@contextlib.contextmanager
def open_stack(args, linger: float = 1.0):
    """Create the TUN, configure its host side and yield a started Stack; undo it all after.

    At the end, connections still sending (data or FIN) get up to ``linger`` seconds to finish."""
    from .cliargs import check_stack_args, tun_stack

    check_stack_args(args)
    with tun_stack(args) as stack:
        netapi.set_hosts(stack, {"host": str(ipaddress.IPv4Interface(args.host_addr).ip)})
        with stack:
            try:
                yield stack
            finally:
                stack.close(linger=linger)


# ---------------------------------------------------------------------------------------- the patch
def _stack_socket_class():
    from .socket import socket as StackSocket
    from .udpsocket import udpsocket
    return (StackSocket, udpsocket)  # isinstance(x, socket.socket) holds for both under the patch


class SocketPatch:
    """Replaces the ``socket`` module's names with stack-backed ones; ``restore()`` undoes it."""

    def __init__(self, stack):
        self.stack = stack
        self.sockets: "weakref.WeakSet" = weakref.WeakSet()  # stack sockets made through the patch
        self._saved = None

    def install(self) -> "SocketPatch":
        stack, patch = self.stack, self
        StackSocket = _stack_socket_class()
        real_socket = _REAL["socket"]

        class _Meta(type):
            def __instancecheck__(cls, obj):
                return isinstance(obj, (real_socket, StackSocket))

            def __subclasscheck__(cls, sub):
                return issubclass(sub, (real_socket, StackSocket))

        class socket(metaclass=_Meta):  # noqa: N801 - the standard library's name
            """``socket.socket`` under ``tunstack run``: AF_INET on the stack, the rest in the kernel."""

            def __new__(cls, family=-1, type=-1, proto=-1, fileno=None):
                return patch.make_socket(family, type, proto, fileno)

        def fromfd(fd, family, type, proto=0):
            if any(s.fileno() == fd for s in list(patch.sockets)):
                raise OSError(errno.EOPNOTSUPP, "tunstack run: a stack socket's fileno() is a readiness "
                                                "fd, not a socket: it cannot be duplicated with fromfd()")
            return _REAL["fromfd"](fd, family, type, proto)

        names = {
            "socket": socket,
            "fromfd": fromfd,
            "getaddrinfo": lambda host, port, family=0, type=0, proto=0, flags=0:
                netapi.getaddrinfo(stack, host, port, family, type, proto, flags),
            "gethostbyname": lambda name: netapi.gethostbyname(stack, name),
            "gethostbyname_ex": lambda name: netapi.gethostbyname_ex(stack, name),
            "getfqdn": lambda name="": netapi.getfqdn(stack, name),
            "create_connection": lambda address, timeout=_std._GLOBAL_DEFAULT_TIMEOUT, source_address=None, **kw:
                netapi.create_connection(stack, address, timeout, source_address, **kw),
            "create_server": lambda address, **kw: netapi.create_server(stack, address, **kw),
        }
        self._saved = {name: getattr(_std, name) for name in names}
        for name, value in names.items():
            setattr(_std, name, value)
        self._patch_ssl(StackSocket)
        return self

    def make_socket(self, family=-1, type=-1, proto=-1, fileno=None):
        if fileno is not None:
            return _REAL["socket"](family, type, proto, fileno)
        family = _std.AF_INET if family == -1 else family
        type = _std.SOCK_STREAM if type == -1 else type
        if family == _std.AF_INET6:
            raise OSError(errno.EAFNOSUPPORT, "tunstack run: the stack is IPv4 only (AF_INET6 is not available)")
        if family != _std.AF_INET:
            return _REAL["socket"](family, type, proto)  # AF_UNIX, AF_NETLINK, ...: the kernel's
        sock = self.stack.socket(family, type & ~_TYPE_FLAGS, 0 if proto == -1 else proto)
        if type & getattr(_std, "SOCK_NONBLOCK", 0):
            sock.setblocking(False)
        self.sockets.add(sock)
        return sock

    def _patch_ssl(self, StackSocket) -> None:
        try:
            import ssl
        except ImportError:
            return
        real_wrap = ssl.SSLContext.wrap_socket

        def wrap_socket(ctx, sock, *args, **kw):
            if isinstance(sock, StackSocket):  # no kernel fd for OpenSSL: the same context over memory BIOs
                return tls.wrap_socket(sock, ctx, *args, **kw)
            return real_wrap(ctx, sock, *args, **kw)

        self._saved_ssl = (ssl.SSLContext, real_wrap)
        ssl.SSLContext.wrap_socket = wrap_socket

    def restore(self) -> None:
        if self._saved:
            for name, value in self._saved.items():
                setattr(_std, name, value)
            self._saved = None
        if getattr(self, "_saved_ssl", None):
            cls, real = self._saved_ssl
            cls.wrap_socket = real
            self._saved_ssl = None

    def __enter__(self):
        return self.install()

    def __exit__(self, *exc):
        self.restore()


# ---------------------------------------------------------------------------------------- running
def run_program(args) -> int:
    """Run ``-m``/``-c``/script as ``python`` would; the exit status it would have."""
    if args.module:
        sys.argv = [args.module, *args.args]
        sys.path.insert(0, os.getcwd())
        return _exit_status(lambda: _run_module(args.module))
    if args.code is not None:
        sys.argv = ["-c", *args.args]
        sys.path.insert(0, "")
        return _exit_status(lambda: exec(compile(args.code, "<string>", "exec"), {"__name__": "__main__"}))
    script = args.args[0]
    sys.argv = list(args.args)
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    return _exit_status(lambda: runpy.run_path(script, run_name="__main__"))


def _run_module(name: str) -> None:
    """``python -m name``: a module that is not there, or a package without ``__main__``, is one line
    on stderr and status 1, as ``python`` says it (runpy's own ImportError would be a traceback);
    the parent packages are imported here, with the stack in place, as runpy would import them."""
    try:
        spec = importlib.util.find_spec(name)
    except ModuleNotFoundError:  # a missing parent package
        spec = None
    if spec is None:
        raise SystemExit(f"tunstack: run: no module named {name}")
    if spec.submodule_search_locations is not None:  # a package runs its __main__
        try:
            main = importlib.util.find_spec(name + ".__main__")
        except ModuleNotFoundError:
            main = None
        if main is None:
            raise SystemExit(f"tunstack: run: no module named {name}.__main__; "
                             f"{name!r} is a package and cannot be directly executed")
    runpy.run_module(name, run_name="__main__", alter_sys=True)


def _exit_status(body) -> int:
    try:
        body()
    except SystemExit as exc:
        code = exc.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code
        print(code, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BaseException:  # noqa: BLE001 - reported as python would, then our status
        traceback.print_exc()
        return 1
    _join_program_threads()
    return 0


def _join_program_threads() -> None:
    """What the interpreter does at exit: wait for the program's non-daemon threads."""
    for t in threading.enumerate():
        if t is not threading.main_thread() and not t.daemon and t.is_alive():
            t.join()


def _on_sigterm(signum, frame):
    """SIGTERM does what SIGINT (Ctrl-C) would: the program's own handler if it has one
    (asyncio.run cancels its main task), else KeyboardInterrupt in the main thread."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process at once
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler) and handler is not signal.default_int_handler:
        return handler(signal.SIGINT, frame)
    raise KeyboardInterrupt


def cmd_run(args) -> int:
    from .cliargs import CliError
    if args.module is None and args.code is None:
        if not args.args:
            raise CliError("run: give a program: -m MODULE, -c CODE or SCRIPT [ARGS...]")
        if not os.path.isfile(args.args[0]):
            raise CliError(f"run: no such script: {args.args[0]!r}")
    if args.module is not None and args.code is not None:
        raise CliError("run: -m and -c exclude each other")
    if args.module is not None and (not args.module or args.module.startswith(".")):
        raise CliError(f"run: -m needs an absolute module name (as python's -m): {args.module!r}")
    with open_stack(args) as stack:
        print(f"tunstack: running on {args.addr} via {args.tun} (host side {args.host_addr}, mtu {args.mtu})",
              file=sys.stderr, flush=True)
        signal.signal(signal.SIGTERM, _on_sigterm)
        with SocketPatch(stack):
            status = run_program(args)
        sys.stdout.flush()
    return status


def _split_program(parser: argparse.ArgumentParser, argv: list[str]) -> int:
    """Index where the program starts: the first -m/-c or non-option token (stack options before it)."""
    i = 0
    while i < len(argv):
        tok = argv[i]
        if tok in ("-m", "-c") or not tok.startswith("-") or tok == "-":
            return i
        if tok == "--":
            return i + 1
        action = parser._option_string_actions.get(tok)
        i += 2 if action is not None and action.nargs != 0 else 1
    return i


def _run_parser_class():
    from .cliargs import _Parser

    class RunParser(_Parser):
        """Stack options first; from -m/-c/SCRIPT on, everything belongs to the program (as python's own)."""

        def parse_known_args(self, args=None, namespace=None):
            args = list(sys.argv[1:] if args is None else args)
            i = _split_program(self, args)
            head, tail = args[:i], args[i:]
            if args[i - 1:i] == ["--"]:
                head = head[:-1]
            ns, extras = super().parse_known_args(head, namespace)
            ns.args = tail
            if tail[:1] in (["-m"], ["-c"]):
                if len(tail) < 2:
                    self.error(f"argument {tail[0]}: expected one argument")
                setattr(ns, "module" if tail[0] == "-m" else "code", tail[1])
                ns.args = tail[2:]
            return ns, extras

    return RunParser


RUN_HELP = "run a Python program (script, -m module, -c code) with its sockets on the stack"
RUN_DESCRIPTION = (
    "Bring up a TUN device and the stack as 'serve' does, then run an unmodified Python program in this "
    "interpreter with the socket module's AF_INET sockets, getaddrinfo, create_connection and create_server "
    "on the userspace stack (socketserver, http.server, http.client, urllib, asyncio, selectors follow). "
    "Names: 'localhost'/'tunstack' = the stack, 'host' = the TUN's host side. TLS (ssl) works over the stack's sockets. "
    "Stack options come first; from -m/-c/SCRIPT on, the arguments are the program's. Exit status: the "
    "program's. Examples: tunstack run -m http.server 8000; tunstack run server.py ARGS; "
    "tunstack run -c \"import urllib.request; print(urllib.request.urlopen('http://host:8000/').read())\"")


def _configure(p: argparse.ArgumentParser) -> None:
    add_stack_arguments(p)
    p.add_argument("-m", dest="module", metavar="MODULE", help="run library module MODULE as a script")
    p.add_argument("-c", dest="code", metavar="CODE", help="run the program passed as a string")
    p.add_argument("args", nargs="*", metavar="SCRIPT|ARGS",
                   help="the script and its arguments (or the arguments of -m/-c)")
    p.set_defaults(func=cmd_run)


def run_parser() -> argparse.ArgumentParser:
    """A standalone ``tunstack run`` parser (what ``register`` adds under ``tunstack``)."""
    p = _run_parser_class()(prog="tunstack run", description=RUN_DESCRIPTION,
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _configure(p)
    return p


def register(sub) -> None:
    """Add ``run`` to the ``tunstack`` subcommands."""
    p = sub.add_parser("run", help=RUN_HELP, description=RUN_DESCRIPTION,
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.__class__ = _run_parser_class()  # argparse builds subparsers itself; this one splits off the program
    _configure(p)
