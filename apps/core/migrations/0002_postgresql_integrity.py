"""PostgreSQL-only structure Django's ORM cannot express.

- A sequence for Reading.seq (drawn by the ingest).
- Composite foreign keys so a device can only hang under a datasource and a site of its own
  deployment: the tenant line enforced by the database, not only by code.
- A BRIN index for time-range scans over the readings table (tiny, cheap to maintain).
"""

from django.db import migrations

FORWARD = [
    "CREATE SEQUENCE IF NOT EXISTS core_reading_seq AS bigint",
    "ALTER TABLE core_datasource ADD CONSTRAINT datasource_id_deployment UNIQUE (id, deployment_id)",
    "ALTER TABLE core_site ADD CONSTRAINT site_id_deployment UNIQUE (id, deployment_id)",
    "ALTER TABLE core_device ADD CONSTRAINT device_datasource_same_deployment "
    "FOREIGN KEY (datasource_id, deployment_id) REFERENCES core_datasource (id, deployment_id) "
    "ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED",
    "ALTER TABLE core_device ADD CONSTRAINT device_site_same_deployment "
    "FOREIGN KEY (site_id, deployment_id) REFERENCES core_site (id, deployment_id) "
    "DEFERRABLE INITIALLY DEFERRED",
    "CREATE INDEX IF NOT EXISTS reading_ts_brin ON core_reading USING brin (ts)",
]

BACKWARD = [
    "DROP INDEX IF EXISTS reading_ts_brin",
    "ALTER TABLE core_device DROP CONSTRAINT IF EXISTS device_site_same_deployment",
    "ALTER TABLE core_device DROP CONSTRAINT IF EXISTS device_datasource_same_deployment",
    "ALTER TABLE core_site DROP CONSTRAINT IF EXISTS site_id_deployment",
    "ALTER TABLE core_datasource DROP CONSTRAINT IF EXISTS datasource_id_deployment",
    "DROP SEQUENCE IF EXISTS core_reading_seq",
]


def _run(statements):
    def apply(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        for sql in statements:
            schema_editor.execute(sql)

    return apply


class Migration(migrations.Migration):
    dependencies = [("core", "0001_initial")]

    operations = [migrations.RunPython(_run(FORWARD), _run(BACKWARD))]
