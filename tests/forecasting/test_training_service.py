import datetime as dt
import os
import socket
from datetime import datetime
from pathlib import Path

import pytest
from django.core.files.storage import storages

from forecasting import services
from forecasting.apis import MetricsSerializer, ValidationMetricsSerializer
from forecasting.artifacts import sha256_hex
from forecasting.ml.evaluation import METRIC_KEYS as EVALUATION_METRIC_KEYS
from forecasting.ml.windows import chronological_split, hour_numbers, window_bases
from forecasting.models import ModelVersion, TrainingLease
from markets.models import Asset, Candle
from markets.selectors import candles_frame

from .conftest import HOUR, START, candles_create

Status = ModelVersion.Status
Kind = ModelVersion.FailureKind
METRIC_KEYS = {"horizon", *EVALUATION_METRIC_KEYS}


def test_the_first_valid_version_becomes_active_with_its_artifacts_hashed(tiny_asset):
    version = services.model_version_train(asset=tiny_asset)

    assert version.status == Status.ACTIVE, version.reason
    assert version.version == 1 and version.mode == "full"
    assert METRIC_KEYS <= set(version.metrics)
    assert all(len(version.metrics[key]) == 6 for key in METRIC_KEYS - {"horizon"})
    assert version.data_candles == 600 and version.epochs >= 1 and version.loss_history
    storage = storages["artifacts"]
    with storage.open(version.artifact_name, "rb") as handle:
        assert sha256_hex(handle.read()) == version.artifact_sha256
    with storage.open(version.weights_name, "rb") as handle:
        assert sha256_hex(handle.read()) == version.weights_sha256
    assert TrainingLease.objects.get(asset=tiny_asset).owner == ""  # released


def test_a_second_version_is_compared_with_the_active_one_on_the_same_validation_windows(tiny_asset):
    first = services.model_version_train(asset=tiny_asset)
    second = services.model_version_train(asset=tiny_asset)

    assert second.version == 2
    assert "mean validation skill" in second.reason and "on the same held-out gate windows" in second.reason
    statuses = {first.version: first.status, second.version: second.status}
    first.refresh_from_db()
    assert [v.status for v in ModelVersion.objects.filter(status=Status.ACTIVE)] == [Status.ACTIVE]
    if second.status == Status.ACTIVE:
        assert first.status == Status.VALIDATED
    else:
        assert second.status == Status.VALIDATED and first.status == Status.ACTIVE, statuses


def test_the_gate_keeps_out_a_version_worse_than_the_active_beyond_tolerance(tiny_asset, settings):
    services.model_version_train(asset=tiny_asset)
    # No candidate can beat the active by more than 100 % of skill: demand the impossible.
    settings.PROMOTION_TOLERANCE = -1.0
    second = services.model_version_train(asset=tiny_asset)

    assert second.status == Status.VALIDATED
    assert second.reason.startswith("kept out of service")
    assert ModelVersion.objects.get(status=Status.ACTIVE).version == 1


def test_a_warm_start_fine_tunes_the_active_version_and_keeps_its_scaler(tiny_asset):
    parent = services.model_version_train(asset=tiny_asset)
    candles_create(tiny_asset, 24, start=parent.data_last + services.HOUR, seed=7)
    warm = services.model_version_train(asset=tiny_asset, mode="warm")

    assert warm.mode == "warm" and warm.parent_id == parent.pk
    assert warm.status in (Status.ACTIVE, Status.VALIDATED), warm.reason
    assert warm.preprocessing["scaler"] == parent.preprocessing["scaler"]
    assert warm.data_candles == 624


def test_an_hourly_warm_chain_fine_tunes_warm_versions_and_reports_the_inherited_scalers_rows(
    tiny_asset, settings
):
    settings.PROMOTION_TOLERANCE = 10.0  # every candidate is promoted: each warm run has a warm parent
    first = services.model_version_train(asset=tiny_asset)
    for seed in (7, 8):
        active = ModelVersion.objects.get(asset=tiny_asset, status=Status.ACTIVE)
        candles_create(tiny_asset, 1, start=active.data_last + HOUR, seed=seed)

        warm = services.model_version_train(asset=tiny_asset, mode="warm")

        assert warm.mode == "warm" and warm.parent_id == active.pk, warm.reason
        assert warm.status == Status.ACTIVE and "instead of warm" not in warm.reason
        training = warm.preprocessing["training"]
        assert training["scaler_rows"] == first.preprocessing["training"]["scaler_rows"]
        assert _first_validation_input(tiny_asset, warm) > _trained_through(active)
        assert _trained_through(warm) >= _trained_through(active)


