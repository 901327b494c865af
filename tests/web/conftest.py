"""Fixtures of the web tests: real rows for an asset with candles, a model and forecasts."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.test.utils import override_settings
from pytest_django.live_server_helper import LiveServer

from tests.web import factories


@pytest.fixture(scope="package", autouse=True)
def plain_http_test_server():
    """The test server speaks plain http: no https redirect, no Secure-only cookies.

    With DEBUG off, settings pick the manifest storage, which needs
    collectstatic; the test server serves the same files through the finders.
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


@pytest.fixture
def market(btc):
    """BTCUSDT with 150 hourly candles up to the last full hour, a failed v1 and an active
    v2, v2's latest 24-hour forecast and 30 older forecasts scored against the candles."""
    return factories.market_create(asset=btc)


@pytest.fixture(scope="package")
def live_server(plain_http_test_server, request) -> Iterator[LiveServer]:
    """pytest-django's live server, started once these settings are in place.

    The server builds its middleware when it starts: the session-wide one
    could have started earlier with https redirects on.
    """
    address = (
        request.config.getvalue("liveserver") or os.getenv("DJANGO_LIVE_TEST_SERVER_ADDRESS") or "localhost"
    )
    server = LiveServer(address)
    yield server
    server.stop()
