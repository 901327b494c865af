"""asset_sync with the Binance source: the real python-binance client against the fake exchange."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from markets.models import Asset, Candle
from markets.services import asset_sync
from tests.markets.conftest import AFTER_BUNDLED_YEAR

pytestmark = pytest.mark.django_db

HOUR = timedelta(hours=1)


def stored_times(asset: Asset) -> list[datetime]:
    return list(Candle.objects.filter(asset=asset).order_by("open_time").values_list("open_time", flat=True))


def test_a_new_asset_backfills_the_configured_days(btc, fake_binance):
    result = asset_sync(asset=btc, now=AFTER_BUNDLED_YEAR)

    assert result.ok, result.error
    assert result.inserted == 30 * 24
    times = stored_times(btc)
    assert times[0] == datetime(2022, 2, 4, 17, tzinfo=UTC)  # 30 days back, on the hour
    assert times[-1] == datetime(2022, 3, 6, 16, tzinfo=UTC)
    btc.refresh_from_db()
    assert btc.last_sync_error == ""
    assert btc.last_synced_at is not None


def test_it_stores_exact_decimals_from_the_exchange_strings(btc, fake_binance):
    asset_sync(asset=btc, now=AFTER_BUNDLED_YEAR)

    last = Candle.objects.get(asset=btc, open_time=datetime(2022, 3, 6, 16, tzinfo=UTC))
    # Prices have few significant digits, so they are exact even on SQLite (15 digits).
    assert last.open == Decimal(fake_binance.klines[-1][1])
    assert last.high == Decimal(fake_binance.klines[-1][2])
    assert last.trades == fake_binance.klines[-1][8]
    assert last.close_time == datetime(2022, 3, 6, 16, 59, 59, 999000, tzinfo=UTC)


def test_it_pages_through_a_long_backfill_one_request_after_another(btc, fake_binance, settings):
    settings.BINANCE_BACKFILL_DAYS = 100

    result = asset_sync(asset=btc, now=AFTER_BUNDLED_YEAR)

    assert result.inserted == 100 * 24
    pages = fake_binance.kline_requests
    assert [p["limit"] for p in pages] == ["1000", "1000", "1000"]
    start = int(datetime(2021, 11, 26, 17, tzinfo=UTC).timestamp() * 1000)  # 100 days back, on the hour
    assert [int(p["startTime"]) for p in pages] == [start, start + 1000 * 3_600_000, start + 2000 * 3_600_000]
    assert len(set(stored_times(btc))) == 2400


def test_the_next_sync_fetches_only_after_the_last_stored_candle(btc, fake_binance):
    asset_sync(asset=btc, now=AFTER_BUNDLED_YEAR - 5 * HOUR)
    assert stored_times(btc)[-1] == datetime(2022, 3, 6, 11, tzinfo=UTC)

    result = asset_sync(asset=btc, now=AFTER_BUNDLED_YEAR)

    assert result.inserted == 5
    assert int(fake_binance.kline_requests[-1]["startTime"]) == int(
        datetime(2022, 3, 6, 12, tzinfo=UTC).timestamp() * 1000
    )
    assert Candle.objects.filter(asset=btc).count() == 30 * 24 + 5  # the backfill began 5 h earlier


def test_syncing_again_adds_nothing(btc, fake_binance):
    asset_sync(asset=btc, now=AFTER_BUNDLED_YEAR)
    requests_before = len(fake_binance.kline_requests)

    result = asset_sync(asset=btc, now=AFTER_BUNDLED_YEAR + timedelta(minutes=30))

    assert result.ok and result.inserted == 0
    assert Candle.objects.filter(asset=btc).count() == 30 * 24
    # The next candle cannot have closed yet: no request is even made.
    assert len(fake_binance.kline_requests) == requests_before


def test_a_still_open_candle_is_not_stored_until_it_closes(btc, fake_binance):
    mid_hour = datetime(2022, 3, 6, 16, 30, tzinfo=UTC)
    fake_binance.now = mid_hour

    asset_sync(asset=btc, now=mid_hour)

    assert stored_times(btc)[-1] == datetime(2022, 3, 6, 15, tzinfo=UTC)

    fake_binance.now = AFTER_BUNDLED_YEAR
    result = asset_sync(asset=btc, now=AFTER_BUNDLED_YEAR)

    assert result.inserted == 1
    final = Candle.objects.get(asset=btc, open_time=datetime(2022, 3, 6, 16, tzinfo=UTC))
    assert final.trades == fake_binance.klines[-1][8]  # the closed values, not the partial ones


def test_a_candle_is_not_stored_while_a_clock_slightly_ahead_of_the_exchange_says_it_closed(
    btc, fake_binance
):
    # The exchange is still in the 16:00 hour; our clock is 2 s past it.
    fake_binance.now = datetime(2022, 3, 6, 16, 59, 59, tzinfo=UTC)

    asset_sync(asset=btc, now=datetime(2022, 3, 6, 17, 0, 1, tzinfo=UTC))

    assert stored_times(btc)[-1] == datetime(2022, 3, 6, 15, tzinfo=UTC)

    fake_binance.now = AFTER_BUNDLED_YEAR
    asset_sync(asset=btc, now=AFTER_BUNDLED_YEAR)

    final = Candle.objects.get(asset=btc, open_time=datetime(2022, 3, 6, 16, tzinfo=UTC))
    assert final.trades == fake_binance.klines[-1][8]  # the closed values, not the partial ones


@pytest.mark.parametrize("kind", ["rate_limit", "banned", "server_error", "slow", "malformed", "disconnect"])
def test_a_transient_fault_is_retried_then_the_sync_succeeds(btc, fake_binance, kind):
    fake_binance.fail_next(kind, times=2)

    result = asset_sync(asset=btc, now=AFTER_BUNDLED_YEAR)

    assert result.ok, result.error
    assert result.inserted == 30 * 24
    assert len(fake_binance.kline_requests) == 3


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("rate_limit", "HTTP 429"),
        ("banned", "HTTP 418"),
        ("server_error", "HTTP 503"),
        ("slow", "no answer within 0.5 s"),
        ("malformed", "malformed response"),
        ("disconnect", "connection failed"),
    ],
)
def test_a_persistent_fault_gives_up_records_the_error_and_stores_nothing(btc, fake_binance, kind, words):
    fake_binance.fail_next(kind, times=10)

    result = asset_sync(asset=btc, now=AFTER_BUNDLED_YEAR)

    assert not result.ok
    assert len(fake_binance.kline_requests) == 4  # 1 + BINANCE_MAX_RETRIES
    btc.refresh_from_db()
    assert words in btc.last_sync_error
    assert "after 4 attempt(s)" in btc.last_sync_error
    assert btc.last_synced_at is None
    assert not Candle.objects.filter(asset=btc).exists()


def test_a_failure_on_a_later_page_stores_nothing_from_the_earlier_pages(btc, fake_binance, settings):
    settings.BINANCE_BACKFILL_DAYS = 100
    fake_binance.fail_next("server_error", times=10, after=1)

    result = asset_sync(asset=btc, now=AFTER_BUNDLED_YEAR)

    assert not result.ok
    assert len(fake_binance.kline_requests) == 1 + 4
    assert not Candle.objects.filter(asset=btc).exists()


def test_a_bad_kline_is_not_retried_is_named_and_the_candles_before_it_are_stored(btc, fake_binance):
    fake_binance.klines[-10][4] = "999999"  # close above high, 2022-03-06 07:00

    result = asset_sync(asset=btc, now=AFTER_BUNDLED_YEAR)

    assert len(fake_binance.kline_requests) == 1
    assert "bad kline for BTCUSDT (not retried)" in result.error
    assert "kline opened at 2022-03-06 07:00 UTC: close 999999 is outside [low" in result.error
    assert "the 710 new candle(s) before it were stored" in result.error
    assert result.inserted == 30 * 24 - 10
    assert stored_times(btc)[-1] == datetime(2022, 3, 6, 6, tzinfo=UTC)
    btc.refresh_from_db()
    assert btc.last_sync_error == result.error
    assert btc.last_synced_at is None

    again = asset_sync(asset=btc, now=AFTER_BUNDLED_YEAR)

    assert len(fake_binance.kline_requests) == 2
    assert "kline opened at 2022-03-06 07:00 UTC" in again.error
    assert again.inserted == 0


def test_a_bad_kline_on_a_later_page_keeps_the_earlier_pages(btc, fake_binance, settings):
    settings.BINANCE_BACKFILL_DAYS = 100
    fake_binance.klines[-500][2] = "0"  # a zero high, on the second of three pages

    result = asset_sync(asset=btc, now=AFTER_BUNDLED_YEAR)

    assert len(fake_binance.kline_requests) == 2
    assert "high 0 is not a price" in result.error
    assert Candle.objects.filter(asset=btc).count() == result.inserted == 100 * 24 - 500


def test_it_waits_as_long_as_retry_after_says(btc, fake_binance):
    fake_binance.fail_next("rate_limit", times=1, retry_after=1)

    started = time.monotonic()
    result = asset_sync(asset=btc, now=AFTER_BUNDLED_YEAR)

    assert result.ok
    # The exponential backoff alone would have waited 0.01 s.
    assert time.monotonic() - started >= 1.0


def test_a_retry_after_too_long_for_one_sync_fails_at_once(btc, fake_binance):
    fake_binance.fail_next("banned", times=1, retry_after=3600)

    result = asset_sync(asset=btc, now=AFTER_BUNDLED_YEAR)

    assert len(fake_binance.kline_requests) == 1
    assert "HTTP 418" in result.error and "3600 s" in result.error
    assert not Candle.objects.filter(asset=btc).exists()


def test_an_invalid_symbol_is_reported_clearly_without_retrying(db, fake_binance):
    asset = Asset.objects.create(symbol="NOPEUSDT", base="NOPE", quote="USDT")

    result = asset_sync(asset=asset, now=AFTER_BUNDLED_YEAR)

    assert len(fake_binance.kline_requests) == 1
    asset.refresh_from_db()
    assert "Binance does not know the symbol NOPEUSDT" in asset.last_sync_error
    assert "-1121" in asset.last_sync_error
    assert result.error == asset.last_sync_error


def test_a_success_clears_the_previous_error(btc, fake_binance):
    fake_binance.fail_next("server_error", times=4)
    asset_sync(asset=btc, now=AFTER_BUNDLED_YEAR)
    btc.refresh_from_db()
    assert btc.last_sync_error

    result = asset_sync(asset=btc, now=AFTER_BUNDLED_YEAR)

    assert result.ok
    btc.refresh_from_db()
    assert btc.last_sync_error == ""
    assert btc.last_synced_at is not None


def test_an_unreachable_exchange_is_recorded_as_a_connection_failure(btc, settings):
    settings.MARKET_DATA_SOURCE = "binance"
    settings.BINANCE_API_URL = "http://127.0.0.1:1/api"  # nothing listens on port 1
    settings.BINANCE_MAX_RETRIES = 1
    settings.BINANCE_RETRY_BASE_SECONDS = 0.01

    result = asset_sync(asset=btc, now=AFTER_BUNDLED_YEAR)

    assert "connection failed" in result.error
    btc.refresh_from_db()
    assert btc.last_sync_error == result.error


def test_candles_added_by_a_sync_trigger_a_forecast_refresh_after_commit(
    btc, fake_binance, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        asset_sync(asset=btc, now=AFTER_BUNDLED_YEAR)
    assert len(callbacks) == 1

    with django_capture_on_commit_callbacks() as callbacks:
        asset_sync(asset=btc, now=AFTER_BUNDLED_YEAR)
    assert callbacks == []  # nothing new, nothing to refresh


@pytest.mark.django_db(transaction=True)
def test_a_broker_down_after_the_commit_leaves_the_sync_a_success_with_a_warning(
    btc, fake_binance, broker_down, caplog
):
    # A real commit runs the callback: the forecast refresh cannot be queued.
    started = time.monotonic()
    result = asset_sync(asset=btc, now=AFTER_BUNDLED_YEAR)

    btc.refresh_from_db()
    assert not result.error and result.inserted > 0
    assert btc.last_sync_error == "" and btc.last_synced_at is not None
    assert Candle.objects.filter(asset=btc).count() == result.inserted
    warning = next(r for r in caplog.records if "forecast refresh could not be queued" in r.getMessage())
    assert (
        warning.levelname == "WARNING" and "the next scheduled run makes the forecast" in warning.getMessage()
    )
    assert time.monotonic() - started < 10  # no wait on a result backend that is down
