"""The partner API's endpoints: one view per resource, thin over selectors and services."""

from __future__ import annotations

import json

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.logs import log_context_bind
from apps.core.models import Deployment
from apps.partner_api import selectors, serializers, services
from apps.partner_api.errors import ApiError
from apps.partner_api.params import date_range, page_build, page_request, parse_instant

ERRORS = {
    code: OpenApiResponse(serializers.ErrorSerializer, description=text)
    for code, text in {
        400: "Invalid parameters or body; `error.message` says what to fix.",
        401: "No API key, or an invalid or revoked one.",
        403: "The key does not reach this deployment, or is read-only for a write.",
        404: "No such record in this deployment.",
        429: "Rate limit exceeded: wait `Retry-After` seconds.",
    }.items()
}
# A day (midnight in the deployment's zone) or an instant with an offset.
DATE_OR_TIME = {"oneOf": [{"type": "string", "format": "date"},
                          {"type": "string", "format": "date-time"}]}
DEPLOYMENT = OpenApiParameter(
    "deployment", str, description="Deployment slug. Needed only when the key reaches "
    "several deployments.")
PAGING = [
    OpenApiParameter("limit", {"type": "integer", "minimum": 1,
                               "maximum": settings.PARTNER_API_MAX_PAGE_SIZE}, description=(
        f"Page size, default {settings.PARTNER_API_PAGE_SIZE}, at most "
        f"{settings.PARTNER_API_MAX_PAGE_SIZE}.")),
    OpenApiParameter("offset", {"type": "integer", "minimum": 0, "maximum": 2**62},
                     description="Records to skip (offset pagination)."),
    OpenApiParameter("cursor", str, description=(
        "Opaque `next_cursor` of an earlier page (cursor pagination; not with offset). "
        "Records are ordered by change, so a cursor kept between pulls returns exactly what "
        "was added or changed since.")),
]
UPDATED_SINCE = OpenApiParameter(
    "updated_since", DATE_OR_TIME, description="Only records added or changed since this instant "
    "(YYYY-MM-DD or ISO 8601 with an offset). For usage and readings it may repeat a few "
    "records changed up to five minutes earlier; a cursor is exact.")
ACTIVE = OpenApiParameter("active", bool, description="Only active (true) or inactive (false).")
SERIES = [
    OpenApiParameter("from", DATE_OR_TIME, description=(
        "Inclusive start: YYYY-MM-DD (midnight in the deployment's time zone) or ISO 8601 "
        "with an offset.")),
    OpenApiParameter("to", DATE_OR_TIME, description=(
        f"Exclusive end, after `from`; at most {settings.PARTNER_API_MAX_RANGE_DAYS} days "
        "after it.")),
    OpenApiParameter("meter", str, many=True, explode=True, description=(
        "Meter external_id; repeat for several.")),
    OpenApiParameter("parameter", str, description="Only this parameter key."),
]
CONVENTIONS = """

**Paging.** `offset`/`limit`, or the opaque `cursor` from `next_cursor`. Both styles answer
`next` in the body and in an RFC 8288 `Link` header (`rel="next"`, plus `first`/`prev` with
offsets). Records are in change order: a record added while you page appears after all
existing ones, so no page repeats or skips one."""


def _bool(raw: str | None, name: str) -> bool | None:
    if raw in (None, ""):
        return None
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise ApiError(f"{name} must be true or false", fields={name: ["true or false"]})


class PartnerApiView(APIView):
    """Authentication, permission, throttling and errors come from REST_FRAMEWORK."""

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        length = int(request.META.get("CONTENT_LENGTH") or 0)
        if length > settings.PARTNER_API_MAX_BODY_BYTES:
            raise ApiError(f"the body has {length:,} bytes, more than "
                           f"{settings.PARTNER_API_MAX_BODY_BYTES:,}; send smaller batches",
                           code="too_large", status_code=413)
        # PostgreSQL text cannot hold NUL: refused here rather than failing the query.
        params = request.query_params
        if "\x00" in request.path or any(
            "\x00" in name or any("\x00" in v for v in values) for name, values in params.lists()
        ):
            raise ApiError("the URL contains a NUL character (%00); remove it")

    def deployment(self) -> Deployment:
        found = self._deployment()
        log_context_bind(deployment=found.slug)
        return found

    def _deployment(self) -> Deployment:
        reachable = self.request.user.key.deployments.filter(is_active=True)
        slug = self.request.query_params.get("deployment")
        if slug:
            found = reachable.filter(slug=slug).first()
            if found is None:
                raise ApiError(f"this API key has no access to deployment '{slug}'",
                               code="deployment_forbidden", status_code=403)
            return found
        found = list(reachable[:2])
        if len(found) == 1:
            return found[0]
        if not found:
            raise ApiError("this API key reaches no active deployment; ask the hub operator",
                           code="deployment_forbidden", status_code=403)
        slugs = ", ".join(sorted(reachable.values_list("slug", flat=True)))
        raise ApiError(f"this API key reaches several deployments ({slugs}): add "
                       "?deployment=<slug>", code="deployment_required",
                       fields={"deployment": ["required for this key"]})

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        limit = getattr(request, "rate_limit", None)
        if limit:
            response["X-RateLimit-Limit"] = str(limit[0])
            response["X-RateLimit-Remaining"] = str(limit[1])
            response["X-RateLimit-Reset"] = str(limit[2])
        return response

    def paged(self, page, rows: list[dict], positions: list[int]) -> Response:
        built = page_build(self.request, page, rows, positions)
        response = Response({"results": built.results, "next": built.next,
                             "previous": built.previous, "next_cursor": built.next_cursor})
        if built.link:
            response["Link"] = built.link
        return response

    def updated_since(self, deployment: Deployment):
        raw = self.request.query_params.get("updated_since")
        if raw is None:
            return None  # an empty value is refused like any other that is not a date
        return parse_instant(raw, name="updated_since", tz=deployment.timezone)


