"""The monthly quota on the counted endpoints: exactly `limit` calls, then 429 until the month ends."""

import datetime as dt
import http.client
import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest
from django.utils import timezone

from accounts.models import ApiUsage
from accounts.selectors import api_usage_get, month_period
from accounts.services import api_quota_set, api_token_create

COUNTED = [
    "/api/v1/assets/",
    "/api/v1/assets/BTCUSDT/",
    "/api/v1/assets/BTCUSDT/candles/",
    "/api/v1/assets/BTCUSDT/forecast/",
    "/api/v1/assets/BTCUSDT/models/",
    "/api/v1/assets/BTCUSDT/track-record/",
]


@pytest.mark.django_db
def test_each_counted_endpoint_takes_one_unit(member, member_api, market):
    for number, url in enumerate(COUNTED, start=1):
        assert member_api.get(url).status_code == 200, url
        assert api_usage_get(user=member).used == number, url
    member_api.get("/api/v1/usage/")
    assert api_usage_get(user=member).used == len(COUNTED)


@pytest.mark.django_db
def test_only_reads_are_counted_not_wrong_methods_or_options(member, member_api, market):
    for url in COUNTED:
        assert member_api.head(url).status_code == 200, url  # a HEAD reads like a GET
    assert api_usage_get(user=member).used == len(COUNTED)
    for url in COUNTED:
        for method in ("post", "put", "patch", "delete"):
            assert getattr(member_api, method)(url).status_code == 405, (method, url)
        assert member_api.options(url).status_code == 200, url
    assert api_usage_get(user=member).used == len(COUNTED)


@pytest.mark.django_db
def test_over_the_limit_it_answers_429_with_retry_after_and_the_reset_time(member, member_api, market):
    api_quota_set(user=member, monthly_limit=3)
    statuses = [member_api.get(COUNTED[i % len(COUNTED)]).status_code for i in range(5)]
    assert statuses == [200, 200, 200, 429, 429]

    response = member_api.get("/api/v1/assets/BTCUSDT/forecast/")

    assert response.status_code == 429
    now = timezone.now()
    next_month = dt.datetime(now.year + (now.month == 12), now.month % 12 + 1, 1, tzinfo=dt.UTC)
    wait = int(response["Retry-After"])
    assert abs(wait - (next_month - now).total_seconds()) < 5
    body = response.json()
    assert body["limit"] == 3
    assert body["reset_at"] == next_month.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert body["detail"] == f"Monthly API quota of 3 calls is used up; it resets at {body['reset_at']}."
    # Refused calls are not counted, and usage still answers.
    assert member_api.get("/api/v1/usage/").json()["used"] == 3


@pytest.mark.django_db
def test_the_quota_is_per_user(member, staff, member_api, staff_api, market):
    api_quota_set(user=member, monthly_limit=1)
    assert member_api.get(COUNTED[0]).status_code == 200
    assert member_api.get(COUNTED[0]).status_code == 429
    assert staff_api.get(COUNTED[0]).status_code == 200


@pytest.mark.django_db
def test_last_months_usage_does_not_count(member, member_api, market):
    api_quota_set(user=member, monthly_limit=1)
    ApiUsage.objects.create(user=member, period_start=dt.date(2020, 1, 1), used=1)
    assert member_api.get(COUNTED[0]).status_code == 200


@pytest.mark.django_db
def test_unauthenticated_calls_take_nothing(api, market):
    assert api.get(COUNTED[0]).status_code == 401
    assert not ApiUsage.objects.exists()


def _call(base: str, key: str, path: str, start: threading.Barrier | None) -> int:
    if start is not None:
        start.wait(timeout=30)
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        # X-Forwarded-Proto: the live server may have been started before the http override.
        connection.request(
            "GET", path, headers={"Authorization": f"Token {key}", "X-Forwarded-Proto": "https"}
        )
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "month_started",
    [False, True],
    ids=["first-calls-of-the-month", "month-row-already-there"],
)
def test_exactly_limit_calls_succeed_under_concurrency(
    require_postgres, live_server, member, btc, month_started
):
    # Without this month's row the first calls race to create it (the service's
    # slow path); with it every call is the one-statement lookup-and-take.
    api_quota_set(user=member, monthly_limit=50)
    if month_started:
        ApiUsage.objects.create(user=member, period_start=month_period()[0].date())
    _, key = api_token_create(user=member, name="load")
    threads, calls = 64, 80
    start = threading.Barrier(threads)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = [
            pool.submit(_call, live_server.url, key, "/api/v1/assets/", start if i < threads else None)
            for i in range(calls)
        ]
        statuses = [future.result() for future in futures]

    assert statuses.count(200) == 50
    assert statuses.count(429) == 30
    assert api_usage_get(user=member).used == 50
    assert ApiUsage.objects.filter(user=member).count() == 1
