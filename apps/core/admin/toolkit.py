"""What every admin of the hub uses: badges, compact times, read-only and huge-table
admins (lists that never COUNT(*) the table and page only forwards and backwards)."""

from __future__ import annotations

import datetime as dt
from functools import cached_property
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.admin.views.main import PAGE_VAR, ChangeList
from django.core.paginator import EmptyPage, PageNotAnInteger, Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.text import Truncator

from apps.core import selectors

ADMIN_CSS = {"all": ["core/admin.css"]}


def badge_html(value: str, label: str) -> str:
    return format_html('<span class="hub-badge hub-badge-{}">{}</span>', value, label)


def short(text: str, length: int = 80) -> str:
    return Truncator(text).chars(length)


def utc(value: dt.datetime | None) -> str:
    """Compact UTC time for dense lists: the hub stores and speaks UTC."""
    return "—" if value is None else f"{value.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S}"


def changelist_url(model: type, **params: object) -> str:
    url = reverse(f"admin:core_{model._meta.model_name}_changelist")
    return f"{url}?{urlencode(params)}" if params else url


# --- Huge tables ---------------------------------------------------------------------------


class EstimatedCountPaginator(Paginator):
    """A paginator that never runs COUNT(*) over its table.

    Unfiltered, PostgreSQL's statistics stand in for the count. Filtered, or where there
    are no statistics (SQLite) or the table is small, ids are read up to `cap` and the
    count says "more than" beyond it. Pages are not bounded by the count, which may be an
    estimate: the list simply ends.
    """

    cap = 10_000
    count_kind = "exact"  # or "estimate" (statistics) or "capped" (more than `cap`)

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not queryset.query.where:
            estimate = selectors.table_rows_estimate(model=queryset.model)
            if estimate is not None and estimate > self.cap:
                self.count_kind = "estimate"
                return estimate
        ids = queryset.order_by().values_list("pk", flat=True)[: self.cap + 1]
        found = len(ids)
        self.count_kind = "capped" if found > self.cap else "exact"
        return found

    def validate_number(self, number: object) -> int:
        try:
            if isinstance(number, float) and not number.is_integer():
                raise ValueError
            number = int(number)
        except (TypeError, ValueError):
            raise PageNotAnInteger("That page number is not an integer") from None
        if number < 1:
            raise EmptyPage("That page number is less than 1")
        return number

    def page(self, number: object):
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        return self._get_page(self.object_list[bottom : bottom + self.per_page], number, self)


class HugeTableChangeList(ChangeList):
    """Previous/next links instead of a page range that invites a jump to page 1,000,000."""

    def _page_url(self, number: int) -> str:
        return self.get_query_string({PAGE_VAR: number})

    @property
    def previous_page_url(self) -> str:
        return self._page_url(self.page_num - 1) if self.page_num > 1 else ""

    @property
    def next_page_url(self) -> str:
        full = len(self.result_list) >= self.list_per_page
        return self._page_url(self.page_num + 1) if full and not self.show_all else ""


class HugeTableAdmin(admin.ModelAdmin):
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 50

    def get_changelist(self, request: HttpRequest, **kwargs) -> type[ChangeList]:
        return HugeTableChangeList

    def response_action(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        if request.POST.get("select_across") == "1":
            # "Select all" would hand the action every row of the table.
            self.message_user(
                request,
                "Actions here work on the rows of one page: select them on the page "
                "instead of selecting all.",
                messages.ERROR,
            )
            return None
        return super().response_action(request, queryset)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    """Rows shown beside their parent, never added, edited or deleted there: every field
    in `fields` is read-only."""

    extra = 0
    can_delete = False

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        return (*(self.fields or ()), *self.readonly_fields)

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


def superuser_deletes(request: HttpRequest) -> bool:
    # Deleting a deployment cascades through these tables, so a superuser must be able to.
    return request.user.is_superuser