def test_a_warm_retrain_after_a_hole_fill_moved_validation_onto_trained_hours_trains_from_scratch(
    tiny_asset, caplog
):
    hole = range(100, 220)  # leaves just enough gap-free windows to train the parent
    Candle.objects.filter(
        asset=tiny_asset, open_time__gte=START + hole.start * HOUR, open_time__lt=START + hole.stop * HOUR
    ).delete()
    parent = services.model_version_train(asset=tiny_asset)
    assert parent.status == Status.ACTIVE, parent.reason
    candles_create(tiny_asset, 600, skip=set(range(600)) - set(hole))  # the sync fills the hole
    candles_create(tiny_asset, 1, start=parent.data_last + HOUR, seed=7)  # and a new hour arrives

    version = services.model_version_train(asset=tiny_asset, mode="warm")

    assert version.mode == "full" and version.parent_id is None
    assert version.status in (Status.ACTIVE, Status.VALIDATED), version.reason
    assert f"full retrain instead of warm: active v{parent.version}: the parent's weights" in version.reason
    assert "a full retrain instead of a warm one" in caplog.text
    # Fine-tuned, the parent's training hours would have been validated on; trained afresh,
    # the weights know nothing from the validation and test windows on.
    first_validation_input = _first_validation_input(tiny_asset, version)
    assert first_validation_input <= _trained_through(parent)
    assert _trained_through(version) < first_validation_input


def test_a_warm_retrain_after_an_admin_changed_the_test_fraction_trains_from_scratch(tiny_asset):
    parent = services.model_version_train(asset=tiny_asset)
    candles_create(tiny_asset, 1, start=parent.data_last + HOUR, seed=7)
    tiny_asset.hyperparameters = {**tiny_asset.hyperparameters, "test_fraction": 0.2}
    tiny_asset.save()

    version = services.model_version_train(asset=tiny_asset, mode="warm")

    assert version.mode == "full" and version.parent_id is None
    assert version.status in (Status.ACTIVE, Status.VALIDATED), version.reason
    assert (
        "full retrain instead of warm: test_fraction is 0.2, active v1 was trained with 0.1" in version.reason
    )


def test_a_warm_retrain_of_a_warm_version_from_before_trained_through_was_recorded_trains_from_scratch(
    tiny_asset, settings
):
    settings.PROMOTION_TOLERANCE = 10.0
    first = services.model_version_train(asset=tiny_asset)
    candles_create(tiny_asset, 1, start=first.data_last + HOUR, seed=7)
    warm = services.model_version_train(asset=tiny_asset, mode="warm")
    assert warm.status == Status.ACTIVE and warm.mode == "warm", warm.reason
    old = ("trained_through", "test_fraction", "validation_fraction")
    training = {k: v for k, v in warm.preprocessing["training"].items() if k not in old}
    warm.preprocessing = {**warm.preprocessing, "training": training}
    warm.save(update_fields=["preprocessing"])
    candles_create(tiny_asset, 1, start=warm.data_last + HOUR, seed=8)

    version = services.model_version_train(asset=tiny_asset, mode="warm")

    assert version.mode == "full" and version.parent_id is None
    assert "does not record the last hour its weights were trained on" in version.reason


def test_a_warm_retrain_is_skipped_when_no_candle_arrived_since_the_active_version(tiny_asset):
    services.model_version_train(asset=tiny_asset)
    with pytest.raises(services.NothingNew):
        services.model_version_train(asset=tiny_asset, mode="warm")
    assert ModelVersion.objects.count() == 1
    # A full retrain is always allowed (the daily schedule, or an admin's "retrain now").
    assert services.model_version_train(asset=tiny_asset, mode="full").version == 2


def test_a_skipped_warm_retrain_still_marks_a_dead_runs_row_failed(tiny_asset):
    services.model_version_train(asset=tiny_asset)
    dead = ModelVersion.objects.create(
        asset=tiny_asset, version=2, horizon=6, window=24
    )  # its worker was killed

    with pytest.raises(services.NothingNew):
        services.model_version_train(asset=tiny_asset, mode="warm")

    dead.refresh_from_db()
    assert dead.status == Status.FAILED and dead.reason.startswith("interrupted")
    assert dead.failure_kind == Kind.INTERRUPTED


def test_warm_without_an_active_version_trains_from_scratch(tiny_asset):
    version = services.model_version_train(asset=tiny_asset, mode="warm")
    assert version.mode == "full" and version.status == Status.ACTIVE
    assert version.reason == (
        "first valid version of this asset "
        "(full retrain instead of warm: no active version with weights to fine-tune)"
    )


