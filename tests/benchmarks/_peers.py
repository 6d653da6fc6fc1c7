"""The generic pullers of `make bench-peers`, each over the benchmark's standalone provider.

Run by bench_pull.py with the contract venv's Python (tests/contract/requirements.txt: dlt
with its postgres destination, Airbyte's declarative CDK), as their users configure them:
declarative configuration only, defaults everywhere else. Prints one JSON line: the load's
seconds (from the pipeline's start to its end, the interpreter's start-up excluded), the
records it landed or read, and the sum of their quantities.

    python _peers.py dlt BASE_URL DSN FROM TO PAGE WORKDIR
    python _peers.py airbyte BASE_URL - FROM TO PAGE WORKDIR   # read only, no database
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

API_KEY = "bench-key"

# Airbyte's low-code manifest for the provider's consumption endpoint: offset paging,
# records under `data`, the key in a header. YAML only, as Airbyte's users write it.
MANIFEST = """
version: 6.30.0
type: DeclarativeSource
check: {type: CheckStream, stream_names: [consumption]}
spec:
  type: Spec
  connection_specification:
    type: object
    required: [base_url, api_key]
    properties:
      base_url: {type: string}
      api_key: {type: string, airbyte_secret: true}
      from: {type: string}
      to: {type: string}
      page: {type: integer}
streams:
  - type: DeclarativeStream
    name: consumption
    primary_key: [meter, period]
    schema_loader:
      type: InlineSchemaLoader
      schema: {type: object, additionalProperties: true, properties: {}}
    retriever:
      type: SimpleRetriever
      requester:
        type: HttpRequester
        url_base: "{{ config['base_url'] }}/"
        path: consumption
        http_method: GET
        request_parameters: {from: "{{ config['from'] }}", to: "{{ config['to'] }}"}
        authenticator:
          type: ApiKeyAuthenticator
          api_token: "{{ config['api_key'] }}"
          inject_into: {type: RequestOption, inject_into: header, field_name: X-Api-Key}
      record_selector:
        type: RecordSelector
        extractor: {type: DpathExtractor, field_path: [data]}
      paginator:
        type: DefaultPaginator
        pagination_strategy: {type: OffsetIncrement, page_size: "{{ config['page'] }}"}
        page_size_option: {type: RequestOption, inject_into: request_parameter, field_name: limit}
        page_token_option:
          {type: RequestOption, inject_into: request_parameter, field_name: offset}
"""


def dlt_load(base: str, dsn: str, since: str, until: str, page: int, workdir: Path) -> dict:
    import dlt
    import psycopg2
    from dlt.sources.rest_api import rest_api_source

    source = rest_api_source({
        "client": {
            "base_url": f"{base}/",
            "auth": {"type": "api_key", "name": "X-Api-Key", "api_key": API_KEY,
                     "location": "header"},
            "paginator": {"type": "offset", "limit": page, "offset_param": "offset",
                          "limit_param": "limit", "total_path": "total"},
        },
        "resources": [{"name": "consumption", "endpoint": {
            "path": "consumption", "params": {"from": since, "to": until},
            "data_selector": "data"}}],
    })
    pipeline = dlt.pipeline(pipeline_name="bench_peers_dlt", pipelines_dir=str(workdir),
                            destination=dlt.destinations.postgres(dsn),
                            dataset_name="bench_dlt", dev_mode=True)
    started = time.perf_counter()
    pipeline.run(source)
    seconds = time.perf_counter() - started
    with psycopg2.connect(dsn) as conn, conn.cursor() as cursor:
        cursor.execute(f"SELECT count(*), sum(quantity) FROM {pipeline.dataset_name}.consumption")
        rows, total = cursor.fetchone()
        cursor.execute(f"DROP SCHEMA {pipeline.dataset_name} CASCADE")
    return {"seconds": seconds, "rows": rows, "sum": float(total or 0)}


def airbyte_read(base: str, since: str, until: str, page: int, workdir: Path) -> dict:
    (workdir / "manifest.yaml").write_text(MANIFEST)
    (workdir / "config.json").write_text(json.dumps(
        {"base_url": base, "api_key": API_KEY, "from": since, "to": until, "page": page}))
    (workdir / "catalog.json").write_text(json.dumps({"streams": [{
        "stream": {"name": "consumption", "json_schema": {},
                   "supported_sync_modes": ["full_refresh"]},
        "sync_mode": "full_refresh", "destination_sync_mode": "overwrite"}]}))
    command = [str(Path(sys.executable).parent / "source-declarative-manifest"), "read",
               "--manifest-path", "manifest.yaml", "--config", "config.json",
               "--catalog", "catalog.json"]
    out = workdir / "messages.jsonl"
    started = time.perf_counter()
    with out.open("wb") as sink:
        subprocess.run(command, cwd=workdir, stdout=sink, check=True)
    seconds = time.perf_counter() - started  # its start-up included: it is one command
    rows, total = 0, 0.0
    with out.open() as messages:
        for line in messages:
            if line.startswith('{"type":"RECORD"') or '"type": "RECORD"' in line[:30]:
                record = json.loads(line)["record"]["data"]
                rows += 1
                total += record["quantity"]
    out.unlink()
    return {"seconds": seconds, "rows": rows, "sum": total}


if __name__ == "__main__":
    tool, base, dsn, since, until, page, workdir = sys.argv[1:8]
    folder = Path(workdir)
    folder.mkdir(parents=True, exist_ok=True)
    if tool == "dlt":
        print(json.dumps(dlt_load(base, dsn, since, until, int(page), folder)))
    else:
        print(json.dumps(airbyte_read(base, since, until, int(page), folder)))
