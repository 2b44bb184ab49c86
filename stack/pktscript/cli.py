"""``tunstack script [--verbose] FILE...``: run packet scripts, print PASS/FAIL with diffs, exit 0 iff all pass."""
from __future__ import annotations

import sys


def add_subcommand(sub) -> None:
    p = sub.add_parser(
        "script", help="run packet scripts (packetdrill syntax) against the stack in virtual time",
        description="Run each FILE (packetdrill syntax: '0 < S 0:0(0) win 65535 <mss 1460>', "
                    "'+0 > S. 0:0(0) ack 1 <...>', 'accept(3, ..., ...) = 4') against tunstack's TCP "
                    "core in virtual time. Every segment the stack sends must match the next '>' line "
                    "(flags, seq range, ack, win, options, time); a missing, extra or different segment "
                    "fails the script with a diff. Exit status 0 only when every script passes. "
                    "See docs/packet-scripts.md.")
    p.add_argument("files", nargs="+", metavar="FILE", help="packet script(s), e.g. tests/scripts/*.pkt")
    p.add_argument("--verbose", "-v", action="store_true", help="print every segment and call as it runs")
    p.add_argument("--against", choices=("tunstack", "linux"), default="tunstack",
                   help="the stack under test: tunstack's core in virtual time (default), or the Linux "
                        "kernel in a private network namespace over a TUN, in real time (needs root)")
    p.set_defaults(func=main)


def main(args) -> int:
    from .parse import ScriptError, parse_file
    from .run import run_script

    failed = 0
    for path in args.files:
        try:
            script = parse_file(path)
        except ScriptError as exc:
            print(f"tunstack script: {exc}", file=sys.stderr)
            failed += 1
            continue
        if args.verbose:
            print(f"{path}:")
        if args.against == "linux":
            from .linux import run_against_linux
            result = run_against_linux(script, verbose=args.verbose, echo=print)
        else:
            result = run_script(script, verbose=args.verbose, echo=print)
        if result.ok:
            print(f"PASS {path}")
        else:
            failed += 1
            print(f"FAIL {result.message}")
    if len(args.files) > 1:
        print(f"{len(args.files) - failed} passed, {failed} failed")
    return 1 if failed else 0
