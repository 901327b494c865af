"""Training runs: the per-asset lease, train → export → validate → register, and the promotion gate.

The torch pipeline is imported inside `model_version_train`, so importing
this module (and every web process) stays torch-free.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from statistics import fmean
from typing import Any

from django.conf import settings
from django.db import OperationalError, transaction
from django.db.models import Max, Q
from django.utils import timezone

from forecasting.artifacts import ArtifactIntegrityError, artifact_delete, artifact_read, artifact_write
from forecasting.ml.config import TrainingConfig
from forecasting.models import ModelVersion, TrainingLease
from forecasting.services.forecasts import last_candle_time
from forecasting.services.registry import model_version_activate
from forecasting.serving import session_load
from makeusrich.formats import iso_z
from markets.models import Asset
from markets.selectors import candles_frame

logger = logging.getLogger(__name__)

Status = ModelVersion.Status
Kind = ModelVersion.FailureKind


class TrainingLocked(Exception):
    """Another process holds this asset's training lease."""


class NothingNew(Exception):
    """A warm retrain was asked for, but no candle arrived since the active version was trained."""


class StillTooLittleData(Exception):
    """The latest version failed for too little data, and neither the candles nor the
    hyperparameters changed since: another run would fail the same way."""


class NoCandles(Exception):
    """The asset has no candle at all: there is nothing to train on."""


@contextmanager
def training_lease(*, asset: Asset, seconds: int | None = None) -> Iterator[str]:
    """Hold the asset's training lease for the block, or raise TrainingLocked.

    One conditional UPDATE takes it, so two workers can never both win. It
    expires after `seconds`, and a lease whose holder was a process of this
    host that no longer exists (killed mid-run) is taken over at once.
    """
    ttl = dt.timedelta(seconds=seconds or settings.TRAINING_LOCK_SECONDS)
    pid = os.getpid()
    owner = f"{socket.gethostname()}:{pid}:{_process_start(pid) or ''}:{uuid.uuid4().hex[:8]}"
    now = timezone.now()
    TrainingLease.objects.get_or_create(asset=asset)
    free = Q(expires_at__isnull=True) | Q(expires_at__lt=now)
    taken = TrainingLease.objects.filter(free, asset=asset).update(
        owner=owner, expires_at=now + ttl, renewed_at=now
    )
    if not taken:
        holder = TrainingLease.objects.get(asset=asset)
        if holder.expires_at is None or _holder_is_dead(holder.owner):
            # Released since the first UPDATE, or left by a dead process: take it if still so.
            taken = TrainingLease.objects.filter(asset=asset, owner=holder.owner).update(
                owner=owner, expires_at=now + ttl, renewed_at=now
            )
        if not taken:
            holder.refresh_from_db()
            until = f"{holder.expires_at:%Y-%m-%d %H:%M:%S} UTC" if holder.expires_at else "released just now"
            raise TrainingLocked(
                f"{asset.symbol} is already being trained by {holder.owner or 'another run'} (lease until {until})"
            )
    try:
        yield owner
    finally:
        TrainingLease.objects.filter(asset=asset, owner=owner).update(owner="", expires_at=None)


class LeaseLost(Exception):
    """The training lease expired and another run took it: this run must stop."""


def _renewing_lease(
    *, asset: Asset, owner: str, progress: Callable[[Any], None] | None
) -> Callable[[Any], None]:
    """`progress`, after extending the lease at every epoch: a run longer than
    TRAINING_LOCK_SECONDS keeps it, and a run whose lease was taken stops."""
    ttl = dt.timedelta(seconds=settings.TRAINING_LOCK_SECONDS)

    def on_epoch(report: Any) -> None:
        now = timezone.now()  # renewed_at: the pages' "last sign of progress"
        renewed = TrainingLease.objects.filter(asset=asset, owner=owner).update(
            expires_at=now + ttl, renewed_at=now
        )
        if not renewed:
            raise LeaseLost(f"{asset.symbol}: the training lease expired and another run took it")
        if progress is not None:
            progress(report)

    return on_epoch


