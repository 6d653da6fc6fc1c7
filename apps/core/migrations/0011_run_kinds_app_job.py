"""Run-log kinds in the one vocabulary `<app>.<job>` (as the tasks' lock names and DEXMA's and
Volue's runs already were), so the admin's filter and the metrics' `kind` label read alike:

    delivery                        -> wattics.push       (only Wattics wrote it)
    wattics_backfill                -> wattics.backfill
    pull-sync                       -> pull.sync
    ingest, "partner API push (…)"  -> partner_api.push
    ingest, "demo meters of …"      -> sandbox.demo_meters
"""

from django.db import migrations, models

RENAMED = (
    ("delivery", "", "wattics.push"),
    ("wattics_backfill", "", "wattics.backfill"),
    ("pull-sync", "", "pull.sync"),
    ("ingest", "partner API push", "partner_api.push"),
    ("ingest", "demo meters of", "sandbox.demo_meters"),
)


def _forwards(apps, schema_editor):
    Run = apps.get_model("core", "Run")
    for old, target, new in RENAMED:
        Run.objects.filter(kind=old, target__startswith=target).update(kind=new)


def _backwards(apps, schema_editor):
    Run = apps.get_model("core", "Run")
    for old, target, new in RENAMED:
        Run.objects.filter(kind=new, target__startswith=target).update(kind=old)


class Migration(migrations.Migration):
    dependencies = [("core", "0010_deliverylink_examined_seq")]

    operations = [
        migrations.AlterField(
            model_name="run",
            name="kind",
            field=models.CharField(
                help_text="<app>.<job>: dexma.deliver, wattics.push, pull.sync, …",
                max_length=32,
            ),
        ),
        migrations.RunPython(_forwards, _backwards),
    ]
