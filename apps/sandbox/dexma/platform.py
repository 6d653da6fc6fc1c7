"""A page that plays the DEXMA platform, on its own origin: install and uninstall the app
(the handshake), and frame the hub's embedded pages the way the platform does.

Open it at a host other than the hub's (e.g. http://localhost:8000 while the hub is
http://127.0.0.1:8000): two origins, so the frame is a real cross-origin frame.
"""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from apps.core.http import ApiClient, HubHTTPError, RetryPolicy
from apps.sandbox.dexma.models import (
    AppToken,
    PlatformDatasource,
    PlatformDeployment,
    PlatformSession,
    TempToken,
)

LANGUAGES = [("en_US", "English"), ("es_ES", "Español")]


def hub_url() -> str:
    return settings.HUB_BASE_URL.rstrip("/")


def _hub_call(method: str, path: str, params: dict) -> tuple[bool, str]:
    """Call the hub as the platform does; (2xx?, what it said)."""
    with ApiClient(hub_url(), name="sandbox-dexma-platform", retry=RetryPolicy(max_retries=0),
                   timeout=(5, 60)) as client:
        try:
            response = client.request(method, path, params=params)
        except HubHTTPError as exc:
            return False, f"{exc.status_code or ''} {exc.body or exc}".strip()[:500]
    return True, f"{response.status_code} {response.text[:200]}".strip()


def platform_install(*, deployment: PlatformDeployment) -> tuple[bool, str]:
    """Installation step 1: a temporary token, and a call to the app's install URL."""
    temp = TempToken.objects.create(deployment=deployment, app_id=settings.DEXMA_APP_ID)
    return _hub_call("GET", "dexma/install", {"dep_id": deployment.dep_id,
                                             "temp_token": temp.token,
                                             "callback": "https://www.dexcell.com"})


def _app_token(deployment: PlatformDeployment) -> AppToken | None:
    return AppToken.objects.filter(deployment=deployment, app_id=settings.DEXMA_APP_ID).first()


def _frame_src(view: str, token: AppToken, session: PlatformSession, lang: str,
               datasource_id: str) -> str:
    path = {"new": "/dexma/datasources/new", "list": "/dexma/datasources",
            "edit": f"/dexma/datasources/{datasource_id}"}.get(view)
    if path is None or (view == "edit" and not datasource_id.isdigit()):
        return ""
    query = urlencode({"dep_token": token.token, "session_id": session.session_id,
                       "lang": lang})
    return f"{hub_url()}{path}?{query}"


def _with_frame_src(response: HttpResponse, frame_src: str) -> HttpResponse:
    if frame_src:
        parts = urlsplit(frame_src)
        response._csp_update = {"frame-src": [f"{parts.scheme}://{parts.netloc}"]}
    return response


@require_http_methods(["GET", "POST"])
def platform(request: HttpRequest) -> HttpResponse:
    deployments = PlatformDeployment.objects.order_by("dep_id")
    dep_id = request.POST.get("dep") or request.GET.get("dep")
    deployment = (
        get_object_or_404(PlatformDeployment, dep_id=dep_id) if dep_id else deployments.first()
    )
    if deployment is None:
        return HttpResponse("No platform deployment yet: run `manage.py demo_setup`.",
                            content_type="text/plain")
    if request.method == "POST":
        return _act(request, deployment)

    token = _app_token(deployment)
    session, _ = PlatformSession.objects.get_or_create(
        deployment=deployment, defaults={"user_name": "Dana Demo",
                                         "user_email": "dana@example.com"},
    )
    lang = request.GET.get("lang", "en_US")
    view = request.GET.get("view", "list" if token else "")
    frame_src = _frame_src(view, token, session, lang, request.GET.get("id", "")) if token else ""
    own_origin = f"{request.scheme}://{request.get_host()}"
    context = {
        "deployment": deployment,
        "deployments": deployments,
        "installed": token is not None,
        "datasources": PlatformDatasource.objects.filter(
            deployment=deployment, app_id=settings.DEXMA_APP_ID),
        "frame_src": frame_src,
        "lang": lang,
        "languages": LANGUAGES,
        "same_origin_as_hub": own_origin == hub_url(),
        "platform_origins": settings.DEXMA_PLATFORM_ORIGINS,
    }
    return _with_frame_src(render(request, "sandbox_dexma/platform.html", context), frame_src)


def _act(request: HttpRequest, deployment: PlatformDeployment) -> HttpResponse:
    action = request.POST.get("action")
    token = _app_token(deployment)
    back = f"{reverse('sandbox:sandbox_dexma:platform')}?dep={deployment.dep_id}"
    if action == "install":
        ok, said = platform_install(deployment=deployment)
        level = messages.SUCCESS if ok else messages.ERROR
        messages.add_message(request, level, f"Install: the app answered {said}")
    elif action == "uninstall" and token is not None:
        ok, said = _hub_call("GET", "dexma/uninstall",
                             {"dep_id": deployment.dep_id, "dep_token": token.token})
        if ok:
            PlatformDatasource.objects.filter(deployment=deployment,
                                              app_id=token.app_id).delete()
            token.delete()
        messages.add_message(request, messages.SUCCESS if ok else messages.ERROR,
                             f"Uninstall: the app answered {said}")
    elif action == "delete" and token is not None:
        found = PlatformDatasource.objects.filter(
            deployment=deployment, app_id=token.app_id, pk=request.POST.get("id")
        ).first()
        if found is not None:
            ok, said = _hub_call("DELETE", f"dexma/datasources/{found.pk}",
                                 {"dep_token": token.token})
            if ok:  # on an error code the platform keeps the datasource
                found.delete()
            messages.add_message(request, messages.SUCCESS if ok else messages.ERROR,
                                 f"Delete {found.key}: the app answered {said}")
    return HttpResponseRedirect(back)
