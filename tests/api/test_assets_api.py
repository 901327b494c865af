import json

import pytest
from django.utils import timezone

from markets.models import HOLES_ERROR_PREFIX, Asset
from tests.api.conftest import HOUR, candles_create, forecast_create, hour_floor, iso, version_create


@pytest.mark.django_db
def test_it_lists_active_assets_with_last_price_and_forecast_summary(member_api, market):
    Asset.objects.create(symbol="ETHUSDT", base="ETH", quote="USDT")  # no data yet
    Asset.objects.create(symbol="DOGEUSDT", base="DOGE", quote="USDT", is_active=False)

    response = member_api.get("/api/v1/assets/")

    assert response.status_code == 200
    btc, eth = response.json()
    assert btc["symbol"] == "BTCUSDT" and btc["base"] == "BTC" and btc["quote"] == "USDT"
    assert btc["interval"] == "1h" and btc["horizon_hours"] == 24
    assert btc["last_candle_time"] == iso(market["last"])
    assert btc["last_price"] == float(market["candles"][-1].close)
    assert btc["sync_error"] is None
    forecast = btc["forecast"]
    points = market["forecast"].points
    assert forecast["model_version"] == 2
    assert forecast["base_time"] == iso(market["last"])
    assert forecast["horizon_hours"] == 4
    assert forecast["next_close"] == points[0]["close"]
    assert (forecast["final_close"], forecast["final_lower"], forecast["final_upper"]) == (
        points[-1]["close"],
        points[-1]["lower"],
        points[-1]["upper"],
    )
    assert forecast["stale"] is False and forecast["stale_reason"] is None
    assert eth["symbol"] == "ETHUSDT"
    assert eth["last_candle_time"] is None and eth["last_price"] is None and eth["forecast"] is None


@pytest.mark.django_db
def test_the_list_runs_a_bounded_number_of_queries(member_api, market, max_statements):
    last = hour_floor(timezone.now()) - HOUR
    for i, symbol in enumerate(["ETHUSDT", "SOLUSDT", "ADAUSDT", "XRPUSDT", "BNBUSDT"]):
        asset = Asset.objects.create(symbol=symbol, base=symbol[:-4], quote="USDT")
        candles_create(asset, 5, end=last, close=10.0 * (i + 1))
        for number, status in enumerate(["retired", "failed", "active"], start=1):
            version = version_create(asset, number, status=status)
            forecast_create(version, last - HOUR)
            forecast_create(version, last)
    member_api.get("/api/v1/assets/")  # creates this month's quota row

    # token + quota + assets + their forecasts, whatever the number of assets
    with max_statements(4):
        response = member_api.get("/api/v1/assets/")

    assert response.status_code == 200
    body = response.json()
    assert len(body) == 6
    assert all(
        item["forecast"]["model_version"] == (2 if item["symbol"] == "BTCUSDT" else 3) for item in body
    )


@pytest.mark.django_db
@pytest.mark.parametrize("symbol", ["BTCUSDT", "btcusdt", "BtcUsdt"])
def test_detail_accepts_any_case(member_api, market, symbol):
    response = member_api.get(f"/api/v1/assets/{symbol}/")
    assert response.status_code == 200
    assert response.json()["symbol"] == "BTCUSDT"
    assert response.json()["forecast"]["model_version"] == 2


@pytest.mark.django_db
def test_detail_reports_a_failing_sync_in_the_words_of_the_pages(member_api, market):
    # The exchange's or the configuration's words are for the admin, as on the pages.
    Asset.objects.filter(pk=market["asset"].pk).update(last_sync_error="Binance said 418 to host 10.0.0.7")
    body = member_api.get("/api/v1/assets/BTCUSDT/").json()
    assert (
        body["sync_error"] == "market data for this asset is not updating; the operators see why in the admin"
    )
    assert body["forecast"]["stale"] is True
    assert "market data for this asset is not updating" in body["forecast"]["stale_reason"]
    assert "10.0.0.7" not in json.dumps(body)
    assert "10.0.0.7" not in member_api.get("/api/v1/assets/BTCUSDT/forecast/").content.decode()


@pytest.mark.django_db
def test_a_sync_that_only_failed_to_fill_older_holes_says_so(member_api, market):
    Asset.objects.filter(pk=market["asset"].pk).update(
        last_sync_error=f"{HOLES_ERROR_PREFIX}connection failed (ConnectionError)"
    )
    body = member_api.get("/api/v1/assets/BTCUSDT/").json()
    assert body["sync_error"] == (
        "some older missing hours could not be fetched; the operators see why in the admin"
    )


@pytest.mark.django_db
@pytest.mark.parametrize("symbol", ["FOOBAR", "BTC-USDT", "x" * 300, "DOGEUSDT"])
def test_detail_answers_404_for_unknown_or_inactive_assets(member_api, market, symbol):
    Asset.objects.create(symbol="DOGEUSDT", base="DOGE", quote="USDT", is_active=False)
    response = member_api.get(f"/api/v1/assets/{symbol}/")
    assert response.status_code == 404
    detail = response.json()["detail"]
    assert detail.startswith("Unknown asset") and "BTCUSDT" in detail
    assert len(detail) < 200


@pytest.mark.django_db
def test_assets_need_a_token(api, market):
    assert api.get("/api/v1/assets/").status_code == 401
    assert api.get("/api/v1/assets/BTCUSDT/").status_code == 401


@pytest.mark.django_db
def test_an_unknown_api_path_answers_json_404(member_api):
    response = member_api.get("/api/v1/nothing/here/")
    assert response.status_code == 404
    assert "/api/v1/docs/" in response.json()["detail"]
    assert "end with a slash" in member_api.get("/api/v1/assets").json()["detail"]
