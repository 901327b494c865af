"""The site's own 403, CSRF failure, 404 and 500 pages (pytest-django runs with DEBUG off, as production does)."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client, RequestFactory
from django.urls import get_resolver, resolve

from accounts.models import ApiToken

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


def test_a_page_the_user_may_not_open_gets_the_site_layout_and_a_way_back(client):
    assert not settings.DEBUG
    # Staff without permissions: the admin refuses its asset list with PermissionDenied.
    clerk = get_user_model().objects.create_user(
        "clerk", "clerk@example.com", "pw-unused-here", is_staff=True
    )
    client.force_login(clerk)
    response = client.get("/admin/markets/asset/")
    html = response.content.decode()
    assert response.status_code == 403
    assert 'data-state="forbidden"' in html and "Access denied" in html
    assert "403 Forbidden" not in html  # not Django's bare page
    assert 'class="site-header"' in html and "clerk" in html
    assert 'href="/">Back to the dashboard' in html


def test_a_form_posted_without_its_csrf_token_gets_the_site_layout_and_creates_nothing(member):
    client = Client(enforce_csrf_checks=True)
    client.force_login(member)
    response = client.post("/account/tokens/", {"name": "laptop"})
    html = response.content.decode()
    assert response.status_code == 403
    assert 'data-state="csrf_failed"' in html and "Reload the page with the form" in html
    assert "CSRF verification failed" not in html  # not Django's technical page
    assert 'class="site-header"' in html and "alice" in html  # the user's menu, logout button included
    assert 'href="/">Back to the dashboard' in html
    assert not ApiToken.objects.exists()
    # The page hands out a fresh token cookie, so submitting the reloaded form works.
    assert response.cookies[settings.CSRF_COOKIE_NAME].value


def test_a_stale_login_form_gets_the_csrf_page_for_visitors_too():
    client = Client(enforce_csrf_checks=True)
    response = client.post("/accounts/login/", {"username": "alice", "password": "x"})
    html = response.content.decode()
    assert response.status_code == 403 and 'data-state="csrf_failed"' in html
    assert 'href="/accounts/login/"' in html and "Log out" not in html


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


def test_a_request_for_another_host_gets_the_site_bad_request_page(client):
    # Django answers a Host outside ALLOWED_HOSTS through handler400, with no request context.
    response = client.get("/accounts/login/", HTTP_HOST="evil.example")
    html = response.content.decode()
    assert response.status_code == 400
    assert 'data-state="bad_request"' in html and "<title>Bad request · Make Us Rich</title>" in html
    assert 'class="site-header"' in html and 'href="/">Back to the dashboard' in html
    assert "evil.example" not in html  # nothing of the request is echoed


def test_an_api_bad_request_stays_json(client):
    response = client.get("/api/v1/assets/", HTTP_HOST="evil.example")
    assert response.status_code == 400 and response.json()["detail"].startswith("Bad request")


def test_the_server_error_page_keeps_its_title_in_the_shared_layout():
    html = get_resolver().resolve_error_handler(500)(RequestFactory().get("/")).content.decode()
    assert "<title>Server error · Make Us Rich</title>" in html and html.count("<main") == 1
