"""Fixtures of the web tests: real rows for an asset with candles, a model and forecasts."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from pytest_django.live_server_helper import LiveServer

from tests.web import factories


@pytest.fixture
def market(btc):
    """BTCUSDT with 150 hourly candles up to the last full hour, a failed v1 and an active
    v2, v2's latest 24-hour forecast and 30 older forecasts scored against the candles."""
    return factories.market_create(asset=btc)


@pytest.fixture(scope="package")
def live_server(request) -> Iterator[LiveServer]:
    """pytest-django's live server, started once these settings are in place.

    Package-scoped so that the server (which builds its middleware when it
    starts) is shared by these tests only.
    """
    address = (
        request.config.getvalue("liveserver") or os.getenv("DJANGO_LIVE_TEST_SERVER_ADDRESS") or "localhost"
    )
    server = LiveServer(address)
    yield server
    server.stop()
