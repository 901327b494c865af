"""The database dropping the connection in the middle of a sync leaves no half-written batch."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection

from markets.models import Candle
from markets.services import asset_sync
from tests.markets.conftest import AFTER_BUNDLED_YEAR

pytestmark = pytest.mark.django_db(transaction=True)

# When the candle of this hour is inserted (after a first batch of 500 went in),
# the database ends the session:
# the same thing a restart or a failover does to a writer.
CUT_AT = datetime(2022, 3, 1, 17, tzinfo=UTC)  # 5 days before the end: in the second batch of 500 rows


@pytest.fixture
def outage_trigger(require_postgres):
    with connection.cursor() as cursor:
        cursor.execute(
            """
            CREATE FUNCTION test_cut_connection() RETURNS trigger AS $$
            BEGIN
                IF NEW.open_time = %s THEN
                    PERFORM pg_terminate_backend(pg_backend_pid());
                END IF;
                RETURN NEW;
            END $$ LANGUAGE plpgsql;
            CREATE TRIGGER test_cut_connection BEFORE INSERT ON markets_candle
                FOR EACH ROW EXECUTE FUNCTION test_cut_connection();
            """,
            [CUT_AT],
        )
    yield
    connection.close()  # the test's connection was the one cut
    with connection.cursor() as cursor:
        cursor.execute(
            "DROP TRIGGER test_cut_connection ON markets_candle; DROP FUNCTION test_cut_connection();"
        )


def test_an_outage_mid_sync_stores_nothing_and_the_next_sync_stores_everything_once(
    btc, fake_binance, outage_trigger
):
    result = asset_sync(asset=btc, now=AFTER_BUNDLED_YEAR)

    assert not result.ok
    assert result.error.startswith("database error while storing candles")
    assert Candle.objects.count() == 0  # the rows inserted before the cut were rolled back
    btc.refresh_from_db()
    assert btc.last_sync_error == result.error and btc.last_synced_at is None

    with connection.cursor() as cursor:  # the database is back to normal
        cursor.execute("ALTER TABLE markets_candle DISABLE TRIGGER test_cut_connection")
    result = asset_sync(asset=btc, now=AFTER_BUNDLED_YEAR)

    assert result.ok, result.error
    assert result.inserted == 30 * 24
    times = list(Candle.objects.filter(asset=btc).values_list("open_time", flat=True))
    assert len(times) == len(set(times)) == 30 * 24
    btc.refresh_from_db()
    assert btc.last_sync_error == ""
