import pytest
from rest_framework.throttling import ScopedRateThrottle

from accounts.models import ApiToken
from accounts.selectors import api_token_find

URL = "/api/v1/auth/token/"
CREDENTIALS = {"username": "alice", "password": "correct horse battery"}


@pytest.mark.django_db
def test_it_creates_a_named_token_and_shows_the_key_once(api, member):
    response = api.post(URL, CREDENTIALS, format="json")

    assert response.status_code == 201
    key = response.json()["token"]
    token = api_token_find(key=key)
    assert token.user == member and token.name.startswith("api ")
    # The key works on the API right away.
    assert api.get("/api/v1/usage/", HTTP_AUTHORIZATION=f"Token {key}").status_code == 200


@pytest.mark.django_db
def test_each_login_creates_another_token(api, member):
    keys = {api.post(URL, CREDENTIALS, format="json").json()["token"] for _ in range(2)}
    assert len(keys) == 2
    assert ApiToken.objects.filter(user=member).count() == 2


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        {"username": "alice", "password": "wrong"},
        {"username": "nobody", "password": "correct horse battery"},
        {"username": "alice", "password": "correct horse battery "},  # passwords are not trimmed
    ],
)
def test_it_refuses_bad_credentials_with_400_and_creates_nothing(api, member, body):
    response = api.post(URL, body, format="json")

    assert response.status_code == 400
    assert response.json() == {"detail": "Unable to log in with the provided credentials."}
    assert not ApiToken.objects.exists()


@pytest.mark.django_db
def test_it_refuses_a_disabled_account(api, member):
    member.is_active = False
    member.save()
    assert api.post(URL, CREDENTIALS, format="json").status_code == 400


@pytest.mark.django_db
def test_it_names_missing_fields(api):
    response = api.post(URL, {"username": "alice"}, format="json")

    assert response.status_code == 400
    body = response.json()
    assert body["detail"] == "password: This field is required."
    assert body["password"] == ["This field is required."]


@pytest.mark.django_db
def test_it_accepts_a_form_post_too(api, member):
    assert api.post(URL, CREDENTIALS).status_code == 201


@pytest.mark.django_db
def test_a_stray_bad_token_header_does_not_block_login(api, member):
    api.credentials(HTTP_AUTHORIZATION="Token revoked-long-ago")
    assert api.post(URL, CREDENTIALS, format="json").status_code == 201


@pytest.mark.django_db
def test_it_throttles_password_guessing_with_429(api, member):
    allowed, _ = ScopedRateThrottle().parse_rate(ScopedRateThrottle.THROTTLE_RATES["login"])
    statuses = [
        api.post(URL, {"username": "alice", "password": f"guess {i}"}, format="json").status_code
        for i in range(allowed)
    ]
    assert statuses == [400] * allowed

    response = api.post(URL, CREDENTIALS, format="json")  # even the right password now waits
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert "throttled" in response.json()["detail"]
    assert not ApiToken.objects.exists()


@pytest.mark.django_db
def test_only_post_is_allowed(api):
    response = api.get(URL)
    assert response.status_code == 405
    assert "detail" in response.json()
