"""The ``tunstack`` command (also ``python -m stack``)."""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading

from .cliargs import (  # noqa: F401 (re-exported: tests and tools import them from here)
    DEFAULT_ADDR, DEFAULT_HOST_ADDR, CliError, _add_impairment_arguments, _directory, _ifname, _ipv4,
    _ipv4_cidr, _mtu, _Parser, _port, _seconds, check_stack_args, tun_stack,
)
from .cliargs import IW_HELP, _iw
from .tcp.config import TcpConfig


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tunstack",
        description="A pure-Python TCP/IP stack in user space over a Linux TUN device.")
    parser.add_argument("--version", action="version", version="tunstack 0.1.0")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    serve = sub.add_parser(
        "serve", help="run the stack on a TUN device with HTTP/echo/discard servers",
        description="Create a TUN device in the current network namespace, give the host side an address, "
                    "and run the userspace stack behind it until SIGINT/SIGTERM. Needs CAP_NET_ADMIN (root). "
                    "Prints 'tunstack: serving ...' when ready; on SIGUSR1 prints its connections, like ss -ti. "
                    "On SIGINT/SIGTERM it stops gracefully (see --drain), removes the device and exits 0.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    serve.add_argument("--tun", type=_ifname, default="tun0", metavar="NAME", help="TUN device name to create")
    serve.add_argument("--addr", type=_ipv4, default=DEFAULT_ADDR, help="the stack's own IPv4 address")
    serve.add_argument("--host-addr", type=_ipv4_cidr, default=DEFAULT_HOST_ADDR, metavar="ADDR/PREFIX",
                       help="address and prefix of the host (kernel) side of the TUN")
    serve.add_argument("--mtu", type=_mtu, default=1500, help="MTU of the TUN device and the stack")
    serve.add_argument("--http", type=_port, metavar="PORT", help="serve --root over HTTP/1.1 on this port")
    serve.add_argument("--root", type=_directory, default=".", metavar="DIR", help="directory the HTTP server serves")
    serve.add_argument("--http-mode", choices=("threads", "epoll"), default="threads",
                       help="HTTP server style: a pool of threads blocking in accept() and recv() (the standard "
                            "library's handler), or one thread on stack.epoll with non-blocking sockets")
    serve.add_argument("--wsgi", metavar="MODULE:APP",
                       help="serve this WSGI application (wsgiref over the stack's sockets, a thread pool) on "
                            "the --http port (80 if not given) instead of --root; MODULE is imported from the "
                            "current directory, APP may be dotted (pkg.web:make_app() is not supported)")
    serve.add_argument("--drain", type=_seconds, default=5.0, metavar="SECONDS",
                       help="on SIGINT/SIGTERM: stop accepting, let the servers finish their responses and close "
                            "with FIN, wait up to this long for every connection to finish, then reset what is "
                            "left; a second signal resets them at once")
    serve.add_argument("--echo", type=_port, metavar="PORT", help="run an echo server (RFC 862) on this port")
    serve.add_argument("--echo-mode", choices=("threads", "epoll"), default="threads",
                       help="echo server style: a blocking thread per connection, or one thread on stack.epoll")
    serve.add_argument("--udp-echo", type=_port, metavar="PORT", help="run a UDP echo server (RFC 862) on this port")
    serve.add_argument("--discard", type=_port, metavar="PORT", help="run a discard server (RFC 863) on this port")
    serve.add_argument("--cc", default=None, metavar="NAME",
                       help="congestion control for every connection (reno, newreno, cubic; default: cubic)")
    serve.add_argument("--iw", type=_iw, default=None, metavar="SEGMENTS", help=IW_HELP)
    serve.add_argument("--mem-limit", type=_mem_limit, default=argparse.SUPPRESS, metavar="SIZE",
                       help="budget for all TCP buffers together (send, receive, out-of-order), like Linux's "
                            "tcp_mem: above 2/3 of it buffers stop growing, windows stay small and "
                            "out-of-order data is dropped; above it new data is dropped and send() blocks "
                            "(each connection keeps 4 KiB per buffer). Units as 64MiB, 200M, 1G; "
                            f"default {TcpConfig.mem_limit >> 20} MiB. SIGUSR1 shows the usage")
    serve.add_argument("--allocator", choices=("pymalloc", "malloc"), default="pymalloc",
                       help="CPython's memory allocator for the server. pymalloc (default, faster) keeps "
                            "most memory a burst of connections used; malloc re-executes the server once "
                            "under PYTHONMALLOC=malloc, whose freed pages go back to the OS after the "
                            "burst (about a third fewer new connections per second on this machine). "
                            "A PYTHONMALLOC already set wins")
    serve.add_argument("--pcap", metavar="FILE", help="write every packet the stack sends and receives to FILE")
    serve.add_argument("--trace", metavar="FILE", help="write trace events (JSON lines) to FILE")
    serve.add_argument("--quiet", action="store_true", help="do not log each HTTP request to stderr")
    serve.add_argument("--offload", action="store_true",
                       help="TUN offloads (IFF_VNET_HDR): the kernel finishes checksums and splits/merges "
                            "64 KiB TCP super-segments (TSO/GRO); much faster, pcaps show super-segments; "
                            "not with impairment")
    _add_impairment_arguments(serve)
    serve.set_defaults(func=cmd_serve)

    ladder = sub.add_parser("ladder", help="print a pcap file as a ladder diagram of TCP segments",
                            description="Read a pcap written by 'tunstack serve --pcap' (or tcpdump -w on the "
                                        "TUN) and print one line per TCP segment: direction, flags, relative "
                                        "seq/ack, window, length, options (SACK blocks too); retransmissions "
                                        "are marked, and with --trace the segments the impairment dropped "
                                        "end in ×.")
    ladder.add_argument("pcap", metavar="FILE.pcap", help="pcap file to read")
    ladder.add_argument("--addr", type=_ipv4, default=DEFAULT_ADDR, help="the stack's address (for direction)")
    ladder.add_argument("--trace", metavar="FILE.jsonl",
                        help="trace of the same run (serve --trace): show the segments the impairment dropped")
    ladder.add_argument("--conn", metavar="CONN", help="only this connection: PORT, IP:PORT or IP:PORT-IP:PORT")
    ladder.add_argument("--from", dest="t_from", metavar="SECONDS", help="only rows at or after this time")
    ladder.add_argument("--to", dest="t_to", metavar="SECONDS", help="only rows at or before this time")
    ladder.add_argument("--ts", action="store_true", help="show timestamps on every segment (default: SYNs only)")
    ladder.set_defaults(func=cmd_ladder)

    plot = sub.add_parser("plot", add_help=False,
                          help="draw a time-sequence graph (from a pcap) or cwnd/RTT (from a trace) as PNG; "
                               "'tunstack plot --help' for more")
    plot.add_argument("rest", nargs=argparse.REMAINDER)
    plot.set_defaults(func=cmd_plot)

    from .pktscript.cli import add_subcommand as add_script_command
    add_script_command(sub)
    from .exercises import cli as exercises_cli  # builds argparse parsers only; grading is imported on use
    exercises_cli.add_to(sub.add_parser("exercise", help="build-it-yourself exercises: list, start N DIR, check N [DIR]",
                                        description=exercises_cli.DESCRIPTION))
    from . import clients, run  # run, get, nc: programs and clients over the stack
    run.register(sub)
    clients.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["plot"]:  # its own parser takes everything after it, --help included
        return cmd_plot(argparse.Namespace(rest=argv[1:]))
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except CliError as exc:
        print(f"tunstack: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


# ---------------------------------------------------------------------------------------------- serve
def cmd_serve(args) -> int:
    if args.allocator == "malloc":
        from .runtime.memtrim import use_libc_malloc
        use_libc_malloc()  # memory freed after a burst of connections goes back to the OS (memtrim.py)
    check_stack_args(args)
    if args.wsgi and args.http_mode == "epoll":
        raise CliError("--wsgi runs in the thread pool: it cannot be combined with --http-mode epoll")
    if args.wsgi:
        args.wsgi_app = load_wsgi_app(args.wsgi)
        args.http = args.http or 80
    with tun_stack(args) as stack:
        return _run_servers(stack, args)


class _Signals:
    """SIGINT/SIGTERM: the first asks for a graceful stop, the second for an immediate one."""

    def __init__(self):
        self.stop = threading.Event()
        self.force = threading.Event()
        self.show = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_stop)
        signal.signal(signal.SIGUSR1, lambda *_: self.show.set())

    def _on_stop(self, *_):
        (self.force if self.stop.is_set() else self.stop).set()


def _start_servers(stack, args) -> list:
    from .apps.servers import discard_server, echo_server, http_server, wsgi_server
    servers = []
    try:
        if args.wsgi:
            servers.append((f"wsgi {args.wsgi}", args.http, wsgi_server(stack, args.http, args.wsgi_app, args.quiet)))
        elif args.http and args.http_mode == "epoll":
            from .apps.epoll_http import EpollHTTPServer
            servers.append(("http (epoll)", args.http, EpollHTTPServer(stack, args.http, args.root, args.quiet)))
        elif args.http:
            servers.append(("http", args.http, http_server(stack, args.http, args.root, args.quiet)))
        if args.echo and args.echo_mode == "epoll":
            from .apps.epoll_echo import EpollEchoServer
            servers.append(("echo (epoll)", args.echo, EpollEchoServer(stack, args.echo)))
        elif args.echo:
            servers.append(("echo", args.echo, echo_server(stack, args.echo, args.quiet)))
        if args.udp_echo:
            from .apps.udp_echo import UdpEchoServer
            servers.append(("udp echo", args.udp_echo, UdpEchoServer(stack, args.udp_echo)))
        if args.discard:
            servers.append(("discard", args.discard, discard_server(stack, args.discard, args.quiet)))
    except OSError as exc:
        raise CliError(f"cannot listen: {exc}") from None
    for _, _, server in servers:
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    return servers


def load_wsgi_app(spec: str):
    """``module:attr`` (attr may be dotted) -> the callable; CliError with one line otherwise."""
    import importlib
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise CliError(f"--wsgi wants MODULE:APP, e.g. myapp:application, not {spec!r}")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as gunicorn and flask do: the module comes from here
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise CliError(f"--wsgi {spec}: no module named {exc.name!r} (looked in {os.getcwd()} "
                           "and on sys.path)") from None
        raise CliError(f"--wsgi {spec}: importing {module_name!r} failed: {type(exc).__name__}: {exc}") from None
    except Exception as exc:  # the user's module raised while importing: say what, in one line
        raise CliError(f"--wsgi {spec}: importing {module_name!r} failed: {type(exc).__name__}: {exc}") from None
    app = module
    for part in attr.split("."):
        try:
            app = getattr(app, part)
        except AttributeError:
            raise CliError(f"--wsgi {spec}: {module_name!r} has no attribute {attr!r}") from None
    if not callable(app):
        raise CliError(f"--wsgi {spec}: {attr!r} is not a callable WSGI application "
                       f"(its type is {type(app).__name__})")
    return app


def _run_servers(stack, args) -> int:
    signals = _Signals()
    with stack:
        servers = _start_servers(stack, args)
        if not servers:
            print("tunstack: no --http/--echo/--discard given: the stack answers ping and refuses TCP",
                  file=sys.stderr)
        what = ", ".join(f"{name} :{port}" for name, port, _ in servers) or "ping only"
        print(f"tunstack: serving on {args.addr} via {args.tun} (host side {args.host_addr}, mtu {args.mtu}): {what}",
              flush=True)
        while not signals.stop.wait(1.0):  # SIGINT/SIGTERM wake it; SIGUSR1, a failed loop: within 1 s
            if stack.loop_error is not None:
                raise CliError(f"stack thread failed: {stack.loop_error!r}")
            if signals.show.is_set():
                signals.show.clear()
                with stack.lock:
                    memory = stack.host.tcp.memory.summary()
                print(format_connections(stack.connections(), memory), file=sys.stderr, flush=True)
        _shut_down(stack, servers, args.drain, signals.force)
        _print_summary(stack)
    return 0


def _shut_down(stack, servers, drain: float, force: threading.Event) -> None:
    """Graceful stop: close the listeners, let the applications finish their responses and close
    (FIN), wait up to ``drain`` s for every connection to finish, then reset what is left."""
    for _, _, server in servers:
        server.stop_accepting()
    for _, _, server in servers:
        server.drain()
    busy = len(stack.unfinished())
    if busy:
        print(f"tunstack: shutting down: not accepting; draining {busy} connection(s) for up to {drain:g} s "
              "(signal again to reset them now)", file=sys.stderr, flush=True)
    else:
        print("tunstack: shutting down", file=sys.stderr, flush=True)
    stack.drain(drain, cancel=force)
    reset = stack.abort_all("drain bound reached" if not force.is_set() else "second signal")
    if reset:
        why = "on the second signal" if force.is_set() else f"after the {drain:g} s drain"
        print(f"tunstack: reset {reset} connection(s) still open {why}", file=sys.stderr, flush=True)
    elif busy:
        print(f"tunstack: all {busy} connection(s) finished", file=sys.stderr, flush=True)
    for _, _, server in servers:
        server.stop()


def _mem_limit(text: str) -> int:
    from .units import parse_size
    try:
        value = parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if value < 1 << 20:
        raise argparse.ArgumentTypeError(f"{text!r}: the TCP memory limit must be at least 1 MiB")
    return value


def format_memory(mem: dict) -> str:
    """The budget's header line: in use / limit (memory.py), its state, thresholds and peak."""
    mib = lambda n: f"{n / (1 << 20):.1f} MiB"  # noqa: E731
    return (f"tcp memory: {mib(mem['used'])} in use / limit {mib(mem['limit'])} ({mem['state']}; "
            f"pressure above {mib(mem['pressure_at'])}, ends below {mib(mem['low'])}; "
            f"peak {mib(mem['peak'])}, pressure entered {mem['pressures']} times)")


def format_connections(infos: list[dict], memory: dict | None = None) -> str:
    """An ``ss -tim``-like table (``kill -USR1 <pid>`` of a running ``tunstack serve`` prints it): the
    memory budget, then per connection its queues and, as ss -m's skmem, rb (receive buffer size),
    tb (send buffer size) and ofo (out-of-order octets)."""
    from .units import format_ssthresh
    head = f"{'State':<12} {'Local':<21} {'Peer':<21} {'Send-Q':>8} {'Recv-Q':>8}"
    lines = [f"tunstack: {len(infos)} connection(s)"] + ([format_memory(memory)] if memory else []) + [head]
    for i in sorted(infos, key=lambda i: (i["state"], i["local"], i["remote"])):
        lines.append(f"{i['state']:<12} {i['local']:<21} {i['remote']:<21} {i['sndbuf']:>8} {i['rcvbuf']:>8}")
        srtt = f"{i['srtt'] * 1000:.3f}ms" if i.get("srtt") is not None else "-"
        lines.append(f"\t {i['cc']} wscale:{i['wscale'][0]},{i['wscale'][1]} rto:{i['rto'] * 1000:.0f}ms "
                     f"rtt:{srtt} mss:{i['mss']} cwnd:{i['cwnd']} ssthresh:{format_ssthresh(i['ssthresh'])} "
                     f"snd_wnd:{i['snd_wnd']} rcv_wnd:{i['rcv_wnd']} unacked:{i['unacked']} "
                     f"retrans:{i['retrans']} segs_out:{i['segs_out']} segs_in:{i['segs_in']}"
                     f"{' ts' if i['ts'] else ''}{' sack' if i['sack'] else ''}{_skmem(i)}")
    return "\n".join(lines)


def _skmem(i: dict) -> str:
    """ss -m's skmem: r/t octets held in the receive/send buffer, rb/tb their sizes (payload octets;
    Linux's count bookkeeping too), ofo the out-of-order queue. A TIME-WAIT record has none."""
    if "rcvbuf_cap" not in i:
        return ""
    return f" skmem:(r{i['rcvbuf']},rb{i['rcvbuf_cap']},t{i['sndbuf']},tb{i['sndbuf_cap']},ofo{i['ofo_bytes']})"


def _print_summary(stack) -> None:
    stats = {k: v for k, v in stack.stats().items() if v}
    print("tunstack: stats " + json.dumps(stats, sort_keys=True), file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------- ladder
def cmd_ladder(args) -> int:
    from .ladder import ladder_main
    if not os.path.exists(args.pcap):
        raise CliError(f"no such file: {args.pcap!r}")
    argv = [args.pcap, "--stack-addr", args.addr]
    for flag, value in (("--trace", args.trace), ("--conn", args.conn), ("--from", args.t_from),
                        ("--to", args.t_to)):
        if value is not None:
            argv += [flag, value]
    return ladder_main(argv + (["--ts"] if args.ts else []))


# ---------------------------------------------------------------------------------------------- plot
def cmd_plot(args) -> int:
    from .plot import plot_main
    return plot_main(args.rest)
