from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_it_defines_the_five_services():
    assert set(_compose()["services"]) == {"postgres", "redis", "web", "worker", "beat"}


def test_web_worker_and_beat_share_one_image_and_the_same_settings():
    services = _compose()["services"]
    apps = [services[name] for name in ("web", "worker", "beat")]
    assert len({app["image"] for app in apps}) == 1
    assert all(app["build"] == "." for app in apps)
    environments = [app["environment"] for app in apps]
    assert environments[0] == environments[1] == environments[2]
    env = environments[0]
    assert env["DATABASE_URL"].startswith("postgres://") and "@postgres:5432/" in env["DATABASE_URL"]
    assert env["REDIS_URL"].startswith("redis://redis:6379")
    assert env["DEBUG"] == "0"
    assert "SECRET_KEY" in env


def test_every_variable_of_the_env_file_reaches_the_apps():
    # Without it NUM_PROXIES, LOGIN_* and the rest set in .env (as OPERATIONS says) never arrive.
    services = _compose()["services"]
    for name in ("web", "worker", "beat"):
        assert services[name]["env_file"] == [{"path": ".env", "required": False}]


def test_the_processes_run_the_right_commands():
    services = _compose()["services"]
    assert "gunicorn makeusrich.wsgi:application" in services["web"]["command"]
    assert "migrate" in services["web"]["command"]
    assert services["worker"]["command"].startswith("celery -A makeusrich worker")
    assert services["beat"]["command"].startswith("celery -A makeusrich beat")


def test_the_apps_wait_for_healthy_database_and_redis():
    services = _compose()["services"]
    for name in ("web", "worker", "beat"):
        depends = services[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["redis"]["condition"] == "service_healthy"
    assert "healthcheck" in services["postgres"] and "healthcheck" in services["redis"]


def test_the_dockerfile_builds_the_image_the_services_use():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "FROM python:3.11" in dockerfile
    assert "requirements.txt" in dockerfile
