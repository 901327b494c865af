"""Small synthetic candle frames for the ML unit tests (fast, deterministic)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from forecasting.ml.config import TrainingConfig

GAPS = (50, 51, 300)  # rows missing from the shared synthetic series: two outages
START = pd.Timestamp("2024-01-01", tz="UTC")
# A tiny network and short windows: seconds per training, same code paths as the defaults.
TINY = dict(
    window=16,
    horizon=4,
    hidden_size=8,
    num_layers=2,
    batch_size=32,
    max_epochs=3,
    epoch_windows=0,
    warm_max_epochs=2,
    warm_windows=64,
    volatility_hours=8,
)


def tiny_config(**overrides) -> TrainingConfig:
    return TrainingConfig.from_overrides({**TINY, **overrides})


def synthetic_candles(
    count: int = 500, *, seed: int = 0, skip=(), start: pd.Timestamp = START
) -> pd.DataFrame:
    """`count` hours of a random walk around 100 (as the integrator's frame), minus rows `skip`."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, count)))
    open_ = np.concatenate([[close[0]], close[:-1]])
    frame = pd.DataFrame(
        {
            "open_time": pd.date_range(start, periods=count, freq="h"),
            "open": open_,
            "high": np.maximum(open_, close) * 1.002,
            "low": np.minimum(open_, close) * 0.998,
            "close": close,
            "volume": np.full(count, 10.0),
            "quote_volume": np.full(count, 1000.0),
            "trades": np.full(count, 100.0),
            "taker_buy_base_volume": np.full(count, 5.0),
            "taker_buy_quote_volume": np.full(count, 500.0),
        }
    )
    return frame.drop(index=list(skip)).reset_index(drop=True)
