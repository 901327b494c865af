"""gunicorn's access log masks keys sent in URLs (makeusrich.gunicorn_logging)."""

from __future__ import annotations

import datetime as dt
import json
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from gunicorn.config import Config
from gunicorn.glogging import Logger
from gunicorn.util import load_class

from makeusrich.gunicorn_logging import SecretMaskingLogger, query_mask

ROOT = Path(__file__).resolve().parents[2]
LOGGER = "makeusrich.gunicorn_logging.SecretMaskingLogger"
KEY = "mur_k3y1sSecret"

# The smallest WSGI application: the test is about gunicorn's log, not Django.
APP = """
def application(environ, start_response):
    start_response("401 Unauthorized", [("Content-Type", "text/plain"), ("Set-Cookie", "sessionid=s3ss")])
    return [b"no"]
"""


@pytest.mark.parametrize(
    ("query", "logged"),
    [
        (f"token={KEY}&limit=5", "token=***&limit=5"),
        (f"key={KEY}", "key=***"),
        (f"days=7&auth_token={KEY}", "days=7&auth_token=***"),
        (f"API_KEY={KEY};x=1", "API_KEY=***;x=1"),
        (f"password={KEY}&client_secret={KEY}&apikey={KEY}", "password=***&client_secret=***&apikey=***"),
        (f"%74oken={KEY}", "%74oken=***"),  # what the application reads as "token"
        ("limit=5&start=2022-03-01T00:00:00Z", "limit=5&start=2022-03-01T00:00:00Z"),
        ("token=&key", "token=&key"),  # nothing to hide
        ("", ""),
    ],
)
def test_it_masks_the_values_of_parameters_named_like_credentials(query, logged):
    assert query_mask(query) == logged


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve_one_request(tmp_path: Path, *options: str) -> str:
    """Start gunicorn with the masking logger, send it one request carrying keys, stop it; its access log."""
    (tmp_path / "tinyapp.py").write_text(APP)
    log, errors, port = tmp_path / "access.log", tmp_path / "error.log", _free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "tinyapp:application", "--pythonpath", str(tmp_path),
         "--bind", f"127.0.0.1:{port}", "--workers", "1", "--access-logfile", str(log),
         "--error-logfile", str(errors), "--logger-class", LOGGER, *options,
         "--no-control-socket"],  # gunicorn 27's socket is one path per user: not a running server's
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )  # fmt: skip
    answered = False
    try:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/usage/?token={KEY}&days=7&api_key={KEY}",
            headers={
                "Referer": f"http://127.0.0.1:{port}/page/?auth_token={KEY}&tab=2",
                "Authorization": f"Token {KEY}",
                "X-Api-Key": KEY,
            },
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                urllib.request.urlopen(request, timeout=2)
            except urllib.error.HTTPError as error:
                answered = error.code == 401
                break
            except OSError:  # not listening yet
                if server.poll() is not None or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=10)
    assert answered, errors.read_text()[-2000:]
    return log.read_text()


def test_a_real_gunicorn_access_log_has_no_key_sent_in_a_url(tmp_path):
    logged = _serve_one_request(tmp_path)  # the default format, as `make run` logs

    assert '"GET /api/v1/usage/?token=***&days=7&api_key=*** HTTP/1.1" 401' in logged
    assert "/page/?auth_token=***&tab=2" in logged  # the Referer
    assert KEY not in logged


def test_a_custom_log_format_shows_no_key_in_headers_or_query_atoms(tmp_path):
    logged = _serve_one_request(
        tmp_path,
        "--access-logformat",
        "%(q)s|%({raw_uri}e)s|%({query_string}e)s|%({authorization}i)s|%({x-api-key}i)s"
        "|%({http_x_api_key}e)s|%({set-cookie}o)s|%({user-agent}i)s",
    )

    fields = logged.strip().split("|")
    assert fields[:2] == ["token=***&days=7&api_key=***", "/api/v1/usage/?token=***&days=7&api_key=***"]
    assert fields[2:7] == ["token=***&days=7&api_key=***", "***", "***", "***", "***"]
    assert fields[7].startswith("Python-urllib")  # other headers are left alone
    assert KEY not in logged and "s3ss" not in logged


def test_a_request_without_a_query_string_is_logged_as_gunicorn_logs_it():
    environ = {
        "REQUEST_METHOD": "GET", "RAW_URI": "/api/v1/usage/", "PATH_INFO": "/api/v1/usage/",
        "QUERY_STRING": "", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1",
        "HTTP_AUTHORIZATION": f"Token {KEY}",
    }  # fmt: skip
    response = SimpleNamespace(status="200 OK", sent=2, headers=[("Content-Type", "application/json")])
    request = SimpleNamespace(headers=[("AUTHORIZATION", f"Token {KEY}")])
    took = dt.timedelta(microseconds=900)

    masked = SecretMaskingLogger(Config()).atoms(response, request, environ, took)
    plain = Logger(Config()).atoms(response, request, environ, took)

    assert masked["r"] == "GET /api/v1/usage/ HTTP/1.1"
    assert {**masked, "t": None} == {**plain, "t": None}  # the default format shows no header


def _dockerfile_command() -> list[str]:
    dockerfile = (ROOT / "Dockerfile").read_text().replace("\\\n", "")
    (cmd,) = re.findall(r"^CMD (\[.*\])$", dockerfile, flags=re.MULTILINE)
    return json.loads(cmd)


def _compose_command() -> list[str]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["web"]["command"]
    script = shlex.split(compose)[2]  # sh -c "migrate && gunicorn ..."
    (gunicorn,) = [line for line in re.split(r"&&|\n", script) if "gunicorn" in line]
    return shlex.split(gunicorn)


def _run_py_command() -> list[str]:
    run_py = (ROOT / "bin" / "run.py").read_text()
    constant = re.findall(r'^GUNICORN_LOGGER = "(.*)"$', run_py, flags=re.MULTILINE)
    used = '"--logger-class", GUNICORN_LOGGER' in run_py
    return ["--logger-class", *constant] if used else []


@pytest.mark.parametrize(
    "command",
    [_dockerfile_command, _compose_command, _run_py_command],
    ids=["Dockerfile", "compose", "run.py"],
)
def test_every_gunicorn_we_start_uses_the_masking_logger(command):
    argv = command()
    assert "--logger-class" in argv, argv
    assert argv[argv.index("--logger-class") + 1] == LOGGER
    assert load_class(LOGGER) is SecretMaskingLogger
