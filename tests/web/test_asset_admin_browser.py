"""The asset admin list in a real browser: the sync and last retrain columns stay readable at
desktop widths (not squeezed to a letter a line, not cut mid-word without an ellipsis), and the
full text is in the cell's title. Uses test_browser's chromium and page fixtures."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from markets.models import HOLES_ERROR_PREFIX, Asset
from tests.web import factories
from tests.web.test_browser import OUTPUT, browser, open_page  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

OUTCOME = (
    "warm retrain by manage.py train: v4 active: its 1 h skill +0.084 beats v3's +0.061 on the held-out "
    "test and its 80 % interval covers 79.5 %; the forecast from 2022-03-06 16:00 UTC is stored"
)
SYNC_ERROR = HOLES_ERROR_PREFIX + (
    "HTTPSConnectionPool(host='api.binance.com', port=443): Max retries exceeded with url: "
    "/api/v3/klines?symbol=BTCUSDT&interval=1h (Caused by NewConnectionError)"
)
CELL = """(column) => {
    const span = document.querySelector(`#result_list td.field-${column} span[title]`);
    const style = getComputedStyle(span);
    return {
        width: span.getBoundingClientRect().width,
        lines: Math.round(span.getBoundingClientRect().height / parseFloat(style.lineHeight)),
        cut: span.scrollWidth > span.clientWidth,
        ellipsis: style.textOverflow === "ellipsis" && style.whiteSpace === "nowrap",
        title: span.title,
        text: span.innerText,
    };
}"""


@pytest.mark.parametrize("width", [1280, 1440, 1920])
def test_the_sync_and_retrain_columns_stay_readable(live_server, open_page, btc, staff, width):  # noqa: F811
    Asset.objects.filter(pk=btc.pk).update(
        last_train_outcome=OUTCOME,
        last_train_outcome_at=datetime(2026, 11, 25, 7, 5, tzinfo=UTC),
        last_sync_error=SYNC_ERROR,
        last_synced_at=datetime(2026, 11, 25, 7, 1, tzinfo=UTC),
    )
    factories.candles_create(asset=btc, count=2, last=datetime(2026, 11, 25, 6, tzinfo=UTC))
    for symbol in ("ETHUSDT", "SOLUSDT"):  # shorter neighbours must not decide the width
        Asset.objects.create(symbol=symbol, base=symbol[:3], quote="USDT", last_sync_error="timed out")
    page, _ = open_page({"width": width, "height": 900})
    page.goto(f"{live_server.url}/admin/login/?next=/admin/markets/asset/")
    page.fill("#id_username", "root")
    page.fill("#id_password", "correct horse battery")
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/markets/asset/")
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUTPUT / f"admin-assets-{width}.png"), full_page=True)

    retrain, sync = page.evaluate(CELL, "last_retrain"), page.evaluate(CELL, "sync_status")

    assert retrain["title"] == OUTCOME and sync["title"] == SYNC_ERROR
    for cell in (retrain, sync):
        assert cell["width"] >= 190, cell  # a readable column, not a letter a line
        assert not cell["cut"] or cell["ellipsis"], cell  # cut text ends in "…"
    assert retrain["lines"] == 2, retrain  # the date, then the outcome
    assert retrain["text"].splitlines()[0] == "25 Nov 2026 07:05 UTC"
    assert retrain["text"].splitlines()[1].startswith("v4 promoted — warm retrain by manage.py train: ")
    assert sync["lines"] == 2, sync  # the same: the date, then the outcome
    assert sync["text"].splitlines()[0] == "25 Nov 2026 07:01 UTC"
    assert sync["text"].splitlines()[1].startswith("new candles OK, filling holes failed: ")
    # No column hidden past the scroll edge: at 1280 px the sync and retrain columns were.
    table, results = page.evaluate(
        "() => [document.querySelector('#result_list').scrollWidth,"
        " document.querySelector('.results').clientWidth]"
    )
    assert table <= results, (table, results)
