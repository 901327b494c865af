import pytest
from django.core.cache import cache

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def fresh_counts(settings):
    settings.LOGIN_FAILURE_LIMIT = 3
    cache.clear()
    yield
    cache.clear()


def _login(client, username, password, ip="10.0.0.1"):
    return client.post("/accounts/login/", {"username": username, "password": password}, REMOTE_ADDR=ip)


def test_a_correct_login_still_works_below_the_limit(client, member):
    for _ in range(2):
        assert _login(client, "alice", "wrong").status_code == 200
    response = _login(client, "alice", PASSWORD)
    assert response.status_code == 302 and response.url == "/"


def test_it_refuses_even_the_right_password_after_too_many_failures(client, member):
    for _ in range(3):
        _login(client, "alice", "wrong")
    response = _login(client, "alice", PASSWORD)
    assert response.status_code == 429
    assert "Too many failed log-in attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_the_username_is_protected_from_other_addresses_too(client, member):
    for i in range(3):
        _login(client, "ALICE", "wrong", ip=f"10.0.0.{i + 10}")
    assert _login(client, "alice", PASSWORD, ip="10.9.9.9").status_code == 429


def test_one_noisy_client_is_refused_for_every_username(client, member, staff):
    for i in range(3):
        _login(client, f"nobody{i}", "wrong", ip="10.6.6.6")
    assert _login(client, "root", PASSWORD, ip="10.6.6.6").status_code == 429
    assert _login(client, "root", PASSWORD, ip="10.7.7.7").status_code == 302


def test_a_successful_login_clears_the_usernames_failures(client, member):
    for _ in range(2):
        _login(client, "alice", "wrong", ip="10.1.1.1")
    assert _login(client, "alice", PASSWORD, ip="10.1.1.2").status_code == 302
    client.logout()
    for _ in range(2):
        _login(client, "alice", "wrong", ip="10.1.1.3")
    assert _login(client, "alice", PASSWORD, ip="10.1.1.4").status_code == 302
