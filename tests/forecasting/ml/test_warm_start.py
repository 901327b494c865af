"""A warm start never lets its parent's training hours into the child's validation or test windows."""

from __future__ import annotations

import pandas as pd
import pytest

from forecasting.ml.pipeline import TrainingResult, WarmStartRefused, train, warm_start_check
from forecasting.ml.windows import Split, chronological_split, hour_numbers, window_bases
from tests.forecasting.ml.helpers import GAPS, synthetic_candles, tiny_config

HOLE = range(150, 350)  # 200 hours missing from the parent's history, filled before the child's


def _split(candles: pd.DataFrame, config) -> Split:
    bases = window_bases(hour_numbers(candles["open_time"]), config.window, config.horizon)
    return chronological_split(
        bases, config.window, config.horizon, config.test_fraction, config.validation_fraction
    )


def _hours(candles: pd.DataFrame, rows) -> set[pd.Timestamp]:
    return set(candles["open_time"].iloc[sorted(rows)])


def _training_target_hours(candles: pd.DataFrame, config) -> set[pd.Timestamp]:
    train_bases = _split(candles, config).train
    return _hours(candles, {b + k for b in train_bases for k in range(1, config.horizon + 1)})


def _held_out_hours(candles: pd.DataFrame, config) -> set[pd.Timestamp]:
    """Every input and target hour of the validation and test windows."""
    split = _split(candles, config)
    reach = range(-config.window + 1, config.horizon + 1)
    return _hours(candles, {b + k for b in (*split.validation, *split.test) for k in reach})


def _warm(parent: TrainingResult, candles: pd.DataFrame, config=None) -> TrainingResult:
    return train(candles, config or tiny_config(), warm_start=(parent.weights_bytes, parent.preprocessing))


def _trained_through(result: TrainingResult) -> pd.Timestamp:
    return pd.Timestamp(result.preprocessing["training"]["trained_through"])


def _without(result: TrainingResult, *keys: str, **changes) -> dict:
    """The result's preprocessing as a version trained before `keys` were recorded."""
    training = {k: v for k, v in result.preprocessing["training"].items() if k not in keys}
    return {**result.preprocessing, "training": {**training, **changes}}


@pytest.fixture(scope="module")
def parent_before_the_fill() -> TrainingResult:
    return train(synthetic_candles(700, skip=HOLE), tiny_config())


def test_a_filled_hole_that_moves_validation_onto_the_parents_training_hours_refuses_a_warm_start(
    parent_before_the_fill,
):
    holed, filled = synthetic_candles(700, skip=HOLE), synthetic_candles(700)
    leaked = _training_target_hours(holed, tiny_config()) & _held_out_hours(filled, tiny_config())
    assert leaked  # the filled hours move the split about 60 hours earlier, onto trained hours

    with pytest.raises(WarmStartRefused, match="fitted on hours up to .* validation windows would start"):
        _warm(parent_before_the_fill, filled)
    with pytest.raises(WarmStartRefused):
        warm_start_check(filled, tiny_config(), parent_before_the_fill.preprocessing)


def test_a_filled_hole_that_moves_the_gate_onto_the_parents_early_stopping_hours_refuses_a_warm_start():
    # 20 hours missing near the end of the parent's training part: the child's validation still
    # starts after every hour the parent trained on, but its gate windows (held out, reported as
    # validation figures) move back onto target hours the parent's early stopping read.
    holed, filled = synthetic_candles(700, skip=range(450, 470)), synthetic_candles(700)
    parent = train(holed, tiny_config())
    parent_gate = pd.Timestamp(parent.preprocessing["training"]["gate_range"][0])
    child_gate = filled["open_time"].iloc[int(_split(filled, tiny_config()).gate[0])]
    assert child_gate < parent_gate
    first_input = filled["open_time"].iloc[
        int(_split(filled, tiny_config()).validation[0]) - tiny_config().window + 1
    ]
    assert first_input > _trained_through(parent)  # the training-hours check alone lets it through

    with pytest.raises(
        WarmStartRefused, match="early-stopped on target hours up to .* gate windows would start"
    ):
        warm_start_check(filled, tiny_config(), parent.preprocessing)
    # One more hour at the end moves the gate forward, never back: the hourly warm start goes on.
    warm_start_check(synthetic_candles(701, skip=range(450, 470)), tiny_config(), parent.preprocessing)


@pytest.mark.parametrize(
    "changed", [{"test_fraction": 0.3}, {"test_fraction": 0.05}, {"validation_fraction": 0.3}]
)
def test_a_warm_start_with_other_split_fractions_is_refused(trained, changed):
    parent, _ = trained
    with pytest.raises(WarmStartRefused, match=f"split with {next(iter(changed))}"):
        _warm(parent, synthetic_candles(601, skip=GAPS), tiny_config(**changed))


def test_a_parent_from_before_the_record_is_judged_by_its_training_hours(trained):
    """A larger test share moves validation back onto hours the parent trained on: refused
    even when the parent predates the record of its fractions."""
    parent, _ = trained
    legacy = _without(parent, "trained_through", "test_fraction", "validation_fraction")
    newer = synthetic_candles(601, skip=GAPS)
    assert _training_target_hours(synthetic_candles(600, skip=GAPS), tiny_config()) & _held_out_hours(
        newer, tiny_config(test_fraction=0.45)
    )

    with pytest.raises(WarmStartRefused, match="fitted on hours up to"):
        warm_start_check(newer, tiny_config(test_fraction=0.45), legacy)
    # A full run's scaler rows end at its last training target: exact, so a warm start is fine.
    warm_start_check(newer, tiny_config(), legacy)


def test_a_warm_parent_from_before_the_record_is_refused(trained):
    parent, _ = trained
    legacy_warm = _without(parent, "trained_through", "test_fraction", "validation_fraction", warm_start=True)
    with pytest.raises(WarmStartRefused, match="does not record the last hour its weights were trained on"):
        warm_start_check(synthetic_candles(601, skip=GAPS), tiny_config(), legacy_warm)


def test_an_hourly_warm_chain_stays_warm_and_validates_after_every_trained_hour(trained, candles):
    parent, _ = trained
    config = tiny_config()
    split = _split(candles, config)
    last_target = candles["open_time"].iloc[split.train[-1] + config.horizon]
    assert _trained_through(parent) == last_target
    assert (
        parent.preprocessing["training"]["scaler_rows"][1]
        == parent.preprocessing["training"]["trained_through"]
    )

    trained_hours = _training_target_hours(candles, config)
    for hours in (601, 602, 610):
        newer = synthetic_candles(hours, skip=GAPS)
        child = _warm(parent, newer)

        assert child.valid and child.warm_start, child.invalid_reason
        assert not trained_hours & _held_out_hours(newer, config)
        # The weights now hold the parent's training and the child's own fine-tuning.
        own_last_target = newer["open_time"].iloc[_split(newer, config).train[-1] + config.horizon]
        assert _trained_through(child) == max(_trained_through(parent), own_last_target)
        assert (
            child.preprocessing["training"]["scaler_rows"] == parent.preprocessing["training"]["scaler_rows"]
        )
        trained_hours |= _training_target_hours(newer, config)
        parent = child
