import pytest
from django.core.files.storage import storages

from forecasting import services
from forecasting.artifacts import ArtifactIntegrityError
from forecasting.models import ModelVersion

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
    assert len(callbacks) == 1  # a forecast refresh is enqueued once committed


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
