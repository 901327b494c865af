"""The admin carries the product's name and says which clock its times use."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_the_admin_is_titled_make_us_rich(admin_client):
    html = admin_client.get("/admin/").content.decode()
    assert '<a href="/admin/">Make Us Rich admin</a>' in html
    assert "<title>Assets, models and accounts | Make Us Rich admin</title>" in html
    assert "Django administration" not in html


def test_the_admin_says_its_times_are_utc_candle_open_times(admin_client):
    html = admin_client.get("/admin/markets/candle/").content.decode()
    assert "All times are UTC." in html
    assert "the hour the candle opens" in html


def test_the_admin_writes_dates_as_the_site_does(admin_client, market):
    # Django's own columns (trained at, last synced at) and ours (last candle) alike.
    trained = market.version.trained_at
    versions = admin_client.get("/admin/forecasting/modelversion/").content.decode()
    assert f'<td class="field-trained_at nowrap">{trained.day} {trained:%b %Y %H:%M} UTC</td>' in versions
    synced, last = market.asset.last_synced_at, market.candles[-1].open_time
    assets = admin_client.get("/admin/markets/asset/").content.decode()
    assert f"{synced.day} {synced:%b %Y %H:%M} UTC" in assets
    assert f'<td class="field-last_candle">{last.day} {last:%b %Y %H:%M} UTC</td>' in assets
    assert " a.m." not in assets + versions and " p.m." not in assets + versions
