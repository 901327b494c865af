"""The asset's last retrain outcome (Asset.last_train_outcome), in the same words for the retrain
task and `manage.py train`: the admin shows it, otherwise only a worker's log or a terminal says it."""

from __future__ import annotations

from django.utils import timezone

from markets.models import Asset

OUTCOME_MAX_LENGTH = 2000
SKIPPED = "skipped"  # the status of a retrain that made no version (locked, nothing new)


def asset_train_outcome_record(
    *,
    asset: Asset,
    mode: str,
    by: str = "",
    version: int | None = None,
    status: str = "",
    reason: str = "",
    forecast_problem: str = "",
    error: Exception | None = None,
) -> str:
    """Record what one retrain of `asset` did and return the text: the error it raised, or else
    SKIPPED and why, or the version number it made with its status and reason (and, for an
    active one, why its first forecast waits). `by` names a runner other than the retrain task."""
    what = f"{mode} retrain" + (f" by {by}" if by else "")
    if error is not None:
        outcome = f"{what} raised {type(error).__name__}: {error}"
    elif status == SKIPPED:
        outcome = f"{what} skipped: {reason}"
    else:
        forecast = f"; {forecast_problem}" if forecast_problem else ""
        outcome = f"{what}: v{version} {status}: {reason}{forecast}"
    outcome = outcome[:OUTCOME_MAX_LENGTH]
    Asset.objects.filter(pk=asset.pk).update(last_train_outcome=outcome, last_train_outcome_at=timezone.now())
    return outcome
