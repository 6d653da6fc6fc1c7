"""`readings_ingest`: validate readings, upsert them in bulk, quarantine the invalid ones.

- `records`: ReadingIn (what the edges hand over), Rejection, IngestResult, InvalidReading;
- `validation`: per-record checks, the common record on an inline fast path;
- `service`: `readings_ingest` itself: transaction, lock, chunks, quarantine, counts;
- `postgres`: fresh rows by binary COPY, the rest staged and merged in one statement; the
  server writes chunk n while this process validates chunk n + 1;
- `orm`: the same contract with bulk ORM calls elsewhere (the SQLite demo).

Input is consumed in chunks: memory depends on the chunk size, not on the batch.
`tests/benchmarks/test_ingest_bench.py` measures it against bare COPY.
"""

from apps.core.services.ingest.records import (
    IngestResult,
    InvalidReading,
    ReadingIn,
    Rejection,
)
from apps.core.services.ingest.service import CHUNK_SIZE, readings_ingest
from apps.core.services.ingest.validation import EARLIEST, LATEST

__all__ = [
    "CHUNK_SIZE",
    "EARLIEST",
    "LATEST",
    "IngestResult",
    "InvalidReading",
    "ReadingIn",
    "Rejection",
    "readings_ingest",
]
