"""The forecasting Celery tasks called as plain functions (the worker runs them in test_celery_integration)."""

import datetime as dt
import uuid

import pytest
from django.core.cache import cache
from django.utils import timezone

from forecasting import services, tasks
from forecasting.models import Forecast, ModelVersion
from makeusrich.celery import app
from markets.models import Asset

from .conftest import TINY, candles_create

HOUR = dt.timedelta(hours=1)


@pytest.fixture
def eager():
    saved = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = saved


def test_retrain_asset_trains_promotes_and_forecasts(tiny_asset):
    outcome = tasks.retrain_asset("ethusdt", "full")

    assert outcome["status"] == "active" and outcome["version"] == 1
    assert Forecast.objects.filter(asset=tiny_asset).count() == 1


def test_an_hourly_warm_retrain_with_no_new_candle_is_skipped(tiny_asset):
    tasks.retrain_asset("ETHUSDT", "full")
    outcome = tasks.retrain_asset("ETHUSDT", "warm")
    assert outcome["status"] == "skipped" and "no candle newer" in outcome["reason"]
    assert ModelVersion.objects.count() == 1


def test_retrain_asset_records_what_it_did_on_the_asset(tiny_asset):
    tasks.retrain_asset("ETHUSDT", "full")

    tiny_asset.refresh_from_db()
    assert tiny_asset.last_train_outcome == "full retrain: v1 active: first valid version of this asset"
    assert tiny_asset.last_train_outcome_at is not None


def test_a_skipped_retrain_says_why_on_the_asset(tiny_asset):
    tasks.retrain_asset("ETHUSDT", "full")
    tasks.retrain_asset("ETHUSDT", "warm")
    tiny_asset.refresh_from_db()
    assert tiny_asset.last_train_outcome.startswith("warm retrain skipped: ETHUSDT: no candle newer")

    with services.training_lease(asset=tiny_asset):  # a retrain already running
        tasks.retrain_asset("ETHUSDT", "full")
    tiny_asset.refresh_from_db()
    assert tiny_asset.last_train_outcome.startswith("full retrain skipped: ETHUSDT is already being trained")


def test_a_failed_retrain_says_why_on_the_asset(db):
    short = Asset.objects.create(symbol="SOLUSDT", base="SOL", quote="USDT", hyperparameters=TINY)
    candles_create(short, 60)  # far too short a history for one validation window per step

    assert tasks.retrain_asset("SOLUSDT", "full")["status"] == "failed"

    short.refresh_from_db()
    version = ModelVersion.objects.get(asset=short)
    assert short.last_train_outcome == f"full retrain: v1 failed: {version.reason}"


def test_the_hourly_retrain_skips_an_asset_whose_last_run_had_too_little_data_and_nothing_changed(db):
    short = Asset.objects.create(symbol="SOLUSDT", base="SOL", quote="USDT", hyperparameters=TINY)
    candles_create(short, 96, skip={40})  # 96 hours with a hole: too little gap-free data
    assert tasks.retrain_asset("SOLUSDT", "full")["status"] == "failed"

    outcome = tasks.retrain_asset("SOLUSDT", "warm")  # the hourly run, nothing imported since

    assert outcome["status"] == "skipped"
    assert "v1 failed for too little data" in outcome["reason"] and "no candle" in outcome["reason"]
    assert ModelVersion.objects.filter(asset=short).count() == 1
    short.refresh_from_db()
    assert short.last_train_outcome.startswith("warm retrain skipped: SOLUSDT: v1 failed for too little data")


def test_the_hourly_retrain_of_an_asset_without_candles_is_skipped_and_says_why(db):
    empty = Asset.objects.create(symbol="SOLUSDT", base="SOL", quote="USDT", hyperparameters=TINY)

    for mode in ("warm", "warm", "full"):  # hours go by, then the daily full retrain
        outcome = tasks.retrain_asset("SOLUSDT", mode)
        assert outcome["status"] == "skipped"

    assert not ModelVersion.objects.filter(asset=empty).exists()
    empty.refresh_from_db()
    assert empty.last_train_outcome == (
        "full retrain skipped: SOLUSDT has no candles: nothing to train on; "
        "import them (import_candles) or let the sync fetch them (sync_candles)"
    )


