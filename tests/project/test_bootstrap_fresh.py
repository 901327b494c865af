"""`make run`'s bootstrap (manage.py bootstrap, run by bin/run.py) on a fresh database: imports
create inactive assets now, so the BTCUSDT it makes must be active, with a trained model."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.db.models.signals import pre_save

from forecasting.models import ModelVersion
from markets.models import Asset
from markets.selectors import asset_list
from tests.fakes import FakeBinance
from tests.forecasting.conftest import TINY

pytestmark = pytest.mark.django_db


@pytest.fixture
def fresh(settings, tmp_path):
    """No asset at all; the BTCUSDT bootstrap creates gets small hyperparameters (a fresh install
    trains the default recipe: minutes, not a test's seconds)."""
    settings.STORAGES = {
        **settings.STORAGES,
        "artifacts": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "artifacts")},
        },
    }

    def small(sender, instance: Asset, **kwargs) -> None:
        if instance.pk is None:
            instance.hyperparameters = {**TINY, "max_epochs": 1}

    pre_save.connect(small, sender=Asset)
    try:
        yield
    finally:
        pre_save.disconnect(small, sender=Asset)


def bootstrap() -> str:
    out = StringIO()
    call_command("bootstrap", stdout=out, stderr=StringIO())
    return out.getvalue()


def test_a_fresh_replay_install_ends_with_an_active_btcusdt_and_a_model(fresh, settings):
    settings.MARKET_DATA_SOURCE, settings.REPLAY_HOURS_PER_SYNC = "replay", 1

    text = bootstrap()

    btc = Asset.objects.get(symbol="BTCUSDT")
    assert btc.is_active and list(asset_list(active_only=True)) == [btc]
    assert "inactive" not in text
    assert ModelVersion.objects.get(asset=btc).status == ModelVersion.Status.ACTIVE


def test_a_fresh_live_install_imports_the_year_activated_and_trains(fresh, settings):
    fake = FakeBinance().start()
    settings.MARKET_DATA_SOURCE, settings.BINANCE_API_URL = "binance", fake.url
    settings.BINANCE_RETRY_BASE_SECONDS, settings.BINANCE_TIMEOUT_SECONDS = 0.01, 2
    try:
        text = bootstrap()
    finally:
        fake.stop()

    btc = Asset.objects.get(symbol="BTCUSDT")
    assert btc.is_active and "8749 inserted" in text
    assert "BTCUSDT is active" in text and "inactive" not in text
    assert ModelVersion.objects.get(asset=btc).status == ModelVersion.Status.ACTIVE
