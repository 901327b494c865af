"""Celery tasks sync_asset and sync_active_assets, called as functions."""

from __future__ import annotations

import pytest

from markets.models import Asset, Candle
from markets.services import candles_upsert
from markets.sources.replay import ReplaySource
from markets.tasks import sync_active_assets, sync_asset

pytestmark = pytest.mark.django_db


def test_sync_asset_syncs_one_asset_and_reports_it(btc, replay):
    result = sync_asset("btcusdt")

    assert result["symbol"] == "BTCUSDT"
    assert result["inserted"] == 7874
    assert result["error"] == ""
    assert Candle.objects.filter(asset=btc).count() == 7874


def test_sync_asset_reports_the_holes_it_filled(btc, replay, settings):
    rows = ReplaySource(path=settings.BUNDLED_DATA_FILE, candles_per_sync=1).rows()
    candles_upsert(asset=btc, rows=[*rows[:100], *rows[200:7874]])  # 100 hours missing, no outage among them

    result = sync_asset("BTCUSDT")

    assert result["inserted"] == 1 and result["error"] == ""
    # The year's four outages (11 hours) are confirmed by the replay data too.
    assert result["holes"] == "holes: 100 hour(s) filled, 11 confirmed empty (4 outage(s)), 0 still missing"
    assert Candle.objects.filter(asset=btc).count() == 7875

    assert "holes" not in sync_asset("BTCUSDT")  # nothing left to ask: as before


def test_sync_asset_returns_the_failure_it_recorded(db, replay):
    Asset.objects.create(symbol="ETHUSDT", base="ETH", quote="USDT")

    result = sync_asset("ETHUSDT")

    assert "replay source only has BTCUSDT" in result["error"]
    assert Asset.objects.get(symbol="ETHUSDT").last_sync_error == result["error"]


def test_sync_asset_of_an_unknown_symbol_is_an_error_not_a_crash(db, replay):
    assert sync_asset("NOPEUSDT")["error"] == "no asset NOPEUSDT"


def test_sync_asset_acknowledges_late(db):
    # A worker killed mid-sync leaves the message on the queue for another one.
    assert sync_asset.acks_late is True


def test_sync_asset_has_a_time_limit_so_a_slow_exchange_cannot_hold_a_worker(db):
    assert sync_asset.soft_time_limit == 600
    assert sync_asset.time_limit == 660


def test_sync_active_assets_fans_out_to_active_assets_only(btc, replay, eager):
    Asset.objects.create(symbol="ETHUSDT", base="ETH", quote="USDT", is_active=False)

    symbols = sync_active_assets()

    assert symbols == ["BTCUSDT"]
    assert Candle.objects.filter(asset=btc).count() == 7874
    assert Asset.objects.get(symbol="ETHUSDT").last_synced_at is None