# --- assets --------------------------------------------------------------------------------

class AssetListView(PartnerApiView):
    @extend_schema(
        operation_id="assets_list", tags=["assets"],
        summary="List assets (buildings, sites)",
        description="Ordered by creation; inactive assets are listed with active=false."
        + CONVENTIONS,
        parameters=[DEPLOYMENT, *PAGING, UPDATED_SINCE, ACTIVE],
        responses={200: serializers.AssetPageSerializer, **ERRORS},
    )
    def get(self, request):
        deployment = self.deployment()
        page = page_request(request.query_params)
        rows, positions = selectors.assets_list(
            deployment=deployment, page=page, updated_since=self.updated_since(deployment),
            active=_bool(request.query_params.get("active"), "active"))
        return self.paged(page, rows, positions)


class AssetDetailView(PartnerApiView):
    @extend_schema(operation_id="assets_retrieve", tags=["assets"], summary="One asset",
                   parameters=[DEPLOYMENT],
                   responses={200: serializers.AssetOutputSerializer, **ERRORS})
    def get(self, request, external_id: str):
        site = selectors.asset_get(deployment=self.deployment(), external_id=external_id)
        return Response(selectors.asset_data(site))

    @extend_schema(
        operation_id="assets_upsert", tags=["assets"], summary="Create or update an asset",
        description="Upsert by external_id: 201 when created, 200 when updated. Needs a "
        "read-write key.", parameters=[DEPLOYMENT],
        request=serializers.AssetInputSerializer,
        responses={200: serializers.AssetOutputSerializer,
                   201: serializers.AssetOutputSerializer, **ERRORS},
    )
    def put(self, request, external_id: str):
        deployment = self.deployment()
        body = serializers.AssetInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        site, created = services.site_upsert(deployment=deployment, external_id=external_id,
                                             data=body.to_model_fields())
        return Response(selectors.asset_data(site), status=201 if created else 200)


# --- meters --------------------------------------------------------------------------------

class MeterListView(PartnerApiView):
    @extend_schema(
        operation_id="meters_list", tags=["meters"], summary="List meters",
        description="Ordered by creation. `type` is Scaler's meter type (Energy, Water, "
        "Waste), `subtype` its sub-category." + CONVENTIONS,
        parameters=[DEPLOYMENT, *PAGING, UPDATED_SINCE, ACTIVE,
                    OpenApiParameter("asset", str, description="Only this asset's meters.")],
        responses={200: serializers.MeterPageSerializer, **ERRORS},
    )
    def get(self, request):
        deployment = self.deployment()
        page = page_request(request.query_params)
        rows, positions = selectors.meters_list(
            deployment=deployment, page=page, updated_since=self.updated_since(deployment),
            active=_bool(request.query_params.get("active"), "active"),
            asset=request.query_params.get("asset") or None)
        return self.paged(page, rows, positions)


class MeterDetailView(PartnerApiView):
    @extend_schema(operation_id="meters_retrieve", tags=["meters"], summary="One meter",
                   parameters=[DEPLOYMENT],
                   responses={200: serializers.MeterOutputSerializer, **ERRORS})
    def get(self, request, external_id: str):
        device = selectors.meter_get(deployment=self.deployment(), external_id=external_id)
        return Response(selectors.meter_data(device))

    @extend_schema(
        operation_id="meters_upsert", tags=["meters"], summary="Create or update a meter",
        description="Upsert by external_id: 201 when created, 200 when updated. New meters "
        "join the deployment's 'partner-api' datasource. Needs a read-write key.",
        parameters=[DEPLOYMENT], request=serializers.MeterInputSerializer,
        responses={200: serializers.MeterOutputSerializer,
                   201: serializers.MeterOutputSerializer, **ERRORS,
                   409: OpenApiResponse(serializers.ErrorSerializer, description=(
                       "`asset` names no asset of this deployment yet: create it first."))},
    )
    def put(self, request, external_id: str):
        deployment = self.deployment()
        body = serializers.MeterInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        device, created = services.meter_upsert(deployment=deployment, external_id=external_id,
                                                data=body.to_model_fields())
        return Response(selectors.meter_data(device), status=201 if created else 200)