def test_too_little_data_fails_with_the_candles_it_had_and_no_stack_trace(tiny_asset, caplog):
    tiny_asset.hyperparameters = {**tiny_asset.hyperparameters, "window": 590}
    tiny_asset.save()

    failed = services.model_version_train(asset=tiny_asset)

    assert failed.status == Status.FAILED and failed.reason.startswith("too little gap-free data")
    assert failed.failure_kind == Kind.TOO_LITTLE_DATA
    assert failed.data_candles == 600 and len(failed.data_fingerprint) == 64
    assert failed.data_first == START and failed.data_last == START + 599 * HOUR
    logged = [r for r in caplog.records if "failed" in r.getMessage()]
    assert logged and all(r.exc_info is None for r in logged)


def test_a_run_after_a_too_little_data_failure_on_the_same_candles_is_refused(tiny_asset):
    tiny_asset.hyperparameters = {**tiny_asset.hyperparameters, "window": 590}
    tiny_asset.save()
    services.model_version_train(asset=tiny_asset)

    with pytest.raises(services.StillTooLittleData, match="ETHUSDT: v1 failed for too little data"):
        services.model_version_train(asset=tiny_asset)
    assert ModelVersion.objects.filter(asset=tiny_asset).count() == 1

    retried = services.model_version_train(asset=tiny_asset, retry_too_little_data=True)
    assert retried.version == 2 and retried.status == Status.FAILED


def test_changed_hyperparameters_or_a_changed_candle_count_let_the_run_try_again(tiny_asset):
    tiny_asset.hyperparameters = {**tiny_asset.hyperparameters, "window": 590}
    tiny_asset.save()
    services.model_version_train(asset=tiny_asset)
    Candle.objects.filter(asset=tiny_asset, open_time=START + 300 * HOUR).delete()  # a hole, same last hour

    assert services.model_version_train(asset=tiny_asset).version == 2

    tiny_asset.hyperparameters = {**tiny_asset.hyperparameters, "window": 24}
    tiny_asset.save()
    assert services.model_version_train(asset=tiny_asset).status == Status.ACTIVE


def test_a_run_after_a_too_little_data_failure_on_a_candle_corrected_in_place_tries_again(tiny_asset):
    tiny_asset.hyperparameters = {**tiny_asset.hyperparameters, "window": 590}
    tiny_asset.save()
    services.model_version_train(asset=tiny_asset)
    # An import with --replace: the same hours, one close different.
    corrected = Candle.objects.get(asset=tiny_asset, open_time=START + 300 * HOUR)
    corrected.close += 1
    corrected.save()

    again = services.model_version_train(asset=tiny_asset)

    assert again.version == 2 and again.failure_kind == Kind.TOO_LITTLE_DATA
    with pytest.raises(services.StillTooLittleData):  # and nothing changed since that one
        services.model_version_train(asset=tiny_asset)


def test_a_too_little_data_failure_recorded_before_fingerprints_is_judged_by_its_hours(tiny_asset):
    tiny_asset.hyperparameters = {**tiny_asset.hyperparameters, "window": 590}
    tiny_asset.save()
    failed = services.model_version_train(asset=tiny_asset)
    ModelVersion.objects.filter(pk=failed.pk).update(data_fingerprint="")  # as migration 0004 left it

    with pytest.raises(services.StillTooLittleData):
        services.model_version_train(asset=tiny_asset)
    Candle.objects.filter(asset=tiny_asset, open_time=START + 599 * HOUR).delete()
    assert services.model_version_train(asset=tiny_asset).version == 2


def test_only_a_failure_of_the_too_little_data_kind_stops_the_next_run(tiny_asset):
    tiny_asset.hyperparameters = {**tiny_asset.hyperparameters, "window": 590}
    tiny_asset.save()
    failed = services.model_version_train(asset=tiny_asset)
    # Everything the old convention looked at (failed, candles recorded, never trained) is still there.
    ModelVersion.objects.filter(pk=failed.pk).update(failure_kind=Kind.TRAINING)

    assert services.model_version_train(asset=tiny_asset).version == 2


def test_an_asset_without_candles_is_refused_without_a_version_unless_asked_by_hand(tiny_asset):
    Candle.objects.filter(asset=tiny_asset).delete()

    for mode in ("warm", "full", "warm"):
        with pytest.raises(services.NoCandles, match="ETHUSDT has no candles: nothing to train on"):
            services.model_version_train(asset=tiny_asset, mode=mode)
    assert not ModelVersion.objects.exists()

    by_hand = services.model_version_train(asset=tiny_asset, retry_too_little_data=True)
    assert (by_hand.status, by_hand.failure_kind, by_hand.data_candles) == (
        Status.FAILED,
        Kind.TOO_LITTLE_DATA,
        0,
    )
    assert by_hand.reason.startswith("ETHUSDT has no candles: nothing to train on")  # not "0 windows"
    with pytest.raises(services.NoCandles):  # the next scheduled run still makes none
        services.model_version_train(asset=tiny_asset)


