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
from apps.partner_api import anchors, errors, renderers, selectors, serializers, services
from apps.partner_api.auth import Partner, key_touch
from apps.partner_api.exceptions import ApiError
from apps.partner_api.params import (
    PAGING_PARAMS,
    Bound,
    PageRequest,
    date_range,
    page_build,
    page_request,
    params_check,
    parse_instant,
)

ERRORS = {
    code: OpenApiResponse(serializers.ErrorSerializer, description=text)
    for code, text in {
        400: "Invalid parameters or body; `error.message` says what to fix.",
        401: "No API key, or an invalid or revoked one.",
        403: "The key does not reach this deployment, or is read-only for a write.",
        404: "No such record in this deployment.",
        429: "Rate limit of this key exceeded (per minute, see `X-RateLimit-Limit`): wait "
             "`Retry-After` seconds, then retry.",
        503: "The database is unavailable for a moment: retry after `Retry-After` seconds.",
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
        f"{settings.PARTNER_API_MAX_PAGE_SIZE}. `page_size` is the same.")),
    OpenApiParameter("page_size", {"type": "integer", "minimum": 1,
                                   "maximum": settings.PARTNER_API_MAX_PAGE_SIZE},
                     description="Same as `limit` (page-number paging)."),
    OpenApiParameter("offset", {"type": "integer", "minimum": 0, "maximum": 2**62},
                     description="Records to skip (offset paging)."),
    OpenApiParameter("page", {"type": "integer", "minimum": 1, "maximum": 2**62},
                     description="Page number from 1 (page-number paging: "
                     "`offset = (page - 1) * page_size`)."),
    OpenApiParameter("cursor", str, description=(
        "Opaque `next_cursor` of the previous page (cursor paging). Only one of `offset`, "
        "`page` and `cursor` per request.")),
]
UPDATED_SINCE = OpenApiParameter(
    "updated_since", DATE_OR_TIME, description="Only records whose `updated_at` is at or "
    "after this instant (inclusive; YYYY-MM-DD is midnight in the deployment's zone): every "
    "insert, correction, deactivation and, with `include_deleted`, deletion since then. Pass "
    "the newest `updated_at` of your last pull; the records changed at exactly that instant "
    "come again, so deduplicate on the record's key.")
ACTIVE = OpenApiParameter("active", bool, description="Only active (true) or inactive (false).")
INCLUDE_DELETED = OpenApiParameter(
    "include_deleted", bool, description="Also list records deleted in the last "
    f"{settings.PARTNER_API_TOMBSTONE_DAYS} days, as tombstones: `deleted: true`, "
    "`deleted_at`, `active: false`, `external_id`, and null elsewhere. Their meters' usage "
    "and readings are deleted with them.")
SERIES = [
    OpenApiParameter("from", DATE_OR_TIME, description=(
        "Inclusive start, applied to the period start (usage) or the timestamp (readings): "
        "YYYY-MM-DD (midnight in the deployment's time zone) or ISO 8601 with an offset. "
        f"Alone, it runs to now and must then be at most "
        f"{settings.PARTNER_API_MAX_RANGE_DAYS} days ago.")),
    OpenApiParameter("to", DATE_OR_TIME, description=(
        "Exclusive end, after `from` and at most "
        f"{settings.PARTNER_API_MAX_RANGE_DAYS} days after it; only with `from`.")),
    OpenApiParameter("start_date", DATE_OR_TIME, description="Same as `from` (Scaler's name)."),
    OpenApiParameter("end_date", DATE_OR_TIME, description="Same as `to` (Scaler's name)."),
    OpenApiParameter("meter", str, many=True, explode=True, description=(
        "Meter external_id; repeat (or separate with commas) for several.")),
    OpenApiParameter("parameter", str, description="Only this parameter key."),
]
CONVENTIONS = f"""

**Paging.** Five ways, one order: `offset` + `limit`; `page` + `page_size`; the opaque
`cursor` from `next_cursor`; the body's `next` URL; the RFC 8288 `Link` header (`next`,
and `first`/`prev` for offset and page-number paging). `next` and `next_cursor` are null
on the last page, so every style stops on its own. `next` continues with a cursor whatever
style the page was asked in. For usage and readings, an offset (or page number) that
continues the page before it, with the same filters, is read from that page's last record,
which the hub remembers for an hour: such pages come as fast at any depth as cursor pages.
Any other offset is counted from the first record, which takes longer the deeper it is.

**What you see when data changes while you page.** Records are ordered by an id a record
keeps for life. A correction changes a record's value and `updated_at`, never its place:
it is returned once, in the version current when its page is read. A new record takes a
place after every existing one: with offsets or page numbers it is returned at the end of
the same pull if it is stored before you get there; with `cursor`, `next` or `Link` it is
left for the next pull (a cursor carries the bound of its pull's first page: the highest
id, or with `updated_since` the newest change, that page could see). So no record is
skipped or repeated within a pull. Incremental pulls by `cursor`, `next` or `Link` are
exact: with `updated_since` set to the newest `updated_at` of the previous pull, the next
pull returns every change the previous one did not return. By offset or page number, a
record corrected after its page was read can have an older `updated_at` than a record read
later: give such pulls a lookback at least as long as a pull takes (dlt `lag`, Airbyte
`lookback_window`), or page by cursor. With `updated_since`, a record behind your page that
changes meanwhile (and so starts to match) comes with the next pull; only when the hub no
longer remembers the page before is it counted into the offsets, and the record at the
page's border then comes twice. Deleting a meter or an asset (listed as a tombstone with
`include_deleted`) removes its records: later offsets and page numbers then shift (they are
counted from the first record again) and can skip records; cursors do not.

**Errors.** An unknown or repeated query parameter gets 400 with the accepted ones listed.
Over the rate limit: 429 with `Retry-After`; every answer carries `X-RateLimit-Limit`,
`X-RateLimit-Remaining` and `X-RateLimit-Reset` (seconds). The limit is per key:
{settings.PARTNER_API_RATE_PER_MINUTE} requests a minute unless agreed otherwise."""

