from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
import torch

from forecasting.ml import export, pipeline
from forecasting.ml.config import TrainingConfig
from forecasting.ml.evaluation import METRIC_KEYS, evaluate_onnx
from forecasting.ml.features import FEATURES, InsufficientDataError, compute_features
from forecasting.ml.pipeline import EpochReport, train
from forecasting.ml.scaling import minmax_fit, minmax_transform
from forecasting.ml.windows import chronological_split, future_returns, hour_numbers, window_bases
from tests.forecasting.ml.helpers import GAPS, synthetic_candles, tiny_config


def _split(candles, config):
    bases = window_bases(hour_numbers(candles["open_time"]), config.window, config.horizon)
    return chronological_split(bases, config.window, config.horizon, 0.1, 0.2)


def _weights(result) -> dict[str, torch.Tensor]:
    return torch.load(io.BytesIO(result.weights_bytes), weights_only=True)


def _numbers(values: list[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype="float64")


def _same_weights(a, b) -> bool:
    wa, wb = _weights(a), _weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_a_training_yields_a_valid_artifact_with_the_design_metrics(trained, candles):
    result, reports = trained
    assert result.valid, result.invalid_reason
    assert result.invalid_reason == ""
    assert set(METRIC_KEYS) | {"horizon"} <= set(result.metrics)
    for key in METRIC_KEYS:
        assert len(result.metrics[key]) == 4
        if key != "direction_accuracy":
            assert all(isinstance(v, float) for v in result.metrics[key])
    # A step whose shrink is 0 serves the last close: it forecasts no direction.
    shrink = result.preprocessing["target"]["shrink"]
    assert [v is None for v in result.metrics["direction_accuracy"]] == [f == 0 for f in shrink]
    assert result.metrics["horizon"] == 4
    assert result.epochs == len(result.loss_history) == len(reports) >= 1
    assert set(result.loss_history[0]) == {"epoch", "train_loss", "val_loss", "seconds"}
    assert [r.epoch for r in reports] == list(range(1, len(reports) + 1))
    assert reports[0].max_epochs == 3
    assert (result.data_first, result.data_last) == (
        candles["open_time"].iloc[0].to_pydatetime(),
        candles["open_time"].iloc[-1].to_pydatetime(),
    )
    assert result.candles == len(candles)
    split = _split(candles, tiny_config())
    assert result.test_start == candles["open_time"].iloc[split.test[0]].to_pydatetime()
    assert result.metrics["test_windows"] == len(split.test)
    # Everything the registry stores is strict JSON.
    json.dumps([result.metrics, result.preprocessing, result.loss_history], allow_nan=False)
    assert result.train_seconds > 0


def test_evaluating_the_artifact_from_the_test_start_reproduces_its_test_metrics(trained, candles):
    result, _ = trained
    again = evaluate_onnx(result.onnx_bytes, result.preprocessing, candles, result.test_start)
    for key in METRIC_KEYS:
        assert [v is None for v in again[key]] == [v is None for v in result.metrics[key]], key
        np.testing.assert_allclose(_numbers(again[key]), _numbers(result.metrics[key]), rtol=1e-9)
    assert again["windows"] == result.metrics["test_windows"]


def test_the_gate_scores_the_artifact_on_exactly_the_gate_windows(trained, candles):
    result, _ = trained
    split = _split(candles, tiny_config())
    first, last = result.gate_range
    assert (first, last) == (
        candles["open_time"].iloc[split.gate[0]].to_pydatetime(),
        candles["open_time"].iloc[split.gate[-1]].to_pydatetime(),
    )
    assert last < result.test_start  # model selection never reaches the test split
    assert result.preprocessing["training"]["gate_range"] == [
        first.strftime("%Y-%m-%dT%H:%M:%SZ"),
        last.strftime("%Y-%m-%dT%H:%M:%SZ"),
    ]

    again = evaluate_onnx(result.onnx_bytes, result.preprocessing, candles, first, last)

    validation = result.metrics["validation"]
    assert again["windows"] == validation["windows"] == len(split.gate)
    for key in ("rmse", "persistence_rmse", "skill_rmse", "coverage_80"):
        np.testing.assert_allclose(again[key], validation[key], rtol=1e-9)


def test_it_records_the_loss_of_no_change_on_the_calibration_and_training_windows(trained, candles):
    result, _ = trained
    config = tiny_config()
    split = _split(candles, config)
    scale = np.asarray(result.preprocessing["target"]["scale"])
    close = candles["close"].to_numpy()

    def no_change(bases):  # the loss of a network that outputs 0: its squared scaled targets
        return float(np.mean((future_returns(close, bases, config.horizon) / scale) ** 2))

    stored = result.preprocessing["training"]["no_change_loss"]
    # Early stopping's validation loss is on the calibration part of the validation windows.
    assert stored["validation"] == pytest.approx(no_change(split.calibration), rel=1e-5)
    assert stored["train"] == pytest.approx(no_change(split.train), rel=1e-5)
    # Scaled by the training spread, so about 1 on training only; validation has its own level.
    assert stored["train"] == pytest.approx(1.0, abs=0.05)
    assert stored["validation"] != pytest.approx(stored["train"], abs=0.01)


def test_the_scaler_is_fitted_on_training_rows_only(trained, candles):
    result, _ = trained
    split = _split(candles, tiny_config())
    rows = compute_features(candles)[: split.training_rows_end(4)]
    prices = slice(4, 9)  # open, high, low, close, close_change; the calendar has fixed ranges
    assert result.preprocessing["scaler"]["min"][prices] == pytest.approx(rows.min(axis=0)[prices].tolist())
    assert result.preprocessing["scaler"]["max"][prices] == pytest.approx(rows.max(axis=0)[prices].tolist())
    assert result.preprocessing["training"]["scaler_rows"][1] < result.metrics["test_start"]


def test_the_onnx_parity_check_runs_on_calibration_windows_never_on_test_windows(candles, monkeypatch):
    checked: list[np.ndarray] = []

    def validate_onnx(onnx_bytes, model, held_out, horizon):
        checked.append(np.array(held_out))
        return export.validate_onnx(onnx_bytes, model, held_out, horizon)

    monkeypatch.setattr(pipeline, "validate_onnx", validate_onnx)
    config = tiny_config(max_epochs=1)
    result = train(candles, config)

    assert result.valid, result.invalid_reason
    split = _split(candles, config)
    scaled = minmax_transform(compute_features(candles), result.preprocessing["scaler"])
    calibration = split.calibration[: pipeline.PARITY_WINDOWS]
    expected = np.stack([scaled[base - config.window + 1 : base + 1] for base in calibration])
    [held_out] = checked
    np.testing.assert_array_equal(held_out, expected)


def test_calendar_features_are_scaled_by_their_known_ranges_so_later_dates_stay_in_range(trained, candles):
    """The training rows cover 3 weeks of January: fitted on them, day_of_month 24 of the test
    split would be scaled beyond 1. Scaled by 0-6, 1-31, 1-53 and 1-12, every date lands inside."""
    result, _ = trained
    scaler = result.preprocessing["scaler"]
    assert FEATURES[:4] == ("day_of_week", "day_of_month", "week_of_year", "month_of_year")
    assert (scaler["min"][:4], scaler["max"][:4]) == ([0.0, 1.0, 1.0, 1.0], [6.0, 31.0, 53.0, 12.0])
    assert scaler["fixed"] == [0, 1, 2, 3]
    every_day = pd.DataFrame(
        {"open_time": pd.date_range("2024-01-01", "2028-12-31 23:00", freq="h", tz="UTC")}
    )
    for column in ("open", "high", "low", "close"):
        every_day[column] = 100.0
    calendar = minmax_transform(compute_features(every_day), scaler)[:, :4]
    assert calendar.min() == -1.0 and calendar.max() == 1.0
    scaled = minmax_transform(compute_features(candles), scaler)[:, :4]
    assert ((scaled >= -1) & (scaled <= 1)).all()


def test_test_hours_cannot_change_the_model_nor_its_calibration(trained, candles):
    """No look-ahead: tripling every price from the first test input hour on changes the
    test metrics only; weights, scaler, shrinkage and intervals stay bit-identical."""
    result, _ = trained
    split = _split(candles, tiny_config())
    first_test_input = split.test[0] - tiny_config().window + 1
    altered = candles.copy()
    for column in ("open", "high", "low", "close"):
        altered.loc[first_test_input:, column] *= 3.0
    other = train(altered, tiny_config())
    assert _same_weights(result, other)
    for key in ("scaler", "target", "interval"):
        assert other.preprocessing[key] == result.preprocessing[key]
    assert other.metrics["rmse"] != result.metrics["rmse"]


def test_it_records_how_the_validation_windows_were_split(trained, candles):
    result, _ = trained
    split = _split(candles, tiny_config())
    training = result.preprocessing["training"]
    assert training["gate_fraction"] == tiny_config().gate_fraction == 0.3
    assert (training["calibration_windows"], training["gate_windows"], training["validation_windows"]) == (
        len(split.calibration),
        len(split.gate),
        len(split.validation),
    )
    assert result.preprocessing["interval"]["calibration_windows"] == len(split.calibration)
    assert result.metrics["validation"]["windows"] == len(split.gate)


def _scaled_prices(candles: pd.DataFrame, rows: range, factor: float) -> pd.DataFrame:
    altered = candles.copy()
    altered.loc[rows.start : rows.stop - 1, ["open", "high", "low", "close"]] *= factor
    return altered


def test_no_fitted_step_reads_the_gate_windows_targets(trained, candles):
    """Every hour a gate window predicts, 20 % higher: weights, early stopping, shrinkage and
    intervals stay bit-identical; only the gate's (validation) figures move."""
    result, _ = trained
    config = tiny_config()
    split = _split(candles, config)
    gate_targets = range(int(split.gate[0]) + 1, int(split.gate[-1]) + config.horizon + 1)

    other = train(_scaled_prices(candles, gate_targets, 1.2), config)

    assert _same_weights(result, other)
    assert other.best_epoch == result.best_epoch
    assert [e["val_loss"] for e in other.loss_history] == [e["val_loss"] for e in result.loss_history]
    for key in ("scaler", "target", "interval"):
        assert other.preprocessing[key] == result.preprocessing[key]
    assert other.metrics["validation"]["rmse"] != result.metrics["validation"]["rmse"]
    assert other.metrics["validation"]["coverage_80"] != result.metrics["validation"]["coverage_80"]
    assert other.metrics["rmse"] == result.metrics["rmse"]  # test windows start after them too


def test_the_calibration_windows_targets_do_set_the_intervals(trained, candles):
    """The converse, so the test above could fail: the calibration part's target hours move them."""
    result, _ = trained
    config = tiny_config()
    split = _split(candles, config)
    calibration_targets = range(
        int(split.calibration[0]) + 1, int(split.calibration[-1]) + config.horizon + 1
    )
    assert calibration_targets.stop <= split.gate[0] + 1  # the purge: none of them is a gate target

    other = train(_scaled_prices(candles, calibration_targets, 1.2), config)

    assert other.preprocessing["interval"] != result.preprocessing["interval"]
    assert [e["val_loss"] for e in other.loss_history] != [e["val_loss"] for e in result.loss_history]


def test_validation_hours_cannot_change_the_scaler_nor_the_target_scale(trained, candles):
    result, _ = trained
    split = _split(candles, tiny_config())
    first_validation_input = split.validation[0] - tiny_config().window + 1
    altered = candles.copy()
    altered.loc[first_validation_input:, ["open", "high", "low", "close"]] *= 5.0
    other = train(altered, tiny_config(max_epochs=1))
    assert other.preprocessing["scaler"] == result.preprocessing["scaler"]
    assert other.preprocessing["target"]["scale"] == result.preprocessing["target"]["scale"]


def test_the_same_data_and_seed_give_the_same_weights(trained, candles):
    result, _ = trained
    again = train(candles, tiny_config())
    assert _same_weights(result, again)
    assert again.onnx_bytes == result.onnx_bytes
    assert not _same_weights(result, train(candles, tiny_config(seed=7)))


def test_a_one_hour_horizon_works_end_to_end(trained_one_hour):
    result = trained_one_hour
    assert result.valid, result.invalid_reason
    assert result.metrics["horizon"] == 1
    assert all(len(result.metrics[key]) == 1 for key in METRIC_KEYS)


def test_a_warm_start_keeps_the_parents_scaler_on_newer_higher_prices(trained, candles):
    result, _ = trained
    newer = synthetic_candles(700, skip=GAPS)
    # From the parent's last training row on, prices reach highs its scaler never saw.
    unseen = _split(candles, tiny_config()).training_rows_end(4)
    newer.loc[unseen:, ["open", "high", "low", "close"]] *= 1.5
    reports: list[EpochReport] = []
    warm = train(
        newer, tiny_config(), warm_start=(result.weights_bytes, result.preprocessing), progress=reports.append
    )
    assert warm.valid, warm.invalid_reason
    assert warm.warm_start and warm.preprocessing["training"]["warm_start"]
    assert warm.preprocessing["scaler"] == result.preprocessing["scaler"]
    assert warm.preprocessing["target"]["scale"] == result.preprocessing["target"]["scale"]
    # It reports the rows that scaler was fitted on (the parent's), not its own split's.
    assert warm.preprocessing["training"]["scaler_rows"] == result.preprocessing["training"]["scaler_rows"]
    assert 1 <= warm.epochs <= 2 and reports[0].max_epochs == 2
    assert warm.preprocessing["training"]["fit_windows"] == 64
    assert warm.test_start > result.test_start
    full = train(newer, tiny_config(max_epochs=1))
    assert full.preprocessing["scaler"]["max"][7] > result.preprocessing["scaler"]["max"][7]


def test_a_warm_start_of_a_version_with_fitted_calendar_ranges_keeps_them(trained, candles):
    """Versions trained before the calendar's fixed ranges stored fitted ones; their weights
    mean something on those, so a warm start keeps them until the next full retrain."""
    result, _ = trained
    split = _split(candles, tiny_config())
    rows = compute_features(candles)[: split.training_rows_end(4)]
    fitted = {key: value for key, value in minmax_fit(rows).items() if key != "fixed"}
    parent = {**result.preprocessing, "scaler": fitted}
    newer = synthetic_candles(700, skip=GAPS)

    warm = train(newer, tiny_config(), warm_start=(result.weights_bytes, parent))

    assert warm.valid, warm.invalid_reason
    assert warm.preprocessing["scaler"] == fitted
    assert train(newer, tiny_config(max_epochs=1)).preprocessing["scaler"]["max"][:4] == [
        6.0,
        31.0,
        53.0,
        12.0,
    ]


def test_a_warm_start_keeps_the_parent_when_fine_tuning_does_not_help(trained, candles):
    result, _ = trained
    warm = train(
        candles, tiny_config(learning_rate=1.0), warm_start=(result.weights_bytes, result.preprocessing)
    )
    # lr 1.0 wrecks the network; early stopping compares with the parent and keeps it.
    assert warm.best_epoch == 0
    assert _same_weights(warm, result)


def test_a_warm_start_refuses_a_parent_of_another_shape(trained, candles):
    result, _ = trained
    parent = (result.weights_bytes, result.preprocessing)
    with pytest.raises(ValueError, match="horizon"):
        train(candles, tiny_config(horizon=3), warm_start=parent)
    with pytest.raises(ValueError, match="weights do not fit"):
        train(candles, tiny_config(hidden_size=16), warm_start=parent)
    with pytest.raises(ValueError, match="weights do not fit"):
        train(candles, tiny_config(), warm_start=(b"not torch", result.preprocessing))
    without_scaler = {key: value for key, value in result.preprocessing.items() if key != "scaler"}
    with pytest.raises(ValueError, match="lacks its scaler"):
        train(candles, tiny_config(), warm_start=(result.weights_bytes, without_scaler))
    training = {key: value for key, value in result.preprocessing["training"].items() if key != "scaler_rows"}
    without_scaler_rows = {**result.preprocessing, "training": training}
    with pytest.raises(ValueError, match="lacks its scaler"):
        train(candles, tiny_config(), warm_start=(result.weights_bytes, without_scaler_rows))


def test_it_refuses_too_little_gap_free_data():
    with pytest.raises(InsufficientDataError, match="too little gap-free data"):
        train(synthetic_candles(90), tiny_config())
    with pytest.raises(ValueError, match="sorted"):
        train(synthetic_candles(600).iloc[::-1].reset_index(drop=True), tiny_config())


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")
def test_a_diverging_run_is_marked_invalid_and_stays_recordable(candles):
    split = _split(candles, tiny_config())
    broken = candles.copy()
    rows = slice(split.validation[0] + 1, split.validation[0] + 40)
    broken.loc[rows, ["open", "high", "low", "close"]] = 1e200
    result = train(broken, tiny_config())
    assert not result.valid
    assert "non-finite loss at epoch 1" in result.invalid_reason
    json.dumps([result.metrics, result.preprocessing, result.loss_history], allow_nan=False)


def test_the_default_training_budget_learns_a_pattern_that_is_there():
    """A stablecoin ticking around 1.0000 at random: the best forecast is 1.0000, with an RMSE
    skill of 1 - 1/sqrt(2) = 0.29 over persistence. The default learning rate and epochs must
    find most of it (the report's 1e-4 found 0.01 in the same steps); only validation is read."""
    candles = synthetic_candles(2500)
    ticks = np.random.default_rng(7).choice([-1, 0, 0, 0, 0, 1], len(candles)) / 10000
    candles["close"] = 1 + ticks
    candles["open"] = np.r_[candles["close"].iloc[0], candles["close"].to_numpy()[:-1]]
    candles["high"] = candles[["open", "close"]].max(axis=1)
    candles["low"] = candles[["open", "close"]].min(axis=1)
    # Shorter windows and horizon than the product's, for time; the learning budget is the default.
    result = train(
        candles, TrainingConfig.from_overrides({"window": 24, "horizon": 6, "volatility_hours": 12})
    )

    skill = result.metrics["validation"]["skill_rmse"]
    assert min(skill) > 0.2, skill
