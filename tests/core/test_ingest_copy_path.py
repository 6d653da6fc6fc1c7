"""The ingest's COPY path: rows that cannot conflict go straight in, the rest are merged.

The outcome must be the merge's, row for row: counts, values, a new `seq` for every insert
and change and none for an unchanged row, the commit record, quarantine of the bad rows.
"""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from apps.core.models import Quarantine, Reading, ReadingCommit
from apps.core.services import ReadingIn, readings_ingest
from apps.core.services.ingest import postgres as ingest_module

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
QH = dt.timedelta(minutes=15)
METERS = ("meter-1", "meter-2", "meter-3")


@pytest.fixture
def meters(deployment, make_device):
    return [make_device(deployment, name) for name in METERS]


def series(first: int, count: int, *, bump: float = 0.0, meters=METERS) -> list[ReadingIn]:
    return [ReadingIn(name, "active_energy_delta", T0 + i * QH, float(i) + bump,
                      period_end=T0 + (i + 1) * QH)
            for name in meters for i in range(first, first + count)]


def ingest(deployment, records, **kwargs):
    return readings_ingest(deployment=deployment, records=records, source="test", **kwargs)


def stored() -> dict[tuple[str, dt.datetime], tuple[float, int]]:
    return {(r.device.external_id, r.ts): (r.value, r.seq)
            for r in Reading.objects.select_related("device")}


@pytest.fixture
def paths(monkeypatch):
    """How many rows each path took: COPYed in, or staged for the merge."""
    taken = {"copied": 0, "merged": 0}
    copy_fresh, stage = ingest_module._copy_fresh, ingest_module._stage

    def counting_copy(db, rows):
        taken["copied"] += len(rows)
        copy_fresh(db, rows)

    def counting_stage(db, rows):
        taken["merged"] += len(rows)
        stage(db, rows)

    monkeypatch.setattr(ingest_module, "_copy_fresh", counting_copy)
    monkeypatch.setattr(ingest_module, "_stage", counting_stage)
    return taken


def test_a_fresh_batch_is_copied_without_a_merge(deployment, meters, paths):
    result = ingest(deployment, series(0, 100), chunk_size=70)
    assert (result.inserted, result.updated, result.unchanged) == (300, 0, 0)
    assert paths == {"copied": 300, "merged": 0}
    assert Reading.objects.count() == 300


def test_an_append_after_the_stored_readings_is_copied(deployment, meters, paths):
    ingest(deployment, series(0, 50))
    paths.update(copied=0, merged=0)
    result = ingest(deployment, series(50, 50))
    assert (result.inserted, result.updated) == (150, 0)
    assert paths == {"copied": 150, "merged": 0}


def test_a_half_overwrite_merges_the_overlap_and_copies_the_rest(deployment, meters, paths):
    ingest(deployment, series(0, 100))
    before = stored()
    paths.update(copied=0, merged=0)
    result = ingest(deployment, series(50, 100, bump=0.5), chunk_size=120)
    assert (result.inserted, result.updated, result.unchanged) == (150, 150, 0)
    assert paths == {"copied": 150, "merged": 150}
    after = stored()
    assert len(after) == 450
    for (meter, ts), (value, seq) in after.items():
        i = (ts - T0) // QH
        if i < 50:
            assert (value, seq) == before[(meter, ts)]
        else:
            assert value == i + 0.5
            assert seq > max(s for _, s in before.values())


def test_an_unchanged_overlap_keeps_its_seqs_and_the_new_part_gets_new_ones(
        deployment, meters):
    ingest(deployment, series(0, 10))
    before = stored()
    result = ingest(deployment, series(5, 10))
    assert (result.inserted, result.updated, result.unchanged) == (15, 0, 15)
    after = stored()
    top = max(s for _, s in before.values())
    for key, (value, seq) in after.items():
        if key in before:
            assert (value, seq) == before[key]
        else:
            assert seq > top


