import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from apps.core.models import Run


def migrate(targets=None) -> None:
    """Migrate to `targets`; None: to the latest migrations again."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets or executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_old_run_kinds_are_renamed_to_app_dot_job_and_others_left_alone():
    migrate([("core", "0010_deliverylink_examined_seq")])
    try:
        for kind, target in (("delivery", "wattics wm-1"), ("wattics_backfill", "1 stream(s)"),
                             ("pull-sync", "acme"), ("ingest", "partner API push (k)"),
                             ("ingest", "demo meters of demo-acme"),
                             ("ingest", "something else"), ("dexma.deliver", "ds 1")):
            Run.objects.create(kind=kind, target=target)
        migrate([("core", "0011_run_kinds_app_job")])
        kinds = sorted(Run.objects.values_list("kind", "target"))
    finally:
        migrate()
    assert kinds == [
        ("dexma.deliver", "ds 1"),
        ("ingest", "something else"),
        ("partner_api.push", "partner API push (k)"),
        ("pull.sync", "acme"),
        ("sandbox.demo_meters", "demo meters of demo-acme"),
        ("wattics.backfill", "1 stream(s)"),
        ("wattics.push", "wattics wm-1"),
    ]


@pytest.mark.django_db(transaction=True)
def test_renaming_the_links_examined_seq_keeps_its_value(deployment):
    from apps.core.models import DeliveryLink

    link = DeliveryLink.objects.create(platform="dexma", name="ds", deployment=deployment,
                                       examined_commit_seq=41)
    migrate([("core", "0011_run_kinds_app_job")])
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT examined_seq FROM core_deliverylink WHERE id = %s", [link.pk])
            before = cursor.fetchone()[0]
    finally:
        migrate()
    assert before == 41
    assert DeliveryLink.objects.get(pk=link.pk).examined_commit_seq == 41
