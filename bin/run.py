"""`make run`: prepare the database and a first model, then serve web, worker and beat.

Ctrl-C (or any of the three dying) stops all of them.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PORT = os.environ.get("PORT", "8000")
# Masks keys sent in URLs (?token=...) in the access log: the API refuses them, the log would keep them.
GUNICORN_LOGGER = "makeusrich.gunicorn_logging.SecretMaskingLogger"


class SetupFailed(Exception):
    """A `manage.py` step before serving failed; its own error is above."""


def manage(*args: str) -> None:
    try:
        done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT)
    except KeyboardInterrupt:
        raise SetupFailed(f"`manage.py {args[0]}` stopped by Ctrl-C; nothing is served") from None
    if done.returncode != 0:
        raise SetupFailed(f"`manage.py {args[0]}` failed (exit {done.returncode}): see its error above")


def port_in_use(port: int) -> bool:
    """Whether gunicorn could not bind 127.0.0.1:`port` (it sets SO_REUSEADDR too, so a
    port only in TIME_WAIT counts as free)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def web_answers(port: int) -> bool:
    """Whether a server answers /healthz on the port (any status: DEBUG=0 redirects to https)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/healthz")
        connection.getresponse()
    except OSError:
        return False
    finally:
        connection.close()
    return True


def wait_until_serving(web: subprocess.Popen, port: int, patience: float = 30) -> bool:
    """Poll until gunicorn answers (True) or exits (False); after `patience` seconds, say we still wait."""
    warned, deadline = False, time.monotonic() + patience
    while not web_answers(port):
        if web.poll() is not None:
            return False
        if not warned and time.monotonic() > deadline:
            print(f"the web server is not answering on port {port} yet: still waiting", file=sys.stderr)
            warned = True
        time.sleep(0.5)
    return True


def main() -> int:
    # Before anything writes: a second `make run` would otherwise sync the shared database and
    # start a second worker and beat, and only then find gunicorn's port taken.
    if not PORT.isdigit() or not 1 <= int(PORT) <= 65535:
        print(f"PORT must be a number from 1 to 65535, not {PORT!r}", file=sys.stderr)
        return 2
    if port_in_use(int(PORT)):
        print(
            f"port {PORT} is in use: is make run already running? "
            "Stop it, or set PORT=... to serve on another port.",
            file=sys.stderr,
        )
        return 1
    try:
        manage("migrate", "--noinput", "-v", "0")
        manage("collectstatic", "--noinput", "-v", "0")
        # Imports the bundled BTCUSDT year and trains a first model if none is active.
        manage("bootstrap")
    except SetupFailed as exc:
        print(f"make run: {exc}", file=sys.stderr)
        return 1
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
    try:
        serving = wait_until_serving(children["web"], int(PORT))
    except KeyboardInterrupt:
        print("\nstopping…", flush=True)
        stop()
        return 0
    if not serving:
        print(
            f"web exited with {children['web'].returncode} before answering on port {PORT}: "
            "stopping the others",
            file=sys.stderr,
        )
        stop()
        return 1
    print(
        f"\nMake Us Rich is running at {url}\n"
        f"  Sign up at {url}accounts/signup/ (or log in at {url}accounts/login/).\n"
        f"  Admin: {url}admin/ — create an admin with `.venv/bin/python manage.py createsuperuser`"
        f"{same_environment()}.\n"
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


def same_environment() -> str:
    """Where manage.py needs this run's settings to reach its database: the variables to repeat."""
    names = [name for name in ("DATABASE_URL", "VAR_DIR") if os.environ.get(name)]
    return (
        f", run where {' and '.join(names)} {'are' if len(names) > 1 else 'is'} set as here" if names else ""
    )


if __name__ == "__main__":
    sys.exit(main())