def test_a_model_that_fails_its_checks_is_failed_as_invalid(tiny_asset, monkeypatch):
    from forecasting.ml import pipeline

    monkeypatch.setattr(pipeline, "validate_onnx", lambda *args: "onnxruntime and torch disagree")

    failed = services.model_version_train(asset=tiny_asset)

    assert (failed.status, failed.failure_kind) == (Status.FAILED, Kind.INVALID)
    assert failed.reason == "onnxruntime and torch disagree" and failed.trained_at is not None


def test_a_version_that_did_not_fail_has_no_failure_kind(tiny_asset):
    assert services.model_version_train(asset=tiny_asset).failure_kind == ""


def test_a_failure_that_is_not_about_data_never_stops_the_next_run(tiny_asset, monkeypatch):
    from forecasting.ml import pipeline

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(pipeline, "train", broken)
    failed = services.model_version_train(asset=tiny_asset)
    assert (failed.status, failed.failure_kind) == (Status.FAILED, Kind.TRAINING)
    monkeypatch.undo()

    assert services.model_version_train(asset=tiny_asset).status == Status.ACTIVE


def test_a_training_that_fails_is_recorded_and_leaves_the_active_version_serving(tiny_asset):
    active = services.model_version_train(asset=tiny_asset)
    tiny_asset.hyperparameters = {**tiny_asset.hyperparameters, "window": 590}  # more than the data allows
    tiny_asset.save()

    failed = services.model_version_train(asset=tiny_asset)

    assert failed.status == Status.FAILED
    assert "too little gap-free data" in failed.reason
    assert not failed.artifact_name
    active.refresh_from_db()
    assert active.status == Status.ACTIVE
    assert TrainingLease.objects.get(asset=tiny_asset).owner == ""


def _spy_on_the_gates_scoring(monkeypatch) -> list[tuple[datetime, datetime | None, int]]:
    """(start, end, windows scored) of every evaluate_onnx call the gate makes from now on."""
    from forecasting.ml import evaluation

    calls = []
    real = evaluation.evaluate_onnx

    def spy(content, preprocessing, frame, start, end=None):
        metrics = real(content, preprocessing, frame, start, end)
        calls.append((start, end, metrics["windows"]))
        return metrics

    monkeypatch.setattr(evaluation, "evaluate_onnx", spy)
    return calls


def _iso_range(version: ModelVersion) -> tuple[datetime, datetime]:
    first, last = version.preprocessing["training"]["gate_range"]
    return datetime.fromisoformat(first), datetime.fromisoformat(last)


def test_the_gate_scores_the_active_on_the_candidates_held_out_gate_windows_never_the_test_split(
    tiny_asset, monkeypatch
):
    services.model_version_train(asset=tiny_asset)
    calls = _spy_on_the_gates_scoring(monkeypatch)
    second = services.model_version_train(asset=tiny_asset)

    [(start, end, windows)] = calls
    assert (start, end) == _iso_range(second)  # the candidate's gate windows...
    # ...all of them, as many as its own validation figures were computed on
    assert (
        windows == second.metrics["validation"]["windows"] == second.preprocessing["training"]["gate_windows"]
    )
    test_start = datetime.fromisoformat(second.metrics["test_start"].replace("Z", "+00:00"))
    assert end < test_start
    # Not the calibration windows: they end before the gate's first window (the newest part).
    frame = candles_frame(asset=tiny_asset)
    split = chronological_split(
        window_bases(hour_numbers(frame["open_time"]), second.window, second.horizon),
        second.window,
        second.horizon,
        0.1,
        0.2,
    )
    assert frame["open_time"].iloc[split.gate[0]].to_pydatetime() == start
    assert frame["open_time"].iloc[split.calibration[-1]].to_pydatetime() < start
    assert second.hyperparameters["gate_fraction"] == 0.3


def _as_before_the_gate_split(version: ModelVersion) -> None:
    """Make `version` look stored before the held-out gate: no split record anywhere."""
    new_keys = ("gate_fraction", "calibration_windows", "gate_windows", "gate_range")
    training = {k: v for k, v in version.preprocessing["training"].items() if k not in new_keys}
    version.preprocessing = {**version.preprocessing, "training": training}
    version.hyperparameters = {k: v for k, v in version.hyperparameters.items() if k != "gate_fraction"}
    version.metrics = {**version.metrics, "validation": {**version.metrics["validation"], "windows": 97}}
    version.save()


