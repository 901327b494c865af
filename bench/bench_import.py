"""How long `manage.py import_candles` takes for the bundled year, into a fresh database.

Usage:
    .venv/bin/python bench/bench_import.py [--runs 5] [--json out.json]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/bench_import.py

SQLite (a new file in a temporary folder) by default; with DATABASE_URL, the
PostgreSQL database `mur_import_bench` on that server, dropped and created
again before every run. Each run migrates (not timed), then times the command
as a user runs it: a new process, Django start-up included ("command" column);
the command also reports the time of the import itself (read, check every
row, store in one transaction: "import" column). Prints one row per run and the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, fresh_postgres, load_average, machine  # noqa: E402

BUNDLED = ROOT / "markets" / "data" / "btcusdt_1h_2021-03-06_2022-03-06.csv.gz"
ROWS = 8749
BENCH_DB = "mur_import_bench"


def _manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )


def one_run(database_url: str | None) -> tuple[float, float]:
    """(command wall seconds, import seconds reported by the command)."""
    with tempfile.TemporaryDirectory(prefix="bench-import-") as var:
        env = {**os.environ, "VAR_DIR": var, "DEBUG": "0", "SECRET_KEY": "bench-only", "LOG_LEVEL": "WARNING"}
        env.pop("DATABASE_URL", None)
        if database_url:
            env["DATABASE_URL"] = fresh_postgres(database_url, name=BENCH_DB)[0]
        _manage(env, "migrate", "-v", "0")
        started = time.perf_counter()
        done = _manage(env, "import_candles", "--symbol", "BTCUSDT", str(BUNDLED))
        wall = time.perf_counter() - started
    match = re.search(r"BTCUSDT \(new asset\): (\d+) inserted, 0 already present, in ([\d.]+) s", done.stdout)
    if match is None or int(match.group(1)) != ROWS:
        sys.exit(f"unexpected import output:\n{done.stdout}")
    return wall, float(match.group(2))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    options = parser.parse_args()

    database_url = os.environ.get("DATABASE_URL") or None
    database = (
        fresh_postgres(database_url, name=BENCH_DB)[1] if database_url else f"SQLite {sqlite3.sqlite_version}"
    )
    print(f"import_candles of the bundled year ({ROWS} candles) into a fresh {database} database")
    print(f"{machine()}, load {load_average()}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"{'run':>4} {'command s':>10} {'import s':>9} {'candles/s':>10}")
    walls, imports = [], []
    for run in range(1, options.runs + 1):
        wall, seconds = one_run(database_url)
        walls.append(wall)
        imports.append(seconds)
        print(f"{run:>4} {wall:>10.2f} {seconds:>9.2f} {ROWS / seconds:>10.0f}")
    wall_median, import_median = statistics.median(walls), statistics.median(imports)
    print(f"{'med':>4} {wall_median:>10.2f} {import_median:>9.2f} {ROWS / import_median:>10.0f}")
    if options.json:
        options.json.write_text(
            json.dumps(
                {
                    "database": database,
                    "cpus": os.cpu_count(),
                    "rows": ROWS,
                    "command_seconds": walls,
                    "import_seconds": imports,
                    "median_command_seconds": wall_median,
                    "median_import_seconds": import_median,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
