"""The OpenAPI schema describes the API, Swagger UI is served locally, and fuzzing finds no 5xx."""

import re
from pathlib import Path

import pytest
import schemathesis
import yaml
from django.contrib.staticfiles import finders
from drf_spectacular.validation import validate_schema
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.services import api_quota_set, api_token_create
from tests.api.conftest import HOUR, forecast_create

COUNTED = {
    ("get", "/api/v1/assets/"),
    ("get", "/api/v1/assets/{symbol}/"),
    ("get", "/api/v1/assets/{symbol}/candles/"),
    ("get", "/api/v1/assets/{symbol}/forecast/"),
    ("get", "/api/v1/assets/{symbol}/models/"),
    ("get", "/api/v1/assets/{symbol}/track-record/"),
}


@pytest.fixture
def schema(api) -> dict:
    response = api.get("/api/v1/schema/")
    assert response.status_code == 200
    return yaml.safe_load(response.content)


@pytest.mark.django_db
def test_the_schema_is_valid_openapi_3_with_the_token_scheme(schema):
    validate_schema(schema)
    assert schema["openapi"].startswith("3.")
    assert schema["components"]["securitySchemes"]["tokenAuth"] == {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": schema["components"]["securitySchemes"]["tokenAuth"]["description"],
    }
    assert "Token <key>" in schema["components"]["securitySchemes"]["tokenAuth"]["description"]


@pytest.mark.django_db
def test_the_retrain_operation_says_where_its_outcome_shows(schema):
    # There is no task-status endpoint: the docs must say what the returned task id is for.
    operation = schema["paths"]["/api/v1/assets/{symbol}/retrain/"]["post"]
    assert "worker's log" in operation["description"]
    assert "assets/{symbol}/models/" in operation["description"]
    assert "last retrain task" in operation["description"]
    api_md = (Path(__file__).resolve().parents[2] / "docs" / "API.md").read_text()
    assert "task_id" in api_md and "worker's" in api_md and "last retrain task" in api_md


@pytest.mark.django_db
def test_the_schema_lists_every_endpoint_of_the_table(schema):
    operations = {(method, path) for path, item in schema["paths"].items() for method in item}
    assert operations == COUNTED | {
        ("post", "/api/v1/auth/token/"),
        ("get", "/api/v1/usage/"),
        ("post", "/api/v1/assets/{symbol}/retrain/"),
    }


@pytest.mark.django_db
def test_the_schema_documents_every_error(schema):
    def codes(method: str, path: str) -> set[str]:
        return set(schema["paths"][path][method]["responses"])

    for method, path in COUNTED:
        assert {"200", "401", "429"} <= codes(method, path), path
        assert "Retry-After" in schema["paths"][path][method]["responses"]["429"]["headers"]
        if "{symbol}" in path:
            assert "404" in codes(method, path), path
    assert "400" in codes("get", "/api/v1/assets/{symbol}/candles/")
    assert "400" in codes("get", "/api/v1/assets/{symbol}/track-record/")
    assert "503" in codes("get", "/api/v1/assets/{symbol}/forecast/")
    assert codes("post", "/api/v1/assets/{symbol}/retrain/") >= {"202", "401", "403", "404"}
    assert codes("post", "/api/v1/auth/token/") == {"201", "400", "429"}
    assert codes("get", "/api/v1/usage/") == {"200", "401"}
    # Security is per operation (none at the top): the login needs no token.
    assert "security" not in schema and "security" not in schema["paths"]["/api/v1/auth/token/"]["post"]
    assert schema["paths"]["/api/v1/usage/"]["get"]["security"] == [{"tokenAuth": []}]
    candles = {p["name"]: p for p in schema["paths"]["/api/v1/assets/{symbol}/candles/"]["get"]["parameters"]}
    assert candles["limit"]["schema"]["minimum"] == 1 and candles["limit"]["schema"]["maximum"] == 1000
    assert candles["start"]["schema"]["format"] == "date-time"
    days = schema["paths"]["/api/v1/assets/{symbol}/track-record/"]["get"]["parameters"]
    days = next(p for p in days if p["name"] == "days")
    assert (days["schema"]["minimum"], days["schema"]["maximum"]) == (1, 90)


