"""candles_import_csv: checks every row, then imports all or nothing, idempotently."""

from __future__ import annotations

import bz2
import io
import lzma
import re
import zipfile
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db.models.signals import post_init

from forecasting.models import Forecast, ModelVersion
from markets.csvfile import CandleFileError
from markets.models import Asset, Candle
from markets.services import AssetError, candles_import_csv
from tests.web.factories import forecast_create, version_create

pytestmark = pytest.mark.django_db


def replace_field(lines: list[str], row: int, column: str, value: str) -> list[str]:
    """Set one field of data row `row` (0-based; file line row + 2)."""
    header = lines[0].split(",")
    cells = lines[row + 1].split(",")
    cells[header.index(column)] = value
    return [*lines[: row + 1], ",".join(cells), *lines[row + 2 :]]


def test_it_imports_a_slice_and_creates_the_asset(write_csv):
    summary = candles_import_csv(symbol="btcusdt", path_or_file=write_csv(0, 300))

    asset = Asset.objects.get(symbol="BTCUSDT")
    assert (asset.base, asset.quote) == ("BTC", "USDT")
    assert summary.asset_created
    assert not asset.is_active and not summary.active  # published only once activated
    assert (summary.rows_read, summary.inserted, summary.already_present) == (300, 300, 0)
    assert summary.first_open_time == datetime(2021, 3, 6, 17, tzinfo=UTC)
    assert summary.last_open_time == datetime(2021, 3, 19, 4, tzinfo=UTC)
    assert summary.gaps == []
    assert Candle.objects.filter(asset=asset).count() == 300


def test_importing_the_same_rows_again_adds_nothing(write_csv):
    path = write_csv(0, 300)
    candles_import_csv(symbol="BTCUSDT", path_or_file=path)

    summary = candles_import_csv(symbol="BTCUSDT", path_or_file=path)

    assert (summary.inserted, summary.already_present, summary.asset_created) == (0, 300, False)
    assert Candle.objects.count() == 300


def test_an_overlapping_file_adds_only_the_new_candles(write_csv):
    candles_import_csv(symbol="BTCUSDT", path_or_file=write_csv(0, 200, name="a.csv"))

    summary = candles_import_csv(symbol="BTCUSDT", path_or_file=write_csv(150, 300, name="b.csv"))

    assert (summary.inserted, summary.already_present) == (100, 50)
    assert Candle.objects.count() == 300


def test_it_reads_gzip_and_file_objects_alike(write_csv):
    gz = write_csv(0, 50, name="slice.csv.gz")
    with gz.open("rb") as binary:
        assert candles_import_csv(symbol="BTCUSDT", path_or_file=binary).inserted == 50
    text = io.StringIO(write_csv(50, 80).read_text())
    assert candles_import_csv(symbol="BTCUSDT", path_or_file=text).inserted == 30


def test_it_reads_a_zip_holding_one_csv_as_binance_serves_its_dumps(write_csv, tmp_path):
    archive = tmp_path / "BTCUSDT-1h-2021-03.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as out:
        out.writestr("BTCUSDT-1h-2021-03.csv", write_csv(0, 60).read_text())

    assert candles_import_csv(symbol="BTCUSDT", path_or_file=archive).inserted == 60
    with archive.open("rb") as binary:  # a file object too
        assert candles_import_csv(symbol="BTCUSDT", path_or_file=binary).already_present == 60


def test_a_zip_of_several_files_is_refused_naming_them(write_csv, tmp_path):
    archive = tmp_path / "two.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("a.csv", write_csv(0, 10).read_text())
        out.writestr("b.csv", write_csv(10, 20).read_text())

    with pytest.raises(
        CandleFileError, match=r"a zip archive with 2 files \(a.csv, b.csv\): it must hold one CSV"
    ):
        candles_import_csv(symbol="BTCUSDT", path_or_file=archive)
    assert not Candle.objects.exists()


@pytest.mark.parametrize(
    ("kind", "compress"),
    [("bzip2", lambda data: bz2.compress(data)), ("xz", lambda data: lzma.compress(data))],
)
def test_other_archives_are_refused_saying_to_decompress_them(write_csv, tmp_path, kind, compress):
    path = tmp_path / "slice.csv.x"
    path.write_bytes(compress(write_csv(0, 10).read_bytes()))

    with pytest.raises(CandleFileError, match=f"a {kind} archive: decompress it first"):
        candles_import_csv(symbol="BTCUSDT", path_or_file=path)


