"""The asset's last retrain outcome (the admin's "last retrain task") is written by `manage.py train`
as by the retrain task, in the same words; the task's own wording is held in test_tasks."""

import datetime as dt
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from forecasting import tasks
from forecasting.models import ModelVersion
from markets.models import Asset

from .conftest import START, TINY, candles_create

HOUR = dt.timedelta(hours=1)


def _train(*args: str) -> None:
    call_command("train", *args, stdout=StringIO(), stderr=StringIO())


def test_train_warm_replaces_the_outcome_a_retrain_task_left(tiny_asset):
    tasks.retrain_asset("ETHUSDT", "full")
    candles_create(tiny_asset, 2, start=START + 600 * HOUR, seed=9)  # a new hour arrived

    _train("ETHUSDT", "--warm")

    tiny_asset.refresh_from_db()
    version = ModelVersion.objects.get(asset=tiny_asset, version=2)
    assert tiny_asset.last_train_outcome == (
        f"warm retrain by manage.py train: v2 {version.status}: {version.reason}"
    )
    assert not tiny_asset.last_train_outcome.startswith("full retrain: v1")


def test_train_records_a_failed_version(tiny_asset):
    Asset.objects.filter(pk=tiny_asset.pk).update(hyperparameters={**TINY, "window": 590})

    with pytest.raises(CommandError):
        _train("ETHUSDT")

    tiny_asset.refresh_from_db()
    version = ModelVersion.objects.get(asset=tiny_asset)
    assert tiny_asset.last_train_outcome == f"full retrain by manage.py train: v1 failed: {version.reason}"
    assert tiny_asset.last_train_outcome_at is not None


def test_train_by_hand_still_tries_an_asset_without_candles_and_records_the_failure(db):
    empty = Asset.objects.create(symbol="SOLUSDT", base="SOL", quote="USDT", hyperparameters=TINY)
    tasks.retrain_asset("SOLUSDT", "warm")  # the scheduled run skips it

    with pytest.raises(CommandError, match="SOLUSDT v1 failed: SOLUSDT has no candles: nothing to train on"):
        _train("SOLUSDT")

    version = ModelVersion.objects.get(asset=empty)
    assert (version.failure_kind, version.data_candles) == ("too_little_data", 0)
    empty.refresh_from_db()
    assert empty.last_train_outcome == f"full retrain by manage.py train: v1 failed: {version.reason}"


def test_train_records_why_it_was_skipped(tiny_asset):
    _train("ETHUSDT")

    with pytest.raises(CommandError):
        _train("ETHUSDT", "--warm")

    tiny_asset.refresh_from_db()
    assert tiny_asset.last_train_outcome.startswith(
        "warm retrain by manage.py train skipped: ETHUSDT: no candle newer"
    )


def test_train_records_an_error_it_raised(tiny_asset):
    Asset.objects.filter(pk=tiny_asset.pk).update(hyperparameters={**TINY, "max_epoch": 3})  # past clean()

    with pytest.raises(CommandError):
        _train("ETHUSDT")

    tiny_asset.refresh_from_db()
    assert tiny_asset.last_train_outcome.startswith("full retrain by manage.py train raised ValueError: ")
    assert "max_epoch" in tiny_asset.last_train_outcome


def test_a_refused_command_line_records_nothing(tiny_asset):
    with pytest.raises(CommandError):
        _train("ETHUSDT", "--epochs", "0")

    tiny_asset.refresh_from_db()
    assert (tiny_asset.last_train_outcome, tiny_asset.last_train_outcome_at) == ("", None)
