"""`make run`: prepare the database and a first model, then serve web, worker and beat.

Ctrl-C (or any of the three dying) stops all of them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PORT = os.environ.get("PORT", "8000")
# Masks keys sent in URLs (?token=...) in the access log: the API refuses them, the log would keep them.
GUNICORN_LOGGER = "makeusrich.gunicorn_logging.SecretMaskingLogger"


def manage(*args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, check=True)


def main() -> int:
    manage("migrate", "--noinput", "-v", "0")
    manage("collectstatic", "--noinput", "-v", "0")
    # Imports the bundled BTCUSDT year and trains a first model if none is active.
    manage("bootstrap")
    commands = {
        "web": [
            str(BIN / "gunicorn"), "makeusrich.wsgi:application",
            "--bind", f"127.0.0.1:{PORT}", "--workers", "2", "--access-logfile", "-",
            "--logger-class", GUNICORN_LOGGER,
            # gunicorn 27 keeps one control socket per user; nothing here uses it, and a second
            # server (another checkout, the bench) would take it over from this one.
            "--no-control-socket",
        ],
        "worker": [str(BIN / "celery"), "-A", "makeusrich", "worker", "--concurrency", "2", "-l", "info"],
        "beat": [str(BIN / "celery"), "-A", "makeusrich", "beat", "-l", "info", "--pidfile="],
    }  # fmt: skip
    children = {
        name: subprocess.Popen(cmd, cwd=ROOT, start_new_session=True) for name, cmd in commands.items()
    }

    def stop(*_: object) -> None:
        for child in children.values():
            if child.poll() is None:
                child.terminate()  # each shuts its own workers down gracefully
        deadline = time.monotonic() + 15
        for child in children.values():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)

    def interrupted(*_: object) -> None:
        raise KeyboardInterrupt

    # Explicitly, also for SIGINT: a shell that starts us in the background makes us ignore it.
    signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGTERM, interrupted)
    url = f"http://127.0.0.1:{PORT}/"
    print(
        f"\nMake Us Rich is running at {url}\n"
        f"  Sign up at {url}accounts/signup/ (or log in at {url}accounts/login/).\n"
        f"  Admin: {url}admin/ — create an admin with `.venv/bin/python manage.py createsuperuser`.\n"
        f"  API docs: {url}api/v1/docs/   Health: {url}healthz\n"
        "  Ctrl-C stops the web server, the Celery worker and beat.\n",
        flush=True,
    )
    try:
        while True:
            for name, child in children.items():
                if child.poll() is not None:
                    print(f"{name} exited with {child.returncode}: stopping the others", file=sys.stderr)
                    stop()
                    return 1
            time.sleep(1)
    except KeyboardInterrupt:
        print("\nstopping…", flush=True)
        stop()
        return 0


if __name__ == "__main__":
    sys.exit(main())
