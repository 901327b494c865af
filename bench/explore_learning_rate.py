"""Which learning rate lets the network learn what can be learned: the design exploration behind
`TrainingConfig.learning_rate` (not a speed benchmark).

Usage:
    .venv/bin/python bench/explore_learning_rate.py                     # 3 rates x 3 series, ~8 min
    .venv/bin/python bench/explore_learning_rate.py --rates 1e-4,1e-3 --series stable [--json out.json]

Bitcoin's hourly closes are close to a random walk, so the bundled year alone cannot tell a
network that learns nothing from one that would learn a real pattern: both end at persistence
after the shrinkage. So the pipeline (default hyperparameters but the rate, H = 24) is trained
on three series, and only their validation windows are read:
- `btc`: the bundled year (its test split is not read);
- `ar1`: a synthetic mean-reverting log price (AR(1), phi = 0.97, 1 % hourly noise), whose
  best possible RMSE skill over persistence is about 0.007 at 1 hour and 0.14 at 24 hours;
- `stable`: a synthetic stablecoin, ticks of 0.0001 around 1.0000 drawn independently each
  hour, whose best forecast is 1.0000 and whose best possible skill is 1 - 1/sqrt(2) = 0.29.
The synthetic series use the bundled year's timestamps and volumes. Prints one JSON line per
run: validation skill (mean and at 1, 6, 24 hours), coverage of the 80 % interval, the mean
shrink factor and the epoch whose weights were kept.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_training import load_candles  # noqa: E402
from forecasting.ml.config import TrainingConfig  # noqa: E402
from forecasting.ml.pipeline import train  # noqa: E402


def synthetic(btc: pd.DataFrame, kind: str, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = len(btc)
    if kind == "ar1":
        log_price = np.zeros(n)
        for t in range(1, n):
            log_price[t] = 0.97 * log_price[t - 1] + rng.normal(0, 0.01)
        close = 100 * np.exp(log_price)
        wick = np.abs(rng.normal(0, 0.001, n))
    else:
        close = 1 + rng.choice([-1, 0, 0, 0, 0, 1], n) / 10000
        wick = np.zeros(n)
    series = btc.copy()
    opened = np.r_[close[0], close[:-1]]
    series["open"], series["close"] = opened, close
    series["high"] = np.maximum(opened, close) * (1 + wick)
    series["low"] = np.minimum(opened, close) * (1 - wick)
    return series


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rates", default="1e-4,3e-4,1e-3", help="learning rates to try")
    parser.add_argument("--series", default="btc,ar1,stable", help="of btc, ar1, stable")
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    args = parser.parse_args(argv)

    btc = load_candles()
    rows = []
    for rate in [float(r) for r in args.rates.split(",")]:
        for name in args.series.split(","):
            candles = btc if name == "btc" else synthetic(btc, name)
            config = TrainingConfig.from_overrides({"learning_rate": rate, "horizon": 24})
            started = time.perf_counter()
            result = train(candles, config)
            validation = result.metrics["validation"]
            skill = validation["skill_rmse"]
            row = {
                "learning_rate": rate,
                "series": name,
                "seconds": round(time.perf_counter() - started, 1),
                "best_epoch": result.preprocessing["training"]["best_epoch"],
                "validation_skill_mean": round(float(np.mean(skill)), 4),
                "validation_skill_1_6_24h": [round(skill[i], 4) for i in (0, 5, 23)],
                "validation_coverage_mean": round(float(np.mean(validation["coverage_80"])), 3),
                "shrink_mean": round(float(np.mean(result.preprocessing["target"]["shrink"])), 3),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
