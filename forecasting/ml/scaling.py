"""Numpy-only transforms shared by training, evaluation and serving.

Inputs: the nine features scaled to (-1, 1) by a MinMax scaler: prices by their training rows'
range, calendar fields by their known range (versions trained before that have fitted calendar
ranges; the scaler stored with a version always decides).
Target: the relative change of the close from the window's last close, k hours ahead,
divided by its training standard deviation at step k (so every step weighs the same in the
MSE). Output: close = last_close * (1 + shrink_k * scale_k * network_k), where shrink_k in
[0, 1] is fitted on validation (0 = persistence when the network has no skill there), and
an interval last_close * (1 + change + vol * q) around it, with q split-conformal quantiles
of volatility-normalised validation residuals, widened to hold the point forecast, its bounds
clamped at 0 (prices are positive).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

FEATURE_RANGE = (-1.0, 1.0)


def minmax_fit(values: np.ndarray, fixed: Mapping[int, tuple[float, float]] | None = None) -> dict[str, Any]:
    """Scaler parameters (JSON-serialisable) from the training rows `values` (rows, features);
    the columns in `fixed` (index -> (min, max)) take those known ranges instead, and are
    listed under "fixed"."""
    if len(values) == 0:
        raise ValueError("cannot fit a scaler on zero rows")
    low, high = values.min(axis=0), values.max(axis=0)
    for column, (least, most) in (fixed or {}).items():
        low[column], high[column] = least, most
    return {
        "kind": "minmax",
        "feature_range": list(FEATURE_RANGE),
        "min": [float(v) for v in low],
        "max": [float(v) for v in high],
        "fixed": sorted(fixed or {}),
    }


def minmax_transform(values: np.ndarray, scaler: dict[str, Any]) -> np.ndarray:
    """float32 scaled features; a column constant in training maps to the range's low end."""
    low = np.asarray(scaler["min"], dtype="float64")
    span = np.asarray(scaler["max"], dtype="float64") - low
    span[span == 0] = 1.0
    lo, hi = scaler["feature_range"]
    return ((values - low) / span * (hi - lo) + lo).astype("float32")


def log_volatility(closes: np.ndarray, hours: int) -> np.ndarray:
    """Std of the last `hours` hourly log returns of each row of `closes` (n, >= hours + 1)."""
    tail = np.log(closes[:, -(hours + 1) :])
    return np.diff(tail, axis=1).std(axis=1)


def decode(
    network: np.ndarray, last_close: np.ndarray, volatility: np.ndarray, preprocessing: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(close, lower, upper), each (n, horizon) in price units, from the network's outputs.

    The interval is linear in the relative change, so a wide one (a coin priced in a few ticks
    moves by a third of its price in one) can reach 0 or below: bounds are clamped at 0, which
    no price falls below, so coverage cannot drop. Evaluation and serving both decode here."""
    target = preprocessing["target"]
    interval = preprocessing["interval"]
    change = network.astype("float64") * np.asarray(target["scale"]) * np.asarray(target["shrink"])
    close = last_close[:, None] * (1.0 + change)
    width = np.maximum(volatility, interval["volatility_floor"])[:, None]
    lower = last_close[:, None] * (1.0 + change + width * np.asarray(interval["lower"]))
    upper = last_close[:, None] * (1.0 + change + width * np.asarray(interval["upper"]))
    # Residual quantiles of one sign (a steady drift the shrunk change under-predicts on every
    # calibration window) put the whole band beside the point forecast; a band that does not
    # hold its own forecast reads as a contradiction, so it is widened to reach it (which can
    # only raise its coverage).
    lower, upper = np.minimum(lower, close), np.maximum(upper, close)
    return close, np.maximum(lower, 0.0), np.maximum(upper, 0.0)
