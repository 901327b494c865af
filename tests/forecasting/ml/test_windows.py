from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from django.conf import settings

from forecasting.ml.features import InsufficientDataError
from forecasting.ml.windows import (
    chronological_split,
    future_returns,
    hour_numbers,
    minimum_candles,
    sliding_view,
    window_bases,
)
from tests.forecasting.ml.helpers import synthetic_candles

GAPS = (40, 41, 42, 100, 260)


def _contiguous(hours: np.ndarray, first: int, last: int) -> bool:
    return bool(np.all(np.diff(hours[first : last + 1]) == 1))


def test_windows_never_span_a_gap_and_every_gap_free_window_is_kept():
    candles = synthetic_candles(400, skip=GAPS)
    hours = hour_numbers(candles["open_time"])
    window, horizon = 16, 4
    bases = window_bases(hours, window, horizon)
    expected = [
        base
        for base in range(window - 1, len(hours) - horizon)
        if _contiguous(hours, base - window + 1, base + horizon)
    ]
    assert bases.tolist() == expected
    assert len(bases) < len(hours) - window - horizon + 1  # the gaps did cost windows


def test_the_sliding_view_is_a_view_not_a_copy():
    values = np.arange(30, dtype="float32").reshape(10, 3)
    view = sliding_view(values, 4)
    assert view.shape == (7, 4, 3)
    assert np.shares_memory(view, values)
    np.testing.assert_array_equal(view[2], values[2:6])


def test_future_returns_are_relative_changes_from_the_base_close():
    close = np.array([100.0, 110.0, 99.0, 121.0])
    np.testing.assert_allclose(future_returns(close, np.array([0, 1]), 2), [[0.1, -0.01], [-0.1, 0.1]])


def test_the_split_is_chronological_purged_and_sized_as_asked():
    candles = synthetic_candles(1000, skip=GAPS)
    window, horizon = 16, 4
    bases = window_bases(hour_numbers(candles["open_time"]), window, horizon)
    split = chronological_split(bases, window, horizon, 0.1, 0.2)
    assert len(split.test) == round(len(bases) * 0.1)
    assert split.test.tolist() == bases[-len(split.test) :].tolist()
    # No window of a later split reads or predicts an hour that an earlier split predicts.
    assert split.train.max() + horizon < split.validation.min() - window + 1
    assert split.validation.max() + horizon < split.test.min() - window + 1
    # The scaler's rows end with the last training target.
    assert split.training_rows_end(horizon) == split.train.max() + horizon + 1
    assert split.training_rows_end(horizon) <= split.validation.min() - window + 1
    pre_test = bases[bases + horizon < split.test.min() - window + 1]
    assert len(split.validation) == round(len(pre_test) * 0.2)


def test_it_refuses_too_little_gap_free_data_with_a_clear_message():
    candles = synthetic_candles(80)
    bases = window_bases(hour_numbers(candles["open_time"]), 16, 4)
    with pytest.raises(
        InsufficientDataError, match=r"too little gap-free data: .* consecutive hourly candles"
    ):
        chronological_split(bases, 16, 4, 0.1, 0.2)
    enough = minimum_candles(16, 4, 0.1, 0.2)
    bases = window_bases(hour_numbers(synthetic_candles(enough)["open_time"]), 16, 4)
    assert len(chronological_split(bases, 16, 4, 0.1, 0.2).train) >= 20
    chopped = synthetic_candles(600, skip=range(10, 600, 15))  # plenty of rows, no 20-hour stretch
    bases = window_bases(hour_numbers(chopped["open_time"]), 16, 4)
    assert len(bases) == 0
    with pytest.raises(InsufficientDataError):
        chronological_split(bases, 16, 4, 0.1, 0.2)


def test_the_calibration_part_must_hold_seven_windows_per_horizon_hour_to_calibrate_intervals():
    # Horizon 8: 56 calibration windows (10 once were enough), and 16 gate windows.
    enough = minimum_candles(16, 8, 0.1, 0.2)
    bases = window_bases(hour_numbers(synthetic_candles(enough)["open_time"]), 16, 8)
    split = chronological_split(bases, 16, 8, 0.1, 0.2)
    assert len(split.calibration) >= 56 and len(split.gate) >= 16
    bases = window_bases(hour_numbers(synthetic_candles(enough - 50)["open_time"]), 16, 8)
    with pytest.raises(
        InsufficientDataError,
        match=r"calibration \+ \d+ gate validation .* at least 20 / 56 \+ 16 / 5 are needed",
    ):
        chronological_split(bases, 16, 8, 0.1, 0.2)


def test_the_gate_part_is_the_newest_validation_windows_and_no_calibration_target_is_a_gate_target():
    candles = synthetic_candles(1000, skip=GAPS)
    window, horizon = 16, 4
    bases = window_bases(hour_numbers(candles["open_time"]), window, horizon)
    split = chronological_split(bases, window, horizon, 0.1, 0.2, 0.3)
    validation = split.validation.tolist()
    assert len(split.gate) == round(len(validation) * 0.3)
    assert split.gate.tolist() == validation[-len(split.gate) :]
    assert split.calibration.tolist() == validation[: len(split.calibration)]
    # The last calibration window predicts up to the first gate window's last input hour at most;
    # the windows between them (whose targets would be gate targets) are dropped.
    assert split.calibration.max() + horizon <= split.gate.min()
    assert len(validation) - len(split.calibration) - len(split.gate) == horizon - 1
    # Another fraction moves the boundary, not the validation windows.
    other = chronological_split(bases, window, horizon, 0.1, 0.2, 0.5)
    assert other.validation.tolist() == validation and len(other.gate) == round(len(validation) * 0.5)


def test_no_window_of_the_bundled_year_spans_one_of_its_four_outages():
    raw = pd.read_csv(settings.BUNDLED_DATA_FILE, usecols=["timestamp"])
    times = pd.Series(pd.to_datetime(raw["timestamp"], utc=True))
    hours = hour_numbers(times)
    gap_after = np.flatnonzero(np.diff(hours) != 1)  # row before each outage
    assert len(gap_after) == 4
    bases = window_bases(hours, 120, 24)
    for row in gap_after:
        # a window spans the outage when its rows (base-119 .. base+24) include row and row + 1
        assert not np.any((bases - 119 <= row) & (bases + 24 >= row + 1))
    assert np.all(hours[bases + 24] - hours[bases - 119] == 143)
