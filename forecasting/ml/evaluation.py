"""Metrics per horizon step, persistence baseline, calibration (shrinkage, conformal), and
the gate's evaluation of an existing artifact. numpy/pandas/onnxruntime only."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from forecasting.ml.features import InsufficientDataError, check_candles, compute_features
from forecasting.ml.inference import load_session, run_session
from forecasting.ml.scaling import decode, log_volatility, minmax_transform
from forecasting.ml.windows import hour_numbers, sliding_view, window_bases

METRIC_KEYS = (
    "rmse",
    "mae",
    "mape",
    "persistence_rmse",
    "persistence_mae",
    "direction_accuracy",
    "coverage_80",
    "skill_rmse",
)


def _floats(values: np.ndarray) -> list[float | None]:
    # JSON (and PostgreSQL jsonb) has no NaN or Infinity: a metric that is not finite is null.
    return [float(v) if math.isfinite(v) else None for v in np.asarray(values, dtype="float64")]


def forecast_metrics(
    actual: np.ndarray,
    close: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    last_close: np.ndarray,
) -> dict[str, Any]:
    """The `train --json` metrics, per step, of forecasts (n, horizon) against `actual`.

    mape is in percent. skill_rmse = 1 - rmse / persistence_rmse; where persistence_rmse is 0
    it is 0 if rmse is 0 too, else null.

    Direction accuracy is that of the served forecast `close`: the share of windows where the
    sign of close - last_close is the sign of actual - last_close, over the windows where both
    are non-zero. A forecast equal to the last close calls no direction, and an unchanged price
    has none to call; a step without any such window is null, in particular every step whose
    shrink factor is 0 (the served forecast is then the last close).
    """
    error = close - actual
    naive = last_close[:, None] - actual
    realised = actual - last_close[:, None]
    predicted = close - last_close[:, None]
    rmse = np.sqrt(np.mean(error**2, axis=0))
    persistence_rmse = np.sqrt(np.mean(naive**2, axis=0))
    with np.errstate(divide="ignore", invalid="ignore"):
        # Where persistence is exact, a model that errs is worse by no finite ratio: null.
        exact = np.where(rmse == 0, 0.0, np.nan)
        skill = np.where(persistence_rmse > 0, 1.0 - rmse / persistence_rmse, exact)
    return {
        "horizon": int(actual.shape[1]),
        "rmse": _floats(rmse),
        "mae": _floats(np.mean(np.abs(error), axis=0)),
        "mape": _floats(np.mean(np.abs(error) / np.abs(actual), axis=0) * 100.0),
        "persistence_rmse": _floats(persistence_rmse),
        "persistence_mae": _floats(np.mean(np.abs(naive), axis=0)),
        "direction_accuracy": _floats(_direction_accuracy(predicted, realised)),
        "coverage_80": _floats(np.mean((actual >= lower) & (actual <= upper), axis=0)),
        "skill_rmse": _floats(skill),
    }


def _direction_accuracy(predicted: np.ndarray, realised: np.ndarray) -> np.ndarray:
    called = (predicted != 0) & (realised != 0)
    hits = np.sum((np.sign(predicted) == np.sign(realised)) & called, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return hits / np.sum(called, axis=0)  # 0 / 0 = nan: null


def fit_shrinkage(
    predicted_change: np.ndarray, actual_change: np.ndarray, *, z: float = 0.0, block: int = 1
) -> np.ndarray:
    """Per step, the factor in [0, 1] applied to the predicted change: the least-squares factor
    (through the origin) lowered by `z` standard errors, so a step whose validation benefit is
    not significant gets 0 (persistence).

    The standard error is cluster-robust, one cluster per `block` consecutive windows, and `z`
    (a normal quantile) becomes the Student t quantile of the same level with clusters - 1
    degrees of freedom. Neighbouring windows' h-step errors share h - 1 target hours and their
    predictions are smooth, so `block` must be well beyond the horizon: callers pass at least
    2 x horizon (see `shrinkage_block`). Fewer than 3 clusters: no estimate, factor 0.
    """
    den = np.sum(predicted_change**2, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(den > 0, np.sum(predicted_change * actual_change, axis=0) / den, 0.0)
        factor = np.nan_to_num(factor)
        if z > 0 and len(predicted_change):
            # Cluster-robust (sandwich) standard error of the factor, one cluster per block,
            # with the usual G / (G - 1) small-sample factor.
            scores = predicted_change * (actual_change - factor * predicted_change)
            edges = np.arange(0, len(scores), max(block, 1))
            clusters = len(edges)
            if clusters < 3:
                return np.zeros(predicted_change.shape[1])
            sums = np.add.reduceat(scores, edges, axis=0)
            spread = np.sqrt(np.sum(sums**2, axis=0) * clusters / (clusters - 1))
            critical = t_quantile(z, clusters - 1)
            factor = factor - critical * np.nan_to_num(np.where(den > 0, spread / den, 0.0))
    return np.clip(factor, 0.0, 1.0)


def shrinkage_block(horizon: int) -> int:
    """Windows per cluster of fit_shrinkage's standard error for `horizon` steps.

    The h-step errors of windows up to h - 1 apart overlap, so clusters of one horizon
    (the rule before) leave much of that correlation between clusters, where the sandwich
    does not see it: on pure noise (a random walk, predictions independent of it, H = 24,
    200-960 windows, 1,000 series each) 8-12 % of the factors passed a one-sided 5 % test.
    With clusters of 2 x horizon and t critical values 6-9 % did (the rest is the small
    number of independent errors; tests/forecasting/ml/test_evaluation.py checks it);
    longer clusters (3 x) gained little and leave too few clusters at the minimum history
    (7 windows per horizon hour). 24 at least, as before, for short horizons (a day's cycle).
    """
    return max(24, 2 * horizon)


def t_quantile(z: float, df: int) -> float:
    """The Student t quantile (df degrees of freedom) at the level of the normal quantile `z`.

    Exact for df <= EXACT_T_DF (bisection on the closed-form CDF of an integer df), where a
    few clusters make it matter most: a series expansion was 2.912 for 2.921 at z = 1.645 and
    df = 2, and 74.8 for 125.6 at z = 4. Above, Hill's (1970) Cornish-Fisher expansion, which
    is within 1e-3 there. Pure Python, no scipy."""
    if z <= 0:
        return -t_quantile(-z, df) if z < 0 else 0.0
    if df <= EXACT_T_DF:
        target = math.erf(z / math.sqrt(2))  # P(|T| <= t) at the quantile
        low, high = 0.0, max(z, 1.0)
        while _t_central(high, df) < target:
            high *= 2
        for _ in range(100):
            middle = (low + high) / 2
            low, high = (middle, high) if _t_central(middle, df) < target else (low, middle)
            if high - low < 1e-10 * high:
                break
        return (low + high) / 2
    z2 = z * z
    terms = (
        (z2 + 1) * z / 4,
        ((5 * z2 + 16) * z2 + 3) * z / 96,
        (((3 * z2 + 19) * z2 + 17) * z2 - 15) * z / 384,
        ((((79 * z2 + 776) * z2 + 1482) * z2 - 1920) * z2 - 945) * z / 92160,
    )
    return z + sum(term / df ** (power + 1) for power, term in enumerate(terms))


EXACT_T_DF = 100


def _t_central(t: float, df: int) -> float:
    """P(|T| <= t) for Student's t with an integer df (Abramowitz & Stegun 26.7.3-4)."""
    theta = math.atan(t / math.sqrt(df))
    sine, cos2 = math.sin(theta), math.cos(theta) ** 2
    if df % 2:
        if df == 1:
            return 2 * theta / math.pi
        term = total = math.cos(theta)  # cos + 2/3 cos^3 + 2*4/(3*5) cos^5 ... up to cos^(df-2)
        for k in range(3, df - 1, 2):
            term *= (k - 1) / k * cos2
            total += term
        return 2 / math.pi * (theta + sine * total)
    term = total = 1.0  # 1 + 1/2 cos^2 + 1*3/(2*4) cos^4 ... up to cos^(df-2)
    for k in range(2, df - 1, 2):
        term *= (k - 1) / k * cos2
        total += term
    return sine * total


def conformal_bounds(residuals: np.ndarray, coverage: float) -> tuple[np.ndarray, np.ndarray]:
    """Split-conformal lower/upper quantiles per step of calibration residuals (n, horizon),
    with the finite-sample correction, for a central interval of `coverage`."""
    n = len(residuals)
    if n == 0:
        raise ValueError("conformal calibration needs at least one residual")
    tail = (1.0 - coverage) / 2.0
    # The k-th smallest residual (1-based) with k = ceil((n + 1)(1 - tail)), and the j-th with
    # j = floor((n + 1) tail), each kept within the sample.
    high = min(n, math.ceil((n + 1) * (1.0 - tail)))
    low = max(1, math.floor((n + 1) * tail))
    ordered = np.sort(residuals, axis=0)
    return ordered[low - 1], ordered[high - 1]


def window_inputs(
    scaled: np.ndarray, close: np.ndarray, bases: np.ndarray, window: int, volatility_hours: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(windows, last closes, realised volatility) for the windows ending at `bases`."""
    windows = sliding_view(scaled, window)[bases - window + 1]
    closes = np.lib.stride_tricks.sliding_window_view(close, volatility_hours + 1)[bases - volatility_hours]
    return windows, close[bases], log_volatility(closes, volatility_hours)


def served_windows(
    run: Callable[[np.ndarray], np.ndarray],
    preprocessing: dict[str, Any],
    scaled: np.ndarray,
    close: np.ndarray,
    bases: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(actual, point, lower, upper, last close) of the served transform (network via `run`,
    then decode) on `bases`, (n, horizon) each but the last closes (n,)."""
    window, horizon = int(preprocessing["window"]), int(preprocessing["horizon"])
    hours = int(preprocessing["interval"]["volatility_hours"])
    windows, last_close, volatility = window_inputs(scaled, close, bases, window, hours)
    point, lower, upper = decode(run(windows), last_close, volatility, preprocessing)
    actual = close[bases[:, None] + np.arange(1, horizon + 1)]
    return actual, point, lower, upper, last_close


def evaluate_windows(*args: Any) -> dict[str, Any]:
    """Metrics of the served transform (served_windows' arguments), with the window count."""
    return served_metrics(served_windows(*args))


def served_metrics(served: tuple[np.ndarray, ...]) -> dict[str, Any]:
    """forecast_metrics of served_windows' answer, with the number of windows as `windows`."""
    metrics = forecast_metrics(*served)
    metrics["windows"] = len(served[0])
    return metrics


def onnx_windows(
    onnx_bytes: bytes,
    preprocessing: dict[str, Any],
    candles: pd.DataFrame,
    start: datetime,
    end: datetime | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """served_windows of an existing artifact on every gap-free window whose base time is in
    [start, end] (no end: to the last full window)."""
    check_candles(candles)
    window, horizon = int(preprocessing["window"]), int(preprocessing["horizon"])
    hours = hour_numbers(candles["open_time"])
    first, last = _utc(start), _utc(end) if end is not None else None
    bases = window_bases(hours, window, horizon)
    times = candles["open_time"].iloc[bases]
    chosen = (times >= first) & (times <= last) if last is not None else times >= first
    bases = bases[chosen.to_numpy()]
    if len(bases) == 0:
        until = f" to {last:%Y-%m-%d %H:%M}Z" if last is not None else ""
        raise InsufficientDataError(
            f"no gap-free window of {window} + {horizon} hours has its base from {first:%Y-%m-%d %H:%M}Z{until}"
        )
    scaled = minmax_transform(compute_features(candles), preprocessing["scaler"])
    close = candles["close"].to_numpy(dtype="float64")
    session = load_session(onnx_bytes)
    return served_windows(lambda x: run_session(session, x), preprocessing, scaled, close, bases)


def evaluate_onnx(
    onnx_bytes: bytes,
    preprocessing: dict[str, Any],
    candles: pd.DataFrame,
    start: datetime,
    end: datetime | None = None,
) -> dict[str, Any]:
    """Metrics of an existing artifact on every gap-free window whose base time is in
    [start, end] (no end: to the last full window), with their count as `windows`: the
    promotion gate scores the active model and a candidate on the same validation windows."""
    return served_metrics(onnx_windows(onnx_bytes, preprocessing, candles, start, end))


def fitted_through(preprocessing: dict[str, Any], metrics: dict[str, Any]) -> pd.Timestamp | None:
    """The last target hour any fitted step of a stored version read (training, early stopping,
    shrinkage, intervals): a window whose base is at or after it has only targets the version
    never fitted on. None when the version records neither its gate part nor its test start.

    Its calibration targets end at its first gate window's base (windows.validation_parts);
    a version from before the gate part calibrated on all its validation windows, whose
    targets end `window` hours before its first test window's base (the purge before test).
    """
    gate_range = (preprocessing.get("training") or {}).get("gate_range")
    if gate_range:
        return _utc(pd.Timestamp(gate_range[0]))
    if metrics.get("test_start") and preprocessing.get("window"):
        return _utc(pd.Timestamp(metrics["test_start"])) - pd.Timedelta(hours=int(preprocessing["window"]))
    return None


def _utc(moment: datetime) -> pd.Timestamp:
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
