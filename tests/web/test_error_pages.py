"""The site's own 404 and 500 pages (pytest-django runs with DEBUG off, as production does)."""

from __future__ import annotations

import pytest
from django.test import RequestFactory
from django.urls import get_resolver

pytestmark = pytest.mark.django_db


def test_an_unknown_page_gets_the_site_layout_and_a_way_back(client, member):
    client.force_login(member)
    response = client.get("/no/such/page/")
    html = response.content.decode()
    assert response.status_code == 404
    assert 'data-state="not_found"' in html and "Page not found" in html
    assert 'class="site-header"' in html and "alice" in html  # the layout, with the user's menu
    assert 'href="/">Back to the dashboard' in html


def test_an_unknown_asset_gets_the_same_page(client, member, btc):
    client.force_login(member)
    response = client.get("/assets/NOPEUSDT/")
    assert response.status_code == 404 and 'data-state="not_found"' in response.content.decode()


def test_the_server_error_page_needs_no_request_context_and_no_database(django_assert_num_queries):
    handler500 = get_resolver().resolve_error_handler(500)  # the one the URLconf configures
    with django_assert_num_queries(0):
        response = handler500(RequestFactory().get("/"))
    html = response.content.decode()
    assert response.status_code == 500
    assert 'data-state="server_error"' in html and "Something went wrong" in html
    assert 'href="/">Back to the dashboard' in html
    assert 'href="/static/css/site.css"' in html
    assert "<script" not in html
