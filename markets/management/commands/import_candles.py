from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from markets.csvfile import CandleFileError
from markets.klines import gap_report
from markets.selectors import asset_gaps, asset_get
from markets.services import AssetError, Progress, candles_import_csv


class Command(BaseCommand):
    help = (
        "Import a Binance-kline CSV (plain or .gz, the bundled file's columns): every row is checked "
        "first, then all are stored in one transaction; re-importing adds nothing, unless --replace."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--symbol", required=True, help="Binance symbol, e.g. BTCUSDT (created if missing)"
        )
        parser.add_argument(
            "--replace",
            action="store_true",
            help="overwrite stored candles whose values differ from the file's (and score the forecasts "
            "measured against them again); without it they are kept and counted in a warning",
        )
        parser.add_argument("file", type=Path, metavar="FILE")

    def handle(self, *args: Any, symbol: str, file: Path, replace: bool = False, **options: Any) -> None:
        bar: tqdm | None = None
        progress: Progress | None = None
        if self.stderr.isatty():

            def progress(done: int, total: int) -> None:
                nonlocal bar
                if bar is None:
                    bar = tqdm(
                        total=total, unit="candle", desc=f"Importing {symbol.upper()}", file=self.stderr._out
                    )
                bar.update(done - bar.n)

        try:
            summary = candles_import_csv(symbol=symbol, path_or_file=file, progress=progress, replace=replace)
        except CandleFileError as error:
            details = "\n".join(f"  {problem}" for problem in error.problems)
            if error.more:
                details += f"\n  ... and {error.more} more problem(s)"
            raise CommandError(f"{file}: nothing imported:\n{details}") from error
        except AssetError as error:
            raise CommandError(f"{file}: nothing imported: {error}") from error
        finally:
            if bar is not None:
                bar.close()
        created = " (new asset)" if summary.asset_created else ""
        replaced = f" ({summary.replaced} of them replaced)" if replace else ""
        self.stdout.write(
            f"Read {summary.rows_read} candles from {file} "
            f"({summary.first_open_time:%Y-%m-%d %H:%M} to {summary.last_open_time:%Y-%m-%d %H:%M} UTC, "
            f"{len(summary.gaps)} gap(s) in the file)."
        )
        self.stdout.write(
            f"{summary.symbol}{created}: {summary.inserted} inserted, {summary.already_present} already present"
            f"{replaced}, in {summary.seconds:.2f} s."
        )
        if summary.replaced:
            self.stdout.write(
                f"Replaced {summary.replaced} stored candle(s) with the file's values "
                f"(first: {summary.first_difference})."
            )
            if summary.rescored:
                self.stdout.write(
                    f"Scored {summary.rescored} stored forecast(s) again against the corrected closes."
                )
        elif summary.differing:
            self.stdout.write(
                f"Warning: {summary.differing} of the candles already present have other values in the file "
                f"(first: {summary.first_difference}); the stored candles were kept. "
                "To store the file's values instead, import it again with --replace."
            )
        for line in gap_report(summary.symbol, asset_gaps(asset=asset_get(symbol=summary.symbol))):
            self.stdout.write(line)
