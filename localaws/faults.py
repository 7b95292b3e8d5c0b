"""Injected errors and latency, so rootwarden's retry and backoff paths can be tested.

A fault matches requests by service and operation ("*" for any) and fires
either for the next `count` matching calls or for a `fraction` of them (a
seeded RNG per fault, so a run is reproducible), if `for_seconds` is given only
until that many seconds after it was added. A firing fault adds its latency
and, if it names an error, answers with that error instead of moto; with
`entries` (batch operations only) the call goes on and only its first entries
fail with that error (see batch_faults).
"""

from __future__ import annotations

import dataclasses
import itertools
import random
import threading
import time

# The operations an `entries` fault applies to: their answers list Successful and Failed entries.
BATCH_OPERATIONS = frozenset({"SendMessageBatch", "DeleteMessageBatch", "ChangeMessageVisibilityBatch"})


class FaultSpecError(ValueError):
    """The control API was given a fault it cannot apply."""


@dataclasses.dataclass
class Fault:
    id: str
    service: str
    operation: str
    error: str | None
    remaining: int | None
    fraction: float | None
    latency_ms: int
    status: int | None
    rng: random.Random
    entries: int | None = None
    for_seconds: float | None = None
    ends_at: float | None = None  # time.monotonic() after which it never fires
    fired: int = 0

    def matches(self, service: str, operation: str) -> bool:
        return self.service in ("*", service) and self.operation in ("*", operation)

    def fire(self) -> bool:
        """Decide (and record) whether this fault applies to the current call."""
        if self.ends_at is not None and time.monotonic() >= self.ends_at:
            return False
        if self.remaining is not None:
            if self.remaining <= 0:
                return False
            self.remaining -= 1
        elif self.fraction is not None and self.rng.random() >= self.fraction:
            return False
        self.fired += 1
        return True

    def to_json(self) -> dict:
        return {
            "id": self.id, "service": self.service, "operation": self.operation,
            "error": self.error, "remaining": self.remaining, "fraction": self.fraction,
            "latency_ms": self.latency_ms, "status": self.status, "fired": self.fired,
            "entries": self.entries, "for_seconds": self.for_seconds, "seconds_left": self._seconds_left(),
        }

    def _seconds_left(self) -> float | None:
        if self.ends_at is None:
            return None
        return round(max(0.0, self.ends_at - time.monotonic()), 3)


@dataclasses.dataclass
class Firing:
    """What the matching faults decided for one call."""

    latency_ms: int
    error: str | None
    status: int | None
    entries: int | None = None  # the error fails this many leading entries, not the call


class FaultBook:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)

    def clear(self) -> None:
        with self._lock:
            self._faults = []
            self._ids = itertools.count(1)

    def add(self, spec: dict) -> Fault:
        fault = _parse(spec)
        with self._lock:
            fault.id = f"f{next(self._ids)}"
            if fault.for_seconds is not None:
                fault.ends_at = time.monotonic() + fault.for_seconds
            self._faults.append(fault)
        return fault

    def list(self) -> list[dict]:
        with self._lock:
            return [f.to_json() for f in self._faults]

    def check(self, service: str, operation: str) -> Firing | None:
        """Fire every matching fault; the first one with an error decides the error."""
        if not self._faults:  # the common case costs one attribute read
            return None
        latency, error, status, entries = 0, None, None, None
        with self._lock:
            for fault in self._faults:
                if not fault.matches(service, operation) or not fault.fire():
                    continue
                latency += fault.latency_ms
                if error is None and fault.error:
                    error, status, entries = fault.error, fault.status, fault.entries
        if latency == 0 and error is None:
            return None
        return Firing(latency_ms=latency, error=error, status=status, entries=entries)


def _parse(spec: dict) -> Fault:
    known = {"service", "operation", "error", "count", "fraction", "latency_ms", "seed", "status",
             "entries", "for_seconds"}
    unknown = set(spec) - known
    if unknown:
        raise FaultSpecError(f"unknown fields: {sorted(unknown)}")
    service = spec.get("service", "*")
    operation = spec.get("operation", "*")
    if not isinstance(service, str) or not isinstance(operation, str):
        raise FaultSpecError("service and operation must be strings")
    error = spec.get("error")
    latency = spec.get("latency_ms", 0)
    count, fraction = spec.get("count"), spec.get("fraction")
    if error is not None and not isinstance(error, str):
        raise FaultSpecError("error must be a string")
    if not isinstance(latency, int) or not 0 <= latency <= 60_000:
        raise FaultSpecError("latency_ms must be an integer from 0 to 60000")
    status = spec.get("status")
    if status is not None and (not isinstance(status, int) or not 400 <= status <= 599):
        raise FaultSpecError("status must be an HTTP error status")
    entries = _entries(spec, service, operation, status)
    if entries is not None:
        error = error or "InternalError"
    if error is None and latency == 0:
        raise FaultSpecError("a fault needs an error or a latency_ms")
    if count is not None and fraction is not None:
        raise FaultSpecError("give count or fraction, not both")
    if count is not None and (not isinstance(count, int) or count < 1):
        raise FaultSpecError("count must be a positive integer")
    if fraction is not None and (not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1):
        raise FaultSpecError("fraction must be a number from 0 to 1")
    return Fault(
        id="", service=service.lower(), operation=operation, error=error,
        remaining=count, fraction=None if fraction is None else float(fraction),
        latency_ms=latency, status=status, rng=random.Random(spec.get("seed", 0)),
        entries=entries, for_seconds=_for_seconds(spec, count),
    )


def _entries(spec: dict, service: str, operation: str, status: int | None) -> int | None:
    entries = spec.get("entries")
    if entries is None:
        return None
    if not isinstance(entries, int) or isinstance(entries, bool) or entries < 1:
        raise FaultSpecError("entries must be a positive integer")
    if service.lower() not in ("sqs", "*") or operation not in BATCH_OPERATIONS:
        raise FaultSpecError(f"entries applies only to the SQS operations {sorted(BATCH_OPERATIONS)}")
    if status is not None:
        raise FaultSpecError("an entries fault fails entries, not the call: it takes no status")
    return entries


def _for_seconds(spec: dict, count: int | None) -> float | None:
    seconds = spec.get("for_seconds")
    if seconds is None:
        return None
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not seconds > 0:
        raise FaultSpecError("for_seconds must be a number greater than 0")
    if count is not None:
        raise FaultSpecError("give count or for_seconds, not both")
    return float(seconds)
