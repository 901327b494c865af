"""train(): candles -> a validated ONNX artifact, its preprocessing, metrics and weights."""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import torch

from forecasting.ml.config import TrainingConfig
from forecasting.ml.evaluation import (
    conformal_bounds,
    evaluate_windows,
    fit_shrinkage,
    shrinkage_block,
    window_inputs,
)
from forecasting.ml.export import INPUT_NAME, OPSET, OUTPUT_NAME, export_onnx, validate_onnx
from forecasting.ml.features import CALENDAR_COLUMNS, FEATURES, check_candles, compute_features
from forecasting.ml.inference import load_session, run_session
from forecasting.ml.model import LSTMForecaster
from forecasting.ml.scaling import minmax_fit, minmax_transform
from forecasting.ml.training import EpochStats, FitOutcome, fit, predict
from forecasting.ml.windows import (
    Split,
    chronological_split,
    future_returns,
    hour_numbers,
    sliding_view,
    window_bases,
)

# Calibration windows on which torch and onnxruntime must agree: held out from the fit, and
# not the test windows, which nothing may look at before the final evaluation.
PARITY_WINDOWS = 256
PREPROCESSING_FORMAT = 1


@dataclass
class EpochReport:
    epoch: int
    max_epochs: int
    train_loss: float
    val_loss: float
    seconds: float


@dataclass
class TrainingResult:
    onnx_bytes: bytes  # the served artifact (dynamic batch axis)
    weights_bytes: bytes  # torch state_dict, for warm starts (torch.load(..., weights_only=True))
    preprocessing: dict[str, Any]  # JSON: everything inference needs besides the graph
    metrics: dict[str, Any]  # the DESIGN.md `train --json` metrics (+ test_windows, test_start, validation)
    loss_history: list[dict[str, float]]  # [{"epoch", "train_loss", "val_loss", "seconds"}]
    epochs: int
    train_seconds: float
    data_first: datetime
    data_last: datetime
    candles: int
    test_start: datetime  # base time of the first test window
    gate_range: tuple[datetime, datetime]  # base times of the first and last gate windows
    valid: bool
    invalid_reason: str
    warm_start: bool = False
    best_epoch: int = 0  # 0 = the starting weights (a warm start's parent) were kept


@contextmanager
def _seeded_torch(seed: int, threads: int) -> Iterator[None]:
    """Seed torch for this run only (the caller's RNG state and thread count come back)."""
    previous = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if threads:
            torch.set_num_threads(threads)
        try:
            yield
        finally:
            torch.set_num_threads(previous)


class WarmStartRefused(ValueError):
    """The parent cannot be fine-tuned on these candles: a full retrain is needed (`why`)."""

    def __init__(self, why: str) -> None:
        super().__init__(f"warm start: {why}; a full retrain is needed")
        self.why = why


def warm_start_check(candles: pd.DataFrame, config: TrainingConfig, parent: dict[str, Any]) -> None:
    """Raise WarmStartRefused unless `parent` (a version's preprocessing) can be fine-tuned on `candles`.

    Its weights mean something only with its window, horizon, features, scaler and target
    scale. And they must not have been fitted on an hour this run validates or tests on: the
    split fractions must be the parent's, and the first validation window (the older,
    calibration part comes first, then the gate part, then test) must start after the last
    hour the weights (through every warm ancestor) and the scaler were fitted on,
    which a hole filled in the history would otherwise move the split onto. Raises
    InsufficientDataError, as train() does, when the candles cannot be split.
    """
    _check_parent(parent, config)
    split = _split(candles, config)
    training = parent["training"]
    trained_through = _trained_through(training)
    if trained_through is None:
        raise WarmStartRefused(
            "the parent does not record the last hour its weights were trained on "
            "(a warm version trained before that was recorded)"
        )
    fitted_through = max(trained_through, pd.Timestamp(training["scaler_rows"][1]))
    first_input = candles["open_time"].iloc[int(split.validation[0]) - config.window + 1]
    if first_input <= fitted_through:
        raise WarmStartRefused(
            f"the parent's weights and scaler were fitted on hours up to {_iso(fitted_through)}, but "
            f"this run's validation windows would start at {_iso(first_input)} (a hole filled before "
            "them, or other split fractions, moved them back)"
        )
    # The inherited weights were also chosen (early stopping) on the parent's calibration
    # windows, whose targets end at its first gate window's base: the child's gate windows,
    # its held-out validation figures, must not start before it. As the history grows at its
    # end they only move forward; a hole filled in the parent's training part moves them back.
    parent_gate = training.get("gate_range")
    if parent_gate and len(split.gate):
        first_gate = candles["open_time"].iloc[int(split.gate[0])]
        if first_gate < pd.Timestamp(parent_gate[0]):
            raise WarmStartRefused(
                f"the parent's weights were early-stopped on target hours up to {_iso(pd.Timestamp(parent_gate[0]))}, "
                f"but this run's held-out gate windows would start at {_iso(first_gate)} (a hole filled "
                "before them moved them back)"
            )


