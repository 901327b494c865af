"""Trained tiny models shared by the ML tests (each training takes a second or two)."""

from __future__ import annotations

import pytest

from forecasting.ml.pipeline import EpochReport, TrainingResult, train
from tests.forecasting.ml.helpers import GAPS, synthetic_candles, tiny_config


@pytest.fixture(scope="session")
def candles():
    return synthetic_candles(600, skip=GAPS)


@pytest.fixture(scope="session")
def trained(candles) -> tuple[TrainingResult, list[EpochReport]]:
    reports: list[EpochReport] = []
    result = train(candles, tiny_config(), progress=reports.append)
    return result, reports


@pytest.fixture(scope="session")
def trained_one_hour(candles) -> TrainingResult:
    return train(candles, tiny_config(horizon=1))
