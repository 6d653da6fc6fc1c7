"""The SQL of the partner API's usage pages (apps.partner_api.selectors runs it).

Two statements over the same page of records: one returning rows for the pages Python builds
(`USAGE_SQL`), one writing the records as JSON in PostgreSQL (`USAGE_JSON_SQL`, with the
helpers that make its text what DRF's renderer writes for usage_list's dicts).
"""

from __future__ import annotations

import re

# The usage page itself, the same rows for the tuples and the JSON statements below: the
# records of the deployment's parameters in id order (`where` adds the filters and the bound).
USAGE_PAGE = """
WITH page AS (
    SELECT r.id, r.seq, r.device_id, r.parameter_id, r.ts, r.period_end, r.value,
           r.estimated, r.cost, r.currency
    FROM core_reading r
    JOIN core_device d ON d.id = r.device_id
    WHERE d.deployment_id = %s AND r.parameter_id = ANY(%s) {where}
    ORDER BY r.id
    LIMIT %s OFFSET %s
)"""

# The instants leave PostgreSQL as the text the API serves (what Python's isoformat() writes
# for UTC; `updated_at` always with microseconds), and as microseconds since the epoch for
# the local-day test: parsing three timestamps a row into datetimes cost more than the query.
USAGE_SQL = USAGE_PAGE + """
SELECT page.id, page.parameter_id,
       replace(to_char(page.ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'),
               '.000000', ''),
       replace(to_char(page.period_end AT TIME ZONE 'UTC',
                       'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'), '.000000', ''),
       (extract(epoch FROM page.ts) * 1000000)::bigint,
       (extract(epoch FROM page.period_end) * 1000000)::bigint,
       page.value, page.estimated, page.cost, page.currency,
       d.external_id, d.subtype, d.unit, s.timezone,
       to_char((SELECT c.at FROM core_readingcommit c
                WHERE c.deployment_id = d.deployment_id AND c.seq >= page.seq
                ORDER BY c.seq LIMIT 1) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'),
       x.value
FROM page
JOIN core_device d ON d.id = page.device_id
LEFT JOIN core_site s ON s.id = d.site_id
LEFT JOIN LATERAL (
    SELECT x.value FROM core_reading x
    WHERE x.device_id = page.device_id AND x.parameter_id = {export} AND x.ts = page.ts
    LIMIT 1  -- at most one by the natural key; the limit keeps it a probe, not a hash join
) x ON true
ORDER BY page.id
"""  # noqa: S608 (this module's constants; values go as parameters)



# --- usage pages written as JSON by PostgreSQL ------------------------------------------------
#
# Building a thousand dicts from a thousand rows and encoding them costs more than the query.
# PostgreSQL writes each record as the JSON text DRF's renderer gives for the dict usage_list
# builds (same keys in the same order, compact separators, non-ASCII as is, numbers as
# Python's repr): tests/partner_api/test_rendered.py compares the two byte for byte.


def json_float(text: str) -> str:
    """SQL writing a double's text (PostgreSQL's shortest form) as Python's repr does.

    Both mostly give the same shortest digits that read back as the same double, in two
    forms: PostgreSQL writes `1` and `1e+15` where Python writes `1.0` and
    `1000000000000000.0` (Python stays positional up to the exponent 15, PostgreSQL up to
    14). Only when the shortest digits lie exactly halfway between two doubles (3.7e+22)
    does PostgreSQL, which does not count on strtod rounding halves to even, write more
    (3.6999999999999998e+22): at least 16 digits, so those pages go through
    `floats_python`. NaN and the infinities, which the table's checks and the ingest
    refuse, give NULL: such a page is refused, as DRF's renderer refuses them.
    """
    digits = f"replace(ltrim(split_part({text}, 'e', 1), '-'), '.', '')"
    exp15 = (f"CASE WHEN left({text}, 1) = '-' THEN '-' ELSE '' END || "
             f"CASE WHEN length({digits}) <= 16 THEN rpad({digits}, 16, '0') || '.0' "
             f"ELSE left({digits}, 16) || '.' || substr({digits}, 17) END")
    # The common forms first: a decimal point without exponent, then an integer.
    return (f"(CASE WHEN {text} IS NULL THEN 'null' "
            f"WHEN strpos({text}, 'e') = 0 THEN CASE WHEN strpos({text}, '.') > 0 THEN {text} "
            f"WHEN {text} IN ('NaN', 'Infinity', '-Infinity') THEN NULL "
            f"ELSE {text} || '.0' END "
            f"WHEN right({text}, 4) = 'e+15' THEN {exp15} ELSE {text} END)")


# At least 16 characters: what any number of 16 or more significant digits takes.
LONG_NUMBER = 16
_NUMBER_FIELD = re.compile(r'"(value|redelivery|production|cost)":(-?[0-9][0-9.e+-]*)')


def floats_python(text: str) -> str:
    """Every number of the records' text rewritten as Python's repr of the double it reads as.

    The keys are found only where they are keys: inside a JSON string a quote is escaped.
    """
    return _NUMBER_FIELD.sub(lambda m: f'"{m[1]}":{float(m[2])!r}', text)


