"""A shorter GIL switch interval while a helper thread overlaps I/O with Python work.

The readings merge runs its COPY on a helper thread while the caller validates the next
chunk. Each time the helper has sent a buffer it needs the GIL back, and with CPython's
default interval (5 ms) it waits that long behind the busy caller while the server sits
idle (measured: 1M readings ingested in 5.1-5.9 s at 5 ms, 4.0-4.4 s at 0.2 ms).
`overlap_begin()` lowers the interval while at least one such overlap runs in the process;
the `overlap_end()` of the last one puts the previous value back. Uses are counted, so
concurrent overlaps are fine.

Not for many threads at once: with a pull sync's page fetchers, converter, store and a
merge helper all busy, quick switching cost more CPU than it saved (3.8 s at 5 ms, 4.4 s at
0.2 ms, same wall time); its store ingests without a merge helper instead
(`readings_ingest(overlap=False)`).
"""

from __future__ import annotations

import sys
import threading

OVERLAP_INTERVAL = 0.0002  # seconds
_lock = threading.Lock()
_overlaps = 0
_default = sys.getswitchinterval()


def overlap_begin() -> None:
    """From here to the matching `overlap_end()`, the short interval."""
    global _overlaps, _default
    with _lock:
        if _overlaps == 0:
            _default = sys.getswitchinterval()
            sys.setswitchinterval(min(_default, OVERLAP_INTERVAL))
        _overlaps += 1


def overlap_end() -> None:
    global _overlaps
    with _lock:
        _overlaps -= 1
        if _overlaps == 0:
            sys.setswitchinterval(_default)
