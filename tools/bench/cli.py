"""main(): flags, the namespace, signals, one-line errors."""
from __future__ import annotations

import signal
import sys

from .config import BenchError, build_parser, finish_args
from .netns import ensure_namespace
from .runner import log, run


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    a = build_parser().parse_args(argv)
    finish_args(a)
    if a.profile and "download" not in a.phases and a.profile_phase == "download":
        log("note: --profile samples the download phase, which is not selected")
    try:
        ensure_namespace(argv)
        signal.signal(signal.SIGTERM, _interrupt)
        signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored
        return run(a, argv)
    except BenchError as e:
        print(f"bench: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted; servers stopped, namespace goes with this process", file=sys.stderr)
        return 130
