"""Figures the tests record (throughput, memory, latency, recovery times), printed as they come
and again at the end of the run, passed or failed."""

import pytest

_FIGURES = []


@pytest.fixture
def figures(request):
    def record(line):
        _FIGURES.append(f"{request.node.name}: {line}")
        print(line, flush=True)
    return record


def pytest_terminal_summary(terminalreporter):
    if _FIGURES:
        terminalreporter.section("figures")
        for line in _FIGURES:
            terminalreporter.write_line(line)
