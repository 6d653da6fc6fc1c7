"""Reads for the embedded pages and the admin."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from django.db.models import Count, OuterRef, QuerySet, Subquery

from apps.core.models import Deployment, Device, OutboundBatch, Parameter, Quarantine, Reading
from apps.core.selectors import LinkAccounts, readings_of_pairs
from apps.dexma.models import DexmaDatasource
from apps.dexma.services.batches import channels_of

# For the same quantity, the plain kind is the one worth a datapoint: the platform derives
# intervals from a cumulative index, and interval codes cannot mix resolutions.
_KIND_PREFERENCE = {
    Parameter.Kind.CUMULATIVE: 0,
    Parameter.Kind.INSTANTANEOUS: 0,
    Parameter.Kind.INTERVAL: 1,
}


@dataclass(slots=True)
class ParameterChoice:
    parameter: Parameter
    checked: bool


@dataclass(slots=True)
class DeviceChoice:
    device: Device
    checked: bool
    parameters: list[ParameterChoice] = field(default_factory=list)


@dataclass(slots=True)
class DeviceGroup:
    site: str
    datasource: str
    devices: list[DeviceChoice] = field(default_factory=list)


def device_choices(
    *, deployment: Deployment, datasource: DexmaDatasource | None = None
) -> list[DeviceGroup]:
    """The deployment's active meters grouped by site and hub datasource, each with the
    DEXMA-sendable parameters it has readings of.

    For a new datasource no device is ticked, and per device one parameter per quantity is
    ticked (what is useful without paying twice); for an existing one, what it sends.
    """
    devices = list(
        Device.objects.filter(deployment=deployment, is_active=True)
        .select_related("site", "datasource")
        .order_by("site__name", "datasource__name", "name", "external_id")
    )
    measured: dict[int, set[int]] = defaultdict(set)
    for device_id, parameter_id in (
        Reading.objects.filter(device__in=devices, parameter__dexma_code__isnull=False)
        .values_list("device_id", "parameter_id")
        .distinct()
        .order_by()
    ):
        measured[device_id].add(parameter_id)
    parameters = {p.pk: p for p in Parameter.objects.filter(dexma_code__isnull=False)}
    current: dict[int, set[int]] = {}
    if datasource is not None:
        for selection in datasource.selections.prefetch_related("parameters"):
            current[selection.device_id] = {p.pk for p in selection.parameters.all()}

    groups: dict[tuple[str, str], DeviceGroup] = {}
    for device in devices:
        offered = measured[device.pk] | current.get(device.pk, set())
        params = sorted((parameters[p] for p in offered if p in parameters),
                        key=lambda p: (p.dexma_code, _KIND_PREFERENCE[p.kind], p.key))
        if datasource is not None:
            checked = current.get(device.pk, set())
        else:
            checked, codes = set(), set()
            for parameter in params:
                if parameter.dexma_code not in codes:
                    codes.add(parameter.dexma_code)
                    checked.add(parameter.pk)
        site = device.site.name if device.site else "—"
        source = device.datasource.name
        group = groups.setdefault((site, source), DeviceGroup(site=site, datasource=source))
        group.devices.append(DeviceChoice(
            device=device,
            checked=device.pk in current,
            parameters=[ParameterChoice(p, p.pk in checked) for p in params],
        ))
    return list(groups.values())


def datasources_of(*, deployment: Deployment) -> QuerySet[DexmaDatasource]:
    """The deployment's registered DEXMA datasources, with their delivery link."""
    return (
        DexmaDatasource.objects.filter(deployment=deployment)
        .exclude(platform_id=None)
        .select_related("link")
        .order_by("name")
    )


def _undeliverable_reason(reason: str) -> str:
    if "misaligned" in reason:
        return "misaligned interval (IS3 drops it)"
    if "discrete resolution" in reason:
        return "second resolution of a device parameter (IS3 keeps one)"
    return "not mappable to a DEXMA code"


def datasource_accounts(*, datasource: DexmaDatasource) -> LinkAccounts:
    """Live delivery's readings (those after the datasource's live start, of the devices and
    parameters it sends now): delivered, pending, undeliverable by reason. History sent by a
    backfill is counted on the backfill."""
    accounts = LinkAccounts(scope="live delivery: readings after the datasource's start, "
                                  "of what it sends now")
    pairs = sorted(channels_of(datasource))
    if datasource.link_id is None or not pairs:
        return accounts
    live = OutboundBatch.objects.filter(link_id=datasource.link_id, seq_from__isnull=False)
    first = live.order_by("position").values_list("seq_from", flat=True).first()
    start = first if first is not None else datasource.link.cursor
    readings = readings_of_pairs(pairs, after_seq=start)
    batch_state = Subquery(live.filter(seq_from__lt=OuterRef("seq"), seq_to__gte=OuterRef("seq"))
                           .values("state")[:1])
    by_state = dict(readings.annotate(state=batch_state).values("state")
                    .annotate(n=Count("pk")).values_list("state", "n"))
    refused = {}
    for entry in Quarantine.objects.filter(
            source=Quarantine.source_for("dexma", "datasource", datasource.key)):
        context = entry.payload.get("context") or {}
        refused[context.get("reading_id")] = _undeliverable_reason(entry.reason)
    refused_states = readings.filter(pk__in=[pk for pk in refused if pk is not None]).annotate(
        state=batch_state).values_list("pk", "state")
    for pk, state in refused_states:
        by_state[state] -= 1
        reason = refused[pk]
        accounts.undeliverable[reason] = accounts.undeliverable.get(reason, 0) + 1
    state = OutboundBatch.State
    dead = by_state.pop(state.DEAD, 0)
    if dead:
        accounts.undeliverable["in dead batches (requeue them)"] = dead
    accounts.accepted = readings.count()
    accounts.delivered = by_state.pop(state.SENT, 0)
    accounts.pending = sum(by_state.values())  # open batches, and not yet planned (None)
    return accounts.close()
