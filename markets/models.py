from __future__ import annotations

from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import models

PRICE = {"max_digits": 30, "decimal_places": 10}
# Starts Asset.last_sync_error when only the filling of older holes failed: the sync's
# new candles were stored, so the data a forecast starts from is current.
HOLES_ERROR_PREFIX = "filling holes failed (new candles are synced): "
# Starts Asset.forecast_problem when the active version's artifact cannot be read (missing, or not
# the bytes its sha256 was recorded for): no forecast is made until another version is active.
MODEL_UNLOADABLE_PREFIX = "the active model cannot be loaded: "
# The same, for anyone but staff (the API and the pages): no storage keys, hashes or instructions.
MODEL_UNLOADABLE_FOR_MEMBERS = (
    "the active model cannot be loaded, so no newer forecast is made; the operators see why in the admin"
)


def forecast_problem_for_members(problem: str) -> str:
    """A recorded forecast problem (or a stale reason quoting one) as anyone may read it: a bad
    artifact's key, hashes and what to do about them stay in the admin."""
    return MODEL_UNLOADABLE_FOR_MEMBERS if problem.startswith(MODEL_UNLOADABLE_PREFIX) else problem


class Asset(models.Model):
    """A Binance pair we follow, e.g. BTCUSDT (base BTC, quote USDT)."""

    symbol = models.CharField(max_length=20, unique=True)
    base = models.CharField(max_length=10)
    quote = models.CharField(max_length=10)
    interval = models.CharField(max_length=4, default="1h", editable=False)
    is_active = models.BooleanField(default=True)
    # Forecast horizon in hours; null means settings.FORECAST_HORIZON.
    horizon = models.PositiveSmallIntegerField(null=True, blank=True)
    # Overrides of the training hyperparameters (see forecasting.ml.config).
    hyperparameters = models.JSONField(default=dict, blank=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    last_sync_error = models.TextField(blank=True)
    # What the last retrain (a task: hourly, daily, "retrain now"; or `manage.py train`) did, and
    # when: written by forecasting.services.asset_train_outcome_record, shown in the admin.
    last_train_outcome = models.TextField(
        "last retrain task",
        blank=True,
        help_text="What the last retrain did, by a retrain task or by `manage.py train` (it says so): "
        "the version it made and why it is (not) active, why it was skipped, or the error.",
    )
    last_train_outcome_at = models.DateTimeField("last retrain task at", null=True, blank=True)
    # Why the last forecast refresh (hourly, after a retrain, on an activation) stored no forecast,
    # and since when refreshes fail: written by forecasting.services.forecast_refresh_if_possible,
    # cleared when a forecast is stored; the pages and the API give it as a staleness reason.
    forecast_problem = models.TextField(
        blank=True,
        help_text="Why the last forecast refresh stored no forecast (a bad model artifact, too few "
        "recent candles); empty once a forecast is stored again.",
    )
    forecast_problem_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["symbol"]

    def __str__(self) -> str:
        return self.symbol

    @property
    def new_candles_failing(self) -> bool:
        """The last sync could not store the newest candles (not only older holes)."""
        return bool(self.last_sync_error) and not self.last_sync_error.startswith(HOLES_ERROR_PREFIX)

    @property
    def model_unloadable(self) -> bool:
        """The last forecast refresh failed because the active version's artifact is bad."""
        return self.forecast_problem.startswith(MODEL_UNLOADABLE_PREFIX)

    @property
    def forecast_problem_for_members(self) -> str:
        """`forecast_problem` as anyone may read it: a bad artifact's details stay in the admin."""
        return forecast_problem_for_members(self.forecast_problem)

    @property
    def holes_error(self) -> str:
        """Why the last sync could not fill older holes, when that is all that failed; else ""."""
        if self.last_sync_error.startswith(HOLES_ERROR_PREFIX):
            return self.last_sync_error.removeprefix(HOLES_ERROR_PREFIX)
        return ""

    @property
    def display_name(self) -> str:
        """The pair as the pages name it, "BTC/USDT" (the symbol when base or quote is missing)."""
        return f"{self.base}/{self.quote}" if self.base and self.quote else self.symbol

    def clean(self) -> None:
        self.symbol = self.symbol.strip().upper()
        self.base = self.base.strip().upper()
        self.quote = self.quote.strip().upper()
        for field in ("symbol", "base", "quote"):  # they go into URLs and file names
            value = getattr(self, field)
            if value and not value.isalnum():
                raise ValidationError({field: f"{field} may hold only letters and digits, like BTCUSDT"})
        if self.base and self.quote and self.symbol != self.base + self.quote:
            raise ValidationError({"symbol": f"symbol must be base + quote ({self.base}{self.quote})"})
        if self.horizon is not None and not 1 <= self.horizon <= 168:
            raise ValidationError({"horizon": "horizon must be between 1 and 168 hours"})
        # The training recipe is a pure library (no Django, no torch): check the overrides
        # here so a typo is refused in the admin, not discovered by the next hourly retrain.
        from forecasting.ml.config import TrainingConfig

        if self.hyperparameters is None:  # an emptied admin field: no overrides, as its hint says
            self.hyperparameters = {}
        if not isinstance(self.hyperparameters, dict):
            raise ValidationError({"hyperparameters": "hyperparameters must be a JSON object"})
        if "horizon" in self.hyperparameters:  # one place for it, the one the API reports
            raise ValidationError({"hyperparameters": "set the horizon in the Horizon field, not here"})
        try:
            TrainingConfig.from_overrides(self.hyperparameters)
        except ValueError as error:
            raise ValidationError({"hyperparameters": str(error)}) from error


class Candle(models.Model):
    """One closed hourly kline with the exchange's decimals: exact on PostgreSQL; the embedded
    SQLite keeps 15 significant digits (enough for prices, not always for quote volumes)."""

    asset = models.ForeignKey(Asset, on_delete=models.CASCADE, related_name="candles")
    open_time = models.DateTimeField()
    open = models.DecimalField(**PRICE)
    high = models.DecimalField(**PRICE)
    low = models.DecimalField(**PRICE)
    close = models.DecimalField(**PRICE)
    volume = models.DecimalField(**PRICE)
    close_time = models.DateTimeField()
    quote_volume = models.DecimalField(**PRICE)
    trades = models.BigIntegerField()
    taker_buy_base_volume = models.DecimalField(**PRICE)
    taker_buy_quote_volume = models.DecimalField(**PRICE)

    class Meta:
        ordering = ["asset", "open_time"]
        constraints = [
            models.UniqueConstraint(fields=["asset", "open_time"], name="candle_unique_asset_open_time"),
        ]
        indexes = [models.Index(fields=["asset", "-open_time"], name="candle_asset_recent")]

    def __str__(self) -> str:
        return f"{self.asset.symbol} {self.open_time:%Y-%m-%d %H:%M} {self.close}"


class ConfirmedOutage(models.Model):
    """Hours inside an asset's history that a source answered for with no candle.

    An exchange outage (Binance has hours without a kline): once a sync has
    asked for these hours and the source returned nothing for them, later
    syncs stop asking. Recorded per source, so a switch from the replay data
    to Binance asks Binance again. Deleting a row makes the next sync ask again.
    """

    asset = models.ForeignKey(Asset, on_delete=models.CASCADE, related_name="confirmed_outages")
    source = models.CharField(max_length=20)
    first_hour = models.DateTimeField()  # open time of the first missing hour
    last_hour = models.DateTimeField()  # open time of the last missing hour (inclusive)
    confirmed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["asset", "first_hour"]
        constraints = [
            models.UniqueConstraint(
                fields=["asset", "source", "first_hour"], name="confirmed_outage_unique_start"
            ),
            models.CheckConstraint(
                condition=models.Q(first_hour__lte=models.F("last_hour")), name="confirmed_outage_ordered"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.asset.symbol} {self.source} {self.first_hour:%Y-%m-%d %H:%M} to {self.last_hour:%Y-%m-%d %H:%M}"

    @property
    def hours(self) -> int:
        return (self.last_hour - self.first_hour) // timedelta(hours=1) + 1


# Every stored field of a candle, in the exchange's order (imports, syncs, API rows).
CANDLE_FIELDS = (
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_volume",
    "trades",
    "taker_buy_base_volume",
    "taker_buy_quote_volume",
)
