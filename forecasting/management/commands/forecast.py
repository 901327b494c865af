from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from forecasting import services
from forecasting.models import Forecast
from forecasting.selectors import forecast_staleness
from forecasting.templatetags.market_format import price_decimals
from makeusrich.formats import api_floats, iso_z
from markets.models import Asset
from markets.selectors import candle_last_open_time


def forecast_summary(forecast: Forecast) -> dict[str, Any]:
    """The `forecast --json` object; "error" is null (the key is always there, as train's "reason")."""
    reasons = staleness(forecast)
    return {
        "symbol": forecast.asset.symbol,
        "model_version": forecast.model_version.version,
        "generated_at": iso_z(forecast.generated_at),
        "last_candle_time": iso_z(forecast.base_time),
        "last_close": float(forecast.last_close),
        "horizon_hours": forecast.horizon,
        "points": forecast.points,
        "stale": bool(reasons),
        "stale_reason": "; ".join(reasons) or None,
        "error": None,
    }


def staleness(forecast: Forecast) -> list[str]:
    """Why the forecast is not current, as the API says it (operators get the full words)."""
    asset = forecast.asset
    return forecast_staleness(
        asset=asset,
        version=forecast.model_version,
        base_time=forecast.base_time,
        last_candle_time=candle_last_open_time(asset=asset),
        time_text=iso_z,
    )


def no_forecast_summary(symbol: str, error: str) -> dict[str, Any]:
    """The `forecast --json` object of a run that has no forecast to print: the same keys, null, and why."""
    return {
        "symbol": symbol.upper(),
        "model_version": None,
        "generated_at": None,
        "last_candle_time": None,
        "last_close": None,
        "horizon_hours": None,
        "points": None,
        "stale": None,
        "stale_reason": None,
        "error": error,
    }


class Command(BaseCommand):
    help = "Compute and store SYMBOL's latest forecast with the active model, and print it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("symbol")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            forecast = self._forecast(options["symbol"])
        except CommandError as exc:
            if options["json"]:  # a script reading stdout gets its one object, saying why there is none
                self.stdout.write(json.dumps(no_forecast_summary(options["symbol"], str(exc))))
            raise
        if options["json"]:
            self.stdout.write(
                json.dumps(api_floats(forecast_summary(forecast)))
            )  # floats as the API writes them
            return
        self.stdout.write(
            f"{forecast.asset.symbol} from {iso_z(forecast.base_time)} "
            f"(close {price_text(float(forecast.last_close))}), "
            f"model v{forecast.model_version.version}, 80 % interval:"
        )
        for point in forecast.points:
            close, lower, upper = (price_text(point[key]) for key in ("close", "lower", "upper"))
            self.stdout.write(f"  {point['time']}  {close:>14}  [{lower:>14}, {upper:>14}]")
        reasons = staleness(forecast)
        if reasons:
            self.stdout.write(f"Stale: {'; '.join(reasons)}")

    def _forecast(self, symbol: str) -> Forecast:
        asset = Asset.objects.filter(symbol=symbol.upper()).first()
        if asset is None:
            raise CommandError(f"unknown asset {symbol!r}")
        try:
            forecast = services.forecast_refresh(asset=asset)
        except Exception as exc:
            raise CommandError(f"{asset.symbol}: cannot forecast: {exc}") from exc
        if forecast is None:
            raise CommandError(
                f"{asset.symbol} has no active model yet: run `manage.py train {asset.symbol}`"
            )
        return forecast


def price_text(value: float) -> str:
    """A price with the decimals the pages give it: 39268.55, 0.391235, 0.00003900."""
    return f"{value:.{price_decimals(value)}f}"
