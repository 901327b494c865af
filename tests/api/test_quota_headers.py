"""Every counted answer says the quota left: X-Quota-Limit, X-Quota-Remaining, X-Quota-Reset."""

import pytest
import yaml
from django.db import connection

from accounts.models import ApiUsage
from accounts.selectors import month_period
from accounts.services import api_quota_set
from tests.api.test_quota_api import COUNTED

FORECAST = "/api/v1/assets/BTCUSDT/forecast/"
HEADERS = ("X-Quota-Limit", "X-Quota-Remaining", "X-Quota-Reset")


def _next_month() -> str:
    return month_period()[1].strftime("%Y-%m-%dT%H:%M:%SZ")


def _quota(response) -> tuple[int, int, str]:
    return int(response["X-Quota-Limit"]), int(response["X-Quota-Remaining"]), response["X-Quota-Reset"]


@pytest.mark.django_db
@pytest.mark.parametrize("month_started", [False, True], ids=["first-call-of-the-month", "row-there"])
def test_the_headers_count_down_to_the_429_and_agree_with_usage(member, member_api, market, month_started):
    # Without the month's row the first call takes the service's slow path; then the one statement.
    api_quota_set(user=member, monthly_limit=3)
    if month_started:
        ApiUsage.objects.create(user=member, period_start=month_period()[0].date())
    reset = _next_month()

    responses = [member_api.get(COUNTED[i]) for i in range(5)]

    assert [r.status_code for r in responses] == [200, 200, 200, 429, 429]
    assert [_quota(r) for r in responses] == [(3, 2, reset), (3, 1, reset), (3, 0, reset)] + [
        (3, 0, reset)
    ] * 2
    assert responses[3].json()["reset_at"] == reset
    usage = member_api.get("/api/v1/usage/")
    assert usage.json() == {
        "used": 3,
        "limit": 3,
        "period_start": usage.json()["period_start"],
        "period_end": reset,
    }
    assert not any(name in usage for name in HEADERS)  # usage/ is not counted; its body says it all


@pytest.mark.django_db
def test_every_counted_endpoint_and_method_carries_them(member, member_api, market, settings):
    settings.API_MONTHLY_QUOTA = 100
    remaining = 100
    for url in COUNTED:
        for method in ("get", "head"):
            response = getattr(member_api, method)(url)
            remaining -= 1
            assert response.status_code == 200, (method, url)
            assert _quota(response) == (100, remaining, _next_month()), (method, url)
    assert member_api.get("/api/v1/usage/").json()["used"] == 100 - remaining


@pytest.mark.django_db
def test_counted_errors_carry_them_too(member_api, market, btc, settings):
    settings.API_MONTHLY_QUOTA = 10
    not_found = member_api.get("/api/v1/assets/ETHUSDT/forecast/")
    bad = member_api.get("/api/v1/assets/BTCUSDT/candles/", {"limit": 0})
    market["asset"].forecasts.all().delete()
    unavailable = member_api.get(FORECAST)

    assert [r.status_code for r in (not_found, bad, unavailable)] == [404, 400, 503]
    assert [int(r["X-Quota-Remaining"]) for r in (not_found, bad, unavailable)] == [9, 8, 7]


@pytest.mark.django_db
def test_uncounted_answers_have_none(api, member_api, market):
    uncounted = [
        api.get(FORECAST),  # 401: no token
        member_api.options(FORECAST),
        member_api.post(FORECAST),  # 405
        member_api.get("/api/v1/usage/"),
        member_api.post("/api/v1/assets/BTCUSDT/retrain/"),  # 403: staff only, never counted
        api.post("/api/v1/auth/token/", {"username": "alice", "password": "wrong"}),  # 400
    ]
    for response in uncounted:
        assert not any(name in response for name in HEADERS), response.status_code


@pytest.mark.django_db
def test_a_limit_lowered_below_the_usage_leaves_none_remaining(member, member_api, market):
    ApiUsage.objects.create(user=member, period_start=month_period()[0].date(), used=5)
    api_quota_set(user=member, monthly_limit=4)

    response = member_api.get(FORECAST)

    assert response.status_code == 429 and _quota(response)[:2] == (4, 0)


@pytest.mark.django_db
def test_the_headers_cost_no_query(member, member_api, market, settings, max_statements):
    settings.API_CACHE_SECONDS, settings.API_MONTHLY_QUOTA = 60, 1000
    ApiUsage.objects.create(user=member, period_start=month_period()[0].date())
    member_api.get(FORECAST)  # the body is cached, the statements prepared

    # The token lookup with its quota unit, which returns the new count: one statement on PostgreSQL.
    with max_statements(1 if connection.vendor == "postgresql" else 2):
        response = member_api.get(FORECAST)

    assert response.status_code == 200
    assert int(response["X-Quota-Remaining"]) == 1000 - 2


@pytest.mark.django_db
def test_the_schema_documents_them_on_the_counted_answers(api):
    schema = yaml.safe_load(api.get("/api/v1/schema/").content)
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            for code, response in operation["responses"].items():
                documented = set(response.get("headers", {}))
                counted = "Counts one call" in operation.get("description", "") and code != "401"
                assert (set(HEADERS) <= documented) == counted, (method, path, code)
    reset = schema["paths"]["/api/v1/assets/{symbol}/forecast/"]["get"]["responses"]["200"]["headers"]
    assert reset["X-Quota-Reset"]["schema"] == {"type": "string", "format": "date-time"}
