"""Enrollment, eligibility and compensation: what decides whether a customer earns anything
from the reports the hub sends. Read from the platform, shown in the admin."""

from __future__ import annotations

from django.utils import timezone

from apps.core.http import PermanentError
from apps.volue.client import VolueClient
from apps.volue.models import VolueCustomer


def customer_status_refresh(*, customer: VolueCustomer, client: VolueClient) -> VolueCustomer:
    """Enrollment, eligibility and this month's compensation of a registered customer, and
    the eligibility of each of its metering points."""
    if not customer.remote_user_id:
        return customer
    user_id = customer.remote_user_id
    errors = []
    try:
        enrollment = client.enrollment_get(user_id=user_id)
        customer.enrolled, customer.enrollment_id = enrollment.enrolled, enrollment.enrollment_id
        customer.enrolled_at = enrollment.enrolled_at
        customer.eligible = client.eligibility_get(user_id=user_id)
        customer.eligibility_updated_at = timezone.now()
        compensation = client.compensation_get(user_id=user_id)
        customer.compensation_period = f"{compensation.period_from}…{compensation.period_to}"
        by_location = {row.location_id: row for row in compensation.locations}
        for meter in customer.meters.filter(removed_at__isnull=True).exclude(remote_id=""):
            meter.eligible = client.meter_point_eligible(meter_point_id=meter.meter_point_id)
            row = by_location.get(meter.remote_id)
            meter.compensation_active = row.active_amount if row else None
            meter.compensation_blocked = row.blocked_amount if row else None
            meter.compensation_currency = row.currency if row else ""
            meter.compensation_problems = "\n".join(row.problems) if row else ""
            meter.save(update_fields=["eligible", "compensation_active", "compensation_blocked",
                                      "compensation_currency", "compensation_problems"])
    except PermanentError as exc:
        errors.append(str(exc))
    customer.status_checked_at, customer.status_error = timezone.now(), "\n".join(errors)
    customer.save(update_fields=[
        "enrolled", "enrollment_id", "enrolled_at", "eligible", "eligibility_updated_at",
        "compensation_period", "status_checked_at", "status_error",
    ])
    return customer


def customer_enroll(*, customer: VolueCustomer, client: VolueClient) -> VolueCustomer:
    """Enroll the customer's user (`POST /users/{userId}/enrollment`), then re-read its status.

    Raises `PermanentError` naming what the platform refused (for example: not eligible)."""
    if not customer.remote_user_id:
        raise PermanentError(f"customer {customer} is not registered on Volue yet; run the "
                             "registration first")
    client.enrollment_create(user_id=customer.remote_user_id)
    return customer_status_refresh(customer=customer, client=client)


def customer_unenroll(*, customer: VolueCustomer, client: VolueClient) -> VolueCustomer:
    if customer.remote_user_id:
        client.enrollment_delete(user_id=customer.remote_user_id)
    return customer_status_refresh(customer=customer, client=client)
