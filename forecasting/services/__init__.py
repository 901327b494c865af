"""Writes of the forecasting app: training runs, the model registry, forecasts and their scores.

Importing this package stays torch-free: training imports the pipeline only
when it runs.
"""

from forecasting.services.forecasts import (
    HOUR,
    forecast_refresh,
    forecast_refresh_if_possible,
    forecasts_prune,
    forecasts_rescore,
    forecasts_score,
)
from forecasting.services.outcomes import SKIPPED, asset_train_outcome_record
from forecasting.services.registry import model_version_activate, model_version_unpin, model_versions_prune
from forecasting.services.training import (
    NoCandles,
    NothingNew,
    StillTooLittleData,
    TrainingLocked,
    model_version_train,
    training_config_for,
    training_lease,
)

__all__ = [
    "HOUR",
    "NoCandles",
    "NothingNew",
    "SKIPPED",
    "StillTooLittleData",
    "TrainingLocked",
    "asset_train_outcome_record",
    "forecast_refresh",
    "forecast_refresh_if_possible",
    "forecasts_prune",
    "forecasts_rescore",
    "forecasts_score",
    "model_version_activate",
    "model_version_unpin",
    "model_version_train",
    "model_versions_prune",
    "training_config_for",
    "training_lease",
]