def test_an_active_version_stored_before_the_gate_split_still_serves_and_is_gated(tiny_asset, monkeypatch):
    old = services.model_version_train(asset=tiny_asset)
    _as_before_the_gate_split(old)
    assert services.forecast_refresh(asset=tiny_asset).model_version_id == old.pk  # it serves
    calls = _spy_on_the_gates_scoring(monkeypatch)

    new = services.model_version_train(asset=tiny_asset)

    assert new.status in (Status.ACTIVE, Status.VALIDATED), new.reason
    [(start, end, windows)] = calls  # scored, on the new version's gate windows
    assert (start, end) == _iso_range(new) and windows == new.metrics["validation"]["windows"]
    assert "on the same held-out gate windows" in new.reason
    # It calibrated on all its validation windows, which reach past the new gate's last one.
    assert f"v{old.version} was fitted on target hours up to" in new.reason
    assert "too few gate windows come after: its score is partly in-sample" in new.reason


def test_a_version_on_the_same_candles_is_gated_on_all_its_gate_windows_without_a_note(tiny_asset):
    services.model_version_train(asset=tiny_asset)
    second = services.model_version_train(asset=tiny_asset)
    assert "on the same held-out gate windows" in second.reason and "fitted on" not in second.reason


def test_when_older_candles_move_the_split_back_the_gate_skips_what_the_active_was_fitted_on(
    tiny_asset, monkeypatch
):
    first = services.model_version_train(asset=tiny_asset)
    fitted_through, _ = _iso_range(first)  # its calibration targets end at its first gate base
    candles_create(tiny_asset, 50, start=START - 50 * HOUR, seed=11)  # an older file imported
    calls = _spy_on_the_gates_scoring(monkeypatch)

    second = services.model_version_train(asset=tiny_asset)

    start, end = _iso_range(second)
    assert start < fitted_through < end  # some of its gate windows have targets v1 was fitted on
    # Both versions are scored on the rest only: v1's score there is held out too.
    assert [(call[0], call[1]) for call in calls] == [(fitted_through, end), (fitted_through, end)]
    windows = calls[0][2]
    assert calls[1][2] == windows < second.metrics["validation"]["windows"]
    assert f"only the {windows} gate windows from {fitted_through:%Y-%m-%dT%H:%M:%SZ} on" in second.reason
    assert f"v{first.version} was fitted on target hours up to" in second.reason


def test_a_warm_retrain_of_an_active_version_stored_before_the_gate_split_trains_full(tiny_asset):
    # Its weights were early-stopped on all its validation windows, the new gate's among them.
    old = services.model_version_train(asset=tiny_asset)
    _as_before_the_gate_split(old)
    candles_create(tiny_asset, 1, start=old.data_last + HOUR, seed=7)

    version = services.model_version_train(asset=tiny_asset, mode="warm")

    assert version.parent_id is None and not version.preprocessing["training"]["warm_start"]
    assert f"full retrain instead of warm: active v{old.version} was trained before gate_fraction" in (
        version.reason
    )
    assert version.status in (Status.ACTIVE, Status.VALIDATED), version.reason


def test_a_warm_retrain_with_another_gate_share_trains_full(tiny_asset):
    services.model_version_train(asset=tiny_asset)
    tiny_asset.hyperparameters = {**tiny_asset.hyperparameters, "gate_fraction": 0.4}
    tiny_asset.save()
    candles_create(tiny_asset, 1, start=START + 600 * HOUR, seed=7)

    version = services.model_version_train(asset=tiny_asset, mode="warm")

    assert version.parent_id is None
    assert (
        "full retrain instead of warm: gate_fraction is 0.4, active v1 was trained with 0.3" in version.reason
    )


def test_a_failed_artifact_write_fails_the_version_and_leaves_no_file(tiny_asset, monkeypatch):
    from forecasting.services import training

    active = services.model_version_train(asset=tiny_asset)
    real = training.artifact_write

    def write(*, name, content):
        if name.endswith(".pt"):
            raise OSError(28, "No space left on device")
        return real(name=name, content=content)

    monkeypatch.setattr(training, "artifact_write", write)
    failed = services.model_version_train(asset=tiny_asset)

    assert (failed.status, failed.failure_kind) == (Status.FAILED, Kind.STORAGE)
    assert failed.reason == "storing the artifacts failed: OSError: [Errno 28] No space left on device"
    assert not failed.artifact_name and not failed.weights_name
    stored = sorted(p.name for p in _files(tiny_asset))
    assert stored == sorted(os.path.basename(n) for n in (active.artifact_name, active.weights_name))
    active.refresh_from_db()
    assert active.status == Status.ACTIVE
    assert TrainingLease.objects.get(asset=tiny_asset).owner == ""


def _files(asset):
    return [p for p in Path(storages["artifacts"].path(asset.symbol)).iterdir() if p.is_file()]


