import pytest
from django.core.files.storage import storages

from forecasting import services
from forecasting.artifacts import ArtifactIntegrityError
from forecasting.models import Forecast, ModelVersion
from forecasting.selectors import asset_find, forecast_latest

from .conftest import HOUR, candles_create

Status = ModelVersion.Status


@pytest.fixture
def two_versions(tiny_asset, settings):
    settings.PROMOTION_TOLERANCE = 10.0  # always promote: v2 active, v1 validated
    first = services.model_version_train(asset=tiny_asset)
    second = services.model_version_train(asset=tiny_asset)
    first.refresh_from_db()
    assert (first.status, second.status) == (Status.VALIDATED, Status.ACTIVE)
    return first, second


def test_rollback_reactivates_an_older_version_in_one_step(two_versions, django_capture_on_commit_callbacks):
    first, second = two_versions
    with django_capture_on_commit_callbacks() as callbacks:
        services.model_version_activate(version=first)
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == Status.ACTIVE and first.activated_at is not None
    assert second.status == Status.VALIDATED
    assert callbacks == []  # nothing left for a worker: the forecast is stored already


def test_a_rollback_serves_the_versions_forecast_from_the_newest_candle_at_once(two_versions):
    first, second = two_versions
    asset = first.asset
    last = asset.candles.order_by("-open_time").first().open_time
    candles_create(asset, 3, start=last + HOUR, seed=3)  # v2 serves these hours; v1 forecast none of them
    newest = last + 3 * HOUR
    assert services.forecast_refresh(asset=asset).model_version == second

    services.model_version_activate(version=first)

    stored = Forecast.objects.get(model_version=first, base_time=newest)
    served = forecast_latest(asset=asset_find(symbol=asset.symbol))
    assert (served.model_version, served.last_candle_time) == (first.version, stored.base_time)
    assert "a newer one" not in (served.stale_reason or "")


def test_an_activation_stands_when_no_forecast_can_be_made(two_versions, caplog):
    first, second = two_versions
    asset = first.asset
    last = asset.candles.order_by("-open_time").first().open_time
    candles_create(asset, 20, start=last + HOUR, seed=4, skip=set(range(12)))  # 12 hours missing

    services.model_version_activate(version=first)

    first.refresh_from_db()
    assert first.status == Status.ACTIVE
    assert not Forecast.objects.filter(model_version=first, base_time=last + 20 * HOUR).exists()
    assert "v1 is active, but no forecast yet" in caplog.text


def test_it_refuses_to_activate_a_failed_version(tiny_asset):
    failed = ModelVersion.objects.create(
        asset=tiny_asset, version=1, horizon=6, window=24, status=Status.FAILED
    )
    with pytest.raises(ValueError, match="only a validated version can be activated"):
        services.model_version_activate(version=failed)


def test_it_refuses_to_activate_a_version_whose_artifact_was_altered(two_versions):
    first, second = two_versions
    storage = storages["artifacts"]
    with open(storage.path(first.artifact_name), "ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(ArtifactIntegrityError, match="sha256"):
        services.model_version_activate(version=first)
    second.refresh_from_db()
    assert second.status == Status.ACTIVE


def test_retention_keeps_the_active_version_and_the_newest_others(
    tiny_asset, settings, django_capture_on_commit_callbacks
):
    settings.PROMOTION_TOLERANCE = 10.0
    versions = [services.model_version_train(asset=tiny_asset) for _ in range(4)]
    services.model_version_activate(version=ModelVersion.objects.get(pk=versions[0].pk))  # oldest is active

    with django_capture_on_commit_callbacks(execute=True):
        retired = services.model_versions_prune(asset=tiny_asset, keep=1)

    statuses = dict(ModelVersion.objects.values_list("version", "status"))
    assert retired == 2
    assert statuses == {1: Status.ACTIVE, 2: Status.RETIRED, 3: Status.RETIRED, 4: Status.VALIDATED}
    storage = storages["artifacts"]
    for version in versions[1:3]:
        assert not storage.exists(version.artifact_name)
        assert not storage.exists(version.weights_name)
    assert storage.exists(versions[0].artifact_name) and storage.exists(versions[3].artifact_name)


def test_failed_trainings_never_push_rollback_targets_out_of_retention(two_versions):
    first, second = two_versions
    asset = first.asset
    for number in range(3, 7):  # four hourly failures after v2
        ModelVersion.objects.create(asset=asset, version=number, horizon=6, window=24, status=Status.FAILED)

    retired = services.model_versions_prune(asset=asset, keep=2)

    statuses = dict(ModelVersion.objects.values_list("version", "status"))
    assert retired == 2
    assert statuses == {
        1: Status.VALIDATED,
        2: Status.ACTIVE,
        3: Status.RETIRED,
        4: Status.RETIRED,
        5: Status.FAILED,
        6: Status.FAILED,
    }


def test_a_version_retired_while_it_was_being_activated_is_refused(two_versions):
    first, second = two_versions
    stale = ModelVersion.objects.get(pk=first.pk)  # read by the admin before retention ran
    services.model_versions_prune(asset=first.asset, keep=0)

    with pytest.raises(ValueError, match="v1 became retired meanwhile"):
        services.model_version_activate(version=stale)

    second.refresh_from_db()
    assert second.status == Status.ACTIVE
