"""import_candles on top of a stored history: a file far from it is refused unless allowed, and a
new asset is created inactive unless --activate, so a mistaken file or symbol publishes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from markets.models import Asset, Candle
from markets.selectors import asset_list
from markets.services import ImportHoleError, candles_import_csv
from markets.sources.replay import ReplaySource

pytestmark = pytest.mark.django_db

HOUR = timedelta(hours=1)
YEAR_2025 = datetime(2025, 1, 1, tzinfo=UTC)


def run(*args: str) -> str:
    out = StringIO()
    call_command("import_candles", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def moved_to(start: datetime):
    """An edit for write_csv: the rows' times moved to consecutive hours from `start`."""

    def edit(lines: list[str]) -> list[str]:
        moved = [lines[0]]
        for k, line in enumerate(lines[1:]):
            cells = line.split(",")
            opened = start + k * HOUR
            cells[1] = f"{opened:%Y-%m-%d %H:%M:%S}"
            cells[7] = str(int((opened + HOUR).timestamp() * 1000) - 1)
            moved.append(",".join(cells))
        return moved

    return edit


@pytest.fixture
def btc_history(write_csv) -> Asset:
    """BTCUSDT, active, with the bundled year's first 300 hours (2021-03-06 17:00 to 2021-03-19 04:00)."""
    run("--symbol", "BTCUSDT", "--activate", str(write_csv(0, 300, name="start.csv")))
    return Asset.objects.get(symbol="BTCUSDT")


def test_a_file_from_another_year_is_refused_naming_the_hole_and_nothing_changes(btc_history, write_csv):
    # The fresh-user review: Binance's dump of 2025-01 on top of the bundled 2021-2022 year.
    path = write_csv(0, 2, name="BTCUSDT-1h-2025-01.csv", edit=moved_to(YEAR_2025))

    with pytest.raises(CommandError) as refused:
        run("--symbol", "btcusdt", str(path))

    message = str(refused.value)
    assert message.startswith(f"{path}: nothing imported: it would leave a hole of 33211 missing hours")
    assert "2021-03-19 05:00 to 2024-12-31 23:00 UTC" in message
    assert "stored BTCUSDT candles (2021-03-06 17:00 to 2021-03-19 04:00 UTC)" in message
    assert message.endswith("to import it anyway, use --allow-hole.")
    assert Candle.objects.count() == 300
    assert not Candle.objects.filter(open_time__gte=YEAR_2025).exists()


def test_a_file_far_before_the_stored_history_is_refused_too(write_csv):
    run("--symbol", "BTCUSDT", str(write_csv(100, 300, name="later.csv")))

    with pytest.raises(CommandError, match="it would leave a hole of 52 missing hours"):
        run("--symbol", "BTCUSDT", str(write_csv(0, 48, name="earlier.csv")))
    assert Candle.objects.count() == 200


def test_a_hole_of_a_day_or_less_is_imported_without_a_flag(btc_history, write_csv):
    out = run("--symbol", "BTCUSDT", str(write_csv(324, 330, name="next.csv")))  # 24 hours after

    assert "6 inserted" in out
    assert "Warning" not in out
    assert "2021-03-19 04:00 → 2021-03-20 05:00 UTC: 24 missing hours" in out  # the gap report, as before


def test_allow_hole_imports_it_all_and_warns(btc_history, write_csv):
    path = write_csv(0, 2, name="BTCUSDT-1h-2025-01.csv", edit=moved_to(YEAR_2025))

    out = run("--symbol", "BTCUSDT", "--allow-hole", str(path))

    assert "BTCUSDT: 2 inserted, 0 already present" in out
    assert (
        "Warning: this import left a hole of 33211 missing hours (2021-03-19 05:00 to 2024-12-31 23:00 UTC)"
        in out
    )
    assert "the replay source has none outside its bundled year" in out
    assert Candle.objects.count() == 302
    # Imported again, it touches the stored span: nothing to refuse, nothing added (idempotent).
    again = run("--symbol", "BTCUSDT", str(path))
    assert "0 inserted, 2 already present" in again and "Warning" not in again