def test_the_leading_index_column_is_optional(write_csv):
    path = write_csv(0, 24, edit=lambda lines: [line.split(",", 1)[1] for line in lines])

    assert candles_import_csv(symbol="BTCUSDT", path_or_file=path).inserted == 24


def test_it_reads_binance_headerless_dumps_with_epoch_times(write_csv, tmp_path):
    def to_dump(lines: list[str]) -> list[str]:
        out = []
        for line in lines[1:]:
            cells = line.split(",")[1:]
            opened = datetime.fromisoformat(cells[0]).replace(tzinfo=UTC)
            cells[0] = str(int(opened.timestamp() * 1000))
            out.append(",".join(cells))
        return out

    path = write_csv(0, 10, edit=to_dump)

    summary = candles_import_csv(symbol="BTCUSDT", path_or_file=path)

    assert summary.inserted == 10
    assert summary.first_open_time == datetime(2021, 3, 6, 17, tzinfo=UTC)


def test_it_reads_binance_spot_dumps_with_microsecond_times(write_csv):
    # data.binance.vision spot files since 2025 write both times in µs; older rows stay in ms.
    def to_dump(lines: list[str]) -> list[str]:
        out = []
        for number, line in enumerate(lines[1:]):
            cells = line.split(",")[1:]
            opened = int(datetime.fromisoformat(cells[0]).replace(tzinfo=UTC).timestamp() * 1000)
            if number >= 5:
                cells[0], cells[6] = f"{opened}000", f"{cells[6]}999"
            else:
                cells[0] = str(opened)
            out.append(",".join(cells))
        return out

    summary = candles_import_csv(symbol="BTCUSDT", path_or_file=write_csv(0, 10, edit=to_dump))

    assert summary.inserted == 10
    assert summary.first_open_time == datetime(2021, 3, 6, 17, tzinfo=UTC)
    assert summary.last_open_time == datetime(2021, 3, 7, 2, tzinfo=UTC)
    assert summary.gaps == []
    last = Candle.objects.get(open_time=summary.last_open_time)
    assert last.close_time == datetime(2021, 3, 7, 2, 59, 59, 999999, tzinfo=UTC)


def test_prices_are_kept_as_the_file_wrote_them(write_csv):
    candles_import_csv(symbol="BTCUSDT", path_or_file=write_csv(0, 1))

    candle = Candle.objects.get()
    # First bundled row: open 47755.08000000, high 48450.00000000, trades 74126.
    assert candle.open == Decimal("47755.08")
    assert candle.high == Decimal("48450")
    assert candle.trades == 74126


def test_postgres_keeps_every_digit_of_the_volumes(write_csv, require_postgres):
    candles_import_csv(symbol="BTCUSDT", path_or_file=write_csv(0, 1))

    # 17 significant digits: more than a float (or SQLite's REAL) holds.
    assert Candle.objects.get().quote_volume == Decimal("128615238.60874081")


