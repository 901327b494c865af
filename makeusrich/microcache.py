"""Values recently computed by this process, reused for a few seconds (the API's hot path).

A forecast changes once an hour, yet one process may be asked for it
thousands of times a second: reading and serialising it once per
`seconds` instead of once per call is what keeps the endpoint cheap. Only
values are kept (never authentication or quota decisions), a failed
computation is not kept, and `seconds` <= 0 turns the cache off.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class RecentValues(Generic[T]):
    def __init__(self, max_entries: int = 1024) -> None:
        self._max_entries = max_entries
        self._entries: dict[Hashable, tuple[float, T]] = {}

    def get_or_compute(self, key: Hashable, compute: Callable[[], T], *, seconds: float) -> T:
        if seconds <= 0:
            return compute()
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            return entry[1]
        value = compute()
        if len(self._entries) >= self._max_entries:
            self._entries = {k: e for k, e in self._entries.items() if e[0] > now}
            if len(self._entries) >= self._max_entries:
                self._entries.clear()
        self._entries[key] = (now + seconds, value)
        return value

    def clear(self) -> None:
        self._entries.clear()
