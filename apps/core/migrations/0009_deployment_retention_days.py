from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("core", "0008_reading_partitioned_by_month")]

    operations = [
        migrations.AddField(
            model_name="deployment",
            name="retention_days",
            field=models.PositiveIntegerField(
                blank=True, null=True,
                help_text="Readings older than this many days leave once every delivery link "
                          "of the deployment has delivered them. Blank: keep everything."),
        ),
    ]
