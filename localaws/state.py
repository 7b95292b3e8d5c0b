"""Every piece of extension state, in one place so one call resets it.

moto's `POST /moto-api/reset` clears moto's backends; the middleware then calls
`STATE.reset()` so root users, sessions, feature flags, logs, counters, faults,
root-session concurrency maxima, caches and the clock go back to nothing together.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import threading

from . import clock, rootuser
from .concurrency import InFlight
from .faults import FaultBook


@dataclasses.dataclass
class RootSession:
    """Credentials issued by AssumeRoot: act as the member's root, for one task."""

    access_key_id: str
    secret_access_key: str
    session_token: str
    account_id: str
    task: str
    expiration: datetime.datetime
    caller_account: str

    @property
    def arn(self) -> str:
        return f"arn:aws:iam::{self.account_id}:root"

    def expired(self) -> bool:
        return clock.now() >= self.expiration


class State:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.faults = FaultBook()
        self.root_in_flight = InFlight()  # root-session requests per member account
        self._clear()

    def _clear(self) -> None:
        self.root_users: dict[str, rootuser.RootUser] = {}
        self.sessions: dict[str, RootSession] = {}
        self.features: dict[str, set[str]] = {}  # organization id -> enabled features
        self.assume_root_log: list[dict] = []
        self.counts: collections.Counter[str] = collections.Counter()
        self.user_ids: dict[str, str] = {}  # access key -> principal id (stable per key)

    def reset(self) -> None:
        with self.lock:
            self._clear()
            self.faults.clear()
            self.root_in_flight.clear()
            clock.reset()

    def count(self, key: str) -> None:
        with self.lock:
            self.counts[key] += 1

    def root_user(self, account_id: str) -> rootuser.RootUser:
        """The account's root user, created without credentials on first use."""
        with self.lock:
            user = self.root_users.get(account_id)
            if user is None:
                user = self.root_users[account_id] = rootuser.empty(account_id)
            return user

    def session(self, access_key_id: str) -> RootSession | None:
        # A dict read is atomic under the GIL; no lock on the hot path.
        return self.sessions.get(access_key_id)

    def enabled_features(self, organization_id: str) -> set[str]:
        with self.lock:
            return set(self.features.get(organization_id, ()))

    def log_assume_root(self, entry: dict) -> None:
        with self.lock:
            self.assume_root_log.append(entry)


STATE = State()
