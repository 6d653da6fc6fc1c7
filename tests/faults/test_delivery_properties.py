"""The delivery invariant at scale: the property tests of `make test` with thousands of
generated histories each (tests/dexma/services/test_property.py, tests/wattics/
test_delivery_property.py, tests/volue/test_report_property.py), in a pytest of their own
against the suite's test database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.faults, pytest.mark.faults_full]
ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = os.environ.get("PROPERTY_EXAMPLES_FULL", "2000")


@pytest.mark.parametrize("path", ["tests/dexma/services/test_property.py",
                                  "tests/wattics/test_delivery_property.py",
                                  "tests/volue/test_report_property.py"])
def test_delivery_invariant_over_thousands_of_histories(path):
    env = {**os.environ, "PROPERTY_EXAMPLES": EXAMPLES,
           "TEST_DATABASE_NAME": os.environ.get("TEST_DATABASE_NAME", "hub_properties")}
    done = subprocess.run([sys.executable, "-m", "pytest", path, "-q"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    tail = "\n".join(done.stdout.splitlines()[-40:])
    print(f"{path}: {EXAMPLES} examples\n{tail}")
    assert done.returncode == 0, tail
