from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecasting.ml.features import InsufficientDataError, compute_features
from forecasting.ml.inference import forecast, load_session, run_session
from forecasting.ml.scaling import decode, log_volatility, minmax_transform
from tests.forecasting.ml.helpers import synthetic_candles

ROOT = Path(__file__).resolve().parents[3]


def test_serving_imports_never_load_torch():
    code = (
        "import sys\n"
        "import forecasting.ml, forecasting.ml.inference, forecasting.ml.evaluation\n"
        "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def _expected(result, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The forecast assembled by hand from the public pieces."""
    pre = result.preprocessing
    x = minmax_transform(compute_features(rows), pre["scaler"])[None]
    network = run_session(load_session(result.onnx_bytes), x)
    closes = rows["close"].to_numpy()[None]
    volatility = log_volatility(closes, pre["interval"]["volatility_hours"])
    return decode(network, closes[:, -1], volatility, pre)


def test_it_forecasts_the_next_hours_with_intervals_in_price_units(trained, candles):
    result, _ = trained
    out = forecast(load_session(result.onnx_bytes), result.preprocessing, candles)
    last = candles.iloc[-1]
    assert out.base_time == last["open_time"].to_pydatetime()
    assert out.last_close == last["close"]
    assert out.horizon == len(out.points) == 4
    assert out.filled_hours == 0 and out.filled_times == []
    assert [p["time"] for p in out.points] == [
        (last["open_time"] + pd.Timedelta(hours=k)).to_pydatetime() for k in range(1, 5)
    ]
    close, lower, upper = _expected(result, candles.tail(16).reset_index(drop=True))
    np.testing.assert_allclose([p["close"] for p in out.points], close[0])
    np.testing.assert_allclose([p["lower"] for p in out.points], lower[0])
    np.testing.assert_allclose([p["upper"] for p in out.points], upper[0])
    assert all(p["lower"] < p["close"] < p["upper"] for p in out.points)


def test_it_forward_fills_a_few_missing_hours_and_reports_them(trained):
    result, _ = trained
    full = synthetic_candles(100, seed=5)
    holes = [90, 91, 95]
    out = forecast(load_session(result.onnx_bytes), result.preprocessing, full.drop(index=holes))
    assert out.filled_hours == 3
    assert out.filled_times == [full["open_time"][i].to_pydatetime() for i in holes]
    flat = full.copy()
    for i in holes:  # a missing hour is a flat candle at the previous close
        flat.loc[i, ["open", "high", "low", "close"]] = flat.loc[i - 1, "close"]
    close, _, _ = _expected(result, flat.tail(16).reset_index(drop=True))
    np.testing.assert_allclose([p["close"] for p in out.points], close[0])


def test_a_missing_first_hour_is_filled_from_the_candle_before_the_window(trained):
    result, _ = trained
    full = synthetic_candles(100, seed=5)
    out = forecast(load_session(result.onnx_bytes), result.preprocessing, full.drop(index=[84]))
    assert out.filled_times == [full["open_time"][84].to_pydatetime()]


def test_it_refuses_a_window_with_a_long_outage(trained):
    result, _ = trained
    full = synthetic_candles(100, seed=5)
    session = load_session(result.onnx_bytes)
    with pytest.raises(InsufficientDataError, match="miss 4 candles; at most 3 missing hours"):
        forecast(session, result.preprocessing, full.drop(index=[90, 91, 92, 93]))


def test_it_refuses_too_short_a_history(trained):
    result, _ = trained
    session = load_session(result.onnx_bytes)
    with pytest.raises(InsufficientDataError, match="needs 16 hours of candles"):
        forecast(session, result.preprocessing, synthetic_candles(15))
    with pytest.raises(InsufficientDataError, match="no candles"):
        forecast(session, result.preprocessing, synthetic_candles(15).iloc[:0])


def test_a_one_hour_model_forecasts_one_point(trained_one_hour, candles):
    out = forecast(load_session(trained_one_hour.onnx_bytes), trained_one_hour.preprocessing, candles)
    assert len(out.points) == 1
    assert out.points[0]["time"] == (candles["open_time"].iloc[-1] + pd.Timedelta(hours=1)).to_pydatetime()
