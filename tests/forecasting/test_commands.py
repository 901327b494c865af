import datetime as dt
import json
from io import StringIO

import pytest
from celery.signals import before_task_publish
from django.core.management import CommandError, call_command

from forecasting.management.commands.forecast import price_text
from forecasting.management.commands.train import metrics_table
from forecasting.ml.evaluation import METRIC_KEYS as EVALUATION_METRIC_KEYS
from forecasting.models import Forecast, ModelVersion
from makeusrich.formats import api_float
from markets.models import Asset
from tests.fakes import FakeBinance

from .conftest import START, TINY, candles_create

HOUR = dt.timedelta(hours=1)

METRIC_KEYS = {"horizon", *EVALUATION_METRIC_KEYS}
# DESIGN.md's `train --json` object, with or without a version.
TRAIN_JSON_KEYS = {
    "symbol",
    "version",
    "status",
    "reason",
    "train_seconds",
    "epochs",
    "best_epoch",
    "warm_start",
    "data",
    "metrics",
}
# The `forecast --json` object, with or without a forecast ("error" is null or says why).
FORECAST_JSON_KEYS = {
    "symbol",
    "model_version",
    "generated_at",
    "last_candle_time",
    "last_close",
    "horizon_hours",
    "points",
    "stale",
    "stale_reason",
    "error",
}


def _run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.fixture
def bundled_btc(db, settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "artifacts": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "artifacts")},
        },
    }
    _run("import_candles", "--symbol", "BTCUSDT", str(settings.BUNDLED_DATA_FILE))
    asset = Asset.objects.get(symbol="BTCUSDT")
    # The real year, a small network: this is about the command's contract, not accuracy.
    asset.hyperparameters = {**TINY, "horizon": 24}
    asset.save()
    return asset


def test_train_json_on_the_bundled_year_prints_the_design_object(bundled_btc):
    body = json.loads(_run("train", "btcusdt", "--json", "--epochs", "1"))

    assert set(body) == TRAIN_JSON_KEYS
    assert body["symbol"] == "BTCUSDT" and body["version"] == 1 and body["status"] == "active"
    assert body["epochs"] == 1 and body["warm_start"] is False and body["train_seconds"] > 0
    assert body["best_epoch"] == 1  # the epoch whose weights are kept (early stopping)
    assert body["data"] == {"first": "2021-03-06T17:00:00Z", "last": "2022-03-06T16:00:00Z", "candles": 8749}
    metrics = body["metrics"]
    assert METRIC_KEYS <= set(metrics) and metrics["horizon"] == 24
    for key in METRIC_KEYS - {"horizon"}:
        assert len(metrics[key]) == 24, key
    for rmse, persistence, skill in zip(
        metrics["rmse"], metrics["persistence_rmse"], metrics["skill_rmse"], strict=True
    ):
        assert skill == pytest.approx(1 - rmse / persistence, abs=1e-6)
    version = ModelVersion.objects.get()
    assert version.status == "active" and version.artifact_sha256


def test_forecast_prints_24_points_with_intervals(bundled_btc):
    _run("train", "BTCUSDT", "--json", "--epochs", "1")
    body = json.loads(_run("forecast", "BTCUSDT", "--json"))

    assert set(body) == FORECAST_JSON_KEYS and body["error"] is None
    assert body["symbol"] == "BTCUSDT" and body["horizon_hours"] == 24
    assert body["last_candle_time"] == "2022-03-06T16:00:00Z"
    assert len(body["points"]) == 24
    assert body["points"][0]["time"] == "2022-03-06T17:00:00Z"
    assert all(p["lower"] <= p["close"] <= p["upper"] for p in body["points"])
    # Floats as the API writes them (12 significant digits), not the float32 decode's noise.
    values = [p[key] for p in body["points"] for key in ("close", "lower", "upper")]
    assert values == [api_float(v) for v in values]
    assert Forecast.objects.count() == 1
    # Imported, never synced: as the API, the command says the forecast is not current.
    assert body["stale"] is True and "market data has never been synced" in body["stale_reason"]
    assert "Stale: market data has never been synced" in _run("forecast", "BTCUSDT")

    text = _run("forecast", "BTCUSDT")
    assert "80 % interval" in text and text.count("2022-03-0") == 25