@pytest.mark.django_db
def test_the_schema_says_when_a_metric_is_null(schema):
    metrics = schema["components"]["schemas"]["Metrics"]["properties"]
    direction = metrics["direction_accuracy"]
    assert direction["items"].get("nullable") is True
    assert "no direction forecast: the model serves no change at this step" in direction["description"]


@pytest.mark.django_db
def test_the_schema_is_public_even_with_a_bad_token(api):
    api.credentials(HTTP_AUTHORIZATION="Token revoked")
    assert api.get("/api/v1/schema/").status_code == 200
    assert api.get("/api/v1/docs/").status_code == 200


@pytest.mark.django_db
def test_swagger_ui_uses_only_local_assets(api):
    response = api.get("/api/v1/docs/")

    assert response.status_code == 200
    html = response.content.decode()
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    assert len(urls) >= 4  # css, favicon, bundle, preset, init script
    for url in urls:
        assert url.startswith("/"), url
        assert not url.startswith("//"), url
        path = url.split("?")[0]
        if path.startswith("/static/"):
            assert finders.find(path.removeprefix("/static/")), f"{path} is not a local static file"
    assert "<script>" not in html  # the init script is a separate file, as the CSP wants
    assert "default-src 'self'" in response["Content-Security-Policy"]
    script = api.get(next(url for url in urls if "script" in url))
    assert script.status_code == 200 and "/api/v1/schema/" in script.content.decode()
    # Otherwise Swagger UI asks validator.swagger.io about the schema on any host but localhost.
    assert '"validatorUrl": null' in script.content.decode()


def test_a_400_body_is_described_with_its_field_errors(schema):
    error = schema["components"]["schemas"]["ValidationError"]
    assert error["required"] == ["detail"]
    assert error["additionalProperties"]["items"] == {"type": "string"}


@pytest.mark.django_db
def test_the_docs_page_leads_back_to_the_site(api):
    html = api.get("/api/v1/docs/").content.decode()
    header = html.split('<header class="docs-header">')[1].split("</header>")[0]
    assert '<a href="/" data-field="back-to-site">← Back to the dashboard</a>' in header
    assert '<a href="/account/tokens/">API tokens</a>' in header
    assert html.index("docs-header") < html.index('<div id="swagger-ui">')  # above Swagger UI


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.mark.django_db(transaction=True)
def test_fuzzing_the_live_schema_finds_no_server_error_and_no_undocumented_answer(
    live_server, member, market
):
    api_quota_set(user=member, monthly_limit=100_000)
    forecast = forecast_create(market["active"], market["last"] - 2 * HOUR)
    forecast.scores = [
        {
            "time": forecast.points[0]["time"],
            "actual": 101.0,
            "error": 1.0,
            "inside": True,
            "persistence_error": -1.0,
        },
        {"time": forecast.points[1]["time"], "actual": None},
    ]
    forecast.save()
    _, key = api_token_create(user=member, name="fuzz")
    # X-Forwarded-Proto: the session-wide live server may predate the package's http override.
    https = {"X-Forwarded-Proto": "https"}
    headers = {"Authorization": f"Token {key}", **https}
    loaded = schemathesis.openapi.from_url(f"{live_server.url}/api/v1/schema/?format=json", headers=https)
    operations = [result.ok() for result in loaded.get_all_operations()]
    assert len(operations) == 9
    seen: set[tuple[str, int]] = set()

    for operation in operations:
        # Valid and invalid inputs, for any symbol and for a real one.
        strategies = [
            operation.as_strategy(mode) for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        ]
        if "{symbol}" in operation.path:
            strategies += [
                operation.as_strategy(mode, path_parameters={"symbol": "btcusdt"})
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
            ]
        for strategy in strategies:

            @given(case=strategy)
            @settings(max_examples=15, deadline=None, database=None, suppress_health_check=list(HealthCheck))
            def fuzz(case):
                response = case.call_and_validate(base_url=live_server.url, headers=headers, checks=CHECKS)
                seen.add((case.operation.path, response.status_code))

            fuzz()

    # The fuzzing reached the real answers, not just 404s and 401s.
    codes = {code for _, code in seen}
    assert {200, 400, 403, 404} <= codes, sorted(seen)
    assert ("/api/v1/assets/{symbol}/forecast/", 200) in seen
    assert ("/api/v1/assets/{symbol}/track-record/", 200) in seen
    assert ("/api/v1/assets/{symbol}/candles/", 400) in seen