# --- usage and readings --------------------------------------------------------------------

def _series_filter(view: PartnerApiView, deployment: Deployment) -> selectors.SeriesFilter:
    params = view.request.query_params
    span = date_range(params, tz=deployment.timezone)
    meters = tuple(m for raw in params.getlist("meter") for m in raw.split(",") if m)
    since = view.updated_since(deployment)
    return selectors.SeriesFilter(
        meters=meters, parameter=params.get("parameter") or None, start=span.start,
        end=span.end,
        after_seq=selectors.seq_floor(deployment=deployment, updated_since=since)
        if since else 0)


class UsageView(PartnerApiView):
    @extend_schema(
        operation_id="usage_list", tags=["usage"], summary="Usage in consumption format",
        description=serializers.USAGE_DESCRIPTION + CONVENTIONS,
        parameters=[DEPLOYMENT, *SERIES, UPDATED_SINCE, *PAGING],
        responses={200: serializers.UsagePageSerializer, **ERRORS},
    )
    def get(self, request):
        deployment = self.deployment()
        page = page_request(request.query_params)
        rows, positions = selectors.usage_list(
            deployment=deployment, flt=_series_filter(self, deployment), page=page)
        return self.paged(page, rows, positions)


READINGS_POST = f"""Push up to {settings.PARTNER_API_MAX_BATCH:,} readings. Each record is
validated on its own: the valid ones are stored (a reading with the same meter, parameter and
`ts` as a stored one overwrites it), the invalid ones are quarantined for the operator and
listed in `rejections` by their index in `readings`. The answer comes after the commit.
It is 201 when the batch stored at least one new reading, 200 otherwise (overwrites,
unchanged readings and rejections only), with the counts and rejections in the body either way.

Send an `Idempotency-Key` header (any unique string, at most 255 characters) to make a retry
safe: the same key with the same body returns the first answer (header
`Idempotent-Replayed: true`) without storing anything again; the same key with another body
is refused with 422. Keys are remembered for 24 hours.

Scaler's fields map onto parameters: consumption → `active_energy_delta` (with `period_end`),
redelivery → `exported_active_energy_delta`, meter stand → `active_energy`; cost, currency and
estimated ride on the reading."""


class ReadingsView(PartnerApiView):
    @extend_schema(
        operation_id="readings_list", tags=["readings"], summary="Readings in reading format",
        description="Point readings: cumulative meter indexes (meter stands) and "
        "instantaneous values, each at its timestamp (ISO 8601, UTC)." + CONVENTIONS,
        parameters=[DEPLOYMENT, *SERIES, UPDATED_SINCE, *PAGING],
        responses={200: serializers.ReadingPageSerializer, **ERRORS},
    )
    def get(self, request):
        deployment = self.deployment()
        page = page_request(request.query_params)
        rows, positions = selectors.readings_list(
            deployment=deployment, flt=_series_filter(self, deployment), page=page)
        return self.paged(page, rows, positions)

    @extend_schema(
        operation_id="readings_push", tags=["readings"], summary="Push a batch of readings",
        description=READINGS_POST,
        parameters=[DEPLOYMENT, OpenApiParameter(
            "Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER,
            description="Makes a retried request a no-op that returns the first answer.")],
        request=serializers.ReadingBatchDocSerializer,
        responses={201: serializers.BatchResultSerializer,
                   200: serializers.BatchResultSerializer,
                   413: OpenApiResponse(serializers.ErrorSerializer,
                                        description="Body too large."),
                   422: OpenApiResponse(serializers.ErrorSerializer,
                                        description="Idempotency-Key reused with another "
                                        "body."),
                   **ERRORS},
    )
    def post(self, request):
        deployment = self.deployment()
        data = request.data
        records = data.get("readings") if isinstance(data, dict) else None
        maximum = settings.PARTNER_API_MAX_BATCH
        if not isinstance(records, list) or not records:
            raise ApiError("the body must be {\"readings\": [ … ]} with at least one reading",
                           fields={"readings": ["a non-empty list of readings"]})
        if len(records) > maximum:
            raise ApiError(f"{len(records):,} readings in one request; at most {maximum:,}: "
                           "split the batch", code="batch_too_large",
                           fields={"readings": [f"at most {maximum} items"]})
        key = request.user.key
        idempotency_key = request.headers.get("Idempotency-Key")
        fingerprint = ""
        if idempotency_key:
            fingerprint = services.request_fingerprint(
                method="POST", path=f"{request.path}?deployment={deployment.slug}",
                body=json.dumps(data, sort_keys=True, default=str).encode())
        answer = services.idempotent(
            key=key, idempotency_key=idempotency_key, fingerprint=fingerprint,
            produce=lambda: services.readings_push(deployment=deployment, key=key,
                                                   records=records))
        response = Response(answer.body, status=answer.status)
        if idempotency_key:
            response["Idempotent-Replayed"] = "true" if answer.replayed else "false"
        return response