LIST_PARAMS = ("deployment", *PAGING_PARAMS, "updated_since")
SERIES_PARAMS = (*LIST_PARAMS, "from", "to", "start_date", "end_date", "meter", "parameter")


def _bool(raw: str | None, name: str) -> bool | None:
    if raw is None:
        return None
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise ApiError(f"{name} must be true or false", fields={name: ["true or false"]})


class PartnerApiView(APIView):
    """Authentication, permission and throttling come from REST_FRAMEWORK; every error is
    answered in the partner API's one shape (errors.py)."""

    # Query parameters each method understands; any other one is refused with 400.
    query_params_accepted: dict[str, tuple[str, ...]] = {}
    renderer_classes = [renderers.PartnerJSONRenderer]

    def get_exception_handler(self):
        return errors.exception_handler

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if getattr(self, request.method.lower(), None) is None:
            return  # dispatch answers 405, whatever the query says
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
        # A misspelt filter answered with unfiltered data looks like success: refuse it.
        accepted = self.query_params_accepted.get(request.method.lower(), ("deployment",))
        params_check(params, accepted=accepted, repeatable=("meter",))

    def deployment(self) -> Deployment:
        found = self._deployment()
        log_context_bind(deployment=found.slug)
        return found

    def _deployment(self) -> Deployment:
        partner = self.request.user
        slug = self.request.query_params.get("deployment")
        # Read with the key (auth.key_check): at most two, or the one named. The queryset is
        # built only when they were not (building it cost more than the rest of this).
        known = partner.reach if partner.reach is not None and partner.slug == slug else None

        def reachable():
            return partner.key.deployments.filter(is_active=True)

        if slug:
            if known is not None:
                found = known[0] if known else None
            else:
                found = reachable().filter(slug=slug).first()
            if found is None:
                raise ApiError(f"this API key has no access to deployment '{slug}'",
                               code="deployment_forbidden", status_code=403)
            return found
        found = list(known) if known is not None else list(reachable()[:2])
        if len(found) == 1:
            return found[0]
        if not found:
            raise ApiError("this API key reaches no active deployment; ask the hub operator",
                           code="deployment_forbidden", status_code=403)
        slugs = ", ".join(sorted(reachable().values_list("slug", flat=True)))
        raise ApiError(f"this API key reaches several deployments ({slugs}): add "
                       "?deployment=<slug>", code="deployment_required",
                       fields={"deployment": ["required for this key"]})

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        partner = getattr(request, "_user", None)
        if isinstance(partner, Partner) and not getattr(request, "key_touched", False):
            key_touch(partner.key)  # the throttle did not (another cache, or refused before)
        limit = getattr(request, "rate_limit", None)
        if limit:
            response["X-RateLimit-Limit"] = str(limit[0])
            response["X-RateLimit-Remaining"] = str(limit[1])
            response["X-RateLimit-Reset"] = str(limit[2])
        return response

    def paged(self, page: PageRequest, rows: list[dict] | selectors.Rendered,
              positions: list[int], bound: Bound) -> Response:
        """The page of the limit+1 records fetched; `rows` may be already JSON text."""
        built = page_build(self.request, page, positions, bound)
        rendered = isinstance(rows, selectors.Rendered)
        data = {"results": [] if rendered else rows[: page.limit], "next": built.next,
                "previous": built.previous, "next_cursor": built.next_cursor}
        response = Response(renderers.page_rendered(data, rows.text) if rendered else data)
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
    query_params_accepted = {"get": (*LIST_PARAMS, "active", "include_deleted")}

    @extend_schema(
        operation_id="assets_list", tags=["assets"],
        summary="List assets (buildings, sites)",
        description="Inactive assets are listed with active=false." + CONVENTIONS,
        parameters=[DEPLOYMENT, *PAGING, UPDATED_SINCE, ACTIVE, INCLUDE_DELETED],
        responses={200: serializers.AssetPageSerializer, **ERRORS},
    )
    def get(self, request):
        deployment = self.deployment()
        page = page_request(request.query_params)
        rows, positions, bound = selectors.assets_list(
            deployment=deployment, page=page, updated_since=self.updated_since(deployment),
            active=_bool(request.query_params.get("active"), "active"),
            include_deleted=bool(_bool(request.query_params.get("include_deleted"),
                                       "include_deleted")))
        return self.paged(page, rows, positions, bound)


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
    query_params_accepted = {"get": (*LIST_PARAMS, "active", "include_deleted", "asset")}

    @extend_schema(
        operation_id="meters_list", tags=["meters"], summary="List meters",
        description="`type` is Scaler's meter type (Energy, Water, Waste), `subtype` its "
        "sub-category. A meter the pull sync no longer finds upstream is deactivated "
        "(`active: false`, with a new `updated_at`)." + CONVENTIONS,
        parameters=[DEPLOYMENT, *PAGING, UPDATED_SINCE, ACTIVE, INCLUDE_DELETED,
                    OpenApiParameter("asset", str, description="Only this asset's meters "
                                     "(tombstones are not listed with it).")],
        responses={200: serializers.MeterPageSerializer, **ERRORS},
    )
    def get(self, request):
        deployment = self.deployment()
        page = page_request(request.query_params)
        rows, positions, bound = selectors.meters_list(
            deployment=deployment, page=page, updated_since=self.updated_since(deployment),
            active=_bool(request.query_params.get("active"), "active"),
            asset=request.query_params.get("asset") or None,
            include_deleted=bool(_bool(request.query_params.get("include_deleted"),
                                       "include_deleted")))
        return self.paged(page, rows, positions, bound)


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
    parameter = params.get("parameter")
    if parameter == "":
        raise ApiError("parameter is empty; give a parameter key or leave it out",
                       code="invalid", fields={"parameter": ["empty"]})
    return selectors.SeriesFilter(
        meters=meters, parameter=parameter, start=span.start,
        end=span.end,
        after_seq=selectors.seq_floor(deployment=deployment, updated_since=since)
        if since else None)


