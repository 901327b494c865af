"""manage.py sync_candles [SYMBOL ...]."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from markets.models import Asset, Candle
from markets.services import candles_upsert
from markets.sources.replay import ReplaySource

pytestmark = pytest.mark.django_db


def run(*symbols: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("sync_candles", *symbols, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_without_symbols_it_syncs_every_active_asset(btc, replay):
    Asset.objects.create(symbol="ETHUSDT", base="ETH", quote="USDT", is_active=False)

    out, _ = run()

    assert "BTCUSDT: 7874 new candle(s)" in out
    assert "ETHUSDT" not in out
    assert Candle.objects.filter(asset=btc).count() == 7874


def test_named_symbols_are_synced_in_any_case(btc, replay):
    run("btcusdt")

    out, _ = run("BTCUSDT")

    assert "BTCUSDT: 1 new candle(s) (replay: revealed 1 candle(s)), last candle 2022-01-29 06:00 UTC" in out


def test_a_failed_asset_makes_the_command_fail_after_syncing_the_others(btc, replay):
    Asset.objects.create(symbol="ETHUSDT", base="ETH", quote="USDT")

    with pytest.raises(CommandError, match="sync failed for ETHUSDT"):
        run()

    assert Candle.objects.filter(asset=btc).count() == 7874
    assert "replay source only has BTCUSDT" in Asset.objects.get(symbol="ETHUSDT").last_sync_error


def test_an_unexpected_error_fails_the_command_naming_the_symbol_after_syncing_the_others(
    btc, replay, settings, tmp_path
):
    Asset.objects.create(symbol="ETHUSDT", base="ETH", quote="USDT")
    broken = tmp_path / "btcusdt_1h_broken.csv"
    broken.write_text("timestamp,open\n")  # the replay source cannot read its own data
    settings.BUNDLED_DATA_FILE = broken

    with pytest.raises(CommandError, match="sync failed for BTCUSDT, ETHUSDT"):
        run()

    assert "unexpected error: CandleFileError: line 1: missing column(s)" in (
        Asset.objects.get(symbol="BTCUSDT").last_sync_error
    )
    # BTCUSDT came first and failed; ETHUSDT was still tried.
    assert "replay source only has BTCUSDT" in Asset.objects.get(symbol="ETHUSDT").last_sync_error


def test_an_unknown_symbol_is_refused(btc, replay):
    with pytest.raises(CommandError, match="unknown symbol"):
        run("DOGEUSDT")
    assert not Candle.objects.exists()


def test_it_syncs_from_binance_when_configured(btc, fake_binance, settings):
    rows = ReplaySource(path=settings.BUNDLED_DATA_FILE, candles_per_sync=1).rows()
    candles_upsert(asset=btc, rows=rows[:-6])  # up to 2022-03-06 10:00

    out, _ = run("BTCUSDT")

    assert "BTCUSDT: 6 new candle(s) (binance: 6 closed candle(s) from 2022-03-06 11:00 UTC)" in out
    assert Candle.objects.filter(asset=btc).count() == 8749
    # Then the year's four outages (11 hours) are asked about once, in three requests.
    assert out.rstrip().endswith(
        "; holes: 0 hour(s) filled, 11 confirmed empty (4 outage(s)), 0 still missing"
    )
    assert len(fake_binance.kline_requests) == 1 + 3


def test_it_says_how_many_missing_hours_it_filled_and_how_many_are_left(btc, fake_binance, settings):
    rows = ReplaySource(path=settings.BUNDLED_DATA_FILE, candles_per_sync=1).rows()
    candles_upsert(asset=btc, rows=rows[:10] + rows[-3000:])  # 5750 hours missing in between
    settings.SYNC_GAP_REQUESTS = 2  # 2000 hours a run, newest first

    outputs = [run("BTCUSDT")[0] for _ in range(4)]

    # The newest 2000 hours hold the outages of 2021-09-29 (2 h) and 2021-08-13 (4 h).
    assert (
        "holes: 1994 hour(s) filled, 6 confirmed empty (2 outage(s)), 3750 still missing (left for the next syncs)"
        in (outputs[0])
    )
    assert (
        "holes: 2000 hour(s) filled, 0 confirmed empty, 1750 still missing (left for the next syncs)"
        in (outputs[1])
    )
    assert (
        outputs[2]
        .rstrip()
        .endswith("holes: 1745 hour(s) filled, 5 confirmed empty (2 outage(s)), 0 still missing")
    )
    # Nothing left to ask: the line is as it was before holes were filled.
    assert outputs[3] == (
        "BTCUSDT: 0 new candle(s) (binance: 0 closed candle(s) from 2022-03-06 17:00 UTC), "
        "last candle 2022-03-06 16:00 UTC\n"
    )
    assert Candle.objects.filter(asset=btc).count() == 8749
    assert len(fake_binance.kline_requests) == 4 + 2 + 2 + 2  # 4 appends, 6 hole requests
