from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecasting.ml.features import FEATURES, check_candles, compute_features
from tests.forecasting.ml.helpers import synthetic_candles


def test_it_computes_the_reports_nine_features_like_a_per_row_loop():
    candles = synthetic_candles(60, start=pd.Timestamp("2021-12-31 20:00", tz="UTC"))
    features = compute_features(candles)
    assert features.shape == (60, 9)
    assert FEATURES[-1] == "close_change"
    for i, row in candles.iterrows():
        stamp = row["open_time"]
        expected = [
            stamp.day_of_week,
            stamp.day,
            stamp.isocalendar()[1],
            stamp.month,
            row["open"],
            row["high"],
            row["low"],
            row["close"],
            row["close"] - row["open"],
        ]
        np.testing.assert_allclose(features[i], expected)


def test_it_takes_calendar_fields_in_utc_whatever_the_timezone():
    candles = synthetic_candles(3, start=pd.Timestamp("2024-03-31 23:00", tz="UTC"))
    paris = candles.assign(open_time=candles["open_time"].dt.tz_convert("Europe/Paris"))
    np.testing.assert_array_equal(compute_features(paris), compute_features(candles))
    assert compute_features(candles)[0, 3] == 3  # March in UTC, April in Paris


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda c: c.drop(columns=["close"]), "lack the column"),
        (lambda c: c.assign(open_time=c["open_time"].dt.tz_localize(None)), "tz-aware"),
        (lambda c: c.iloc[::-1].reset_index(drop=True), "sorted"),
        (lambda c: pd.concat([c, c.tail(1)]).reset_index(drop=True), "sorted"),
        (lambda c: c.assign(open_time=c["open_time"] + pd.Timedelta(minutes=30)), "hourly"),
        (lambda c: c.assign(close=c["close"].where(c.index != 3, np.nan)), "finite"),
        (lambda c: c.assign(low=c["low"].where(c.index != 3, -1.0)), "positive"),
    ],
)
def test_it_rejects_malformed_candles(mutate, message):
    with pytest.raises(ValueError, match=message):
        check_candles(mutate(synthetic_candles(10)))
