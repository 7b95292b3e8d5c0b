"""The /_localaws JSON control endpoints (same port as the AWS APIs).

Tests and the benchmark use them to set root user state and an account's state in
its organization (SUSPENDED, CLOSED...), read the AssumeRoot
log, per-operation call counts and root-session concurrency, inject faults,
shift the session clock and make buckets and queues in bulk.
Each handler takes the parsed JSON body and returns (status, JSON object).
"""

from __future__ import annotations

import json
import re

from . import clock, organization, resources, rootuser
from .faults import FaultSpecError
from .responses import Reply
from .state import STATE

PREFIX = "/_localaws/"
_ACCOUNT_ROOT = re.compile(r"^/_localaws/accounts/(\d{12})/root/?$")
_ACCOUNT_STATE = re.compile(r"^/_localaws/accounts/(\d{12})/state/?$")


def handle(environ: dict, start_response) -> list[bytes]:
    method = environ.get("REQUEST_METHOD", "GET")
    path = environ.get("PATH_INFO", "")
    try:
        body = _json_body(environ)
        status, payload = _route(method, path, body, environ)
    except ValueError as err:
        status, payload = 400, {"error": str(err)}
    data = json.dumps(payload).encode()
    return Reply(status, data, "application/json")(environ, start_response)


def _json_body(environ: dict) -> dict:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    raw = environ["wsgi.input"].read(length) if length else b""
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        raise ValueError("the body is not valid JSON") from None
    if not isinstance(value, dict):
        raise ValueError("the body must be a JSON object")
    return value


def _route(method: str, path: str, body: dict, environ: dict) -> tuple[int, dict]:
    match = _ACCOUNT_ROOT.match(path)
    if match:
        return _account_root(method, match.group(1), body)
    match = _ACCOUNT_STATE.match(path)
    if match:
        return _account_state(method, match.group(1), body)
    routes = {
        ("GET", "health"): lambda: (200, {"status": "ok"}),
        ("GET", "assume-root-log"): _get_log,
        ("DELETE", "assume-root-log"): _clear_log,
        ("GET", "call-counts"): _get_counts,
        ("DELETE", "call-counts"): _clear_counts,
        ("GET", "faults"): lambda: (200, {"faults": STATE.faults.list()}),
        ("POST", "faults"): lambda: _add_fault(body),
        ("DELETE", "faults"): _clear_faults,
        ("GET", "root-concurrency"): lambda: (200, {"max_in_flight": STATE.root_in_flight.maxima()}),
        ("DELETE", "root-concurrency"): _clear_root_concurrency,
        ("GET", "clock"): _get_clock,
        ("POST", "clock"): lambda: _advance_clock(body),
        ("POST", "resources"): lambda: _create_resources(body, environ),
    }
    handler = routes.get((method, path[len(PREFIX):].rstrip("/")))
    if handler is None:
        return 404, {"error": f"no control endpoint {method} {path}"}
    return handler()


def _account_root(method: str, account_id: str, body: dict) -> tuple[int, dict]:
    if method == "GET":
        with STATE.lock:
            return 200, STATE.root_user(account_id).to_json()
    if method == "POST":
        try:
            user = rootuser.from_spec(account_id, body)
        except rootuser.SpecError as err:
            return 400, {"error": str(err)}
        with STATE.lock:
            STATE.root_users[account_id] = user
            return 200, user.to_json()
    return 405, {"error": "use GET or POST"}


def _account_state(method: str, account_id: str, body: dict) -> tuple[int, dict]:
    if method not in ("GET", "POST"):
        return 405, {"error": "use GET or POST"}
    account = organization.find_account(account_id)
    if account is None:
        return 404, {"error": f"account {account_id} is in no organization (create it first, e.g. with seed)"}
    if method == "POST":
        try:
            state, status = organization.state_from_spec(body)
        except organization.StateSpecError as err:
            return 400, {"error": str(err)}
        account.status, account.state = status, state
    return 200, organization.state_json(account)


def _get_log() -> tuple[int, dict]:
    with STATE.lock:
        return 200, {"calls": list(STATE.assume_root_log)}


def _clear_log() -> tuple[int, dict]:
    with STATE.lock:
        STATE.assume_root_log.clear()
    return 200, {"calls": []}


def _get_counts() -> tuple[int, dict]:
    with STATE.lock:
        return 200, {"counts": dict(sorted(STATE.counts.items()))}


def _clear_counts() -> tuple[int, dict]:
    with STATE.lock:
        STATE.counts.clear()
    return 200, {"counts": {}}


def _add_fault(body: dict) -> tuple[int, dict]:
    try:
        fault = STATE.faults.add(body)
    except FaultSpecError as err:
        return 400, {"error": str(err)}
    return 200, {"id": fault.id}


def _clear_faults() -> tuple[int, dict]:
    STATE.faults.clear()
    return 200, {"faults": []}


def _clear_root_concurrency() -> tuple[int, dict]:
    STATE.root_in_flight.clear()
    return 200, {"max_in_flight": {}}


def _create_resources(body: dict, environ: dict) -> tuple[int, dict]:
    try:
        return 200, resources.create(body, _base_url(environ))
    except resources.SpecError as err:
        return err.status, {"error": str(err)}


def _base_url(environ: dict) -> str:
    """The scheme and host this request came to, as moto builds queue URLs from them."""
    host = environ.get("HTTP_HOST") or f"{environ.get('SERVER_NAME', 'localhost')}:{environ.get('SERVER_PORT', '80')}"
    return f"{environ.get('wsgi.url_scheme', 'http')}://{host}"


def _get_clock() -> tuple[int, dict]:
    return 200, {"now": clock.rfc3339(clock.now()), "offset_seconds": clock.offset_seconds()}


def _advance_clock(body: dict) -> tuple[int, dict]:
    seconds = body.get("advance_seconds")
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
        return 400, {"error": "advance_seconds must be a number"}
    clock.advance(seconds)
    return _get_clock()
