"""The API tokens page: create (key shown once), list, revoke, and this month's usage."""

from __future__ import annotations

import pickle
import re
import zlib

import pytest
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.db import connection

from accounts.models import ApiQuota, ApiToken, ApiUsage
from accounts.selectors import api_token_find, month_period
from accounts.services import api_token_create, api_token_default_name

pytestmark = pytest.mark.django_db


def _key(html: str) -> str | None:
    match = re.search(r'<code id="token-key">([^<]+)</code>', html)
    return match.group(1) if match else None


def _database_text() -> str:
    """Every row of every table, sessions decoded: what the database holds, as one string."""
    rows = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608 (introspected names)
            rows.extend(cursor.fetchall())
    sessions = [session.get_decoded() for session in Session.objects.all()]
    return repr(rows) + repr(sessions)


def test_creating_a_token_shows_its_key_once_with_a_copy_button_and_a_curl_example(client, member):
    client.force_login(member)
    response = client.post("/account/tokens/", {"name": "laptop script"}, follow=True)
    html = response.content.decode()
    key = _key(html)
    assert key, "the new key is on the page"
    token = api_token_find(key=key)
    assert token is not None and token.user == member and token.name == "laptop script"
    assert 'data-copy-target="token-key"' in html
    assert f'curl -H "Authorization: Token {key}" http://testserver/api/v1/assets/' in html
    # Only the hash is stored, and the next visit cannot show the key again.
    assert not ApiToken.objects.filter(key_hash=key).exists()
    again = client.get("/account/tokens/").content.decode()
    assert key not in again and _key(again) is None
    assert "laptop script" in again and token.prefix in again


def test_creating_redirects_and_the_page_with_the_key_is_never_stored(client, member):
    client.force_login(member)

    created = client.post("/account/tokens/", {"name": "laptop script"})
    shown = client.get(created["Location"])

    assert created.status_code == 302 and created["Location"] == "/account/tokens/"
    assert _key(shown.content.decode())
    assert "no-store" in shown["Cache-Control"]


def test_a_refresh_after_creating_neither_shows_the_key_again_nor_creates_a_token(client, member):
    client.force_login(member)
    landed = client.post("/account/tokens/", {"name": "laptop script"}, follow=True)
    # A refresh repeats the browser's last request: after the redirect, a GET, not the POST.
    assert landed.redirect_chain == [("/account/tokens/", 302)] and landed.request["REQUEST_METHOD"] == "GET"

    refreshed = client.get("/account/tokens/").content.decode()

    assert _key(refreshed) is None
    assert ApiToken.objects.filter(user=member).count() == 1


def test_the_new_key_is_kept_nowhere_on_the_server_not_even_in_the_session_or_cache(client, member, settings):
    client.force_login(member)

    client.post("/account/tokens/", {"name": "laptop script"})
    held = _database_text() + _cache_text(settings)  # between the creation and the page showing the key
    key = _key(client.get("/account/tokens/").content.decode())

    assert key and key not in held
    assert key not in _database_text() + _cache_text(settings)
    assert api_token_find(key=key) is not None  # its hash is what is stored


def _cache_text(settings) -> str:
    """Every entry of the cache, raw, as text: the files of the embedded one, or Redis's values."""
    from pathlib import Path

    from django.core.cache import cache

    backend = settings.CACHES["default"]["BACKEND"]
    if backend.endswith("RedisCache"):
        client = cache._cache.get_client()  # the broker shares this Redis: only the cache's own keys
        names = client.scan_iter(match=cache.make_key("*"))
        return repr([client.get(name) for name in names if client.type(name) == b"string"])
    assert backend.endswith("FileBasedCache"), backend
    location = Path(settings.CACHES["default"]["LOCATION"])
    values = []
    for path in location.rglob("*.djcache") if location.is_dir() else []:
        with path.open("rb") as handle:  # Django's format: pickled expiry, then the zlib'd pickled value
            pickle.load(handle)  # noqa: S301 (our own cache files)
            values.append(pickle.loads(zlib.decompress(handle.read())))  # noqa: S301
    return repr(values)


def test_the_key_goes_to_this_users_browser_only_and_once(client, member, django_user_model):
    client.force_login(member)
    client.post("/account/tokens/", {"name": "laptop script"})
    cookie = client.cookies["mur_new_token_key"]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/account/tokens/"

    other = django_user_model.objects.create_user("mallory", password="another-long-password")
    client.force_login(other)  # the same browser, someone else logged in: the signature does not match
    assert _key(client.get("/account/tokens/").content.decode()) is None