def test_the_first_retrain_after_candles_arrive_for_an_empty_asset_trains(db):
    empty = Asset.objects.create(symbol="SOLUSDT", base="SOL", quote="USDT", hyperparameters=TINY)
    tasks.retrain_asset("SOLUSDT", "warm")
    candles_create(empty, 600)

    assert tasks.retrain_asset("SOLUSDT", "warm")["status"] == "active"


def test_a_retrain_after_too_little_data_tries_again_once_candles_arrive(db):
    short = Asset.objects.create(symbol="SOLUSDT", base="SOL", quote="USDT", hyperparameters=TINY)
    candles_create(short, 96, skip={40})
    tasks.retrain_asset("SOLUSDT", "full")
    candles_create(short, 1, start=dt.datetime(2024, 1, 2, 16, tzinfo=dt.UTC), seed=1)

    assert tasks.retrain_asset("SOLUSDT", "warm")["version"] == 2


def test_a_retrain_that_raises_is_recorded_on_the_asset_too(tiny_asset):
    Asset.objects.filter(pk=tiny_asset.pk).update(hyperparameters={**TINY, "max_epoch": 3})  # past clean()

    with pytest.raises(ValueError):
        tasks.retrain_asset("ETHUSDT", "full")

    tiny_asset.refresh_from_db()
    assert tiny_asset.last_train_outcome.startswith("full retrain raised ValueError: ")
    assert "max_epoch" in tiny_asset.last_train_outcome


def test_a_training_that_killed_its_worker_is_not_redelivered_to_the_next_one():
    assert tasks.retrain_asset.acks_late is True
    assert tasks.retrain_asset.reject_on_worker_lost is False


def _delivered(task_id: str, *, retries: int = 0, redelivered: bool) -> dict:
    """retrain_asset("ETHUSDT", "full") as a worker runs the message `task_id` (attempt `retries`)."""
    tasks.retrain_asset.push_request(id=task_id, retries=retries, delivery_info={"redelivered": redelivered})
    try:
        return tasks.retrain_asset("ETHUSDT", "full")
    finally:
        tasks.retrain_asset.pop_request()


def test_an_attempt_that_started_and_comes_back_redelivered_is_recorded_not_run(tiny_asset):
    task_id = str(uuid.uuid4())
    cache.add(f"retrain-started:{task_id}:0", timezone.now())  # it started, and its worker died

    outcome = _delivered(task_id, redelivered=True)

    assert outcome == {"symbol": "ETHUSDT", "status": "skipped", "reason": tasks.REDELIVERED}
    tiny_asset.refresh_from_db()
    assert tiny_asset.last_train_outcome == f"full retrain skipped: {tasks.REDELIVERED}"
    assert not ModelVersion.objects.exists()


def test_an_attempt_that_finished_but_lost_its_ack_keeps_its_outcome_when_redelivered(tiny_asset):
    task_id = str(uuid.uuid4())
    assert _delivered(task_id, redelivered=False)["status"] == "active"

    assert _delivered(task_id, redelivered=True)["status"] == "skipped"

    tiny_asset.refresh_from_db()
    assert tiny_asset.last_train_outcome.startswith("full retrain: v1 active")
    assert ModelVersion.objects.count() == 1


def test_a_redelivered_message_that_never_started_runs(tiny_asset):
    # A lost worker had only reserved it (e.g. a message restored when the worker stopped).
    assert _delivered(str(uuid.uuid4()), redelivered=True)["status"] == "active"


def test_a_retry_of_a_started_task_runs_even_redelivered(tiny_asset):
    # autoretry_for sends the next attempt with the same id: a worker lost while holding it
    # for its countdown never started that attempt.
    task_id = str(uuid.uuid4())
    _delivered(task_id, redelivered=False)
    assert _delivered(task_id, retries=1, redelivered=True)["status"] != "skipped"


def test_retrain_asset_of_an_unknown_symbol_does_nothing(db):
    assert tasks.retrain_asset("NOPEUSDT") == {"symbol": "NOPEUSDT", "status": "unknown asset"}


def test_retrain_active_assets_fans_out_to_active_assets_only(tiny_asset, eager):
    idle = Asset.objects.create(
        symbol="ADAUSDT", base="ADA", quote="USDT", is_active=False, hyperparameters=TINY
    )
    candles_create(idle, 600)

    assert tasks.retrain_active_assets("warm") == ["ETHUSDT"]
    assert list(ModelVersion.objects.values_list("asset__symbol", "status")) == [("ETHUSDT", "active")]


