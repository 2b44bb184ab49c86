"""README.md's "Using it" example works as written: run its commands (after the unshare line,
which the test run provides: it is root in its own network namespace) in a fresh directory."""
from __future__ import annotations

import os
import re
import subprocess
import sys

from labdoc import REPO, unique_tun


def using_it_commands() -> str:
    text = (REPO / "README.md").read_text()
    block = re.search(r"## Using it\n\n```sh\n(.*?)^```", text, re.S | re.M)[1]
    lines = block.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("unshare --net bash"))
    assert lines[-1] == "exit"
    return "\n".join(lines[start + 1:-1])


def test_readme_says_as_root_and_sudo_only_as_an_alternative():
    text = (REPO / "README.md").read_text()
    top = text[:text.index("## What is in it")]
    assert "scripts/demo    # as root" in top and "\nsudo scripts/" not in top
    assert "\nsudo unshare" not in text


def test_readme_using_it_runs_as_written(private_netns, tmp_path):
    venv_bin = tmp_path / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    wrapper = venv_bin / "tunstack"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m stack "$@"\n')
    wrapper.chmod(0o755)
    script = using_it_commands().replace("tunstack serve ", f"tunstack serve --tun {unique_tun('rdm')} ")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    res = subprocess.run(["bash", "-c", "set -e\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n" + script],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "HTTP/1.1 200 OK" in res.stdout and "hello from tunstack" in res.stdout
    assert "3 packets transmitted, 3 received" in res.stdout
    assert "|-- SYN seq=0 " in res.stdout and "ICMP echo-reply" in res.stdout
    assert (tmp_path / "run.pcap").stat().st_size > 0 and (tmp_path / "run.jsonl").stat().st_size > 0
