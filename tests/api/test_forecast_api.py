import datetime as dt
import re

import pytest
from django.utils import timezone

from forecasting.models import ModelVersion, TrainingLease
from forecasting.selectors import asset_find, forecast_staleness
from markets.models import HOLES_ERROR_PREFIX, MODEL_UNLOADABLE_FOR_MEMBERS, Asset
from tests.api.conftest import HOUR, METRICS, candles_create, forecast_create, iso, version_create

URL = "/api/v1/assets/BTCUSDT/forecast/"


@pytest.mark.django_db
def test_it_returns_the_active_versions_latest_forecast(member_api, market):
    response = member_api.get(URL)

    assert response.status_code == 200
    body = response.json()
    forecast = market["forecast"]
    assert body == {
        "symbol": "BTCUSDT",
        "model_version": 2,
        "generated_at": body["generated_at"],
        "last_candle_time": iso(market["last"]),
        "last_close": float(forecast.last_close),
        "horizon_hours": 4,
        "points": forecast.points,
        "stale": False,
        "stale_reason": None,
        "metrics": METRICS,
    }
    assert set(body["points"][0]) == {"time", "close", "lower", "upper"}
    assert dt.datetime.fromisoformat(body["generated_at"]) <= timezone.now()


@pytest.mark.django_db
def test_a_newer_forecast_of_a_retired_version_is_not_served(member_api, market):
    retired = ModelVersion.objects.get(asset=market["asset"], version=1)
    candles_create(market["asset"], 1, end=market["last"] + HOUR)
    forecast_create(retired, market["last"] + HOUR)

    body = member_api.get(URL).json()
    summary = member_api.get("/api/v1/assets/BTCUSDT/").json()["forecast"]

    assert body["model_version"] == 2
    assert body["stale"] is True
    newer = market["last"] + HOUR
    # ISO 8601 Z, like every other time in the API (the pages write "25 Nov 2026 07:00 UTC").
    expected = (
        f"forecast starts from the candle opened {iso(market['last'])}, "
        f"but a newer one (opened {iso(newer)}) exists"
    )
    assert body["stale_reason"] == expected
    assert summary["stale"] is True and summary["stale_reason"] == expected


@pytest.mark.django_db
def test_the_pages_staleness_keeps_their_own_time_format(market):
    asset = asset_find(symbol="BTCUSDT")
    newer = market["last"] + HOUR

    reasons = forecast_staleness(
        asset=asset, version=market["active"], base_time=market["last"], last_candle_time=newer
    )

    assert reasons == [
        f"forecast starts from the candle opened {market['last'].day} {market['last']:%b %Y %H:%M} UTC, "
        f"but a newer one (opened {newer.day} {newer:%b %Y %H:%M} UTC) exists"
    ]


@pytest.mark.django_db
def test_it_is_stale_when_the_last_candle_is_too_old(member_api, market, settings):
    settings.STALE_DATA_HOURS = 3
    asset = market["asset"]
    asset.candles.filter(open_time__gt=market["last"] - 5 * HOUR).delete()
    forecast_create(market["active"], market["last"] - 5 * HOUR)

    body = member_api.get(URL).json()

    assert body["stale"] is True
    assert "last candle closed" in body["stale_reason"] and "limit 3 h" in body["stale_reason"]


@pytest.mark.django_db
def test_it_is_stale_when_the_model_is_too_old(member_api, market, settings):
    settings.STALE_MODEL_HOURS = 48
    ModelVersion.objects.filter(pk=market["active"].pk).update(
        trained_at=timezone.now() - dt.timedelta(hours=50)
    )

    body = member_api.get(URL).json()

    assert body["stale"] is True
    assert body["stale_reason"].startswith("model v2 was trained 50.0 h ago")


@pytest.mark.django_db
def test_with_replay_data_age_is_the_last_sync_not_the_historical_candles(member_api, market, settings):
    settings.MARKET_DATA_SOURCE = "replay"
    settings.API_CACHE_SECONDS = 0  # the same body is asked for twice, with a change in between
    asset = market["asset"]
    old = market["last"] - dt.timedelta(days=400)
    asset.candles.all().delete()
    asset.forecasts.all().delete()
    candles_create(asset, 3, end=old)
    ModelVersion.objects.filter(pk=market["active"].pk).update(trained_at=timezone.now())
    forecast_create(market["active"], old)
    Asset.objects.filter(pk=asset.pk).update(last_synced_at=timezone.now() - dt.timedelta(minutes=30))

    assert member_api.get(URL).json()["stale"] is False

    Asset.objects.filter(pk=asset.pk).update(last_synced_at=timezone.now() - dt.timedelta(hours=10))
    body = member_api.get(URL).json()
    assert body["stale"] is True and "last synced 10.0 h ago" in body["stale_reason"]


@pytest.mark.django_db
def test_a_failing_sync_makes_it_stale(member_api, market):
    Asset.objects.filter(pk=market["asset"].pk).update(last_sync_error="ConnectionError: timed out")
    body = member_api.get(URL).json()
    assert body["stale"] is True
    # In the pages' words for members: the error itself is in the admin.
    assert (
        body["stale_reason"]
        == "market data for this asset is not updating; the operators see why in the admin"
    )


@pytest.mark.django_db
def test_a_sync_that_stored_the_new_candles_but_not_an_older_hole_leaves_it_fresh(member_api, market):
    error = f"{HOLES_ERROR_PREFIX}kline opened at 2022-02-20 06:00 UTC: close 999999 is outside [low, high]"
    Asset.objects.filter(pk=market["asset"].pk).update(last_sync_error=error)
    body = member_api.get(URL).json()
    assert body["stale"] is False and body["stale_reason"] is None