def _trained_through(training: dict[str, Any]) -> pd.Timestamp | None:
    """The last hour the weights were ever trained on as a target; None when not known exactly."""
    if "trained_through" in training:
        return pd.Timestamp(training["trained_through"])
    if training.get("warm_start") is False:  # recorded before trained_through: a full run's
        return pd.Timestamp(training["scaler_rows"][1])  # scaler rows end at its last target
    return None  # a warm version of then: what its ancestors were trained on is not recorded


def _check_parent(parent: dict[str, Any], config: TrainingConfig) -> None:
    for key, expected in (("window", config.window), ("horizon", config.horizon)):
        if int(parent.get(key, -1)) != expected:
            raise WarmStartRefused(
                f"the parent was trained with {key}={parent.get(key)!r}, this run asks {expected}"
            )
    if list(parent.get("features", [])) != list(FEATURES):
        raise WarmStartRefused("the parent's feature list differs")
    training = parent.get("training") or {}
    for key in ("test_fraction", "validation_fraction"):  # recorded since trained_through
        if key in training and float(training[key]) != getattr(config, key):
            raise WarmStartRefused(
                f"the parent was split with {key}={training[key]!r}, this run asks {getattr(config, key)!r}"
            )
    scaler, target = parent.get("scaler") or {}, parent.get("target") or {}
    scaler_rows = training.get("scaler_rows") or []
    if (
        len(scaler.get("min", [])) != len(FEATURES)
        or len(scaler_rows) != 2
        or len(target.get("scale", [])) != config.horizon
    ):
        raise WarmStartRefused("the parent's preprocessing lacks its scaler (or its rows) or target scale")


def _load_parent_weights(model: torch.nn.Module, weights_bytes: bytes) -> None:
    try:
        state = torch.load(io.BytesIO(weights_bytes), weights_only=True)
        model.load_state_dict(state)
    except Exception as error:  # unpickling and shape errors share no base class
        raise ValueError(
            f"warm start: the parent's weights do not fit this configuration ({error}); "
            "a full retrain is needed"
        ) from error


