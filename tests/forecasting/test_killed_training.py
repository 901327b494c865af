"""A training process killed with SIGKILL mid-run leaves the active model serving."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from forecasting import services
from forecasting.models import ModelVersion, TrainingLease
from markets.models import Asset
from tests.processes import process_start, process_stop

from .conftest import TINY, candles_create

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_killed_training_leaves_the_active_version_and_the_next_run_works(require_postgres, process_env):
    asset = Asset.objects.create(symbol="ETHUSDT", base="ETH", quote="USDT", hyperparameters=TINY)
    candles_create(asset, 480)  # the tiny hyperparameters need 439 gap-free hours
    active = services.model_version_train(asset=asset)
    assert active.status == "active"
    # A slow run: many epochs with no early stop in sight.
    asset.hyperparameters = {**TINY, "max_epochs": 500, "patience": 500, "epoch_windows": 0}
    asset.save()

    process = process_start(
        [sys.executable, "manage.py", "train", "ETHUSDT"],
        cwd=ROOT,
        env=process_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while not ModelVersion.objects.filter(asset=asset, status="training").exists():
            assert process.poll() is None, process.stdout.read().decode()
            assert time.monotonic() < deadline, "the training never started"
            time.sleep(0.2)
        time.sleep(2)  # well inside the epochs
    finally:  # killed even if the test fails first: a run left training would go on using its database
        process_stop(process, sig=signal.SIGKILL, timeout=10)

    active.refresh_from_db()
    assert active.status == "active"
    assert TrainingLease.objects.get(asset=asset).owner != ""  # still held by the dead process
    killed = ModelVersion.objects.get(asset=asset, status="training")
    assert not killed.artifact_name  # no row points at a half-written artifact

    asset.hyperparameters = TINY
    asset.save()
    following = services.model_version_train(asset=asset)

    assert following.status in ("active", "validated"), following.reason
    killed.refresh_from_db()
    assert killed.status == "failed" and killed.reason.startswith("interrupted")
    assert TrainingLease.objects.get(asset=asset).owner == ""