def test_train_warm_prints_a_table_next_to_persistence(tiny_asset):
    _run("train", "ETHUSDT")
    candles_create(tiny_asset, 2, start=START + 600 * HOUR, seed=9)  # a new hour arrived
    text = _run("train", "ETHUSDT", "--warm")
    assert "ETHUSDT v2 (warm)" in text
    assert "persist.RMSE" in text and "skill" in text


def test_train_warm_without_new_candles_says_there_is_nothing_to_do(tiny_asset):
    _run("train", "ETHUSDT")
    with pytest.raises(CommandError, match="no candle newer than the active version's data"):
        _run("train", "ETHUSDT", "--warm")
    assert ModelVersion.objects.count() == 1


def test_train_refuses_an_unknown_symbol_and_changes_nothing(db):
    with pytest.raises(CommandError, match="unknown asset 'DOGEUSDT'"):
        _run("train", "DOGEUSDT")
    assert not ModelVersion.objects.exists()


def test_train_refuses_zero_epochs(tiny_asset):
    with pytest.raises(CommandError, match="--epochs must be at least 1"):
        _run("train", "ETHUSDT", "--epochs", "0")


def test_train_exits_non_zero_when_the_version_fails(tiny_asset):
    tiny_asset.hyperparameters = {**TINY, "window": 590}
    tiny_asset.save()
    with pytest.raises(CommandError, match="ETHUSDT v1 failed: .*too little gap-free data"):
        _run("train", "ETHUSDT")
    assert ModelVersion.objects.get().status == "failed"


def test_train_by_hand_tries_again_after_a_too_little_data_failure(tiny_asset):
    tiny_asset.hyperparameters = {**TINY, "window": 590}
    tiny_asset.save()
    with pytest.raises(CommandError, match="ETHUSDT v1 failed"):
        _run("train", "ETHUSDT")
    with pytest.raises(CommandError, match="ETHUSDT v2 failed: .*too little gap-free data"):
        _run("train", "ETHUSDT")


def test_train_after_a_recent_outage_promotes_and_says_the_forecast_must_wait(asset_after_outage):
    out, err = StringIO(), StringIO()
    call_command("train", "ETHUSDT", "--json", stdout=out, stderr=err)

    assert json.loads(out.getvalue())["status"] == "active"
    assert "ETHUSDT v1 is active, but no forecast yet:" in err.getvalue()
    assert "miss 12 candles" in err.getvalue()
    assert not Forecast.objects.exists()


def test_forecast_without_an_active_model_says_how_to_get_one(tiny_asset):
    with pytest.raises(CommandError, match="no active model yet: run `manage.py train ETHUSDT`"):
        _run("forecast", "ETHUSDT")


@pytest.fixture
def small_btc(db, settings, tmp_path) -> Asset:
    """BTCUSDT without candles. A fresh install would train the default recipe; created
    beforehand, the asset gets small hyperparameters."""
    settings.STORAGES = {
        **settings.STORAGES,
        "artifacts": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "artifacts")},
        },
    }
    return Asset.objects.create(
        symbol="BTCUSDT", base="BTC", quote="USDT", hyperparameters={**TINY, "max_epochs": 1}
    )


def test_bootstrap_replays_the_bundled_year_so_the_hourly_loop_has_hours_to_reveal(small_btc, settings):
    settings.MARKET_DATA_SOURCE, settings.REPLAY_HOURS_PER_SYNC = "replay", 1
    first = _run("bootstrap")

    assert "Replaying the bundled BTCUSDT year" in first
    assert "Synced BTCUSDT (replay): 7874 new candle(s)" in first and "No active BTCUSDT model yet" in first
    assert small_btc.candles.count() == 7874
    small_btc.refresh_from_db()
    assert small_btc.last_synced_at is not None  # the first forecast is not stale
    made_first = Forecast.objects.get()

    second = _run("bootstrap")  # a restart, as an hour later: the replay reveals the next hour

    assert "BTCUSDT already has 7874 candles: not importing" in second
    assert "Synced BTCUSDT (replay): 1 new candle(s)" in second and "already has an active model" in second
    assert ModelVersion.objects.count() == 1 and Forecast.objects.count() == 2
    made_first.refresh_from_db()
    assert made_first.scores[0]["actual"] is not None  # the revealed hour scored the first forecast
    assert settings.BUNDLED_DATA_FILE.exists()