def test_a_gate_that_cannot_score_the_active_version_keeps_the_candidate_out(tiny_asset, monkeypatch):
    from forecasting.ml import evaluation

    active = services.model_version_train(asset=tiny_asset)

    def broken(*args, **kwargs):
        raise RuntimeError("onnxruntime could not load the graph")

    monkeypatch.setattr(evaluation, "evaluate_onnx", broken)
    second = services.model_version_train(asset=tiny_asset)

    assert second.status == Status.VALIDATED and second.artifact_name
    assert second.reason == (
        f"kept out of service: the gate could not score active v{active.version}: "
        "onnxruntime could not load the graph"
    )
    active.refresh_from_db()
    assert active.status == Status.ACTIVE


def test_bad_hyperparameters_are_refused_before_anything_is_written(tiny_asset):
    tiny_asset.hyperparameters = {"hiden_size": 8}
    tiny_asset.save()
    with pytest.raises(ValueError, match="unknown hyperparameter 'hiden_size'"):
        services.model_version_train(asset=tiny_asset)
    assert not ModelVersion.objects.exists()


def test_it_refuses_a_second_training_of_the_same_asset_while_the_lease_is_held(tiny_asset):
    with services.training_lease(asset=tiny_asset):
        with pytest.raises(services.TrainingLocked, match="already being trained"):
            services.model_version_train(asset=tiny_asset)
    assert not ModelVersion.objects.exists()


def test_leases_of_different_assets_are_independent(tiny_asset):
    other = Asset.objects.create(symbol="SOLUSDT", base="SOL", quote="USDT")
    with services.training_lease(asset=tiny_asset), services.training_lease(asset=other):
        assert TrainingLease.objects.exclude(owner="").count() == 2


def test_a_lease_released_while_it_is_being_taken_is_taken_instead_of_crashing(tiny_asset, monkeypatch):
    other = "elsewhere:1:beef"  # another host: alive as far as this one can tell
    _lease_held(tiny_asset, other)
    manager, real_get = TrainingLease.objects, TrainingLease.objects.get

    def get(*args, **kwargs):  # the holder finishes between the first UPDATE and this read
        manager.filter(asset=tiny_asset, owner=other).update(owner="", expires_at=None)
        return real_get(*args, **kwargs)

    monkeypatch.setattr(manager, "get", get)
    with services.training_lease(asset=tiny_asset) as owner:
        assert real_get(asset=tiny_asset).owner == owner


def test_the_lease_is_extended_at_every_epoch(tiny_asset, settings):
    settings.TRAINING_LOCK_SECONDS = 3600
    seen = []

    def progress(report):
        seen.append(TrainingLease.objects.get(asset=tiny_asset).expires_at)

    services.model_version_train(asset=tiny_asset, progress=progress)

    assert len(seen) == 2 and seen[0] < seen[1]


def test_the_lease_records_when_its_holder_last_showed_progress(tiny_asset, settings):
    # The pages tell a running training from one whose worker is gone by the lease alone.
    settings.TRAINING_LOCK_SECONDS = 3600
    seen = []

    def progress(report):
        lease = TrainingLease.objects.get(asset=tiny_asset)
        seen.append(lease.renewed_at)
        assert lease.expires_at == lease.renewed_at + dt.timedelta(seconds=3600)

    with services.training_lease(asset=tiny_asset):
        taken = TrainingLease.objects.get(asset=tiny_asset).renewed_at
    services.model_version_train(asset=tiny_asset, progress=progress)

    assert taken is not None and taken < seen[0] < seen[1]


def test_a_run_whose_lease_was_taken_stops_and_is_not_promoted(tiny_asset):
    def progress(report):  # the lease expired during epoch 1 and another worker took it
        TrainingLease.objects.filter(asset=tiny_asset).update(owner="elsewhere:2:f00d")

    version = services.model_version_train(asset=tiny_asset, progress=progress)

    assert version.status == Status.FAILED
    assert "the training lease expired and another run took it" in version.reason
    assert not ModelVersion.objects.filter(status=Status.ACTIVE).exists()
    assert TrainingLease.objects.get(asset=tiny_asset).owner == "elsewhere:2:f00d"  # left to its holder


def test_a_warm_retrain_after_an_architecture_change_trains_from_scratch(tiny_asset):
    parent = services.model_version_train(asset=tiny_asset)
    candles_create(tiny_asset, 24, start=parent.data_last + services.HOUR, seed=7)
    tiny_asset.hyperparameters = {**tiny_asset.hyperparameters, "hidden_size": 12}
    tiny_asset.save()

    version = services.model_version_train(asset=tiny_asset, mode="warm")

    assert version.status in (Status.ACTIVE, Status.VALIDATED), version.reason
    assert version.mode == "full" and version.parent_id is None
    assert version.hyperparameters["hidden_size"] == 12
    assert "full retrain instead of warm: hidden_size is 12, active v1 was trained with 8" in version.reason


