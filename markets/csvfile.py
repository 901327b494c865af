"""Reading Binance-kline CSV files (plain, gzip, or zipped as data.binance.vision serves them), checking every row.

Accepted layouts:
- the bundled file's: a header `timestamp,open,high,low,close,volume,close_time,
  quote_av,trades,tb_base_av,tb_quote_av,ignore`, optionally after an unnamed
  leading index column (pandas' `to_csv`); common Binance names such as
  `open_time`, `quote_asset_volume` or `number_of_trades` are accepted too;
- Binance's headerless kline dumps (12 columns, open time in epoch ms, or in
  epoch µs for the spot dumps since 2025).
Times are "YYYY-MM-DD HH:MM:SS" (UTC), epoch milliseconds (13 digits) or epoch
microseconds (16 digits); epoch seconds are refused as such.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import re
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO

from markets.klines import (
    CLOSED_MARGIN,
    KlineError,
    KlineRow,
    kline_check,
    kline_is_closed,
    parse_decimal,
    parse_int,
    parse_time,
)

PathOrFile = str | os.PathLike[str] | IO[bytes] | IO[str]

# Canonical field -> names accepted in a header (lower case).
COLUMNS: dict[str, tuple[str, ...]] = {
    "open_time": ("timestamp", "open_time", "open time", "opentime"),
    "open": ("open",),
    "high": ("high",),
    "low": ("low",),
    "close": ("close",),
    "volume": ("volume",),
    "close_time": ("close_time", "close time", "closetime"),
    "quote_volume": ("quote_av", "quote_volume", "quote_asset_volume", "quote asset volume"),
    "trades": ("trades", "number_of_trades", "number of trades", "count"),
    "taker_buy_base_volume": (
        "tb_base_av",
        "taker_buy_base_volume",
        "taker_buy_base_asset_volume",
        "taker_buy_volume",
    ),
    "taker_buy_quote_volume": ("tb_quote_av", "taker_buy_quote_volume", "taker_buy_quote_asset_volume"),
}
# Binance's headerless dumps: the 12 kline fields in API order.
BINANCE_DUMP_ORDER = (*COLUMNS, "ignore")
LABELS = {
    "open_time": "timestamp",
    "close_time": "close_time",
    "quote_volume": "quote_av",
    "trades": "trades",
    "taker_buy_base_volume": "tb_base_av",
    "taker_buy_quote_volume": "tb_quote_av",
}
MAX_PROBLEMS = 20
# Binance's dump names: <SYMBOL>-<INTERVAL>-<period>, e.g. BTCUSDT-1h-2025-01.csv(.gz).
# Only a name with one of Binance's kline intervals counts, so "prices-2025-01.csv" is no claim.
BINANCE_DUMP_NAME = re.compile(
    r"(?P<symbol>[A-Za-z0-9]+)-(?P<interval>[0-9]+(?:mo|[smhdwM]))-", re.IGNORECASE
)
# Bytes that are not UTF-8, as the "surrogateescape" decoder leaves them.
UNDECODED_BYTE = re.compile("[\udc80-\udcff]")


@dataclass(frozen=True, slots=True)
class Problem:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


class CandleFileError(ValueError):
    """The file cannot be imported; `problems` says where and why (first ones only)."""

    def __init__(self, problems: list[Problem], more: int = 0) -> None:
        self.problems = problems
        self.more = more
        text = "; ".join(str(p) for p in problems)
        if more:
            text += f"; and {more} more problem(s)"
        super().__init__(text)


def file_name_check(path_or_file: PathOrFile, *, symbol: str) -> None:
    """CandleFileError if the file is named like a Binance dump of another symbol or interval.

    Importing BTCUSDT's prices as ETHUSDT's would pass every other check. A
    name in any other form (the bundled btcusdt_1h_....csv.gz) is no claim.
    """
    raw = path_or_file if isinstance(path_or_file, str | os.PathLike) else getattr(path_or_file, "name", "")
    name = Path(os.fsdecode(raw)).name if isinstance(raw, str | bytes | os.PathLike) else ""
    match = BINANCE_DUMP_NAME.match(name)
    if match is None:
        return
    problems = []
    named, wanted, interval = match["symbol"].upper(), symbol.strip().upper(), match["interval"]
    if named != wanted:
        problems.append(Problem(0, f"the file {name} is named for {named}, not {wanted}"))
    if interval.lower() != "1h":
        problems.append(
            Problem(0, f"the file {name} is named for {interval} candles; only 1h candles are imported")
        )
    if problems:
        raise CandleFileError(problems)


@contextmanager
def _open_text(path_or_file: PathOrFile) -> Iterator[IO[str]]:
    """A text stream over a path or file object, gunzipped when it is gzip, the one member of a zip."""
    if isinstance(path_or_file, str | os.PathLike):
        path = Path(path_or_file)
        if not path.is_file():
            raise CandleFileError([Problem(0, f"{path} is not a readable file")])
        with path.open("rb") as raw:
            with _open_text(raw) as text:
                yield text
        return
    if isinstance(path_or_file, io.TextIOBase):
        yield path_or_file  # type: ignore[misc]
        return
    binary: IO[bytes] = path_or_file  # type: ignore[assignment]
    if not isinstance(binary, io.BufferedIOBase):
        binary = io.BufferedReader(binary)  # type: ignore[arg-type]
    magic = binary.peek(6)[:6] if hasattr(binary, "peek") else b""
    stream: IO[bytes] = binary
    if magic[:2] == b"\x1f\x8b":
        stream = gzip.GzipFile(fileobj=binary)
    elif magic[:4] == b"PK\x03\x04":  # data.binance.vision serves its dumps zipped, one CSV each
        stream = _zip_member(binary)
    else:
        for prefix, kind in ARCHIVES_REFUSED.items():
            if magic.startswith(prefix):
                raise CandleFileError(
                    [Problem(0, f"a {kind} archive: decompress it first (CSV, .csv.gz or .zip are read)")]
                )
    # surrogateescape: a byte that is not UTF-8 is found by _Lines on its own line,
    # where a strict decoder fails on the chunk ahead and cannot say which line.
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
    try:
        yield text
    finally:
        # Leave the caller's file open: only what we wrapped around it is closed.
        text.detach()
        if stream is not binary:
            stream.close()


# Compressed forms that are recognised only to say what to do with them.
ARCHIVES_REFUSED = {b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz", b"7z\xbc\xaf\x27\x1c": "7-Zip"}


def _zip_member(binary: IO[bytes]) -> IO[bytes]:
    """The one file of a zip archive (a Binance dump's CSV), opened for reading."""
    try:
        archive = zipfile.ZipFile(binary)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:  # truncated, or a stream that cannot seek
        raise CandleFileError([Problem(0, f"an unreadable zip archive ({exc}): unzip it first")]) from None
    members = [info for info in archive.infolist() if not info.is_dir()]
    if len(members) != 1:
        names = ", ".join(info.filename for info in members[:5]) or "none"
        raise CandleFileError(
            [Problem(0, f"a zip archive with {len(members)} files ({names}): it must hold one CSV file")]
        )
    return archive.open(members[0])


class _NotText(ValueError):
    pass


class _Lines:
    """The lines of a text stream, counted, refusing any that held bytes not UTF-8."""

    def __init__(self, text: IO[str]) -> None:
        self._lines = iter(text)
        self.number = 0  # lines read so far, i.e. the current one's number once read

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self.number += 1
        bad = UNDECODED_BYTE.search(line)
        if bad is not None:
            raise _NotText(
                f"byte {ord(bad.group()) - 0xDC00:#04x} at column {bad.start() + 1} is not UTF-8 text"
            )
        return line


def _header_map(header: list[str]) -> dict[str, int] | None:
    """Canonical field -> column index, or None when the first row is data."""
    first = header[0].strip() if header else ""
    if first.isdigit() and len(header) == len(BINANCE_DUMP_ORDER):
        return None
    names = [cell.strip().lower() for cell in header]
    found: dict[str, int] = {}
    for field, aliases in COLUMNS.items():
        for index, name in enumerate(names):
            if name in aliases:
                found[field] = index
                break
    missing = [LABELS.get(f, f) for f in COLUMNS if f not in found]
    if missing:
        raise CandleFileError(
            [Problem(1, f"missing column(s): {', '.join(missing)} (header: {header!r:.200})")]
        )
    return found


def _row_to_kline(cells: list[str], columns: dict[str, int]) -> KlineRow:
    row = KlineRow(
        open_time=parse_time(cells[columns["open_time"]], "timestamp"),
        open=parse_decimal(cells[columns["open"]], "open"),
        high=parse_decimal(cells[columns["high"]], "high"),
        low=parse_decimal(cells[columns["low"]], "low"),
        close=parse_decimal(cells[columns["close"]], "close"),
        volume=parse_decimal(cells[columns["volume"]], "volume"),
        close_time=parse_time(cells[columns["close_time"]], "close_time"),
        quote_volume=parse_decimal(cells[columns["quote_volume"]], "quote_av"),
        trades=parse_int(cells[columns["trades"]], "trades"),
        taker_buy_base_volume=parse_decimal(cells[columns["taker_buy_base_volume"]], "tb_base_av"),
        taker_buy_quote_volume=parse_decimal(cells[columns["taker_buy_quote_volume"]], "tb_quote_av"),
    )
    kline_check(row)
    return row


def read_klines_csv(path_or_file: PathOrFile, *, now: datetime) -> list[KlineRow]:
    """Every row of the file as KlineRows, in time order, or CandleFileError.

    All rows are checked before anything is returned; the error lists the
    first problems with their line numbers (header = line 1). Candles that
    close at or after `now` are still open and rejected.
    """
    problems: list[Problem] = []
    more = 0
    rows: list[KlineRow] = []
    seen: dict[datetime, int] = {}
    previous: tuple[datetime, int] | None = None

    def problem(line: int, message: str) -> None:
        nonlocal more
        if len(problems) < MAX_PROBLEMS:
            problems.append(Problem(line, message))
        else:
            more += 1

    lines: _Lines | None = None
    try:
        with _open_text(path_or_file) as text:
            lines = _Lines(text)
            reader = csv.reader(lines)
            header = next(reader, None)
            if header is None:
                raise CandleFileError([Problem(0, "the file is empty")])
            columns = _header_map(header)
            if columns is None:
                columns = {name: i for i, name in enumerate(BINANCE_DUMP_ORDER)}
                pending: list[tuple[int, list[str]]] = [(reader.line_num, header)]
            else:
                pending = []
            width = len(header)
            for line, cells in _numbered(pending, reader):
                if not cells or all(not c.strip() for c in cells):
                    continue
                if len(cells) != width:
                    problem(line, f"expected {width} fields, found {len(cells)}")
                    continue
                try:
                    row = _row_to_kline(cells, columns)
                except KlineError as error:
                    problem(line, str(error))
                    continue
                if not kline_is_closed(row, now):
                    problem(
                        line,
                        f"candle {row.open_time:%Y-%m-%d %H:%M} is still open (it closes after now, "
                        f"or less than {CLOSED_MARGIN.seconds} s before)",
                    )
                    continue
                if row.open_time in seen:
                    problem(
                        line,
                        f"duplicate open time {row.open_time:%Y-%m-%d %H:%M} (already on line {seen[row.open_time]})",
                    )
                    continue
                if previous is not None and row.open_time < previous[0]:
                    problem(
                        line,
                        f"open time {row.open_time:%Y-%m-%d %H:%M} is earlier than line {previous[1]}'s "
                        f"{previous[0]:%Y-%m-%d %H:%M} (rows must be in time order)",
                    )
                    continue
                seen[row.open_time] = line
                previous = (row.open_time, line)
                rows.append(row)
    except (_NotText, csv.Error) as error:
        # csv.Error: e.g. a field over the size limit, on the line just read.
        problem(lines.number if lines else 0, f"unreadable: {error}")
    except (UnicodeDecodeError, gzip.BadGzipFile, zipfile.BadZipFile, EOFError, zlib.error) as error:
        # The compressed stream broke while the next line was being read.
        read = lines.number if lines else 0
        problem(read + 1 if read else 0, f"unreadable file{' from this line on' if read else ''}: {error}")
    if problems:
        raise CandleFileError(problems, more)
    if not rows:
        raise CandleFileError([Problem(0, "the file has no candles")])
    return rows


def _numbered(
    pending: list[tuple[int, list[str]]], reader: Iterator[list[str]]
) -> Iterator[tuple[int, list[str]]]:
    yield from pending
    for cells in reader:
        yield reader.line_num, cells  # type: ignore[attr-defined]
