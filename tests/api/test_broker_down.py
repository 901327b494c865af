"""With the broker down, stored forecasts keep being served; only queuing work fails, clearly."""

import pytest

from .conftest import client_for

pytestmark = pytest.mark.django_db


def test_the_forecast_is_still_served(market, member, broker_down):
    response = client_for(member).get("/api/v1/assets/BTCUSDT/forecast/")
    assert response.status_code == 200
    assert len(response.json()["points"]) == market["forecast"].horizon


def test_the_dashboard_and_asset_page_still_render_the_forecast(market, member, client, broker_down):
    client.force_login(member)
    dashboard = client.get("/")
    asset_page = client.get("/assets/BTCUSDT/")
    assert dashboard.status_code == 200 and "BTCUSDT" in dashboard.content.decode()
    assert asset_page.status_code == 200 and "forecast" in asset_page.content.decode().lower()


def test_readyz_names_the_broker_and_passes_the_database(client, broker_down):
    body = client.get("/readyz").json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok" and body["checks"]["broker"] != "ok"
