import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from accounts.models import ApiToken
from accounts.selectors import api_token_find, api_token_hash, api_token_list
from accounts.services import api_token_create, api_token_default_name, api_token_revoke, api_token_touch


@pytest.mark.django_db
def test_it_returns_the_key_once_and_stores_only_its_hash(member):
    token, key = api_token_create(user=member, name="laptop")

    assert key.startswith("mur_") and len(key) > 40
    stored = ApiToken.objects.get(pk=token.pk)
    assert stored.key_hash == api_token_hash(key) != key
    assert stored.prefix == key[:12]
    assert not hasattr(stored, "key")


@pytest.mark.django_db
def test_the_database_never_contains_a_token_key(member, staff):
    keys = [api_token_create(user=user, name=f"t{i}")[1] for i, user in enumerate([member, staff, member])]

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {ApiToken._meta.db_table}")  # noqa: S608 (constant table name)
        dump = repr(cursor.fetchall())
    assert len(keys) == 3
    for key in keys:
        assert key not in dump
        assert key[12:] not in dump  # not even the secret part without the displayed prefix


@pytest.mark.django_db
def test_each_key_is_different(member):
    keys = {api_token_create(user=member, name="x")[1] for _ in range(5)}
    assert len(keys) == 5


@pytest.mark.django_db
def test_it_rejects_a_long_name_and_creates_nothing(member):
    with pytest.raises(ValidationError):
        api_token_create(user=member, name="x" * 101)
    assert not ApiToken.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["", "   "])
def test_a_blank_name_gets_the_default_name(member, name):
    before = api_token_default_name()
    token, _ = api_token_create(user=member, name=name)
    assert token.name in {before, api_token_default_name()}


def test_the_default_name_is_api_and_the_utc_minute():
    moment = dt.datetime(2026, 11, 25, 10, 30, 59, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert api_token_default_name(now=moment) == "api 2026-11-25 08:30"


@pytest.mark.django_db
def test_it_finds_a_token_by_its_key_only(member):
    token, key = api_token_create(user=member, name="laptop")

    assert api_token_find(key=key) == token
    assert api_token_find(key=key + "x") is None
    assert api_token_find(key=token.key_hash) is None


@pytest.mark.django_db
def test_list_shows_the_users_tokens_newest_first(member, staff):
    first, _ = api_token_create(user=member, name="first")
    second, _ = api_token_create(user=member, name="second")
    api_token_create(user=staff, name="not hers")

    assert [t.name for t in api_token_list(user=member)] == ["second", "first"]
    assert {first.pk, second.pk} == {t.pk for t in api_token_list(user=member)}


@pytest.mark.django_db
def test_revoke_deletes_only_the_owners_token(member, staff):
    token, key = api_token_create(user=member, name="laptop")

    assert api_token_revoke(user=staff, token_id=token.pk) is False
    assert api_token_find(key=key) is not None
    assert api_token_revoke(user=member, token_id=token.pk) is True
    assert api_token_find(key=key) is None
    assert api_token_revoke(user=member, token_id=token.pk) is False


@pytest.mark.django_db
def test_touch_writes_last_used_at_at_most_once_a_minute(member, django_assert_num_queries):
    token, _ = api_token_create(user=member, name="laptop")
    now = timezone.now()

    api_token_touch(token=token, now=now)
    assert ApiToken.objects.get(pk=token.pk).last_used_at == now
    with django_assert_num_queries(0):
        api_token_touch(token=token, now=now + dt.timedelta(seconds=59))
    # Another process holding an older copy cannot write within the minute either.
    stale_copy = ApiToken.objects.get(pk=token.pk)
    stale_copy.last_used_at = None
    api_token_touch(token=stale_copy, now=now + dt.timedelta(seconds=30))
    assert ApiToken.objects.get(pk=token.pk).last_used_at == now
    api_token_touch(token=token, now=now + dt.timedelta(seconds=61))
    assert ApiToken.objects.get(pk=token.pk).last_used_at == now + dt.timedelta(seconds=61)
