import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("wattics", "0002_sweep_rounds")]
AFTER = [("wattics", "0003_examined_seq")]


def migrate(targets) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)


def column_values(column: str) -> list[tuple[str, int]]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT meter_id, {column} FROM wattics_watticsstream ORDER BY meter_id")
        return cursor.fetchall()


@pytest.mark.django_db(transaction=True)
def test_renaming_planned_seq_to_examined_seq_keeps_every_stream_value(
        deployment, make_stream):
    from apps.wattics.models import WatticsStream

    for meter, seq in (("wm-1", 0), ("wm-2", 41), ("wm-3", 9_000_000_000)):
        WatticsStream.objects.filter(pk=make_stream(deployment, meter).pk).update(
            examined_seq=seq)
    migrate(BEFORE)
    try:
        assert column_values("planned_seq") == [("wm-1", 0), ("wm-2", 41),
                                                ("wm-3", 9_000_000_000)]
        with connection.cursor() as cursor:
            cursor.execute("UPDATE wattics_watticsstream SET planned_seq = planned_seq + 1")
    finally:
        migrate(AFTER)
    assert column_values("examined_seq") == [("wm-1", 1), ("wm-2", 42),
                                             ("wm-3", 9_000_000_001)]