def _json_text(expr: str) -> str:
    return f"COALESCE(to_json({expr})::text, 'null')"


def _json_instant(expr: str) -> str:
    """An instant as Python's isoformat() in UTC: microseconds only when there are some."""
    return (f"COALESCE('\"' || replace(to_char({expr} AT TIME ZONE 'UTC', "
            f"'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"'), '.000000', '') || '\"', 'null')")


_WHOLE_DAYS = ("page.period_end IS NOT NULL AND l.start = date_trunc('day', l.start) "
               "AND l.end = date_trunc('day', l.end)")
USAGE_DOC = " || ".join([
    "'{\"meter\":'", _json_text("d.external_id"),
    "',\"parameter\":'", _json_text("pr.key"),
    f"',\"start_date\":' || CASE WHEN {_WHOLE_DAYS} "
    "THEN '\"' || to_char(l.start, 'YYYY-MM-DD') || '\"' ELSE 'null' END",
    f"',\"end_date\":' || CASE WHEN {_WHOLE_DAYS} "
    "THEN '\"' || to_char(l.end, 'YYYY-MM-DD') || '\"' ELSE 'null' END",
    "',\"period_start\":'", _json_instant("page.ts"),
    "',\"period_end\":'", _json_instant("page.period_end"),
    "',\"value\":'", json_float("f.value"),
    "',\"unit\":'", _json_text("COALESCE(NULLIF(pr.unit, ''), d.unit)"),
    "',\"redelivery\":'", json_float("f.export"),
    "',\"production\":' || CASE WHEN d.subtype = %s THEN "
    + json_float("f.value") + " ELSE 'null' END",
    "',\"cost\":'", json_float("f.cost"),
    "',\"currency\":' || CASE WHEN page.currency <> '' THEN "
    + _json_text("page.currency") + " ELSE 'null' END",
    "',\"estimated\":' || CASE WHEN page.estimated THEN 'true' ELSE 'false' END",
    "',\"updated_at\":' || COALESCE('\"' || to_char(c.at AT TIME ZONE 'UTC', "
    "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"') || '\"', 'null')",
    "'}'",
])

# The change marker: the first commit of the deployment at or above the record's seq, taken
# from the page's few commits (one index range, not a probe per record); the export reading,
# one probe of the natural key (LIMIT 1 keeps the planner from turning it into a hash join
# over the whole table).
USAGE_JSON_SQL = USAGE_PAGE + """, commits AS (
    -- The commits the page's records belong to, each with the seq of the one before.
    SELECT c.seq, c.at, COALESCE(lag(c.seq) OVER (ORDER BY c.seq), -1) AS below
    FROM core_readingcommit c, (SELECT min(seq) AS low, max(seq) AS high FROM page) b
    WHERE c.deployment_id = %s AND c.seq >= b.low
      AND c.seq <= COALESCE((SELECT n.seq FROM core_readingcommit n
                             WHERE n.deployment_id = %s AND n.seq >= b.high
                             ORDER BY n.seq LIMIT 1), b.high)
), docs AS (
    SELECT page.id, row_number() OVER (ORDER BY page.id) AS n,
           CASE WHEN COALESCE(s.timezone, '') = '' OR s.timezone = ANY(%s::text[])
                OR s.timezone = ANY(%s::text[]) THEN NULL ELSE s.timezone END AS unknown_zone,
           {doc} AS doc, f.value, f.cost, f.export
    FROM page
    JOIN core_device d ON d.id = page.device_id
    JOIN core_parameter pr ON pr.id = page.parameter_id
    LEFT JOIN core_site s ON s.id = d.site_id
    CROSS JOIN LATERAL (
        SELECT CASE WHEN s.timezone = ANY(%s::text[]) THEN s.timezone ELSE %s END AS name
    ) z
    CROSS JOIN LATERAL (
        SELECT page.ts AT TIME ZONE z.name AS start, page.period_end AT TIME ZONE z.name AS end
    ) l
    LEFT JOIN LATERAL (
        SELECT x.value FROM core_reading x
        WHERE x.device_id = page.device_id AND x.parameter_id = {export} AND x.ts = page.ts
        LIMIT 1
    ) x ON true
    LEFT JOIN commits c ON page.seq > c.below AND page.seq <= c.seq
    CROSS JOIN LATERAL (
        SELECT page.value::text AS value, page.cost::text AS cost, x.value::text AS export
    ) f
)
SELECT COALESCE(array_agg(id ORDER BY id), '{{}}'), {top},
       COALESCE(string_agg(doc, ',' ORDER BY id) FILTER (WHERE n <= %s), ''),
       count(*) FILTER (WHERE doc IS NULL),
       count(*) FILTER (WHERE n <= %s AND greatest(length(value), length(cost),
                                                   length(export)) >= {long}),
       COALESCE(array_agg(DISTINCT unknown_zone) FILTER (WHERE unknown_zone IS NOT NULL), '{{}}')
FROM docs
"""  # noqa: S608 (this module's constants; values go as parameters)

# The highest reading id, as _series_bound takes it for a full pull; evaluated once a statement.
TOP_ID = "(SELECT max(id) FROM core_reading)"
