"""Two imports of one file at once, on PostgreSQL: the counts they report add up to the rows.

Each import runs in its own thread and database connection. The first one is
held inside its transaction (through its progress callback, after its insert)
until the second is seen waiting for a lock, so the two really overlap.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from django.db import connection, connections

from markets.models import Asset, Candle
from markets.services import ImportSummary, candles_import_csv

pytestmark = pytest.mark.django_db(transaction=True)

ROWS = 300


def _someone_waits_for_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0] > 0


def _in_thread(work: Callable[[], ImportSummary], results: dict[str, object], name: str) -> threading.Thread:
    def run() -> None:
        try:
            results[name] = work()
        except BaseException as error:  # reported by the test, not lost in the thread
            results[name] = error
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, name=f"import-{name}", daemon=True)
    thread.start()
    return thread


def import_twice_at_once(path: Path, **options: object) -> tuple[ImportSummary, ImportSummary, bool]:
    """Run two imports of `path`, the second starting while the first holds its transaction open.

    Returns both summaries and whether the second was seen waiting for a lock.
    """
    first_inside, release = threading.Event(), threading.Event()

    def hold(done: int, total: int) -> None:
        if not first_inside.is_set():
            first_inside.set()
            release.wait(30)

    results: dict[str, object] = {}
    first = _in_thread(
        lambda: candles_import_csv(symbol="BTCUSDT", path_or_file=path, progress=hold, **options),
        results,
        "first",
    )
    try:
        assert first_inside.wait(30), f"the first import never got to its insert: {results}"
        second = _in_thread(
            lambda: candles_import_csv(symbol="BTCUSDT", path_or_file=path, **options), results, "second"
        )
        deadline = time.monotonic() + 15
        waited = False
        while time.monotonic() < deadline and not waited:
            waited = _someone_waits_for_a_lock()
            time.sleep(0.05)
    finally:
        release.set()
    first.join(60)
    second.join(60)
    for name in ("first", "second"):
        if isinstance(results.get(name), BaseException):
            raise AssertionError(f"the {name} import failed") from results[name]  # type: ignore[misc]
    return results["first"], results["second"], waited  # type: ignore[return-value]


@pytest.mark.parametrize("asset_exists", [True, False], ids=["asset-stored", "asset-new"])
def test_two_concurrent_imports_of_one_file_insert_each_row_once(require_postgres, write_csv, asset_exists):
    if asset_exists:
        Asset.objects.create(symbol="BTCUSDT", base="BTC", quote="USDT")
    path = write_csv(0, ROWS)

    first, second, waited = import_twice_at_once(path)

    assert waited, "the second import never waited for the first: the test did not overlap them"
    assert first.inserted + second.inserted == ROWS
    assert first.already_present + second.already_present == ROWS
    assert (first.inserted, second.already_present) == (ROWS, ROWS)
    assert first.asset_created + second.asset_created == (0 if asset_exists else 1)
    assert Candle.objects.count() == ROWS


def test_two_concurrent_replacing_imports_replace_each_candle_once(
    require_postgres, write_csv, bundled_lines
):
    candles_import_csv(symbol="BTCUSDT", path_or_file=write_csv(0, ROWS, name="stored.csv"))

    def correct(lines: list[str]) -> list[str]:
        for row in (10, 200):  # close set to the candle's low: still a valid candle, other prices
            cells = lines[row + 1].split(",")
            cells[5] = cells[4]
            lines = [*lines[: row + 1], ",".join(cells), *lines[row + 2 :]]
        return lines

    first, second, waited = import_twice_at_once(write_csv(0, ROWS, edit=correct), replace=True)

    assert waited, "the second import never waited for the first: the test did not overlap them"
    assert (first.replaced, second.replaced) == (2, 0)
    assert second.differing == 0  # it found the first one's values, not the ones before
    assert first.inserted + second.inserted == 0
