import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from figures import figures, pytest_terminal_summary  # noqa: E402,F401