def _process_start(pid: int) -> str | None:
    """When process `pid` started (clock ticks since boot, Linux), or None if unknown.

    With the pid it names one process for good: in a restarted container, pids
    are handed out again from 1, so a live pid alone may be someone else.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()  # after the command name, which may hold spaces
    return fields[19] if len(fields) > 19 else None  # field 22 of proc(5): starttime


def _holder_is_dead(owner: str) -> bool:
    parts = owner.split(":")
    host, pid = parts[0], parts[1] if len(parts) > 1 else ""
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another machine's process: only expiry frees it
    started = parts[2] if len(parts) == 4 else ""  # host:pid:start:random (older leases: host:pid:random)
    if started:
        return _process_start(int(pid)) != started  # gone, or its pid now belongs to another process
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def training_config_for(*, asset: Asset, epochs: int | None = None) -> TrainingConfig:
    """The asset's hyperparameters (admin overrides on top of the defaults)."""
    overrides: dict[str, Any] = dict(asset.hyperparameters or {})
    if asset.horizon:  # the field (what the API reports) wins over a horizon in the JSON
        overrides["horizon"] = asset.horizon
    overrides.setdefault("horizon", settings.FORECAST_HORIZON)
    if epochs is not None:
        overrides["max_epochs"] = epochs
        overrides["warm_max_epochs"] = epochs
    return TrainingConfig.from_overrides(overrides)


def model_version_train(
    *,
    asset: Asset,
    mode: str = ModelVersion.Mode.FULL,
    epochs: int | None = None,
    progress: Callable[[Any], None] | None = None,
    retry_too_little_data: bool = False,
) -> ModelVersion:
    """Train, export, validate and register a new version; promote it if it passes the gate.

    Returns the version in its final state (active, validated or failed).
    Raises TrainingLocked when another training of the asset is running, NothingNew for a
    warm run with no new candle; unless `retry_too_little_data` (a run asked for by hand),
    NoCandles when the asset has no candle, and StillTooLittleData when the latest version
    failed for too little data on the same candles and hyperparameters. Those make no version
    (the hourly retrain would otherwise add a failed one every hour). A failure never touches
    the active version.
    """
    if mode not in ModelVersion.Mode.values:
        raise ValueError(f"mode must be one of {', '.join(ModelVersion.Mode.values)}, not {mode!r}")
    config = training_config_for(asset=asset, epochs=epochs)
    with training_lease(asset=asset) as owner:
        progress = _renewing_lease(asset=asset, owner=owner, progress=progress)
        _versions_fail_interrupted(asset=asset)  # first: a skipped run still tidies a dead run's row
        if mode == ModelVersion.Mode.WARM and not _has_new_candles(asset=asset):
            raise NothingNew(
                f"{asset.symbol}: no candle newer than the active version's data: nothing to fine-tune on"
            )
        frame = candles_frame(asset=asset)
        if not retry_too_little_data:
            _refuse_no_candles(asset=asset, frame=frame)
            _refuse_unchanged_too_little_data(asset=asset, config=config, frame=frame)
        parent, not_warm = None, ""
        if mode == ModelVersion.Mode.WARM:
            parent, not_warm = _warm_parent(asset=asset, config=config, frame=frame)
        if not_warm:
            logger.info("%s: a full retrain instead of a warm one: %s", asset.symbol, not_warm)
        version = _version_create(asset=asset, config=config, parent=parent)
        _version_train(version, frame=frame, config=config, parent=parent, progress=progress)
        if not_warm:
            _version_note(version, f"full retrain instead of warm: {not_warm}")
    version.refresh_from_db()
    return version


INTERRUPTED_BY_HAND = "interrupted: the training was stopped by hand (Ctrl-C)"