@pytest.mark.parametrize(
    ("edit", "line", "words"),
    [
        (lambda ls: replace_field(ls, 40, "close", "48k"), 42, "close '48k' is not a number"),
        (lambda ls: replace_field(ls, 40, "volume", "-1"), 42, "volume -1 is negative"),
        (lambda ls: replace_field(ls, 40, "high", "1.0"), 42, "high 1.0 is below low"),
        (lambda ls: replace_field(ls, 40, "close", "99999.0"), 42, "close 99999.0 is outside [low"),
        (lambda ls: replace_field(ls, 40, "trades", "12.5"), 42, "trades '12.5' is not a whole number"),
        (
            lambda ls: replace_field(ls, 40, "close_time", "1615053599999"),
            42,
            "close_time 1615053599999 is outside",
        ),
        (lambda ls: replace_field(ls, 40, "timestamp", "2021-03-08 09:30:00"), 42, "is not on the hour"),
        (lambda ls: replace_field(ls, 40, "timestamp", "yesterday"), 42, "timestamp 'yesterday' is neither"),
        (
            lambda ls: replace_field(ls, 40, "timestamp", "1615194000"),
            42,
            "timestamp 1615194000 looks like epoch seconds",
        ),
        (
            lambda ls: replace_field(ls, 40, "timestamp", "1615194000000000000"),
            42,
            "timestamp 1615194000000000000 is neither epoch milliseconds (13 digits) nor microseconds",
        ),
        (
            lambda ls: replace_field(ls, 40, "close_time", "16151975999999990"),
            42,
            "close_time 16151975999999990 is neither",
        ),
        (lambda ls: replace_field(ls, 40, "timestamp", "9999-12-31 23:00:00"), 42, "is out of range"),
        (lambda ls: replace_field(ls, 40, "open", "0"), 42, "open 0 is not a price"),
        (
            lambda ls: replace_field(replace_field(ls, 40, "low", "0"), 40, "close", "0.0"),
            42,
            "low 0 is not a price",
        ),
        (lambda ls: replace_field(ls, 40, "volume", "1_000"), 42, "volume '1_000' is not a number"),
        (lambda ls: replace_field(ls, 40, "trades", "7\u0660"), 42, "trades '7\u0660' is not a whole number"),
        (lambda ls: replace_field(ls, 40, "tb_quote_av", "1e12"), 42, "exceeds quote volume"),
        (
            lambda ls: [*ls[:42], ls[41], *ls[42:]],
            43,
            "duplicate open time 2021-03-08 09:00 (already on line 42)",
        ),
        (lambda ls: [*ls[:41], ls[42], ls[41], *ls[43:]], 43, "earlier than line 42's"),
        (lambda ls: [*ls[:41], ls[41].rsplit(",", 1)[0], *ls[42:]], 42, "expected 13 fields, found 12"),
        (lambda ls: [ls[0].replace("tb_quote_av", "x"), *ls[1:]], 1, "missing column(s): tb_quote_av"),
    ],
)
def test_a_bad_row_is_named_by_line_and_nothing_is_imported(write_csv, edit, line, words):
    before = candles_import_csv(symbol="BTCUSDT", path_or_file=write_csv(0, 10, name="good.csv"))
    assert before.inserted == 10

    with pytest.raises(CandleFileError) as caught:
        candles_import_csv(symbol="BTCUSDT", path_or_file=write_csv(0, 100, edit=edit))

    assert str(caught.value).startswith(f"line {line}: ")
    assert words in str(caught.value)
    assert Candle.objects.count() == 10


def test_a_byte_that_is_not_utf8_is_named_by_its_line(write_csv, tmp_path):
    good = write_csv(0, 2000).read_bytes().split(b"\n")
    good[1500] = good[1500].replace(b",", b",\xe9", 1)  # latin-1 "é" in data row 1499
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"\n".join(good))

    with pytest.raises(CandleFileError) as caught:
        candles_import_csv(symbol="BTCUSDT", path_or_file=path)

    assert str(caught.value).startswith("line 1501: unreadable: byte 0xe9 at column ")
    assert not Candle.objects.exists()


def test_a_field_over_the_csv_size_limit_is_named_by_its_line(write_csv):
    path = write_csv(0, 50, edit=lambda ls: replace_field(ls, 30, "volume", "1" * 200_000))

    with pytest.raises(CandleFileError) as caught:
        candles_import_csv(symbol="BTCUSDT", path_or_file=path)

    assert str(caught.value).startswith("line 32: unreadable: field larger than field limit")


