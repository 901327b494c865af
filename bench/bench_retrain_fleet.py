"""How many assets two Celery workers keep fresh in one hourly cycle.

Usage (PostgreSQL + Redis, as in production):
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/5 \\
        .venv/bin/python bench/bench_retrain_fleet.py [--assets 12] [--workers 2] [--json out.json]

What it does, in a fresh database `mur_fleet_bench` on DATABASE_URL's server:
1. imports the bundled BTCUSDT year, holds back its newest hour, and trains on
   the rest (full, timed: the first model);
2. creates N-1 more assets holding a copy of the same candles and the same
   active model (rows pointing at the same verified artifact), then gives every
   asset the held-back hour, so each starts the hour like a real fleet: an
   active model and one new candle;
3. starts W Celery worker processes (concurrency 1 each, one torch thread:
   one training per core), sends what beat sends at :05 (the
   `retrain-warm-hourly` task: `retrain_active_assets("warm")`), and times
   until every asset has finished its warm retrain (active or validated).
Prints the per-asset training seconds and how many assets fit in an hour.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, fresh_postgres, load_average, machine  # noqa: E402


def _manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode:
        sys.exit(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def _clone_fleet(count: int) -> list[str]:
    """N-1 copies of BTCUSDT's candles and active version, under other symbols."""
    from forecasting.models import ModelVersion
    from markets.models import Asset, Candle

    btc = Asset.objects.get(symbol="BTCUSDT")
    source = ModelVersion.objects.get(asset=btc, status="active")
    candles = list(Candle.objects.filter(asset=btc))
    symbols = ["BTCUSDT"]
    for i in range(1, count):
        base = f"X{i:02d}"
        asset = Asset.objects.create(symbol=f"{base}USDT", base=base, quote="USDT")
        for candle in candles:
            candle.pk, candle.asset = None, asset
        Candle.objects.bulk_create(candles, batch_size=2000)
        clone = ModelVersion.objects.get(pk=source.pk)
        clone.pk, clone.asset, clone.version = None, asset, 1
        clone.save()
        symbols.append(asset.symbol)
    return symbols


def _wait_ready(log: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while "ready." not in log.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"worker did not start:\n{log.read_text()}")
        time.sleep(0.5)


def _run_hour(app, symbols: list[str], workers: int) -> tuple[float, list]:
    """Send what beat sends at :05 and wait until every asset's warm retrain has finished."""
    from django.db.models import Q

    from forecasting.models import ModelVersion

    print(f"{len(symbols)} assets, {workers} workers: sending retrain_active_assets('warm') as beat does")
    started = time.perf_counter()
    app.send_task("forecasting.tasks.retrain_active_assets", args=["warm"])
    done: list[ModelVersion] = []
    while len(done) < len(symbols):
        time.sleep(0.5)
        # "validated" with no reason yet means the gate is still deciding.
        finished = Q(status__in=["active", "failed"]) | (Q(status="validated") & ~Q(reason=""))
        done = list(ModelVersion.objects.filter(finished, version=2))
        if time.perf_counter() - started > 3600:
            sys.exit("the fleet did not finish within an hour")
    return time.perf_counter() - started, done


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--assets", type=int, default=12)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    options = parser.parse_args()
    if not os.environ.get("DATABASE_URL") or not os.environ.get("REDIS_URL"):
        sys.exit("set DATABASE_URL (PostgreSQL server) and REDIS_URL: the fleet shares them as in production")

    database_url, server = fresh_postgres(os.environ["DATABASE_URL"], name="mur_fleet_bench")
    var = tempfile.mkdtemp(prefix="bench-fleet-")
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "VAR_DIR": var,
        "DEBUG": "0",
        "SECRET_KEY": "bench-only",
        "LOG_LEVEL": "WARNING",
    }
    os.environ.update(env)
    print(f"{machine()}, {server}, load {load_average()}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")

    _manage(env, "migrate", "-v", "0")
    _manage(
        env,
        "import_candles",
        "--activate",
        "--symbol",
        "BTCUSDT",
        "markets/data/btcusdt_1h_2021-03-06_2022-03-06.csv.gz",
    )
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "makeusrich.settings")
    django.setup()
    from makeusrich.celery import app
    from markets.models import Asset, Candle

    # The newest hour is held back: it "arrives" after the models were trained.
    newest = Candle.objects.filter(asset__symbol="BTCUSDT").order_by("-open_time").first()
    newest.delete()
    started = time.perf_counter()
    first = json.loads(_manage(env, "train", "BTCUSDT", "--json"))
    first_wall = time.perf_counter() - started
    print(
        f"first full training of BTCUSDT: {first_wall:.1f} s wall ({first['train_seconds']} s in the pipeline)"
    )

    symbols = _clone_fleet(options.assets)
    for asset in Asset.objects.all():
        newest.pk, newest.asset = None, asset
        newest.save()
    app.control.purge()
    workers = []
    for n in range(options.workers):
        log = Path(var) / f"worker{n}.log"
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "makeusrich",
            "worker",
            "-c",
            "1",
            "-l",
            "info",
            "-n",
            f"fleet{n}@%h",
        ]
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
        workers.append((process, log))
    try:
        for process, log in workers:
            _wait_ready(log, process)
        wall, done = _run_hour(app, symbols, options.workers)
    finally:
        for process, _ in workers:
            process.terminate()
        for process, _ in workers:
            process.wait(timeout=30)

    seconds = [v.train_seconds or 0.0 for v in done]
    statuses = {status: sum(v.status == status for v in done) for status in ("active", "validated", "failed")}
    per_asset = wall / len(symbols)
    print(f"{'assets':>7} {'workers':>7} {'wall s':>8} {'s/asset':>8} {'train s median':>15} {'max':>6}")
    print(
        f"{len(symbols):>7} {options.workers:>7} {wall:>8.1f} {per_asset:>8.2f} "
        f"{statistics.median(seconds):>15.2f} {max(seconds):>6.2f}"
    )
    print(
        f"outcomes: {statuses}; at this rate {options.workers} workers warm-retrain {3600 / per_asset:.0f} assets/hour"
    )
    if options.json:
        options.json.write_text(
            json.dumps(
                {
                    "assets": len(symbols),
                    "workers": options.workers,
                    "wall_seconds": wall,
                    "train_seconds": seconds,
                    "statuses": statuses,
                    "first_full_training_seconds": first_wall,
                    "assets_per_hour": 3600 / per_asset,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
