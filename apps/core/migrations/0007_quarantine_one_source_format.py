"""Quarantine entries written before the one writer: `<app>:<object>:<id>` sources and the one
payload shape (the record at the top, what arrived under "raw", the writer's facts under
"context"), so the admin's search by source and the delivery accounts find old and new alike.

    dexma:<key>               -> dexma:datasource:<key>    reading_id, datasource -> context
    wattics:<meter>           -> wattics:stream:<meter>    the reading's ids -> context
    wattics stream <meter>    -> wattics:stream:<meter>    packet -> raw, the answer -> context
    pull:<key>:<role>         -> pull:connection:<key>     role -> context
    pull:<key>                -> pull:connection:<key>
    partner_api:<prefix>      -> partner_api:key:<prefix>  record -> raw
"""

from django.db import migrations


def _reading(apps, device_id, parameter_id, ts):
    Device = apps.get_model("core", "Device")
    Parameter = apps.get_model("core", "Parameter")
    Reading = apps.get_model("core", "Reading")
    reading = Reading.objects.filter(device_id=device_id, parameter_id=parameter_id,
                                     ts=ts).first()
    return {
        "device": Device.objects.filter(pk=device_id).values_list(
            "external_id", flat=True).first(),
        "parameter": Parameter.objects.filter(pk=parameter_id).values_list(
            "key", flat=True).first(),
        "ts": ts,
        "period_end": (reading.period_end.isoformat()
                       if reading is not None and reading.period_end else None),
    }


def _rewritten(apps, source, payload):
    """The entry's new (source, payload), or None if it is already in the one format."""
    app, _, rest = source.partition(":")
    if source.startswith("wattics stream "):
        meter = source.removeprefix("wattics stream ")
        payload = {"raw": payload.get("packet"),
                   "context": {"status": payload.get("status"), "answer": payload.get("answer")}}
        return f"wattics:stream:{meter}", payload
    if not rest or ":" in rest and app != "pull":
        return None
    if app == "dexma":
        context = {k: payload.pop(k) for k in ("reading_id", "datasource") if k in payload}
        return f"dexma:datasource:{rest}", {**payload, "context": context}
    if app == "wattics":
        context = {k: payload.pop(k) for k in ("device_id", "parameter_id", "field")
                   if k in payload}
        record = _reading(apps, context.get("device_id"), context.get("parameter_id"),
                          payload.get("ts"))
        return f"wattics:stream:{rest}", {**record, "value": payload.get("value"),
                                          "context": context}
    if app == "pull":
        key, _, role = rest.partition(":")
        if key == "connection":
            return None
        if role:
            payload = {**payload, "context": {**payload.get("context", {}), "role": role}}
        return f"pull:connection:{key}", payload
    if app == "partner_api":
        if "record" in payload:
            payload = {"raw": payload.pop("record"), **payload}
        return f"partner_api:key:{rest}", payload
    return None


def one_source_format(apps, schema_editor):
    Quarantine = apps.get_model("core", "Quarantine")
    changed = []
    for entry in Quarantine.objects.filter(source__regex=r"^(dexma|wattics|pull|partner_api)[: ]"):
        if not isinstance(entry.payload, dict):
            continue
        new = _rewritten(apps, entry.source, dict(entry.payload))
        if new is not None:
            entry.source, entry.payload = new[0][:128], new[1]
            changed.append(entry)
    Quarantine.objects.bulk_update(changed, ["source", "payload"], batch_size=500)


class Migration(migrations.Migration):
    dependencies = [("core", "0006_readingcommit")]

    operations = [migrations.RunPython(one_source_format, migrations.RunPython.noop)]