def test_bootstrap_leaves_its_forecast_in_place_and_no_refresh_for_the_worker(
    small_btc, settings, django_capture_on_commit_callbacks
):
    """make run starts the worker right after bootstrap: every refresh_forecasts queued by
    bootstrap would redo, in the worker, what bootstrap has just done."""
    settings.MARKET_DATA_SOURCE, settings.REPLAY_HOURS_PER_SYNC = "replay", 1
    queued = []

    def record(sender: str, **_) -> None:
        queued.append(sender)

    before_task_publish.connect(record)
    try:
        with django_capture_on_commit_callbacks(execute=True):  # what a real commit runs
            _run("bootstrap")
    finally:
        before_task_publish.disconnect(record)

    assert queued == []
    newest = small_btc.candles.order_by("-open_time").first().open_time
    assert Forecast.objects.get().base_time == newest


def test_bootstrap_with_a_live_source_imports_the_whole_year_and_syncs_after_it(small_btc, settings):
    fake = FakeBinance().start()
    settings.MARKET_DATA_SOURCE, settings.BINANCE_API_URL = "binance", fake.url
    settings.BINANCE_RETRY_BASE_SECONDS, settings.BINANCE_TIMEOUT_SECONDS = 0.01, 2
    try:
        text = _run("bootstrap")
    finally:
        fake.stop()

    assert "8749 inserted" in text and "Synced BTCUSDT (binance): 0 new candle(s)" in text
    assert small_btc.candles.count() == 8749
    assert ModelVersion.objects.get().status == "active" and Forecast.objects.count() == 1


def test_bootstrap_keeps_a_partial_history_chosen_for_replay(tiny_asset):
    btc = Asset.objects.create(symbol="BTCUSDT", base="BTC", quote="USDT", hyperparameters=TINY)
    candles_create(btc, 500)

    text = _run("bootstrap")

    assert "BTCUSDT already has 500 candles: not importing the bundled file" in text
    assert btc.candles.count() == 500
    assert ModelVersion.objects.get(asset=btc).status == "active"


def test_bootstrap_finishes_when_the_first_training_fails_so_the_site_can_start(tiny_asset):
    btc = Asset.objects.create(symbol="BTCUSDT", base="BTC", quote="USDT", hyperparameters=TINY)
    candles_create(btc, 100)  # far too few hours for a first model
    out, err = StringIO(), StringIO()

    call_command("bootstrap", stdout=out, stderr=err)  # make run starts the site after it

    assert ModelVersion.objects.get(asset=btc).status == "failed"
    assert "BTCUSDT: the first training did not give a model (BTCUSDT v1 failed: too little" in err.getvalue()
    assert "`manage.py train BTCUSDT`" in err.getvalue()


@pytest.mark.parametrize(
    ("value", "text"),
    [(39268.55, "39268.55"), (1.23456789, "1.2346"), (0.3912346, "0.391235"), (0.0000390012, "0.00003900")],
)
def test_forecast_prints_prices_of_cheap_coins_with_the_decimals_of_the_pages(value, text):
    assert price_text(value) == text


def test_the_train_table_shows_errors_of_cheap_coins_instead_of_zeros():
    step = [0.0030057, 0.0172]
    metrics = {
        "rmse": step, "persistence_rmse": step, "mae": step, "persistence_mae": step,
        "skill_rmse": [0.0, 0.0], "mape": [0.5, 3.1], "direction_accuracy": [0.5, 0.5], "coverage_80": [0.8, 0.7],
    }  # fmt: skip
    table = metrics_table(metrics)
    assert "0.003006" in table and "0.0172" in table and " 0.0 " not in table
    assert "no direction forecast" not in table
    metrics["direction_accuracy"] = [None, 0.5]  # the model serves no change at step 1
    table = metrics_table(metrics)
    assert table.splitlines()[1].split()[7] == "–"
    assert "direction –: no direction forecast at that step (the model serves no change there" in table
    assert "skill –" not in table
    metrics["skill_rmse"] = [0.0, None]  # the price never moved at step 2, the forecast did
    assert "skill –: assuming no change was exact at that step and the model was not" in metrics_table(
        metrics
    )


def _run_json_refused(*args: str) -> dict:
    out = StringIO()
    with pytest.raises(CommandError) as refused:
        call_command(*args, "--json", stdout=out)
    body = json.loads(out.getvalue())
    assert body["reason"] == str(refused.value)
    return body


