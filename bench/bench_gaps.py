"""What finding an asset's unconfirmed holes costs a sync, on a year and on 11 years of candles.

Usage:
    .venv/bin/python bench/bench_gaps.py [--runs 7] [--quick] [--json out.json]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/bench_gaps.py

SQLite (a new file in a temporary folder) by default; with DATABASE_URL, the
PostgreSQL database `mur_gaps_bench` on that server, dropped and created first.
For 8,760 and 100,000 hourly candles with a 3-hour hole every 500 hours (half
of them confirmed outages), it times, median of the runs, warm cache:
  python  every open time read into Python and compared (asset_gaps on SQLite)
  lag     the database's LAG returns only the gaps (asset_gaps on PostgreSQL)
  holes   asset_unconfirmed_gaps with half the holes unconfirmed: the count
          does not add up, so lag, then the confirmed outages taken off
  settled asset_unconfirmed_gaps once every hole is confirmed (every hourly
          sync after the first ones): count and outages only, no lag
--quick: the year only, one run (a check that the script works).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import fresh_postgres, machine  # noqa: E402

HOUR = timedelta(hours=1)
START = datetime(2012, 1, 1, tzinfo=UTC)
SIZES = (8_760, 100_000)
HOLE_EVERY = 500
BENCH_DB = "mur_gaps_bench"


def _setup() -> str:
    os.environ.setdefault("SECRET_KEY", "bench-only")
    os.environ["VAR_DIR"] = tempfile.mkdtemp(prefix="mur-gaps-bench-")
    if os.environ.get("DATABASE_URL"):
        os.environ["DATABASE_URL"], engine = fresh_postgres(os.environ["DATABASE_URL"], name=BENCH_DB)
    else:
        os.environ["DATABASE_URL"] = f"sqlite:///{os.environ['VAR_DIR']}/bench.sqlite3"
        engine = "SQLite"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "makeusrich.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return engine


def _fill(symbol: str, count: int):
    from markets.models import Asset, Candle, ConfirmedOutage

    asset = Asset.objects.create(symbol=symbol, base=symbol[:-4], quote="USDT")
    price = Decimal("100")
    candles, when, stored = [], START, 0
    holes = 0
    while stored < count:
        if stored and stored % HOLE_EVERY == 0 and (not candles or candles[-1].open_time == when - HOUR):
            if holes % 2 == 0:  # half the holes are outages already confirmed
                ConfirmedOutage.objects.create(
                    asset=asset, source="binance", first_hour=when, last_hour=when + 2 * HOUR
                )
            holes += 1
            when += 3 * HOUR
        candles.append(
            Candle(
                asset=asset,
                open_time=when,
                close_time=when + HOUR - timedelta(milliseconds=1),
                open=price,
                high=price,
                low=price,
                close=price,
                volume=price,
                quote_volume=price,
                trades=1,
                taker_buy_base_volume=price,
                taker_buy_quote_volume=price,
            )
        )
        stored += 1
        when += HOUR
        if len(candles) == 5000:
            Candle.objects.bulk_create(candles)
            candles = []
    Candle.objects.bulk_create(candles)
    return asset, holes


def _median_ms(call, runs: int) -> tuple[float, object]:
    call()  # warm
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="the year only, one run")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    sizes, runs = (SIZES[:1], 1) if args.quick else (SIZES, args.runs)
    engine = _setup()
    from markets.models import Candle, ConfirmedOutage
    from markets.selectors import asset_unconfirmed_gaps, gaps_by_lag, gaps_by_scan

    print(f"{engine}; {machine()}")
    print(f"{'candles':>8} {'holes':>6} {'python ms':>10} {'lag ms':>8} {'holes ms':>9} {'settled ms':>11}")
    rows = []
    for size in sizes:
        asset, holes = _fill(f"B{size}USDT", size)

        candles = Candle.objects.filter(asset=asset)
        python_ms, old = _median_ms(lambda candles=candles: gaps_by_scan(candles), runs)
        lag_ms, new = _median_ms(lambda candles=candles: gaps_by_lag(candles), runs)
        holes_ms, open_holes = _median_ms(
            lambda asset=asset: asset_unconfirmed_gaps(asset=asset, source="binance"), runs
        )
        assert old == new and len(new) == holes, (len(old), len(new), holes)
        assert len(open_holes) == holes // 2, len(open_holes)
        ConfirmedOutage.objects.bulk_create(
            ConfirmedOutage(asset=asset, source="binance", first_hour=first, last_hour=last)
            for first, last in open_holes
        )
        settled_ms, none = _median_ms(
            lambda asset=asset: asset_unconfirmed_gaps(asset=asset, source="binance"), runs
        )
        assert none == [], none
        print(f"{size:>8} {holes:>6} {python_ms:>10.1f} {lag_ms:>8.1f} {holes_ms:>9.1f} {settled_ms:>11.1f}")
        rows.append(
            {
                "candles": size,
                "holes": holes,
                "scan_ms": python_ms,
                "lag_ms": lag_ms,
                "unconfirmed_ms": holes_ms,
                "settled_ms": settled_ms,
            }
        )
    if args.json:
        summary = {"database": engine, "machine": machine(), "runs": runs, "quick": args.quick, "rows": rows}
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