def _version_train(
    version: ModelVersion,
    *,
    frame: Any,
    config: TrainingConfig,
    parent: ModelVersion | None,
    progress: Callable[[Any], None],
) -> None:
    """Train `version` (fine-tuning `parent` if given), record it, store its artifacts and gate it;
    any failure marks it failed with the reason."""
    from forecasting.ml import pipeline  # torch lives only in training processes
    from forecasting.ml.features import InsufficientDataError

    asset = version.asset
    try:
        warm_start = None
        if parent is not None:
            weights = artifact_read(name=parent.weights_name, sha256=parent.weights_sha256)
            warm_start = (weights, parent.preprocessing)
        result = pipeline.train(frame, config, warm_start=warm_start, progress=progress)
    except KeyboardInterrupt:  # Ctrl-C on `manage.py train`: the process lives on to say so
        _version_fail_quietly(version, INTERRUPTED_BY_HAND)
        raise
    except OperationalError:
        # The database went away: let the caller (the Celery task) retry later.
        _version_fail_quietly(version, "interrupted: the database became unavailable")
        raise
    except InsufficientDataError as exc:  # the data's fault, not the code's: no stack trace
        # No candle at all (a run asked for by hand trains anyway): say that, not "0 windows".
        reason = str(exc) if len(frame) else _no_candles_text(asset)
        logger.warning("training %s v%s failed: %s", asset.symbol, version.version, reason)
        _version_fail_for_data(version, frame, reason)
        return
    except Exception as exc:
        logger.exception("training %s v%s failed", asset.symbol, version.version)
        _version_fail(version, f"training raised {type(exc).__name__}: {exc}", kind=Kind.TRAINING)
        return
    _version_record(version, result)
    if not result.valid:
        _version_fail(version, result.invalid_reason, kind=Kind.INVALID)
        return
    try:
        _version_store_artifacts(version, result)
    except KeyboardInterrupt:
        _version_fail_quietly(version, INTERRUPTED_BY_HAND)
        raise
    except OperationalError:
        _version_fail_quietly(version, "interrupted: the database became unavailable")
        raise
    except Exception as exc:  # storage full or unreachable, a time limit: say so on the row
        logger.exception("storing the artifacts of %s v%s failed", asset.symbol, version.version)
        _version_fail(
            version, f"storing the artifacts failed: {type(exc).__name__}: {exc}", kind=Kind.STORAGE
        )
        return
    _version_gate(version, frame=frame, gate_range=result.gate_range)


def _has_new_candles(*, asset: Asset) -> bool:
    active_last = (
        ModelVersion.objects.filter(asset=asset, status=Status.ACTIVE)
        .values_list("data_last", flat=True)
        .first()
    )
    last = last_candle_time(asset)
    return active_last is None or last is None or last > active_last


def _refuse_no_candles(*, asset: Asset, frame: Any) -> None:
    """Raise NoCandles if `frame` is empty: a failed version every hour would only say so again."""
    if not len(frame):
        raise NoCandles(_no_candles_text(asset))


def _no_candles_text(asset: Asset) -> str:
    return (
        f"{asset.symbol} has no candles: nothing to train on; import them (import_candles) "
        "or let the sync fetch them (sync_candles)"
    )


def _refuse_unchanged_too_little_data(*, asset: Asset, config: TrainingConfig, frame: Any) -> None:
    """Raise StillTooLittleData if the latest version failed for too little data and the same
    candles (`frame`) and hyperparameters would be trained on again (the hourly retrain would
    otherwise add one more failed version every hour)."""
    latest = ModelVersion.objects.filter(asset=asset).order_by("-version").first()
    if latest is None or latest.status != Status.FAILED or latest.failure_kind != Kind.TOO_LITTLE_DATA:
        return
    times = frame["open_time"]
    hours = (times.iloc[0].to_pydatetime(), times.iloc[-1].to_pydatetime()) if len(frame) else (None, None)
    same_candles = (len(frame), *hours) == (latest.data_candles, latest.data_first, latest.data_last)
    # Versions failed before fingerprints were recorded have none: their count and hours decide.
    if same_candles and latest.data_fingerprint:
        same_candles = latest.data_fingerprint == _frame_fingerprint(frame)
    if same_candles and latest.hyperparameters == json.loads(json.dumps(config.to_dict())):
        raise StillTooLittleData(
            f"{asset.symbol}: v{latest.version} failed for too little data ({latest.reason}) and no candle "
            "or hyperparameter has changed since: import more candles or change the hyperparameters"
        )


