"""Gap-aware sliding windows and the chronological, purged train/validation/test split.

A window is named by its *base*: the row of the last input hour. It reads the rows
base - window + 1 .. base and predicts the closes of rows base + 1 .. base + horizon; all of
those rows must be consecutive hours, so no window spans a gap in the candles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecasting.ml.features import InsufficientDataError

EPOCH = pd.Timestamp("1970-01-01", tz="UTC")

# Below these counts the loss, the conformal quantiles or the test metrics mean nothing.
MIN_TRAIN_WINDOWS = 20
MIN_VALIDATION_WINDOWS = 10
MIN_TEST_WINDOWS = 5
# The 80 % intervals are calibrated on the validation windows' calibration part, whose
# h-hours-ahead residuals overlap by h - 1 hours: the last step has only about n / horizon
# independent ones. On sub-series of the bundled year before its test period (H = 24, four
# per length; bench/explore_min_history.py), test coverage missed 0.80 by 0.04-0.31 (mean
# 0.14) on average over the steps with 1.9-6.0 validation windows per horizon hour (560-1,100
# candles), and by 0.03-0.11 (mean 0.06) with 7.7-14.2 (1,500-2,200 candles). (Then every
# validation window calibrated; the rule now holds for the calibration part alone.)
VALIDATION_WINDOWS_PER_HORIZON_HOUR = 7
# The newest share of the validation windows is held out for the promotion gate and the
# reported validation figures; the older rest (less horizon - 1 purged windows) is what
# early stopping, the shrinkage and the intervals are fitted on. The calibration part fits
# 3 numbers per step (a factor and two bounds) and needs 7 windows per horizon hour; the gate
# estimates one (the mean skill) from the same overlapping errors: it gets the smaller part,
# about 426 of the bundled year's 1,421 validation windows (17 independent 24-hour errors
# per step), and the calibration part keeps 972 (40 per horizon hour).
GATE_FRACTION = 0.3


def min_validation_windows(horizon: int) -> int:
    """Calibration windows needed to calibrate `horizon` steps of intervals."""
    return max(MIN_VALIDATION_WINDOWS, VALIDATION_WINDOWS_PER_HORIZON_HOUR * horizon)


def min_gate_windows(horizon: int) -> int:
    """Gate windows needed to score `horizon` steps: two non-overlapping errors at the last step."""
    return max(MIN_VALIDATION_WINDOWS, 2 * horizon)


def hour_numbers(open_time: pd.Series) -> np.ndarray:
    """Hours since the Unix epoch (int64), whatever the datetime resolution."""
    return ((open_time.dt.tz_convert("UTC") - EPOCH) // pd.Timedelta(hours=1)).to_numpy(dtype="int64")


def run_starts(hours: np.ndarray) -> np.ndarray:
    """For each row, the row where its run of consecutive hours begins."""
    index = np.arange(len(hours))
    is_start = np.ones(len(hours), dtype=bool)
    is_start[1:] = np.diff(hours) != 1
    return np.maximum.accumulate(np.where(is_start, index, 0)) if len(hours) else index


def window_bases(hours: np.ndarray, window: int, horizon: int) -> np.ndarray:
    """Base rows of every window whose window + horizon rows are consecutive hours."""
    starts = run_starts(hours)
    bases = np.arange(window - 1, len(hours) - horizon)
    return bases[starts[bases + horizon] <= bases - window + 1]


def sliding_view(values: np.ndarray, window: int) -> np.ndarray:
    """Read-only view (rows - window + 1, window, features): view[base - window + 1] is the
    window ending at `base`. No copy is made; gather batches with `view[starts]`."""
    view = np.lib.stride_tricks.sliding_window_view(values, window, axis=0)
    return view.transpose(0, 2, 1)


def future_returns(close: np.ndarray, bases: np.ndarray, horizon: int) -> np.ndarray:
    """(len(bases), horizon): close[base + k] / close[base] - 1 for k = 1..horizon."""
    steps = np.arange(1, horizon + 1)
    return close[bases[:, None] + steps] / close[bases, None] - 1.0


@dataclass(frozen=True)
class Split:
    """Base rows of each split, each chronological; no window of train, validation or test
    holds an input or target hour that is a target hour of an earlier one (the purge between
    them).

    `validation` is every validation window; it is two parts, `calibration` (the older) then
    `gate` (the newest), with the horizon - 1 windows between them dropped, so that no
    calibration window reads an hour that a gate window predicts. Fitting (early stopping, shrinkage,
    intervals) reads only `calibration`; the gate and the reported validation metrics read
    only `gate`, so they are held out as the test split is.
    """

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    calibration: np.ndarray
    gate: np.ndarray

    def training_rows_end(self, horizon: int) -> int:
        """One past the last row any training window touches: the scaler's rows end here."""
        return int(self.train[-1]) + horizon + 1


