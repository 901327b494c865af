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
@pytest.mark.parametrize("name", ["", "   "])
def test_an_empty_name_gets_the_default_as_on_the_tokens_page(api, member, name):
    response = api.post(URL, {**CREDENTIALS, "name": name}, format="json")

    assert response.status_code == 201, response.json()
    assert api_token_find(key=response.json()["token"]).name.startswith("api ")


@pytest.mark.django_db
def test_a_long_password_the_site_accepts_gets_a_token_too(api, member):
    member.set_password("p" * 300)
    member.save()
    response = api.post(URL, {"username": "alice", "password": "p" * 300}, format="json")
    assert response.status_code == 201, response.json()


@pytest.mark.django_db
def test_a_given_name_is_kept(api, member):
    response = api.post(URL, {**CREDENTIALS, "name": "my notebook"}, format="json")
    assert api_token_find(key=response.json()["token"]).name == "my notebook"


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


def _guess(api, username: str, **extra):
    return api.post(URL, {"username": username, "password": "a guess"}, format="json", **extra)


@pytest.mark.django_db
def test_a_forged_x_forwarded_for_does_not_dodge_the_throttle(api, member):
    # With no proxy configured (NUM_PROXIES=0) the header is the client's own words.
    # Each guess for another username: only what counts per client can stop it.
    for i in range(10):
        assert _guess(api, f"guess{i}", HTTP_X_FORWARDED_FOR=f"203.0.113.{i + 1}").status_code == 400

    response = api.post(URL, CREDENTIALS, format="json", HTTP_X_FORWARDED_FOR="203.0.113.11")
    assert response.status_code == 429
    assert not ApiToken.objects.exists()


@pytest.mark.django_db
def test_behind_a_proxy_each_forwarded_client_has_its_own_allowance(api, member, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    # The proxy appends the address it saw; anything before it came from the client.
    attacker = {"HTTP_X_FORWARDED_FOR": "10.9.9.9, 203.0.113.1"}
    for i in range(10):
        assert _guess(api, f"guess{i}", **attacker).status_code == 400
    assert api.post(URL, CREDENTIALS, format="json", **attacker).status_code == 429

    other = api.post(URL, CREDENTIALS, format="json", HTTP_X_FORWARDED_FOR="10.9.9.9, 203.0.113.2")
    assert other.status_code == 201


@pytest.mark.django_db
def test_guessing_one_username_from_many_addresses_locks_that_username(api, member):
    for i in range(1, 11):
        assert _guess(api, "alice", REMOTE_ADDR=f"203.0.113.{i}").status_code == 400

    blocked = api.post(URL, CREDENTIALS, format="json", REMOTE_ADDR="203.0.113.12")
    assert blocked.status_code == 429
    assert blocked.json()["detail"].startswith("Too many failed attempts")
    assert 890 <= int(blocked["Retry-After"]) <= 900  # the window opened at the first guess
    assert not ApiToken.objects.exists()


@pytest.mark.django_db
def test_a_token_can_be_named_and_its_key_is_never_cached(api, member):
    response = api.post(URL, {**CREDENTIALS, "name": "laptop script"}, format="json")

    assert response.status_code == 201 and response["Cache-Control"] == "no-store"
    assert api_token_find(key=response.json()["token"]).name == "laptop script"
