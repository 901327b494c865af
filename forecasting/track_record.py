"""The live track record: how stored forecasts fared against the candles that followed.

Each scored hour carries the model's error (forecast close - actual), the
naive persistence error (last close - actual) and whether the actual close
fell inside the interval. Here they are aggregated per horizon step and
overall, for one asset over a window of market time. Reach it through
`forecasting.selectors.track_record`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.utils import timezone

from forecasting.models import Forecast
from markets.models import Asset


@dataclass
class ErrorStats:
    """Model vs persistence errors over `count` scored hours (quote-currency units)."""

    count: int = 0
    mae: float | None = None
    rmse: float | None = None
    persistence_mae: float | None = None
    persistence_rmse: float | None = None
    skill_rmse: float | None = None  # 1 - rmse / persistence_rmse: > 0 beats persistence (see _skill)
    coverage: float | None = None  # share of actual closes inside [lower, upper]
    step: int | None = None  # 1 = the first forecast hour; None for an overall figure


@dataclass
class _Accumulator:
    errors: list[float] = field(default_factory=list)
    persistence: list[float] = field(default_factory=list)
    inside: list[bool] = field(default_factory=list)

    def add(self, score: dict[str, Any]) -> None:
        error, persistence = score.get("error"), score.get("persistence_error")
        if not _finite(error) or not _finite(persistence):
            return
        self.errors.append(float(error))
        self.persistence.append(float(persistence))
        if isinstance(score.get("inside"), bool):
            self.inside.append(score["inside"])

    def stats(self, step: int | None = None) -> ErrorStats:
        if not self.errors:
            return ErrorStats(step=step)
        rmse = _rmse(self.errors)
        persistence_rmse = _rmse(self.persistence)
        return ErrorStats(
            count=len(self.errors),
            mae=_mean_abs(self.errors),
            rmse=rmse,
            persistence_mae=_mean_abs(self.persistence),
            persistence_rmse=persistence_rmse,
            skill_rmse=_skill(rmse, persistence_rmse),
            coverage=sum(self.inside) / len(self.inside) if self.inside else None,
            step=step,
        )


def _skill(rmse: float, persistence_rmse: float) -> float | None:
    """1 - rmse / persistence_rmse, as the test metrics have it: 0 when both are 0, None when
    only persistence is exact (the model is worse by no finite ratio)."""
    if persistence_rmse > 0:
        return 1 - rmse / persistence_rmse
    return 0.0 if rmse == 0 else None


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _mean_abs(values: list[float]) -> float:
    return sum(abs(value) for value in values) / len(values)


def _rmse(values: list[float]) -> float:
    return math.sqrt(sum(value * value for value in values) / len(values))


@dataclass(frozen=True)
class ScoredForecast:
    base_time: datetime
    generated_at: datetime
    model_version: int
    last_close: float
    horizon_hours: int
    fully_scored: bool
    stats: ErrorStats
    scores: list[dict[str, Any]]


@dataclass(frozen=True)
class TrackRecord:
    symbol: str
    days: int
    window_start: datetime
    window_end: datetime
    forecasts: int  # forecasts with at least one scored hour in the window
    fully_scored: int
    overall: ErrorStats
    per_step: list[ErrorStats]
    recent: list[ScoredForecast]


def _step(base_time: datetime, score: dict[str, Any], position: int) -> int:
    """1-based horizon step of a score, from its time; its position if the time is unreadable."""
    try:
        when = datetime.fromisoformat(str(score["time"]))
    except (KeyError, ValueError):
        return position + 1
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(1, round((when - base_time).total_seconds() / 3600))


def track_record(
    *, asset: Asset, days: int = 7, recent: int = 20, window_end: datetime | None = None
) -> TrackRecord:
    """Scored forecasts of `asset` whose base time lies in the last `days` days of market time.

    One forecast per base hour: when a version promoted within the hour stored
    a second forecast from the same candle, the later one (served for the rest
    of the hour) counts; scoring both would count the hour twice. The window ends at the latest candle (`asset.last_candle_time` as annotated
    by `asset_find`, else now): replayed data is historical, so wall-clock
    time would find nothing. One query.
    """
    end = window_end or getattr(asset, "last_candle_time", None) or timezone.now()
    start = end - timedelta(days=days)
    rows = (
        Forecast.objects.filter(asset=asset, base_time__gte=start, base_time__lte=end)
        .order_by("-base_time", "-generated_at")
        .values_list(
            "base_time",
            "generated_at",
            "model_version__version",
            "last_close",
            "horizon",
            "fully_scored",
            "scores",
        )
    )
    overall = _Accumulator()
    steps: dict[int, _Accumulator] = defaultdict(_Accumulator)
    scored: list[ScoredForecast] = []
    count = fully = 0
    previous_base = None
    for base_time, generated_at, version, last_close, horizon, fully_scored, scores in rows.iterator():
        if base_time == previous_base:
            continue  # an earlier forecast of the same hour, replaced by the one just read
        previous_base = base_time
        if not scores:
            continue
        count += 1
        fully += bool(fully_scored)
        mine = _Accumulator()
        for position, score in enumerate(scores):
            overall.add(score)
            mine.add(score)
            steps[_step(base_time, score, position)].add(score)
        if len(scored) < recent:
            scored.append(
                ScoredForecast(
                    base_time=base_time,
                    generated_at=generated_at,
                    model_version=version,
                    last_close=float(last_close),
                    horizon_hours=horizon,
                    fully_scored=fully_scored,
                    stats=mine.stats(),
                    scores=scores,
                )
            )
    return TrackRecord(
        symbol=asset.symbol,
        days=days,
        window_start=start,
        window_end=end,
        forecasts=count,
        fully_scored=fully,
        overall=overall.stats(),
        per_step=[steps[step].stats(step) for step in sorted(steps)],
        recent=scored,
    )
