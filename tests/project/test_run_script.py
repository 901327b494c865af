"""`make run` (bin/run.py) refuses to start a second copy before touching the database."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_it_refuses_a_port_in_use_before_migrating_or_syncing_anything(tmp_path):
    database = tmp_path / "db.sqlite3"
    dropped = {"SECRET_KEY", "DATABASE_URL", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    with socket.socket() as taken:  # what an already running `make run` holds
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env.update(
            PORT=str(port), DATABASE_URL=f"sqlite:///{database}", VAR_DIR=str(tmp_path / "var"), DEBUG="1"
        )
        result = subprocess.run(
            [sys.executable, "bin/run.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )

    assert result.returncode != 0
    assert f"port {port} is in use: is make run already running?" in result.stderr
    assert "PORT=" in result.stderr
    assert "running at" not in result.stdout
    assert not database.exists()  # no migration, no bootstrap, no sync


def test_a_failing_setup_step_is_one_line_not_a_traceback(tmp_path):
    # DEBUG=0 without SECRET_KEY: migrate refuses to start, and make run says which step failed.
    dropped = {"SECRET_KEY", "DATABASE_URL", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(VAR_DIR=str(tmp_path / "var"), DEBUG="0")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        env["PORT"] = str(probe.getsockname()[1])  # free once closed

    result = subprocess.run(
        [sys.executable, "bin/run.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )

    assert result.returncode == 1
    assert "make run: `manage.py migrate` failed (exit 1): see its error above" in result.stderr
    assert "CalledProcessError" not in result.stderr


def test_a_port_out_of_range_is_refused_by_name(tmp_path):
    env = {**os.environ, "PORT": "99999", "VAR_DIR": str(tmp_path / "var"), "DEBUG": "1"}
    result = subprocess.run(
        [sys.executable, "bin/run.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "PORT must be a number from 1 to 65535, not '99999'" in result.stderr


def _run_module():
    spec = importlib.util.spec_from_file_location("run_script", ROOT / "bin" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_admin_hint_says_which_settings_manage_py_must_share(monkeypatch):
    run = _run_module()
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("VAR_DIR", raising=False)
    assert run.same_environment() == ""  # the defaults: manage.py finds the same var/db.sqlite3

    monkeypatch.setenv("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/mur")
    assert run.same_environment() == ", run where DATABASE_URL is set as here"
    monkeypatch.setenv("VAR_DIR", "/srv/mur")
    assert run.same_environment() == ", run where DATABASE_URL and VAR_DIR are set as here"