@pytest.mark.parametrize("name", ["", "   "])
def test_a_token_without_a_name_gets_the_apis_default_name(client, member, name):
    client.force_login(member)
    before = api_token_default_name()
    html = client.post("/account/tokens/", {"name": name}, follow=True).content.decode()
    after = api_token_default_name()
    token = api_token_find(key=_key(html))
    assert token is not None and token.user == member
    assert token.name in {before, after} and re.fullmatch(r"api \d{4}-\d\d-\d\d \d\d:\d\d", token.name)
    assert f"Token “{token.name}” created." in html


def test_the_form_says_what_an_empty_name_becomes(client, member):
    client.force_login(member)
    html = client.get("/account/tokens/").content.decode()
    assert 'name="name"' in html and "Left empty, it is named “api” and the date and time (UTC)." in html
    assert not re.search(r'<input[^>]*name="name"[^>]*required', html)


def test_a_token_name_over_the_limit_is_refused(client, member):
    client.force_login(member)
    html = client.post("/account/tokens/", {"name": "x" * 101}).content.decode()
    assert "at most 100 characters" in html
    assert _key(html) is None
    assert not ApiToken.objects.exists()


def test_it_lists_only_the_users_own_tokens(client, member, staff):
    api_token_create(user=member, name="mine")
    api_token_create(user=staff, name="someone else's")
    client.force_login(member)
    html = client.get("/account/tokens/").content.decode()
    assert "mine" in html and "someone else" not in html


def test_revoking_a_token_deletes_it_and_says_so(client, member):
    token, key = api_token_create(user=member, name="old")
    client.force_login(member)
    response = client.post(f"/account/tokens/{token.pk}/revoke/", follow=True)
    assert "Token revoked" in response.content.decode()
    assert api_token_find(key=key) is None


def test_nobody_can_revoke_another_users_token(client, member, staff):
    token, key = api_token_create(user=staff, name="admin script")
    client.force_login(member)
    response = client.post(f"/account/tokens/{token.pk}/revoke/", follow=True)
    assert "That token does not exist" in response.content.decode()
    assert api_token_find(key=key) is not None


def test_revoking_needs_a_post_and_its_address_leads_back_to_the_tokens_page(client, member):
    token, _ = api_token_create(user=member, name="old")
    client.force_login(member)
    response = client.get(f"/account/tokens/{token.pk}/revoke/")
    assert response.status_code == 302 and response["Location"] == "/account/tokens/"
    assert ApiToken.objects.filter(pk=token.pk).exists()


def test_the_usage_bar_shows_this_months_calls_against_the_users_quota(client, member):
    ApiQuota.objects.create(user=member, monthly_limit=40)
    start, _ = month_period()
    ApiUsage.objects.create(user=member, period_start=start.date(), used=35)
    client.force_login(member)
    html = client.get("/account/tokens/").content.decode()
    assert "35 of 40" in html and "5 left" in html
    assert re.search(r'<progress id="usage-bar" class="near-limit" max="40" value="35"', html)


def test_a_used_up_quota_says_the_api_answers_429(client, member):
    ApiQuota.objects.create(user=member, monthly_limit=3)
    ApiUsage.objects.create(user=member, period_start=month_period()[0].date(), used=3)
    client.force_login(member)
    assert "answers 429 until the reset" in client.get("/account/tokens/").content.decode()


def test_a_new_user_starts_at_zero_of_the_default_quota(client, settings):
    settings.API_MONTHLY_QUOTA = 250
    user = get_user_model().objects.create_user("dave", password="plum-orchard-47-lantern")
    client.force_login(user)
    html = client.get("/account/tokens/").content.decode()
    assert "0 of 250" in html and "No tokens yet." in html


def test_a_token_used_seconds_ago_reads_just_now(client, member):
    from datetime import timedelta

    from django.utils import timezone

    used, _ = api_token_create(user=member, name="script")
    old, _ = api_token_create(user=member, name="old script")
    ApiToken.objects.filter(pk=used.pk).update(last_used_at=timezone.now() - timedelta(seconds=20))
    ApiToken.objects.filter(pk=old.pk).update(last_used_at=timezone.now() - timedelta(minutes=5))
    client.force_login(member)
    html = client.get("/account/tokens/").content.decode()
    assert "just now" in html and "0\xa0minutes ago" not in html and "0 minutes ago" not in html
    assert "5\xa0minutes ago" in html
