"""Disk hygiene for the Xet client suite: every test downloads or clones 100 MiB files into its
tmp_path, and pytest keeps the last three runs' directories. A test that passed leaves nothing
behind; a failing one keeps its files to look at."""

import shutil

import pytest


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.xet_passed = report.passed
    return report


@pytest.fixture(autouse=True)
def _discard_tmp_path_when_passed(request, tmp_path):
    yield
    if getattr(request.node, "xet_passed", False):
        shutil.rmtree(tmp_path, ignore_errors=True)
