"""Each web process reuses a forecast body for API_CACHE_SECONDS; authentication and quota never."""

import time

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiToken
from accounts.selectors import api_usage_get
from accounts.services import api_token_create, api_token_revoke
from tests.api.conftest import HOUR, candles_create, forecast_create, version_create

URL = "/api/v1/assets/BTCUSDT/forecast/"


def market_hour():
    return timezone.now().replace(minute=0, second=0, microsecond=0) - HOUR


@pytest.mark.django_db
def test_a_newer_forecast_is_served_once_the_cached_body_expires(member_api, market, settings):
    settings.API_CACHE_SECONDS = 0.5
    first = member_api.get(URL).json()
    newer = market["last"] + HOUR
    candles_create(market["asset"], 1, end=newer, close=500.0)
    forecast_create(market["active"], newer, last_close=500.0)

    assert member_api.get(URL).json() == first  # within the half second: the same body
    time.sleep(0.6)
    body = member_api.get(URL).json()

    assert body["last_close"] == 500.0 and body["last_candle_time"] != first["last_candle_time"]


@pytest.mark.django_db
def test_with_zero_seconds_every_call_reads_the_database(member_api, market, settings):
    settings.API_CACHE_SECONDS = 0
    member_api.get(URL)
    newer = market["last"] + HOUR
    candles_create(market["asset"], 1, end=newer, close=500.0)
    forecast_create(market["active"], newer, last_close=500.0)

    assert member_api.get(URL).json()["last_close"] == 500.0


@pytest.mark.django_db
def test_cached_calls_are_still_counted_and_a_revoked_token_is_refused_at_once(member, market, settings):
    settings.API_CACHE_SECONDS = 60
    _, key = api_token_create(user=member, name="cache")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")

    statuses = [client.get(URL).status_code for _ in range(3)]
    api_token_revoke(user=member, token_id=ApiToken.objects.get(name="cache").pk)
    refused = client.get(URL)

    assert statuses == [200, 200, 200]
    assert api_usage_get(user=member).used == 3
    assert refused.status_code == 401 and refused.json() == {"detail": "Invalid or revoked token."}


@pytest.mark.django_db
def test_an_unavailable_forecast_is_not_cached(member_api, btc, settings):
    settings.API_CACHE_SECONDS = 60
    candles_create(btc, 30, end=market_hour())

    assert member_api.get(URL).status_code == 503
    version = version_create(btc, 1)
    forecast_create(version, market_hour())

    assert member_api.get(URL).status_code == 200


@pytest.mark.django_db
def test_the_cache_is_per_asset_and_case_insensitive(member_api, market, settings, max_statements):
    settings.API_CACHE_SECONDS = 60
    body = member_api.get(URL).json()

    # The token lookup with its quota unit (one statement on PostgreSQL, two elsewhere); no forecast query.
    with max_statements(1 if connection.vendor == "postgresql" else 2):
        assert member_api.get(URL.replace("BTCUSDT", "btcusdt")).json() == body
    assert member_api.get("/api/v1/assets/ETHUSDT/forecast/").status_code == 404
