import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from figures import figures, pytest_terminal_summary  # noqa: E402,F401

import pytest  # noqa: E402

AUTOGROUP = "/proc/self/autogroup"


@pytest.fixture(scope="session", autouse=True)
def load_side_at_low_priority():
    """The load's side of the machine (this session: pytest's client threads, the private Garage)
    at nice 10 as a scheduling group, for the run. Linux groups CPU time by session (autogroups),
    so per-thread nice is not enough: Garage, the Python clients and the hub each got a third of
    2 cores, and the hub's /health waited behind Garage's threads (hundreds of ms; perf showed the
    hub's workers preempted for Garage's). The hub and the /health sampler run in sessions of their
    own, as if on their own machine; the idle control hub shows what any process could get."""
    try:
        with open(AUTOGROUP) as f:
            before = int(f.read().split("nice")[1])
        with open(AUTOGROUP, "w") as f:
            f.write("10")
    except (OSError, ValueError, IndexError):
        before = None  # no autogroups here: the threads' own nice still applies
    yield
    if before is not None:
        with open(AUTOGROUP, "w") as f:
            f.write(str(before))
