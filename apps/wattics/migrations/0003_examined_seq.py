from django.db import migrations


class Migration(migrations.Migration):
    """`planned_seq` is what the planner examined, planned or not: named so (values kept)."""

    dependencies = [
        ("wattics", "0002_sweep_rounds"),
    ]

    operations = [
        migrations.RenameField(
            model_name="watticsstream", old_name="planned_seq", new_name="examined_seq"
        ),
    ]
