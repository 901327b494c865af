"""POST assets/{symbol}/retrain/: staff only, enqueues forecasting.tasks.retrain_asset on the real broker."""

import uuid

import pytest

from tests.broker import queued_message_take

URL = "/api/v1/assets/btcusdt/retrain/"


def _take_message(task_id: str):
    return queued_message_take(lambda message: message.headers.get("id") == task_id)


@pytest.mark.django_db
def test_staff_queue_a_full_retrain_and_get_its_task_id(staff_api, btc):
    response = staff_api.post(URL)

    assert response.status_code == 202
    task_id = response.json()["task_id"]
    uuid.UUID(task_id)
    message = _take_message(task_id)
    assert message is not None, "the task never reached the broker"
    assert message.headers["task"] == "forecasting.tasks.retrain_asset"
    args, kwargs, _ = message.decode()
    assert args == ["BTCUSDT", "full"] and kwargs == {}


@pytest.mark.django_db
def test_retrain_is_not_counted_against_the_quota(staff, staff_api, btc):
    task_id = staff_api.post(URL).json()["task_id"]
    _take_message(task_id)
    assert staff_api.get("/api/v1/usage/").json()["used"] == 0


@pytest.mark.django_db
def test_members_are_refused_with_403(member_api, btc):
    response = member_api.post(URL)
    assert response.status_code == 403
    assert response.json() == {"detail": "Only staff can retrain models."}


@pytest.mark.django_db
def test_retrain_needs_a_token(api, btc):
    assert api.post(URL).status_code == 401


@pytest.mark.django_db
def test_retrain_of_an_unknown_asset_is_404(staff_api, btc):
    assert staff_api.post("/api/v1/assets/NOPEUSDT/retrain/").status_code == 404


@pytest.mark.django_db
def test_only_post_retrains(staff_api, btc):
    assert staff_api.get(URL).status_code == 405


@pytest.mark.django_db
def test_an_unreachable_broker_is_a_503_not_a_500(staff_api, btc, broker_down):
    response = staff_api.post(URL)
    assert response.status_code == 503
    assert response.json()["detail"].startswith("The task queue is unreachable")
