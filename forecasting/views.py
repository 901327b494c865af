"""Pages: the dashboard of every active asset, and one asset's charts and models."""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET

from forecasting import charts
from forecasting.models import ModelVersion
from forecasting.overview import (
    AssetPanel,
    asset_panel_get,
    asset_panel_list,
    retrain_schedule,
    version_service_ends,
)
from forecasting.selectors import (
    model_version_active,
    model_version_list,
    track_record,
    versions_left_training,
)
from markets.selectors import candle_list
from markets.sources.replay import replay_symbol

CHART_HOURS = 5 * 24  # the price chart: the five days of time up to the newest candle
HOUR = timedelta(hours=1)
TRACK_RECORD_DAYS = 7
# Below a day of hourly forecasts a track-record figure is told as preliminary, not as a
# finding: one calm or one wild stretch decides it, and an 80 % band's hit rate over n
# independent hours has a standard error of 0.4/sqrt(n), still 8 points at 24 (3 hours
# "held 100 %" would say nothing). The band's figure pools every hour ahead, and the hours
# of one forecast share its start, so it also waits for as many forecasts.
TRACK_RECORD_MIN_HOURS = 24
VERSIONS_SHOWN = 20


def _replayed(panels: list[AssetPanel]) -> list[AssetPanel]:
    """The panels whose prices are replayed history: only with the replay source, and only the
    asset its bundled file holds (any other asset's candles were imported, not replayed)."""
    if settings.MARKET_DATA_SOURCE != "replay":
        return []
    symbol = replay_symbol(Path(settings.BUNDLED_DATA_FILE))
    return [panel for panel in panels if panel.asset.symbol == symbol]


def _chart_span(panel: AssetPanel, candles: list[dict[str, Any]]) -> dict[str, Any]:
    """The price chart's heading words: the time it spans (five days, or the whole history when
    shorter) and how many hours in it have no candle."""
    if panel.last_time is None or panel.first_time is None:
        return {"label": f"Last {CHART_HOURS // 24} days", "missing": 0}
    hours = min((panel.last_time - panel.first_time) // HOUR + 1, CHART_HOURS)
    if hours == CHART_HOURS:
        label = f"Last {CHART_HOURS // 24} days"
    elif hours % 24 == 0:
        label = f"Last {hours // 24} day{'s' if hours > 24 else ''}"
    else:
        label = f"Last {hours} hour{'s' if hours > 1 else ''}"
    return {"label": label, "missing": hours - len(candles)}


def _version_reason(version: ModelVersion) -> str:
    """Why a version has its status; for one no longer in service, why it was put in service
    (its reason, "promoted: …", is not repeated after "When promoted: ")."""
    if version.status != ModelVersion.Status.ACTIVE and version.activated_at:
        return f"When promoted: {version.reason.removeprefix('promoted: ')}"
    return version.reason


def _no_change_loss(version: ModelVersion | None) -> dict[str, float]:
    """What "no change" scored by the training loss ({"train", "validation"}, finite values
    only); empty for versions trained before it was recorded."""
    stored = getattr(version, "no_change_loss", None)
    if not isinstance(stored, dict):
        return {}
    return {
        split: float(value)
        for split, value in stored.items()
        if split in ("train", "validation")
        and isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
    }


@login_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    panels = asset_panel_list()
    context = {
        "panels": panels,
        "replayed": _replayed(panels),
        "retrains": retrain_schedule(),
        "now": timezone.now(),
    }
    return render(request, "forecasting/dashboard.html", context)


@login_required
@require_GET
def asset_detail(request: HttpRequest, symbol: str) -> HttpResponse:
    panel = asset_panel_get(symbol=symbol)
    if panel is None:
        raise Http404(f"No active asset named {symbol!r}.")
    if symbol != panel.asset.symbol:
        return redirect("asset_detail", symbol=panel.asset.symbol)
    asset = panel.asset
    # By time, not count: where the exchange had an outage the chart shows the hole, and
    # its heading never calls weeks of sparse candles "5 days".
    candles = (
        candle_list(asset=asset, limit=CHART_HOURS, start=panel.last_time - (CHART_HOURS - 1) * HOUR)
        if panel.last_time
        else []
    )
    forecast = panel.forecast
    price_chart = None
    if candles:
        price_chart = charts.price_figure(
            name=asset.display_name,
            candles=candles,
            points=forecast.points if forecast else (),
            base_time=forecast.base_time if forecast else None,
            base_close=forecast.last_close if forecast else None,
            quote=asset.quote,
        )
    active = model_version_active(asset=asset, with_loss_history=True)
    no_change_loss = _no_change_loss(active)
    loss_chart = (
        charts.loss_figure(loss_history=active.loss_history, no_change=no_change_loss)
        if active and active.loss_history
        else None
    )
    record = track_record(
        asset=asset, days=TRACK_RECORD_DAYS, recent=TRACK_RECORD_DAYS * 24, window_end=panel.last_time
    )
    next_hour = next((stats for stats in record.per_step if stats.step == 1), None)
    series = charts.track_record_series(record.recent)
    track_chart = charts.track_record_figure(series=series, quote=asset.quote) if series["time"] else None
    versions = model_version_list(asset=asset, limit=VERSIONS_SHOWN)
    ends = version_service_ends(versions)
    stopped = versions_left_training(versions, panel.lease, panel.now)
    for version in versions:
        version.service_end = ends.get(version.pk)
        version.reason_shown = _version_reason(version)
        # Still "training" with no run holding the lease: its worker died (the next run marks it).
        version.stopped = version.pk in stopped
    horizon = forecast.horizon if forecast else (versions[0].horizon if versions else None)
    context = {
        "panel": panel,
        "asset": asset,
        "price_chart": price_chart,
        "chart_span": _chart_span(panel, candles),
        "replayed": _replayed([panel]),
        "versions": versions,
        # The table's header and each row's label on a phone: one text for both.
        "error_end_label": f"Error {horizon} h ahead" if horizon else "Error at the end",
        "active": active,
        "loss_chart": loss_chart,
        "no_change_loss": no_change_loss,
        "record": record,
        "record_next_hour": next_hour,
        "record_min_hours": TRACK_RECORD_MIN_HOURS,
        "next_hour_judged": next_hour is not None and next_hour.count >= TRACK_RECORD_MIN_HOURS,
        "coverage_judged": min(record.overall.count, record.forecasts) >= TRACK_RECORD_MIN_HOURS,
        # Every counted forecast has a scored hour, so the forecasts are what the band waits for.
        "coverage_forecasts_to_go": max(TRACK_RECORD_MIN_HOURS - record.forecasts, 0),
        "track_chart": track_chart,
        "now": timezone.now(),
    }
    return render(request, "forecasting/asset_detail.html", context)