def test_files_that_fill_or_extend_the_stored_history_are_never_refused(btc_history, write_csv):
    assert "100 inserted" in run("--symbol", "BTCUSDT", str(write_csv(300, 400, name="after.csv")))
    assert "0 inserted, 50 already present" in run(
        "--symbol", "BTCUSDT", str(write_csv(10, 60, name="in.csv"))
    )


def test_the_service_raises_before_writing_anything(btc_history, write_csv):
    with pytest.raises(ImportHoleError) as refused:
        candles_import_csv(
            symbol="BTCUSDT", path_or_file=write_csv(0, 2, name="y.csv", edit=moved_to(YEAR_2025))
        )
    assert refused.value.hole.missing_hours == 33211
    assert Candle.objects.count() == 300


def test_a_new_asset_is_created_inactive_and_the_output_says_how_to_activate_it(write_csv):
    # A typo: BTC prices under the symbol BTCUSDC must not be published as "BTC/USDC".
    out = run("--symbol", "BTCUSDC", str(write_csv(0, 24)))

    typo = Asset.objects.get(symbol="BTCUSDC")
    assert not typo.is_active
    assert list(asset_list(active_only=True)) == []
    assert "BTCUSDC (new asset): 24 inserted" in out
    assert "BTCUSDC is inactive (new assets are): it is not synced, trained or shown" in out
    assert out.endswith(
        'activate it in the admin (Assets, action "Activate") or import again with --activate.\n'
    )


def test_a_new_inactive_asset_is_not_synced_hourly(write_csv, replay):
    from markets.tasks import sync_active_assets

    run("--symbol", "XRPUSDT", str(write_csv(0, 24)))

    assert sync_active_assets.apply().get() == []


def test_activate_creates_the_asset_active(write_csv):
    out = run("--symbol", "ETHUSDT", "--activate", str(write_csv(0, 24)))

    assert Asset.objects.get(symbol="ETHUSDT").is_active
    assert "ETHUSDT is active: it is synced, trained, and shown on the pages and in the API." in out
    assert "inactive" not in out


def test_activate_activates_an_existing_inactive_asset_in_the_same_import(write_csv):
    run("--symbol", "ETHUSDT", str(write_csv(0, 24)))

    out = run("--symbol", "ETHUSDT", "--activate", str(write_csv(24, 48, name="more.csv")))

    assert Asset.objects.get(symbol="ETHUSDT").is_active
    assert "ETHUSDT is active" in out


def test_without_activate_an_existing_asset_keeps_its_state(btc_history, write_csv):
    out = run("--symbol", "BTCUSDT", str(write_csv(300, 310, name="more.csv")))
    btc_history.refresh_from_db()
    assert btc_history.is_active and "inactive" not in out and "is active" not in out

    Asset.objects.filter(pk=btc_history.pk).update(is_active=False)  # an admin deactivated it
    out = run("--symbol", "BTCUSDT", str(write_csv(310, 320, name="later.csv")))
    btc_history.refresh_from_db()
    assert not btc_history.is_active
    assert "BTCUSDT is inactive: it is not synced" in out


def test_a_refused_file_creates_no_asset_and_activates_nothing(write_csv):
    run("--symbol", "ETHUSDT", str(write_csv(0, 24)))

    with pytest.raises(CommandError, match="nothing imported"):
        run("--symbol", "ETHUSDT", "--activate", str(write_csv(0, 2, name="y.csv", edit=moved_to(YEAR_2025))))

    assert not Asset.objects.get(symbol="ETHUSDT").is_active


def test_the_replay_source_covers_the_bundled_year(settings):
    source = ReplaySource(path=settings.BUNDLED_DATA_FILE, candles_per_sync=1)
    assert source.coverage(symbol="btcusdt")[0] == datetime(2021, 3, 6, 17, tzinfo=UTC)
