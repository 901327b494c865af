"""Training hyperparameters: one frozen, validated record (per-asset overrides come from the admin)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from forecasting.ml.windows import GATE_FRACTION

INTERVAL_COVERAGE = 0.8  # the share of outcomes each forecast band is meant to hold

# Upper limits of the integer hyperparameters: generous for this product (hourly candles,
# CPU training), and far below what would make a training exhaust a worker's memory.
UPPER_BOUNDS = {
    "window": 2160,  # 90 days
    "horizon": 168,  # a week, as the asset's Horizon field
    "hidden_size": 1024,
    "num_layers": 8,
    "batch_size": 4096,
    "max_epochs": 1000,
    "patience": 1000,
    "warm_max_epochs": 1000,
    "warm_windows": 100_000,
    "epoch_windows": 1_000_000,
    "volatility_hours": 2159,
    "seed": 2**32 - 1,
    "max_filled_hours": 48,
    "threads": 64,
}


@dataclass(frozen=True)
class TrainingConfig:
    """Everything a training run depends on; the defaults are the report's recipe made fast.

    batch_size, max_epochs, epoch_windows and the warm-start fields were chosen on the
    validation split of the bundled year (docs/BENCHMARKS.md), never on its test split;
    learning_rate on the validation splits of the bundled year and of two synthetic series
    with a pattern to learn (bench/explore_learning_rate.py).
    """

    window: int = 120  # input hours
    horizon: int = 24  # forecast hours
    hidden_size: int = 128
    num_layers: int = 2
    dropout: float = 0.2
    # The report's 1e-4 learnt almost nothing in these few steps: a stablecoin's validation
    # skill was 0.01 of a possible 0.29 (0.29 with 1e-3); Bitcoin's stays 0 either way.
    learning_rate: float = 1e-3
    weight_decay: float = 0.01  # AdamW's default
    batch_size: int = 128
    max_epochs: int = 8
    patience: int = 2  # epochs without a better validation loss before stopping
    # Training windows drawn (without replacement) per epoch; 0 = all of them. Neighbouring
    # windows share 119 of 120 hours, so a sample carries nearly all the information.
    epoch_windows: int = 2048
    seed: int = 42
    test_fraction: float = 0.1
    validation_fraction: float = 0.2
    # The newest share of the validation windows, held out from every fitted step for the
    # promotion gate and the reported validation figures (forecasting/ml/windows.py).
    gate_fraction: float = GATE_FRACTION
    # Fixed: the contract's metric (coverage_80), the API and every page call the band 80 %.
    interval_coverage: float = INTERVAL_COVERAGE
    # Warm start: fine-tune the parent's weights on the newest training windows only.
    warm_max_epochs: int = 2
    warm_windows: int = 768  # 32 days of hourly windows
    # The predicted change is shrunk toward persistence by a factor fitted on validation, less
    # this many standard errors (one-sided 95 %): no significant benefit there -> persistence.
    shrink_z: float = 1.645
    # Hours of history used to normalise the interval width (realised volatility).
    volatility_hours: int = 24
    # Inference: hours missing inside the last window that are forward-filled; more raise.
    max_filled_hours: int = 3
    # torch intra-op threads. One: a multi-threaded torch collapses (OpenMP spin-waits) when
    # another process holds a core, e.g. 28 vs 243 windows/s measured here with 2 trainings on
    # 2 cores; a worker runs one training per core instead. 0 = torch's default (all cores).
    threads: int = 1

    def __post_init__(self) -> None:
        positive_ints = ("window", "horizon", "hidden_size", "num_layers", "batch_size", "max_epochs")
        for name in positive_ints + ("patience", "warm_max_epochs", "warm_windows", "volatility_hours"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("epoch_windows", "seed", "max_filled_hours", "threads"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        for name, most in UPPER_BOUNDS.items():  # beyond these a worker runs out of memory or time
            if getattr(self, name) > most:
                raise ValueError(f"{name} must be at most {most}, got {getattr(self, name)!r}")
        if self.window < 2:
            raise ValueError(f"window must be at least 2 hours, got {self.window}")
        if self.volatility_hours >= self.window:
            raise ValueError(
                f"volatility_hours ({self.volatility_hours}) must be below window ({self.window})"
            )
        self._check_float("dropout", 0.0, 1.0, low_open=False)
        self._check_float("learning_rate", 0.0, 1.0)
        self._check_float("weight_decay", 0.0, 1.0, low_open=False)
        self._check_float("test_fraction", 0.0, 0.5)
        self._check_float("validation_fraction", 0.0, 0.5)
        self._check_float("gate_fraction", 0.0, 0.5)
        if self.interval_coverage != INTERVAL_COVERAGE:
            raise ValueError(
                f"interval_coverage must be {INTERVAL_COVERAGE}: the bands are 80 % intervals wherever "
                f"they are shown and scored (coverage_80, the API, the pages), got {self.interval_coverage!r}"
            )
        self._check_float("shrink_z", 0.0, 10.0, low_open=False)
        if self.test_fraction + self.validation_fraction >= 0.8:
            raise ValueError(
                "test_fraction + validation_fraction must be below 0.8 (training needs the rest), "
                f"got {self.test_fraction} + {self.validation_fraction}"
            )

    def _check_float(
        self, name: str, low: float, high: float, *, low_open: bool = True, high_open: bool = False
    ) -> None:
        value = getattr(self, name)
        if not isinstance(value, int | float) or isinstance(value, bool) or value != value:
            raise ValueError(f"{name} must be a number, got {json.dumps(value, default=repr)}")
        too_low = value <= low if low_open else value < low
        too_high = value >= high if high_open else value > high
        if too_low or too_high:
            left, right = "(" if low_open else "[", ")" if high_open else "]"
            raise ValueError(f"{name} must be in {left}{low}, {high}{right}, got {json.dumps(value)}")

    @classmethod
    def from_overrides(cls, overrides: Mapping[str, Any] | None, **defaults: Any) -> TrainingConfig:
        """The defaults, then `defaults`, then `overrides` (e.g. an asset's admin JSON).

        Raises ValueError naming an unknown key or a bad value. Integral floats such as 24.0
        (JSON round trips) are accepted for integer fields.
        """
        known = {field.name: field for field in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for source in (defaults, dict(overrides or {})):
            for key, value in source.items():
                if key not in known:
                    # horizon is known but not listed: it is set apart (the asset's Horizon field)
                    listed = ", ".join(sorted(name for name in known if name != "horizon"))
                    raise ValueError(f"unknown hyperparameter {key!r} (known: {listed})")
                values[key] = _coerce(key, known[key].type, value)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable copy of every field."""
        return dataclasses.asdict(self)


def _coerce(key: str, annotation: Any, value: Any) -> Any:
    if isinstance(value, bool):  # written as JSON writes it: the overrides are a JSON object
        raise ValueError(f"{key} must be a number, got {json.dumps(value)}")
    if annotation in ("int", int) and isinstance(value, float) and value.is_integer():
        return int(value)
    if annotation in ("float", float) and isinstance(value, int):
        return float(value)
    if annotation in ("int", int) and not isinstance(value, int):
        raise ValueError(f"{key} must be an integer, got {json.dumps(value, default=repr)}")
    if annotation in ("float", float) and not isinstance(value, float):
        raise ValueError(f"{key} must be a number, got {json.dumps(value, default=repr)}")
    return value
