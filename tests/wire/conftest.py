"""Make ``wire_helpers`` importable whatever pytest's import mode or rootdir."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
