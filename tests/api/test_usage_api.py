import datetime as dt

import pytest

from accounts.services import api_quota_set

URL = "/api/v1/usage/"


@pytest.mark.django_db
def test_usage_reports_used_limit_and_period_and_is_not_counted(member, member_api, market, settings):
    settings.API_MONTHLY_QUOTA = 100
    for _ in range(3):
        assert member_api.get("/api/v1/assets/").status_code == 200

    first = member_api.get(URL).json()
    second = member_api.get(URL).json()

    assert first == second
    assert first["used"] == 3 and first["limit"] == 100
    start = dt.datetime.fromisoformat(first["period_start"])
    end = dt.datetime.fromisoformat(first["period_end"])
    assert start.day == 1 and start.hour == 0 and start.utcoffset() == dt.timedelta(0)
    assert end.day == 1 and 28 <= (end - start).days <= 31
    assert start <= dt.datetime.now(dt.UTC) < end


@pytest.mark.django_db
def test_usage_shows_the_per_user_override(member, member_api):
    api_quota_set(user=member, monthly_limit=5)
    assert member_api.get(URL).json()["limit"] == 5


@pytest.mark.django_db
def test_usage_needs_a_token(api):
    assert api.get(URL).status_code == 401
