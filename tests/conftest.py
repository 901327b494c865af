"""Fixtures shared by every test package.

Tests that need PostgreSQL or Redis use `require_postgres` / `require_redis`:
without them they skip locally (saying why), but with CI=true they fail,
because CI always provides both.
"""

from __future__ import annotations

import os

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test.utils import override_settings

from forecasting.apis import FORECAST_BODIES
from markets.models import Asset

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session", autouse=True)
def plain_http_test_server():
    """Tests speak plain http: no https redirect, no Secure-only cookies.

    pytest-django runs with DEBUG off, so the settings are production's; the
    manifest static storage would need collectstatic, so tests serve the
    same files through the finders.
    """
    with override_settings(
        SECURE_SSL_REDIRECT=False,
        SESSION_COOKIE_SECURE=False,
        CSRF_COOKIE_SECURE=False,
        SECURE_HSTS_SECONDS=0,
        STORAGES={
            **settings.STORAGES,
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        },
    ):
        yield


@pytest.fixture(scope="session", autouse=True)
def no_cache_files_from_an_earlier_run():
    """Without Redis the cache is files under VAR_DIR (var/test): throttle counts from an
    earlier run would otherwise still be there. (With Redis, tests delete only their own keys:
    the database may be the broker's too.)"""
    if settings.CACHES["default"]["BACKEND"].endswith("FileBasedCache"):
        from django.core.cache import cache

        cache.clear()


@pytest.fixture(autouse=True)
def fresh_response_cache():
    """Each test starts with no forecast body reused from an earlier test."""
    FORECAST_BODIES.clear()
    yield
    FORECAST_BODIES.clear()


def _missing(what: str) -> None:
    message = f"{what} is not configured for this run"
    if IN_CI:
        pytest.fail(f"{message}, but CI must provide it (.ci/run sets DATABASE_URL and REDIS_URL)")
    pytest.skip(f"{message}; run through .ci/run or set it to include this test")


@pytest.fixture
def require_postgres() -> None:
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        _missing("PostgreSQL (DATABASE_URL=postgres://...)")


@pytest.fixture
def require_redis() -> str:
    if not settings.REDIS_URL:
        _missing("Redis (REDIS_URL=redis://...)")
    return settings.REDIS_URL


@pytest.fixture
def member(db):
    return get_user_model().objects.create_user("alice", "alice@example.com", "correct horse battery")


@pytest.fixture
def staff(db):
    return get_user_model().objects.create_user(
        "root", "root@example.com", "correct horse battery", is_staff=True, is_superuser=True
    )


@pytest.fixture
def btc(db) -> Asset:
    return Asset.objects.create(symbol="BTCUSDT", base="BTC", quote="USDT")


@pytest.fixture
def process_env(settings, tmp_path) -> dict[str, str]:
    """Environment for a real subprocess (worker, beat, manage.py) sharing this test's database.

    Only PostgreSQL can be shared with another process (the SQLite test
    database lives in memory), so callers also use `require_postgres`. The
    artifacts storage of this process is pointed at the same folder.
    """
    db = settings.DATABASES["default"]
    artifacts = tmp_path / "artifacts"
    settings.STORAGES = {
        **settings.STORAGES,
        "artifacts": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(artifacts)},
        },
    }
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}:{db.get('PASSWORD') or ''}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "VAR_DIR": str(tmp_path / "var"),
        "ARTIFACTS_DIR": str(artifacts),
        "DEBUG": "0",
        "PYTHONUNBUFFERED": "1",
    }
    if settings.REDIS_URL:
        env["REDIS_URL"] = settings.REDIS_URL
    return env


@pytest.fixture
def broker_down():
    """Point the Celery app (broker and, with Redis, results) at a port where nothing listens."""
    from makeusrich.celery import app

    def reset_pools() -> None:
        # Publishing goes through the app's pools: drop them so the URL in force is used.
        app._pool = None
        app.amqp._producer_pool = None

    def reset_backend() -> None:
        app._local.__dict__.pop("backend", None)  # the result backend is cached per thread

    saved, saved_backend = app.conf.broker_url, app.conf.result_backend
    app.conf.broker_url = "redis://127.0.0.1:1/0"
    if saved_backend:  # Redis (CI, production): it is down too
        app.conf.result_backend = "redis://127.0.0.1:1/0"
    reset_pools()
    reset_backend()
    try:
        yield
    finally:
        app.conf.broker_url, app.conf.result_backend = saved, saved_backend
        reset_pools()
        reset_backend()
