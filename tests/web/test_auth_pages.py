"""Sign up, log in, log out, and the pages that need a login."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

pytestmark = pytest.mark.django_db

User = get_user_model()
GOOD_PASSWORD = "plum-orchard-47-lantern"


def test_signup_creates_the_account_logs_in_and_opens_the_dashboard(client):
    response = client.post(
        "/accounts/signup/", {"username": "carol", "password1": GOOD_PASSWORD, "password2": GOOD_PASSWORD}
    )
    assert response.status_code == 302 and response["Location"] == "/"
    assert User.objects.get(username="carol").check_password(GOOD_PASSWORD)
    page = client.get("/")
    assert page.status_code == 200
    assert "Welcome, carol" in page.content.decode()


@pytest.mark.parametrize(
    ("password1", "password2", "message"),
    [
        ("password", "password", "This password is too common."),
        ("84729163", "84729163", "This password is entirely numeric."),
        ("short1!", "short1!", "This password is too short."),
        (GOOD_PASSWORD, GOOD_PASSWORD + "x", "The two password fields didn’t match."),
    ],
)
def test_signup_refuses_a_bad_password_saying_why_and_creates_nobody(client, password1, password2, message):
    response = client.post(
        "/accounts/signup/", {"username": "carol", "password1": password1, "password2": password2}
    )
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not User.objects.filter(username="carol").exists()


def test_signup_refuses_a_taken_username(client, member):
    response = client.post(
        "/accounts/signup/", {"username": "alice", "password1": GOOD_PASSWORD, "password2": GOOD_PASSWORD}
    )
    assert "A user with that username already exists." in response.content.decode()
    assert User.objects.filter(username="alice").count() == 1


def test_login_opens_the_page_it_was_sent_from(client, member):
    response = client.post(
        "/accounts/login/?next=/account/tokens/",
        {"username": "alice", "password": "correct horse battery", "next": "/account/tokens/"},
    )
    assert response.status_code == 302 and response["Location"] == "/account/tokens/"


def test_login_with_a_wrong_password_says_so_and_stays_logged_out(client, member):
    response = client.post("/accounts/login/", {"username": "alice", "password": "wrong"})
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()
    assert client.get("/").status_code == 302


def test_a_logged_in_user_is_sent_from_the_login_and_signup_pages_to_the_dashboard(client, member):
    client.force_login(member)
    assert client.get("/accounts/login/")["Location"] == "/"
    assert client.get("/accounts/signup/")["Location"] == "/"


def test_logout_needs_a_post_and_then_ends_the_session(client, member):
    client.force_login(member)
    assert client.get("/accounts/logout/").status_code == 200
    assert client.get("/").status_code == 200
    response = client.post("/accounts/logout/")
    assert response.status_code == 302 and response["Location"] == "/accounts/login/"
    assert client.get("/").status_code == 302


@pytest.mark.parametrize("path", ["/", "/assets/BTCUSDT/", "/account/tokens/"])
def test_pages_send_anonymous_visitors_to_the_login_page(client, btc, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={path}"


def test_forms_refuse_a_post_without_the_csrf_token(member):
    strict = Client(enforce_csrf_checks=True)
    assert (
        strict.post(
            "/accounts/login/", {"username": "alice", "password": "correct horse battery"}
        ).status_code
        == 403
    )
    strict.force_login(member)
    assert strict.post("/account/tokens/", {"name": "script"}).status_code == 403
    assert not member.api_tokens.exists()


def test_the_header_shows_the_admin_link_to_staff_only(client, member, staff):
    client.force_login(member)
    assert "/admin/" not in client.get("/").content.decode()
    client.force_login(staff)
    assert 'href="/admin/"' in client.get("/").content.decode()


def test_logout_by_its_address_offers_the_button_in_the_site_layout_and_logs_nobody_out(member):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(member)

    response = strict.get("/accounts/logout/")

    page = response.content.decode()
    assert response.status_code == 200
    assert "<title>Log out" in page and 'class="site-header' in page
    assert re.search(
        r'<form method="post" action="/accounts/logout/"[^>]*>\s*<input type="hidden" name="csrfmiddlewaretoken"',
        page,
    )
    assert "You are logged in as <strong>alice</strong>" in page
    assert strict.get("/").status_code == 200, "a GET logs nobody out"
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    assert strict.post("/accounts/logout/", {"csrfmiddlewaretoken": token}).status_code == 302
    assert strict.get("/").status_code == 302


def test_logout_by_its_address_sends_an_anonymous_visitor_to_the_login_page(client):
    response = client.get("/accounts/logout/")
    assert response.status_code == 302 and response["Location"] == "/accounts/login/"


def test_logout_says_so_on_the_login_page(client, member):
    client.force_login(member)
    response = client.post("/accounts/logout/", follow=True)
    assert response.redirect_chain == [("/accounts/login/", 302)]
    assert "You have been logged out." in response.content.decode()


def test_the_navigation_links_the_api_docs(client, member):
    client.force_login(member)
    assert '<a href="/api/v1/docs/">API docs</a>' in client.get("/").content.decode()
    assert 'href="/api/v1/docs/">API documentation</a>' in client.get("/account/tokens/").content.decode()


@pytest.mark.parametrize(
    ("path", "data"),
    [("/accounts/signup/", {"username": "", "password1": "", "password2": ""}), ("/accounts/login/", {})],
)
def test_every_id_a_field_is_described_by_is_on_the_page(client, path, data):
    """Screen readers announce an error with its field through aria-describedby: each id it
    names must exist, or the error is never read out."""
    html = client.post(path, data).content.decode()

    described = re.findall(r'aria-describedby="([^"]+)"', html)
    assert described  # the fields with errors say where their errors are
    for ids in described:
        for name in ids.split():
            assert f'id="{name}"' in html, name


def test_the_login_page_says_what_to_do_about_a_forgotten_password(client):
    html = client.get("/accounts/login/").content.decode()
    assert "Forgot your password? Ask an operator of this site" in html
