from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from forecasting import services
from forecasting.models import ModelVersion
from markets.models import Asset
from markets.services import asset_get_or_create, asset_sync

SYMBOL = "BTCUSDT"


class Command(BaseCommand):
    help = (
        "Make a fresh install useful: give BTCUSDT the bundled year (if it has no candles) "
        "and train a first model if none is active."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        asset = Asset.objects.filter(symbol=SYMBOL).first()
        stored = asset.candles.count() if asset else 0
        if stored:
            # Keep what is there: an admin may have chosen a partial history to replay.
            self.stdout.write(f"{SYMBOL} already has {stored} candles: not importing the bundled file.")
        elif settings.MARKET_DATA_SOURCE == "replay":
            # The replay serves the bundled year as if it were live: its first sync (below)
            # backfills the first 90 %, and every hourly sync reveals the next hour, which
            # the worker scores the stored forecasts against and the hourly retrain learns
            # from. Importing the whole file would leave it nothing to reveal: no live
            # track record and no hourly retraining, ever.
            # Active when created here: the one asset a fresh install shows (imports create inactive ones).
            asset, _ = asset_get_or_create(symbol=SYMBOL, active=True)
            self.stdout.write(
                f"Replaying the bundled {SYMBOL} year ({settings.BUNDLED_DATA_FILE.name}): the first 90 % "
                f"now, then {settings.REPLAY_HOURS_PER_SYNC} more hour(s) at every hourly sync."
            )
        else:
            # A live source fills in from the end of the bundled year; a model is ready meanwhile.
            self.stdout.write(f"Importing the bundled {SYMBOL} data ({settings.BUNDLED_DATA_FILE.name})…")
            # --activate only for an asset made here: an admin's deactivation of an existing one stands.
            call_command(
                "import_candles",
                str(settings.BUNDLED_DATA_FILE),
                symbol=SYMBOL,
                activate=asset is None,
                stdout=self.stdout,
            )
            asset = Asset.objects.get(symbol=SYMBOL)
        if not asset.is_active:
            self.stdout.write(
                f"{SYMBOL} is inactive: it is not synced hourly nor shown; activate it in the admin "
                '(Assets, action "Activate").'
            )
        # One sync now, as beat does every hour, so the first page does not wait for :01. Its
        # forecast refresh runs here, not in the worker: this command leaves the forecast in place
        # before anything is served, and leaves the worker nothing to redo when it starts.
        synced = asset_sync(asset=asset, refresh_inline=True)
        if synced.ok:
            self.stdout.write(
                f"Synced {SYMBOL} ({synced.source}): {synced.inserted} new candle(s); {synced.note}."
            )
        else:
            self.stderr.write(f"Could not sync {SYMBOL} ({synced.source}): {synced.error}")
        if ModelVersion.objects.filter(asset=asset, status=ModelVersion.Status.ACTIVE).exists():
            self.stdout.write(f"{SYMBOL} already has an active model: not training.")
        else:
            self.stdout.write(f"No active {SYMBOL} model yet: training a first one (a minute or two)…")
            try:
                call_command("train", SYMBOL, stdout=self.stdout)
            except CommandError as exc:
                # The site is still worth starting: the pages and the API say there is no model
                # yet and why, and the hourly retrain (or `manage.py train`) tries again.
                self.stderr.write(
                    f"{SYMBOL}: the first training did not give a model ({exc}). Starting without "
                    f"one: the pages and the API say why; the hourly retrain tries again, or run "
                    f"`manage.py train {SYMBOL}` once the cause is fixed."
                )
        forecast, problem = services.forecast_refresh_if_possible(asset=asset)
        if problem:
            self.stderr.write(f"{SYMBOL}: {problem}")
        if forecast is not None:
            self.stdout.write(
                f"Latest {SYMBOL} forecast: from {forecast.base_time:%Y-%m-%d %H:%M} UTC, "
                f"{forecast.horizon} hours ahead (model v{forecast.model_version.version})."
            )
