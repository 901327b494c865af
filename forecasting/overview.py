"""Reads behind the web pages: one panel per active asset, and the retrain schedule.

A panel gathers what the dashboard and the asset page show about an asset:
last price and 24 h change, the active model's latest forecast (next hour and
horizon end), its held-out skill against persistence, staleness, and the
plain-words state when there is nothing to show (no data, training, failed).
`asset_panel_list` runs a fixed number of queries whatever the number of
assets. Staleness rules are `forecasting.selectors.forecast_staleness`, the
same as the API's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from functools import reduce
from operator import or_
from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.db.models.fields.json import KeyTransform
from django.utils import timezone

from forecasting.models import Forecast, ModelVersion, TrainingLease
from forecasting.selectors import forecast_staleness, reason_for_members
from markets.models import Asset, Candle

Status = ModelVersion.Status
# Version JSON the panels never show (serving and training details, loss curve).
UNSHOWN_VERSION_FIELDS = ("preprocessing", "loss_history", "hyperparameters", "features")
HOUR = timedelta(hours=1)
DAY = 24 * HOUR
# A training whose lease was last renewed longer ago is said to show no sign of progress: an
# epoch renews it, and the default recipe's epochs take seconds; the export and the gate after
# the last one rarely a minute. Its worker may be gone, and the lease's expiry will tell.
TRAINING_QUIET = timedelta(minutes=10)
# The PeriodicTask rows of makeusrich/schedules.py, with the words the dashboard uses.
RETRAIN_TASKS = {
    "retrain-warm-hourly": "quick retrain (fine-tune and recalibrate)",
    "retrain-full-daily": "full retrain from scratch",
}


def no_change_was_exact(skill: float | None, rmse: float | None, persistence_rmse: float | None) -> bool:
    """True when skill is null because assuming no change made no error and the model did:
    the model is worse, by no finite ratio."""
    return skill is None and persistence_rmse == 0 and rmse is not None and rmse > 0


def skill_words(
    skill: float | None, *, rmse: float | None = None, persistence_rmse: float | None = None
) -> str:
    """`skill_rmse` (1 - rmse / persistence rmse) as a sentence a user understands; the errors
    say why a null skill is null."""
    if no_change_was_exact(skill, rmse, persistence_rmse):
        return "worse than assuming no change, which was exact here (the price did not move)"
    if skill is None:
        return "not measured yet"
    percent = round(skill * 100)
    if percent > 0:
        return f"{percent} % lower error than assuming no change"
    if percent < 0:
        return f"worse than assuming no change ({-percent} % higher error)"
    return "about as accurate as assuming no change"


@dataclass(frozen=True)
class ForecastStep:
    """One point of a forecast, with its change from the close it started from."""

    hours: int  # hours ahead of the base candle: 1 = the next hour
    time: datetime  # open time of the forecast candle (the API's "time")
    close: float
    lower: float
    upper: float
    change: float
    change_pct: float

    @property
    def close_time(self) -> datetime:
        """When the forecast price is due: the close of that hourly candle."""
        return self.time + HOUR

    @classmethod
    def of(cls, forecast: Forecast, index: int) -> ForecastStep:
        point = forecast.points[index]
        base = float(forecast.last_close)
        close = float(point["close"])
        return cls(
            hours=index + 1,
            time=datetime.fromisoformat(str(point["time"]).replace("Z", "+00:00")),
            close=close,
            lower=float(point["lower"]),
            upper=float(point["upper"]),
            change=close - base,
            change_pct=(close - base) / base * 100 if base else 0.0,
        )


@dataclass(frozen=True)
class Skill:
    hours: int
    value: float | None  # held-out skill_rmse at that step
    rmse: float | None = None
    persistence_rmse: float | None = None

    @property
    def words(self) -> str:
        return skill_words(self.value, rmse=self.rmse, persistence_rmse=self.persistence_rmse)

    @property
    def worse(self) -> bool:
        if no_change_was_exact(self.value, self.rmse, self.persistence_rmse):
            return True
        return self.value is not None and round(self.value * 100) < 0

    @property
    def better(self) -> bool:
        return self.value is not None and round(self.value * 100) > 0


def skill_at(metrics: dict[str, Any], index: int) -> Skill:
    """The held-out skill of `metrics` at step `index` (-1 = the horizon's end), with its errors."""

    def value(name: str) -> float | None:
        values = metrics.get(name) or []
        try:
            return values[index]
        except (IndexError, KeyError, TypeError):
            return None

    hours = index + 1 if index >= 0 else len(metrics.get("skill_rmse") or []) + index + 1
    return Skill(
        hours=hours,
        value=value("skill_rmse"),
        rmse=value("rmse"),
        persistence_rmse=value("persistence_rmse"),
    )


# The band is called "80 %" plainly only where it held about that often on held-out data.
CALIBRATED_COVERAGE = (0.75, 0.85)


@dataclass(frozen=True)
class BandCoverage:
    """How often the active version's 80 % band held the price `hours` ahead on held-out data."""

    hours: int
    value: float

    @property
    def calibrated(self) -> bool:
        low, high = CALIBRATED_COVERAGE
        return low <= self.value <= high


@dataclass
class AssetPanel:
    asset: Asset
    first_time: datetime | None = None  # open time of the oldest stored candle
    last_time: datetime | None = None
    last_close: Decimal | None = None
    close_day_ago: Decimal | None = None
    version: ModelVersion | None = None  # the active one
    latest_version: ModelVersion | None = None  # the newest of any status
    forecast: Forecast | None = None
    stale_reasons: list[str] = field(default_factory=list)
    lease: TrainingLease | None = None  # the asset's training lease, if ever taken
    now: datetime = field(default_factory=timezone.now)  # when the panel was read

    @property
    def training_running(self) -> bool:
        """The latest version is training and a run holds the lease. A version left "training"
        by a killed worker keeps that status until the next run takes the lease; its lease,
        renewed at every epoch, expires (or was released) meanwhile."""
        latest = self.latest_version
        if latest is None or latest.status != Status.TRAINING:
            return False
        return self.lease is not None and self.lease.held(self.now)

    @property
    def training_quiet_since(self) -> datetime | None:
        """The running training's last sign of progress, when it is older than TRAINING_QUIET."""
        if not self.training_running or self.lease is None or self.lease.renewed_at is None:
            return None
        renewed = self.lease.renewed_at
        return renewed if self.now - renewed > TRAINING_QUIET else None

    @property
    def member_stale_reasons(self) -> list[str]:
        """`stale_reasons` for users who are not staff: the sync's error text and the bad
        artifact's name and hashes are internals only an operator can act on, so each becomes
        a plain line."""
        return [reason_for_members(reason) for reason in self.stale_reasons]

    @property
    def member_forecast_problem(self) -> str:
        """`asset.forecast_problem` as members may read it (see `member_stale_reasons`)."""
        return reason_for_members(self.asset.forecast_problem) if self.asset.forecast_problem else ""

    @property
    def change_24h_pct(self) -> float | None:
        if self.last_close is None or not self.close_day_ago:
            return None
        return float((self.last_close - self.close_day_ago) / self.close_day_ago * 100)

    @property
    def next_hour(self) -> ForecastStep | None:
        return ForecastStep.of(self.forecast, 0) if self.forecast and self.forecast.points else None

    @property
    def horizon_end(self) -> ForecastStep | None:
        if not self.forecast or len(self.forecast.points) < 2:
            return None
        return ForecastStep.of(self.forecast, len(self.forecast.points) - 1)

    @property
    def steps(self) -> list[ForecastStep]:
        if not self.forecast:
            return []
        return [ForecastStep.of(self.forecast, index) for index in range(len(self.forecast.points))]

    @property
    def band_at_end(self) -> BandCoverage | None:
        """Test coverage of the band at the horizon's last step, the one the far forecast shows."""
        metrics = (self.version.metrics or {}) if self.version else {}
        values = metrics.get("coverage_80") or []
        if not values or values[-1] is None:
            return None
        return BandCoverage(hours=len(values), value=float(values[-1]))

    @property
    def skills(self) -> list[Skill]:
        """Held-out skill at the next hour and at the horizon's end."""
        metrics = (self.version.metrics or {}) if self.version else {}
        values = metrics.get("skill_rmse") or []
        if not values:
            return []
        steps = [0] if len(values) == 1 else [0, len(values) - 1]
        return [skill_at(metrics, step) for step in steps]

    @property
    def state(self) -> str:
        """ready | no_data | no_model | training | interrupted | failed | not_promoted | no_forecast."""
        if self.last_time is None:
            return "no_data"
        if self.version is None:
            latest = self.latest_version
            if latest is None:
                return "no_model"
            if latest.status == Status.TRAINING:
                return "training" if self.training_running else "interrupted"
            if latest.status == Status.FAILED:
                return "failed"
            return "not_promoted"
        return "ready" if self.forecast is not None else "no_forecast"

    @property
    def data_until(self) -> datetime | None:
        """Close time of the last stored candle: prices are known up to here."""
        return self.last_time + HOUR if self.last_time else None

    @property
    def data_synced_at(self) -> datetime | None:
        return self.asset.last_synced_at

    @property
    def base_close_time(self) -> datetime | None:
        """When the price the forecast starts from was known: the close of its base candle."""
        return self.forecast.base_time + HOUR if self.forecast else None

    @property
    def no_change_hours(self) -> list[int]:
        """Hours ahead that the active version forecasts as "no change" on purpose.

        Training shrinks each step's predicted change by a factor fitted on
        validation (`preprocessing.target.shrink`), and sets it to 0 where the
        network had no significant skill there: that step is persistence.
        """
        shrink = getattr(self.version, "target_shrink", None) if self.version else None
        if not isinstance(shrink, list):
            return []
        return [step + 1 for step, factor in enumerate(shrink) if factor == 0]

    @property
    def no_change(self) -> str:
        """Which forecast hours are "no change" by that rule: "all", "some" or none ("")."""
        hours = self.no_change_hours
        if not hours:
            return ""
        shrink = getattr(self.version, "target_shrink", None) or []
        return "all" if len(hours) == len(shrink) else "some"


def _latest(queryset: QuerySet, field_name: str) -> Subquery:
    return Subquery(queryset.values(field_name)[:1])


def _lease_of(asset: Asset) -> TrainingLease | None:
    try:
        return asset.training_lease
    except ObjectDoesNotExist:  # never trained
        return None


def _panels(assets: QuerySet[Asset], now: datetime) -> list[AssetPanel]:
    candles = Candle.objects.filter(asset=OuterRef("pk")).order_by("-open_time")
    oldest = Candle.objects.filter(asset=OuterRef("pk")).order_by("open_time")
    versions = ModelVersion.objects.filter(asset=OuterRef("pk")).order_by("-version")
    forecasts = Forecast.objects.filter(asset=OuterRef("pk"), model_version__status=Status.ACTIVE).order_by(
        "-base_time"
    )
    rows = list(
        assets.select_related("training_lease").annotate(
            first_time=_latest(oldest, "open_time"),
            last_time=_latest(candles, "open_time"),
            last_close=_latest(candles, "close"),
            latest_version_id=_latest(versions, "pk"),
            active_version_id=_latest(versions.filter(status=Status.ACTIVE), "pk"),
            latest_forecast_id=_latest(forecasts, "pk"),
        )
    )
    panels = {
        asset.pk: AssetPanel(
            asset=asset,
            first_time=asset.first_time,
            last_time=asset.last_time,
            last_close=asset.last_close,
            lease=_lease_of(asset),
            now=now,
        )
        for asset in rows
    }
    day_ago = [Q(asset_id=a.pk, open_time=a.last_time - DAY) for a in rows if a.last_time is not None]
    if day_ago:
        for asset_id, close in Candle.objects.filter(reduce(or_, day_ago)).values_list("asset_id", "close"):
            panels[asset_id].close_day_ago = close
    version_ids = {a.latest_version_id for a in rows} | {a.active_version_id for a in rows}
    version_ids.discard(None)
    if version_ids:
        # Only the shrink factors of the (large) preprocessing JSON: they say which hours are "no change".
        shrink = KeyTransform("shrink", KeyTransform("target", "preprocessing"))
        versions = ModelVersion.objects.filter(pk__in=version_ids).defer(*UNSHOWN_VERSION_FIELDS)
        for version in versions.annotate(target_shrink=shrink):
            panel = panels[version.asset_id]
            if version.status == Status.ACTIVE:
                panel.version = version
            if version.pk == panel.asset.latest_version_id:
                panel.latest_version = version
    forecast_ids = [a.latest_forecast_id for a in rows if a.latest_forecast_id]
    if forecast_ids:
        for forecast in Forecast.objects.filter(pk__in=forecast_ids).defer("scores"):
            panel = panels[forecast.asset_id]
            panel.forecast = forecast
            if panel.version is not None:
                panel.stale_reasons = forecast_staleness(
                    asset=panel.asset,
                    version=panel.version,
                    base_time=forecast.base_time,
                    last_candle_time=panel.last_time,
                    now=now,
                )
    return [panels[asset.pk] for asset in rows]


def asset_panel_list(*, now: datetime | None = None) -> list[AssetPanel]:
    """A panel for every active asset, in symbol order: at most four queries."""
    return _panels(Asset.objects.filter(is_active=True).order_by("symbol"), now or timezone.now())


def asset_panel_get(*, symbol: str, now: datetime | None = None) -> AssetPanel | None:
    """The panel of the active asset named `symbol` (any case), or None."""
    symbol = (symbol or "").strip().upper()
    if not symbol.isalnum() or len(symbol) > 20:
        return None
    panels = _panels(Asset.objects.filter(is_active=True, symbol=symbol), now or timezone.now())
    return panels[0] if panels else None


@dataclass(frozen=True)
class ServiceEnd:
    until: datetime  # when the next version was activated
    by: int  # that version's number


def version_service_ends(versions: list[ModelVersion]) -> dict[int, ServiceEnd]:
    """For each of `versions` that served and no longer does: when, and which version took over.

    Read from activation times (the next activation among `versions` ended it), so a
    version replaced by one outside the list, or taken out of service with no
    successor, has none.
    """
    served = sorted((v for v in versions if v.activated_at is not None), key=lambda v: v.activated_at)
    return {
        current.pk: ServiceEnd(until=following.activated_at, by=following.version)
        for current, following in zip(served, served[1:], strict=False)
        if current.status != Status.ACTIVE
    }


@dataclass(frozen=True)
class RetrainRun:
    name: str
    label: str
    next_run: datetime


def retrain_schedule(*, now: datetime | None = None) -> list[RetrainRun]:
    """Next runs of the enabled retrain schedules (django-celery-beat crontabs), soonest first.

    Empty when the schedules are missing or disabled: the page then says so
    instead of inventing a time.
    """
    from django_celery_beat.models import PeriodicTask

    now = now or timezone.now()
    runs = []
    tasks = PeriodicTask.objects.filter(name__in=RETRAIN_TASKS, enabled=True, crontab__isnull=False)
    for task in tasks.select_related("crontab"):
        schedule: Any = task.crontab.schedule
        # celery computes the delay from its own clock; round away its microseconds.
        when = now + schedule.remaining_estimate(now)
        when = (when + timedelta(seconds=30)).replace(second=0, microsecond=0)
        runs.append(RetrainRun(name=task.name, label=RETRAIN_TASKS[task.name], next_run=when))
    return sorted(runs, key=lambda run: run.next_run)
