import datetime as dt

import pytest
from django.utils import timezone

from forecasting.models import TrainingLease
from forecasting.selectors import STOPPED_TRAINING_REASON
from tests.api.conftest import METRICS, version_create

URL = "/api/v1/assets/BTCUSDT/models/"


@pytest.mark.django_db
def test_it_lists_versions_newest_first_with_status_and_metrics(member_api, market):
    version_create(market["asset"], 3, status="failed", reason="parity check failed", trained_at=None)

    response = member_api.get(URL)

    assert response.status_code == 200
    body = response.json()
    assert body["symbol"] == "BTCUSDT" and body["active_version"] == 2
    assert [(v["version"], v["status"]) for v in body["versions"]] == [
        (3, "failed"),
        (2, "active"),
        (1, "retired"),
    ]
    failed, active, retired = body["versions"]
    # As the pages tell members: why it failed (an exception's text, say) is in the admin.
    assert failed["reason"] == "the operators see why in the admin" and failed["trained_at"] is None
    assert active["mode"] == "warm" and active["parent_version"] == 1
    assert retired["parent_version"] is None
    assert active["metrics"] == METRICS
    assert active["epochs"] == 1 and active["train_seconds"] == 3.5 and active["window"] == 24
    assert "loss_history" not in active and "preprocessing" not in active


@pytest.mark.django_db
def test_an_asset_without_models_has_an_empty_list(member_api, btc):
    body = member_api.get(URL).json()
    assert body == {"symbol": "BTCUSDT", "active_version": None, "versions": []}


@pytest.mark.django_db
def test_models_runs_a_bounded_number_of_queries(member_api, market, max_statements):
    for number in range(3, 13):
        version_create(market["asset"], number, status="retired", parent=market["active"])
    version_create(market["asset"], 13, status="training")  # one more query: the training lease
    version_create(market["asset"], 14, status="training")
    member_api.get(URL)
    with max_statements(5):
        assert len(member_api.get(URL).json()["versions"]) == 14


@pytest.mark.django_db
def test_models_of_an_unknown_asset_are_404_and_need_a_token(api, member_api, market):
    assert member_api.get("/api/v1/assets/NOPE/models/").status_code == 404
    assert api.get(URL).status_code == 401


@pytest.mark.django_db
def test_a_step_without_a_direction_forecast_is_null(member_api, market):
    # A model that serves no change at steps 1 and 2 calls no direction there.
    version_create(
        market["asset"],
        3,
        status="validated",
        metrics={**METRICS, "direction_accuracy": [None, None, 0.5, 0.6]},
    )

    newest = member_api.get(URL).json()["versions"][0]

    assert newest["version"] == 3
    assert newest["metrics"]["direction_accuracy"] == [None, None, 0.5, 0.6]


@pytest.mark.django_db
def test_a_training_whose_worker_died_says_so_while_a_running_one_does_not(member_api, market):
    asset = market["asset"]
    version_create(asset, 3, status="training", trained_at=None)
    lease = TrainingLease.objects.create(
        asset=asset, owner="worker-1:42:1234:abcd", expires_at=timezone.now() + dt.timedelta(minutes=30)
    )

    running = member_api.get(URL).json()["versions"][0]
    lease.expires_at = timezone.now() - dt.timedelta(seconds=1)  # no renewal: its worker is gone
    lease.save()
    stopped = member_api.get(URL).json()["versions"][0]

    assert (running["version"], running["status"], running["reason"]) == (3, "training", "")
    assert (stopped["version"], stopped["status"]) == (3, "training")
    assert stopped["reason"] == STOPPED_TRAINING_REASON
    assert "records it as failed" in stopped["reason"]


@pytest.mark.django_db
def test_an_older_version_left_training_is_stopped_even_while_the_lease_is_held(member_api, market):
    asset = market["asset"]
    version_create(asset, 3, status="training", trained_at=None)
    version_create(asset, 4, status="training", trained_at=None)
    TrainingLease.objects.create(
        asset=asset, owner="worker-1:42:1234:abcd", expires_at=timezone.now() + dt.timedelta(minutes=30)
    )

    newest, older = member_api.get(URL).json()["versions"][:2]

    assert (newest["version"], newest["reason"]) == (4, "")
    assert (older["version"], older["reason"]) == (3, STOPPED_TRAINING_REASON)
