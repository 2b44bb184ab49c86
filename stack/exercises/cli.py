"""``tunstack exercise``: list the exercises, start one (write its skeleton), check a solution."""
from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap

from .catalog import exercises, find
from .framework import DEFAULT_E2E_BYTES


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="tunstack exercise", description=DESCRIPTION)
    add_to(p)
    return p


DESCRIPTION = ("Build-it-yourself mode: implement a part of TCP, and the checker grades it "
               "with the stack's own code around it (see docs/exercises.md).")


def add_to(p: argparse.ArgumentParser) -> None:
    """Add list/start/check to ``p`` (this module's own parser, or ``tunstack exercise`` in stack/cli.py)."""
    sub = p.add_subparsers(dest="action", metavar="ACTION", parser_class=type(p))
    sub.required = True
    ls = sub.add_parser("list", help="the exercises in course order, with their RFC clauses and labs",
                        description="The exercises in course order: number, name, lab, the RFC clauses "
                                    "to read, and whether the part is already wired into the stack.")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.set_defaults(func=_guarded(cmd_list))
    st = sub.add_parser("start", help="write an exercise's skeleton into DIR",
                        description="Write the skeleton of exercise N (signatures, docstrings, the clauses "
                                    "to read, TODOs; no solution) into DIR. Never overwrites a file.")
    st.add_argument("exercise", metavar="N", help="exercise number or name (see 'list')")
    st.add_argument("directory", metavar="DIR", help="where to write it (created if missing)")
    st.set_defaults(func=_guarded(cmd_start))
    ck = sub.add_parser("check", help="grade the solution in DIR (no DIR: grade the reference)",
                        description="Run exercise N's graded checks with your part swapped in and the "
                                    "stack's reference for everything else: unit scenarios, packet-exact "
                                    "scenarios in virtual time, then an end-to-end transfer through the "
                                    "simulator under loss and, as root, a curl download over a real TUN "
                                    "(in a network namespace of its own). Each failure is printed as a "
                                    "step trace. Exit status 0 only at full score. Without DIR the "
                                    "reference implementation is graded (a teacher's sanity check).")
    ck.add_argument("exercise", metavar="N", help="exercise number or name (see 'list')")
    ck.add_argument("directory", metavar="DIR", nargs="?", help="the directory holding your file")
    ck.add_argument("--json", action="store_true", help="one JSON report on stdout, for a grading system")
    ck.add_argument("--only", metavar="CHECK", action="append", help="run only this check (repeatable)")
    ck.add_argument("--e2e-bytes", type=_size, default=DEFAULT_E2E_BYTES, metavar="N",
                    help="bytes in the end-to-end transfer (default 4 MiB; suffixes k, M)")
    ck.add_argument("--no-tun", action="store_true",
                    help="skip the real-TUN curl run (it needs root; without root it is skipped anyway)")
    ck.set_defaults(func=_guarded(cmd_check))


def _size(text: str) -> int:
    mult = {"k": 1 << 10, "K": 1 << 10, "m": 1 << 20, "M": 1 << 20}.get(text[-1:], 1)
    try:
        value = int(text[:-1] if mult != 1 else text) * mult
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive: {text!r}")
    return value


class UsageError(Exception):
    pass


def _exercise(key: str):
    try:
        return find(key)
    except KeyError:
        names = ", ".join(f"{e.number} ({e.slug})" for e in exercises())
        raise UsageError(f"no exercise {key!r}; choose one of {names}") from None


def cmd_list(args) -> int:
    exs = exercises()
    if args.json:
        print(json.dumps([{"number": e.number, "slug": e.slug, "title": e.title, "lab": e.lab,
                           "clauses": e.clauses, "file": e.filename, "wired": e.wired,
                           "checks": [c.name for c in e.checks]} for e in exs], indent=2))
        return 0
    for e in exs:
        lab = os.path.basename(e.lab).replace(".md", "")
        status = "" if e.wired else "   [graded on its own: the stack does not call this part yet]"
        print(f"{e.number}. {e.slug:12s} {e.title}  (lab {lab}){status}")
        print(f"   read: {'; '.join(e.clauses)}")
    return 0


def cmd_start(args) -> int:
    ex = _exercise(args.exercise)
    directory = os.path.abspath(args.directory)
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise UsageError(f"not a directory: {args.directory}")
    path = os.path.join(directory, ex.filename)
    if os.path.exists(path):
        raise UsageError(f"{path} exists already; it is left as it is (move it away to start over)")
    try:
        os.makedirs(directory, exist_ok=True)
        with open(path, "x", encoding="utf-8") as f:
            f.write(ex.skeleton)
    except OSError as exc:  # a directory that cannot be made or written (permissions, /proc, a full disk)
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    print(f"wrote {_shown(path)}")
    print(f"exercise {ex.number}: {ex.title}; read {'; '.join(ex.clauses)}; lab {ex.lab}")
    print(f"when you are done: tunstack exercise check {ex.number} {args.directory}")
    return 0


def cmd_check(args) -> int:
    from .runner import grade
    ex = _exercise(args.exercise)
    if args.directory is not None and not os.path.isdir(args.directory):
        raise UsageError(f"not a directory: {args.directory}")
    if args.only:
        unknown = [n for n in args.only if n not in {c.name for c in ex.checks}]
        if unknown:
            raise UsageError(f"exercise {ex.number} has no check {unknown[0]!r}; its checks: "
                             + ", ".join(c.name for c in ex.checks))
    report = grade(ex, args.directory, only=args.only, e2e_bytes=args.e2e_bytes, real_tun=not args.no_tun)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print_report(report)
    return 0 if report.full else 1


def _shown(path: str) -> str:
    """A path as the user would type it: relative to the current directory when inside it."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def print_report(report, file=None) -> None:
    out = file or sys.stdout
    ex = report.exercise
    w = lambda s="": print(s, file=out)  # noqa: E731
    w(f"exercise {ex.number}: {ex.title}")
    w(f"  read: {'; '.join(ex.clauses)}   lab: {ex.lab}")
    w(f"  grading: {_shown(report.path) if report.path else 'the reference implementation (no DIR given)'}")
    if not ex.wired:
        w(textwrap.fill(f"note: this part is graded on its own; {ex.wiring}", 100,
                        initial_indent="  ", subsequent_indent="    "))
    w()
    if report.load_error:
        w("cannot load your file:")
        w(textwrap.indent(report.load_error, "  "))
        w()
        w(f"score: 0/{report.total} (0 %)")
        return
    docs = {c.name: c.doc for c in ex.checks}
    for r in report.results:
        if r.skipped:
            w(f"  SKIP  {r.name:38s} {r.kind:6s}  ({r.skipped})")
            continue
        mark = "PASS" if r.passed else "FAIL"
        w(f"  {mark}  {r.name:38s} {r.kind:6s} {r.seconds:6.2f} s" + (f"  x{r.weight}" if r.weight > 1 else ""))
        if not r.passed:
            doc = " ".join((docs.get(r.name) or "").split())
            w(textwrap.fill(doc, 100, initial_indent=" " * 8, subsequent_indent=" " * 8))
            for line in r.trace:
                w("      " + line)
            if r.error:
                w(textwrap.indent(r.error, "        "))
            w()
    w()
    w(f"score: {report.earned}/{report.total} ({report.score:.0f} %)")


def _guarded(func):
    """A user's mistake is one line on stderr and exit status 1, never a traceback."""
    def run(args) -> int:
        try:
            return func(args)
        except UsageError as exc:
            print(f"tunstack exercise: {exc}", file=sys.stderr)
            return 1
    return run


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
