"""The site's own 404 and 500 pages (pytest-django runs with DEBUG off, as production does)."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.test import Client, RequestFactory
from django.urls import get_resolver, resolve

pytestmark = pytest.mark.django_db


def test_an_unknown_page_gets_the_site_layout_and_a_way_back(client, member):
    assert not settings.DEBUG  # production's handlers, not Django's technical pages
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


def test_a_failing_page_gets_the_server_error_page_through_the_whole_stack(settings, member):
    settings.ROOT_URLCONF = "tests.web.urls_failing"
    client = Client(raise_request_exception=False)
    client.force_login(member)
    response = client.get("/fail/")
    html = response.content.decode()
    assert response.status_code == 500
    assert 'data-state="server_error"' in html and "a bug in a page" not in html
    assert "Content-Security-Policy" in response.headers  # the middleware still ran


def test_the_server_error_page_links_lead_to_real_pages():
    # Its links are plain paths (it may not look URLs up): each must still be a page of the site.
    handler500 = get_resolver().resolve_error_handler(500)
    html = handler500(RequestFactory().get("/")).content.decode()
    links = re.findall(r'<a [^>]*href="([^"]+)"[^>]*>([^<]+)</a>', html)
    assert [text for _, text in links] == [
        "Make Us Rich",
        "Dashboard",
        "API tokens",
        "API docs",
        "Back to the dashboard",
    ]
    assert {href: resolve(href).url_name for href, _ in links} == {
        "/": "dashboard",
        "/account/tokens/": "tokens",
        "/api/v1/docs/": "api-docs",
    }
