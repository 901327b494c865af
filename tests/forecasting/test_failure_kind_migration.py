"""Migration 0004 gives the failed versions recorded before ModelVersion.failure_kind their kind,
so the scheduled retrain keeps skipping an asset whose last run failed for too little data."""

import datetime as dt

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = ("forecasting", "0003_modelversion_pinned")
AFTER = ("forecasting", "0004_modelversion_failure_kind")
START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def _migrate(forecasting_target=None):
    """Migrate forecasting to `forecasting_target` (its latest if None), every other app to its
    latest, and return the models as they are then."""
    executor = MigrationExecutor(connection)
    targets = [
        leaf
        for leaf in executor.loader.graph.leaf_nodes()
        if leaf[0] != "forecasting" or not forecasting_target
    ]
    targets += [forecasting_target] if forecasting_target else []
    executor.migrate(targets)
    executor.loader.build_graph()
    return executor.loader.project_state(targets).apps


@pytest.fixture
def old_schema(transactional_db):
    yield _migrate(BEFORE)
    _migrate()


def test_it_reads_each_failures_kind_from_what_the_failure_left(old_schema):
    Asset = old_schema.get_model("markets", "Asset")
    ModelVersion = old_schema.get_model("forecasting", "ModelVersion")
    asset = Asset.objects.create(symbol="ETHUSDT", base="ETH", quote="USDT")
    trained = START + dt.timedelta(days=30)
    rows = {
        # (status, reason, data_last, trained_at): the kind expected
        ("failed", "too little gap-free data: 3 windows", START, None): "too_little_data",
        ("failed", "too little gap-free data: 0 windows", None, None): "too_little_data",  # no candle
        ("failed", "interrupted: the training process stopped", None, None): "interrupted",
        ("failed", "interrupted: the database became unavailable", START, trained): "interrupted",
        ("failed", "training raised RuntimeError: boom", None, None): "training",
        ("failed", "storing the artifacts failed: OSError", START, trained): "storage",
        ("failed", "non-finite loss at epoch 3", START, trained): "invalid",
        ("active", "first valid version of this asset", START, trained): "",
        ("validated", "kept out of service: ...", START, trained): "",
    }
    for number, (status, reason, data_last, trained_at) in enumerate(rows, start=1):
        ModelVersion.objects.create(
            asset=asset,
            version=number,
            status=status,
            reason=reason,
            data_last=data_last,
            trained_at=trained_at,
            horizon=6,
            window=24,
        )

    apps = _migrate(AFTER)

    migrated = apps.get_model("forecasting", "ModelVersion").objects.order_by("version")
    assert [v.failure_kind for v in migrated] == list(rows.values())
    assert {v.data_fingerprint for v in migrated} == {""}