def _frame_fingerprint(frame: Any) -> str:
    """sha256 of every value of `frame` as the pipeline reads it: a candle corrected in place
    changes it, though the count and the first and last hours stay the same. (Candles have no
    updated_at to compare instead.) pandas' hash has a fixed key, so runs agree; should an
    upgrade of pandas change it, the scheduled retrain only tries once more."""
    import pandas as pd

    return hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()).hexdigest()


def _warm_parent(*, asset: Asset, config: TrainingConfig, frame: Any) -> tuple[ModelVersion | None, str]:
    """The active version to fine-tune on `frame`, or None and why a full retrain is needed.

    Fine-tuning needs the same window, horizon and network shape, the same split fractions,
    and a split of `frame` that keeps the hours the active weights were trained on out of its
    validation and test windows (a filled hole can move it onto them).
    """
    from forecasting.ml.features import InsufficientDataError
    from forecasting.ml.pipeline import WarmStartRefused, warm_start_check

    active = ModelVersion.objects.filter(asset=asset, status=Status.ACTIVE).first()
    if active is None or not active.weights_name:
        return None, "no active version with weights to fine-tune"
    if (active.window, active.horizon) != (config.window, config.horizon):
        return None, (
            f"active v{active.version} has window {active.window} and horizon {active.horizon}, "
            f"this run asks {config.window} and {config.horizon}"
        )
    # What the weights' shapes depend on, and which hours the split holds out.
    # gate_fraction too: the parent's weights were early-stopped on its calibration windows,
    # which another gate share (or a parent from before the gate part) moves into this gate.
    for key in ("hidden_size", "num_layers", "test_fraction", "validation_fraction", "gate_fraction"):
        if key not in active.hyperparameters:
            return None, f"active v{active.version} was trained before {key} was recorded"
        if active.hyperparameters[key] != getattr(config, key):
            return None, (
                f"{key} is {getattr(config, key)!r}, active v{active.version} was trained with "
                f"{active.hyperparameters[key]!r}"
            )
    try:
        warm_start_check(frame, config, active.preprocessing)
    except InsufficientDataError:
        return active, ""  # the training fails with the data's reason, as a full one would
    except WarmStartRefused as refusal:
        return None, f"active v{active.version}: {refusal.why}"
    return active, ""


def _versions_fail_interrupted(*, asset: Asset) -> None:
    # We hold the lease, so any row still "training" belongs to a run that died.
    ModelVersion.objects.filter(asset=asset, status=Status.TRAINING).update(
        status=Status.FAILED,
        failure_kind=Kind.INTERRUPTED,
        reason="interrupted: the training process stopped before finishing",
    )


def _version_create(*, asset: Asset, config: TrainingConfig, parent: ModelVersion | None) -> ModelVersion:
    with transaction.atomic():
        Asset.objects.select_for_update().filter(pk=asset.pk).first()
        last = ModelVersion.objects.filter(asset=asset).aggregate(n=Max("version"))["n"] or 0
        return ModelVersion.objects.create(
            asset=asset,
            version=last + 1,
            status=Status.TRAINING,
            mode=ModelVersion.Mode.WARM if parent else ModelVersion.Mode.FULL,
            parent=parent,
            hyperparameters=config.to_dict(),
            horizon=config.horizon,
            window=config.window,
        )


def _version_note(version: ModelVersion, note: str) -> None:
    """Add `note` to the reason the run left on the version (the gate's or the failure's)."""
    version.refresh_from_db(fields=["reason"])
    version.reason = (f"{version.reason} ({note})" if version.reason else note)[:2000]
    version.save(update_fields=["reason"])


def _version_record(version: ModelVersion, result: Any) -> None:
    version.features = list(result.preprocessing.get("features", []))
    version.preprocessing = result.preprocessing
    version.metrics = result.metrics
    version.loss_history = result.loss_history
    version.epochs = result.epochs
    version.train_seconds = round(result.train_seconds, 2)
    version.data_first = result.data_first
    version.data_last = result.data_last
    version.data_candles = result.candles
    version.trained_at = timezone.now()
    version.save()


