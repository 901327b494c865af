"""Whatever goes wrong under /api/v1/ is answered in JSON: wrong methods, unknown paths, unreadable bodies."""

import json

import pytest
from django.test import Client, RequestFactory

from makeusrich.api_errors import server_error

pytestmark = pytest.mark.django_db


@pytest.fixture
def browserless() -> Client:
    # CSRF checks on, as for a real client: Django's test client skips them by default.
    return Client(enforce_csrf_checks=True)


def _detail(response) -> str:
    assert response["Content-Type"] == "application/json"
    return json.loads(response.content)["detail"]


@pytest.mark.parametrize("path", ["/api/v1/schema/", "/api/v1/docs/"])
@pytest.mark.parametrize("method", ["options", "post", "put", "delete"])
def test_the_schema_and_docs_answer_other_methods_with_a_json_405(browserless, path, method):
    response = getattr(browserless, method)(path)

    assert response.status_code == 405 and response["Allow"] == "GET, HEAD"
    assert _detail(response) == f'Method "{method.upper()}" not allowed.'


@pytest.mark.parametrize(
    ("method", "path", "detail"),
    [
        ("post", "/api/v1/auth/token", "No API endpoint at /api/v1/auth/token (API paths end with a slash)"),
        ("delete", "/api/v1/nothing/", "No API endpoint at /api/v1/nothing/;"),
        ("get", "/api/v1/", "No API endpoint at /api/v1/;"),
    ],
)
def test_an_unknown_api_path_is_a_json_404_whatever_the_method(browserless, method, path, detail):
    response = getattr(browserless, method)(path)

    assert response.status_code == 404
    assert _detail(response).startswith(detail)


@pytest.mark.parametrize("path", ["/api/", "/api/v2/assets/", "/api/v0"])
def test_a_path_under_api_outside_v1_is_a_json_404_saying_where_the_api_is(browserless, path):
    response = browserless.get(path, follow=True)

    assert response.status_code == 404
    assert _detail(response) == "No API here: the API is under /api/v1/ (see /api/v1/docs/)."


def test_other_unknown_paths_still_get_the_site_404_page(browserless):
    response = browserless.get("/nothing/here/")
    assert response.status_code == 404 and response["Content-Type"].startswith("text/html")


def test_a_body_too_large_to_read_is_a_json_400(browserless, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = json.dumps({"username": "alice", "password": "x" * 2000})

    response = browserless.post("/api/v1/auth/token/", body, content_type="application/json")

    assert response.status_code == 400
    assert _detail(response).startswith("Bad request:")


def test_a_server_error_under_the_api_is_json_and_elsewhere_the_page(settings):
    api = server_error(RequestFactory().get("/api/v1/assets/"))
    assert api.status_code == 500 and _detail(api).startswith("Internal server error")

    page = server_error(RequestFactory().get("/assets/BTCUSDT/"))
    assert page.status_code == 500 and page["Content-Type"].startswith("text/html")
