"""Serving: an ONNX artifact + its preprocessing -> a forecast. onnxruntime, numpy, pandas only
(this module must never import torch: web processes load it).

Gap policy for the last window: up to `preprocessing["gaps"]["max_filled_hours"]` missing
hours (3 by default) are filled with flat candles at the previous close (open = high = low =
close, as an hour without trades would print) and reported as `filled_hours`; more missing
hours, or fewer than `window` hours of history, raise InsufficientDataError. Training never
fills: its windows simply never span a gap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import onnxruntime
import pandas as pd

from forecasting.ml.features import HOUR, InsufficientDataError, check_candles, compute_features
from forecasting.ml.scaling import decode, log_volatility, minmax_transform

__all__ = ["ForecastResult", "InsufficientDataError", "forecast", "load_session", "run_session"]

RUN_BATCH = 1024


def load_session(onnx_bytes: bytes, threads: int = 1) -> onnxruntime.InferenceSession:
    """A CPU session with a small thread pool (many sessions share a web process's cores)."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])


def run_session(session: onnxruntime.InferenceSession, windows: np.ndarray) -> np.ndarray:
    """Network outputs (n, horizon) for scaled windows (n, window, features), batched."""
    input_name = session.get_inputs()[0].name
    output_name = session.get_outputs()[0].name
    outputs = []
    for i in range(0, len(windows), RUN_BATCH):
        batch = np.ascontiguousarray(windows[i : i + RUN_BATCH], dtype="float32")
        outputs.append(session.run([output_name], {input_name: batch})[0])
    return np.concatenate(outputs)


@dataclass
class ForecastResult:
    """A forecast from the last candle; every price in quote-currency units."""

    base_time: datetime  # open time (UTC) of the last candle the model saw
    last_close: float
    horizon: int
    # [{"time": open time (UTC) of the forecast hour, "close", "lower", "upper"}], index 0 = next hour
    points: list[dict[str, Any]]
    filled_hours: int = 0  # missing hours inside the window that were forward-filled
    filled_times: list[datetime] = field(default_factory=list)


def last_window(candles: pd.DataFrame, window: int, max_filled_hours: int) -> tuple[pd.DataFrame, list]:
    """The `window` hourly candles ending at the last one, short gaps filled (see module doc)."""
    check_candles(candles)
    if len(candles) == 0:
        raise InsufficientDataError(f"no candles: a forecast needs the last {window} hours")
    times = candles["open_time"].dt.tz_convert("UTC")
    last = times.iloc[-1]
    grid = pd.date_range(end=last, periods=window, freq=HOUR)
    frame = candles.assign(open_time=times).set_index("open_time")
    inside = frame.reindex(grid)
    missing = inside["close"].isna().to_numpy()
    if missing.sum() > max_filled_hours:
        raise InsufficientDataError(
            f"the {window} hours up to {last:%Y-%m-%d %H:%M}Z miss {int(missing.sum())} candles; "
            f"at most {max_filled_hours} missing hours are forward-filled"
        )
    if missing[0]:
        earlier = frame.loc[frame.index < grid[0], "close"]
        if earlier.empty:
            raise InsufficientDataError(
                f"a forecast needs {window} hours of candles up to {last:%Y-%m-%d %H:%M}Z; "
                f"only {int((~missing).sum())} are stored"
            )
        inside.iloc[0, inside.columns.get_loc("close")] = earlier.iloc[-1]
    close = inside["close"].ffill()
    for column in ("open", "high", "low"):
        inside[column] = inside[column].where(~missing, close)
    inside["close"] = close
    filled = [stamp.to_pydatetime() for stamp in grid[missing]]
    return inside.rename_axis("open_time").reset_index(), filled


def forecast(
    session: onnxruntime.InferenceSession, preprocessing: dict[str, Any], candles: pd.DataFrame
) -> ForecastResult:
    """The next `horizon` closes with their intervals, from the last `window` candles."""
    window, horizon = int(preprocessing["window"]), int(preprocessing["horizon"])
    rows, filled = last_window(candles, window, int(preprocessing["gaps"]["max_filled_hours"]))
    features = minmax_transform(compute_features(rows), preprocessing["scaler"])
    closes = rows["close"].to_numpy(dtype="float64")
    network = run_session(session, features[None])
    if network.shape != (1, horizon):
        raise ValueError(f"the artifact outputs shape {network.shape}, its preprocessing says (1, {horizon})")
    volatility = log_volatility(closes[None], int(preprocessing["interval"]["volatility_hours"]))
    close, lower, upper = decode(network, closes[-1:], volatility, preprocessing)
    base_time = rows["open_time"].iloc[-1]
    points = [
        {
            "time": (base_time + (k + 1) * HOUR).to_pydatetime(),
            "close": float(close[0, k]),
            "lower": float(lower[0, k]),
            "upper": float(upper[0, k]),
        }
        for k in range(horizon)
    ]
    return ForecastResult(
        base_time=base_time.to_pydatetime(),
        last_close=float(closes[-1]),
        horizon=horizon,
        points=points,
        filled_hours=len(filled),
        filled_times=filled,
    )