def _version_fail_for_data(version: ModelVersion, frame: Any, reason: str) -> None:
    """Fail `version` for too little data with the candles it had, so its report says what it
    was given and the next run can tell whether anything changed."""
    if len(frame):
        version.data_first = frame["open_time"].iloc[0].to_pydatetime()
        version.data_last = frame["open_time"].iloc[-1].to_pydatetime()
    version.data_candles = len(frame)
    version.data_fingerprint = _frame_fingerprint(frame)
    _version_fail(
        version,
        reason,
        kind=Kind.TOO_LITTLE_DATA,
        also=["data_first", "data_last", "data_candles", "data_fingerprint"],
    )


def _version_fail(
    version: ModelVersion, reason: str, *, kind: str, also: list[str] | None = None
) -> ModelVersion:
    """Mark `version` failed with `reason` and its `kind` (and the `also` fields set on it) in one save."""
    version.status = Status.FAILED
    version.failure_kind = kind
    version.reason = reason[:2000]
    version.save(update_fields=["status", "failure_kind", "reason", *(also or [])])
    return version


def _version_fail_quietly(version: ModelVersion, reason: str) -> None:
    """Mark `version` interrupted if the database lets us; else the next run does (_versions_fail_interrupted)."""
    try:
        _version_fail(version, reason, kind=Kind.INTERRUPTED)
    except OperationalError:
        logger.warning("could not mark %s failed; the next run will", version)


def _version_store_artifacts(version: ModelVersion, result: Any) -> None:
    """Write and hash both files, then point the row to them; a failed write leaves no file behind."""
    stem = f"{version.asset.symbol}/v{version.version}-{uuid.uuid4().hex[:8]}"
    onnx_name, onnx_sha = artifact_write(name=f"{stem}.onnx", content=result.onnx_bytes)
    try:
        weights_name, weights_sha = artifact_write(name=f"{stem}.pt", content=result.weights_bytes)
    except BaseException:
        artifact_delete(name=onnx_name)
        raise
    version.artifact_name, version.artifact_sha256 = onnx_name, onnx_sha
    version.weights_name, version.weights_sha256 = weights_name, weights_sha
    version.status = Status.VALIDATED
    version.save(
        update_fields=["artifact_name", "artifact_sha256", "weights_name", "weights_sha256", "status"]
    )


def _gate_scores(
    version: ModelVersion,
    active: ModelVersion,
    content: bytes,
    frame: Any,
    gate_range: tuple[dt.datetime, dt.datetime],
) -> tuple[list[float | None], list[float | None], str]:
    """(candidate's skills, active's skills, a note for the reason) per step, on the candidate's
    gate windows.

    Held out for the candidate, those windows may not be for the active version: when the
    candidate's split moved back (older candles imported, a hole filled, other fractions),
    some of their targets are hours the active's early stopping, shrinkage or intervals were
    fitted on. Then both are scored on the gate windows after those hours only, or, when too
    few remain, on all of them with a note that the active's score is partly in-sample.
    """
    from forecasting.ml.evaluation import evaluate_onnx, fitted_through
    from forecasting.ml.windows import min_gate_windows

    start, end = gate_range
    candidate = _skills(version.metrics.get("validation") or {})
    bound = fitted_through(active.preprocessing or {}, active.metrics or {})
    if bound is None or bound <= start:
        return candidate, _skills(evaluate_onnx(content, active.preprocessing, frame, start, end)), ""
    fitted = f"v{active.version} was fitted on target hours up to {iso_z(bound)}"
    clean = evaluate_onnx(content, active.preprocessing, frame, bound, end) if bound < end else None
    if clean is None or clean["windows"] < min_gate_windows(version.horizon):
        active_skills = _skills(evaluate_onnx(content, active.preprocessing, frame, start, end))
        return (
            candidate,
            active_skills,
            f"; {fitted}, too few gate windows come after: its score is partly in-sample",
        )
    own = artifact_read(name=version.artifact_name, sha256=version.artifact_sha256)
    candidate = _skills(evaluate_onnx(own, version.preprocessing, frame, bound, end))
    return (
        candidate,
        _skills(clean),
        f"; only the {clean['windows']} gate windows from {iso_z(bound)} on ({fitted})",
    )


def _skills(metrics: dict) -> list[float | None]:
    """Skill per step; a non-finite step (stored as null) is None."""
    return [s if s is not None and math.isfinite(s) else None for s in metrics.get("skill_rmse") or []]


