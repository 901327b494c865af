import re

import pytest
from django.utils import timezone

from accounts.models import ApiQuota, ApiUsage
from accounts.services import api_quota_consume, api_token_create


def _change_url(user) -> str:
    return f"/admin/auth/user/{user.pk}/change/"


def _form(user, *, quota: str, tokens: list) -> dict:
    joined = timezone.localtime(user.date_joined)
    data = {
        "username": user.username,
        "email": user.email,
        "first_name": "",
        "last_name": "",
        "is_active": "on",
        "date_joined_0": joined.strftime("%Y-%m-%d"),
        "date_joined_1": joined.strftime("%H:%M:%S"),
        "api_quota-TOTAL_FORMS": "1",
        "api_quota-INITIAL_FORMS": "0",
        "api_quota-MIN_NUM_FORMS": "0",
        "api_quota-MAX_NUM_FORMS": "1",
        "api_quota-0-monthly_limit": quota,
        "api_quota-0-user": str(user.pk),
        "api_tokens-TOTAL_FORMS": str(len(tokens)),
        "api_tokens-INITIAL_FORMS": str(len(tokens)),
        "api_tokens-MIN_NUM_FORMS": "0",
        "api_tokens-MAX_NUM_FORMS": "1000",
    }
    for i, token in enumerate(tokens):
        data[f"api_tokens-{i}-id"] = str(token.pk)
        data[f"api_tokens-{i}-user"] = str(user.pk)
    return data


@pytest.mark.django_db
def test_the_user_page_shows_this_months_usage_and_tokens(client, staff, member, settings):
    settings.API_MONTHLY_QUOTA = 1000
    api_token_create(user=member, name="laptop")
    for _ in range(3):
        api_quota_consume(user=member)
    client.force_login(staff)

    page = client.get(_change_url(member)).content.decode()

    assert "API usage this month" in page
    assert "3 of 1000 calls (default limit)" in page
    assert "API quota override" in page
    assert "laptop" in page and "mur_" in page


@pytest.mark.django_db
def test_staff_set_a_per_user_quota_in_the_user_page(client, staff, member):
    token, _ = api_token_create(user=member, name="laptop")
    client.force_login(staff)

    response = client.post(_change_url(member), _form(member, quota="50", tokens=[token]))

    assert response.status_code == 302, response.content.decode()[:3000]
    assert ApiQuota.objects.get(user=member).monthly_limit == 50
    page = client.get(_change_url(member)).content.decode()
    assert "0 of 50 calls (override limit)" in page


@pytest.mark.django_db
def test_the_admin_cannot_create_tokens_whose_key_nobody_would_see(client, staff, member):
    client.force_login(staff)
    page = client.get(_change_url(member)).content.decode()
    assert 'name="api_tokens-MAX_NUM_FORMS" value="0"' in page


@pytest.mark.django_db
def test_the_token_inline_is_headed_in_the_plural(client, staff, member):
    api_token_create(user=member, name="laptop")
    client.force_login(staff)
    page = client.get(_change_url(member)).content.decode()
    assert "API tokens (delete = revoke)" in page
    assert "(delete = revoke)s" not in page


@pytest.mark.django_db
def test_the_admin_names_the_logged_in_user_it_refuses(client, member):
    client.force_login(member)
    response = client.get("/admin/", follow=True)
    page = response.content.decode()
    assert response.redirect_chain[-1][0].startswith("/admin/login/")
    assert "You are authenticated as alice, but are not authorized" in page


@pytest.mark.django_db
def test_api_usage_is_view_only_in_the_admin(client, staff, member):
    api_quota_consume(user=member)
    usage = ApiUsage.objects.get(user=member)
    client.force_login(staff)

    index = client.get("/admin/").content.decode()
    detail = client.get(f"/admin/accounts/apiusage/{usage.pk}/change/")

    assert re.search(r'href="/admin/accounts/apiusage/" class="viewlink"', index)
    assert detail.status_code == 200 and b'name="_save"' not in detail.content
    posted = client.post(f"/admin/accounts/apiusage/{usage.pk}/change/", {"used": "0"})
    assert posted.status_code == 403
    # Nor deleted: that would give the month's whole quota back, silently.
    listing = client.get("/admin/accounts/apiusage/").content.decode()
    assert 'value="delete_selected"' not in listing and "Select API usage to view" in listing
    assert client.post(f"/admin/accounts/apiusage/{usage.pk}/delete/", {"post": "yes"}).status_code == 403
    usage.refresh_from_db()
    assert usage.used == 1
