"""Admin of model versions (read-only, "activate" for rollback) and forecasts (read-only)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.db import connection
from django.test.utils import CaptureQueriesContext

from forecasting.artifacts import artifact_write
from forecasting.models import ModelVersion
from markets.models import Asset
from tests.web import factories

pytestmark = pytest.mark.django_db
Status = ModelVersion.Status
CHANGELIST = "/admin/forecasting/modelversion/"


@pytest.fixture
def artifacts(settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "artifacts": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path)},
        },
    }


def _with_artifact(version: ModelVersion) -> ModelVersion:
    name, sha256 = artifact_write(
        name=f"{version.asset.symbol}/v{version.version}.onnx", content=b"onnx bytes"
    )
    version.artifact_name, version.artifact_sha256 = name, sha256
    version.save(update_fields=["artifact_name", "artifact_sha256"])
    return version


def _activate(client, *versions: ModelVersion):
    return client.post(
        CHANGELIST,
        {"action": "activate", "_selected_action": [version.pk for version in versions]},
        follow=True,
    )


def test_the_versions_list_filters_by_asset_and_status(admin_client, market):
    response = admin_client.get(CHANGELIST, {"status__exact": "failed"})
    html = response.content.decode()
    assert response.status_code == 200
    assert "failed" in html and "+12.0 %" not in html
    html = admin_client.get(CHANGELIST, {"asset__id__exact": market.asset.pk}).content.decode()
    assert "+12.0 %" in html  # v2's next-hour skill


def test_the_versions_list_says_worse_when_no_change_was_exact(admin_client, market):
    metrics = market.version.metrics
    metrics["rmse"][0], metrics["persistence_rmse"][0], metrics["skill_rmse"][0] = 3.0, 0.0, None
    market.version.save(update_fields=["metrics"])
    html = admin_client.get(CHANGELIST, {"asset__id__exact": market.asset.pk}).content.decode()
    assert "worse (no change was exact)" in html


def test_a_version_page_shows_its_metrics_next_to_persistence_read_only(admin_client, market):
    url = f"{CHANGELIST}{market.version.pk}/change/"
    html = admin_client.get(url).content.decode()
    assert "persistence RMSE" in html and "<td>24 h</td>" in html
    assert f"{market.version.metrics['persistence_rmse'][0]:,.2f}" in html
    assert 'name="status"' not in html  # no editable field
    admin_client.post(url, {"status": "retired"})
    market.version.refresh_from_db()
    assert market.version.status == Status.ACTIVE


def test_versions_and_forecasts_cannot_be_added_or_deleted_by_hand(admin_client, market):
    assert admin_client.get(f"{CHANGELIST}add/").status_code == 403
    assert admin_client.get(f"{CHANGELIST}{market.version.pk}/delete/").status_code == 403
    assert admin_client.get("/admin/forecasting/forecast/add/").status_code == 403
    assert admin_client.get(f"/admin/forecasting/forecast/{market.forecast.pk}/delete/").status_code == 403
    html = admin_client.get(f"/admin/forecasting/forecast/{market.forecast.pk}/change/").content.decode()
    assert market.asset.symbol in html and 'name="points"' not in html


def test_the_forecast_list_shows_how_many_hours_are_scored(admin_client, market):
    html = admin_client.get("/admin/forecasting/forecast/").content.decode()
    assert "24 / 24" in html and "0 / 24" in html


def test_versions_and_forecasts_are_named_by_symbol_and_version_number(admin_client, market):
    forecast = market.forecast
    base = f"{forecast.base_time:%Y-%m-%d %H:%M}"

    assert str(market.version) == "BTCUSDT v2 (active)"
    assert str(forecast) == f"BTCUSDT from {base} by v2"
    assert "BTCUSDT v2 (active)" in admin_client.get("/admin/forecasting/forecast/").content.decode()
    page = admin_client.get(f"/admin/forecasting/forecast/{forecast.pk}/change/").content.decode()
    assert f"BTCUSDT from {base} by v2" in page  # the title and breadcrumbs


def test_the_forecast_list_makes_no_query_per_forecast(admin_client, market):
    with CaptureQueriesContext(connection) as one_version:
        admin_client.get("/admin/forecasting/forecast/")

    eth = Asset.objects.create(symbol="ETHUSDT", base="ETH", quote="USDT")
    factories.market_create(asset=eth, candles=60, scored=20)
    with CaptureQueriesContext(connection) as two_assets:
        response = admin_client.get("/admin/forecasting/forecast/")

    assert "ETHUSDT v2 (active)" in response.content.decode()
    assert len(two_assets) == len(one_version)


def test_activate_rolls_back_to_a_validated_version(admin_client, market, artifacts):
    older = _with_artifact(factories.version_create(asset=market.asset, version=3, status=Status.VALIDATED))
    ModelVersion.objects.filter(pk=older.pk).update(
        reason="kept out of service: mean validation skill +0.0001"
    )
    response = _activate(admin_client, older)
    assert "BTCUSDT v3 is now active, and pinned" in response.content.decode()
    older.refresh_from_db()
    market.version.refresh_from_db()
    assert older.status == Status.ACTIVE and older.pinned
    # Members read the reason: no staff username in it, and the earlier reason kept.
    assert (
        older.reason
        == "rolled back by an operator; earlier: kept out of service: mean validation skill +0.0001"
    )
    assert "admin" not in older.reason
    # Who did it is in the admin's history.
    entry = LogEntry.objects.get(object_id=str(older.pk))
    assert (
        entry.user.get_username() == "admin"
        and entry.get_change_message() == "Activated (rollback) and pinned."
    )
    assert market.version.status == Status.VALIDATED

    unpinned = admin_client.post(
        CHANGELIST, {"action": "unpin", "_selected_action": [older.pk]}, follow=True
    ).content.decode()
    assert "BTCUSDT v3: the next retrain may replace it again." in unpinned
    older.refresh_from_db()
    assert older.status == Status.ACTIVE and not older.pinned


def test_activating_the_active_version_keeps_why_it_was_promoted(admin_client, market, artifacts):
    reason = market.version.reason
    response = _activate(admin_client, market.version)
    assert f"BTCUSDT v{market.version.version} is already active." in response.content.decode()
    market.version.refresh_from_db()
    assert market.version.status == Status.ACTIVE and market.version.reason == reason


def test_activate_refuses_a_failed_version_and_changes_nothing(admin_client, market, artifacts):
    failed = ModelVersion.objects.get(asset=market.asset, version=1)
    response = _activate(admin_client, failed)
    assert "BTCUSDT v1 (failed): not activated" in response.content.decode()
    failed.refresh_from_db()
    market.version.refresh_from_db()
    assert failed.status == Status.FAILED and market.version.status == Status.ACTIVE


def test_activate_refuses_a_version_whose_artifact_is_missing(admin_client, market, artifacts):
    orphan = factories.version_create(
        asset=market.asset,
        version=3,
        status=Status.VALIDATED,
        artifact_name="gone.onnx",
        artifact_sha256="0" * 64,
    )
    response = _activate(admin_client, orphan)
    assert "not activated" in response.content.decode() and "missing" in response.content.decode()
    orphan.refresh_from_db()
    assert orphan.status == Status.VALIDATED


def test_activate_refuses_two_versions_of_one_asset(admin_client, market, artifacts):
    one = _with_artifact(factories.version_create(asset=market.asset, version=3, status=Status.VALIDATED))
    two = _with_artifact(factories.version_create(asset=market.asset, version=4, status=Status.VALIDATED))
    response = _activate(admin_client, one, two)
    assert "at most one version per asset" in response.content.decode()
    assert set(ModelVersion.objects.filter(pk__in=[one.pk, two.pk]).values_list("status", flat=True)) == {
        Status.VALIDATED
    }


def test_staff_without_the_change_permission_cannot_activate(client, market, artifacts, django_user_model):
    from django.contrib.auth.models import Permission

    viewer = django_user_model.objects.create_user("viewer", password="x", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_modelversion"))
    client.force_login(viewer)
    html = client.get(CHANGELIST).content.decode()
    assert 'value="activate"' not in html
    older = _with_artifact(factories.version_create(asset=market.asset, version=3, status=Status.VALIDATED))
    _activate(client, older)
    older.refresh_from_db()
    assert older.status == Status.VALIDATED


def test_a_version_page_writes_skill_and_coverage_as_the_list_does(admin_client, market):
    html = admin_client.get(f"{CHANGELIST}{market.version.pk}/change/").content.decode()
    listing = admin_client.get(CHANGELIST).content.decode()
    assert "+12.0 %" in listing and "<td>+12.0 %</td>" in html  # next-hour skill, one style
    assert "<td>81.0 %</td>" in html  # 80 % coverage
    assert "<td>0.120</td>" not in html and "<td>0.810</td>" not in html


def test_a_version_page_shows_the_loss_history_a_line_an_epoch(admin_client, market):
    html = admin_client.get(f"{CHANGELIST}{market.version.pk}/change/").content.decode()
    assert "epoch 1: train 0.5 / val 0.61<br>epoch 2: train 0.25 / val 0.31<br>" in html
    assert "epoch 8: train 0.0625 / val 0.085" in html
    assert '"train_loss"' not in html


def test_a_forecast_page_shows_the_last_close_without_padding(admin_client, market):
    forecast = market.asset.forecasts.first()
    forecast.last_close = "37814.4700000000"
    forecast.save(update_fields=["last_close"])
    html = admin_client.get(f"/admin/forecasting/forecast/{forecast.pk}/change/").content.decode()
    assert "37814.47<" in html and "37814.4700" not in html
    forecast.refresh_from_db()
    assert str(forecast.last_close) == "37814.4700000000"  # stored as it was


def test_the_versions_list_says_a_training_no_worker_holds_the_lease_for_stopped(admin_client, market):
    stopped = factories.version_create(asset=market.asset, version=3, status=Status.TRAINING)
    factories.lease_hold(asset=market.asset, renewed_ago=timedelta(hours=1))  # expired 20 min ago

    listed = admin_client.get(CHANGELIST).content.decode()
    page = admin_client.get(f"{CHANGELIST}{stopped.pk}/change/").content.decode()

    assert "Training — <strong>stopped</strong> (no worker holds the lease)" in listed
    assert "Training — <strong>stopped</strong>" in page

    factories.lease_hold(asset=market.asset)  # a running training renews it
    listed = admin_client.get(CHANGELIST).content.decode()
    assert "stopped" not in listed and ">Training<" in listed


def test_the_active_version_says_when_its_artifact_cannot_be_loaded(admin_client, market):
    problem = "the active model cannot be loaded: artifact 'BTCUSDT/v2.onnx' is missing from storage"
    Asset.objects.filter(pk=market.asset.pk).update(forecast_problem=problem)

    page = admin_client.get(f"{CHANGELIST}{market.version.pk}/change/").content.decode()

    assert "Active — <strong><span title=" in page and "cannot be loaded</span>" in page
    assert "is missing from storage" in page
