"""What the DEXMA platform calls: the handshake, health, and the embedded pages.

The pages live in the platform's iframe, where third-party cookies are blocked: no session
and no CSRF cookie. The platform's `dep_token` authenticates the first request; every form
and link then carries a signed, expiring page token bound to the installation and its
current token, which is both the identity and the CSRF protection.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from functools import wraps

from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.db import connections
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    JsonResponse,
)
from django.shortcuts import render
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from apps.core import selectors as core_selectors
from apps.core.http import HubHTTPError
from apps.dexma import selectors, services
from apps.dexma.client import api_reachable
from apps.dexma.models import DexmaDatasource, Installation

logger = logging.getLogger(__name__)

PAGE_TOKEN_SALT = "dexma.page"  # noqa: S105 (a signing namespace)
PAGE_TOKEN_MAX_AGE = 2 * 3600
STATUS_CACHE_SECONDS = 5
STATUS_DEADLINE = 2.8


def platform_page(view: Callable) -> Callable:
    """Frameable by the platform origins only (CSP frame-ancestors); no X-Frame-Options."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        response = view(request, *args, **kwargs)
        response._csp_replace = {
            "default-src": ["'self'"],
            "frame-ancestors": list(settings.DEXMA_PLATFORM_ORIGINS) or ["'none'"],
            "object-src": ["'none'"],
            "base-uri": ["'self'"],
            "form-action": ["'self'"],
        }
        response["Cache-Control"] = "no-store"
        return response

    return xframe_options_exempt(csrf_exempt(never_cache(wrapped)))


# --- handshake and health ------------------------------------------------------------------


@require_GET
@never_cache
def install(request: HttpRequest) -> HttpResponse:
    dep_id = request.GET.get("dep_id", "").strip()
    temp_token = request.GET.get("temp_token", "").strip()
    if not dep_id or not temp_token:
        return HttpResponseBadRequest("dep_id and temp_token are required",
                                      content_type="text/plain")
    try:
        services.installation_install(dep_id=dep_id, temp_token=temp_token)
    except services.InstallError as exc:
        logger.warning("DEXMA install of %s failed: %s", dep_id, exc)
        return HttpResponse(f"installation failed: {exc}", status=502, content_type="text/plain")
    return HttpResponse("OK", content_type="text/plain")


@require_GET
@never_cache
def uninstall(request: HttpRequest) -> HttpResponse:
    installation, denied = _authenticate_dep_token(request)
    if denied:
        return denied
    dep_id = request.GET.get("dep_id", "").strip()
    if dep_id and dep_id != installation.dep_id:
        return HttpResponse("dep_id does not match dep_token", status=403,
                            content_type="text/plain")
    services.installation_uninstall(installation=installation)
    return HttpResponse("OK", content_type="text/plain")


@require_GET
@never_cache
def ping(request: HttpRequest) -> HttpResponse:
    return HttpResponse("pong", content_type="text/plain")


def _workers_check() -> core_selectors.Check:
    """A round trip through the broker to a worker: works on every transport (the file
    system one has no broadcast for `control.ping`)."""
    from apps.core.tasks import ping as ping_task

    try:
        answer = ping_task.apply_async(expires=10).get(timeout=2.0)
    except Exception as exc:  # timeouts and broker errors alike mean "no worker answered"
        return core_selectors.Check(False, f"no worker answered within 2s ({type(exc).__name__})")
    return core_selectors.Check(answer == "pong", "a worker answered")


def _dexma_api_check() -> core_selectors.Check:
    ok, detail = api_reachable(timeout=2.0)
    return core_selectors.Check(ok, detail)


STATUS_CHECKS: dict[str, Callable[[], core_selectors.Check]] = {
    "database": core_selectors.database_check,
    "broker": lambda: core_selectors.broker_check(timeout=2.0),
    "workers": _workers_check,
    "dexma_api": _dexma_api_check,
}
_status_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="dexma-status")


def _in_thread(check: Callable[[], core_selectors.Check]) -> core_selectors.Check:
    try:
        return check()
    finally:
        connections.close_all()  # the pool thread's own connection, not the request's


def _run_checks() -> dict[str, dict[str, str]]:
    futures = {name: _status_pool.submit(_in_thread, check)
               for name, check in STATUS_CHECKS.items()}
    wait(futures.values(), timeout=STATUS_DEADLINE)
    result = {}
    for name, future in futures.items():
        if not future.done():
            result[name] = {"status": "down", "detail": f"no answer within {STATUS_DEADLINE}s"}
            continue
        try:
            check = future.result()
        except Exception as exc:  # a probe that blows up is a failing dependency
            result[name] = {"status": "down", "detail": f"{type(exc).__name__}: {exc}"[:200]}
        else:
            result[name] = {"status": "ok" if check.ok else "down", "detail": check.detail}
    return result


