"""Offset paging at keyset speed: the id where the page before ended, remembered.

`OFFSET n` makes PostgreSQL walk past n rows, so a page deep in a big pull takes seconds.
But a client paging by offset (or page number) asks for offset n right after the page that
ended there. So every such page remembers, in the cache, the id of its last record as the
anchor of "this list, this filter, position n", and the request for offset n reads the
records after that id instead of counting n of them.

Why that is the same page: ids are kept for life, and a new record of a deployment gets an
id above every stored one (readings are written under the deployment's lock), so
corrections and additions leave unchanged the records at or before an anchor. Only a
deletion takes some away; deletions of meters and assets leave tombstones, and the
deployment's newest tombstone is part of the key: after a deletion no anchor is found and
offsets are counted again, as `OFFSET` does. With `updated_since`, a record at or before the
anchor that is changed during the pull starts to match: `OFFSET` would count it and so
return the record at the page's border twice; the anchor does not (the change comes with
the next pull). A position not remembered (a jump, an expired or cleared cache, a cache
that cannot be reached) is read by `OFFSET`, as before.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import replace

from django.core.cache import cache
from django.db import connection

from apps.core.models import Deployment
from apps.partner_api.models import Tombstone
from apps.partner_api.params import PageRequest

logger = logging.getLogger(__name__)

# Long enough for a slow client between two pages; a forgotten anchor only costs an OFFSET.
ANCHOR_SECONDS = 3600
_DELETED_SQL = (f"SELECT max(id) FROM {Tombstone._meta.db_table} "  # noqa: S608 (a model's)
                "WHERE deployment_id = %s")


def anchor_scope(*, deployment: Deployment, endpoint: str, flt) -> str:
    """The part of the key that names the list: deployment, endpoint, filter, deletions.

    The deployment's creation time tells a deployment from an earlier one that had its id
    (a restored or recreated database) whose anchors the cache may still hold.
    """
    with connection.cursor() as cursor:  # the ORM's aggregate cost 1 ms of Python a page
        cursor.execute(_DELETED_SQL, [deployment.pk])
        deleted = cursor.fetchone()[0] or 0
    created = int(deployment.created_at.timestamp() * 1_000_000)
    what = repr((endpoint, tuple(sorted(set(flt.meters))), flt.parameter,
                 flt.start and flt.start.isoformat(), flt.end and flt.end.isoformat(),
                 flt.after_seq))
    digest = hashlib.sha256(what.encode()).hexdigest()[:32]
    return f"partner_api:anchor:{deployment.pk}.{created}.{deleted}:{digest}"


def anchor_apply(page: PageRequest, scope: str) -> PageRequest:
    """The page with the anchor of its offset when one is remembered, else as it was."""
    if page.style not in ("offset", "page") or page.offset == 0:
        return page
    try:
        anchor = cache.get(f"{scope}:{page.offset}")
    except Exception as exc:  # Redis down: the page is read by OFFSET, slower but the same
        logger.warning("partner API: cache unavailable, offset %s read without anchor: %s",
                       page.offset, exc)
        return page
    return replace(page, anchor=anchor) if isinstance(anchor, int) else page


def anchor_remember(page: PageRequest, scope: str, positions: list[int]) -> None:
    """After a full offset page: its last id is the anchor of the offset that follows.

    A full last page too: offset clients stop on a short or empty page, so they ask once more.
    """
    if page.style not in ("offset", "page") or len(positions) < page.limit:
        return
    try:
        cache.set(f"{scope}:{page.offset + page.limit}", positions[page.limit - 1],
                  timeout=ANCHOR_SECONDS)
    except Exception as exc:
        logger.warning("partner API: cache unavailable, anchor of offset %s not kept: %s",
                       page.offset + page.limit, exc)
