"""Entry-level faults of SQS batch calls: some entries fail, the others are performed.

A fault with `entries: K` on SendMessageBatch, DeleteMessageBatch or
ChangeMessageVisibilityBatch does not fail the call. The middleware arms it for
the request's thread; moto's handler of the call then leaves the first K
entries (in request order) undone and reports them in `Failed` (the fault's
error as `Code`, `SenderFault` false, "Injected fault: <error>"), performs the
others as moto does, and answers 200. The batch is still validated as a whole
first (entry ids, and for sends the total size), as AWS does before it performs
any entry. Patched in moto's response handlers, so both SQS protocols get it.
"""

from __future__ import annotations

import functools
import re
import threading
from typing import Any

from moto.core.responses import ActionResult
from moto.sqs.exceptions import BatchEntryIdsNotDistinct, InvalidBatchEntryId, TooManyEntriesInBatchRequest
from moto.sqs.responses import SQSResponse

from . import sqs_limits

_HANDLERS = {"SendMessageBatch": "send_message_batch", "DeleteMessageBatch": "delete_message_batch",
             "ChangeMessageVisibilityBatch": "change_message_visibility_batch"}
_ENTRY_ID = re.compile(r"^[\w-]{1,80}$")
_armed = threading.local()


def arm(entries: int, error: str) -> None:
    """Fail the first `entries` entries of the batch call this thread hands to moto next."""
    _armed.fault = (entries, error)


def disarm() -> None:
    _armed.fault = None


def _take() -> tuple[int, str] | None:
    fault = getattr(_armed, "fault", None)
    _armed.fault = None
    return fault


def _failure(entry: dict, error: str) -> dict:
    return {"Id": entry.get("Id"), "SenderFault": False, "Code": error, "Message": f"Injected fault: {error}"}


def _check_whole_batch(operation: str, queue: Any, entries: list[dict]) -> None:
    if len(entries) > 10:
        raise TooManyEntriesInBatchRequest(len(entries))
    seen: set[str] = set()
    for entry in entries:
        entry_id = str(entry.get("Id", ""))
        if not _ENTRY_ID.match(entry_id):
            raise InvalidBatchEntryId()
        if entry_id in seen:
            raise BatchEntryIdsNotDistinct(entry_id)
        seen.add(entry_id)
    if operation == "SendMessageBatch":
        sqs_limits.check_batch(queue, entries)


def _faulting(operation: str, handler):
    @functools.wraps(handler)
    def handle(self: SQSResponse) -> Any:
        fault = _take()
        entries = self._get_param("Entries", [])
        if fault is None or not entries:
            return handler(self)
        count, error = fault
        _check_whole_batch(operation, self.sqs_backend.get_queue(self._get_queue_name()), entries)
        failed = [_failure(entry, error) for entry in entries[:count]]
        if len(entries) <= count:
            return ActionResult({"Successful": [], "Failed": failed})
        self.params["Entries"] = entries[count:]
        result = handler(self)
        result.result["Failed"] = failed + list(result.result["Failed"])
        return result

    return handle


def install() -> None:
    """Patch moto's SQS batch handlers (idempotent)."""
    if getattr(SQSResponse, "_localaws_batch_faults_installed", False):
        return
    for operation, name in _HANDLERS.items():
        setattr(SQSResponse, name, _faulting(operation, getattr(SQSResponse, name)))
    SQSResponse._localaws_batch_faults_installed = True  # type: ignore[attr-defined]