def _may_see_details(request: HttpRequest, *, database_ok: bool) -> bool:
    # With the database down the dep_token cannot be checked (and must not hang the probe).
    if not database_ok:
        return False
    try:
        services.installation_authenticate(dep_token=request.GET.get("dep_token"))
    except Exception:  # a wrong token, or a database failing right now
        return False
    return True


@require_GET
@never_cache
def app_status(request: HttpRequest) -> JsonResponse:
    """Always 200: the platform reads the JSON, even when the hub is degraded."""
    dependencies = cache.get("dexma:app-status")
    if dependencies is None:
        dependencies = _run_checks()
        # A failing cache must not fail the health answer.
        with contextlib.suppress(Exception):
            cache.set("dexma:app-status", dependencies, timeout=STATUS_CACHE_SECONDS)
    if not _may_see_details(request, database_ok=dependencies["database"]["status"] == "ok"):
        # Still 200 for the platform's probe, but internal error texts only with a dep_token.
        dependencies = {name: {"status": d["status"]} for name, d in dependencies.items()}
    if dependencies["database"]["status"] != "ok":
        status = "down"
    elif all(d["status"] == "ok" for d in dependencies.values()):
        status = "ok"
    else:
        status = "degraded"
    return JsonResponse({
        "status": status,
        "dependencies": dependencies,
        "serverTime": timezone.now().isoformat().replace("+00:00", "Z"),
    })


# --- authentication of platform calls --------------------------------------------------------


@dataclass(slots=True)
class PageContext:
    installation: Installation
    lang: str
    user: str
    page_token: str


def _denied(status: int, message: str) -> HttpResponse:
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")


def _authenticate_dep_token(
    request: HttpRequest,
) -> tuple[Installation | None, HttpResponse | None]:
    try:
        installation = services.installation_authenticate(dep_token=request.GET.get("dep_token"))
        return installation, None
    except services.TokenMissing:
        return None, _denied(401, "dep_token is required")
    except services.TokenInvalid:
        return None, _denied(403, "dep_token is not valid for any installation")


def _language(raw: str) -> str:
    """`es_ES` → `es`; anything not shipped falls back to English."""
    code = translation.to_language(raw or "en")
    try:
        return translation.get_supported_language_variant(code)
    except LookupError:
        return "en"


def _session_user(installation: Installation, session_id: str) -> str:
    if not session_id:
        return ""
    key = f"dexma:session:{installation.pk}:{session_id}"
    cached = cache.get(key)
    if cached is not None:
        return cached
    try:
        # The page must not hang on the platform: no retries, no waiting for the budget.
        with services.client_for(installation, max_wait=0, max_retries=0,
                                 timeout=(2, 3)) as client:
            user = client.session_get(session_id=session_id)
    except HubHTTPError as exc:
        logger.info("DEXMA session %s not readable: %s", session_id, exc)
        return ""
    shown = user.name or user.email
    cache.set(key, shown, timeout=600)
    return shown


def _page_token(installation: Installation, lang: str, user: str) -> str:
    return signing.dumps(
        {"i": installation.pk, "d": installation.token_digest[:16], "l": lang, "u": user},
        salt=PAGE_TOKEN_SALT, compress=True,
    )


def _authenticate_page(request: HttpRequest) -> tuple[PageContext | None, HttpResponse | None]:
    """The page's installation: from `dep_token` (the platform's call), or from the signed
    page token that the hub's own forms and links carry."""
    raw = request.POST.get("pt") or request.GET.get("pt")
    if raw and not request.GET.get("dep_token"):
        try:
            data = signing.loads(raw, salt=PAGE_TOKEN_SALT, max_age=PAGE_TOKEN_MAX_AGE)
        except signing.SignatureExpired:
            return None, _denied(403, _("This page has expired: reopen it from the platform."))
        except signing.BadSignature:
            return None, _denied(403, "page token is not valid")
        installation = (
            Installation.objects.select_related("deployment").filter(pk=data.get("i")).first()
        )
        if installation is None or installation.token_digest[:16] != data.get("d"):
            return None, _denied(403, "page token is not valid for any installation")
        lang, user = data.get("l", "en"), data.get("u", "")
    else:
        installation, denied = _authenticate_dep_token(request)
        if denied:
            return None, denied
        lang = _language(request.GET.get("lang", ""))
        user = _session_user(installation, request.GET.get("session_id", ""))
    return PageContext(installation, lang, user, _page_token(installation, lang, user)), None


