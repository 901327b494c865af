"""manage.py import_candles: the bundled year, re-import, a corrupted copy, the gap report."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from forecasting.models import Forecast, ModelVersion
from markets.models import CANDLE_FIELDS, Asset, Candle
from markets.selectors import asset_gaps
from tests.web.factories import forecast_create, version_create

pytestmark = pytest.mark.django_db

BUNDLED_GAPS = [
    "2021-04-20 01:00 → 2021-04-20 04:00 UTC: 2 missing hours",
    "2021-04-25 04:00 → 2021-04-25 08:00 UTC: 3 missing hours",
    "2021-08-13 01:00 → 2021-08-13 06:00 UTC: 4 missing hours",
    "2021-09-29 06:00 → 2021-09-29 09:00 UTC: 2 missing hours",
]


def run(*args: str) -> str:
    out = StringIO()
    call_command("import_candles", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_the_bundled_year_imports_once_and_reimporting_adds_nothing():
    first = run("--symbol", "BTCUSDT", str(settings.BUNDLED_DATA_FILE))
    second = run("--symbol", "btcusdt", str(settings.BUNDLED_DATA_FILE))

    assert Candle.objects.count() == 8749
    assert "BTCUSDT (new asset): 8749 inserted, 0 already present" in first
    assert "BTCUSDT: 0 inserted, 8749 already present" in second and "Warning" not in second
    # The four exchange outages are reported, and stay missing.
    assert "Gap report for BTCUSDT: 4 gap(s), 11 missing hour(s)" in first
    for gap in BUNDLED_GAPS:
        assert gap in first
    assert [str(g).split(" (")[0] for g in asset_gaps(asset=Asset.objects.get())] == BUNDLED_GAPS


def test_a_corrupted_copy_names_the_line_and_leaves_the_table_as_it_was(write_csv, tmp_path):
    run("--symbol", "BTCUSDT", str(write_csv(0, 48, name="day.csv")))

    def corrupt(lines: list[str]) -> list[str]:
        cells = lines[300].split(",")
        cells[3] = "not-a-price"  # high of data row 299, file line 301
        return [*lines[:300], ",".join(cells), *lines[301:]]

    bad = write_csv(0, 400, name="bad.csv.gz", edit=corrupt)

    with pytest.raises(CommandError) as caught:
        run("--symbol", "BTCUSDT", str(bad))

    assert "nothing imported" in str(caught.value)
    assert "line 301: high 'not-a-price' is not a number" in str(caught.value)
    assert Candle.objects.count() == 48


def test_a_reimport_with_other_prices_keeps_the_stored_candles_and_says_so(write_csv):
    run("--symbol", "BTCUSDT", str(write_csv(0, 24, name="day.csv")))

    def change_close(lines: list[str]) -> list[str]:
        cells = lines[2].split(",")  # 2021-03-06 18:00, close 48473.30 (still inside [low, high])
        cells[5] = "48300.00000000"
        return [*lines[:2], ",".join(cells), *lines[3:]]

    out = run("--symbol", "BTCUSDT", str(write_csv(0, 24, name="changed.csv", edit=change_close)))

    assert "BTCUSDT: 0 inserted, 24 already present, in" in out
    assert (
        "Warning: 1 of the candles already present have other values in the file "
        "(first: 2021-03-06 18:00 UTC: close 48300 in the file, 48473.3 stored); "
    ) in out
    assert (
        "the stored candles were kept. To store the file's values instead, import it again with --replace."
        in out
    )
    assert str(Candle.objects.get(open_time="2021-03-06T18:00:00Z").close).startswith("48473.3")


def edit_cell(lines: list[str], row: int, column: int, value: str) -> list[str]:
    """Set field `column` of data row `row` (0-based; file line row + 2)."""
    cells = lines[row + 1].split(",")
    cells[column] = value
    return [*lines[: row + 1], ",".join(cells), *lines[row + 2 :]]


def test_differences_show_prices_as_written_not_with_the_columns_ten_places(write_csv):
    original = write_csv(0, 24, name="day.csv")  # low of 2021-03-06 18:00: 48109.79000000
    lowered = write_csv(
        0, 24, name="lowered.csv", edit=lambda lines: edit_cell(lines, 1, 4, "48100.00000000")
    )
    run("--symbol", "BTCUSDT", str(original))

    kept = run("--symbol", "BTCUSDT", str(lowered))
    replaced = run("--replace", "--symbol", "BTCUSDT", str(lowered))
    back = run("--symbol", "BTCUSDT", str(original))  # the stored low is now a whole number

    assert "2021-03-06 18:00 UTC: low 48100 in the file, 48109.79 stored)" in kept
    assert "2021-03-06 18:00 UTC: low 48100 in the file, 48109.79 stored)" in replaced
    assert "2021-03-06 18:00 UTC: low 48109.79 in the file, 48100 stored)" in back  # not 4.81E+4
    assert "0000 " not in kept + replaced + back and "E+" not in kept + replaced + back


def test_replace_stores_the_files_values_and_says_how_many(write_csv):
    run("--symbol", "BTCUSDT", str(write_csv(0, 24, name="day.csv")))
    before = {c.open_time: c for c in Candle.objects.all()}

    def correct(lines: list[str]) -> list[str]:
        lines = edit_cell(lines, 1, 5, "48300.00000000")  # close of 2021-03-06 18:00
        return edit_cell(lines, 7, 6, "1234.5")  # volume of 2021-03-07 00:00: not only prices count

    # Two days: the first day's candles are stored, the second's are new.
    out = run("--replace", "--symbol", "BTCUSDT", str(write_csv(0, 48, name="fixed.csv", edit=correct)))

    assert "BTCUSDT: 24 inserted, 24 already present (2 of them replaced), in" in out
    assert (
        "Replaced 2 stored candle(s) with the file's values "
        "(first: 2021-03-06 18:00 UTC: close 48300 in the file, 48473.3 stored)."
    ) in out
    assert "Warning" not in out
    assert Candle.objects.get(open_time="2021-03-06T18:00:00Z").close == Decimal("48300")
    assert Candle.objects.get(open_time="2021-03-07T00:00:00Z").volume == Decimal("1234.5")
    for candle in Candle.objects.filter(open_time__in=before).exclude(
        open_time__in=["2021-03-06T18:00:00Z", "2021-03-07T00:00:00Z"]
    ):
        assert [getattr(candle, f) for f in CANDLE_FIELDS] == [
            getattr(before[candle.open_time], f) for f in CANDLE_FIELDS
        ]
    assert Candle.objects.count() == 48


def test_replace_with_the_same_file_counts_and_writes_nothing(write_csv):
    # The bundled rows' quote volumes have 17 digits, more than SQLite keeps: stored, they
    # are not quite the file's, and must still count as the same value.
    path = write_csv(0, 300)
    run("--symbol", "BTCUSDT", str(path))

    with CaptureQueriesContext(connection) as queries:
        out = run("--replace", "--symbol", "BTCUSDT", str(path))

    assert "BTCUSDT: 0 inserted, 300 already present (0 of them replaced), in" in out
    assert "Replaced" not in out and "Warning" not in out
    assert not [q["sql"] for q in queries if q["sql"].startswith('UPDATE "markets_candle"')]


def test_replace_with_a_bad_row_changes_nothing(write_csv):
    run("--symbol", "BTCUSDT", str(write_csv(0, 24, name="day.csv")))

    def correct_then_break(lines: list[str]) -> list[str]:
        return edit_cell(edit_cell(lines, 1, 5, "48300.00000000"), 20, 4, "-1")

    with pytest.raises(CommandError) as caught:
        run(
            "--replace", "--symbol", "BTCUSDT", str(write_csv(0, 48, name="bad.csv", edit=correct_then_break))
        )

    assert "line 22: low -1 is negative" in str(caught.value)
    assert str(Candle.objects.get(open_time="2021-03-06T18:00:00Z").close).startswith("48473.3")
    assert Candle.objects.count() == 24


def test_reimporting_the_same_file_warns_of_nothing(write_csv):
    path = write_csv(0, 24)
    run("--symbol", "BTCUSDT", str(path))
    assert "Warning" not in run("--symbol", "BTCUSDT", str(path))


def test_the_gap_report_says_so_when_there_is_none(write_csv):
    out = run("--symbol", "BTCUSDT", str(write_csv(0, 24)))

    assert "Gap report for BTCUSDT: no gaps." in out


def test_an_unknown_quote_currency_fails_clearly(write_csv):
    with pytest.raises(CommandError, match="cannot tell base and quote apart in 'BTCXYZ'"):
        run("--symbol", "BTCXYZ", str(write_csv(0, 5)))
    assert not Asset.objects.exists()


def test_a_symbol_that_is_only_a_quote_currency_fails_saying_the_base_is_missing(write_csv):
    with pytest.raises(CommandError, match="'BTC' is only a quote currency: the base currency in front"):
        run("--symbol", "BTC", str(write_csv(0, 5)))
    assert not Asset.objects.exists()


def test_the_command_exits_non_zero_on_a_bad_file(tmp_path: Path, bundled_lines: list[str]):
    # A real process, to see the exit status a shell sees. The file is rejected
    # before the database is touched, so a scratch SQLite path is enough.
    bad = tmp_path / "bad.csv.gz"
    lines = bundled_lines[:20]
    lines[10] = lines[10].replace(",", ",,", 1)
    with gzip.open(bad, "wt") as out:
        out.write("\n".join(lines) + "\n")
    done = _import_in_a_process(bad, tmp_path)

    assert done.returncode == 1
    assert "line 11: expected 13 fields, found 14" in done.stderr
    assert done.stdout == ""


def _import_in_a_process(path: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`manage.py import_candles --symbol BTCUSDT path` in a real process (for its exit status), on its own SQLite."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(VAR_DIR=str(tmp_path / "var"), DEBUG="1")
    return subprocess.run(
        [sys.executable, "manage.py", "import_candles", "--symbol", "BTCUSDT", str(path)],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


class Terminal(StringIO):
    def isatty(self) -> bool:
        return True


def test_a_progress_bar_is_drawn_on_a_terminal_only(write_csv):
    terminal, pipe = Terminal(), StringIO()
    call_command(
        "import_candles", "--symbol", "BTCUSDT", str(write_csv(0, 600)), stdout=StringIO(), stderr=terminal
    )
    call_command(
        "import_candles", "--symbol", "BTCUSDT", str(write_csv(600, 900)), stdout=StringIO(), stderr=pipe
    )

    assert "Importing BTCUSDT" in terminal.getvalue()
    assert "600/600" in terminal.getvalue()
    assert pipe.getvalue() == ""


def test_a_file_named_for_another_symbol_exits_non_zero_naming_both(write_csv, tmp_path: Path):
    # A real process, for the exit status; the name is refused before the database is touched.
    path = write_csv(0, 24, name="ETHUSDT-1h-2021-03.csv")
    done = _import_in_a_process(path, tmp_path)

    assert done.returncode == 1
    assert "nothing imported" in done.stderr
    assert "the file ETHUSDT-1h-2021-03.csv is named for ETHUSDT, not BTCUSDT" in done.stderr
    assert done.stdout == ""


def test_replace_says_how_many_scored_forecasts_it_scored_again(write_csv):
    run("--symbol", "BTCUSDT", str(write_csv(0, 30, name="day.csv")))
    candles = list(Candle.objects.order_by("open_time"))
    version = version_create(asset=Asset.objects.get(), version=1, status=ModelVersion.Status.ACTIVE)
    forecast_create(version=version, base=candles[0], closes={c.open_time: float(c.close) for c in candles})

    out = run(
        "--replace",
        "--symbol",
        "BTCUSDT",
        str(write_csv(0, 30, name="fixed.csv", edit=lambda ls: edit_cell(ls, 1, 5, "48300.00000000"))),
    )

    assert "Replaced 1 stored candle(s)" in out
    assert "Scored 1 stored forecast(s) again against the corrected closes." in out
    assert Forecast.objects.get().scores[0]["actual"] == 48300.0


def _scaled(factor: int):
    """An edit of write_csv's lines: every price times `factor` (another pair's file, say)."""

    def edit(lines: list[str]) -> list[str]:
        header = lines[0].split(",")
        prices = [header.index(name) for name in ("open", "high", "low", "close")]
        scaled = [lines[0]]
        for line in lines[1:]:
            cells = line.split(",")
            for i in prices:
                cells[i] = str(Decimal(cells[i]) * factor)
            scaled.append(",".join(cells))
        return scaled

    return edit


def test_a_file_whose_prices_jump_from_the_stored_ones_is_imported_with_a_warning(write_csv):
    run("--symbol", "DOGEUSDT", str(write_csv(0, 100, name="a.csv")))

    next_hours = run("--symbol", "DOGEUSDT", str(write_csv(100, 150, name="b.csv", edit=_scaled(10_000))))
    following = run("--symbol", "DOGEUSDT", str(write_csv(150, 200, name="c.csv")))

    assert "50 inserted" in next_hours
    assert (
        "Warning: the prices jump between the file and the stored DOGEUSDT candles: the stored close at"
        in next_hours
    )
    assert "Is the file DOGEUSDT's, in the same quote currency?" in next_hours
    # The file after the scaled one: its first open against the scaled last close.
    assert "Warning: the prices jump" in following
    assert "Warning" not in run("--symbol", "DOGEUSDT", str(write_csv(200, 250, name="d.csv")))
