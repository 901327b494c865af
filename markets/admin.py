from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.db.models import Count, Max, Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from makeusrich.celery import task_send
from makeusrich.formats import datetime_text, decimal_text
from markets.klines import INTERVAL, Gap
from markets.models import Asset, Candle, ConfirmedOutage
from markets.selectors import HourRange, asset_gaps, asset_unconfirmed_gaps
from markets.services import assets_set_active
from markets.sources import SourceError, source_for

# The start of forecasting.services.outcomes' wording: "warm retrain[ by manage.py train]: v4 active: …",
# "… skipped: …", "… raised ValueError: …". Matched here: that module loads the ML serving code.
OUTCOME_HEADLINE = re.compile(
    r"\w+ retrain(?: by [^:]+)?(?:: (v\d+) (\w+):| (skipped):| raised (\w+):| (queued):)"
)
# What the task did, as an event: "v4 active" read as what serves now, also after a rollback.
OUTCOME_EVENTS = {"active": "promoted", "validated": "not promoted"}


def _outcome_headline(outcome: str) -> str:
    """What came of a retrain, from its recorded outcome: "v4 promoted", "v5 not promoted",
    "v6 failed", "skipped", "raised ValueError"."""
    match = OUTCOME_HEADLINE.match(outcome)
    if match is None:
        return ""
    version, status, skipped, error, queued = match.groups()
    if version:
        return f"{version} {OUTCOME_EVENTS.get(status, status)}"
    return skipped or queued or f"raised {error}"


def _has_record(asset: Asset) -> bool:
    """Whether the asset has model versions or forecasts (kept: never deleted from the admin)."""
    return asset.model_versions.exists() or asset.forecasts.exists()


def _gap_text(gap: Gap) -> str:
    """A gap as the admin writes dates (the commands keep Gap's own ISO text)."""
    hours = gap.missing_hours
    first, last = datetime_text(gap.first_missing), datetime_text(gap.last_missing)
    span = first if hours == 1 else f"{first} to {last}"
    return f"{span}: {hours} missing hour{'s' if hours != 1 else ''}"


def _hours_in(ranges: list[HourRange], gap: Gap) -> int:
    return sum(
        (min(last, gap.last_missing) - max(first, gap.first_missing)) // INTERVAL + 1
        for first, last in ranges
        if first <= gap.last_missing and last >= gap.first_missing
    )


def _gap_status(gap: Gap, waiting: list[HourRange], outside: list[HourRange], source: str) -> str:
    asked, never = _hours_in(waiting, gap), _hours_in(outside, gap)
    if not asked and not never:
        return "confirmed empty"
    if never == gap.missing_hours:
        return f"outside the {source} data: never asked"
    if asked == gap.missing_hours:
        return "not asked for yet"
    parts = [f"{asked} hour(s) not asked for yet"] if asked else []
    if never:
        parts.append(f"{never} hour(s) outside the {source} data: never asked")
    return "; ".join(parts)


def _split_by_source_data(
    unconfirmed: list[HourRange], *, symbol: str
) -> tuple[list[HourRange], list[HourRange]]:
    """The unconfirmed hours a sync will ask the source about, and those outside the source's
    data (KlineSource.coverage: the replay's bundled year), which no sync asks about or confirms."""
    try:
        coverage = source_for().coverage(symbol=symbol)
    except SourceError:  # the replay holds another symbol: it has nothing for this asset
        return [], unconfirmed
    if coverage is None:  # an exchange: every hour can be asked about
        return unconfirmed, []
    first, last = coverage
    inside = [(max(a, first), min(b, last)) for a, b in unconfirmed if a <= last and b >= first]
    outside = [(a, min(b, first - INTERVAL)) for a, b in unconfirmed if a < first]
    outside += [(max(a, last + INTERVAL), b) for a, b in unconfirmed if b > last]
    return inside, outside


class SyncStatusFilter(admin.SimpleListFilter):
    title = "sync status"
    parameter_name = "sync"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("ok", "OK"), ("failed", "Failed"), ("never", "Never synced")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Asset]) -> QuerySet[Asset]:
        if self.value() == "ok":
            return queryset.filter(last_sync_error="", last_synced_at__isnull=False)
        if self.value() == "failed":
            return queryset.exclude(last_sync_error="")
        if self.value() == "never":
            return queryset.filter(Q(last_synced_at__isnull=True) & Q(last_sync_error=""))
        return queryset


# The horizons Asset.clean accepts, in hours.
HORIZON_HOURS = (1, 168)


