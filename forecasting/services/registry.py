"""The model registry: activation (promotion and rollback) and retention."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from forecasting.artifacts import artifact_delete, artifact_read
from forecasting.models import ModelVersion
from markets.models import Asset

logger = logging.getLogger(__name__)

Status = ModelVersion.Status


def model_version_activate(*, version: ModelVersion, reason: str = "") -> ModelVersion:
    """Make `version` the asset's active version (promotion or rollback), in one transaction.

    The artifact must be present and intact. The previous active version
    goes back to "validated" so it can be re-activated later.
    """
    if version.status not in (Status.VALIDATED, Status.ACTIVE):
        raise ValueError(f"v{version.version} is {version.status}: only a validated version can be activated")
    artifact_read(name=version.artifact_name, sha256=version.artifact_sha256)
    with transaction.atomic():
        Asset.objects.select_for_update().filter(pk=version.asset_id).first()
        ModelVersion.objects.filter(asset_id=version.asset_id, status=Status.ACTIVE).exclude(
            pk=version.pk
        ).update(status=Status.VALIDATED)
        version.status = Status.ACTIVE
        version.activated_at = timezone.now()
        version.reason = reason or f"activated by hand at {version.activated_at:%Y-%m-%d %H:%M} UTC"
        version.save(update_fields=["status", "activated_at", "reason"])
        symbol = version.asset.symbol
        transaction.on_commit(lambda: _enqueue_refresh(symbol))
    return version


def _enqueue_refresh(symbol: str) -> None:
    from forecasting.tasks import refresh_forecasts

    try:
        refresh_forecasts.delay(symbol)
    except Exception:  # the broker being down must not undo a promotion
        logger.warning("could not enqueue refresh_forecasts(%s)", symbol, exc_info=True)


def model_versions_prune(*, asset: Asset, keep: int | None = None) -> int:
    """Retire all but the active version and the `keep` newest others; delete their artifacts."""
    keep = settings.MODEL_RETENTION if keep is None else keep
    candidates = ModelVersion.objects.filter(asset=asset).exclude(
        status__in=[Status.ACTIVE, Status.TRAINING, Status.RETIRED]
    )
    old = list(candidates.order_by("-version")[keep:])
    for version in old:
        artifact_delete(name=version.artifact_name)
        artifact_delete(name=version.weights_name)
        ModelVersion.objects.filter(pk=version.pk).update(
            status=Status.RETIRED,
            artifact_name="",
            weights_name="",
            reason=f"retired by retention (keep {keep})",
        )
    return len(old)
