"""Run one dlt `rest_api` load as configured in a JSON file; print what it loaded as JSON.

Run by tests/contract with the contract venv's Python: the configuration is the test's
(declarative dicts only), this script only starts the pipeline and reads the result back.

    python run_dlt.py spec.json   # {"pipeline": …, "workdir": …, "source": {rest_api config}}
"""

import json
import sys
from pathlib import Path

import dlt
import duckdb
from dlt.sources.rest_api import rest_api_source


def main(path: str) -> None:
    spec = json.loads(Path(path).read_text())
    database = f"{spec['workdir']}/{spec['pipeline']}.duckdb"
    pipeline = dlt.pipeline(pipeline_name=spec["pipeline"], pipelines_dir=spec["workdir"],
                            destination=dlt.destinations.duckdb(database),
                            dataset_name="partner")
    pipeline.run(rest_api_source(spec["source"]))
    counts = pipeline.last_trace.last_normalize_info.row_counts
    table = spec["source"]["resources"][0]["name"]
    with duckdb.connect(database) as db:
        total, value_sum = db.execute(
            f"SELECT count(*), coalesce(sum(value), 0) FROM partner.{table}").fetchone()
        keys = db.execute(f"SELECT count(DISTINCT ({', '.join(spec['key'])})) "
                          f"FROM partner.{table}").fetchone()[0]
    print(json.dumps({"extracted": counts.get(table, 0), "rows": total, "sum": value_sum,
                      "distinct_keys": keys}))


if __name__ == "__main__":
    main(sys.argv[1])
