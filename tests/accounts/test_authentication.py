"""HashedTokenAuthentication through a real endpoint (GET /api/v1/usage/, not counted)."""

import datetime as dt

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiToken
from accounts.services import api_token_create, api_token_revoke

URL = "/api/v1/usage/"


def _get(key: str | None = None, header: str | None = None, **extra):
    client = APIClient()
    if header is not None:
        extra["HTTP_AUTHORIZATION"] = header
    elif key is not None:
        extra["HTTP_AUTHORIZATION"] = f"Token {key}"
    return client.get(URL, **extra)


@pytest.mark.django_db
def test_a_valid_token_authenticates_its_user(member):
    _, key = api_token_create(user=member, name="laptop")
    response = _get(key)
    assert response.status_code == 200, response.content
    assert response.json()["used"] == 0


@pytest.mark.django_db
def test_the_keyword_is_case_insensitive(member):
    _, key = api_token_create(user=member, name="laptop")
    assert _get(header=f"token {key}").status_code == 200


@pytest.mark.django_db
def test_it_answers_401_with_www_authenticate_without_a_token():
    response = _get()
    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided."}
    assert response["WWW-Authenticate"].startswith("Token")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "header",
    ["Token mur_doesnotexist", "Token", "Token a b", "Token " + "x" * 500],
)
def test_it_rejects_unknown_or_malformed_tokens_with_401(member, header):
    response = _get(header=header)
    assert response.status_code == 401
    assert set(response.json()) == {"detail"}
    assert response["WWW-Authenticate"].startswith("Token")


@pytest.mark.django_db
@pytest.mark.parametrize(("header", "scheme"), [("Bearer abc", "Bearer"), ("Basic YWxpY2U6eA==", "Basic")])
def test_credentials_of_another_scheme_are_refused_saying_which_works(member, header, scheme):
    response = _get(header=header)
    assert response.status_code == 401
    assert response.json() == {
        "detail": f"Unsupported authorization scheme '{scheme}': use 'Authorization: Token <key>'."
    }
    assert response["WWW-Authenticate"].startswith("Token")


@pytest.mark.django_db
def test_a_bare_key_is_told_to_add_the_scheme_and_never_echoed(member):
    _, key = api_token_create(user=member, name="laptop")
    for header in (key, f"{key} extra", "x" * 30 + "-secret"):
        response = _get(header=header)
        assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Token")
        assert key[:8] not in response.content.decode() and "secret" not in response.content.decode()
    assert _get(header=key).json() == {
        "detail": "The key needs the word Token before it: 'Authorization: Token <key>'."
    }


@pytest.mark.django_db
def test_it_rejects_a_revoked_token(member):
    token, key = api_token_create(user=member, name="laptop")
    assert _get(key).status_code == 200
    api_token_revoke(user=member, token_id=token.pk)

    response = _get(key)
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid or revoked token."}


QUERY_TOKEN_DETAIL = (
    "Tokens are accepted only in the 'Authorization: Token <key>' header, never in a URL "
    "(URLs end up in logs and browser history)."
)


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["token", "key", "auth_token", "api_key", "access_token", "API_KEY"])
def test_a_token_in_the_query_string_is_refused_saying_where_it_goes(member, name):
    token, key = api_token_create(user=member, name="laptop")

    response = APIClient().get(URL, {name: key, "days": "7"})

    assert response.status_code == 401
    assert response.json() == {"detail": QUERY_TOKEN_DETAIL}
    assert response["WWW-Authenticate"].startswith("Token")
    assert ApiToken.objects.get(pk=token.pk).last_used_at is None  # never looked up


@pytest.mark.django_db
def test_other_query_parameters_without_a_header_get_the_plain_401():
    response = APIClient().get(URL, {"limit": "5", "tokens": "x"})
    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided."}


@pytest.mark.django_db
def test_a_key_in_the_url_is_refused_even_beside_a_good_header_and_takes_no_unit(member):
    token, key = api_token_create(user=member, name="laptop")

    response = _get(key, QUERY_STRING=f"days=7&api_key={key}")

    assert response.status_code == 401
    assert response.json() == {"detail": QUERY_TOKEN_DETAIL}
    assert ApiToken.objects.get(pk=token.pk).last_used_at is None  # never looked up
    assert _get(key, QUERY_STRING="days=7&tokens=2").status_code == 200  # other names are fine


@pytest.mark.django_db
def test_it_rejects_the_token_of_a_disabled_account(member):
    _, key = api_token_create(user=member, name="laptop")
    member.is_active = False
    member.save()
    response = _get(key)
    assert response.status_code == 401
    assert "disabled" in response.json()["detail"]


@pytest.mark.django_db
def test_it_records_last_use_but_not_on_every_call(member):
    token, key = api_token_create(user=member, name="laptop")
    assert token.last_used_at is None

    _get(key)
    first = ApiToken.objects.get(pk=token.pk).last_used_at
    assert first is not None and timezone.now() - first < dt.timedelta(seconds=5)
    _get(key)
    assert ApiToken.objects.get(pk=token.pk).last_used_at == first

    ApiToken.objects.filter(pk=token.pk).update(last_used_at=first - dt.timedelta(minutes=2))
    _get(key)
    assert ApiToken.objects.get(pk=token.pk).last_used_at > first


@pytest.mark.django_db
def test_a_session_login_does_not_open_the_api(client, member):
    client.force_login(member)
    assert client.get(URL).status_code == 401
