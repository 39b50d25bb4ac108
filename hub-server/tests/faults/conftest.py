# The fault suite shares the process and service helpers of the load suite (../load/hubtest.py).
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "load"))

from figures import figures, pytest_terminal_summary  # noqa: E402,F401
