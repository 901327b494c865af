"""Production settings: `check --deploy` is clean, secrets come only from the environment."""

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    # A clean production-like environment (other tests may set DJANGO_ALLOW_ASYNC_UNSAFE).
    dropped = {"SECRET_KEY", "DEBUG", "DATABASE_URL", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    base = {k: v for k, v in os.environ.items() if k not in dropped}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**base, **env}, capture_output=True, text=True
    )


def test_check_deploy_is_clean_in_production_settings(tmp_path):
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="rich.example.com",
        VAR_DIR=str(tmp_path),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_it_refuses_to_start_with_debug_off_and_no_secret_key(tmp_path):
    result = _manage("check", DEBUG="0", VAR_DIR=str(tmp_path))
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG=0" in result.stderr


_SHOW = "from django.conf import settings; print(settings.DEBUG, settings.SECRET_KEY)"


def test_manage_py_on_an_unconfigured_checkout_is_local_development(tmp_path):
    # What `make run` prints next: `.venv/bin/python manage.py createsuperuser`
    # in another terminal, with nothing set, must share make run's var/ and key.
    result = _manage("shell", "-v", "0", "-c", _SHOW, VAR_DIR=str(tmp_path))
    assert result.returncode == 0, result.stderr
    debug, key = result.stdout.split()
    assert debug == "True"
    assert key == (tmp_path / "secret_key").read_text().strip()


def test_manage_py_says_it_turned_debug_on_in_a_shell_with_a_database_url(tmp_path):
    # A deployment's shell that lacks SECRET_KEY: DEBUG=1 changes what collectstatic writes.
    show = "from django.conf import settings as s; print(s.DEBUG)"
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    result = _manage("shell", "-v", "0", "-c", show, VAR_DIR=str(tmp_path), DATABASE_URL=url)

    assert result.stdout.split() == ["True"]
    assert "neither DEBUG nor SECRET_KEY is set, so DEBUG=1" in result.stderr


def test_manage_py_with_a_secret_key_and_no_debug_stays_production(tmp_path):
    key = secrets.token_urlsafe(50)
    result = _manage("shell", "-v", "0", "-c", _SHOW, SECRET_KEY=key, VAR_DIR=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", key]
    assert not (tmp_path / "secret_key").exists()


def test_it_rejects_a_malformed_boolean_naming_the_variable(tmp_path):
    result = _manage("check", DEBUG="maybe", VAR_DIR=str(tmp_path))
    assert result.returncode != 0
    assert "DEBUG='maybe' is not a boolean" in result.stderr


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://127.0.0.1:6379/notanumber", "the database 'notanumber' is not a number"),
        ("http://127.0.0.1:6379/0", "use redis://[user:password@]host:port/db"),
        ("redis://127.0.0.1:port/0", "the port is not a number"),
        ("redis://:s3cret@127.0.0.1:6379/x", "REDIS_URL='redis://***@127.0.0.1:6379/x'"),
        ("redis://s3cret@127.0.0.1:6379/x", "REDIS_URL='redis://***@127.0.0.1:6379/x'"),
        ("unix:///run/redis.sock?db=1", "use redis://[user:password@]host:port/db"),
        ("rediss://127.0.0.1:6380/0", "needs ?ssl_cert_reqs=required"),
        ("rediss://127.0.0.1:6380/0?ssl_cert_reqs=CERT_REQUIRED", "needs ?ssl_cert_reqs=required"),
    ],
)
def test_a_malformed_redis_url_is_refused_at_start_saying_what_is_wrong(tmp_path, url, message):
    result = _manage("check", DEBUG="1", VAR_DIR=str(tmp_path), REDIS_URL=url)
    assert result.returncode != 0
    assert message in result.stderr and "s3cret" not in result.stderr


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379",
        "redis://user:p%40ss@127.0.0.1:6379/2",
        "rediss://[::1]:6380/0?ssl_cert_reqs=none",
    ],
)
def test_the_redis_urls_every_part_reads_are_accepted(tmp_path, url):
    result = _manage("check", DEBUG="1", VAR_DIR=str(tmp_path), REDIS_URL=url)
    assert result.returncode == 0, result.stderr


def test_a_copy_of_env_example_as_compose_passes_it_starts_with_the_defaults(tmp_path):
    # compose's env_file hands every line over, the empty ones as empty strings.
    example = (ROOT / ".env.example").read_text()
    values = dict(re.findall(r"^([A-Z][A-Z0-9_]*)=(\S*)", example, flags=re.MULTILINE))
    assert values["VAR_DIR"] == "" and values["DEBUG"] == "0"
    show = "from django.conf import settings as s; print(s.VAR_DIR, s.ALLOWED_HOSTS, s.DATABASES['default']['ENGINE'])"
    result = _manage("shell", "-v", "0", "-c", show, **{**values, "SECRET_KEY": "x" * 50})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        str(ROOT / "var"),
        "['localhost',",
        "'127.0.0.1']",
        "django.db.backends.sqlite3",
    ]


def test_hsts_subdomains_and_preload_can_be_turned_off(tmp_path):
    show = "from django.conf import settings as s; print(s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.SECURE_HSTS_PRELOAD)"
    production = {"DEBUG": "0", "SECRET_KEY": "x" * 50, "VAR_DIR": str(tmp_path)}
    assert _manage("shell", "-v", "0", "-c", show, **production).stdout.split() == ["True", "True"]
    off = {"SECURE_HSTS_INCLUDE_SUBDOMAINS": "0", "SECURE_HSTS_PRELOAD": "0"}
    assert _manage("shell", "-v", "0", "-c", show, **production, **off).stdout.split() == ["False", "False"]


