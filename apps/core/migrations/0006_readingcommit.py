import django.db.models.deletion
from django.db import migrations, models
from django.db.models import Max
from django.utils import timezone


def first_commits(apps, schema_editor):
    """Readings stored before commits were noted all date from now: one commit each."""
    Deployment = apps.get_model("core", "Deployment")
    Reading = apps.get_model("core", "Reading")
    ReadingCommit = apps.get_model("core", "ReadingCommit")
    top = Reading.objects.aggregate(m=Max("seq"))["m"]
    if top is None:
        return
    now = timezone.now()
    ReadingCommit.objects.bulk_create(
        ReadingCommit(deployment_id=pk, seq=top, at=now)
        for pk in Deployment.objects.values_list("pk", flat=True))


class Migration(migrations.Migration):

    dependencies = [
        ("core", "0005_reading_no_database_foreign_keys"),
    ]

    operations = [
        migrations.CreateModel(
            name="ReadingCommit",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True,
                                           serialize=False, verbose_name="ID")),
                ("seq", models.BigIntegerField()),
                ("at", models.DateTimeField()),
                ("deployment", models.ForeignKey(
                    on_delete=django.db.models.deletion.CASCADE, related_name="+",
                    to="core.deployment")),
            ],
            options={
                "indexes": [
                    models.Index(fields=["deployment", "seq"], name="readingcommit_seq_idx"),
                    models.Index(fields=["deployment", "at"], name="readingcommit_at_idx"),
                ],
            },
        ),
        migrations.RunPython(first_commits, migrations.RunPython.noop),
    ]
