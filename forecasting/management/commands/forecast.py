from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from forecasting import services
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
            f"{asset.symbol} from {body['last_candle_time']} (close {body['last_close']:.2f}), "
            f"model v{body['model_version']}, 80 % interval:"
        )
        for point in forecast.points:
            self.stdout.write(
                f"  {point['time']}  {point['close']:>12.2f}  [{point['lower']:>12.2f}, {point['upper']:>12.2f}]"
            )