def test_a_truncated_gzip_names_the_line_where_it_breaks_off(write_csv, tmp_path):
    whole = write_csv(0, 3000, name="whole.csv.gz").read_bytes()
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(whole[: len(whole) // 2])

    with pytest.raises(CandleFileError) as caught:
        candles_import_csv(symbol="BTCUSDT", path_or_file=path)

    assert re.match(
        r"line [1-9]\d+: unreadable file from this line on: Compressed file ended", str(caught.value)
    )
    assert not Candle.objects.exists()


def test_every_bad_row_is_reported_not_only_the_first(write_csv):
    def two_bad(lines: list[str]) -> list[str]:
        return replace_field(replace_field(lines, 5, "open", "x"), 70, "low", "")

    with pytest.raises(CandleFileError) as caught:
        candles_import_csv(symbol="BTCUSDT", path_or_file=write_csv(0, 100, edit=two_bad))

    assert [p.line for p in caught.value.problems] == [7, 72]
    assert not Asset.objects.exists()  # not even the asset is created


def test_a_candle_that_has_not_closed_yet_is_refused(write_csv):
    with pytest.raises(CandleFileError, match="line 11: candle 2021-03-07 02:00 is still open"):
        candles_import_csv(
            symbol="BTCUSDT", path_or_file=write_csv(0, 10), now=datetime(2021, 3, 7, 2, 30, tzinfo=UTC)
        )
    assert not Candle.objects.exists()


def test_a_file_with_only_a_header_is_refused(write_csv):
    with pytest.raises(CandleFileError, match="no candles"):
        candles_import_csv(symbol="BTCUSDT", path_or_file=write_csv(0, 0))


def test_a_missing_file_is_refused(tmp_path):
    with pytest.raises(CandleFileError, match="is not a readable file"):
        candles_import_csv(symbol="BTCUSDT", path_or_file=tmp_path / "nope.csv")


def test_a_symbol_without_a_known_quote_is_refused(write_csv):
    with pytest.raises(AssetError, match="cannot tell base and quote apart"):
        candles_import_csv(symbol="BTCXYZ", path_or_file=write_csv(0, 5))
    assert not Candle.objects.exists()


def test_an_asset_created_concurrently_is_used_not_a_crash(write_csv):
    # Another import inserts the asset after our "does it exist?" and before our insert:
    # when the new Asset is built (post_init), after the lookup found nothing.
    def insert_first(sender, instance, **kwargs):
        post_init.disconnect(insert_first, sender=Asset)
        Asset.objects.bulk_create([Asset(symbol="BTCUSDT", base="BTC", quote="USDT")])

    post_init.connect(insert_first, sender=Asset)
    try:
        summary = candles_import_csv(symbol="BTCUSDT", path_or_file=write_csv(0, 10))
    finally:
        post_init.disconnect(insert_first, sender=Asset)

    assert not summary.asset_created
    assert summary.inserted == 10
    assert Asset.objects.count() == 1
    assert Candle.objects.filter(asset=Asset.objects.get()).count() == 10


@pytest.mark.parametrize(
    ("name", "problems"),
    [
        ("ETHUSDT-1h-2025-01.csv", ["the file ETHUSDT-1h-2025-01.csv is named for ETHUSDT, not BTCUSDT"]),
        (
            "BTCUSDT-1m-2025-01-05.csv.gz",
            ["the file BTCUSDT-1m-2025-01-05.csv.gz is named for 1m candles; only 1h candles are imported"],
        ),
        (
            "ethusdt-4h-2025-01.csv",
            [
                "the file ethusdt-4h-2025-01.csv is named for ETHUSDT, not BTCUSDT",
                "the file ethusdt-4h-2025-01.csv is named for 4h candles; only 1h candles are imported",
            ],
        ),
        (
            "BTCUSDT-1mo-2025-01.csv",
            ["the file BTCUSDT-1mo-2025-01.csv is named for 1mo candles; only 1h candles are imported"],
        ),
    ],
)
def test_a_binance_dump_named_for_another_symbol_or_interval_is_refused(write_csv, name, problems):
    candles_import_csv(symbol="BTCUSDT", path_or_file=write_csv(0, 10, name="good.csv"))
    # The rows themselves are fine (BTCUSDT's own hours): only the name says otherwise.
    path = write_csv(0, 30, name=name)

    with pytest.raises(CandleFileError) as caught:
        candles_import_csv(symbol="btcusdt", path_or_file=path)

    assert [str(p) for p in caught.value.problems] == problems
    assert Candle.objects.count() == 10


def test_a_file_object_named_for_another_symbol_is_refused_too(write_csv):
    with write_csv(0, 10, name="SOLUSDT-1h-2024-12.csv").open("rb") as binary:
        with pytest.raises(CandleFileError, match="named for SOLUSDT, not BTCUSDT"):
            candles_import_csv(symbol="BTCUSDT", path_or_file=binary)
    assert not Asset.objects.exists()


@pytest.mark.parametrize(
    "name",
    [
        "BTCUSDT-1h-2025-01.csv",
        "btcusdt-1H-2025-01-05.csv.gz",
        "btcusdt_1h_2021-03-06_2022-03-06.csv.gz",  # the bundled file's form: no claim
        "ETHUSDT_1h_2025-01.csv",  # underscores are not Binance's form either
        "prices-2025-01.csv",  # "2025" is no interval
        "my-export.csv",
    ],
)
def test_other_names_and_the_right_symbol_and_interval_are_accepted(write_csv, name):
    assert candles_import_csv(symbol="BTCUSDT", path_or_file=write_csv(0, 10, name=name)).inserted == 10


def test_replace_scores_again_the_forecasts_measured_against_a_corrected_candle(write_csv, bundled_lines):
    candles_import_csv(symbol="BTCUSDT", path_or_file=write_csv(0, 48, name="two-days.csv"))
    asset = Asset.objects.get()
    candles = list(Candle.objects.order_by("open_time"))
    closes = {c.open_time: float(c.close) for c in candles}
    version = version_create(asset=asset, version=1, status=ModelVersion.Status.ACTIVE)
    measured = forecast_create(version=version, base=candles[0], closes=closes)  # hours 1-24
    from_it = forecast_create(version=version, base=candles[5], closes=closes)  # made from the candle
    later = forecast_create(version=version, base=candles[30], closes=closes)  # hours 31-47
    old = {f.pk: (f.scores, f.last_close) for f in (measured, from_it, later)}
    # Data row 5 (2021-03-06 22:00), corrected to close at its low: still a valid candle.
    low = bundled_lines[6].split(",")[4]
    corrected = write_csv(0, 48, name="corrected.csv", edit=lambda ls: replace_field(ls, 5, "close", low))

    kept = candles_import_csv(symbol="BTCUSDT", path_or_file=corrected)

    assert (kept.differing, kept.replaced, kept.rescored) == (1, 0, 0)
    assert all(Forecast.objects.get(pk=pk).scores == scores for pk, (scores, _) in old.items())

    summary = candles_import_csv(symbol="BTCUSDT", path_or_file=corrected, replace=True)

    assert (summary.differing, summary.replaced, summary.rescored) == (1, 1, 1)
    assert Candle.objects.get(open_time=candles[5].open_time).close == Decimal(low)
    measured.refresh_from_db()
    step = measured.scores[4]  # 2021-03-06 22:00, the fifth hour after the forecast's candle
    predicted, actual = measured.points[4]["close"], float(low)
    assert step["actual"] == actual != old[measured.pk][0][4]["actual"]
    assert step["error"] == pytest.approx(predicted - actual)
    assert step["persistence_error"] == pytest.approx(float(measured.last_close) - actual)
    assert step["inside"] == (measured.points[4]["lower"] <= actual <= measured.points[4]["upper"])
    assert measured.scores[:4] + measured.scores[5:] == old[measured.pk][0][:4] + old[measured.pk][0][5:]
    assert measured.fully_scored
    # A forecast made from the corrected candle stays as it was made: the model saw the old close.
    for forecast in (from_it, later):
        forecast.refresh_from_db()
        assert (forecast.scores, forecast.last_close) == old[forecast.pk]


def test_replacing_a_volume_leaves_the_scores_alone(write_csv):
    candles_import_csv(symbol="BTCUSDT", path_or_file=write_csv(0, 30, name="day.csv"))
    asset = Asset.objects.get()
    candles = list(Candle.objects.order_by("open_time"))
    version = version_create(asset=asset, version=1, status=ModelVersion.Status.ACTIVE)
    forecast = forecast_create(
        version=version, base=candles[0], closes={c.open_time: float(c.close) for c in candles}
    )
    volume = write_csv(0, 30, name="volume.csv", edit=lambda ls: replace_field(ls, 3, "volume", "99999.5"))

    summary = candles_import_csv(symbol="BTCUSDT", path_or_file=volume, replace=True)

    assert (summary.replaced, summary.rescored) == (1, 0)
    assert Candle.objects.get(open_time=candles[3].open_time).volume == Decimal("99999.5")
    assert Forecast.objects.get(pk=forecast.pk).scores == forecast.scores
