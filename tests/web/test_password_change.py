"""The site's password change page: /accounts/password_change/."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

pytestmark = pytest.mark.django_db

User = get_user_model()
OLD_PASSWORD = "correct horse battery"
NEW_PASSWORD = "plum-orchard-47-lantern"


def _change(client: Client, old: str, new1: str, new2: str):
    return client.post(
        "/accounts/password_change/",
        {"old_password": old, "new_password1": new1, "new_password2": new2},
    )


def test_it_sends_anonymous_visitors_to_the_login_page(client):
    response = client.get("/accounts/password_change/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/accounts/password_change/"


def test_it_shows_the_form_in_the_site_layout(client, member):
    client.force_login(member)
    page = client.get("/accounts/password_change/").content.decode()
    assert "<title>Change password" in page and 'class="site-header' in page
    assert 'name="old_password"' in page and 'name="new_password2"' in page


def test_the_header_and_the_tokens_page_link_to_it(client, member):
    client.force_login(member)
    assert 'href="/accounts/password_change/"' in client.get("/").content.decode()
    assert 'href="/accounts/password_change/"' in client.get("/account/tokens/").content.decode()


def test_it_changes_the_password_and_keeps_the_session(client, member):
    client.force_login(member)

    response = _change(client, OLD_PASSWORD, NEW_PASSWORD, NEW_PASSWORD)

    assert response.status_code == 302 and response["Location"] == "/accounts/password_change/done/"
    done = client.get(response["Location"])
    assert done.status_code == 200 and "Password changed" in done.content.decode()
    assert client.get("/").status_code == 200  # still logged in
    member.refresh_from_db()
    assert member.check_password(NEW_PASSWORD) and not member.check_password(OLD_PASSWORD)
    assert Client().login(username="alice", password=NEW_PASSWORD)
    assert not Client().login(username="alice", password=OLD_PASSWORD)


def test_it_logs_out_other_sessions_of_the_account(client, member):
    other = Client()
    other.force_login(member)
    client.force_login(member)

    _change(client, OLD_PASSWORD, NEW_PASSWORD, NEW_PASSWORD)

    assert other.get("/").status_code == 302


def test_it_refuses_a_wrong_old_password(client, member):
    client.force_login(member)

    response = _change(client, "wrong", NEW_PASSWORD, NEW_PASSWORD)

    assert response.status_code == 200
    assert "Your old password was entered incorrectly" in response.content.decode()
    member.refresh_from_db()
    assert member.check_password(OLD_PASSWORD)


def test_it_refuses_new_passwords_that_do_not_match(client, member):
    client.force_login(member)

    response = _change(client, OLD_PASSWORD, NEW_PASSWORD, NEW_PASSWORD + "x")

    assert response.status_code == 200
    assert "The two password fields didn’t match." in response.content.decode()
    member.refresh_from_db()
    assert member.check_password(OLD_PASSWORD)


def test_the_admin_keeps_its_own_password_change_page(client, staff):
    client.force_login(staff)
    page = client.get("/admin/password_change/").content.decode()
    assert 'id="site-name"' in page and 'class="site-header' not in page
