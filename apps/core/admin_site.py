import datetime as dt
from dataclasses import dataclass

from django.apps import apps
from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils.html import format_html, format_html_join


def duration_text(value: dt.timedelta | None) -> str:
    """A duration as ops read it: "0.4 s", "12 s", "3 min 05 s", "2 h 14 min", "3 d 4 h"."""
    if value is None:
        return ""
    seconds = value.total_seconds()
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    if whole < 86400:
        return f"{whole // 3600} h {whole % 3600 // 60:02d} min"
    return f"{whole // 86400} d {whole % 86400 // 3600} h"


@dataclass(frozen=True)
class OverviewAlert:
    """A red line at the top of the overview, offered by an integration's AppConfig.

    An AppConfig with an `overview_alerts()` method returns a list of these; the core knows
    nothing of the integrations beyond that method.
    """

    count: int
    label: str  # shown after the badge, e.g. "pull connections whose last sync failed"
    detail: str  # names, shortened by the template
    url: str
    link_text: str


def overview_alerts() -> list[OverviewAlert]:
    alerts: list[OverviewAlert] = []
    for config in apps.get_app_configs():
        offer = getattr(config, "overview_alerts", None)
        if offer is not None:
            alerts.extend(offer())
    return alerts


def overview_notes() -> list[str]:
    """Plain lines under the overview's figures (an AppConfig's `overview_notes()`), e.g. the
    demo saying which of its figures it produces on purpose."""
    notes: list[str] = []
    for config in apps.get_app_configs():
        offer = getattr(config, "overview_notes", None)
        if offer is not None:
            notes.extend(offer())
    return notes


class HubAdminSite(admin.AdminSite):
    site_header = "Energy hub — operations"
    site_title = "Energy hub"
    index_title = "Operations"
    # The run log, readings and batches are wide tables; the model sidebar would squeeze
    # them into a scroll box on a laptop. The index and breadcrumbs navigate instead.
    enable_nav_sidebar = False

    def index(self, request: HttpRequest, extra_context: dict | None = None) -> TemplateResponse:
        """The index opens with the overview: figures, delivery backlog, runs, daily flow."""
        context = {}
        if request.user.has_module_perms("core"):
            context = self._overview_context()
        return super().index(request, extra_context={**context, **(extra_context or {})})

    @staticmethod
    def _overview_context() -> dict:
        from apps.core import selectors

        per_day = selectors.readings_per_day(days=30)
        runs = selectors.runs_latest(limit=10)
        return {
            "overview": True,
            "counts": selectors.overview_counts(),
            "alerts": overview_alerts(),
            "notes": overview_notes(),
            "backlog": [
                (row, duration_text(row.oldest_due_age)) for row in selectors.link_backlog()
            ],
            "latest_runs": [(run, duration_text(run.duration)) for run in runs],
            "chart_days": [
                {"day": d.day.isoformat(), "accepted": d.accepted, "quarantined": d.quarantined}
                for d in per_day
            ],
            "chart_total_accepted": sum(d.accepted for d in per_day),
            "chart_total_quarantined": sum(d.quarantined for d in per_day),
        }


def link_accounts_html(accounts) -> str:
    """A link's reading accounts as a small table: accepted = delivered + pending +
    undeliverable (by reason), with any difference called out."""
    rows = [("Accepted", f"{accounts.accepted:,}"), ("Delivered", f"{accounts.delivered:,}"),
            ("Pending", f"{accounts.pending:,}")]
    rows += [(f"Undeliverable: {reason}", f"{count:,}")
             for reason, count in sorted(accounts.undeliverable.items())]
    table = format_html(
        '<table class="hub-accounts">{}</table><p class="help">{}.</p>',
        format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows), accounts.scope)
    if accounts.unaccounted:
        table += format_html('<p class="hub-alert">{} reading(s) unaccounted for: report '
                             'this as a bug.</p>', accounts.unaccounted)
    return table
