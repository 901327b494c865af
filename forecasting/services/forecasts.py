"""Forecasts from the active model (onnxruntime only), their scores as reality arrives, retention."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection

from django.conf import settings
from django.db.models import Exists, F, Max, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from forecasting.artifacts import ArtifactIntegrityError
from forecasting.ml import inference
from forecasting.models import Forecast, ModelVersion
from forecasting.serving import session_for
from makeusrich.formats import api_float, iso_z
from markets.models import MODEL_UNLOADABLE_PREFIX, Asset, Candle
from markets.selectors import candles_frame

HOUR = dt.timedelta(hours=1)
Status = ModelVersion.Status


def last_candle_time(asset: Asset) -> dt.datetime | None:
    return (
        Candle.objects.filter(asset=asset).order_by("-open_time").values_list("open_time", flat=True).first()
    )


def forecast_refresh(*, asset: Asset) -> Forecast | None:
    """Score what reality has settled, then store the active model's forecast from the last candle.

    Uses onnxruntime only. Returns None when the asset has no active version. Clears the
    asset's recorded forecast problem unless it raises.
    """
    forecasts_score(asset=asset)
    version = ModelVersion.objects.filter(asset=asset, status=Status.ACTIVE).first()
    last = last_candle_time(asset)
    if version is None or last is None:
        _forecast_problem_clear(asset)
        return None
    existing = Forecast.objects.filter(model_version=version, base_time=last).first()
    if existing is not None:
        _forecast_problem_clear(asset)
        return existing
    # Enough history for one window even when an outage sits inside it.
    since = last - (version.window + 48) * HOUR
    frame = candles_frame(asset=asset, since=since)
    result = inference.forecast(session_for(version), version.preprocessing, frame)
    points = [
        {
            "time": iso_z(point["time"]),
            "close": float(point["close"]),
            "lower": float(point["lower"]),
            "upper": float(point["upper"]),
        }
        for point in result.points
    ]
    forecast, _ = Forecast.objects.get_or_create(
        model_version=version,
        base_time=result.base_time,
        defaults={
            "asset": asset,
            "last_close": result.last_close,
            "horizon": len(points),
            "points": points,
        },
    )
    _forecast_problem_clear(asset)
    return forecast


def forecast_refresh_if_possible(*, asset: Asset) -> tuple[Forecast | None, str | None]:
    """`forecast_refresh`, with the reason instead of an error when the candles cannot make a window.

    After an exchange outage the last `window` hours may miss too many
    candles; a model trained (or a sync made) then is still fine, only the
    forecast must wait for enough new hours. An active version whose
    artifact fails its hash check cannot forecast until an admin activates
    another one: that is said too. Returns (forecast, None) or (None, why not).

    The reason is also recorded on the asset (`forecast_problem`), for the admin and as a
    staleness reason of the pages and the API, until a forecast is stored again.
    """
    try:
        return forecast_refresh(asset=asset), None
    except inference.InsufficientDataError as exc:
        _forecast_problem_record(asset, f"no newer forecast until enough recent candles arrive: {exc}")
        return None, f"no forecast yet: {exc}"
    except ArtifactIntegrityError as exc:
        _forecast_problem_record(
            asset, f"{MODEL_UNLOADABLE_PREFIX}{exc}; activate another version (the next retrain replaces it)"
        )
        return None, f"no forecast: the active version's artifact is bad ({exc}); activate another version"


def _forecast_problem_record(asset: Asset, problem: str) -> None:
    """Record why no forecast was stored, unless one is there by now: a refresh that ran meanwhile
    (an admin activated another version; a sync brought the missing candles) stored the forecast
    of the active version from the newest candle, and this failure is already history."""
    now = timezone.now()
    newest = Candle.objects.filter(asset=OuterRef("asset")).order_by("-open_time").values("open_time")[:1]
    served = Forecast.objects.filter(
        asset=OuterRef("pk"), model_version__status=Status.ACTIVE, base_time=Subquery(newest)
    )
    recorded = (
        Asset.objects.filter(pk=asset.pk)
        .exclude(Exists(served))
        .update(
            forecast_problem=problem[:2000],
            # "since" keeps the first failure of a run of them: how long forecasts have been failing.
            forecast_problem_since=Coalesce(F("forecast_problem_since"), Value(now)),
        )
    )
    if recorded:
        asset.forecast_problem = problem[:2000]
        asset.forecast_problem_since = asset.forecast_problem_since or now


def _forecast_problem_clear(asset: Asset) -> None:
    Asset.objects.filter(pk=asset.pk).exclude(forecast_problem="", forecast_problem_since=None).update(
        forecast_problem="", forecast_problem_since=None
    )
    asset.forecast_problem, asset.forecast_problem_since = "", None


def forecasts_score(*, asset: Asset) -> int:
    """Fill in the scores of stored forecasts whose hours have closed; returns how many changed."""
    return _score(asset, list(Forecast.objects.filter(asset=asset, fully_scored=False).order_by("base_time")))


def forecasts_rescore(*, asset: Asset, hours: Collection[dt.datetime]) -> int:
    """Score again the forecasts already scored at one of `hours` (open times): a candle there
    was corrected since (import_candles --replace) or filled a hole that was scored as missing
    (a sync); returns how many changed.

    Only the actual closes change: a forecast stays as it was made, its points and
    last_close (the persistence forecast) being what the model saw at the time.
    """
    if not hours:
        return 0
    corrected = set(hours)
    longest = Forecast.objects.filter(asset=asset).aggregate(longest=Max("horizon"))["longest"] or 0
    candidates = Forecast.objects.filter(
        asset=asset, base_time__gte=min(corrected) - longest * HOUR, base_time__lt=max(corrected)
    )
    scored_against = [
        forecast
        for forecast in candidates.iterator()
        if any(forecast.base_time + step * HOUR in corrected for step in range(1, len(forecast.scores) + 1))
    ]
    return _score(asset, scored_against)


def _score(asset: Asset, forecasts: list[Forecast]) -> int:
    last = last_candle_time(asset)
    if not forecasts or last is None:
        return 0
    start = min(f.base_time for f in forecasts) + HOUR
    end = max(f.base_time + f.horizon * HOUR for f in forecasts)
    closes = {
        when: float(close)
        for when, close in Candle.objects.filter(asset=asset, open_time__gte=start, open_time__lte=end)
        .values_list("open_time", "close")
        .iterator()
    }
    changed = []
    for forecast in forecasts:
        scores = _scores_of(forecast, closes=closes, last=last)
        if scores != forecast.scores:
            forecast.scores = scores
            forecast.fully_scored = len(scores) == len(forecast.points)
            changed.append(forecast)
    Forecast.objects.bulk_update(changed, ["scores", "fully_scored"], batch_size=500)
    return len(changed)


def _scores_of(forecast: Forecast, *, closes: dict[dt.datetime, float], last: dt.datetime) -> list[dict]:
    scores = []
    last_close = float(forecast.last_close)
    for step, point in enumerate(forecast.points):
        when = forecast.base_time + (step + 1) * HOUR
        if when > last:
            break
        actual = closes.get(when)
        if actual is None:  # an exchange outage: that hour never closed
            scores.append({"time": point["time"], "actual": None})
            continue
        scores.append(
            {
                "time": point["time"],
                "actual": actual,
                # Differences of two prices: rounded where the price's digits stop, so that
                # 38908.27 - 38908.26 is stored as 0.01, not 0.00999999999476131.
                "error": api_float(point["close"] - actual, scale=actual),
                "inside": point["lower"] <= actual <= point["upper"],
                "persistence_error": api_float(last_close - actual, scale=actual),
            }
        )
    return scores


def forecasts_prune(*, older_than_days: int | None = None) -> int:
    """Delete scored forecasts generated before the retention limit; returns how many.

    Measured on generated_at (wall clock), not base_time, so replayed
    historical data is not pruned the moment it is forecast.
    """
    days = settings.FORECAST_RETENTION_DAYS if older_than_days is None else older_than_days
    cutoff = timezone.now() - dt.timedelta(days=days)
    deleted, _ = Forecast.objects.filter(fully_scored=True, generated_at__lt=cutoff).delete()
    return deleted
