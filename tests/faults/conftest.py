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
    """Build a Hub in the test's directory: `with hub_factory(beat=False) as hub: ...`."""

    def make(**kwargs) -> Hub:
        return Hub(hub_workdir, **kwargs)

    return make


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