@pytest.mark.django_db
def test_it_answers_503_before_any_model(member_api, btc):
    candles_create(btc, 3, end=timezone.now().replace(minute=0, second=0, microsecond=0) - HOUR)
    response = member_api.get(URL)
    assert response.status_code == 503
    assert response.json()["detail"].startswith("no active model yet for BTCUSDT: no model has been trained")


@pytest.mark.django_db
def test_the_503_of_an_asset_without_candles_promises_no_model_before_data(member_api, btc):
    detail = member_api.get(URL).json()["detail"]
    assert (
        detail
        == "no active model yet for BTCUSDT: it has no market data yet; a model is trained once syncs bring it"
    )

    Asset.objects.filter(pk=btc.pk).update(last_sync_error="the replay source only has BTCUSDT")
    detail = member_api.get(URL).json()["detail"]
    assert detail == (
        "no active model yet for BTCUSDT: it has no market data yet (market data for this asset is not "
        "updating; the operators see why in the admin)"
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("status", "reason", "expected"),
    [
        ("training", "", "no active model yet for BTCUSDT: training v1"),
        (
            "failed",
            "loss was NaN",
            "no active model yet for BTCUSDT: training v1 failed; the operators see why",
        ),
        ("validated", "worse than persistence", "v1 was not promoted: worse than persistence"),
    ],
)
def test_the_503_says_what_training_is_doing(member_api, btc, status, reason, expected):
    version_create(btc, 1, status=status, reason=reason)
    response = member_api.get(URL)
    assert response.status_code == 503
    assert expected in response.json()["detail"]
    if status == "training":  # the start time as the API writes times: ISO 8601 Z, whole seconds
        assert re.search(r"\(started \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\)", response.json()["detail"])


@pytest.mark.django_db
def test_it_answers_503_when_the_active_model_has_not_forecast_yet(member_api, btc):
    version_create(btc, 1, status="active")
    response = member_api.get(URL)
    assert response.status_code == 503
    assert response.json()["detail"].startswith("no forecast stored yet for BTCUSDT by model v1")


@pytest.mark.django_db
def test_forecast_of_an_unknown_asset_is_404_and_needs_a_token(api, member_api, market):
    assert member_api.get("/api/v1/assets/ETHUSDT/forecast/").status_code == 404
    assert api.get(URL).status_code == 401


@pytest.mark.django_db
def test_a_forecast_costs_a_fixed_number_of_queries(member_api, market, max_statements):
    member_api.get(URL)
    # token + quota + forecast with its version, asset and the asset's last candle
    with max_statements(3):
        assert member_api.get("/api/v1/assets/btcusdt/forecast/").status_code == 200


BAD_ARTIFACT = (
    "the active model cannot be loaded: artifact 'BTCUSDT/v2-0a1b2c3d.onnx' has sha256 9f86d081884c…, "
    "expected 2c26b46b68ff…; activate another version (the next retrain replaces it)"
)


@pytest.mark.django_db
def test_a_forecast_refresh_that_cannot_load_the_model_makes_it_stale_and_says_why(member_api, market):
    # The worker's last refresh failed on the artifact's hash: the forecast is an hour behind.
    last = market["last"] + HOUR
    candles_create(market["asset"], 1, end=last)
    Asset.objects.filter(pk=market["asset"].pk).update(
        forecast_problem=BAD_ARTIFACT, forecast_problem_since=timezone.now()
    )

    body = member_api.get(URL).json()

    assert body["stale"] is True
    # The artifact's key and hashes, and what to do about them, are for the admin.
    assert body["stale_reason"].startswith(
        MODEL_UNLOADABLE_FOR_MEMBERS + "; forecast starts from the candle opened "
    )
    assert "sha256" not in body["stale_reason"]
    summary = member_api.get("/api/v1/assets/").json()[0]["forecast"]
    assert summary["stale_reason"] == body["stale_reason"]


@pytest.mark.django_db
def test_the_503_says_why_the_active_models_first_forecast_failed(member_api, btc):
    version_create(btc, 1, status="active")
    Asset.objects.filter(pk=btc.pk).update(forecast_problem=BAD_ARTIFACT)

    response = member_api.get(URL)

    assert response.status_code == 503
    assert response.json()["detail"] == (
        f"no forecast stored yet for BTCUSDT by model v1: {MODEL_UNLOADABLE_FOR_MEMBERS}"
    )


@pytest.mark.django_db
def test_the_503_does_not_say_training_when_no_worker_holds_the_lease(member_api, btc):
    version_create(btc, 1, status="training")
    TrainingLease.objects.create(asset=btc, owner="", expires_at=None)  # released: its worker died

    detail = member_api.get(URL).json()["detail"]

    assert re.search(
        r"training v1 \(started [^)]+\) stopped before finishing: no worker is training it", detail
    )


@pytest.mark.django_db
def test_the_503_says_training_while_a_worker_holds_the_lease(member_api, btc):
    version_create(btc, 1, status="training")
    TrainingLease.objects.create(
        asset=btc, owner="worker-1:42:1234:abcd", expires_at=timezone.now() + dt.timedelta(minutes=30)
    )

    detail = member_api.get(URL).json()["detail"]

    assert "training v1 (started " in detail and "stopped" not in detail
