"""The admin is for staff only: members are sent to the admin's login, whatever they ask for."""

import pytest

pytestmark = pytest.mark.django_db

ADMIN_PAGES = [
    "/admin/",
    "/admin/markets/asset/",
    "/admin/forecasting/modelversion/",
    "/admin/auth/user/",
    "/admin/django_celery_beat/periodictask/",
]


@pytest.mark.parametrize("path", ADMIN_PAGES)
def test_members_are_refused_every_admin_page(client, member, path):
    client.force_login(member)
    response = client.get(path)
    assert response.status_code == 302
    assert response.url.startswith("/admin/login/")


@pytest.mark.parametrize("path", ADMIN_PAGES)
def test_staff_can_open_every_admin_page(client, staff, path):
    client.force_login(staff)
    assert client.get(path).status_code == 200


def test_a_member_cannot_run_an_admin_action(client, member, btc):
    client.force_login(member)
    response = client.post("/admin/markets/asset/", {"action": "deactivate", "_selected_action": [btc.pk]})
    assert response.status_code == 302 and response.url.startswith("/admin/login/")
    btc.refresh_from_db()
    assert btc.is_active