def test_a_new_instant_between_stored_ones_of_the_chunk_is_merged(deployment, meters, paths):
    """Inside the span of stored instants the range check cannot tell: the merge decides."""
    ingest(deployment, [r for r in series(0, 10) if (r.ts - T0) // QH != 4])
    paths.update(copied=0, merged=0)
    result = ingest(deployment, series(3, 3))
    assert (result.inserted, result.unchanged) == (3, 6)
    assert paths == {"copied": 0, "merged": 9}


def test_a_chunk_inside_a_gap_of_the_stored_readings_is_copied(deployment, meters, paths):
    ingest(deployment, [r for r in series(0, 10) if (r.ts - T0) // QH != 4])
    paths.update(copied=0, merged=0)
    assert ingest(deployment, series(4, 1)).inserted == 3
    assert paths == {"copied": 3, "merged": 0}


def test_a_key_repeated_in_a_later_chunk_of_the_same_call_is_merged(deployment, meters, paths):
    records = series(0, 10) + series(0, 10, bump=1.0)
    result = ingest(deployment, records, chunk_size=30)
    assert (result.inserted, result.updated) == (30, 30)
    assert paths == {"copied": 30, "merged": 30}
    assert {value for value, _ in stored().values()} == {i + 1.0 for i in range(10)}


@pytest.mark.parametrize("overlap", [True, False])
def test_chunks_written_beside_or_after_validation_store_the_same(deployment, meters, paths,
                                                                  monkeypatch, overlap):
    # Three chunks: fresh, a repeat of the first (merged), fresh again.
    threads: set[int] = set()
    write = ingest_module._write_chunk

    def noted(*args):
        threads.add(threading.get_ident())
        return write(*args)

    monkeypatch.setattr(ingest_module, "_write_chunk", noted)
    records = series(0, 10) + series(0, 10, bump=1.0) + series(10, 10)

    result = ingest(deployment, records, chunk_size=30, overlap=overlap)

    assert (result.inserted, result.updated) == (60, 30)
    assert paths == {"copied": 60, "merged": 30}
    assert len(stored()) == 60
    # With overlap, the first chunks are written by the merge's helper; without, all of
    # them on the caller's thread.
    caller = threading.get_ident()
    assert (threads == {caller}) is (not overlap)


def test_copied_seqs_are_distinct_and_above_every_earlier_one(deployment, meters):
    ingest(deployment, series(0, 20))
    first = stored()
    ingest(deployment, series(20, 20), chunk_size=25)
    second = {k: v for k, v in stored().items() if k not in first}
    seqs = [seq for _, seq in second.values()]
    assert len(set(seqs)) == len(seqs) == 60
    assert min(seqs) > max(s for _, s in first.values())
    commit = ReadingCommit.objects.filter(deployment=deployment).latest("seq")
    assert commit.seq >= max(seqs)


def test_a_seq_block_interleaved_with_another_writer_falls_back_to_a_list(
        deployment, meters, monkeypatch):
    """Another writer drawing from the sequence mid-block: the seqs are still unique."""
    real = ingest_module._SEQ_BLOCK_SQL
    interleaved = real.replace("generate_series(1, %s)",
                               "generate_series(1, %s) g, LATERAL (SELECT 1 WHERE mod(g, 2) = 0"
                               " AND nextval('core_reading_seq') > 0) other")
    # Half the block's draws are taken "by someone else": never contiguous.
    monkeypatch.setattr(ingest_module, "_SEQ_BLOCK_SQL", interleaved)
    ingest(deployment, series(0, 20))
    seqs = [seq for _, seq in stored().values()]
    assert len(set(seqs)) == len(seqs) == 60


def test_bad_rows_of_a_copied_batch_are_quarantined_and_the_rest_stored(
        deployment, meters, paths):
    records = series(0, 10)
    records[3].value = float("nan")
    records[17].device = "meter-404"
    records[25].period_end = records[25].ts
    result = ingest(deployment, records, chunk_size=12)
    assert (result.inserted, result.quarantined) == (27, 3)
    assert paths == {"copied": 27, "merged": 0}
    reasons = sorted(q.reason for q in Quarantine.objects.filter(deployment=deployment))
    assert len(reasons) == 3
    assert any("not a finite number" in r for r in reasons)
    assert any("unknown device 'meter-404'" in r for r in reasons)
    assert any("is not after ts" in r for r in reasons)


def test_a_copied_row_that_breaks_a_constraint_rolls_back_the_whole_call(deployment, meters):
    """The COPY path leaves the table's constraints in force, like the merge."""
    ingest(deployment, series(0, 5))
    before = stored()
    records = series(5, 5)
    # Past validation (the seq block is drawn), then the unique key: same key twice in a chunk
    # is deduplicated, so force one through by lying to the range check.
    real_split = ingest_module._split_fresh

    def wrong_split(db, rows):
        fresh, rest = real_split(db, rows)
        return fresh + rest + [(rows[0][0], rows[0][1], T0, T0 + QH, 1.0, False, 0, None, "")], []

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ingest_module, "_split_fresh", wrong_split)
        # On the partitioned table the index that refuses it is the partition's (named after
        # it): the key's columns say it is the natural key.
        with pytest.raises(Exception, match=r"Key \(device_id, parameter_id, ts\)"):
            ingest(deployment, records)
    assert stored() == before
