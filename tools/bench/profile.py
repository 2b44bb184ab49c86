"""py-spy sampling of a server during one phase, and a summary of its raw samples."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time

from .config import REPO, BenchError
from .netns import die_with_parent


class Profiler:
    def __init__(self, pid: int, path: str, seconds: float, gil: bool = False):
        self.path = path
        exe = shutil.which("py-spy")
        if not exe:
            cand = os.path.join(os.path.dirname(sys.executable), "py-spy")
            exe = cand if os.path.exists(cand) else None
        if not exe:
            raise BenchError("py-spy not found (pip install py-spy)")
        self.proc = subprocess.Popen(
            [exe, "record", "--pid", str(pid), "--rate", "250", "--format", "raw", "--nonblocking",
             "--duration", str(int(seconds) + 2), "--output", path, *(["--gil"] if gil else [])],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=die_with_parent)
        time.sleep(0.5)  # let it attach

    def finish(self, top: int = 15) -> dict:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return summarize_profile(self.path, top, err)


_LINENO = re.compile(r":\d+\)$")


def summarize_profile(path: str, top: int, err: str = "") -> dict:
    """Top functions by self and inclusive samples (line numbers merged) from py-spy raw output."""
    self_count, incl_count, total = {}, {}, 0
    try:
        with open(path) as f:
            for line in f:
                stack, _, n = line.rstrip("\n").rpartition(" ")
                try:
                    n = int(n)
                except ValueError:
                    continue
                frames = [_LINENO.sub(")", fr) for fr in stack.split(";")
                          if fr and not fr.startswith(("process ", "thread "))]
                if not frames:
                    frames = ["(no Python frame: native code or thread start)"]
                total += n
                self_count[frames[-1]] = self_count.get(frames[-1], 0) + n
                for fr in set(frames):
                    incl_count[fr] = incl_count.get(fr, 0) + n
    except OSError:
        return {"error": (err or "no profile written").strip()[-300:]}
    if not total:
        return {"error": "no samples", "file": path}

    def ranked(d):
        return [{"function": k, "pct": round(100 * v / total, 1)}
                for k, v in sorted(d.items(), key=lambda kv: -kv[1])[:top]]
    return {"file": os.path.relpath(path, REPO), "samples": total, "self": ranked(self_count),
            "inclusive": ranked(incl_count)}
