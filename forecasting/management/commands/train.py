from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import OperationalError

from forecasting import services
from forecasting.models import ModelVersion
from forecasting.services.training import INTERRUPTED_BY_HAND
from makeusrich.formats import iso_z
from markets.models import Asset

BY = "manage.py train"  # how the asset's last retrain outcome names this command


def train_summary(version: ModelVersion) -> dict[str, Any]:
    """The DESIGN.md `train --json` object."""
    return {
        "symbol": version.asset.symbol,
        "version": version.version,
        "status": version.status,
        "reason": version.reason,
        "train_seconds": version.train_seconds,
        "epochs": version.epochs,
        "best_epoch": best_epoch(version),
        "warm_start": version.mode == ModelVersion.Mode.WARM,
        "data": {
            "first": iso_z(version.data_first),
            "last": iso_z(version.data_last),
            "candles": version.data_candles,
        },
        "metrics": version.metrics,
    }


def best_epoch(version: ModelVersion) -> int | None:
    """The epoch whose weights the version keeps (early stopping); 0 = the starting weights, the
    parent's for a warm start: `epochs` ran, and none improved on them. None when not recorded."""
    return ((version.preprocessing or {}).get("training") or {}).get("best_epoch")


def no_version_summary(symbol: str, mode: str | None, reason: str) -> dict[str, Any]:
    """The `train --json` object of a run that made no version (unknown asset, locked, nothing new...)."""
    return {
        "symbol": symbol.upper(),
        "version": None,
        "status": ModelVersion.Status.FAILED,
        "reason": reason,
        "train_seconds": None,
        "epochs": None,
        "best_epoch": None,
        "warm_start": mode == "warm",
        "data": None,
        "metrics": None,
    }


class Interrupted(CommandError):
    """Ctrl-C stopped the training of `version`, which is marked failed."""

    def __init__(self, version: ModelVersion) -> None:
        super().__init__(
            f"{version.asset.symbol} v{version.version} {version.reason}; marked failed, the active version "
            "is unchanged"
        )
        self.version = version


class Command(BaseCommand):
    help = "Train SYMBOL's model, export and validate it, register it, and promote it if it passes the gate."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("symbol")
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument(
            "--full", dest="mode", action="store_const", const="full", help="retrain from scratch"
        )
        mode.add_argument(
            "--warm", dest="mode", action="store_const", const="warm", help="fine-tune the active model"
        )
        parser.add_argument(
            "--epochs", type=int, help="maximum number of epochs (early stopping may stop sooner)"
        )
        parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            version = self._train(options)
        except CommandError as exc:
            if options["json"]:  # a script reading stdout gets its one object, saying why
                summary = (
                    train_summary(exc.version)  # Ctrl-C: the version it marked failed
                    if isinstance(exc, Interrupted)
                    else no_version_summary(options["symbol"], options["mode"], str(exc))
                )
                self.stdout.write(json.dumps(summary))
            raise
        asset = version.asset
        problem = None
        if version.status == ModelVersion.Status.ACTIVE:
            _, problem = services.forecast_refresh_if_possible(asset=asset)
            if problem:  # the model is trained and active; only its first forecast waits
                self.stderr.write(f"{asset.symbol} v{version.version} is active, but {problem}")
        services.asset_train_outcome_record(
            asset=asset,
            mode=version.mode,
            by=BY,
            version=version.version,
            status=version.status,
            reason=version.reason,
            forecast_problem=problem or "",
        )
        if options["json"]:
            self.stdout.write(json.dumps(train_summary(version)))
        else:
            self._print_report(version)
        if version.status == ModelVersion.Status.FAILED:
            raise CommandError(f"{asset.symbol} v{version.version} failed: {version.reason}")

    def _train(self, options: dict[str, Any]) -> ModelVersion:
        asset = Asset.objects.filter(symbol=options["symbol"].upper()).first()
        if asset is None:
            raise CommandError(
                f"unknown asset {options['symbol']!r}: import candles for it first (import_candles)"
            )
        epochs = options["epochs"]
        if epochs is not None and epochs < 1:
            raise CommandError("--epochs must be at least 1")
        mode = options["mode"] or "full"
        progress = _ProgressBar() if sys.stderr.isatty() and not options["json"] else None
        # The asset's last retrain outcome says what this run did too, as for the retrain task:
        # the admin would otherwise show an older task's outcome (e.g. "v3 active" beside an active v4).
        try:
            # Asked for by hand: try even if the last run failed for too little data on the same
            # candles (the scheduled retrain skips then), e.g. to see the reason again.
            return services.model_version_train(
                asset=asset, mode=mode, epochs=epochs, progress=progress, retry_too_little_data=True
            )
        except (services.TrainingLocked, services.NothingNew) as exc:
            services.asset_train_outcome_record(
                asset=asset, mode=mode, by=BY, status=services.SKIPPED, reason=str(exc)
            )
            raise CommandError(str(exc)) from exc
        except ValueError as exc:
            services.asset_train_outcome_record(asset=asset, mode=mode, by=BY, error=exc)
            raise CommandError(f"{asset.symbol}: {exc}") from exc
        except OperationalError:
            raise  # the database is away: nothing can be recorded
        except KeyboardInterrupt:
            # The version (if one was made) is marked failed already: say so, without a traceback.
            latest = ModelVersion.objects.filter(asset=asset).order_by("-version").first()
            if latest is not None and latest.reason == INTERRUPTED_BY_HAND:
                services.asset_train_outcome_record(
                    asset=asset,
                    mode=mode,
                    by=BY,
                    version=latest.version,
                    status=latest.status,
                    reason=latest.reason,
                )
                raise Interrupted(latest) from None
            raise CommandError(f"{asset.symbol}: stopped by hand (Ctrl-C); no version was made") from None
        except Exception as exc:
            services.asset_train_outcome_record(asset=asset, mode=mode, by=BY, error=exc)
            raise
        finally:
            if progress:
                progress.close()

    def _print_report(self, version: ModelVersion) -> None:
        write = self.stdout.write
        write(f"{version.asset.symbol} v{version.version} ({version.mode}): {version.status}")
        if version.reason:
            write(f"  {version.reason}")
        if not version.metrics:
            return
        write(
            f"  {version.epochs} epoch{'' if version.epochs == 1 else 's'} in {version.train_seconds:.1f} s on {version.data_candles} candles "
            f"({iso_z(version.data_first)} to {iso_z(version.data_last)}){_kept_text(version)}"
        )
        write(metrics_table(version.metrics))


