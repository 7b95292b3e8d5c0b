"""The clock that root-session expiry is judged by.

Tests and the lead's Rust harness must be able to expire a session without
waiting 15 minutes, so the extension reads time through this module and a
control endpoint may shift it forward. Only the extension's own decisions use
it; moto's backends keep the real clock.
"""

import datetime
import threading

_lock = threading.Lock()
_offset = datetime.timedelta(0)


def now() -> datetime.datetime:
    """Current UTC time plus the configured offset."""
    return datetime.datetime.now(datetime.timezone.utc) + _offset


def offset_seconds() -> float:
    return _offset.total_seconds()


def advance(seconds: float) -> None:
    """Move the clock forward (or back, if negative) by `seconds`."""
    global _offset
    with _lock:
        _offset += datetime.timedelta(seconds=seconds)


def reset() -> None:
    global _offset
    with _lock:
        _offset = datetime.timedelta(0)


def rfc3339(value: datetime.datetime | None) -> str | None:
    """Format as the second-precision UTC form both botocore and the Rust SDK parse."""
    if value is None:
        return None
    return value.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(value: str | None) -> datetime.datetime | None:
    if value is None:
        return None
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