def test_refresh_forecasts_reports_a_missing_model(tiny_asset):
    assert tasks.refresh_forecasts("ETHUSDT") == {"symbol": "ETHUSDT", "status": "no active model"}


def test_refresh_forecasts_says_why_when_the_active_artifact_is_bad(tiny_asset):
    from django.core.files.storage import storages

    from forecasting.serving import sessions_clear

    tasks.retrain_asset("ETHUSDT", "full")
    active = ModelVersion.objects.get(status="active")
    Forecast.objects.all().delete()
    with open(storages["artifacts"].path(active.artifact_name), "ab") as handle:
        handle.write(b"tampered")
    sessions_clear()

    result = tasks.refresh_forecasts("ETHUSDT")

    assert result["status"] == "no forecast"
    assert result["reason"].startswith("no forecast: the active version's artifact is bad (")
    assert "activate another version" in result["reason"]
    assert not Forecast.objects.exists()


def test_refresh_forecasts_says_why_when_onnxruntime_cannot_load_the_active_artifact(tiny_asset):
    from django.core.files.storage import storages

    from forecasting.artifacts import sha256_hex
    from forecasting.serving import sessions_clear
    from markets.models import MODEL_UNLOADABLE_PREFIX, Asset

    tasks.retrain_asset("ETHUSDT", "full")
    active = ModelVersion.objects.get(status="active")
    Forecast.objects.all().delete()
    garbage = b"not an onnx model"  # its hash recorded: only onnxruntime can tell
    with open(storages["artifacts"].path(active.artifact_name), "wb") as handle:
        handle.write(garbage)
    ModelVersion.objects.filter(pk=active.pk).update(artifact_sha256=sha256_hex(garbage))
    sessions_clear()

    result = tasks.refresh_forecasts("ETHUSDT")

    assert result["status"] == "no forecast"
    assert "cannot be loaded by onnxruntime" in result["reason"]
    problem = Asset.objects.get(symbol="ETHUSDT").forecast_problem
    assert problem.startswith(MODEL_UNLOADABLE_PREFIX) and "cannot be loaded by onnxruntime" in problem
    assert not Forecast.objects.exists()


def test_refresh_forecasts_stores_the_active_models_forecast(tiny_asset):
    tasks.retrain_asset("ETHUSDT", "full")
    Forecast.objects.all().delete()
    outcome = tasks.refresh_forecasts("ETHUSDT")
    assert outcome["status"] == "ok" and Forecast.objects.count() == 1


def test_refresh_forecasts_scores_again_the_hours_a_sync_filled(tiny_asset):
    tasks.retrain_asset("ETHUSDT", "full")
    forecast = Forecast.objects.get()
    candles_create(tiny_asset, 6, start=forecast.base_time + HOUR, seed=5, skip={2})
    tasks.refresh_forecasts("ETHUSDT")
    forecast.refresh_from_db()
    assert forecast.fully_scored and forecast.scores[2]["actual"] is None
    filled = forecast.base_time + 3 * HOUR
    candles_create(tiny_asset, 1, start=filled, seed=9)

    tasks.refresh_forecasts("ETHUSDT", rescore_from=filled.isoformat(), rescore_to=filled.isoformat())

    forecast.refresh_from_db()
    assert forecast.fully_scored
    assert forecast.scores[2]["actual"] == pytest.approx(
        float(tiny_asset.candles.get(open_time=filled).close)
    )


def test_a_retrain_after_a_recent_outage_promotes_and_reports_why_there_is_no_forecast(asset_after_outage):
    outcome = tasks.retrain_asset("ETHUSDT", "full")

    assert outcome["status"] == "active"
    assert outcome["forecast"].startswith("no forecast yet:") and "miss 12 candles" in outcome["forecast"]
    assert not Forecast.objects.exists()
    refreshed = tasks.refresh_forecasts("ETHUSDT")
    assert refreshed["status"] == "no forecast" and "miss 12 candles" in refreshed["reason"]


def test_the_retention_tasks_run_over_every_asset(tiny_asset, settings):
    settings.PROMOTION_TOLERANCE = 10.0
    for _ in range(3):
        tasks.retrain_asset("ETHUSDT", "full")
    settings.MODEL_RETENTION = 1
    assert tasks.prune_model_versions() == 1
    assert ModelVersion.objects.filter(status="retired").count() == 1
    assert tasks.prune_forecasts() == 0  # none is old enough
