from __future__ import annotations

from datetime import datetime

from django.db import models
from django.db.models import Q

from markets.models import PRICE, Asset


class ModelVersion(models.Model):
    """One trained model of an asset: its metadata, metrics and ONNX artifact."""

    class Status(models.TextChoices):
        TRAINING = "training"
        VALIDATED = "validated"
        FAILED = "failed"
        ACTIVE = "active"
        RETIRED = "retired"

    class Mode(models.TextChoices):
        FULL = "full"
        WARM = "warm"

    class FailureKind(models.TextChoices):
        """Why a failed version failed, in a word the code can test (the reason says it to people)."""

        NONE = "", "—"
        # The candles cannot give enough windows: the same candles and hyperparameters fail again.
        TOO_LITTLE_DATA = "too_little_data", "too little data"
        TRAINING = "training", "training raised an error"
        # Trained, but the model failed its checks: ONNX checker or parity, diverged loss, non-finite metrics.
        INVALID = "invalid", "failed its checks"
        STORAGE = "storage", "storing the artifacts failed"
        # The process died or the database went away mid-run.
        INTERRUPTED = "interrupted", "interrupted"

    asset = models.ForeignKey(Asset, on_delete=models.CASCADE, related_name="model_versions")
    version = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.TRAINING)
    # Why it failed, or why the gate kept it out of service.
    reason = models.TextField(blank=True)
    failure_kind = models.CharField(max_length=16, choices=FailureKind.choices, blank=True, default="")
    mode = models.CharField(max_length=4, choices=Mode.choices, default=Mode.FULL)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    hyperparameters = models.JSONField(default=dict)
    horizon = models.PositiveSmallIntegerField()
    window = models.PositiveSmallIntegerField()
    features = models.JSONField(default=list)
    # Everything serving needs besides the ONNX graph: scaler, interval quantiles, target form.
    preprocessing = models.JSONField(default=dict)
    data_first = models.DateTimeField(null=True, blank=True)
    data_last = models.DateTimeField(null=True, blank=True)
    data_candles = models.PositiveIntegerField(default=0)
    # sha256 of the candle values a too-little-data failure was given: a candle corrected in
    # place (same count, first and last hour) changes it, so the scheduled retrain tries again.
    data_fingerprint = models.CharField(max_length=64, blank=True)
    metrics = models.JSONField(default=dict, blank=True)  # the `train --json` "metrics" object
    loss_history = models.JSONField(default=list, blank=True)  # [{"epoch","train_loss","val_loss"}]
    epochs = models.PositiveIntegerField(default=0)
    train_seconds = models.FloatField(null=True, blank=True)
    artifact_name = models.CharField(max_length=255, blank=True)
    artifact_sha256 = models.CharField(max_length=64, blank=True)
    # torch weights, kept beside the ONNX graph only so that warm starts can fine-tune them.
    weights_name = models.CharField(max_length=255, blank=True)
    weights_sha256 = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    trained_at = models.DateTimeField(null=True, blank=True)
    activated_at = models.DateTimeField(null=True, blank=True)
    # Activated by an admin (a rollback): the gate keeps new versions out until an admin
    # activates another one or unpins this one.
    pinned = models.BooleanField(default=False)

    class Meta:
        ordering = ["asset", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["asset", "version"], name="modelversion_unique_version"),
            models.UniqueConstraint(
                fields=["asset"], condition=Q(status="active"), name="modelversion_one_active_per_asset"
            ),
        ]

    def __str__(self) -> str:
        # Reads the asset: lists that show versions select it (select_related), or it is a query each.
        return f"{self.asset.symbol} v{self.version} ({self.status})"


class Forecast(models.Model):
    """A forecast of the next `horizon` closes from one candle, scored as reality arrives."""

    asset = models.ForeignKey(Asset, on_delete=models.CASCADE, related_name="forecasts")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="forecasts")
    base_time = models.DateTimeField()  # open time of the last candle the forecast saw
    last_close = models.DecimalField(**PRICE)
    horizon = models.PositiveSmallIntegerField()
    # [{"time": iso, "close": float, "lower": float, "upper": float}], index 0 = next hour
    points = models.JSONField()
    # Filled in as candles arrive: [{"time","actual","error","inside","persistence_error"}]
    scores = models.JSONField(default=list, blank=True)
    fully_scored = models.BooleanField(default=False)
    generated_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["asset", "-base_time"]
        constraints = [
            models.UniqueConstraint(
                fields=["model_version", "base_time"], name="forecast_unique_version_base_time"
            ),
        ]
        indexes = [
            models.Index(fields=["asset", "-base_time"], name="forecast_asset_recent"),
            models.Index(fields=["asset", "fully_scored"], name="forecast_asset_scoring"),
        ]

    def __str__(self) -> str:
        # Reads the asset and the version: lists that show forecasts select both.
        return f"{self.asset.symbol} from {self.base_time:%Y-%m-%d %H:%M} by v{self.model_version.version}"


class TrainingLease(models.Model):
    """Per-asset lease: no two trainings of one asset at once, even across workers.

    Taken with one conditional UPDATE, so it works the same on SQLite and
    PostgreSQL; it expires, so a killed worker cannot hold it for ever.
    """

    asset = models.OneToOneField(Asset, on_delete=models.CASCADE, related_name="training_lease")
    owner = models.CharField(max_length=100, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    # The holder's last sign of life: when it took the lease, or renewed it at an epoch.
    renewed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.asset_id} lease ({self.owner or 'free'})"

    def held(self, now: datetime) -> bool:
        """A run holds the lease: taken, not released, not expired. A version still "training"
        whose asset's lease is not held was left by a run that died (on any host: the lease
        is renewed at every epoch, so only expiry, not a process check, is needed)."""
        return bool(self.owner) and self.expires_at is not None and self.expires_at > now