def _horizon_hint() -> str:
    return f"Hours to forecast, 1 to 168. Empty: the default, {settings.FORECAST_HORIZON} hours."


def _hyperparameters_hint() -> str:
    from forecasting.ml.config import TrainingConfig  # pure Python: no torch in the web process

    defaults = ", ".join(
        f"{key} ({value})" for key, value in TrainingConfig().to_dict().items() if key != "horizon"
    )
    return (
        'Overrides of the training recipe as a JSON object, e.g. {"max_epochs": 12}. '
        f"Empty: the defaults. Keys (default): {defaults}. The next retrain uses them."
    )


FORM_HINTS = {"horizon": _horizon_hint, "hyperparameters": _hyperparameters_hint}


@admin.register(Asset)
class AssetAdmin(admin.ModelAdmin):
    # Base and quote are in the symbol, and the last sync's time heads the sync cell: with both
    # admin sidebars the list has about 900 px at 1280 px, and nine columns cut off the last two.
    list_display = ("symbol", "is_active", "candle_count", "last_candle", "sync_status", "last_retrain")
    list_filter = ("is_active", SyncStatusFilter, "quote")
    search_fields = ("symbol", "base", "quote")
    # Each needs change_asset: they change what is synced, trained and served, so
    # view-only staff (support) must not see or run them.
    actions = ("sync_now", "retrain_now", "activate", "deactivate")
    # Model versions and forecasts are a record the admin never deletes (read-only admins), and
    # deleting an asset would delete them: an asset that has any is deactivated instead (no
    # Delete button). A typo (no version, no forecast) can still be deleted from its page.
    readonly_fields = (
        "interval",
        "last_synced_at",
        "last_sync_error",
        "candle_summary",
        "gap_report",
        "last_train_outcome",
        "last_train_outcome_at",
        "forecast_problem",
        "forecast_problem_since",
        "created_at",
        "updated_at",
    )
    fieldsets = (
        (None, {"fields": ("symbol", "base", "quote", "interval", "is_active")}),
        (
            "Forecasting",
            {
                "fields": (
                    "horizon",
                    "hyperparameters",
                    "last_train_outcome",
                    "last_train_outcome_at",
                    "forecast_problem",
                    "forecast_problem_since",
                )
            },
        ),
        ("Market data", {"fields": ("last_synced_at", "last_sync_error", "candle_summary", "gap_report")}),
        ("Timestamps", {"fields": ("created_at", "updated_at")}),
    )

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        # Hints in the form, not on the model: the defaults live in settings and in the ML
        # config, and a model help_text would copy them into migrations.
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if field is not None and db_field.name in FORM_HINTS:
            field.help_text = FORM_HINTS[db_field.name]()
        if field is not None and db_field.name == "horizon":
            # The browser's bounds match Asset.clean's (the column alone would allow 0).
            field.widget.attrs.update(min=HORIZON_HOURS[0], max=HORIZON_HOURS[1])
        return field

    def get_queryset(self, request: HttpRequest) -> QuerySet[Asset]:
        # One query for the list: counts and last times are annotated, not fetched per row.
        return (
            super()
            .get_queryset(request)
            .annotate(candle_count=Count("candles"), last_candle_time=Max("candles__open_time"))
        )

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> tuple[list, dict, set, list]:
        # An asset with model versions cannot be deleted here (versions and forecasts are
        # read-only: deactivate the asset instead). Say so from two counts rather than list
        # every forecast by name, which costs a query or two per forecast.
        assets = [obj.pk for obj in objs]
        from forecasting.models import Forecast, ModelVersion  # forecasting depends on markets

        blocking = {
            "model versions": ModelVersion.objects.filter(asset__in=assets).count(),
            "forecasts": Forecast.objects.filter(asset__in=assets).count(),
        }
        if any(blocking.values()):
            return (
                [],
                {name: n for name, n in blocking.items() if n},
                {n for n, c in blocking.items() if c},
                [],
            )
        return super().get_deleted_objects(objs, request)

    def get_readonly_fields(self, request: HttpRequest, obj: Asset | None = None) -> tuple[str, ...]:
        # Stored candles belong to the symbol: renaming an asset would mislabel them.
        if obj is not None:
            return ("symbol", "base", "quote", *self.readonly_fields)
        return self.readonly_fields

    @admin.display(description="candles", ordering="candle_count")
    def candle_count(self, obj: Asset) -> int:
        return getattr(obj, "candle_count", 0)

    @admin.display(description="last candle", ordering="last_candle_time")
    def last_candle(self, obj: Asset) -> str:
        last = getattr(obj, "last_candle_time", None)
        return datetime_text(last) if last else "—"

    @admin.display(description="last sync", ordering="last_synced_at")
    def sync_status(self, obj: Asset) -> str:
        # The time, then the outcome, as in the last retrain column.
        when = format_html("{}<br>", datetime_text(obj.last_synced_at)) if obj.last_synced_at else ""
        if obj.last_sync_error:
            what = "new candles OK, filling holes failed" if obj.holes_error else "failed"
            shown = (obj.holes_error or obj.last_sync_error)[:60]
            return format_html('<span title="{}">{}{}: {}</span>', obj.last_sync_error, when, what, shown)
        return format_html("{}OK", when) if obj.last_synced_at else "never"

    @admin.display(description="last retrain task", ordering="last_train_outcome_at")
    def last_retrain(self, obj: Asset) -> str:
        # A failing forecast refresh goes under it (a seventh column would not fit at 1280 px).
        retrain = self._last_retrain(obj)
        if not obj.forecast_problem:
            return retrain
        return format_html("{}{}", retrain, self.forecast_status(obj))

    def _last_retrain(self, obj: Asset) -> str:
        if not obj.last_train_outcome_at:
            return "—"
        # The date, then what came of it first ("v4 active", "skipped") and the rest on one line
        # cut with an ellipsis (static/css/admin.css); the title holds the whole text.
        outcome = obj.last_train_outcome
        headline = _outcome_headline(outcome)
        return format_html(
            '<span title="{}">{}<br>{}{}</span>',
            outcome,
            datetime_text(obj.last_train_outcome_at),
            format_html("<strong>{}</strong> — ", headline) if headline else "",
            outcome[:200],
        )

    def forecast_status(self, obj: Asset) -> str:
        """What fails in the forecast refresh and since when; the title holds the whole text."""
        what = "model cannot be loaded" if obj.model_unloadable else "failing"
        since = f" since {datetime_text(obj.forecast_problem_since)}" if obj.forecast_problem_since else ""
        return format_html(
            '<span title="{}"><strong>forecast: {}</strong>{}</span>', obj.forecast_problem, what, since
        )

    @admin.display(description="candles stored")
    def candle_summary(self, obj: Asset) -> str:
        count = getattr(obj, "candle_count", None)
        if not obj.pk or not count:
            return "none"
        first = Candle.objects.filter(asset=obj).order_by("open_time").values_list("open_time", flat=True)[0]
        return f"{count} hourly candles, {datetime_text(first)} to {datetime_text(obj.last_candle_time)}"

    @admin.display(description="gap report")
    def gap_report(self, obj: Asset) -> str:
        if not obj.pk:
            return "—"
        gaps = asset_gaps(asset=obj)
        if not gaps:
            return "No gaps: every hour between the first and the last candle is stored."
        missing = sum(g.missing_hours for g in gaps)
        source = settings.MARKET_DATA_SOURCE
        unconfirmed = asset_unconfirmed_gaps(asset=obj, source=source)
        waiting, outside = _split_by_source_data(unconfirmed, symbol=obj.symbol)
        asked, never = (sum((last - first) // INTERVAL + 1 for first, last in r) for r in (waiting, outside))
        return format_html(
            "{} gap(s), {} missing hour(s): {} confirmed empty by {} (exchange outages; no candle is made up), "
            "{} not asked for yet (the next syncs fetch them){}:<ul>{}</ul>",
            len(gaps),
            missing,
            missing - asked - never,
            source,
            asked,
            f", {never} outside the {source} data (never asked: it has nothing there)" if never else "",
            format_html_join(
                "",
                "<li>{} — {}</li>",
                ((_gap_text(gap), _gap_status(gap, waiting, outside, source)) for gap in gaps),
            ),
        )

    def has_delete_permission(self, request: HttpRequest, obj: Asset | None = None) -> bool:
        if not super().has_delete_permission(request, obj):
            return False
        return obj is None or not _has_record(obj)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        # Bulk deletion would stop at the first asset with a record, on Django's refusal page.
        actions.pop("delete_selected", None)
        return actions

    @admin.action(description="Sync now (enqueue a sync task)", permissions=["change"])
    def sync_now(self, request: HttpRequest, queryset: QuerySet[Asset]) -> None:
        self._enqueue(request, queryset, "markets.tasks.sync_asset", what="sync", done="Sync")

    @admin.action(description="Retrain now (enqueue a full retrain)", permissions=["change"])
    def retrain_now(self, request: HttpRequest, queryset: QuerySet[Asset]) -> None:
        # Until a worker runs it (minutes; never, with no worker), the last outcome would be an
        # older run's: say it is queued, before sending, so that a task quicker than this request
        # (a skip) replaces the line rather than being hidden by it.
        queryset.update(
            last_train_outcome=(
                f"full retrain queued: Retrain now, by {request.user.get_username()}; waiting for a "
                "worker (this line says what came of it once one has run it)"
            ),
            last_train_outcome_at=timezone.now(),
        )
        # Sent by name: the web process never imports the training code.
        sent = self._enqueue(
            request, queryset, "forecasting.tasks.retrain_asset", "full", what="retrain", done="Full retrain"
        )
        if not sent:
            queryset.update(
                last_train_outcome="full retrain not queued (Retrain now): the task queue was unreachable",
                last_train_outcome_at=timezone.now(),
            )

    def _enqueue(
        self,
        request: HttpRequest,
        queryset: QuerySet[Asset],
        task: str,
        *args: Any,
        what: str,
        done: str,
    ) -> bool:
        symbols = list(queryset.values_list("symbol", flat=True))
        try:
            for symbol in symbols:
                task_send(task, symbol, *args)
        except Exception as error:  # the broker is down: say so instead of a 500
            self.message_user(
                request,
                f"Could not enqueue the {what}: the task queue is unreachable ({error}).",
                messages.ERROR,
            )
            return False
        self.message_user(request, f"{done} enqueued for {', '.join(symbols)}.", messages.SUCCESS)
        return True

    @admin.action(description="Activate", permissions=["change"])
    def activate(self, request: HttpRequest, queryset: QuerySet[Asset]) -> None:
        changed = assets_set_active(assets=queryset, active=True)
        self.message_user(request, f"{changed} asset(s) activated.", messages.SUCCESS)

    @admin.action(description="Deactivate", permissions=["change"])
    def deactivate(self, request: HttpRequest, queryset: QuerySet[Asset]) -> None:
        changed = assets_set_active(assets=queryset, active=False)
        self.message_user(request, f"{changed} asset(s) deactivated.", messages.SUCCESS)


def decimal_column(name: str) -> Any:
    """An admin column or read-only field showing the decimal field `name` without the
    column's ten padded places (37814.47, not 37814.4700000000); the stored value is unchanged."""

    @admin.display(description=name.replace("_", " "), ordering=name)
    def shown(self: admin.ModelAdmin, obj: Any) -> str:
        return decimal_text(getattr(obj, name))

    return shown


@admin.register(Candle)
class CandleAdmin(admin.ModelAdmin):
    """Read-only: candles come from imports and syncs, never from hand edits.

    The delete permission stays so that deleting an asset can cascade to its
    candles; there is no bulk "delete selected" here.
    """

    actions = None
    list_display = ("asset", "open_time", "open_", "high_", "low_", "close_", "volume_", "trades")
    fields = (
        "asset",
        "open_time",
        "open_",
        "high_",
        "low_",
        "close_",
        "volume_",
        "close_time",
        "quote_volume_",
        "trades",
        "taker_buy_base_volume_",
        "taker_buy_quote_volume_",
    )
    readonly_fields = fields
    # The decimals as written, not padded to the column's ten places: "<field>_" shows "<field>".
    open_ = decimal_column("open")
    high_ = decimal_column("high")
    low_ = decimal_column("low")
    close_ = decimal_column("close")
    volume_ = decimal_column("volume")
    quote_volume_ = decimal_column("quote_volume")
    taker_buy_base_volume_ = decimal_column("taker_buy_base_volume")
    taker_buy_quote_volume_ = decimal_column("taker_buy_quote_volume")
    list_filter = ("asset",)
    list_select_related = ("asset",)
    date_hierarchy = "open_time"
    ordering = ("asset", "-open_time")
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Candle | None = None) -> bool:
        return False


@admin.register(ConfirmedOutage)
class ConfirmedOutageAdmin(admin.ModelAdmin):
    """Read-only, but deletable: a deleted outage is asked about again by the next sync
    (if, say, an exchange later publishes candles for those hours)."""

    list_display = ("asset", "source", "first_hour", "last_hour", "hours", "confirmed_at")
    list_filter = ("asset", "source")
    list_select_related = ("asset",)
    ordering = ("asset", "-first_hour")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ConfirmedOutage | None = None) -> bool:
        return False
