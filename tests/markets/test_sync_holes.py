"""asset_sync fills holes in the stored history: the real python-binance client against the fake exchange."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.conf import settings as django_settings

from markets.models import HOLES_ERROR_PREFIX, Asset, Candle, ConfirmedOutage
from markets.services import asset_gaps_fill, asset_sync, candles_upsert
from markets.sources import SourceError, source_for
from markets.sources.replay import ReplaySource
from tests.markets.conftest import AFTER_BUNDLED_YEAR

pytestmark = pytest.mark.django_db

HOUR = timedelta(hours=1)
MS = timedelta(milliseconds=1)
LAST = datetime(2022, 3, 6, 16, tzinfo=UTC)  # the last bundled candle
# The bundled year's third outage: no candle from 02:00 to 05:00 (4 hours).
OUTAGE_FIRST, OUTAGE_LAST = datetime(2021, 8, 13, 2, tzinfo=UTC), datetime(2021, 8, 13, 5, tzinfo=UTC)


@pytest.fixture(scope="module")
def bundled() -> tuple:
    return ReplaySource(path=django_settings.BUNDLED_DATA_FILE, candles_per_sync=1).rows()


def ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def store(asset: Asset, bundled: tuple, *, first: datetime, last: datetime, without=()) -> None:
    """The bundled candles opened from `first` to `last`, minus the (first, last) ranges in `without`."""
    candles_upsert(
        asset=asset,
        rows=[
            row
            for row in bundled
            if first <= row.open_time <= last and not any(a <= row.open_time <= b for a, b in without)
        ],
    )


def stored(asset: Asset, first: datetime, last: datetime) -> int:
    return Candle.objects.filter(asset=asset, open_time__gte=first, open_time__lte=last).count()


def test_a_hole_is_filled_with_the_exchanges_candles_in_one_request(btc, fake_binance, bundled):
    hole = (datetime(2022, 2, 20, 0, tzinfo=UTC), datetime(2022, 2, 21, 23, tzinfo=UTC))  # 48 hours
    store(btc, bundled, first=LAST - 30 * 24 * HOUR, last=LAST, without=[hole])

    result = asset_sync(asset=btc, now=AFTER_BUNDLED_YEAR)

    assert result.ok, result.error
    assert result.inserted == 0  # up to date: the append asked for nothing
    assert (result.gaps.filled, result.gaps.confirmed_empty, result.gaps.still_missing) == (48, 0, 0)
    assert result.gaps.requests == 1 and result.gaps.error == ""
    [request] = fake_binance.kline_requests
    assert (int(request["startTime"]), int(request["endTime"])) == (ms(hole[0]), ms(hole[1]))
    assert stored(btc, *hole) == 48
    noon = Candle.objects.get(asset=btc, open_time=datetime(2022, 2, 20, 12, tzinfo=UTC))
    kline = next(k for k in fake_binance.klines if k[0] == ms(noon.open_time))
    assert (noon.open, noon.close, noon.trades) == (Decimal(kline[1]), Decimal(kline[4]), kline[8])
    assert not ConfirmedOutage.objects.exists()

    again = asset_sync(asset=btc, now=AFTER_BUNDLED_YEAR)

    assert not again.gaps.anything
    assert len(fake_binance.kline_requests) == 1  # nothing left to ask


def test_hours_the_exchange_has_no_candle_for_are_remembered_and_not_asked_again(btc, fake_binance, bundled):
    store(btc, bundled, first=OUTAGE_FIRST - 24 * HOUR, last=OUTAGE_LAST + 24 * HOUR)

    first = asset_gaps_fill(asset=btc, source=source_for(), now=AFTER_BUNDLED_YEAR)

    assert (first.filled, first.confirmed_empty, first.still_missing, first.requests) == (0, 4, 0, 1)
    outage = ConfirmedOutage.objects.get()
    assert (outage.asset, outage.source, outage.first_hour, outage.last_hour, outage.hours) == (
        btc,
        "binance",
        OUTAGE_FIRST,
        OUTAGE_LAST,
        4,
    )

    for _ in range(3):
        later = asset_gaps_fill(asset=btc, source=source_for(), now=AFTER_BUNDLED_YEAR)
        assert (later.requests, later.confirmed_empty, later.still_missing) == (0, 0, 0)
    assert len(fake_binance.kline_requests) == 1


def test_a_hole_that_is_partly_an_outage_stores_the_candles_and_remembers_the_rest(
    btc, fake_binance, bundled
):
    hole = (OUTAGE_FIRST - 10 * HOUR, OUTAGE_LAST + 5 * HOUR)  # 10 + 4 + 5 hours, 15 of them candles
    store(btc, bundled, first=OUTAGE_FIRST - 24 * HOUR, last=OUTAGE_LAST + 24 * HOUR, without=[hole])

    result = asset_gaps_fill(asset=btc, source=source_for(), now=AFTER_BUNDLED_YEAR)

    assert (result.filled, result.confirmed_empty, result.still_missing) == (15, 4, 0)
    assert stored(btc, *hole) == 15
    assert list(ConfirmedOutage.objects.values_list("first_hour", "last_hour")) == [
        (OUTAGE_FIRST, OUTAGE_LAST)
    ]


def test_a_failed_request_confirms_nothing_and_is_asked_again_by_the_next_sync(btc, fake_binance, bundled):
    hole = (datetime(2022, 2, 20, 0, tzinfo=UTC), datetime(2022, 2, 20, 9, tzinfo=UTC))
    store(btc, bundled, first=LAST - 30 * 24 * HOUR, last=LAST, without=[hole])
    fake_binance.fail_next("server_error", times=4)  # every attempt of one sync

    result = asset_sync(asset=btc, now=AFTER_BUNDLED_YEAR)

    # The append succeeded: the sync is not a failure, the hole is reported as still missing.
    assert result.ok
    assert "HTTP 503" in result.gaps.error and "after 4 attempt(s)" in result.gaps.error
    assert (result.gaps.filled, result.gaps.confirmed_empty, result.gaps.still_missing) == (0, 0, 10)
    assert "failed, retried next sync" in str(result.gaps)
    assert len(fake_binance.kline_requests) == 4  # 1 + BINANCE_MAX_RETRIES
    btc.refresh_from_db()
    assert btc.last_sync_error == HOLES_ERROR_PREFIX + result.gaps.error and btc.last_synced_at is not None
    assert stored(btc, *hole) == 0 and not ConfirmedOutage.objects.exists()

    fake_binance.requests.clear()
    again = asset_sync(asset=btc, now=AFTER_BUNDLED_YEAR)

    assert (again.gaps.filled, again.gaps.still_missing, again.gaps.error) == (10, 0, "")
    assert [int(r["startTime"]) for r in fake_binance.kline_requests] == [ms(hole[0])]
    assert stored(btc, *hole) == 10
    btc.refresh_from_db()
    assert btc.last_sync_error == ""


def test_a_bad_kline_in_a_hole_keeps_the_candles_before_it_and_confirms_nothing(btc, fake_binance, bundled):
    hole = (datetime(2022, 2, 20, 0, tzinfo=UTC), datetime(2022, 2, 20, 9, tzinfo=UTC))
    store(btc, bundled, first=LAST - 30 * 24 * HOUR, last=LAST, without=[hole])
    bad = next(k for k in fake_binance.klines if k[0] == ms(datetime(2022, 2, 20, 6, tzinfo=UTC)))
    bad[4] = "999999"  # close above high

    result = asset_sync(asset=btc, now=AFTER_BUNDLED_YEAR)

    assert result.ok
    assert "kline opened at 2022-02-20 06:00 UTC: close 999999 is outside [low" in result.gaps.error
    assert (result.gaps.filled, result.gaps.confirmed_empty, result.gaps.still_missing) == (6, 0, 4)
    assert len(fake_binance.kline_requests) == 1  # not retried
    assert stored(btc, *hole) == 6
    assert not ConfirmedOutage.objects.exists()


def test_a_bad_kline_in_a_hole_is_the_assets_sync_error_until_a_fill_works_again(btc, fake_binance, bundled):
    hole = (datetime(2022, 2, 20, 0, tzinfo=UTC), datetime(2022, 2, 20, 9, tzinfo=UTC))
    store(btc, bundled, first=LAST - 30 * 24 * HOUR, last=LAST - 3 * HOUR, without=[hole])
    bad = next(k for k in fake_binance.klines if k[0] == ms(datetime(2022, 2, 20, 6, tzinfo=UTC)))
    good_close, bad[4] = bad[4], "999999"  # close above high: every sync fails on it

    for _ in range(2):
        result = asset_sync(asset=btc, now=AFTER_BUNDLED_YEAR)

        assert result.ok and result.last_open_time == LAST  # the newest candles are stored
        btc.refresh_from_db()
        assert btc.last_sync_error.startswith(HOLES_ERROR_PREFIX)
        assert "kline opened at 2022-02-20 06:00 UTC: close 999999 is outside" in btc.last_sync_error
        assert not btc.new_candles_failing
    assert stored(btc, *hole) == 6

    bad[4] = good_close  # the exchange corrected it
    healed = asset_sync(asset=btc, now=AFTER_BUNDLED_YEAR)

    assert (healed.gaps.filled, healed.gaps.error) == (4, "")
    btc.refresh_from_db()
    assert btc.last_sync_error == "" and stored(btc, *hole) == 10


def test_each_sync_makes_at_most_the_configured_requests_newest_hours_first(
    btc, fake_binance, bundled, settings
):
    hole = (LAST - 2500 * HOUR, LAST - 11 * HOUR)  # 2490 hours
    store(btc, bundled, first=LAST - 2600 * HOUR, last=LAST, without=[hole])
    settings.SYNC_GAP_REQUESTS = 2

    result = asset_sync(asset=btc, now=AFTER_BUNDLED_YEAR)

    assert (result.gaps.requests, result.gaps.filled, result.gaps.still_missing) == (2, 2000, 490)
    assert [(int(r["startTime"]), int(r["endTime"])) for r in fake_binance.kline_requests] == [
        (ms(hole[1] - 999 * HOUR), ms(hole[1])),
        (ms(hole[1] - 1999 * HOUR), ms(hole[1] - 1000 * HOUR)),
    ]
    assert stored(btc, hole[0], hole[1] - 2000 * HOUR) == 0

    rest = asset_sync(asset=btc, now=AFTER_BUNDLED_YEAR)

    assert (rest.gaps.requests, rest.gaps.filled, rest.gaps.still_missing) == (1, 490, 0)
    assert stored(btc, *hole) == 2490


def test_near_holes_share_one_request(btc, fake_binance, bundled):
    holes = [(LAST - 700 * HOUR, LAST - 690 * HOUR), (LAST - 300 * HOUR, LAST - 299 * HOUR)]
    store(btc, bundled, first=LAST - 800 * HOUR, last=LAST, without=holes)

    result = asset_gaps_fill(asset=btc, source=source_for(), now=AFTER_BUNDLED_YEAR)

    assert (result.requests, result.filled) == (1, 13)
    [request] = fake_binance.kline_requests
    assert (int(request["startTime"]), int(request["endTime"])) == (ms(holes[0][0]), ms(holes[1][1]))


def test_no_requests_for_holes_when_turned_off(btc, fake_binance, bundled, settings):
    store(btc, bundled, first=LAST - 100 * HOUR, last=LAST, without=[(LAST - 50 * HOUR, LAST - 40 * HOUR)])
    settings.SYNC_GAP_REQUESTS = 0

    result = asset_sync(asset=btc, now=AFTER_BUNDLED_YEAR)

    assert (result.gaps.requests, result.gaps.still_missing) == (0, 11)
    assert fake_binance.kline_requests == []


def test_new_candles_are_fetched_before_holes_and_as_before(btc, fake_binance, bundled):
    hole = (LAST - 50 * HOUR, LAST - 41 * HOUR)
    store(btc, bundled, first=LAST - 100 * HOUR, last=LAST - 5 * HOUR, without=[hole])

    result = asset_sync(asset=btc, now=AFTER_BUNDLED_YEAR)

    assert result.ok
    assert result.inserted == 5
    assert result.note == "binance: 5 closed candle(s) from 2022-03-06 12:00 UTC"
    assert result.last_open_time == LAST
    assert result.gaps.filled == 10
    starts = [int(r["startTime"]) for r in fake_binance.kline_requests]
    assert starts == [ms(LAST - 4 * HOUR), ms(hole[0])]  # the append first


def test_a_failed_append_leaves_the_holes_for_later(btc, fake_binance, bundled):
    store(
        btc,
        bundled,
        first=LAST - 100 * HOUR,
        last=LAST - 5 * HOUR,
        without=[(LAST - 50 * HOUR, LAST - 41 * HOUR)],
    )
    fake_binance.fail_next("server_error", times=10)

    result = asset_sync(asset=btc, now=AFTER_BUNDLED_YEAR)

    assert not result.ok and "HTTP 503" in result.error
    assert result.gaps is None
    assert len(fake_binance.kline_requests) == 4  # the append's attempts only
    assert stored(btc, LAST - 50 * HOUR, LAST - 41 * HOUR) == 0


def test_filled_candles_trigger_a_rescoring_refresh_after_commit(
    btc, fake_binance, bundled, django_capture_on_commit_callbacks
):
    hole = (LAST - 50 * HOUR, LAST - 41 * HOUR)
    store(btc, bundled, first=LAST - 100 * HOUR, last=LAST, without=[hole])

    with django_capture_on_commit_callbacks() as callbacks:
        asset_sync(asset=btc, now=AFTER_BUNDLED_YEAR)

    [refresh] = callbacks
    assert refresh.args == (btc.symbol, *hole)

    with django_capture_on_commit_callbacks() as callbacks:
        asset_sync(asset=btc, now=AFTER_BUNDLED_YEAR)
    assert callbacks == []


def test_the_replay_source_fills_holes_and_confirms_its_outages_for_itself_only(
    btc, bundled, fake_binance, settings
):
    settings.MARKET_DATA_SOURCE = "replay"
    hole = (datetime(2021, 8, 12, 0, tzinfo=UTC), datetime(2021, 8, 14, 0, tzinfo=UTC))  # across the outage
    store(
        btc,
        bundled,
        first=datetime(2021, 8, 1, tzinfo=UTC),
        last=datetime(2021, 9, 1, tzinfo=UTC),
        without=[hole],
    )

    result = asset_gaps_fill(asset=btc, source=source_for(), now=AFTER_BUNDLED_YEAR)

    assert (result.filled, result.confirmed_empty, result.still_missing) == (49 - 4, 4, 0)
    assert list(ConfirmedOutage.objects.values_list("source", "first_hour")) == [("replay", OUTAGE_FIRST)]
    assert fake_binance.kline_requests == []

    # Binance has not been asked about those hours: a switch to it asks once.
    settings.MARKET_DATA_SOURCE = "binance"
    switched = asset_gaps_fill(asset=btc, source=source_for(), now=AFTER_BUNDLED_YEAR)

    assert (switched.requests, switched.confirmed_empty) == (1, 4)
    assert len(fake_binance.kline_requests) == 1


def test_the_replay_source_confirms_no_outage_beyond_its_data_and_says_replay_has_nothing_there(
    btc, bundled, settings
):
    # The fresh-user review: the replay's first 90 % stored, then a Binance file of 2025 imported.
    settings.MARKET_DATA_SOURCE = "replay"
    revealed_last = datetime(2022, 1, 29, 4, tzinfo=UTC)
    store(btc, bundled, first=datetime(2022, 1, 1, tzinfo=UTC), last=revealed_last)
    year_2025 = datetime(2025, 1, 1, tzinfo=UTC)
    candles_upsert(
        asset=btc,
        rows=[
            replace(bundled[-1], open_time=year_2025 + k * HOUR, close_time=year_2025 + (k + 1) * HOUR - MS)
            for k in range(2)
        ],
        now=datetime(2025, 1, 2, tzinfo=UTC),
    )

    result = asset_sync(asset=btc, now=datetime(2025, 1, 1, 2, 1, tzinfo=UTC))

    assert result.ok, result.error
    assert "replay data exhausted" in result.note
    inside = (LAST - revealed_last) // HOUR  # the rest of the bundled year, which replay does have
    beyond = (year_2025 - LAST) // HOUR - 1
    assert (result.gaps.filled, result.gaps.still_missing, result.gaps.beyond_source) == (inside, 0, beyond)
    assert result.gaps.confirmed_empty == 0
    assert not ConfirmedOutage.objects.filter(first_hour__gt=LAST).exists()
    assert not ConfirmedOutage.objects.exists()  # no outage in the bundled year after 2022-01-29
    assert (
        f"{beyond} missing hour(s) outside the replay data (2021-03-06 17:00 to 2022-03-06 16:00 UTC): "
        "replay has nothing there, they stay missing"
    ) in str(result.gaps)

    # Asked again by every sync, never confirmed: they are not outages.
    again = asset_sync(asset=btc, now=datetime(2025, 1, 1, 3, 1, tzinfo=UTC))
    assert (again.gaps.requests, again.gaps.confirmed_empty, again.gaps.beyond_source) == (0, 0, beyond)
    assert not ConfirmedOutage.objects.exists()
    btc.refresh_from_db()
    assert btc.last_sync_error == ""


def test_the_replay_source_refuses_a_range_outside_its_data_rather_than_answer_it_empty(bundled):
    source = ReplaySource(path=django_settings.BUNDLED_DATA_FILE, candles_per_sync=1)

    with pytest.raises(SourceError, match="replay has no data from 2022-03-06 10:00 to 2022-03-07 10:00 UTC"):
        source.fetch_range(
            symbol="BTCUSDT", first=LAST - 6 * HOUR, last=LAST + 18 * HOUR, now=AFTER_BUNDLED_YEAR + 24 * HOUR
        )
    assert source.coverage(symbol="BTCUSDT") == (datetime(2021, 3, 6, 17, tzinfo=UTC), LAST)
