"""The GIL switch interval while helper threads overlap I/O with Python work."""

from __future__ import annotations

import sys

import pytest

from apps.core import switching


@pytest.fixture
def default_interval():
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.005)
    yield 0.005
    sys.setswitchinterval(before)


def test_overlaps_shorten_the_interval_until_the_last_one_ends(default_interval):
    switching.overlap_begin()
    assert sys.getswitchinterval() == pytest.approx(switching.OVERLAP_INTERVAL)
    switching.overlap_begin()  # a second, concurrent overlap
    switching.overlap_end()
    assert sys.getswitchinterval() == pytest.approx(switching.OVERLAP_INTERVAL)
    switching.overlap_end()
    assert sys.getswitchinterval() == pytest.approx(default_interval)


def test_an_ingest_of_several_chunks_runs_short_and_gives_the_default_back(
    default_interval, monkeypatch, deployment, make_device
):
    from apps.core.services import ReadingIn, readings_ingest
    from apps.core.services.ingest import postgres

    if postgres.connections["default"].vendor != "postgresql":
        pytest.skip("the overlapping merge is PostgreSQL's")
    seen: list[float] = []
    write = postgres._write_chunk

    def noted(*args):
        seen.append(sys.getswitchinterval())
        return write(*args)

    monkeypatch.setattr(postgres, "_write_chunk", noted)
    device = make_device(deployment)
    records = [ReadingIn(device=device.external_id, parameter="active_power",
                         ts=f"2026-01-01T00:{m:02d}:00Z", value=float(m)) for m in range(50)]

    readings_ingest(deployment=deployment, records=records, source="test",
                    chunk_size=10)

    assert len(seen) == 5
    assert seen[0] == pytest.approx(switching.OVERLAP_INTERVAL)
    assert sys.getswitchinterval() == pytest.approx(default_interval)
