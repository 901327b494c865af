"""The model registry: activation (promotion and rollback) and retention."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from forecasting.artifacts import artifact_delete, artifact_read
from forecasting.models import ModelVersion
from forecasting.services.forecasts import forecast_refresh_if_possible
from markets.models import Asset

logger = logging.getLogger(__name__)

Status = ModelVersion.Status
ACTIVATABLE = (Status.VALIDATED, Status.ACTIVE)


def model_version_activate(*, version: ModelVersion, reason: str = "", pinned: bool = False) -> ModelVersion:
    """Make `version` the asset's active version (promotion or rollback), in one transaction.

    The artifact must be present and intact. The previous active version
    goes back to "validated" so it can be re-activated later. `pinned` (an
    admin's rollback) keeps automatic promotion from replacing it.

    The version's forecast from the newest candle is stored in the same
    transaction, so no reader sees it active with an older forecast (a
    rollback's version last forecast when it was last active); when no
    forecast can be made (see `forecast_refresh_if_possible`), the activation
    stands and the next refresh tries again.
    """
    if version.status not in ACTIVATABLE:
        raise ValueError(f"v{version.version} is {version.status}: only a validated version can be activated")
    artifact_read(name=version.artifact_name, sha256=version.artifact_sha256)
    with transaction.atomic():
        Asset.objects.select_for_update().filter(pk=version.asset_id).first()
        # Under the asset's lock, which retention takes too: if the version is still activatable,
        # its files are still there. Otherwise the exception rolls the demotion back.
        now = timezone.now()
        reason = reason or f"activated by hand at {now:%Y-%m-%d %H:%M} UTC"
        ModelVersion.objects.filter(asset_id=version.asset_id, status=Status.ACTIVE).exclude(
            pk=version.pk
        ).update(status=Status.VALIDATED, pinned=False)
        if not ModelVersion.objects.filter(pk=version.pk, status__in=ACTIVATABLE).update(
            status=Status.ACTIVE, activated_at=now, reason=reason, pinned=pinned
        ):
            current = ModelVersion.objects.get(pk=version.pk).status
            raise ValueError(
                f"v{version.version} became {current} meanwhile: only a validated version can be activated"
            )
        version.status, version.activated_at, version.reason, version.pinned = (
            Status.ACTIVE,
            now,
            reason,
            pinned,
        )
        _forecast_store(version)
    return version


def model_version_unpin(*, version: ModelVersion) -> bool:
    """Let automatic promotion replace this (active) version again; False if it was not pinned."""
    return bool(ModelVersion.objects.filter(pk=version.pk, pinned=True).update(pinned=False))


def _forecast_store(version: ModelVersion) -> None:
    symbol = version.asset.symbol
    try:
        with transaction.atomic():  # a savepoint: a failure here must not undo the activation
            _, problem = forecast_refresh_if_possible(asset=version.asset)
    except Exception:  # an artifact onnxruntime cannot run, a bug: the activation still stands
        logger.exception("%s v%s is active, but its forecast could not be stored", symbol, version.version)
        return
    if problem:
        logger.warning("%s v%s is active, but %s", symbol, version.version, problem)


def model_versions_prune(*, asset: Asset, keep: int | None = None) -> int:
    """Retire all but the active version and the `keep` newest validated and `keep` newest failed
    others, and delete their artifacts once that is committed.

    Validated and failed versions are counted apart, so a run of failed trainings never pushes
    out the versions an admin can roll back to. Runs under the asset's lock, as activation
    does: a version being re-activated is never retired, nor its files deleted.
    """
    keep = settings.MODEL_RETENTION if keep is None else keep
    retired = []
    with transaction.atomic():
        Asset.objects.select_for_update().filter(pk=asset.pk).first()
        for status in (Status.VALIDATED, Status.FAILED):
            mine = ModelVersion.objects.filter(asset=asset, status=status).order_by("-version")
            for version in mine[keep:]:
                if ModelVersion.objects.filter(pk=version.pk, status=status).update(
                    status=Status.RETIRED,
                    artifact_name="",
                    weights_name="",
                    reason=f"retired by retention (keep {keep})",
                ):
                    retired.append(version)
        names = [name for version in retired for name in (version.artifact_name, version.weights_name)]
        transaction.on_commit(lambda: _artifacts_delete(names))
    return len(retired)


def _artifacts_delete(names: list[str]) -> None:
    for name in names:
        artifact_delete(name=name)
