import time

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def fresh_counts(settings):
    settings.LOGIN_FAILURE_LIMIT = 3  # per username
    settings.LOGIN_CLIENT_FAILURE_LIMIT = 6  # per address, over every username
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
    for i in range(6):
        _login(client, f"nobody{i}", "wrong", ip="10.6.6.6")
    assert _login(client, "root", PASSWORD, ip="10.6.6.6").status_code == 429
    assert _login(client, "root", PASSWORD, ip="10.7.7.7").status_code == 302


def test_someone_elses_failures_from_a_shared_address_do_not_lock_a_user_out(client, member):
    # An office behind one NAT address: a colleague (or a bot) fails on another username.
    for _ in range(5):
        _login(client, "ghost", "wrong", ip="10.8.8.8")
    assert _login(client, "ghost", "wrong", ip="10.8.8.8").status_code == 429  # ghost is locked
    assert _login(client, "alice", PASSWORD, ip="10.8.8.8").status_code == 302  # alice is not


def test_a_successful_login_clears_the_usernames_failures(client, member):
    for _ in range(2):
        _login(client, "alice", "wrong", ip="10.1.1.1")
    assert _login(client, "alice", PASSWORD, ip="10.1.1.2").status_code == 302
    client.logout()
    for _ in range(2):
        _login(client, "alice", "wrong", ip="10.1.1.3")
    assert _login(client, "alice", PASSWORD, ip="10.1.1.4").status_code == 302


def _admin_login(client, username, password, ip="10.0.0.1"):
    return client.post(
        "/admin/login/?next=/admin/markets/asset/",
        {"username": username, "password": password, "next": "/admin/markets/asset/"},
        REMOTE_ADDR=ip,
    )


def test_the_admin_login_logs_staff_in_and_goes_where_it_was_asked(client, staff):
    page = client.get("/admin/login/?next=/admin/markets/asset/")
    assert page.status_code == 200 and "Make Us Rich admin" in page.content.decode()

    response = _admin_login(client, "root", PASSWORD)

    assert response.status_code == 302 and response.url == "/admin/markets/asset/"


def test_the_admin_login_refuses_members_as_the_admin_does(client, member):
    response = _admin_login(client, "alice", PASSWORD)
    assert response.status_code == 200 and "_auth_user_id" not in client.session
    assert "staff account" in response.content.decode()


def test_the_admin_login_has_the_same_failure_limit(client, staff):
    for _ in range(3):
        assert _admin_login(client, "root", "wrong").status_code == 200
    response = _admin_login(client, "root", PASSWORD)
    assert response.status_code == 429
    assert "Too many failed log-in attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session


@pytest.fixture
def cache_down(settings):
    # Nothing listens on port 9: every cache call fails at once, as during a Redis outage.
    working = settings.CACHES
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:9/0",
        }
    }
    yield
    settings.CACHES = working  # before fresh_counts clears the cache


def test_with_the_cache_unreachable_people_can_still_log_in(client, member, cache_down, caplog):
    assert _login(client, "alice", "wrong").status_code == 200
    response = _login(client, "alice", PASSWORD)
    assert response.status_code == 302 and response.url == "/"
    assert "login throttle: the cache is unreachable" in caplog.text


def test_with_the_cache_unreachable_the_api_still_gives_tokens(member, cache_down):
    api_client = APIClient()
    bad = api_client.post("/api/v1/auth/token/", {"username": "alice", "password": "wrong"})
    good = api_client.post("/api/v1/auth/token/", {"username": "alice", "password": PASSWORD})
    assert bad.status_code == 400
    assert good.status_code == 201 and good.json()["token"]


def test_a_success_gives_the_clients_attempt_back(client, member):
    for _ in range(2):
        _login(client, "alice", "wrong", ip="10.3.3.3")
    assert _login(client, "alice", PASSWORD, ip="10.3.3.3").status_code == 302
    client.logout()
    # two failures so far from this address: four more are allowed, the next is refused
    for name in ("bob", "carol", "dave", "erin"):
        assert _login(client, name, "wrong", ip="10.3.3.3").status_code == 200
    assert _login(client, "frank", "wrong", ip="10.3.3.3").status_code == 429


def test_attempts_refused_for_a_username_do_not_count_against_the_client(client, member):
    for i in range(3):
        _login(client, "alice", "wrong", ip=f"10.4.4.{i}")
    for _ in range(5):  # alice is locked: these are refused before any password check
        assert _login(client, "alice", "wrong", ip="10.5.5.5").status_code == 429
    assert _login(client, "root", "wrong", ip="10.5.5.5").status_code == 200


def test_parallel_wrong_passwords_cannot_pass_the_limit(settings, require_redis):
    """Each attempt takes its number from Redis before the check: with 24 at once, exactly 3 are tried."""
    import threading

    from accounts.login_throttle import login_attempt_start

    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": require_redis,
            "KEY_PREFIX": "test-login-parallel",
        }
    }
    cache.clear()
    start = threading.Barrier(24)
    allowed: list[int | None] = []

    def attempt(i: int) -> None:
        start.wait()
        allowed.append(login_attempt_start(username="alice", client=f"10.8.0.{i}"))

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(allowed) == 24 and allowed.count(None) == 3  # None: go ahead
    cache.clear()


def test_the_lockout_ends_with_its_window_and_says_when(member, settings, monkeypatch):
    import accounts.login_throttle as throttle

    settings.LOGIN_FAILURE_WINDOW_SECONDS = 900
    now = [1_000_000.0]
    monkeypatch.setattr(throttle.time, "time", lambda: now[0])
    api_client = APIClient()
    for _ in range(3):  # the window opens with the first failure
        api_client.post("/api/v1/auth/token/", {"username": "alice", "password": "wrong"})
        now[0] += 100

    for _ in range(3):  # refused attempts do not push the end back
        refused = api_client.post("/api/v1/auth/token/", {"username": "alice", "password": PASSWORD})
        assert refused.status_code == 429 and refused["Retry-After"] == "600"
    assert "600 seconds" in refused.json()["detail"]


def test_the_login_page_says_how_long_to_wait(client, member, settings, monkeypatch):
    import accounts.login_throttle as throttle

    settings.LOGIN_FAILURE_WINDOW_SECONDS = 900
    now = [1_000_000.0]
    monkeypatch.setattr(throttle.time, "time", lambda: now[0])
    for _ in range(3):
        _login(client, "alice", "wrong")
    now[0] += 780  # 120 s left
    assert "Try again in 2 minutes." in _login(client, "alice", PASSWORD).content.decode()


@pytest.fixture
def file_cache_1s(settings, tmp_path):
    # Django's file cache stores incremented and decremented values with its default timeout: here 1 s.
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(tmp_path / "cache"),
            "TIMEOUT": 1,
        }
    }
    settings.LOGIN_FAILURE_WINDOW_SECONDS = 10**8  # no window boundary during the test


def test_with_the_file_cache_a_failure_count_lasts_the_whole_window(client, member, file_cache_1s):
    for _ in range(3):
        _login(client, "alice", "wrong")
    time.sleep(1.5)
    assert _login(client, "alice", PASSWORD).status_code == 429


def test_with_the_file_cache_a_success_does_not_shorten_the_clients_window(client, member, file_cache_1s):
    for name in ("bob", "carol", "dave", "erin", "frank"):
        _login(client, name, "wrong")
    assert _login(client, "alice", PASSWORD).status_code == 302  # gives its unit back
    client.logout()
    time.sleep(1.5)
    assert _login(client, "gina", "wrong").status_code == 200  # the sixth failure from this address
    assert _login(client, "hank", "wrong").status_code == 429
