"""tools/asyncio_cpu.py (issue 8's asyncio figures): a bad command line is one line on stderr and
exit status 2, before anything is set up (the measurement itself needs root and its own namespaces)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[2] / "tools" / "asyncio_cpu.py"


@pytest.mark.parametrize("argv, message", [
    (["--reader-pause", "0.001"], "--reader-pause needs --tun"),
    (["--tun", "--reader-pause", "-1"], "--reader-pause must be between 0 and 1 second"),
    (["--offload"], "--offload needs --tun"),
    (["--repeat", "3"], "--repeat needs --tun"),
])
def test_bad_command_lines_are_refused_in_one_line(argv, message):
    done = subprocess.run([sys.executable, str(TOOL), *argv], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == ""
