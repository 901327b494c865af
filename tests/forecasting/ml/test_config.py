from __future__ import annotations

import json

import pytest

from forecasting.ml.config import TrainingConfig


def test_its_defaults_are_the_reports_model():
    config = TrainingConfig()
    assert (config.window, config.horizon, config.hidden_size, config.num_layers) == (120, 24, 128, 2)
    assert (config.dropout, config.learning_rate, config.patience) == (0.2, 1e-3, 2)
    assert (config.test_fraction, config.validation_fraction, config.interval_coverage) == (0.1, 0.2, 0.8)
    assert config.gate_fraction == 0.3  # the newest 30 % of the validation windows: held out


def test_it_applies_overrides_over_defaults_and_round_trips_through_json():
    config = TrainingConfig.from_overrides({"horizon": 6.0, "dropout": 0}, horizon=12, max_epochs=3)
    assert (config.horizon, config.max_epochs, config.dropout) == (6, 3, 0.0)
    assert TrainingConfig.from_overrides(json.loads(json.dumps(config.to_dict()))) == config


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"horizn": 3}, "unknown hyperparameter 'horizn'"),
        ({"horizon": 0}, "horizon must be a positive integer"),
        ({"horizon": 2.5}, "horizon must be an integer"),
        ({"window": "120"}, "window must be an integer"),
        ({"learning_rate": 0}, "learning_rate must be in"),
        ({"dropout": 1.5}, "dropout must be in"),
        ({"interval_coverage": 1}, "interval_coverage must be 0.8"),
        ({"interval_coverage": 0.5}, "interval_coverage must be 0.8: the bands are 80 % intervals"),
        ({"test_fraction": True}, "test_fraction must be a number"),
        ({"volatility_hours": 120}, "volatility_hours"),
        ({"hidden_size": 100_000_000}, "hidden_size must be at most 1024"),
        ({"seed": 1e300}, "seed must be at most 4294967295"),
        ({"horizon": 500}, "horizon must be at most 168"),
        ({"batch_size": 10**6}, "batch_size must be at most 4096"),
        ({"gate_fraction": 0}, "gate_fraction must be in \\(0.0, 0.5\\]"),
        ({"gate_fraction": 0.6}, "gate_fraction must be in"),
        (
            {"test_fraction": 0.5, "validation_fraction": 0.4},
            "test_fraction \\+ validation_fraction must be below 0.8",
        ),
    ],
)
def test_it_rejects_unknown_keys_and_bad_values_by_name(overrides, message):
    with pytest.raises(ValueError, match=message):
        TrainingConfig.from_overrides(overrides)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"window": "120"}, 'window must be an integer, got "120"'),
        ({"horizon": [24]}, "horizon must be an integer, got [24]"),
        ({"dropout": "x"}, 'dropout must be a number, got "x"'),
        ({"test_fraction": True}, "test_fraction must be a number, got true"),
        ({"dropout": 1.5}, "dropout must be in [0.0, 1.0], got 1.5"),
    ],
)
def test_it_writes_the_bad_value_as_json_spells_it(overrides, message):
    # The overrides are a JSON object typed in the admin: "x", true and null, not 'x', True, None.
    with pytest.raises(ValueError) as error:
        TrainingConfig.from_overrides(overrides)
    assert str(error.value) == message


def test_a_value_set_directly_is_written_as_json_too():
    with pytest.raises(ValueError) as error:
        TrainingConfig(dropout=None)  # type: ignore[arg-type]
    assert str(error.value) == "dropout must be a number, got null"