def test_a_lease_left_by_a_dead_process_of_this_host_is_taken_over(tiny_asset):
    dead_pid = 2**22 + 12345  # above pid_max: no such process
    _lease_held(tiny_asset, f"{socket.gethostname()}:{dead_pid}:cafe")
    ModelVersion.objects.create(asset=tiny_asset, version=1, horizon=6, window=24)  # left "training"

    version = services.model_version_train(asset=tiny_asset)

    assert version.version == 2 and version.status == Status.ACTIVE
    interrupted = ModelVersion.objects.get(version=1)
    assert interrupted.status == Status.FAILED and interrupted.reason.startswith("interrupted")


def test_a_lease_held_by_a_live_process_is_respected(tiny_asset):
    _lease_held(tiny_asset, f"{socket.gethostname()}:{os.getppid()}:beef")
    with pytest.raises(services.TrainingLocked):
        services.model_version_train(asset=tiny_asset)


def test_a_lease_whose_pid_now_belongs_to_another_process_is_taken_over(tiny_asset):
    # A restarted container hands pids out again: this pid is alive, but it started at another time.
    from forecasting.services.training import _process_start

    live = os.getppid()
    assert _process_start(live) is not None
    _lease_held(tiny_asset, f"{socket.gethostname()}:{live}:{int(_process_start(live)) + 1}:cafe")

    assert services.model_version_train(asset=tiny_asset).status == Status.ACTIVE


def test_a_lease_of_a_live_process_with_its_start_time_is_respected(tiny_asset):
    from forecasting.services.training import _process_start

    live = os.getppid()
    _lease_held(tiny_asset, f"{socket.gethostname()}:{live}:{_process_start(live)}:beef")
    with pytest.raises(services.TrainingLocked):
        services.model_version_train(asset=tiny_asset)


def test_a_lease_records_its_process_start_time(tiny_asset):
    from forecasting.services.training import _process_start

    with services.training_lease(asset=tiny_asset) as owner:
        host, pid, started, _ = owner.split(":")
    assert (host, int(pid), started) == (socket.gethostname(), os.getpid(), _process_start(os.getpid()))


def test_the_gate_reads_a_non_finite_skill_as_the_worst():
    from forecasting.services.training import _mean_skill, _skills

    assert _mean_skill(_skills({"skill_rmse": [0.1, None]})) == float("-inf")
    assert _mean_skill(_skills({"skill_rmse": [0.1, float("nan")]})) == float("-inf")
    assert _mean_skill(_skills({"skill_rmse": [0.1, 0.3]})) == pytest.approx(0.2)


def test_the_api_schema_describes_every_metric_a_training_stores(tiny_asset):
    version = services.model_version_train(asset=tiny_asset)

    assert set(version.metrics) == set(MetricsSerializer().fields)
    assert set(version.metrics["validation"]) == set(ValidationMetricsSerializer().fields)


def test_the_horizon_field_wins_over_a_horizon_in_the_hyperparameters(tiny_asset):
    assert tiny_asset.hyperparameters["horizon"] == 6
    tiny_asset.horizon = 4
    assert services.training_config_for(asset=tiny_asset).horizon == 4


def test_a_version_pinned_by_an_admin_is_not_replaced_by_retraining_until_unpinned(tiny_asset, settings):
    settings.PROMOTION_TOLERANCE = 10.0  # the gate would promote anything
    first = services.model_version_train(asset=tiny_asset)
    services.model_version_activate(version=first, reason="rolled back by admin", pinned=True)

    kept_out = services.model_version_train(asset=tiny_asset)

    assert kept_out.status == Status.VALIDATED
    assert kept_out.reason.startswith(
        f"kept out of service: active v{first.version} was chosen by an operator (pinned)"
    )
    assert services.model_version_unpin(version=first) is True
    promoted = services.model_version_train(asset=tiny_asset)
    assert promoted.status == Status.ACTIVE
    first.refresh_from_db()
    assert first.status == Status.VALIDATED and not first.pinned


def test_a_pinned_version_whose_artifact_is_damaged_is_replaced(tiny_asset):
    first = services.model_version_train(asset=tiny_asset)
    services.model_version_activate(version=first, reason="rolled back by admin", pinned=True)
    with open(storages["artifacts"].path(first.artifact_name), "ab") as handle:
        handle.write(b"tampered")

    second = services.model_version_train(asset=tiny_asset)

    assert second.status == Status.ACTIVE
    assert second.reason.startswith(f"replaces v{first.version}, whose artifact is bad")


