"""Selectors: assets by symbol, recent and ranged candles, the ML frame, gaps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from django.conf import settings

from markets.models import Asset, Candle, ConfirmedOutage
from markets.selectors import (
    FRAME_COLUMNS,
    asset_gaps,
    asset_get,
    asset_list,
    asset_unconfirmed_gaps,
    candle_last_open_time,
    candle_list,
    candles_frame,
    gaps_by_lag,
    gaps_by_scan,
    hour_ranges_subtract,
)
from markets.services import candles_upsert
from markets.sources.replay import ReplaySource

pytestmark = pytest.mark.django_db

START = datetime(2021, 3, 6, 17, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.fixture
def btc_slice(btc) -> Asset:
    """1,200 bundled candles (2021-03-06 17:00 onwards), across the first two outages."""
    rows = ReplaySource(path=settings.BUNDLED_DATA_FILE, candles_per_sync=1).rows()[:1200]
    candles_upsert(asset=btc, rows=rows)
    return btc


def test_asset_get_ignores_case_and_spaces(btc):
    assert asset_get(symbol=" btcUSDT ") == btc
    with pytest.raises(Asset.DoesNotExist):
        asset_get(symbol="ETHUSDT")


def test_asset_list_annotates_counts_in_one_query(btc_slice, django_assert_num_queries):
    Asset.objects.create(symbol="ETHUSDT", base="ETH", quote="USDT", is_active=False)

    with django_assert_num_queries(1):
        assets = {a.symbol: (a.candle_count, a.last_candle_time) for a in asset_list()}

    assert assets["ETHUSDT"] == (0, None)
    assert assets["BTCUSDT"][0] == 1200
    assert [a.symbol for a in asset_list(active_only=True)] == ["BTCUSDT"]


def test_candle_list_returns_the_last_ones_oldest_first(btc_slice):
    recent = candle_list(asset=btc_slice, limit=3)

    assert [c["open_time"] for c in recent] == [
        candle_last_open_time(asset=btc_slice) - h * HOUR for h in (2, 1, 0)
    ]


def test_candle_list_is_oldest_first_and_inclusive(btc_slice):
    candles = candle_list(asset=btc_slice, start=START + HOUR, end=START + 4 * HOUR)

    assert [c["open_time"] for c in candles] == [START + h * HOUR for h in (1, 2, 3, 4)]


def test_candle_list_limit_without_start_keeps_the_newest_up_to_end(btc_slice):
    up_to_end = candle_list(asset=btc_slice, end=START + 10 * HOUR, limit=2)

    assert [c["open_time"] for c in up_to_end] == [START + 9 * HOUR, START + 10 * HOUR]


def test_candle_list_limit_with_start_keeps_the_first_from_start(btc_slice):
    # A client asking from a start wants that stretch, not the newest candles (as Binance's klines).
    from_start = candle_list(asset=btc_slice, start=START + 3 * HOUR, limit=2)
    in_range = candle_list(asset=btc_slice, start=START + 3 * HOUR, end=START + 10 * HOUR, limit=2)

    assert [c["open_time"] for c in from_start] == [START + 3 * HOUR, START + 4 * HOUR]
    assert [c["open_time"] for c in in_range] == [START + 3 * HOUR, START + 4 * HOUR]


def test_candle_list_pages_forward_and_back_without_loss(btc_slice):
    forward, start = [], START
    while page := candle_list(asset=btc_slice, start=start, limit=500):
        forward += page
        start = page[-1]["open_time"] + HOUR
    back, end = [], None
    while page := candle_list(asset=btc_slice, end=end, limit=500):
        back = page + back
        end = page[0]["open_time"] - HOUR

    assert len(forward) == 1200
    assert forward == candle_list(asset=btc_slice, limit=5000)
    assert back == forward


def test_candles_frame_has_the_pipeline_columns_and_types(btc_slice):
    frame = candles_frame(asset=btc_slice)

    assert list(frame.columns) == list(FRAME_COLUMNS)
    assert len(frame) == 1200
    assert isinstance(frame["open_time"].dtype, pd.DatetimeTZDtype)
    assert str(frame["open_time"].dt.tz) == "UTC"
    assert all(frame[c].dtype == "float64" for c in FRAME_COLUMNS[1:])
    assert frame["open_time"].is_monotonic_increasing
    first = frame.iloc[0]
    assert first["open_time"] == pd.Timestamp(START)
    assert (first["open"], first["trades"]) == (47755.08, 74126.0)


def test_candles_frame_since_keeps_the_later_rows(btc_slice):
    frame = candles_frame(asset=btc_slice, since=START + 100 * HOUR)

    assert frame["open_time"].iloc[0] == pd.Timestamp(START + 100 * HOUR)
    assert len(frame) == 1100
    assert candles_frame(asset=btc_slice, since=START + 10_000 * HOUR).empty


def test_an_empty_frame_still_has_its_columns(btc):
    frame = candles_frame(asset=btc)

    assert frame.empty and list(frame.columns) == list(FRAME_COLUMNS)


def test_asset_gaps_lists_the_missing_hours(btc_slice):
    gaps = asset_gaps(asset=btc_slice)

    assert [(g.after, g.before, g.missing_hours) for g in gaps] == [
        (datetime(2021, 4, 20, 1, tzinfo=UTC), datetime(2021, 4, 20, 4, tzinfo=UTC), 2),
        (datetime(2021, 4, 25, 4, tzinfo=UTC), datetime(2021, 4, 25, 8, tzinfo=UTC), 3),
    ]
    assert gaps[0].first_missing == datetime(2021, 4, 20, 2, tzinfo=UTC)
    assert asset_gaps(asset=btc_slice, since=datetime(2021, 4, 21, tzinfo=UTC))[0].missing_hours == 3


def hours(*pairs: tuple[int, int]) -> list[tuple[datetime, datetime]]:
    return [(START + a * HOUR, START + b * HOUR) for a, b in pairs]


def test_hour_ranges_subtract_keeps_the_hours_outside_the_removed_ranges():
    ranges = hours((0, 9), (20, 29), (40, 41))
    removed = hours((2, 3), (5, 5), (8, 22), (25, 26), (40, 41), (50, 60))

    assert hour_ranges_subtract(ranges, removed) == hours((0, 1), (4, 4), (6, 7), (23, 24), (27, 29))
    assert hour_ranges_subtract(ranges, []) == ranges
    assert hour_ranges_subtract([], removed) == []


def test_unconfirmed_gaps_leave_out_the_outages_the_source_confirmed(btc_slice):
    # The slice's outages: 2021-04-20 02:00-03:00 and 2021-04-25 05:00-07:00.
    first_outage = (datetime(2021, 4, 20, 2, tzinfo=UTC), datetime(2021, 4, 20, 3, tzinfo=UTC))
    second_outage = (datetime(2021, 4, 25, 5, tzinfo=UTC), datetime(2021, 4, 25, 7, tzinfo=UTC))
    assert asset_unconfirmed_gaps(asset=btc_slice, source="binance") == [first_outage, second_outage]

    ConfirmedOutage.objects.create(
        asset=btc_slice, source="binance", first_hour=first_outage[0], last_hour=first_outage[1]
    )
    ConfirmedOutage.objects.create(
        asset=btc_slice, source="replay", first_hour=second_outage[0], last_hour=second_outage[1]
    )

    assert asset_unconfirmed_gaps(asset=btc_slice, source="binance") == [second_outage]
    assert asset_unconfirmed_gaps(asset=btc_slice, source="replay") == [first_outage]


def test_a_candle_stored_inside_a_confirmed_outage_does_not_hide_another_hole(btc_slice):
    outage = (datetime(2021, 4, 20, 2, tzinfo=UTC), datetime(2021, 4, 20, 3, tzinfo=UTC))
    second = (datetime(2021, 4, 25, 5, tzinfo=UTC), datetime(2021, 4, 25, 7, tzinfo=UTC))
    ConfirmedOutage.objects.create(
        asset=btc_slice, source="binance", first_hour=outage[0], last_hour=outage[1]
    )
    ConfirmedOutage.objects.create(
        asset=btc_slice, source="binance", first_hour=second[0], last_hour=second[1]
    )
    assert asset_unconfirmed_gaps(asset=btc_slice, source="binance") == []
    # An import later stores an hour of the first outage, and an hour goes missing elsewhere:
    # the count alone would add up again.
    emptied = datetime(2021, 4, 10, 12, tzinfo=UTC)
    Candle.objects.filter(asset=btc_slice, open_time=emptied).update(open_time=outage[0])

    assert asset_unconfirmed_gaps(asset=btc_slice, source="binance") == [(emptied, emptied)]


def test_the_database_and_python_find_the_same_gaps(btc_slice):
    # asset_gaps uses one or the other depending on the database: both run on each.
    candles = Candle.objects.filter(asset=btc_slice)

    assert gaps_by_lag(candles) == gaps_by_scan(candles) == asset_gaps(asset=btc_slice)
    assert len(gaps_by_lag(candles)) == 2
