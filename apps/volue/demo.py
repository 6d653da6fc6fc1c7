"""The demo customer: the demo deployment as one Volue user with its meters and resources.

Registration itself happens once the server runs (the `volue.sync` schedule); the sandbox
then raises a power-limit event over past hours, and the hub reports that event's energy.
"""

from __future__ import annotations

from collections.abc import Callable

from apps.core.models import Datasource, Deployment, Device
from apps.volue.models import LocationType, VolueCustomer, VolueMeter, VolueResource

# Norwegian-style 18-digit metering point ids, one per demo meter.
METER_POINTS = {
    "MAD-MAIN-01": "707057500000000011",
    "MAD-HVAC-02": "707057500000000028",
    "MAD-PV-03": "707057500000000035",
    "VLC-MAIN-01": "707057500000000042",
}


def demo_setup(*, deployment: Deployment, write: Callable[[str], object]) -> None:
    customer, created = VolueCustomer.objects.get_or_create(
        deployment=deployment, key="acme",
        defaults={"name": "Acme Retail", "location_type": LocationType.COMMERCIAL},
    )
    # The demo's metered feed; other demo datasources have no readings for past events.
    customer.datasources.add(*Datasource.objects.filter(deployment=deployment, key="acme-gateway"))
    devices = {d.external_id: d for d in Device.objects.filter(deployment=deployment)}
    for external_id, meter_point_id in METER_POINTS.items():
        device = devices.get(external_id)
        if device is None:
            continue
        VolueMeter.objects.get_or_create(
            customer=customer, device=device,
            defaults={"meter_point_id": meter_point_id, "meter_number": external_id,
                      "location_type": LocationType.COMMERCIAL},
        )
    main = VolueMeter.objects.filter(customer=customer, device__external_id="MAD-MAIN-01").first()
    VolueResource.objects.get_or_create(
        resource_id="acme-hvac-plant", defaults={
            "customer": customer, "kind": VolueResource.Kind.RESOURCE, "resource_type": "HVAC",
            "metadata": {"brand": "Daikin", "model": "EWAD-TZ", "capacity": 120},
            "meter": main, "device": devices.get("MAD-HVAC-02"),
        },
    )
    VolueResource.objects.get_or_create(
        resource_id="acme-van-01", defaults={
            "customer": customer, "kind": VolueResource.Kind.VEHICLE, "resource_type": "Vehicle",
            "metadata": {"brand": "Tesla", "model": "Model 3", "year": 2022,
                         "vin": "5YJ3E1EA7KF000001"},
            "meter": main,
        },
    )
    write(f"  Volue customer {customer} {'created' if created else 'kept'}; "
          f"{customer.meters.count()} meters, {customer.resources.count()} resources "
          "(registered by the 'volue: registrations' schedule once the server runs)")
