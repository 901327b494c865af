"""The tokens page and the admin's user page in a real browser: a token with the longest name the
form and the API allow (100 characters, no space to break at) must not make either page wider than
the screen. Uses test_browser's chromium and page fixtures."""

from __future__ import annotations

import pytest

from accounts.services import api_token_create
from tests.web.test_browser import _OVERFLOW, DESKTOP, OUTPUT, PHONE, browser, open_page  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LONG_NAME = "deployment-" + "x" * 89  # the model's max_length
PHONE_OPTIONS = {"is_mobile": True, "has_touch": True, "device_scale_factor": 2}


def _open(open_page, viewport: dict):  # noqa: F811
    options = PHONE_OPTIONS if viewport == PHONE else {}
    page, _ = open_page(viewport, **options)
    return page


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["390", "1280"])
def test_a_long_token_name_keeps_the_tokens_page_within_the_screen(
    live_server,
    open_page,  # noqa: F811
    member,
    viewport,
):
    assert len(LONG_NAME) == 100
    api_token_create(user=member, name=LONG_NAME)
    page = _open(open_page, viewport)
    page.goto(f"{live_server.url}/accounts/login/?next=/account/tokens/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", "correct horse battery")
    page.click("form.stacked button[type=submit]")
    page.wait_for_url("**/account/tokens/")
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUTPUT / f"tokens-long-name-{viewport['width']}.png"), full_page=True)

    assert page.evaluate(_OVERFLOW) <= 0
    assert page.evaluate("document.documentElement.clientWidth") == viewport["width"]
    # Every cell of the row is on the screen, the revoke button included, and none is cut.
    row = page.locator("#token-table tbody tr").first
    for cell in row.locator("td").all():
        box = cell.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"], box
        assert cell.evaluate("el => el.scrollWidth - el.clientWidth") <= 0
    assert LONG_NAME in row.locator("td[data-label=Name]").inner_text().replace("\n", "")


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["390", "1280"])
def test_a_long_token_name_keeps_the_admin_user_page_within_the_screen(
    live_server,
    open_page,  # noqa: F811
    staff,
    member,
    viewport,
):
    api_token_create(user=member, name=LONG_NAME)
    page = _open(open_page, viewport)
    page.goto(f"{live_server.url}/admin/login/?next=/admin/auth/user/{member.pk}/change/")
    page.fill("#id_username", "root")
    page.fill("#id_password", "correct horse battery")
    page.click("input[type=submit]")
    page.wait_for_url(f"**/admin/auth/user/{member.pk}/change/")
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUTPUT / f"admin-user-long-token-{viewport['width']}.png"), full_page=True)

    assert page.evaluate(_OVERFLOW) <= 0
    name = page.locator("td.field-name_shown span[title]")
    assert name.get_attribute("title") == LONG_NAME
    assert name.inner_text() == LONG_NAME[:39] + "…"