def _render(request: HttpRequest, page: PageContext, template: str, context: dict,
            status: int = 200) -> HttpResponse:
    with translation.override(page.lang):
        response = render(request, template, {"page": page, **context}, status=status)
    response["Content-Language"] = page.lang
    return response


def _page_client(installation: Installation):
    # Someone is waiting in front of the page: a short wait for the rate budget, then the
    # platform's answer is shown instead of a spinner that outlives the iframe.
    return services.client_for(installation, max_wait=10, max_retries=1, timeout=(5, 20))


def _find(page: PageContext, datasource_id: int) -> DexmaDatasource | None:
    return (
        DexmaDatasource.objects.select_related("installation", "link", "deployment")
        .filter(installation=page.installation, platform_id=datasource_id)
        .first()
    )


# --- embedded pages ------------------------------------------------------------------------


@platform_page
@require_http_methods(["GET", "POST"])
def datasource_new(request: HttpRequest) -> HttpResponse:
    page, denied = _authenticate_page(request)
    if denied:
        return denied
    deployment = page.installation.deployment
    error, name = "", ""
    if request.method == "POST":
        name = request.POST.get("name", "")
        with translation.override(page.lang):
            try:
                selection = services.selection_from_form(dict(request.POST.lists()))
                if not selection.parameters:
                    raise services.DexmaError(_("Choose at least one meter."))
                datasource = services.datasource_create(
                    installation=page.installation, name=name, selection=selection,
                    client_factory=_page_client,
                )
            except services.DexmaError as exc:
                error = str(exc)
            else:
                return _render(request, page, "dexma/datasource_edit.html", {
                    "datasource": datasource,
                    "groups": selectors.device_choices(deployment=deployment,
                                                       datasource=datasource),
                    "notice": _("Datasource created in the platform."),
                }, status=201)
    groups = selectors.device_choices(deployment=deployment)
    return _render(request, page, "dexma/datasource_new.html",
                   {"groups": groups, "error": error, "name": name},
                   status=400 if error else 200)


@platform_page
@require_http_methods(["GET", "POST", "DELETE"])
def datasource_detail(request: HttpRequest, datasource_id: int) -> HttpResponse:
    if request.method == "DELETE":
        return _platform_delete(request, datasource_id)
    page, denied = _authenticate_page(request)
    if denied:
        return denied
    datasource = _find(page, datasource_id)
    if datasource is None:
        return _denied(404, "no such datasource in this deployment")
    error, notice = "", ""
    if request.method == "POST":
        with translation.override(page.lang):
            try:
                if request.POST.get("action") == "delete":
                    services.datasource_delete(datasource=datasource,
                                               client_factory=_page_client)
                    return _render(request, page, "dexma/datasource_list.html", {
                        "datasources": selectors.datasources_of(
                            deployment=page.installation.deployment),
                        "notice": _("Datasource deleted."),
                    })
                datasource = services.datasource_update(
                    datasource=datasource, name=request.POST.get("name", ""),
                    enabled=request.POST.get("enabled") == "on",
                    selection=services.selection_from_form(dict(request.POST.lists())),
                    client_factory=_page_client,
                )
                notice = _("Changes saved.")
            except services.DexmaError as exc:
                error = str(exc)
    groups = selectors.device_choices(deployment=page.installation.deployment,
                                      datasource=datasource)
    return _render(request, page, "dexma/datasource_edit.html",
                   {"datasource": datasource, "groups": groups, "error": error,
                    "notice": notice}, status=400 if error else 200)


def _platform_delete(request: HttpRequest, datasource_id: int) -> HttpResponse:
    """The platform deletes a datasource: remove it here; an error keeps it there."""
    installation, denied = _authenticate_dep_token(request)
    if denied:
        return denied
    datasource = DexmaDatasource.objects.filter(
        installation=installation, platform_id=datasource_id
    ).first()
    if datasource is None:
        return _denied(404, "no such datasource in this deployment")
    services.datasource_forget(datasource=datasource)
    return HttpResponse(status=204)


@platform_page
@require_GET
def datasource_list(request: HttpRequest) -> HttpResponse:
    page, denied = _authenticate_page(request)
    if denied:
        return denied
    return _render(request, page, "dexma/datasource_list.html", {
        "datasources": selectors.datasources_of(deployment=page.installation.deployment),
    })
