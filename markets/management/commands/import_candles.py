from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from markets.csvfile import CandleFileError
from markets.klines import gap_report
from markets.selectors import asset_gaps, asset_get
from markets.services import (
    IMPORT_MAX_HOLE_HOURS,
    AssetError,
    ImportHoleError,
    Progress,
    candles_import_csv,
)


class Command(BaseCommand):
    help = (
        "Import a Binance-kline CSV (plain or .gz, the bundled file's columns): every row is checked "
        "first, then all are stored in one transaction; re-importing adds nothing, unless --replace."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--symbol",
            required=True,
            help="Binance symbol, e.g. BTCUSDT (created inactive if missing, unless --activate)",
        )
        parser.add_argument(
            "--activate",
            action="store_true",
            help="make the asset active (synced, trained, shown on the pages and in the API), "
            "new or not; without it a new asset is created inactive",
        )
        parser.add_argument(
            "--allow-hole",
            action="store_true",
            help=f"import even if the file leaves more than {IMPORT_MAX_HOLE_HOURS} missing hours "
            "between its candles and the stored ones (without it such a file is refused)",
        )
        parser.add_argument(
            "--replace",
            action="store_true",
            help="overwrite stored candles whose values differ from the file's (and score the forecasts "
            "measured against them again); without it they are kept and counted in a warning",
        )
        parser.add_argument("file", type=Path, metavar="FILE")

    def handle(
        self,
        *args: Any,
        symbol: str,
        file: Path,
        replace: bool = False,
        activate: bool = False,
        allow_hole: bool = False,
        **options: Any,
    ) -> None:
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
            summary = candles_import_csv(
                symbol=symbol,
                path_or_file=file,
                progress=progress,
                replace=replace,
                allow_hole=allow_hole,
                activate=activate,
            )
        except CandleFileError as error:
            details = "\n".join(f"  {problem}" for problem in error.problems)
            if error.more:
                details += f"\n  ... and {error.more} more problem(s)"
            raise CommandError(f"{file}: nothing imported:\n{details}") from error
        except ImportHoleError as error:
            raise CommandError(
                f"{file}: nothing imported: {error}; to import it anyway, use --allow-hole."
            ) from error
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
        if summary.price_jump:
            self.stdout.write(
                f"Warning: the prices jump between the file and the stored {summary.symbol} candles: "
                f"{summary.price_jump}. Is the file {summary.symbol}'s, in the same quote currency?"
            )
        hole = summary.new_hole
        if hole is not None and hole.missing_hours > IMPORT_MAX_HOLE_HOURS:
            self.stdout.write(
                f"Warning: this import left a hole of {hole.missing_hours} missing hours "
                f"({hole.first_missing:%Y-%m-%d %H:%M} to {hole.last_missing:%Y-%m-%d %H:%M} UTC) "
                "between the file's candles and the ones stored before (--allow-hole): syncs ask the "
                "market data source for them; the replay source has none outside its bundled year."
            )
        for line in gap_report(summary.symbol, asset_gaps(asset=asset_get(symbol=summary.symbol))):
            self.stdout.write(line)
        if summary.activated:
            self.stdout.write(
                f"{summary.symbol} is active: it is synced, trained, and shown on the pages and in the API."
            )
        elif not summary.active:
            self.stdout.write(
                f"{summary.symbol} is inactive{' (new assets are)' if summary.asset_created else ''}: it is "
                "not synced, trained or shown on the pages and in the API. Check the symbol, then activate "
                'it in the admin (Assets, action "Activate") or import again with --activate.'
            )
