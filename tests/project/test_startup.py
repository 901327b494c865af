"""gunicorn with DEBUG=0 refuses to start before collectstatic, and serves pages after it."""

import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _production_env(var: Path) -> dict[str, str]:
    env = {**os.environ, "VAR_DIR": str(var), "DEBUG": "0", "SECRET_KEY": "startup-test-only"}
    env.update(ALLOWED_HOSTS="127.0.0.1", SECURE_SSL_REDIRECT="0", LOG_LEVEL="WARNING")
    env.pop("DATABASE_URL", None)  # SQLite in var: the login page needs no table
    return env


def _gunicorn(env: dict[str, str], port: int) -> subprocess.Popen:
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "makeusrich.wsgi:application", "--workers", "1",
         "--bind", f"127.0.0.1:{port}", "--no-control-socket"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def _refused(env: dict[str, str]) -> str:
    """What gunicorn printed when it refused to start (it must refuse)."""
    server = _gunicorn(env, _free_port())
    try:
        output, _ = server.communicate(timeout=60)
    finally:
        server.kill()
    assert server.returncode != 0
    return output


def test_without_collected_static_files_gunicorn_stops_and_says_what_to_run(tmp_path):
    output = _refused(_production_env(tmp_path / "var"))

    assert "STATIC_ROOT has none yet: run `DEBUG=0 python manage.py collectstatic --noinput`" in output
    assert str(tmp_path / "var" / "staticfiles") in output


def test_files_collected_with_debug_on_are_named_as_the_cause(tmp_path):
    env = _production_env(tmp_path / "var")
    debug = {**env, "DEBUG": "1"}  # what manage.py does when neither DEBUG nor SECRET_KEY is set
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"], cwd=ROOT, env=debug,
                   check=True, timeout=300)  # fmt: skip
    output = _refused(env)

    assert "STATIC_ROOT has files but no staticfiles.json (collectstatic ran with DEBUG on)" in output


def test_after_collectstatic_pages_are_served_with_hashed_static_names(tmp_path):
    env = _production_env(tmp_path / "var")
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"], cwd=ROOT, env=env,
                   check=True, timeout=300)  # fmt: skip
    port = _free_port()
    server = _gunicorn(env, port)
    try:
        deadline, page = time.monotonic() + 30, None
        while page is None:
            try:
                page = (
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/", timeout=5)
                    .read()
                    .decode()
                )
            except OSError:  # not listening yet
                assert server.poll() is None and time.monotonic() < deadline, server.stdout.read()
                time.sleep(0.1)
        (css,) = re.findall(r'href="(/static/css/site\.[0-9a-f]{12}\.css)"', page)
        assert urllib.request.urlopen(f"http://127.0.0.1:{port}{css}", timeout=5).status == 200
    finally:
        server.terminate()
        server.wait(timeout=10)
