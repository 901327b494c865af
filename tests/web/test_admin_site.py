"""The admin carries the product's name and says which clock its times use."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_the_admin_is_titled_make_us_rich(admin_client):
    html = admin_client.get("/admin/").content.decode()
    assert '<a href="/admin/">Make Us Rich admin</a>' in html
    assert "<title>Assets, models and accounts | Make Us Rich admin</title>" in html
    assert "Django administration" not in html


def test_the_admin_says_its_times_are_utc_candle_open_times(admin_client):
    html = admin_client.get("/admin/markets/candle/").content.decode()
    assert "All times are UTC." in html
    assert "the hour the candle opens" in html
