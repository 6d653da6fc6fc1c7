"""`DeliveryLink.examined_seq` -> `examined_commit_seq`: the deployment's reading commit the
link's planner looked through, not to be mistaken for `WatticsStream.examined_seq` (the
readings a Wattics stream examined). A rename: values kept."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("core", "0011_run_kinds_app_job")]

    operations = [
        migrations.RenameField(model_name="deliverylink", old_name="examined_seq",
                               new_name="examined_commit_seq"),
    ]