def _mean_skill(skills: list[float | None]) -> float:
    """Mean skill over the horizon; a step without a skill counts as the worst."""
    if not skills or any(s is None for s in skills):
        return -math.inf
    return fmean(skills)


def _worst_step(
    candidate: list[float | None], active: list[float | None], tolerance: float
) -> tuple[int, float, float] | None:
    """The step (1-based) where the candidate's skill falls furthest below the active's, when by
    more than `tolerance`, with both skills; None when no step does. A mean can hide a step
    much worse than the active (the next hour, the one users read first) behind small gains
    at the others. A step where the active has no skill does not bind."""
    worst = None
    for step, (mine, theirs) in enumerate(zip(candidate, active, strict=False), start=1):
        if mine is None or theirs is None:
            continue  # a null candidate step already makes its mean the worst
        if mine < theirs - tolerance and (worst is None or theirs - mine > worst[2] - worst[1]):
            worst = (step, mine, theirs)
    return worst


def _skill_text(skill: float) -> str:
    # _mean_skill's -inf: a step without a skill, where the model erred but no change was exact.
    return f"{skill:+.4f}" if math.isfinite(skill) else "null (erred where no change was exact)"


def _version_gate(version: ModelVersion, *, frame: Any, gate_range: tuple[dt.datetime, dt.datetime]) -> None:
    """Promote `version` unless it is worse than the active one on the candidate's gate
    windows (the newest part of its validation windows, which none of its fitted steps read;
    its `metrics["validation"]` are its scores there) by more than PROMOTION_TOLERANCE of
    skill, in the mean over the horizon or at any one step. Choosing between versions is model
    selection: it never looks at the test split, so the test metrics of whatever is served
    stay honest."""

    active = ModelVersion.objects.filter(asset=version.asset, status=Status.ACTIVE).first()
    if active is None:
        model_version_activate(version=version, reason="first valid version of this asset")
        return
    if active.horizon != version.horizon or active.window != version.window:
        model_version_activate(
            version=version, reason="horizon or window changed: the old version no longer fits"
        )
        return
    try:
        content = artifact_read(name=active.artifact_name, sha256=active.artifact_sha256)
        session_load(name=active.artifact_name, content=content)
    except ArtifactIntegrityError as exc:  # it cannot serve, pinned or not
        model_version_activate(
            version=version, reason=f"replaces v{active.version}, whose artifact is bad: {exc}"
        )
        return
    if active.pinned:
        # Members read it too: what happened, not what an operator should do (the admin's
        # "Unpin" and "Activate" actions say that).
        version.reason = (
            f"kept out of service: active v{active.version} was chosen by an operator (pinned), "
            "and retraining does not replace a pinned version"
        )
        version.save(update_fields=["reason"])
        return
    try:
        candidate, active_skills, note = _gate_scores(version, active, content, frame, gate_range)
    except OperationalError:
        raise
    except Exception as exc:  # the candidate is fine: keep it for an admin to look at
        logger.exception("the gate could not score %s v%s", version.asset.symbol, active.version)
        version.reason = f"kept out of service: the gate could not score active v{active.version}: {exc}"
        version.save(update_fields=["reason"])
        return
    tolerance = settings.PROMOTION_TOLERANCE
    candidate_mean, active_mean = _mean_skill(candidate), _mean_skill(active_skills)
    comparison = (
        f"mean validation skill {_skill_text(candidate_mean)} vs active v{active.version} "
        f"{_skill_text(active_mean)} on the same held-out gate windows (tolerance {tolerance}){note}"
    )
    worst = _worst_step(candidate, active_skills, tolerance)
    if candidate_mean >= active_mean - tolerance and worst is None:
        model_version_activate(version=version, reason=f"promoted: {comparison}")
        return
    if candidate_mean >= active_mean - tolerance and worst is not None:
        step, mine, theirs = worst
        comparison += (
            f"; but {step} h ahead its skill is {_skill_text(mine)} vs {_skill_text(theirs)}, "
            f"below by more than the tolerance, which holds at every step"
        )
    version.reason = f"kept out of service: {comparison}"
    version.save(update_fields=["reason"])
