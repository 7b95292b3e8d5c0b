"""SQS's message size rules, as AWS documents them.

moto compares a body's character count with the queue's MaximumMessageSize and
a batch's bodies with a fixed 1 MiB. AWS counts bytes: a message's size is its
body in UTF-8 plus, for each message attribute, its name, its data type and
its value (a string value in UTF-8, a binary value's bytes). SendMessage
refuses a message larger than the queue's MaximumMessageSize with
InvalidParameterValue; SendMessageBatch refuses, as a whole, a batch whose
entries add up to more than it (BatchRequestTooLong).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from moto.sqs.exceptions import BatchRequestTooLong, InvalidParameterValue, SQSException
from moto.sqs.models import Queue, SQSBackend


class _BatchTooLong(BatchRequestTooLong):
    """moto's BatchRequestTooLong (same wire code) with the queue's limit in its message."""

    def __init__(self, limit: int, size: int) -> None:
        SQSException.__init__(self, "BatchRequestTooLong",
                              f"Batch requests cannot be longer than {limit} bytes. You have sent {size} bytes.")


def message_size(body: str | None, attributes: Mapping[str, Any] | None) -> int:
    """The size AWS counts for a message: body and attributes, in bytes."""
    size = len(_utf8(body or ""))
    for name, attribute in (attributes or {}).items():
        size += len(_utf8(name)) + len(_utf8(attribute.get("DataType") or ""))
        if attribute.get("StringValue") is not None:
            size += len(_utf8(attribute["StringValue"]))
        elif attribute.get("BinaryValue") is not None:
            size += len(_utf8(attribute["BinaryValue"]))  # moto has decoded it to bytes
    return size


def check_message(queue: Queue, body: str | None, attributes: Mapping[str, Any] | None) -> None:
    limit = int(queue.maximum_message_size)  # type: ignore[attr-defined]
    if message_size(body, attributes) > limit:
        raise InvalidParameterValue(
            f"One or more parameters are invalid. Reason: Message must be shorter than {limit} bytes.")


def check_batch(queue: Queue, entries: list[Mapping[str, Any]]) -> None:
    """The total of the entries' sizes against the queue's MaximumMessageSize."""
    limit = int(queue.maximum_message_size)  # type: ignore[attr-defined]
    size = sum(message_size(e.get("MessageBody"), e.get("MessageAttributes")) for e in entries)
    if size > limit:
        raise _BatchTooLong(limit, size)


def _utf8(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode("utf-8")


def _checking_send(send_message):
    @functools.wraps(send_message)
    def checked(self: SQSBackend, queue_name: str, message_body: str, *args: Any, **kwargs: Any) -> Any:
        attributes = kwargs.get("message_attributes", args[0] if args else None)
        check_message(self.get_queue(queue_name), message_body, attributes)
        return send_message(self, queue_name, message_body, *args, **kwargs)

    return checked


def _checking_batch(send_message_batch):
    @functools.wraps(send_message_batch)
    def checked(self: SQSBackend, queue_name: str, entries: dict[str, dict[str, Any]]) -> Any:
        check_batch(self.get_queue(queue_name), list(entries.values()))
        return send_message_batch(self, queue_name, entries)

    return checked


def install() -> None:
    """Patch moto's SQS backend (idempotent)."""
    if getattr(SQSBackend, "_localaws_limits_installed", False):
        return
    SQSBackend.send_message = _checking_send(SQSBackend.send_message)  # type: ignore[method-assign]
    SQSBackend.send_message_batch = _checking_batch(SQSBackend.send_message_batch)  # type: ignore[method-assign]
    SQSBackend._localaws_limits_installed = True  # type: ignore[attr-defined]