@pytest.mark.parametrize("value", ["-1", "nan", "soon"])
def test_it_rejects_a_bad_api_cache_duration_naming_the_variable(tmp_path, value):
    result = _manage("check", DEBUG="1", VAR_DIR=str(tmp_path), API_CACHE_SECONDS=value)
    assert result.returncode != 0
    assert "API_CACHE_SECONDS=" in result.stderr


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"BINANCE_TIMEOUT_SECONDS": "0"}, "BINANCE_TIMEOUT_SECONDS=0.0 must be at least 0.1"),
        ({"BINANCE_TIMEOUT_SECONDS": "nan"}, "BINANCE_TIMEOUT_SECONDS='nan' is not a finite number"),
        ({"BINANCE_RETRY_BASE_SECONDS": "-1"}, "BINANCE_RETRY_BASE_SECONDS=-1.0 must be at least 0"),
        ({"PROMOTION_TOLERANCE": "nan"}, "PROMOTION_TOLERANCE='nan' is not a finite number"),
        ({"LOG_LEVEL": "verbose"}, "LOG_LEVEL='verbose': use one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ({"ARTIFACTS_STORAGE": "s3"}, "ARTIFACTS_STORAGE=s3 needs ARTIFACTS_S3_BUCKET"),
        (
            {"DATABASE_URL": "postgress://mur:s3cret@db:5432/mur"},
            "DATABASE_URL='postgress://***@db:5432/mur' cannot be read",
        ),
    ],
)
def test_a_bad_setting_is_refused_at_start_naming_the_variable(tmp_path, env, message):
    result = _manage("check", DEBUG="1", VAR_DIR=str(tmp_path), **env)

    assert result.returncode != 0
    assert message in result.stderr
    assert "s3cret" not in result.stderr


def test_a_var_dir_that_is_a_file_is_refused_naming_it(tmp_path):
    taken = tmp_path / "var"
    taken.write_text("not a directory")

    result = _manage("check", DEBUG="1", VAR_DIR=str(taken))

    assert result.returncode != 0
    assert f"VAR_DIR='{taken}' cannot be used as a directory" in result.stderr


def test_the_log_level_is_read_in_any_case(tmp_path):
    show = "import logging; print(logging.getLevelName(logging.getLogger().level))"
    result = _manage("shell", "-v", "0", "-c", show, DEBUG="1", VAR_DIR=str(tmp_path), LOG_LEVEL="warning")
    assert result.stdout.split() == ["WARNING"]


def test_debug_generates_a_secret_key_once_into_var(tmp_path):
    first = _manage("shell", "-c", "from django.conf import settings; print(settings.SECRET_KEY)",
                    DEBUG="1", VAR_DIR=str(tmp_path))  # fmt: skip
    second = _manage("shell", "-c", "from django.conf import settings; print(settings.SECRET_KEY)",
                     DEBUG="1", VAR_DIR=str(tmp_path))  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == second.stdout.strip()
    assert len(first.stdout.strip()) >= 50
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_env_example_lists_every_variable_the_settings_read():
    source = (ROOT / "makeusrich" / "settings.py").read_text()
    read = set(re.findall(r'env_(?:str|bool|int|float|list|choice|redis_url)\(\s*"([A-Z0-9_]+)"', source))
    listed = set(re.findall(r"^([A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE))
    assert read, "no variables found: the pattern no longer matches settings.py"
    assert read - listed == set()


def test_env_example_values_carry_no_comment_that_env_file_readers_would_keep():
    # docker --env-file and systemd's EnvironmentFile take everything after "=" as the value.
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            assert re.fullmatch(r"[A-Z0-9_]+=[^\s#]*", line), line


def test_without_redis_the_cache_is_shared_by_every_process_of_the_install(tmp_path):
    # The brute-force counts must be the same for both web workers.
    write = "from django.core.cache import cache; cache.set('shared', 'yes', 60)"
    read = "from django.core.cache import cache; print(cache.get('shared'))"
    env = {"DEBUG": "1", "VAR_DIR": str(tmp_path), "REDIS_URL": ""}
    assert _manage("shell", "-v", "0", "-c", write, **env).returncode == 0
    assert _manage("shell", "-v", "0", "-c", read, **env).stdout.strip() == "yes"


def test_a_django_warning_is_logged_once_when_debug_is_on(tmp_path):
    # `make run` sets DEBUG=1: Django's own debug console handler printed each 4xx a second time.
    log = "import logging; logging.getLogger('django.request').warning('Not Found: /api/v1/nope/')"
    result = _manage("shell", "-v", "0", "-c", log, DEBUG="1", VAR_DIR=str(tmp_path), REDIS_URL="")

    assert result.returncode == 0, result.stderr
    assert result.stderr.count("Not Found: /api/v1/nope/") == 1, result.stderr
    assert "WARNING django.request: Not Found: /api/v1/nope/" in result.stderr


@pytest.mark.parametrize(("value", "message"), [("169", "must be at most 168"), ("0", "must be at least 1")])
def test_a_forecast_horizon_that_no_training_accepts_is_refused_at_start(tmp_path, value, message):
    # Refused when the settings load, not by every training later ("horizon must be at most 168").
    result = _manage("check", FORECAST_HORIZON=value, VAR_DIR=str(tmp_path))
    assert result.returncode != 0 and f"FORECAST_HORIZON={value} {message}" in result.stderr
