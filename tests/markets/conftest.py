"""Fixtures for the markets tests: the fake exchange and slices of the bundled year."""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from makeusrich.celery import app
from tests.fakes import FakeBinance

# A minute after the last bundled candle (2022-03-06 16:00) closed, as beat syncs at :01:
# every candle is closed, past the margin a candle needs (markets.klines.CLOSED_MARGIN).
AFTER_BUNDLED_YEAR = datetime(2022, 3, 6, 17, 1, tzinfo=UTC)


@pytest.fixture(scope="session")
def bundled_lines() -> list[str]:
    """The bundled CSV's lines (header first), as text."""
    with gzip.open(django_settings.BUNDLED_DATA_FILE, "rt", newline="") as text:
        return text.read().splitlines()


@pytest.fixture
def write_csv(tmp_path: Path, bundled_lines: list[str]) -> Callable[..., Path]:
    """Write a slice of the bundled file (data rows start..stop) to tmp_path, optionally edited."""

    def write(start: int = 0, stop: int = 300, *, name: str = "slice.csv", edit=None) -> Path:
        lines = [bundled_lines[0], *bundled_lines[1 + start : 1 + stop]]
        if edit is not None:
            lines = edit(lines)
        path = tmp_path / name
        if name.endswith(".gz"):
            with gzip.open(path, "wt", newline="") as out:
                out.write("\n".join(lines) + "\n")
        else:
            path.write_text("\n".join(lines) + "\n")
        return path

    return write


@pytest.fixture
def fake_binance(settings) -> Iterator[FakeBinance]:
    """The fake exchange, with settings pointing the Binance source at it (fast retries)."""
    fake = FakeBinance().start()
    settings.MARKET_DATA_SOURCE = "binance"
    settings.BINANCE_API_URL = fake.url
    settings.BINANCE_MAX_RETRIES = 3
    settings.BINANCE_RETRY_BASE_SECONDS = 0.01
    settings.BINANCE_TIMEOUT_SECONDS = 0.5
    settings.BINANCE_BACKFILL_DAYS = 30
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def replay(settings) -> None:
    settings.MARKET_DATA_SOURCE = "replay"
    settings.REPLAY_HOURS_PER_SYNC = 1


@pytest.fixture
def eager() -> Iterator[None]:
    """Run .delay() in-process, so what a task does is observable without a broker."""
    saved = app.conf.task_always_eager
    app.conf.task_always_eager = True
    try:
        yield
    finally:
        app.conf.task_always_eager = saved