def _kept_text(version: ModelVersion) -> str:
    kept = best_epoch(version)
    if kept is None:
        return ""
    if kept == 0:
        starting = "the parent's" if version.mode == ModelVersion.Mode.WARM else "the untrained"
        return f"; kept {starting} weights: no epoch did better on validation"
    return f"; kept epoch {kept}, the best on validation"


def metrics_table(metrics: dict[str, Any]) -> str:
    """Test-split errors next to persistence at a few horizon steps."""
    horizon = len(metrics["rmse"])
    steps = sorted({1, 6, 12, horizon} & set(range(1, horizon + 1)))
    lines = [
        "  step   RMSE   persist.RMSE   skill    MAE   persist.MAE  MAPE%  direction  cover80",
    ]
    # Errors in quote currency: 4 significant digits read as well for BTC (300.5) as for SHIB.
    columns = [("rmse", 7, ".4g"), ("persistence_rmse", 13, ".4g"), ("skill_rmse", 7, "+.3f"), ("mae", 7, ".4g"),
               ("persistence_mae", 12, ".4g"), ("mape", 6, ".2f"), ("direction_accuracy", 9, ".2f"),
               ("coverage_80", 8, ".2f")]  # fmt: skip
    for step in steps:
        cells = []
        for name, width, spec in columns:
            value = metrics[name][step - 1]
            # A metric with nothing to measure is null (e.g. direction when the price never moved).
            cells.append(f"{format(value, spec) if value is not None else '–':>{width}}")
        lines.append(f"  {step:>4} " + " ".join(cells))
    if any(metrics["skill_rmse"][step - 1] is None for step in steps):
        lines.append("  skill –: assuming no change was exact at that step and the model was not")
    if any(metrics["direction_accuracy"][step - 1] is None for step in steps):
        lines.append(
            "  direction –: no direction forecast at that step (the model serves no change there, "
            "or the price never moved)"
        )
    return "\n".join(lines)


class _ProgressBar:
    """Epochs and losses on the terminal (stderr), via tqdm."""

    def __init__(self) -> None:
        self._bar: Any = None

    def __call__(self, report: Any) -> None:
        from tqdm import tqdm

        if self._bar is None:
            self._bar = tqdm(total=report.max_epochs, unit="epoch", desc="training", file=sys.stderr)
        self._bar.set_postfix(train=f"{report.train_loss:.5f}", val=f"{report.val_loss:.5f}")
        self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
