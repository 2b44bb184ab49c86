"""scripts/_bootstrap.sh, scripts/test, .ci/run and scripts/demo, run for real."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def run(argv, timeout=120, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, **kw)


def fake_repo(tmp_path: Path) -> Path:
    """A copy of the bootstrap beside a pyproject and a fake .venv python that logs calls."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "_bootstrap.sh", tmp_path / "scripts")
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    py = tmp_path / ".venv" / "bin" / "python"
    py.parent.mkdir(parents=True)
    py.write_text(f"#!/bin/sh\necho \"$*\" >> {tmp_path}/pip.log\n")
    py.chmod(0o755)
    return tmp_path


def bootstrap(repo: Path):
    return run(["bash", "-c", f"source {repo}/scripts/_bootstrap.sh && echo \"$TUNSTACK_PY\""])


def test_bootstrap_installs_only_when_pyproject_changes(tmp_path):
    repo = fake_repo(tmp_path)
    log, stamp = repo / "pip.log", repo / ".venv" / ".tunstack-pyproject.sha256"
    first = bootstrap(repo)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == str(repo / ".venv" / "bin" / "python")
    assert log.read_text().splitlines() == [
        "-m pip install -q --disable-pip-version-check -e .[test,plot]"]
    assert stamp.read_text().strip() == hashlib.sha256(
        (repo / "pyproject.toml").read_bytes()).hexdigest()
    again = bootstrap(repo)
    assert again.returncode == 0 and again.stderr == ""
    assert len(log.read_text().splitlines()) == 1  # unchanged pyproject: no pip
    with open(repo / "pyproject.toml", "a") as f:
        f.write("version = '2'\n")
    changed = bootstrap(repo)
    assert changed.returncode == 0 and "pyproject.toml changed" in changed.stderr
    assert len(log.read_text().splitlines()) == 2


def test_bootstrap_failed_install_leaves_no_stamp(tmp_path):
    repo = fake_repo(tmp_path)
    (repo / ".venv" / "bin" / "python").write_text("#!/bin/sh\nexit 3\n")
    out = bootstrap(repo)
    assert out.returncode == 1 and "pip install failed" in out.stderr
    assert not (repo / ".venv" / ".tunstack-pyproject.sha256").exists()


def test_bootstrap_is_fast_when_set_up():
    assert bootstrap(REPO).returncode == 0  # the real .venv is set up by scripts/test
    t0 = time.monotonic()
    out = bootstrap(REPO)
    elapsed = time.monotonic() - t0
    assert out.returncode == 0 and out.stderr == ""
    assert elapsed < 1.5, f"bootstrap took {elapsed:.2f} s when nothing was to do"


def test_scripts_refuse_non_root_with_one_line():
    # the clone may sit in a directory only root can enter (a mktemp -d one, say): run copies of
    # the two scripts from a world-readable directory, so what is tested is the script's own check
    where = Path(tempfile.mkdtemp(prefix="tunstack-nonroot-"))
    try:
        (where / "scripts").mkdir()
        for name in ("test", "_bootstrap.sh"):
            shutil.copy(REPO / "scripts" / name, where / "scripts" / name)
            (where / "scripts" / name).chmod(0o755)
        for d in (where, where / "scripts"):
            d.chmod(0o755)
        out = run(NOBODY + ["bash", str(where / "scripts" / "test"), "--version"], cwd="/tmp")
    finally:
        shutil.rmtree(where, ignore_errors=True)
    assert out.returncode == 1, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "must run as root" in out.stderr


def test_scripts_test_passes_pytest_exit_status_through(tmp_path):
    t = REPO / "scripts" / "test"
    ok = run(["bash", str(t), "-q", "-p", "no:cacheprovider",
              "tests/link/test_ladder.py::test_options_parser"])
    assert ok.returncode == 0, ok.stdout + ok.stderr
    none = run(["bash", str(t), "-q", "-p", "no:cacheprovider", "-k", "no_such_test_zzz",
                "tests/link/test_ladder.py"])
    assert none.returncode == 5, none.stdout  # "no tests ran" is not a success
    (tmp_path / "test_fails.py").write_text("def test_fails():\n    assert False\n")
    bad = run(["bash", str(t), "-q", "-p", "no:cacheprovider", str(tmp_path)])
    assert bad.returncode == 1, bad.stdout


def test_ci_run_calls_scripts_test():
    text = (REPO / ".ci" / "run").read_text()
    assert text.startswith("#!/usr/bin/env bash\nset -euo pipefail\n")
    assert "exec bash scripts/test -q" in text
    assert os.access(REPO / ".ci" / "run", os.X_OK)


def test_demo_help():
    out = run(["bash", str(REPO / "scripts" / "demo"), "--help"])
    assert out.returncode == 0 and "unshare --net" in out.stdout and "--pcap" in out.stdout
    bad = run(["bash", str(REPO / "scripts" / "demo"), "--bogus"])
    assert bad.returncode == 2 and "unknown argument" in bad.stderr


def test_demo_end_to_end(tmp_path):
    """curl gets the page from the stack; the ladder shows the whole conversation."""
    keep = tmp_path / "demo.pcap"
    before = set(os.listdir("/tmp"))
    out = run(["bash", str(REPO / "scripts" / "demo"), "--pcap", str(keep)], timeout=90)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "HTTP/1.0 200" in out.stdout or "HTTP/1.1 200" in out.stdout
    assert "Hello from tunstack" in out.stdout and out.stdout.rstrip().endswith("demo: OK")
    ladder = out.stdout.split("== ladder:")[1]
    for label in (" SYN seq=0 ", " SYN-ACK seq=0 ack=1 ", " PSH,ACK seq=1 ack=1 ", "FIN,ACK"):
        assert label in ladder, ladder
    assert keep.stat().st_size > 24
    assert not [n for n in set(os.listdir("/tmp")) - before if n.startswith("tunstack-demo.")]
