"""The report's nine features, computed column-wise (no per-row Python)."""

from __future__ import annotations

import numpy as np
import pandas as pd

FEATURES: tuple[str, ...] = (
    "day_of_week",
    "day_of_month",
    "week_of_year",
    "month_of_year",
    "open",
    "high",
    "low",
    "close",
    "close_change",
)
# The calendar features' known ranges (ISO weeks run to 53). They are scaled by these rather
# than by the training rows, which cover less than a year: fitted, most later dates fell
# outside the scaled range (86-100 % of BTCUSDT's validation and test rows).
CALENDAR_RANGES: dict[str, tuple[float, float]] = {
    "day_of_week": (0.0, 6.0),
    "day_of_month": (1.0, 31.0),
    "week_of_year": (1.0, 53.0),
    "month_of_year": (1.0, 12.0),
}
# The same by column of compute_features' array.
CALENDAR_COLUMNS: dict[int, tuple[float, float]] = {
    FEATURES.index(name): span for name, span in CALENDAR_RANGES.items()
}
PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
HOUR = pd.Timedelta(hours=1)


class InsufficientDataError(ValueError):
    """Too few (gap-free) candles for what was asked; the message says how many are needed."""


def check_candles(candles: pd.DataFrame) -> None:
    """Raise ValueError unless `candles` is the documented frame: tz-aware hourly open times,
    strictly increasing, finite positive prices."""
    missing = [c for c in ("open_time", *PRICE_COLUMNS) if c not in candles.columns]
    if missing:
        raise ValueError(f"candles lack the column(s) {', '.join(missing)}")
    times = candles["open_time"]
    if not isinstance(times.dtype, pd.DatetimeTZDtype):
        raise ValueError("candles.open_time must be a tz-aware (UTC) datetime column")
    if len(candles) == 0:
        return
    steps = times.diff().iloc[1:]
    if (steps <= pd.Timedelta(0)).any():
        raise ValueError("candles must be sorted by open_time without duplicates")
    if ((steps % HOUR) != pd.Timedelta(0)).any() or (times.dt.minute != 0).any():
        raise ValueError("candles must be hourly, opening on the hour")
    prices = candles[list(PRICE_COLUMNS)].to_numpy(dtype="float64")
    if not np.isfinite(prices).all() or (prices <= 0).any():
        raise ValueError("candle prices must be finite and positive")


def compute_features(candles: pd.DataFrame) -> np.ndarray:
    """Float64 array (rows, 9) in FEATURES order, calendar fields taken in UTC."""
    times = candles["open_time"].dt.tz_convert("UTC")
    opens = candles["open"].to_numpy(dtype="float64")
    closes = candles["close"].to_numpy(dtype="float64")
    columns = [
        times.dt.day_of_week.to_numpy(dtype="float64"),
        times.dt.day.to_numpy(dtype="float64"),
        times.dt.isocalendar().week.to_numpy(dtype="float64"),
        times.dt.month.to_numpy(dtype="float64"),
        opens,
        candles["high"].to_numpy(dtype="float64"),
        candles["low"].to_numpy(dtype="float64"),
        closes,
        closes - opens,
    ]
    return np.column_stack(columns)
