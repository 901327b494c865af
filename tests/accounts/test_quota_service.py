import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import ApiUsage
from accounts.selectors import api_quota_limit, api_usage_get, month_period
from accounts.services import api_quota_consume, api_quota_set

UTC = dt.UTC


def test_month_period_spans_the_calendar_month_in_utc():
    start, end = month_period(dt.datetime(2024, 12, 31, 23, 59, tzinfo=UTC))
    assert (start, end) == (dt.datetime(2024, 12, 1, tzinfo=UTC), dt.datetime(2025, 1, 1, tzinfo=UTC))
    # 00:30 on 1 March in Paris is still February in UTC.
    paris = dt.timezone(dt.timedelta(hours=1))
    start, end = month_period(dt.datetime(2024, 3, 1, 0, 30, tzinfo=paris))
    assert (start, end) == (dt.datetime(2024, 2, 1, tzinfo=UTC), dt.datetime(2024, 3, 1, tzinfo=UTC))


@pytest.mark.django_db
def test_the_default_limit_comes_from_settings_and_the_override_wins(member, settings):
    settings.API_MONTHLY_QUOTA = 7
    assert api_quota_limit(user=member) == 7
    api_quota_set(user=member, monthly_limit=3)
    member.refresh_from_db()
    assert api_quota_limit(user=member) == 3
    api_quota_set(user=member, monthly_limit=None)
    member.refresh_from_db()
    assert api_quota_limit(user=member) == 7


@pytest.mark.django_db
def test_exactly_limit_calls_are_allowed_in_a_month(member, settings):
    settings.API_MONTHLY_QUOTA = 3
    decisions = [api_quota_consume(user=member) for _ in range(5)]

    assert [d.allowed for d in decisions] == [True, True, True, False, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0, 0]  # what X-Quota-Remaining says
    assert api_usage_get(user=member).used == 3


@pytest.mark.django_db
def test_a_new_month_starts_from_zero(member, settings):
    settings.API_MONTHLY_QUOTA = 1
    january = dt.datetime(2024, 1, 31, 23, 0, tzinfo=UTC)
    february = dt.datetime(2024, 2, 1, 0, 0, tzinfo=UTC)

    assert api_quota_consume(user=member, now=january).allowed
    assert not api_quota_consume(user=member, now=january).allowed
    assert api_quota_consume(user=member, now=february).allowed
    assert sorted(ApiUsage.objects.values_list("period_start", "used")) == [
        (dt.date(2024, 1, 1), 1),
        (dt.date(2024, 2, 1), 1),
    ]


@pytest.mark.django_db
def test_a_zero_limit_refuses_everything(member):
    api_quota_set(user=member, monthly_limit=0)
    member.refresh_from_db()
    assert not api_quota_consume(user=member).allowed
    assert api_usage_get(user=member).used == 0


@pytest.mark.django_db
def test_lowering_the_limit_below_usage_refuses_further_calls(member, settings):
    settings.API_MONTHLY_QUOTA = 10
    for _ in range(5):
        api_quota_consume(user=member)
    api_quota_set(user=member, monthly_limit=4)
    member.refresh_from_db()

    assert not api_quota_consume(user=member).allowed
    usage = api_usage_get(user=member)
    assert (usage.used, usage.limit, usage.remaining) == (5, 4, 0)


@pytest.mark.django_db
def test_a_call_with_a_row_already_there_costs_one_statement(member):
    api_quota_consume(user=member)
    with CaptureQueriesContext(connection) as context:
        assert api_quota_consume(user=member, now=timezone.now()).allowed
    # (Savepoints appear only because the test runs inside a transaction; on
    # PostgreSQL the UPDATE runs as the statement this connection prepared.)
    statements = [q["sql"] for q in context.captured_queries if "SAVEPOINT" not in q["sql"]]
    assert len(statements) == 1, statements
    assert statements[0].startswith(("UPDATE", "EXECUTE mur_hotpath_")), statements
    assert api_usage_get(user=member).used == 2


@pytest.mark.django_db
def test_it_rejects_a_negative_override(member):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        api_quota_set(user=member, monthly_limit=-1)
