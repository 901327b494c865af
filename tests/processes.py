"""Real processes that share the test database (a Celery worker and beat, `manage.py train`).

Each runs in a process group of its own, and is stopped with everything it
started: a child left running (a worker whose start timed out, or the pool
processes of a worker killed after its warm shutdown timed out) keeps its
PostgreSQL connection, and the test database cannot be dropped at the end
of the run ("being accessed by other users").
"""

from __future__ import annotations

import os
import signal
import subprocess
from typing import Any


def process_start(args: list[str], **popen: Any) -> subprocess.Popen:
    """`subprocess.Popen(args, **popen)` in a new session, so that `process_stop` can reach its children."""
    return subprocess.Popen(args, start_new_session=True, **popen)


def process_stop(process: subprocess.Popen, *, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
    """Send `sig` to `process` and give it `timeout` seconds to exit (a Celery worker's warm shutdown
    waits for its tasks); then kill whatever is left of its process group, and reap it."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # nothing left in the group: it exited with its children
    process.wait()
