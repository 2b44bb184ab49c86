"""``python -m stack.plot ...`` is ``tunstack plot ...``."""
import sys

from .cli import plot_main

sys.exit(plot_main())
