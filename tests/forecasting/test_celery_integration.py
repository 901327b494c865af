"""Real Celery worker and beat processes on Redis, sharing the test's PostgreSQL database."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from forecasting.models import ModelVersion
from forecasting.tasks import REDELIVERED
from makeusrich.celery import app as celery_app
from makeusrich.schedules import schedules_ensure
from markets.models import Asset
from tests.processes import process_start, process_stop

from .conftest import TINY, candles_create

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return process_start(
        [sys.executable, "-m", "celery", "-A", "makeusrich", *args],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )


@contextlib.contextmanager
def _worker(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    name = f"test-{uuid.uuid4().hex[:8]}@%h"
    process = _start(["worker", "-c", "2", "-l", "info", "-n", name, "--without-gossip"], env, log)
    try:  # stopped even when it starts too slowly: it would take later tests' tasks, on their database
        deadline = time.monotonic() + 60
        while "ready." not in log.read_text():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "worker did not start:\n" + log.read_text()
            time.sleep(0.5)
        yield process
    finally:
        process_stop(process)


@pytest.fixture
def worker(require_postgres, require_redis, process_env, tmp_path) -> Iterator[subprocess.Popen]:
    celery_app.control.purge()  # messages left by other tests must not run here
    with _worker(process_env, tmp_path / "worker.log") as process:
        yield process


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(1)


def _tiny_assets() -> tuple[Asset, Asset, Asset]:
    assets = []
    for symbol, active in (("ETHUSDT", True), ("SOLUSDT", True), ("ADAUSDT", False)):
        asset = Asset.objects.create(
            symbol=symbol, base=symbol[:3], quote="USDT", is_active=active, hyperparameters=TINY
        )
        candles_create(asset, 480, seed=len(assets))  # the tiny hyperparameters need 439 hours
        assets.append(asset)
    return tuple(assets)


def test_beats_retrain_schedule_retrains_every_active_asset_through_the_worker(worker, process_env, tmp_path):
    eth, sol, ada = _tiny_assets()
    # The data migration made them; transactional tests flush tables, so make them again.
    schedules_ensure(PeriodicTask, CrontabSchedule)
    # What an admin does in the admin: run the hourly retrain now (once) instead of at :05.
    task = PeriodicTask.objects.get(name="retrain-warm-hourly")
    assert json.loads(task.args) == ["warm"]
    task.crontab = None
    task.interval = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.SECONDS)
    task.one_off = True
    task.save()
    beat = _start(["beat", "-l", "info", "--pidfile="], process_env, tmp_path / "beat.log")
    try:
        _wait_for(
            lambda: ModelVersion.objects.filter(status="active").count() == 2,
            timeout=240,
            what="both active assets to get an active model",
        )
    finally:
        process_stop(beat)
    assert set(ModelVersion.objects.filter(status="active").values_list("asset__symbol", flat=True)) == {
        "ETHUSDT",
        "SOLUSDT",
    }
    assert not ModelVersion.objects.filter(asset=ada).exists()
    assert "retrain-warm-hourly" in (tmp_path / "beat.log").read_text()
    for asset in (eth, sol):
        assert asset.forecasts.count() == 1  # the new active model forecast right away


def test_two_concurrent_trainings_of_one_asset_never_overlap(worker):
    eth, _, _ = _tiny_assets()
    results = [
        celery_app.send_task("forecasting.tasks.retrain_asset", args=["ETHUSDT", "full"]) for _ in range(2)
    ]
    outcomes = [result.get(timeout=240) for result in results]

    statuses = sorted(outcome["status"] for outcome in outcomes)
    assert statuses == ["active", "skipped"], outcomes
    assert "already being trained" in next(o["reason"] for o in outcomes if o["status"] == "skipped")
    assert ModelVersion.objects.filter(asset=eth).count() == 1


def test_the_hourly_loop_sync_forecast_and_scoring_runs_through_the_worker(worker, settings):
    """Replay reveals the next real hour; the worker stores it, scores the forecast, forecasts again."""
    from forecasting import services
    from forecasting.models import Forecast
    from markets.services import asset_sync

    settings.MARKET_DATA_SOURCE = "replay"
    btc = Asset.objects.create(symbol="BTCUSDT", base="BTC", quote="USDT", hyperparameters=TINY)
    assert asset_sync(asset=btc).inserted == 7874  # the replay's backfill: 90 % of the bundled year
    assert services.model_version_train(asset=btc).status == "active"
    first = services.forecast_refresh(asset=btc)

    celery_app.send_task("markets.tasks.sync_asset", args=["BTCUSDT"])

    _wait_for(lambda: Forecast.objects.filter(asset=btc).count() == 2, timeout=60, what="the next forecast")
    first.refresh_from_db()
    assert len(first.scores) == 1 and first.scores[0]["actual"] is not None
    newest = Forecast.objects.filter(asset=btc).order_by("-base_time").first()
    assert newest.base_time == first.base_time + dt.timedelta(hours=1)


def test_a_retrain_whose_worker_was_killed_is_not_run_again_when_redelivered(
    require_postgres, require_redis, process_env, tmp_path
):
    """kill -9 of a whole worker mid-training: the message was never acknowledged, and Redis hands
    it out again (marked redelivered) once its visibility timeout has passed. kombu's own restore
    runs here with a timeout of 0 instead of waiting 2 hours."""
    eth, _, _ = _tiny_assets()
    Asset.objects.filter(pk=eth.pk).update(hyperparameters={**TINY, "max_epochs": 1000, "patience": 1000})
    celery_app.control.purge()
    with _worker(process_env, tmp_path / "worker.log") as killed:
        celery_app.send_task("forecasting.tasks.retrain_asset", args=["ETHUSDT", "full"])
        _wait_for(
            lambda: ModelVersion.objects.filter(asset=eth, status="training").exists(),
            timeout=60,
            what="the training to start",
        )
        process_stop(killed, sig=signal.SIGKILL)  # the worker and its pool: no ack, no goodbye
    with celery_app.connection_for_read(transport_options={"visibility_timeout": 0}) as broker:
        broker.default_channel.qos.restore_visible()
        queued = broker.default_channel.client.lrange(celery_app.conf.task_default_queue, 0, -1)
    assert [json.loads(message)["headers"]["redelivered"] for message in queued] == [True]

    with _worker(process_env, tmp_path / "worker2.log"):
        _wait_for(
            lambda: "not run again" in Asset.objects.get(pk=eth.pk).last_train_outcome,
            timeout=60,
            what="the redelivered retrain's outcome",
        )

    assert Asset.objects.get(pk=eth.pk).last_train_outcome == f"full retrain skipped: {REDELIVERED}"
    assert list(ModelVersion.objects.filter(asset=eth).values_list("status", flat=True)) == ["training"]
