"""`make bench` runs every bench script, on each database the environment offers (bench/run_all.py)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from bench.run_all import plan

ROOT = Path(__file__).resolve().parents[2]
SERVERS = {
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/postgres",
    "REDIS_URL": "redis://127.0.0.1:6379/5",
}


def _scripts(steps) -> set[str]:
    return {Path(step.command[1]).name for step in steps if step.command}


def test_make_bench_runs_the_runner():
    target = re.search(r"^bench:.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert target is not None
    assert "bench/run_all.py" in target.group(1)
    assert (ROOT / "bench" / "run_all.py").is_file()


def test_with_both_servers_every_bench_script_runs_and_each_writes_its_own_json(tmp_path):
    steps = plan({"PATH": "/usr/bin", **SERVERS}, quick=False, out=tmp_path)

    on_disk = {path.name for path in (ROOT / "bench").glob("bench_*.py")}
    assert _scripts(steps) == on_disk
    assert all(step.command is not None for step in steps)
    json_files = [step.command[step.command.index("--json") + 1] for step in steps]
    assert len(set(json_files)) == len(steps)
    assert all(Path(name).parent == tmp_path for name in json_files)
    assert all(step.command[0] == sys.executable for step in steps)


def test_sqlite_runs_never_see_the_postgresql_url(tmp_path):
    steps = {step.label: step for step in plan({**SERVERS}, quick=False, out=tmp_path)}

    assert "DATABASE_URL" not in steps["import (sqlite)"].env
    assert "DATABASE_URL" not in steps["api (sqlite)"].env
    assert "DATABASE_URL" not in steps["training"].env
    assert steps["api (postgresql)"].env["DATABASE_URL"] == SERVERS["DATABASE_URL"]
    assert steps["fleet (postgresql)"].env["REDIS_URL"] == SERVERS["REDIS_URL"]


def test_without_servers_the_postgresql_runs_are_skipped_and_say_why(tmp_path):
    steps = {step.label: step for step in plan({"PATH": "/usr/bin"}, quick=False, out=tmp_path)}

    assert steps["import (sqlite)"].command is not None
    assert steps["training"].command is not None
    assert steps["import (postgresql)"].command is None
    assert steps["import (postgresql)"].reason == "needs DATABASE_URL"
    assert steps["fleet (postgresql)"].reason == "needs DATABASE_URL and REDIS_URL"


def test_quick_asks_every_script_for_its_smoke_size(tmp_path):
    full = plan(SERVERS, quick=False, out=tmp_path)
    quick = plan(SERVERS, quick=True, out=tmp_path)

    assert [step.label for step in quick] == [step.label for step in full]
    assert all(q.command != f.command for q, f in zip(quick, full, strict=True))
    assert "--quick" in next(step.command for step in quick if step.label == "training")


@pytest.mark.timeout(900)
def test_every_bench_runs_at_smoke_size_on_both_databases(require_postgres, require_redis, tmp_path):
    """The scripts behind docs/BENCHMARKS.md keep working: each one, end to end, at smoke size."""
    # DATABASE_URL names the server: each bench makes its own mur_*_bench database there.
    env = {
        **os.environ,
        # The fleet's workers and tasks get a Redis database of their own, not the suite's.
        "REDIS_URL": urlsplit(require_redis)._replace(path="/14").geturl(),
    }
    done = subprocess.run(
        [sys.executable, "bench/run_all.py", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=840,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]

    results = {path.stem: json.loads(path.read_text()) for path in tmp_path.glob("*.json")}
    assert set(results) == {
        "import-sqlite",
        "import-postgresql",
        "training",
        "api-sqlite",
        "api-postgresql",
        "gaps-sqlite",
        "gaps-postgresql",
        "fleet-postgresql",
    }
    assert results["import-sqlite"]["database"].startswith("SQLite")
    assert results["import-postgresql"]["database"].startswith("PostgreSQL")
    assert all(results[name]["rows"] == 8749 for name in ("import-sqlite", "import-postgresql"))
    assert results["training"]["quick"] is True
    assert all(run["valid"] for run in results["training"]["ours"].values())
    for name in ("api-sqlite", "api-postgresql"):
        api = results[name]
        assert api["quota"]["exact"] is True
        assert all(r["non_2xx"] == 0 for rounds in api["rounds_detail"].values() for r in rounds)
        assert api["workers"] and not any(w["torch_mapped"] for w in api["workers"])
    assert results["api-postgresql"]["database"].startswith("PostgreSQL")
    for name in ("gaps-sqlite", "gaps-postgresql"):
        assert [row["candles"] for row in results[name]["rows"]] == [8760] and results[name]["quick"] is True
    assert results["fleet-postgresql"]["statuses"]["failed"] == 0
    assert sum(results["fleet-postgresql"]["statuses"].values()) == 2


def test_the_history_exploration_still_runs_and_scores_coverage(tmp_path):
    # bench/explore_min_history.py backs the history rule in forecasting/ml/windows.py.
    out = tmp_path / "rows.json"
    result = subprocess.run(
        [sys.executable, "bench/explore_min_history.py", "--lengths", "1900", "--offsets", "1", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    [row] = json.loads(out.read_text())
    assert row["candles"] == 1900 and row["start"] < "2022-01-30"
    assert 0 <= row["mean_abs_coverage_error"] <= 0.8 and row["calibration_per_horizon_hour"] > 7
