import logging
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from django.db import OperationalError, connections
from django.test import Client

ROOT = Path(__file__).resolve().parents[2]
LEAKY = 'connection to server at "db.internal" (10.0.0.5), port 5432 failed: password authentication failed for user "makeusrich"'


@pytest.mark.django_db
def test_healthz_says_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_reports_each_dependency(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json()["checks"] == {"database": "ok", "broker": "ok"}


@pytest.mark.django_db
def test_readyz_names_the_broker_when_it_is_down_and_logs_why(client, broker_down, caplog):
    with caplog.at_level(logging.WARNING, logger="makeusrich.health"):
        response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "checks": {"database": "ok", "broker": "unavailable"}}
    [record] = [record for record in caplog.records if record.name == "makeusrich.health"]
    assert record.levelno == logging.WARNING and "broker" in record.getMessage()
    assert record.exc_info is not None  # the operator gets the exception, the caller does not


@pytest.mark.django_db
def test_readyz_does_not_show_anonymous_callers_why_the_database_is_down(client, caplog, monkeypatch):
    def refuse(*args, **kwargs):
        raise OperationalError(LEAKY)

    with monkeypatch.context() as patch, caplog.at_level(logging.WARNING, logger="makeusrich.health"):
        patch.setattr(type(connections["default"]), "cursor", refuse)
        response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "checks": {"database": "unavailable", "broker": "ok"}}
    assert b"db.internal" not in response.content
    assert LEAKY in caplog.text


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probes_answer_head_and_refuse_writes_in_json(path):
    client = Client(enforce_csrf_checks=True)  # a load balancer sends no CSRF token
    assert client.head(path).status_code == 200
    response = client.post(path)
    assert response.status_code == 405 and response["Allow"] == "GET, HEAD"
    assert response.json() == {"detail": 'Method "POST" not allowed.'}


def _compose_probe() -> tuple[str, str]:
    """The Host header and path of the request compose's web healthcheck sends."""
    web = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["web"]
    url = re.search(r"http://[^'\"\s]+", " ".join(web["healthcheck"]["test"]))
    assert url, web["healthcheck"]
    parts = urlsplit(url.group(0))
    return parts.netloc, parts.path


@pytest.mark.django_db
def test_the_compose_healthcheck_passes_with_allowed_hosts_set_to_the_public_name(client, settings):
    settings.ALLOWED_HOSTS = ["rich.example.com"]  # as docs/OPERATIONS.md sets it
    host, path = _compose_probe()
    assert client.get(path, HTTP_HOST=host).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
@pytest.mark.parametrize("host", ["127.0.0.1:8000", "10.0.3.7", "localhost"])
def test_probes_answer_the_hosts_probers_send(client, settings, path, host):
    settings.ALLOWED_HOSTS = ["rich.example.com"]
    response = client.get(path, HTTP_HOST=host)
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


@pytest.mark.django_db
def test_every_other_path_still_refuses_a_host_outside_allowed_hosts(client, settings):
    settings.ALLOWED_HOSTS = ["rich.example.com"]
    assert client.get("/accounts/login/", HTTP_HOST="127.0.0.1:8000").status_code == 400
    assert client.get("/healthz/", HTTP_HOST="127.0.0.1:8000").status_code == 400
    assert client.get("/accounts/login/", HTTP_HOST="rich.example.com").status_code == 200


def _wsgi(method: str, path: str) -> tuple[str, dict[str, str], bytes]:
    """One request through the WSGI application itself, as gunicorn makes it (Django's test
    client would take a HEAD body out on its own)."""
    from wsgiref.util import setup_testing_defaults

    from makeusrich.wsgi import application

    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "HTTP_HOST": "127.0.0.1"}
    setup_testing_defaults(environ)
    answer = {}

    def start_response(status, headers, exc_info=None):
        answer.update(status=status, headers=dict(headers))

    body = b"".join(application(environ, start_response))
    return answer["status"], answer["headers"], body


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/healthz", "/accounts/login/"])
def test_a_head_answer_has_gets_headers_and_no_body(path):
    status, headers, body = _wsgi("GET", path)
    assert status.startswith("200") and body

    status, head_headers, head_body = _wsgi("HEAD", path)

    assert status.startswith("200") and head_body == b""
    assert head_headers["Content-Length"] == str(len(body))
