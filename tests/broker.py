"""Reading what was really queued on the broker (Redis in CI, the filesystem transport locally)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from makeusrich.celery import app


def queued_message_take(matches: Callable[[Any], bool], timeout: float = 10.0) -> Any:
    """Consume the first queued message for which `matches(message)` is true; others go back."""
    deadline = time.monotonic() + timeout
    with app.connection_for_read() as connection:
        queue = connection.SimpleQueue(app.conf.task_default_queue)
        try:
            while time.monotonic() < deadline:
                try:
                    message = queue.get(timeout=0.5)
                except queue.Empty:
                    continue
                if matches(message):
                    message.ack()
                    return message
                message.requeue()
        finally:
            queue.close()
    return None
