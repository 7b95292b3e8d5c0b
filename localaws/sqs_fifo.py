"""FIFO deduplication as AWS does it: an id is remembered for 5 minutes after its send.

AWS accepts, but does not deliver, a message sent to a FIFO queue with the
deduplication id (explicit or content-based) of a message sent there in the last
5 minutes, "even after the message is received and deleted". moto compares the
id only with the messages still in the queue, so once the first is deleted a
repeat is delivered again. Each FIFO queue now remembers the ids it was sent and
when; a repeat within the interval is dropped before moto sees it. Messages a
redrive moves into a dead-letter queue are not sends: they are left to moto.
"""

from __future__ import annotations

import collections
import functools
import threading

from moto.sqs.models import DEDUPLICATION_TIME_IN_SECONDS, Message, Queue

_INTERVAL_MS = DEDUPLICATION_TIME_IN_SECONDS * 1000
_lock = threading.Lock()


def _seen_within_interval(queue: Queue, deduplication_id: str, sent_ms: float) -> bool:
    """Whether the id was sent to `queue` in the interval before `sent_ms`; if not, remember it."""
    with _lock:
        sent: collections.OrderedDict[str, float] = queue.__dict__.setdefault(
            "_localaws_deduplication_ids", collections.OrderedDict())
        while sent and next(iter(sent.values())) <= sent_ms - _INTERVAL_MS:
            sent.popitem(last=False)  # oldest first: forget what has left the interval
        first = sent.get(deduplication_id)
        if first is not None and sent_ms - first < _INTERVAL_MS:
            return True
        sent.pop(deduplication_id, None)
        sent[deduplication_id] = sent_ms
        return False


def _deduplicating(add_message):
    @functools.wraps(add_message)
    def add(self: Queue, message: Message) -> None:
        is_send = message.approximate_receive_count == 0  # a redriven message has been received
        sent_ms = float(message.sent_timestamp or 0)
        if (self.fifo_queue and is_send and message.deduplication_id
                and _seen_within_interval(self, message.deduplication_id, sent_ms)):
            return
        add_message(self, message)

    return add


def install() -> None:
    """Patch moto's SQS queues (idempotent)."""
    if getattr(Queue, "_localaws_fifo_installed", False):
        return
    Queue.add_message = _deduplicating(Queue.add_message)  # type: ignore[method-assign]
    Queue._localaws_fifo_installed = True  # type: ignore[attr-defined]