@dataclass
class _Prepared:
    """The candles as the network sees them, split, with the scaler and target scale."""

    split: Split
    close: np.ndarray
    scaled: np.ndarray
    view: np.ndarray  # sliding windows over `scaled`, no copy
    scaler: dict[str, Any]
    target_scale: list[float]

    def examples(self, bases: np.ndarray, window: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
        """(window start rows in the view, standardised targets) of the windows at `bases`."""
        targets = future_returns(self.close, bases, horizon) / np.asarray(self.target_scale)
        return bases - window + 1, targets.astype("float32")


@dataclass
class _Fitted:
    onnx_bytes: bytes
    weights_bytes: bytes
    reason: str  # '' when the artifact passed every check
    run: Callable[[np.ndarray], np.ndarray]  # scaled windows -> network outputs, as served
    outcome: FitOutcome
    fit_windows: int


def _split(candles: pd.DataFrame, config: TrainingConfig) -> Split:
    window, horizon = config.window, config.horizon
    bases = window_bases(hour_numbers(candles["open_time"]), window, horizon)
    return chronological_split(
        bases, window, horizon, config.test_fraction, config.validation_fraction, config.gate_fraction
    )


def _prepare(candles: pd.DataFrame, config: TrainingConfig, parent: dict[str, Any] | None) -> _Prepared:
    window, horizon = config.window, config.horizon
    split = _split(candles, config)
    features = compute_features(candles)
    close = candles["close"].to_numpy(dtype="float64")
    if parent is None:
        scaler = minmax_fit(features[: split.training_rows_end(horizon)], fixed=CALENDAR_COLUMNS)
        spread = future_returns(close, split.train, horizon).std(axis=0)
        target_scale = [float(v) if v > 0 else 1.0 for v in spread]
    else:  # the parent's weights only mean something on the parent's scales
        scaler, target_scale = parent["scaler"], [float(v) for v in parent["target"]["scale"]]
    scaled = minmax_transform(features, scaler)
    return _Prepared(split, close, scaled, sliding_view(scaled, window), scaler, target_scale)


def _fit_and_export(
    data: _Prepared,
    config: TrainingConfig,
    parent_weights: bytes | None,
    progress: Callable[[EpochReport], None] | None,
) -> _Fitted:
    """Train (or fine-tune), export to ONNX and check the artifact, all seeded."""
    window, horizon, warm = config.window, config.horizon, parent_weights is not None
    fit_bases = data.split.train[-config.warm_windows :] if warm else data.split.train
    max_epochs = config.warm_max_epochs if warm else config.max_epochs

    def on_epoch(stats: EpochStats) -> None:
        if progress is not None:
            progress(EpochReport(stats.epoch, max_epochs, stats.train_loss, stats.val_loss, stats.seconds))

    with _seeded_torch(config.seed, config.threads):
        model = LSTMForecaster(len(FEATURES), config.hidden_size, config.num_layers, config.dropout, horizon)
        if parent_weights is not None:
            _load_parent_weights(model, parent_weights)
        outcome = fit(
            model,
            data.view,
            data.examples(fit_bases, window, horizon),
            data.examples(data.split.calibration, window, horizon),  # never the gate windows
            learning_rate=config.learning_rate,
            weight_decay=config.weight_decay,
            batch_size=config.batch_size,
            max_epochs=max_epochs,
            patience=config.patience,
            epoch_windows=0 if warm else config.epoch_windows,
            rng=np.random.default_rng(config.seed),
            score_start=warm,
            on_epoch=on_epoch,
        )
        onnx_bytes = export_onnx(model, window, len(FEATURES))
        held_out = data.view[data.split.calibration[:PARITY_WINDOWS] - window + 1]
        reason = validate_onnx(onnx_bytes, model, held_out, horizon)
        weights = io.BytesIO()
        torch.save(model.state_dict(), weights)
    if reason:  # metrics still come from the torch model, so the failure can be inspected

        def run(x: np.ndarray) -> np.ndarray:
            return predict(model, x, np.arange(len(x)))
    else:
        session = load_session(onnx_bytes, threads=config.threads or 1)

        def run(x: np.ndarray) -> np.ndarray:
            return run_session(session, x)

    if outcome.diverged_at is not None:
        reason = f"non-finite loss at epoch {outcome.diverged_at}" + (f"; {reason}" if reason else "")
    return _Fitted(onnx_bytes, weights.getvalue(), reason, run, outcome, len(fit_bases))


def train(
    candles: pd.DataFrame,
    config: TrainingConfig,
    *,
    warm_start: tuple[bytes, dict[str, Any]] | None = None,
    progress: Callable[[EpochReport], None] | None = None,
) -> TrainingResult:
    """Train, export to ONNX, validate and evaluate on the chronological test split.

    warm_start = (parent weights_bytes, parent preprocessing): fine-tunes the parent on the
    newest `warm_windows` training windows for at most `warm_max_epochs`, reusing its scaler
    and target scale so the weights keep their meaning. Raises ValueError: InsufficientDataError
    when the candles hold too few gap-free windows, WarmStartRefused when the parent does not
    fit them (warm_start_check), another ValueError when its weights do not fit the network.
    """
    started = time.perf_counter()
    check_candles(candles)
    if warm_start is not None:
        warm_start_check(candles, config, warm_start[1])
    data = _prepare(candles, config, warm_start[1] if warm_start else None)
    fitted = _fit_and_export(data, config, warm_start[0] if warm_start else None, progress)
    split, times = data.split, candles["open_time"]
    preprocessing = _calibrate(fitted.run, config, data, split)
    if warm_start is None:
        scaler_rows = [_iso(times.iloc[0]), _iso(times.iloc[split.training_rows_end(config.horizon) - 1])]
    else:  # the inherited scaler was fitted on the rows of the parent's (or its ancestor's) split
        scaler_rows = list(warm_start[1]["training"]["scaler_rows"])
    # The last hour these weights were ever trained on as a target: a warm start's next one
    # must validate and test after it (warm_start_check).
    trained_through = times.iloc[int(split.train[-1]) + config.horizon]
    if warm_start is not None:  # known: warm_start_check refuses a parent without it
        trained_through = max(trained_through, _trained_through(warm_start[1]["training"]) or trained_through)
    preprocessing["training"] = {
        "warm_start": warm_start is not None,
        "best_epoch": fitted.outcome.best_epoch,
        # The loss_history's reference: "no change" on the fitted and the calibration windows
        # (the validation loss of early stopping).
        "no_change_loss": {
            "train": fitted.outcome.no_change_train_loss,
            "validation": fitted.outcome.no_change_val_loss,
        },
        "scaler_rows": scaler_rows,
        "trained_through": _iso(trained_through),
        "test_fraction": config.test_fraction,
        "validation_fraction": config.validation_fraction,
        "gate_fraction": config.gate_fraction,
        "fit_windows": fitted.fit_windows,
        "train_windows": len(split.train),
        "validation_windows": len(split.validation),  # both parts and the purge between them
        "calibration_windows": len(split.calibration),
        "gate_windows": len(split.gate),
        "test_windows": len(split.test),
    }
    metrics = evaluate_windows(fitted.run, preprocessing, data.scaled, data.close, split.test)
    metrics["test_windows"] = metrics.pop("windows")
    test_start = times.iloc[int(split.test[0])].to_pydatetime()
    metrics["test_start"] = _iso(test_start)
    gate_range = (
        times.iloc[int(split.gate[0])].to_pydatetime(),
        times.iloc[int(split.gate[-1])].to_pydatetime(),
    )
    preprocessing["training"]["gate_range"] = [_iso(moment) for moment in gate_range]
    # The reported validation figures are the gate's: windows no fitted step has read.
    validation = evaluate_windows(fitted.run, preprocessing, data.scaled, data.close, split.gate)
    metrics["validation"] = {
        key: validation[key] for key in ("rmse", "persistence_rmse", "skill_rmse", "coverage_80", "windows")
    }
    reason = fitted.reason
    if not reason and any(v is None for key in ("rmse", "coverage_80") for v in metrics[key]):
        reason = "the test metrics are not finite"
    history = [
        {"epoch": s.epoch, "train_loss": s.train_loss, "val_loss": s.val_loss, "seconds": s.seconds}
        for s in fitted.outcome.history
    ]
    return TrainingResult(
        onnx_bytes=fitted.onnx_bytes,
        weights_bytes=fitted.weights_bytes,
        preprocessing=_json_safe(preprocessing),
        metrics=_json_safe(metrics),
        loss_history=_json_safe(history),
        epochs=len(history),
        train_seconds=time.perf_counter() - started,
        data_first=times.iloc[0].to_pydatetime(),
        data_last=times.iloc[-1].to_pydatetime(),
        candles=len(candles),
        test_start=test_start,
        gate_range=gate_range,
        valid=not reason,
        invalid_reason=reason,
        warm_start=warm_start is not None,
        best_epoch=fitted.outcome.best_epoch,
    )


def _json_safe(value: Any) -> Any:
    """`value` with every non-finite float replaced by None: JSON (and PostgreSQL jsonb) has
    no NaN or Infinity, and a diverged run must still be recordable."""
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _iso(stamp: datetime | pd.Timestamp) -> str:
    return pd.Timestamp(stamp).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


def _calibrate(
    run: Callable[[np.ndarray], np.ndarray], config: TrainingConfig, data: _Prepared, split: Split
) -> dict[str, Any]:
    """Preprocessing with the shrinkage and conformal interval fitted on the calibration
    windows (never the gate windows)."""
    windows, _, volatility = window_inputs(
        data.scaled, data.close, split.calibration, config.window, config.volatility_hours
    )
    network = run(windows)
    predicted = network.astype("float64") * np.asarray(data.target_scale)
    actual = future_returns(data.close, split.calibration, config.horizon)
    shrink = fit_shrinkage(predicted, actual, z=config.shrink_z, block=shrinkage_block(config.horizon))
    positive = volatility[volatility > 0]
    # A flat stretch would give a zero-width interval; a tenth of the typical volatility bounds it.
    floor = float(np.median(positive) * 0.1) if len(positive) else 1e-6
    residuals = (actual - predicted * shrink) / np.maximum(volatility, floor)[:, None]
    lower, upper = conformal_bounds(residuals, config.interval_coverage)
    preprocessing = {
        "format": PREPROCESSING_FORMAT,
        "features": list(FEATURES),
        "window": config.window,
        "horizon": config.horizon,
        "scaler": data.scaler,
        "target": {
            "kind": "relative_change",
            "definition": "network[k] * scale[k] * shrink[k] = close[t+k+1] / close[t] - 1",
            "scale": list(data.target_scale),
            "shrink": [float(v) for v in shrink],
            "shrink_z": config.shrink_z,
        },
        "interval": {
            "method": "split_conformal_volatility_normalised",
            "coverage": config.interval_coverage,
            "volatility_hours": config.volatility_hours,
            "volatility_floor": floor,
            "lower": [float(v) for v in lower],
            "upper": [float(v) for v in upper],
            "calibration_windows": len(split.calibration),
        },
        "onnx": {
            "input": INPUT_NAME,
            "output": OUTPUT_NAME,
            "opset": OPSET,
            "dtype": "float32",
            "input_shape": ["batch", config.window, len(FEATURES)],
        },
        "gaps": {"max_filled_hours": config.max_filled_hours},
    }
    return preprocessing
