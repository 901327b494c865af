"""Fake external services for tests (real clients, local servers)."""

from tests.fakes.binance import FakeBinance, bundled_klines

__all__ = ["FakeBinance", "bundled_klines"]
