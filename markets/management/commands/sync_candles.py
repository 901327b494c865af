from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from markets.models import Asset
from markets.services import assets_sync


class Command(BaseCommand):
    help = (
        "Pull new closed candles for the given symbols (all active assets when none is given), "
        "then fill holes in their stored history, a bounded amount per run."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("symbols", nargs="*", metavar="SYMBOL")

    def handle(self, *args: Any, symbols: list[str], **options: Any) -> None:
        wanted = [s.strip().upper() for s in symbols]
        if wanted:
            assets = list(Asset.objects.filter(symbol__in=wanted))
            unknown = sorted(set(wanted) - {a.symbol for a in assets})
            if unknown:
                raise CommandError(f"unknown symbol(s): {', '.join(unknown)} (import or add them first)")
        else:
            assets = list(Asset.objects.filter(is_active=True))
            if not assets:
                self.stdout.write("No active asset to sync.")
                return
        report = assets_sync(assets=assets)
        for result in report.results:
            if result.ok:
                last = (
                    f", last candle {result.last_open_time:%Y-%m-%d %H:%M} UTC"
                    if result.last_open_time
                    else ""
                )
                holes = f"; {result.gaps}" if result.gaps is not None and result.gaps.anything else ""
                self.stdout.write(
                    f"{result.symbol}: {result.inserted} new candle(s) ({result.note}){last}{holes}"
                )
            else:
                self.stderr.write(f"{result.symbol}: sync failed: {result.error}")
        if report.failed:
            raise CommandError(f"sync failed for {', '.join(r.symbol for r in report.failed)}")