def _series_page(view: PartnerApiView, endpoint: str, list_records) -> Response:
    """A page of usage or readings; an offset page continues from its anchor if remembered."""
    deployment = view.deployment()
    page = page_request(view.request.query_params)
    flt = _series_filter(view, deployment)
    scope = None
    if page.style in ("offset", "page"):
        # Taken before the page is read: a deletion committed in between changes the scope.
        scope = anchors.anchor_scope(deployment=deployment, endpoint=endpoint, flt=flt)
        page = anchors.anchor_apply(page, scope)
    rows, positions, bound = list_records(deployment=deployment, flt=flt, page=page)
    if scope is not None:
        anchors.anchor_remember(page, scope, positions)
    return view.paged(page, rows, positions, bound)


class UsageView(PartnerApiView):
    query_params_accepted = {"get": SERIES_PARAMS}

    @extend_schema(
        operation_id="usage_list", tags=["usage"], summary="Usage in consumption format",
        description=serializers.USAGE_DESCRIPTION + CONVENTIONS,
        parameters=[DEPLOYMENT, *SERIES, UPDATED_SINCE, *PAGING],
        responses={200: serializers.UsagePageSerializer, **ERRORS},
    )
    def get(self, request):
        return _series_page(self, "usage", selectors.usage_page)


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
    query_params_accepted = {"get": SERIES_PARAMS, "post": ("deployment",)}

    @extend_schema(
        operation_id="readings_list", tags=["readings"], summary="Readings in reading format",
        description="Point readings: cumulative meter indexes (meter stands) and "
        "instantaneous values, each at its timestamp (ISO 8601, UTC)." + CONVENTIONS,
        parameters=[DEPLOYMENT, *SERIES, UPDATED_SINCE, *PAGING],
        responses={200: serializers.ReadingPageSerializer, **ERRORS},
    )
    def get(self, request):
        return _series_page(self, "readings", selectors.readings_list)

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
