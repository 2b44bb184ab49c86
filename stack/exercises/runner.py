"""Grade one exercise: the parent side (``grade``) and the child process that runs the student's code.

The student's code runs in a child process (``python -m stack.exercises.runner``): each check
has its own time limit (SIGALRM in the child), the child's memory is capped, and the parent
has a wall-clock limit over the whole run, so an endless loop, a crash of the interpreter or
a runaway allocation costs the checks it hits and never the checker. The child writes one
JSON line per finished check; whatever it did not finish is reported as a time limit.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field

from .framework import DEFAULT_E2E_BYTES, CheckResult, Exercise, LoadError, check_limit, load_part, run_checks

CHILD_MEMORY_LIMIT = 2 << 30  # bytes of address space for the student's process
SLACK = 20.0                  # seconds on top of the checks' own limits (interpreter start-up, imports)


@dataclass
class Report:
    exercise: Exercise
    path: str | None                  # the student's file; None: the reference was graded
    results: list[CheckResult] = field(default_factory=list)
    load_error: str = ""

    @property
    def total(self) -> int:
        return sum(r.weight for r in self.results if not r.skipped) if not self.load_error else \
            sum(c.weight for c in self.exercise.checks)

    @property
    def earned(self) -> int:
        return sum(r.weight for r in self.results if r.passed and not r.skipped)

    @property
    def score(self) -> float:
        return 100.0 * self.earned / self.total if self.total else 0.0

    @property
    def full(self) -> bool:
        return not self.load_error and self.total > 0 and self.earned == self.total

    def result(self, name: str) -> CheckResult:
        for r in self.results:
            if r.name == name:
                return r
        raise KeyError(name)

    def as_dict(self) -> dict:
        ex = self.exercise
        return {"exercise": ex.number, "slug": ex.slug, "title": ex.title, "lab": ex.lab,
                "clauses": ex.clauses, "wired": ex.wired, "file": self.path,
                "load_error": self.load_error or None, "score": round(self.score, 1),
                "earned": self.earned, "total": self.total, "full": self.full,
                "checks": [r.as_dict() for r in self.results]}


def student_path(ex: Exercise, directory: str | None) -> str | None:
    if directory is None:
        return None
    return os.path.join(os.path.abspath(directory), ex.filename)


def grade(ex: Exercise, directory: str | None = None, *, only=None, e2e_bytes: int = DEFAULT_E2E_BYTES,
          isolate: bool = True, time_limit: float | None = None, slack: float = SLACK,
          real_tun: bool = True) -> Report:
    """Grade the student's file in ``directory`` (or the reference when None).

    ``isolate``: run the student's code in a child process (the default; False runs it here,
    for the checker's own tests). ``time_limit`` lowers every check's limit; ``slack`` is the
    child's allowance for start-up on top of the checks' limits."""
    path = student_path(ex, directory)
    report = Report(ex, path)
    if path is not None and not os.path.isfile(path):
        report.load_error = f"{path}: no such file (write it with 'tunstack exercise start {ex.number} DIR')"
        return report
    if not isolate:
        try:
            part = ex.reference() if path is None else load_part(ex, path)
        except LoadError as exc:
            report.load_error = str(exc)
            return report
        options = {"e2e_bytes": e2e_bytes, "time_limit": time_limit, "real_tun": real_tun}
        report.results = list(run_checks(ex, part, only=only, options=options, path=path))
        return report
    return _grade_in_child(report, only, e2e_bytes, time_limit, slack, real_tun)


def _grade_in_child(report: Report, only, e2e_bytes: int, time_limit, slack: float, real_tun: bool) -> Report:
    ex = report.exercise
    checks = [c for c in ex.checks if not only or c.name in only]
    limit = sum(check_limit(c, time_limit) for c in checks) + slack
    cmd = [sys.executable, "-m", "stack.exercises.runner", str(ex.number), report.path or "-",
           "--e2e-bytes", str(e2e_bytes)] + (["--only", ",".join(only)] if only else []) \
        + (["--time-limit", str(time_limit)] if time_limit else []) + ([] if real_tun else ["--no-tun"])
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=_limit_child)
    try:
        out, err = proc.communicate(timeout=limit)
        timed_out = False
    except subprocess.TimeoutExpired:
        proc.kill()  # our own child, by its handle
        out, err = proc.communicate()
        timed_out = True
    done = {}
    for line in out.splitlines():
        try:
            msg = json.loads(line)
        except ValueError:
            continue  # the student's own prints
        if "load_error" in msg:
            report.load_error = msg["load_error"]
            return report
        if "name" in msg:
            done[msg["name"]] = CheckResult(**{k: msg[k] for k in CheckResult.__dataclass_fields__})
    for c in checks:
        if c.name in done:
            report.results.append(done[c.name])
            continue
        why = (f"the whole run was stopped after {time.monotonic() - start:.0f} s" if timed_out else
               f"the checking process died (exit status {proc.returncode})")
        tail = "\n".join(err.strip().splitlines()[-12:])
        report.results.append(CheckResult(c.name, c.kind, c.weight, False, trace=[f"    {why}"],
                                          error=tail if not timed_out else ""))
    return report


def _limit_child() -> None:
    try:
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (CHILD_MEMORY_LIMIT, CHILD_MEMORY_LIMIT))
    except (ImportError, ValueError, OSError):
        pass


def _child(argv: list[str]) -> int:
    import argparse

    from .catalog import find
    p = argparse.ArgumentParser(prog="stack.exercises.runner")
    p.add_argument("exercise")
    p.add_argument("path")
    p.add_argument("--e2e-bytes", type=int, default=DEFAULT_E2E_BYTES)
    p.add_argument("--only", default="")
    p.add_argument("--time-limit", type=float, default=None)
    p.add_argument("--no-tun", action="store_true")
    args = p.parse_args(argv)
    ex = find(args.exercise)
    path = None if args.path == "-" else args.path
    real_stdout = sys.stdout
    sys.stdout = sys.stderr  # the student's prints must not mix with the results
    if path is not None:
        sys.path.insert(0, os.path.dirname(path))  # the student's own helper modules, next to the file
    try:
        part = ex.reference() if path is None else load_part(ex, path)
    except LoadError as exc:
        print(json.dumps({"load_error": str(exc)}), file=real_stdout, flush=True)
        return 0
    only = [n for n in args.only.split(",") if n] or None
    options = {"e2e_bytes": args.e2e_bytes, "time_limit": args.time_limit, "real_tun": not args.no_tun}
    for res in run_checks(ex, part, only=only, options=options, path=path):
        print(json.dumps(res.as_dict()), file=real_stdout, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
