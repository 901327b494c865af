"""The web interface in a real browser: Debian's chromium driven by Playwright against the live server.

Every page is watched: each request must go to the test server (Plotly's JS
included), and no page may log a console error, a CSP violation or an
uncaught exception. Screenshots land in test-output/ (desktop and phone).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from tests.web import factories

# Playwright's sync API runs an event loop in this thread; Django's ORM calls from the
# test body are still synchronous and safe here.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

from playwright.sync_api import Browser, Page, sync_playwright  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
OUTPUT = Path(__file__).resolve().parents[2] / "test-output"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
PASSWORD = "plum-orchard-47-lantern"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if executable is None:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail("chromium is missing: `bash bin/ensure-chromium` installs Debian's package")
        pytest.skip("chromium is missing: run `bash bin/ensure-chromium` (make test does)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Watch:
    """Everything a page did that a test may want to refuse."""

    def __init__(self, page: Page, allowed_host: str) -> None:
        self.allowed_host = allowed_host
        self.requests: list[str] = []
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))

    def _console(self, message) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)

    def assert_clean(self) -> None:
        foreign = [url for url in self.requests if urlsplit(url).netloc != self.allowed_host]
        assert not foreign, f"requests to other hosts: {foreign}"
        assert not self.console_errors, f"console errors: {self.console_errors}"
        assert not self.page_errors, f"uncaught errors: {self.page_errors}"


@pytest.fixture
def open_page(browser: Browser, live_server):
    """open_page(viewport) -> (page, watch); every page is checked clean at teardown."""
    contexts = []
    watches = []

    def _open(viewport: dict = DESKTOP, **options) -> tuple[Page, Watch]:
        context = browser.new_context(viewport=viewport, **options)
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        watch = Watch(page, urlsplit(live_server.url).netloc)
        watches.append(watch)
        return page, watch

    yield _open
    for context in contexts:
        context.close()
    for watch in watches:
        watch.assert_clean()


# How far the page is wider than the layout viewport. Not window.innerWidth: a mobile browser
# (is_mobile) zooms out to fit a page that is too wide, and innerWidth grows with it.
_OVERFLOW = "document.documentElement.scrollWidth - document.documentElement.clientWidth"


def _shot(page: Page, name: str) -> None:
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUTPUT / f"{name}.png"), full_page=True)


def _log_in(page: Page, base: str, username: str, password: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("form.stacked button[type=submit]")
    page.wait_for_url(f"{base}/")


def _wait_for_chart(page: Page, element_id: str) -> list[dict]:
    page.wait_for_selector(f"#{element_id}[data-rendered=true] .main-svg")
    return page.evaluate(
        """id => document.getElementById(id).data.map(trace => ({
            type: trace.type, name: trace.name, points: (trace.x || []).length}))""",
        element_id,
    )


# The y range of the price chart, and the lowest and highest price drawn in its x range.
_VISIBLE_PRICES = """() => {
    const el = document.getElementById('price-chart');
    const xaxis = el._fullLayout.xaxis;
    const [from, to] = xaxis.range.map(value => xaxis.r2l(value));
    let low = Infinity, high = -Infinity;
    for (const trace of el.data) {
        const candle = trace.type === 'candlestick';
        trace.x.forEach((x, i) => {
            const at = xaxis.d2l(x);
            if (at < from || at > to) return;
            low = Math.min(low, candle ? trace.low[i] : trace.y[i]);
            high = Math.max(high, candle ? trace.high[i] : trace.y[i]);
        });
    }
    return {range: el._fullLayout.yaxis.range.slice(), low, high};
}"""


def test_a_visitor_signs_up_reads_the_forecast_manages_a_token_and_logs_out(live_server, open_page, btc):
    factories.market_create(asset=btc)
    base = live_server.url
    page, watch = open_page(permissions=["clipboard-read", "clipboard-write"])

    # Anonymous visitors land on the login page; from there, sign up.
    page.goto(f"{base}/")
    assert urlsplit(page.url).path == "/accounts/login/"
    page.click("text=Sign up")
    page.fill("#id_username", "bob")
    page.fill("#id_password1", PASSWORD)
    page.fill("#id_password2", PASSWORD)
    page.click("form.stacked button[type=submit]")
    page.wait_for_url(f"{base}/")

    card = page.locator("article[data-symbol=BTCUSDT]")
    assert card.locator("[data-field=last-price]").inner_text()
    assert "12 % lower error than assuming no change" in card.inner_text()
    assert "worse than assuming no change" in card.inner_text()
    assert "80 % likely between" in card.locator("[data-field=next-hour]").inner_text()
    _shot(page, "dashboard-desktop")

    # The asset page draws the candlestick with the forecast and its band.
    card.locator("h2 a").click()
    page.wait_for_url(f"{base}/assets/BTCUSDT/")
    traces = _wait_for_chart(page, "price-chart")
    by_name = {trace["name"]: trace for trace in traces}
    assert by_name["BTC/USDT"] == {"type": "candlestick", "name": "BTC/USDT", "points": 120}
    assert by_name["Forecast"]["points"] == 25  # the last close, then 24 hours ahead
    assert by_name["80 % interval"]["type"] == "scatter"
    assert {trace["name"] for trace in _wait_for_chart(page, "track-chart")} >= {
        "What happened",
        "Model error",
    }
    assert [trace["name"] for trace in _wait_for_chart(page, "loss-chart")] == [
        "Training loss",
        "Validation loss",
    ]
    # The range buttons are there and change the visible range.
    full_y = page.evaluate("() => document.getElementById('price-chart')._fullLayout.yaxis.range.slice()")
    page.click(".rangeselector .button >> text=1 day")
    page.wait_for_function(
        """() => { const r = document.getElementById('price-chart').layout.xaxis.range;
                   return r && (new Date(r[1]) - new Date(r[0])) <= 49 * 3600 * 1000; }"""
    )
    # The day is a day of candles: none of it is spent on empty axis after the forecast.
    candles_shown = page.evaluate(
        """() => { const el = document.getElementById('price-chart'), r = el.layout.xaxis.range;
                   const from = new Date(r[0]), to = new Date(r[1]);
                   return el.data[0].x.filter(x => new Date(x) >= from && new Date(x) <= to).length; }"""
    )
    assert candles_shown == 24
    # ...and the price axis follows (static/js/app.js): it fits what that day shows, no more.
    page.wait_for_function("() => document.getElementById('price-chart').layout.yaxis.autorange === false")
    fit = page.evaluate(_VISIBLE_PRICES)
    assert fit["range"][0] <= fit["low"] and fit["range"][1] >= fit["high"]
    assert fit["range"][1] - fit["range"][0] <= (fit["high"] - fit["low"]) * 1.2
    assert fit["range"][1] - fit["range"][0] < (full_y[1] - full_y[0]) * 0.9
    page.click(".rangeselector .button >> text=All")
    page.wait_for_function("() => document.getElementById('price-chart').layout.yaxis.autorange === true")
    _shot(page, "asset-desktop")

    # A token: shown once with a copy button, it opens the API, and revoking it closes it.
    page.click("text=API tokens")
    page.fill("#id_name", "laptop script")
    page.click("text=Create token")
    key = page.inner_text("#token-key").strip()
    assert key.startswith("mur_")
    assert key in page.inner_text("#curl-example")
    page.click("[data-copy-target=token-key]")
    page.wait_for_selector("[data-copy-target=token-key]:text('Copied')")
    assert page.evaluate("navigator.clipboard.readText()") == key

    api = requests.get(f"{base}/api/v1/assets/", headers={"Authorization": f"Token {key}"}, timeout=10)
    assert api.status_code == 200, api.text
    assert [asset["symbol"] for asset in api.json()] == ["BTCUSDT"]

    page.goto(f"{base}/account/tokens/")
    assert "1 of" in page.inner_text("#usage-count")
    assert page.get_attribute("#usage-bar", "value") == "1"
    assert "laptop script" in page.inner_text("#token-table")
    assert key not in page.content()  # shown once only
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#token-table >> text=Revoke")
    page.wait_for_selector("text=Token revoked")
    assert page.locator("#token-table").count() == 0
    api = requests.get(f"{base}/api/v1/assets/", headers={"Authorization": f"Token {key}"}, timeout=10)
    assert api.status_code == 401

    # Log out (a POST from the header), then the dashboard asks for a login again.
    page.click("header >> text=Log out")
    page.wait_for_url(f"{base}/accounts/login/")
    page.goto(f"{base}/")
    assert urlsplit(page.url).path == "/accounts/login/"
    watch.assert_clean()
    assert any(url.endswith("/static/vendor/plotly/plotly.min.js") for url in watch.requests)


def test_pages_fit_a_phone_and_charts_follow_the_window_size(live_server, open_page, btc, member):
    factories.market_create(asset=btc)
    base = live_server.url
    page, _ = open_page(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    _log_in(page, base, "alice", "correct horse battery")
    overflow = _OVERFLOW
    assert page.evaluate(overflow) <= 0
    _shot(page, "dashboard-phone")

    page.goto(f"{base}/assets/BTCUSDT/")
    _wait_for_chart(page, "price-chart")
    assert page.evaluate(overflow) <= 0
    width = page.evaluate("document.getElementById('price-chart')._fullLayout.width")
    assert width <= PHONE["width"]
    # Every forecast hour fits without scrolling sideways: its last column is not clipped.
    page.click("summary >> text=Every forecast hour")
    wrap = page.locator("#forecast-table").locator("xpath=..")
    assert wrap.evaluate("el => el.scrollWidth - el.clientWidth") <= 0
    _shot(page, "asset-phone")

    # Responsive config: a wider window gives a wider chart without reloading.
    page.set_viewport_size(DESKTOP)
    page.wait_for_function(
        "w => document.getElementById('price-chart')._fullLayout.width > w + 300", arg=width
    )


def _box(page: Page, selector: str) -> dict:
    box = page.locator(selector).bounding_box()
    assert box is not None, f"{selector} is not displayed"
    return box


def test_the_dashboard_cards_keep_their_figures_readable_at_every_width(live_server, open_page, btc, member):
    from markets.models import Asset

    factories.market_create(asset=btc)
    factories.market_create(asset=Asset.objects.create(symbol="ETHUSDT", base="ETH", quote="USDT"))
    page, _ = open_page(viewport={"width": 1600, "height": 900})
    _log_in(page, live_server.url, "alice", "correct horse battery")
    card = "article[data-symbol=BTCUSDT]"
    next_hour, horizon_end = f"{card} [data-field=next-hour]", f"{card} [data-field=horizon-end]"

    # Wide: two cards to a row, and in each the next hour and the horizon's end side by side,
    # each price on one line with its change (not one number per line).
    assert _box(page, card)["y"] == _box(page, "article[data-symbol=ETHUSDT]")["y"]
    assert _box(page, next_hour)["y"] == _box(page, horizon_end)["y"]
    assert _box(page, horizon_end)["x"] > _box(page, next_hour)["x"] + _box(page, next_hour)["width"]
    for figure in (next_hour, horizon_end):
        price, change = _box(page, f"{figure} strong"), _box(page, f"{figure} strong + span")
        assert change["y"] == price["y"] and change["x"] > price["x"]
    line = _box(page, f"{next_hour} strong")["height"]
    assert _box(page, f"{next_hour} span.muted")["height"] < 3 * line  # at most two lines
    _shot(page, "dashboard-wide")

    # A phone: one card to a row and the figures stacked, each price still beside its change.
    page.set_viewport_size(PHONE)
    page.wait_for_function("() => window.innerWidth === 390")
    assert page.evaluate(_OVERFLOW) <= 0
    assert (
        _box(page, "article[data-symbol=ETHUSDT]")["y"] > _box(page, card)["y"] + _box(page, card)["height"]
    )
    assert _box(page, horizon_end)["y"] > _box(page, next_hour)["y"] + _box(page, next_hour)["height"]
    price, change = _box(page, f"{next_hour} strong"), _box(page, f"{next_hour} strong + span")
    assert change["y"] == price["y"]
    _shot(page, "dashboard-narrow")


def test_the_api_docs_render_offline_and_lead_back_to_the_dashboard(live_server, open_page, member):
    page, watch = open_page()  # the fixture refuses requests to other hosts and console errors
    _log_in(page, live_server.url, "alice", "correct horse battery")
    page.click("header >> text=API docs")
    page.wait_for_url("**/api/v1/docs/")
    page.wait_for_selector(".swagger-ui .opblock-tag >> text=assets")
    assert page.inner_text(".swagger-ui .info .title").startswith("Make Us Rich API")
    _shot(page, "api-docs")
    page.click("[data-field=back-to-site]")
    page.wait_for_url(f"{live_server.url}/")
    assert page.inner_text("h1") == "Dashboard"
    assert any("/static/drf_spectacular_sidecar/" in url for url in watch.requests)


def test_the_not_found_page_keeps_the_sites_menu_working(live_server, open_page, member):
    page, watch = open_page(viewport=PHONE)
    base = live_server.url
    _log_in(page, base, "alice", "correct horse battery")
    missing = f"{base}/assets/NOPEUSDT/"
    assert page.goto(missing).status == 404
    assert page.inner_text("h1") == "Page not found"
    assert page.evaluate(_OVERFLOW) <= 0
    _shot(page, "not-found-phone")
    page.click(".site-header >> text=API tokens")
    page.wait_for_url(f"{base}/account/tokens/")
    page.goto(missing)
    page.click("text=Back to the dashboard")
    page.wait_for_url(f"{base}/")
    page.goto(missing)
    page.click(".site-header >> text=Log out")  # a POST: the 404 page carries a CSRF token too
    page.wait_for_url(f"{base}/accounts/login/")
    # Chromium logs each 404 document as a failed resource; nothing else may show up.
    assert set(watch.console_errors) == {
        "Failed to load resource: the server responded with a status of 404 (Not Found)"
    }
    watch.console_errors.clear()


def test_a_wrong_password_is_refused_in_plain_words(live_server, open_page, member):
    page, _ = open_page()
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", "not the password")
    page.click("form.stacked button[type=submit]")
    assert "enter a correct username and password" in page.inner_text(".errorlist")
    assert urlsplit(page.url).path == "/accounts/login/"


def test_an_asset_without_a_model_says_training_is_in_progress(live_server, open_page, btc, member):
    from forecasting.models import ModelVersion

    factories.candles_create(asset=btc, count=150, last=factories.last_full_hour())
    factories.version_create(asset=btc, version=1, status=ModelVersion.Status.TRAINING)
    factories.lease_hold(asset=btc)  # a worker is training it
    page, _ = open_page()
    _log_in(page, live_server.url, "alice", "correct horse battery")
    assert "training in progress" in page.inner_text("article[data-symbol=BTCUSDT]")
    page.goto(f"{live_server.url}/assets/BTCUSDT/")
    traces = _wait_for_chart(page, "price-chart")
    assert [trace["type"] for trace in traces] == ["candlestick", "scatter"]  # no forecast drawn
    assert "training in progress" in page.inner_text("[data-state=training]")


def test_staff_rolls_back_to_an_older_version_from_the_admin(
    live_server, open_page, btc, staff, settings, tmp_path
):
    from forecasting.artifacts import artifact_write
    from forecasting.models import ModelVersion

    settings.STORAGES = {
        **settings.STORAGES,
        "artifacts": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path)},
        },
    }
    market = factories.market_create(asset=btc)
    name, sha256 = artifact_write(name="BTCUSDT/v3.onnx", content=b"onnx bytes")
    older = factories.version_create(
        asset=btc, version=3, status=ModelVersion.Status.VALIDATED, artifact_name=name, artifact_sha256=sha256
    )
    page, _ = open_page()
    page.goto(f"{live_server.url}/admin/login/?next=/admin/forecasting/modelversion/")
    page.fill("#id_username", "root")
    page.fill("#id_password", "correct horse battery")
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/forecasting/modelversion/")
    page.check(f"input[name=_selected_action][value='{older.pk}']")
    page.select_option("select[name=action]", "activate")
    page.click("button[name=index]")
    page.wait_for_selector("text=BTCUSDT v3 is now active, and pinned")
    older.refresh_from_db()
    market.version.refresh_from_db()
    assert older.status == ModelVersion.Status.ACTIVE
    assert market.version.status == ModelVersion.Status.VALIDATED


def test_the_periodic_task_form_translates_the_crontab_without_breaking_the_csp(
    live_server, open_page, staff
):
    from django_celery_beat.models import CrontabSchedule

    hourly = CrontabSchedule.objects.create(minute="1", hour="*")
    page, _ = open_page()  # the fixture refuses console errors, CSP violations included
    page.goto(f"{live_server.url}/admin/login/?next=/admin/django_celery_beat/periodictask/add/")
    page.fill("#id_username", "root")
    page.fill("#id_password", "correct horse battery")
    page.click("input[type=submit]")
    page.wait_for_url("**/periodictask/add/")
    page.select_option("#id_crontab", str(hourly.pk))
    help_text = page.locator(".field-crontab .help")
    help_text.filter(has_text="Translation:").wait_for()
    assert "Translation: At 1 minutes past the hour UTC" in help_text.inner_text()


def test_on_a_phone_the_asset_header_keeps_its_date_on_one_line(live_server, open_page, btc, member):
    factories.market_create(asset=btc)
    page, _ = open_page(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    _log_in(page, live_server.url, "alice", "correct horse battery")
    page.goto(f"{live_server.url}/assets/BTCUSDT/")
    # One box per line the element spans: a date broken across lines ("29 / Jan 2022") has two.
    lines = page.locator("[data-field=price-time]").evaluate("el => el.getClientRects().length")
    assert lines == 1
    assert page.evaluate(_OVERFLOW) <= 0


# Each line of each x tick label of a chart (Plotly writes a second line as a <tspan>).
_TICK_LINES = """id => Array.from(document.querySelectorAll(`#${id} .xtick text, #${id} .x2tick text`)).map(text => {
    const lines = Array.from(text.querySelectorAll('tspan.line')).map(line => line.textContent);
    return lines.length ? lines : [text.textContent];
})"""
# Pixels between the bottom of a chart's lowest x tick labels and the top of its x axis title.
_TITLE_GAP = """id => {
    const chart = document.getElementById(id);
    const ticks = Array.from(chart.querySelectorAll('.xtick text, .x2tick text'));
    const bottom = Math.max(...ticks.map(text => text.getBoundingClientRect().bottom));
    const title = chart.querySelector('.g-xtitle text, .g-x2title text');
    return title.getBoundingClientRect().top - bottom;
}"""
# A tick line as the site writes dates: "17:00", "6 Mar 2022", "6 Mar", "Mar" or "2022".
_SITE_TICK = re.compile(r"\d\d:\d\d|\d{1,2} [A-Z][a-z]{2}( \d{4})?|[A-Z][a-z]{2}|\d{4}")


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_chart_axes_write_dates_as_the_pages_do(live_server, open_page, btc, member, viewport):
    factories.market_create(asset=btc)
    page, _ = open_page(viewport=viewport)
    _log_in(page, live_server.url, "alice", "correct horse battery")
    page.goto(f"{live_server.url}/assets/BTCUSDT/")
    for chart in ("price-chart", "track-chart"):
        _wait_for_chart(page, chart)
        labels = page.evaluate(_TICK_LINES, chart)
        assert labels and all(_SITE_TICK.fullmatch(line) for label in labels for line in label), labels
        assert re.search(r"\d{4}$", labels[0][-1]), labels  # the year, once, under the first tick
        # Two-line labels leave room for the axis title below them.
        gap = page.evaluate(_TITLE_GAP, chart)
        assert gap >= 0, f"{chart}: the axis title overlaps the tick labels by {-gap:.0f} px"
    # Zoomed to a day: hours on every tick, the date under the first one and each midnight.
    page.click(".rangeselector .button >> text=1 day")
    page.wait_for_function(
        """() => Array.from(document.querySelectorAll('#price-chart .xtick text'))
                      .every(text => /^\\d\\d:\\d\\d/.test(text.textContent))"""
    )
    labels = page.evaluate(_TICK_LINES, "price-chart")
    assert re.fullmatch(r"\d{1,2} [A-Z][a-z]{2} \d{4}", labels[0][1]), labels
    assert all(len(label) == 1 or label[0] == "00:00" for label in labels[1:]), labels


def test_on_a_phone_the_tokens_page_keeps_the_quota_reset_date_on_one_line(live_server, open_page, member):
    page, _ = open_page(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    _log_in(page, live_server.url, "alice", "correct horse battery")
    page.goto(f"{live_server.url}/account/tokens/")
    # "resets 1 Dec 2026" broke after the day ("1 / Dec 2026") at 390 px.
    assert page.locator("#usage-title + p .date").evaluate("el => el.getClientRects().length") == 1
    assert page.evaluate(_OVERFLOW) <= 0


def test_on_a_phone_an_operators_long_error_text_wraps_instead_of_widening_the_page(
    live_server, open_page, btc, staff
):
    from forecasting.models import ModelVersion

    factories.market_create(asset=btc)
    url = "/api/v3/klines?symbol=BTCUSDT&interval=1h&startTime=1700000000000&endTime=1700003600000&limit=1000"
    btc.last_sync_error = (
        f"ConnectionError: HTTPSConnectionPool(host='api.binance.com', port=443): url: {url}"
    )
    btc.save(update_fields=["last_sync_error"])
    ModelVersion.objects.filter(asset=btc, version=1).update(reason=f"artifact not found: s3://bucket{url}")
    page, _ = open_page(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    _log_in(page, live_server.url, "root", "correct horse battery")
    # Staff read the whole text (members get a plain line); it used to push the page to 880 px.
    for path in ("/", "/assets/BTCUSDT/"):
        page.goto(f"{live_server.url}{path}")
        assert "startTime=1700000000000" in page.inner_text("[data-state=stale]").replace("\n", "")
        assert page.evaluate(_OVERFLOW) <= 0, path