def validation_parts(
    validation: np.ndarray, horizon: int, gate_fraction: float
) -> tuple[np.ndarray, np.ndarray]:
    """(calibration, gate): the gate is the newest `gate_fraction` of the validation windows;
    calibration windows whose targets reach the first gate window's targets are dropped.

    Gate windows do read calibration hours as inputs, as every served forecast reads hours the
    model was fitted on; what keeps a score out of sample is that no fitted step saw its
    targets, so a purge of horizon - 1 windows is enough here (the train/validation/test
    purges are `window + horizon - 1`, since later inputs must not hold an earlier target).
    """
    n_gate = int(round(len(validation) * gate_fraction))
    gate = validation[len(validation) - n_gate :] if n_gate else validation[:0]
    calibration = validation[: len(validation) - n_gate]
    if n_gate:
        calibration = calibration[calibration + horizon <= gate[0]]
    return calibration, gate


def chronological_split(
    bases: np.ndarray,
    window: int,
    horizon: int,
    test_fraction: float,
    validation_fraction: float,
    gate_fraction: float = GATE_FRACTION,
) -> Split:
    """Test = the last `test_fraction` of the windows; validation = the last
    `validation_fraction` of the windows before it, split into calibration and gate parts
    (validation_parts); train = the rest. Windows whose targets would reach into the next
    split's first input hour are dropped (purged)."""
    n_test = int(round(len(bases) * test_fraction))
    test = bases[len(bases) - n_test :] if n_test else bases[:0]
    before_test = bases[: len(bases) - n_test]
    if n_test:
        before_test = before_test[before_test + horizon < test[0] - window + 1]
    n_validation = int(round(len(before_test) * validation_fraction))
    validation = before_test[len(before_test) - n_validation :] if n_validation else before_test[:0]
    train = before_test[: len(before_test) - n_validation]
    if n_validation:
        train = train[train + horizon < validation[0] - window + 1]
    calibration, gate = validation_parts(validation, horizon, gate_fraction)
    split = Split(train=train, validation=validation, test=test, calibration=calibration, gate=gate)
    min_calibration, min_gate = min_validation_windows(horizon), min_gate_windows(horizon)
    if (
        len(train) < MIN_TRAIN_WINDOWS
        or len(calibration) < min_calibration
        or len(gate) < min_gate
        or len(test) < MIN_TEST_WINDOWS
    ):
        raise InsufficientDataError(
            f"too little gap-free data: {len(bases)} windows of {window} + {horizon} consecutive hours "
            f"give {len(train)} train / {len(calibration)} calibration + {len(gate)} gate validation / "
            f"{len(test)} test windows; at least {MIN_TRAIN_WINDOWS} / {min_calibration} + {min_gate} / "
            f"{MIN_TEST_WINDOWS} are needed (roughly "
            f"{minimum_candles(window, horizon, test_fraction, validation_fraction, gate_fraction)} "
            "consecutive hourly candles)"
        )
    return split


def minimum_candles(
    window: int,
    horizon: int,
    test_fraction: float,
    validation_fraction: float,
    gate_fraction: float = GATE_FRACTION,
) -> int:
    """A gap-free length that is enough for chronological_split (for error messages)."""
    purge = window + horizon - 1
    for total_windows in range(MIN_TRAIN_WINDOWS, 1_000_000, 10):
        n_test = int(round(total_windows * test_fraction))
        rest = total_windows - n_test - (purge if n_test else 0)
        n_val = int(round(max(rest, 0) * validation_fraction))
        n_train = rest - n_val - (purge if n_val else 0)
        n_gate = int(round(n_val * gate_fraction))
        n_calibration = n_val - n_gate - (horizon if n_gate else 0)
        if (
            n_test >= MIN_TEST_WINDOWS
            and n_calibration >= min_validation_windows(horizon)
            and n_gate >= min_gate_windows(horizon)
            and n_train >= MIN_TRAIN_WINDOWS
        ):
            return total_windows + window + horizon - 1
    return 1_000_000
