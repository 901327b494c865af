"""How much history calibrated intervals need: the design exploration behind
`VALIDATION_WINDOWS_PER_HORIZON_HOUR` in forecasting/ml/windows.py (not a speed benchmark).

Usage:
    .venv/bin/python bench/explore_min_history.py                         # 5 lengths x 4, ~3 min
    .venv/bin/python bench/explore_min_history.py --lengths 1500 --offsets 1 [--json out.json]

Trains the whole pipeline (default hyperparameters) on sub-series of the bundled year that
end before 2022-01-30, so the product's own test period (from 2022-01-31) is never read.
For each length, `--offsets` sub-series spread over that period; each is scored on its own
last 10 %. The history rules (calibration and gate windows) are lifted for the run so that
short series can be measured. Prints, per sub-series, the windows per horizon hour its
intervals were calibrated on (every validation window before the held-out gate part, the
calibration part since) and the mean |coverage - 0.80| over the horizon steps of its test split.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_training import load_candles  # noqa: E402
from forecasting.ml import windows  # noqa: E402
from forecasting.ml.config import TrainingConfig  # noqa: E402
from forecasting.ml.features import InsufficientDataError  # noqa: E402
from forecasting.ml.pipeline import train  # noqa: E402

PRE_TEST_END = "2022-01-30"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lengths", default="560,800,1100,1500,2200", help="candles per sub-series")
    parser.add_argument("--offsets", type=int, default=4, help="sub-series per length")
    parser.add_argument("--json", type=Path, help="also write the rows there")
    args = parser.parse_args(argv)

    candles = load_candles()
    candles = candles[candles["open_time"] < PRE_TEST_END].reset_index(drop=True)
    windows.VALIDATION_WINDOWS_PER_HORIZON_HOUR = 0  # measure below the rule, too
    windows.min_gate_windows = lambda horizon: 1  # and below the gate part's
    config = TrainingConfig.from_overrides({})
    rows = []
    for length in (int(value) for value in args.lengths.split(",")):
        for k in range(args.offsets):
            end = len(candles) - k * (len(candles) - length) // max(args.offsets - 1, 1)
            part = candles.iloc[end - length : end].reset_index(drop=True)
            row: dict = {"candles": length, "start": str(part["open_time"].iloc[0].date())}
            try:
                result = train(part, config)
            except InsufficientDataError as exc:
                row["error"] = str(exc)
            else:
                coverage = np.array(result.metrics["coverage_80"], dtype=float)
                calibration = result.preprocessing["training"]["calibration_windows"]
                row["calibration_per_horizon_hour"] = round(calibration / config.horizon, 1)
                row["mean_abs_coverage_error"] = round(float(np.mean(np.abs(coverage - 0.8))), 3)
                row["coverage_min"] = round(float(coverage.min()), 3)
            print(json.dumps(row), flush=True)
            rows.append(row)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