def test_train_json_without_a_version_still_prints_one_object_saying_why(tiny_asset):
    body = _run_json_refused("train", "dogeusdt")
    assert body["symbol"] == "DOGEUSDT" and body["version"] is None and body["status"] == "failed"
    assert "unknown asset 'dogeusdt'" in body["reason"]
    assert set(body) == TRAIN_JSON_KEYS

    _run("train", "ETHUSDT")
    body = _run_json_refused("train", "ETHUSDT", "--warm")
    assert body["warm_start"] is True and "no candle newer than the active version's data" in body["reason"]
    assert ModelVersion.objects.count() == 1


def test_train_json_while_another_training_holds_the_asset(tiny_asset):
    from forecasting import services

    with services.training_lease(asset=tiny_asset):  # held by this (live) process
        body = _run_json_refused("train", "ETHUSDT")
    assert body["version"] is None and "is already being trained by" in body["reason"]
    assert not ModelVersion.objects.exists()


def _forecast_json_refused(symbol: str) -> dict:
    """`forecast SYMBOL --json` that fails: it still prints exactly one object, then exits non-zero."""
    out = StringIO()
    with pytest.raises(CommandError) as refused:
        call_command("forecast", symbol, "--json", stdout=out)
    body = json.loads(out.getvalue())  # one object and nothing else, or this raises
    assert set(body) == FORECAST_JSON_KEYS
    assert body["error"] == str(refused.value)
    assert [key for key in FORECAST_JSON_KEYS - {"symbol", "error"} if body[key] is not None] == []
    return body


def test_forecast_json_of_an_unknown_asset_prints_one_object_saying_so(db):
    body = _forecast_json_refused("dogeusdt")
    assert body["symbol"] == "DOGEUSDT" and body["error"] == "unknown asset 'dogeusdt'"


def test_forecast_json_without_an_active_model_prints_one_object_saying_how_to_get_one(tiny_asset):
    body = _forecast_json_refused("ETHUSDT")
    assert body["error"] == "ETHUSDT has no active model yet: run `manage.py train ETHUSDT`"
    assert not Forecast.objects.exists()


def test_forecast_json_that_cannot_be_computed_prints_one_object_with_the_reason(asset_after_outage):
    _run("train", "ETHUSDT", "--json")  # active, but the last window misses 12 hours
    body = _forecast_json_refused("ETHUSDT")
    assert body["error"].startswith("ETHUSDT: cannot forecast: ") and "miss 12 candles" in body["error"]
    assert not Forecast.objects.exists()


def test_forecast_without_json_keeps_its_plain_error_and_prints_nothing(db):
    out = StringIO()
    with pytest.raises(CommandError, match="unknown asset 'DOGEUSDT'"):
        call_command("forecast", "DOGEUSDT", stdout=out)
    assert out.getvalue() == ""


def test_train_says_one_epoch_in_the_singular(tiny_asset):
    text = _run("train", "ETHUSDT", "--epochs", "1")
    assert " 1 epoch in " in text and "1 epochs" not in text
    assert "; kept epoch 1, the best on validation" in text


def test_ctrl_c_during_train_marks_the_version_failed_and_says_so_without_a_traceback(
    tiny_asset, monkeypatch
):
    from forecasting.ml import pipeline
    from forecasting.models import TrainingLease

    first = _run("train", "ETHUSDT")  # an active v1 that the interrupted run must leave alone
    assert "v1 (full): active" in first

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "train", interrupted)
    with pytest.raises(
        CommandError, match=r"ETHUSDT v2 interrupted: the training was stopped by hand \(Ctrl-C\)"
    ):
        _run("train", "ETHUSDT")

    v2 = ModelVersion.objects.get(asset=tiny_asset, version=2)
    assert v2.status == "failed" and v2.reason == "interrupted: the training was stopped by hand (Ctrl-C)"
    assert ModelVersion.objects.get(asset=tiny_asset, status="active").version == 1
    tiny_asset.refresh_from_db()
    assert tiny_asset.last_train_outcome.startswith("full retrain by manage.py train: v2 failed: interrupted")
    assert TrainingLease.objects.get(asset=tiny_asset).owner == ""  # released for the next run
    # With --json, the one object is the failed version's, not "no version".
    out = StringIO()
    with pytest.raises(CommandError):
        call_command("train", "ETHUSDT", "--json", stdout=out)
    body = json.loads(out.getvalue())
    assert (body["version"], body["status"]) == (3, "failed") and body["reason"].startswith("interrupted")
