"""`python tools/bench [flags]` (what scripts/bench runs): see bench/__init__.py."""
import os
import sys

if __package__ in (None, ""):  # run as a directory: make `bench` importable as a package
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.cli import main  # noqa: E402

sys.exit(main())