def test_an_active_version_that_onnxruntime_cannot_load_is_replaced(tiny_asset):
    # Bytes that match their recorded hash but are no model (as after an onnxruntime upgrade
    # past the artifact's opset): it cannot serve, so the gate does not compare with it.
    first = services.model_version_train(asset=tiny_asset)
    _artifact_replace(first, b"not an onnx model")

    second = services.model_version_train(asset=tiny_asset)

    assert second.status == Status.ACTIVE
    assert second.reason.startswith(f"replaces v{first.version}, whose artifact is bad: ")
    assert "cannot be loaded by onnxruntime" in second.reason


@pytest.mark.parametrize(
    ("shift", "promoted"),
    [
        # Far worse at the next hour, a little better elsewhere: the mean alone would promote it.
        ([-0.5, 0.1, 0.1, 0.1, 0.1, 0.1], False),
        ([0.01] * 6, True),
        ([-0.015, 0.0, 0.0, 0.0, 0.0, 0.0], True),  # within the tolerance at every step
    ],
)
def test_the_gate_keeps_out_a_candidate_much_worse_at_one_step(tiny_asset, settings, shift, promoted):
    from forecasting.services.training import _version_gate

    active = services.model_version_train(asset=tiny_asset)
    settings.PROMOTION_TOLERANCE = 0.02
    # Skills against the active's own, on its own gate windows (none read an hour it was fitted on).
    active_skills = active.metrics["validation"]["skill_rmse"]
    candidate = _candidate_of(active, [a + d for a, d in zip(active_skills, shift, strict=True)])

    _version_gate(candidate, frame=candles_frame(asset=tiny_asset), gate_range=_iso_range(active))

    candidate.refresh_from_db()
    assert (candidate.status == Status.ACTIVE) is promoted, candidate.reason
    if not promoted:
        assert candidate.reason.startswith("kept out of service: mean validation skill ")
        assert "; but 1 h ahead its skill is " in candidate.reason
        assert "below by more than the tolerance, which holds at every step" in candidate.reason


def _candidate_of(active: ModelVersion, skills: list) -> ModelVersion:
    """A validated v2 with these validation skills and the active's artifact (so that a
    promotion can serve it)."""
    return ModelVersion.objects.create(
        asset=active.asset,
        version=2,
        status=Status.VALIDATED,
        horizon=active.horizon,
        window=active.window,
        metrics={"validation": {"skill_rmse": skills}},
        preprocessing=active.preprocessing,
        artifact_name=active.artifact_name,
        artifact_sha256=active.artifact_sha256,
    )


def _artifact_replace(version: ModelVersion, content: bytes) -> None:
    """Store other bytes as the version's artifact, with their hash recorded."""
    with open(storages["artifacts"].path(version.artifact_name), "wb") as handle:
        handle.write(content)
    ModelVersion.objects.filter(pk=version.pk).update(artifact_sha256=sha256_hex(content))


def _lease_held(asset, owner: str) -> TrainingLease:
    """The asset's lease, held by `owner` far into the future."""
    return TrainingLease.objects.create(asset=asset, owner=owner, expires_at="2999-01-01T00:00:00Z")


def _trained_through(version: ModelVersion) -> datetime:
    return datetime.fromisoformat(version.preprocessing["training"]["trained_through"])


def _first_validation_input(asset: Asset, version: ModelVersion) -> datetime:
    """The first input hour of the version's validation windows, from the candles it had."""
    frame = candles_frame(asset=asset)
    frame = frame[frame["open_time"] <= version.data_last].reset_index(drop=True)
    window, horizon = version.window, version.horizon
    bases = window_bases(hour_numbers(frame["open_time"]), window, horizon)
    split = chronological_split(bases, window, horizon, 0.1, 0.2)
    return frame["open_time"].iloc[split.validation[0] - window + 1].to_pydatetime()


@pytest.mark.parametrize(
    ("candidate_skill", "promoted"), [([None, 0.5, 0.5, 0.5, 0.5, 0.5], False), ([0.0] * 6, True)]
)
def test_the_gate_never_promotes_a_candidate_on_a_null_skill(tiny_asset, settings, candidate_skill, promoted):
    """A null step (the candidate erred where no change was exact) is the worst, however good
    the other steps are: the active, with a number at every step, stays."""
    from forecasting.services.training import _version_gate

    active = services.model_version_train(asset=tiny_asset)
    settings.PROMOTION_TOLERANCE = 1.0  # generous: only a null step can keep the candidate out
    candidate = _candidate_of(active, candidate_skill)

    # The active's own gate windows: none reads an hour it was fitted on, so its stored skill counts.
    _version_gate(candidate, frame=candles_frame(asset=tiny_asset), gate_range=_iso_range(active))

    candidate.refresh_from_db()
    assert (candidate.status == Status.ACTIVE) is promoted, candidate.reason
    if not promoted:
        assert candidate.reason.startswith(
            "kept out of service: mean validation skill null (erred where no change was exact) vs active v1 "
        )
        assert "inf" not in candidate.reason
