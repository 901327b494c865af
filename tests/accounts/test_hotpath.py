"""The API's hot path: token lookup and quota unit as prepared, hand-written SQL."""

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.hotpath import _statements, token_lookup, token_lookup_and_take_unit, usage_take_unit
from accounts.models import ApiQuota, ApiUsage
from accounts.selectors import api_token_hash, month_period
from accounts.services import api_quota_set, api_token_create


def _month() -> dt.date:
    return month_period()[0].date()


@pytest.fixture
def key(member) -> str:
    return api_token_create(user=member, name="hot")[1]


@pytest.mark.django_db
def test_lookup_builds_the_token_with_its_user_and_quota_in_one_query(member, key, django_assert_num_queries):
    api_quota_set(user=member, monthly_limit=7)
    token_lookup(key_hash="0" * 64)  # on PostgreSQL, the connection prepares the statement once

    with django_assert_num_queries(1):
        token = token_lookup(key_hash=api_token_hash(key))
        assert token.user == member and token.user.username == "alice"
        assert token.user.api_quota.monthly_limit == 7
        assert token.name == "hot" and token.prefix == key[:12]

    assert isinstance(token.created_at, dt.datetime) and token.created_at.tzinfo is not None
    assert token.user.check_password("correct horse battery")


@pytest.mark.django_db
def test_lookup_remembers_that_there_is_no_override(member, key, django_assert_num_queries):
    token = token_lookup(key_hash=api_token_hash(key))

    with django_assert_num_queries(0), pytest.raises(ApiQuota.DoesNotExist):
        token.user.api_quota  # noqa: B018


@pytest.mark.django_db
def test_an_unknown_hash_finds_nothing_and_takes_nothing(member, key):
    ApiUsage.objects.create(user=member, period_start=_month())

    assert token_lookup(key_hash=api_token_hash(key + "x")) is None
    assert token_lookup_and_take_unit(
        key_hash=api_token_hash(key + "x"), period_start=_month(), default_limit=10
    ) == (None, None)
    assert ApiUsage.objects.get(user=member).used == 0


@pytest.mark.django_db
def test_lookup_and_take_counts_up_to_the_users_override_then_refuses_saying_the_count(member, key):
    api_quota_set(user=member, monthly_limit=3)
    ApiUsage.objects.create(user=member, period_start=_month())
    key_hash = api_token_hash(key)

    results = [
        token_lookup_and_take_unit(key_hash=key_hash, period_start=_month(), default_limit=1000)
        for _ in range(5)
    ]

    assert [used for _, used in results] == [1, 2, 3, None, None]
    assert all(token.user == member for token, _ in results)
    assert ApiUsage.objects.get(user=member).used == 3


@pytest.mark.django_db
def test_without_an_override_the_default_limit_applies(member, key):
    ApiUsage.objects.create(user=member, period_start=_month(), used=1)

    taken = [
        token_lookup_and_take_unit(key_hash=api_token_hash(key), period_start=_month(), default_limit=2)[1]
        for _ in range(3)
    ]

    assert taken == [2, None, None]
    assert ApiUsage.objects.get(user=member).used == 2


@pytest.mark.django_db
def test_nothing_is_taken_before_the_months_row_exists(member, key):
    token, taken = token_lookup_and_take_unit(
        key_hash=api_token_hash(key), period_start=_month(), default_limit=5
    )

    assert token.user == member and taken is None
    assert not ApiUsage.objects.exists()  # creating it is the service's slow path


@pytest.mark.django_db
def test_nothing_is_taken_for_a_disabled_account(member, key):
    ApiUsage.objects.create(user=member, period_start=_month())
    get_user_model().objects.filter(pk=member.pk).update(is_active=False)

    token, taken = token_lookup_and_take_unit(
        key_hash=api_token_hash(key), period_start=_month(), default_limit=5
    )

    assert token.user.is_active is False and taken is None
    assert ApiUsage.objects.get(user=member).used == 0


@pytest.mark.django_db
def test_take_unit_moves_only_the_given_month(member):
    ApiUsage.objects.create(user=member, period_start=dt.date(2026, 1, 1), used=4)
    ApiUsage.objects.create(user=member, period_start=dt.date(2026, 2, 1))

    assert usage_take_unit(user_id=member.pk, period_start=dt.date(2026, 2, 1), limit=2) == 1
    assert usage_take_unit(user_id=member.pk, period_start=dt.date(2026, 2, 1), limit=2) == 2
    assert usage_take_unit(user_id=member.pk, period_start=dt.date(2026, 2, 1), limit=2) is None
    assert usage_take_unit(user_id=member.pk, period_start=dt.date(2026, 3, 1), limit=9) is None

    used = dict(ApiUsage.objects.values_list("period_start", "used"))
    assert used == {dt.date(2026, 1, 1): 4, dt.date(2026, 2, 1): 2}


@pytest.fixture
def no_update_returning(monkeypatch):
    """A database without UPDATE ... RETURNING (SQLite before 3.35; PostgreSQL always has it)."""
    monkeypatch.setattr(connection.features, "can_return_columns_from_insert", False)
    _statements.cache_clear()
    yield
    _statements.cache_clear()


@pytest.mark.django_db
def test_without_update_returning_the_count_is_still_given(member, no_update_returning):
    ApiUsage.objects.create(user=member, period_start=dt.date(2026, 2, 1), used=3)

    assert usage_take_unit(user_id=member.pk, period_start=dt.date(2026, 2, 1), limit=5) == 4
    assert usage_take_unit(user_id=member.pk, period_start=dt.date(2026, 2, 1), limit=4) is None


@pytest.mark.django_db(transaction=True)
def test_each_postgresql_connection_prepares_the_statements_once(require_postgres, member, key):
    key_hash = api_token_hash(key)
    connection.close()

    def statements() -> list[str]:
        with CaptureQueriesContext(connection) as context:
            assert token_lookup(key_hash=key_hash).user == member
        return [query["sql"].split(" ", 1)[0] for query in context.captured_queries]

    assert statements() == ["PREPARE", "EXECUTE"]
    assert statements() == ["EXECUTE"]
    connection.close()  # a new connection (a restarted worker, CONN_MAX_AGE) has none prepared
    assert statements() == ["PREPARE", "EXECUTE"]


@pytest.mark.django_db(transaction=True)
def test_relaxed_durability_stays_inside_the_counting_statement(require_postgres, member, key):
    ApiUsage.objects.create(user=member, period_start=_month())

    assert (
        token_lookup_and_take_unit(key_hash=api_token_hash(key), period_start=_month(), default_limit=5)[1]
        == 1
    )
    assert usage_take_unit(user_id=member.pk, period_start=_month(), limit=5) == 2

    with connection.cursor() as cursor:  # the next statement of the same session
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "on"
    assert ApiUsage.objects.get(user=member).used == 2
