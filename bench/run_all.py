"""Every benchmark of docs/BENCHMARKS.md, one after the other (`make bench`).

Usage:
    .venv/bin/python bench/run_all.py [--quick] [--list] [--out DIR]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/5 \\
        .venv/bin/python bench/run_all.py

Runs the candle import, the API throughput and the sync's search for holes
on SQLite, and again on PostgreSQL when DATABASE_URL names a server (each
script creates its own `mur_*_bench` database there); the training bench; and the fleet of hourly
retrainings, which needs DATABASE_URL and REDIS_URL as in production (without
them it is skipped, and the run says so). Each script prints its figures and
writes them as JSON to DIR (default var/bench/<UTC time>/). A bench that fails
does not stop the others; the run then exits non-zero and names it.

--quick runs every bench at smoke size (a minute or two in all): a check that
they work, not figures for docs/BENCHMARKS.md. --list prints the plan only.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent


@dataclass(frozen=True)
class Bench:
    name: str
    script: str
    full: tuple[str, ...]
    quick: tuple[str, ...]
    databases: tuple[str, ...]  # "sqlite", "postgresql", or "none" (no database)
    needs_redis: bool = False


BENCHES = (
    Bench("import", "bench_import.py", ("--runs", "5"), ("--runs", "1"), ("sqlite", "postgresql")),
    Bench("training", "bench_training.py", (), ("--quick",), ("none",)),
    Bench(
        "api",
        "bench_api.py",
        ("--duration", "10", "--rounds", "2"),
        ("--duration", "1", "--rounds", "1"),
        ("sqlite", "postgresql"),
    ),
    Bench("gaps", "bench_gaps.py", ("--runs", "7"), ("--quick",), ("sqlite", "postgresql")),
    Bench("fleet", "bench_retrain_fleet.py", ("--assets", "12"), ("--assets", "2"), ("postgresql",), True),
)


@dataclass(frozen=True)
class Step:
    label: str
    command: list[str] | None  # None: skipped, for `reason`
    env: dict[str, str]
    reason: str = ""


def plan(environ: dict[str, str], *, quick: bool, out: Path) -> list[Step]:
    steps = []
    for bench in BENCHES:
        for database in bench.databases:
            label, stem = bench.name, bench.name
            if database != "none":
                label, stem = f"{bench.name} ({database})", f"{bench.name}-{database}"
            env = dict(environ)
            if database in ("sqlite", "none"):
                env.pop("DATABASE_URL", None)
            missing = [
                name
                for name, needed in (
                    ("DATABASE_URL", database == "postgresql"),
                    ("REDIS_URL", bench.needs_redis),
                )
                if needed and not environ.get(name)
            ]
            if missing:
                steps.append(Step(label, None, env, f"needs {' and '.join(missing)}"))
                continue
            json_file = out / f"{stem}.json"
            args = bench.quick if quick else bench.full
            command = [sys.executable, str(BENCH / bench.script), *args, "--json", str(json_file)]
            steps.append(Step(label, command, env))
    return steps


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smoke sizes: check the benches run")
    parser.add_argument("--list", action="store_true", help="print the plan and stop")
    parser.add_argument("--out", type=Path, help="folder for the JSON results (default var/bench/<time>/)")
    options = parser.parse_args()
    out = options.out or ROOT / "var" / "bench" / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}"

    steps = plan(dict(os.environ), quick=options.quick, out=out)
    for step in steps:
        print(f"{step.label}: " + (" ".join(step.command) if step.command else f"skipped, {step.reason}"))
    if options.list:
        return 0
    out.mkdir(parents=True, exist_ok=True)
    failed = []
    for step in steps:
        if step.command is None:
            continue
        print(f"\n=== {step.label}", flush=True)
        started = time.monotonic()
        if subprocess.run(step.command, cwd=ROOT, env=step.env).returncode != 0:
            failed.append(step.label)
        print(f"=== {step.label}: {time.monotonic() - started:.0f} s", flush=True)
    print(f"\nJSON results in {out}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
