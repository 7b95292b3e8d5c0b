"""Root-session requests in flight per member account, and the most ever seen at once.

rootwarden must never run two jobs for one member account at the same time, even
across daemon processes; a job's AWS calls are made with an AssumeRoot session
for that account. The middleware counts each such request from its arrival to
its answer (injected latency included), so a test can read the maximum and
prove the calls of an account never overlapped. cheroot serves requests on many
threads: every change is made under one lock.
"""

from __future__ import annotations

import threading


class InFlight:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._now: dict[str, int] = {}
        self._max: dict[str, int] = {}

    def enter(self, account_id: str) -> None:
        with self._lock:
            count = self._now[account_id] = self._now.get(account_id, 0) + 1
            if count > self._max.get(account_id, 0):
                self._max[account_id] = count

    def leave(self, account_id: str) -> None:
        with self._lock:
            count = self._now.get(account_id, 0) - 1
            if count > 0:
                self._now[account_id] = count
            else:
                self._now.pop(account_id, None)

    def maxima(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self._max.items()))

    def clear(self) -> None:
        """Forget the maxima; requests still in flight stay counted (they will leave)."""
        with self._lock:
            self._max = {}
