"""Fault tests start the whole hub as real processes (see harness.py); `make faults` runs
them, `make faults-ci` a reduced set with smaller sizes and shorter outages."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.faults.harness import Hub

# FAULTS_CI=1: the reduced run of .ci/run (fewer readings, shorter outages).
CI = os.environ.get("FAULTS_CI") == "1"


def scaled(full, ci):
    """`full` in the full run, `ci` in the reduced one."""
    return ci if CI else full


@pytest.fixture
def hub_workdir(request):
    """A fresh directory under /tmp (PostgreSQL must be able to reach its data directory);
    kept with its logs when FAULTS_KEEP=1 or the test failed."""
    path = Path(tempfile.mkdtemp(prefix=f"hub-faults-{request.node.name[:40]}-"))
    yield path
    failed = getattr(request.node, "rep_call", None)
    if os.environ.get("FAULTS_KEEP") == "1" or (failed is not None and failed.failed):
        print(f"\nfault test files kept in {path}")
    else:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def hub_factory(hub_workdir):
    """Build a Hub in the test's directory: `with hub_factory(beat=False) as hub: ...`.

    Afterwards every log the hub's processes wrote is searched for every secret the scenario
    planted (the keys of the environment, the partner API key, what a test adds with
    `hub.plant`): one found fails the test.
    """
    made: list[Hub] = []

    def make(**kwargs) -> Hub:
        hub = Hub(hub_workdir, **kwargs)
        made.append(hub)
        return hub

    yield make
    for hub in made:
        leaks, scanned = hub.log_leaks()
        print(f"\nFIGURES log scan: {scanned['files']} files, {scanned['lines']:,} lines, "
              f"{scanned['secrets']} planted secrets, found {leaks or 'none'}")
        assert not leaks, f"secrets in the logs (file: first characters): {leaks}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
