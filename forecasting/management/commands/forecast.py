from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from forecasting import services
from forecasting.templatetags.market_format import price_decimals
from markets.models import Asset


class Command(BaseCommand):
    help = "Compute and store SYMBOL's latest forecast with the active model, and print it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("symbol")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args: Any, **options: Any) -> None:
        asset = Asset.objects.filter(symbol=options["symbol"].upper()).first()
        if asset is None:
            raise CommandError(f"unknown asset {options['symbol']!r}")
        try:
            forecast = services.forecast_refresh(asset=asset)
        except Exception as exc:
            raise CommandError(f"{asset.symbol}: cannot forecast: {exc}") from exc
        if forecast is None:
            raise CommandError(
                f"{asset.symbol} has no active model yet: run `manage.py train {asset.symbol}`"
            )
        body = {
            "symbol": asset.symbol,
            "model_version": forecast.model_version.version,
            "generated_at": forecast.generated_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "last_candle_time": forecast.base_time.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "last_close": float(forecast.last_close),
            "horizon_hours": forecast.horizon,
            "points": forecast.points,
        }
        if options["json"]:
            self.stdout.write(json.dumps(body))
            return
        self.stdout.write(
            f"{asset.symbol} from {body['last_candle_time']} (close {price_text(body['last_close'])}), "
            f"model v{body['model_version']}, 80 % interval:"
        )
        for point in forecast.points:
            close, lower, upper = (price_text(point[key]) for key in ("close", "lower", "upper"))
            self.stdout.write(f"  {point['time']}  {close:>14}  [{lower:>14}, {upper:>14}]")


def price_text(value: float) -> str:
    """A price with the decimals the pages give it: 39268.55, 0.391235, 0.00003900."""
    return f"{value:.{price_decimals(value)}f}"
