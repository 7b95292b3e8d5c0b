"""Six of moto's hot paths made cheap, with the same answers.

Under a daemon's load these, not the APIs under test, set the pace of every
benchmark (py-spy of the server during a 500-account sweep):

* Every request is routed by matching `http://<host>` against each service's URL
  patterns in turn (hundreds of regular expressions), under one global lock.
  The answer depends on the host alone, so it is remembered per host.
* For every message it delivers, SQS ReceiveMessage checks the retention period
  through `get_queue_attributes`, which computes every attribute of the queue,
  the message counts included, by looking at every message it holds: a receive
  of ten messages from a queue of n cost 10 × n visibility checks (12% of all
  samples in `unix_time_millis` alone). The check now reads the one attribute
  it needs.
* Every request finds its account by looking for the access key in every
  account's IAM backend (`get_account_id_from`): with 500 member accounts, 20% of
  the server's CPU during a sweep. The account a key was found in is remembered,
  and checked with one lookup before it is used, so a deleted key is looked for
  everywhere again, as before.
* A key found in no account (the management credentials of a local run, which
  sign every SQS, Organizations and AssumeRoot call) was looked for in all of
  them on every request: 20% of the server's CPU during a 500-account sweep.
  That it is unknown is remembered until the next access key is created
  anywhere (every creation goes through `create_access_key` or
  `create_temp_access_key`).
* SQS SendMessage reads one queue attribute (ContentBasedDeduplication) through
  `queue.attributes`, which computes all of them, the three message counts
  included, each a scan of the whole queue: 22% of the server's CPU during a
  sweep. While a message is sent, `queue.attributes` computes only what is
  read from it.
* An SQS queue's visible messages (what every receive walks, and the message
  counts) were found by asking each message whether it is visible and whether
  it is delayed, each question reading the clock through two datetime
  constructions. The clock is now read once per walk and the same comparisons
  made against it.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from moto.core.utils import camelcase_to_underscores, unix_time, unix_time_millis
from moto.iam import models as iam_models
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.sqs.models import Message, Queue, SQSBackend


def _remembering_backend_for_host(original):
    def get_backend_for_host(self: DomainDispatcherApplication, host: str | None) -> Any:
        if host is None:
            return None
        # Called under the dispatcher's own lock, so the dict needs none of its own.
        known = self.__dict__.setdefault("_localaws_backend_by_host", {})
        if host not in known:
            known[host] = original(self, host)
        return known[host]

    return get_backend_for_host


def _is_message_valid_based_on_retention_period(self: SQSBackend, queue_name: str, message: Message) -> bool:
    retention_period = int(self.get_queue(queue_name).message_retention_period)  # type: ignore[attr-defined]
    return retention_period + message.sent_timestamp / 1000 > unix_time()  # type: ignore[operator]


class _KeyCreations:
    """Counts access keys created in any account: a key remembered as unknown is
    looked for again once this has moved."""

    count = 0

    @classmethod
    def counting(cls, create):
        @functools.wraps(create)
        def counted(*args: Any, **kwargs: Any) -> Any:
            try:
                return create(*args, **kwargs)
            finally:
                cls.count += 1

        return counted


def _holds(account_id: str, access_key: str) -> bool:
    account = iam_models.iam_backends.get(account_id)
    return account is not None and any(
        access_key in account[partition].access_keys for partition in iam_models.PARTITION_NAMES)


def _remembering_account_of_key(original):
    account_by_key: dict[str, str] = {}
    # Key -> _KeyCreations.count read before the search that did not find it.
    unknown_since: dict[str, int] = {}

    def get_account_id_from(access_key: str) -> str:
        account_id = account_by_key.get(access_key)
        if account_id is not None and _holds(account_id, access_key):
            return account_id
        if unknown_since.get(access_key) == _KeyCreations.count:
            return iam_models.DEFAULT_ACCOUNT_ID
        creations = _KeyCreations.count
        account_id = original(access_key)
        if _holds(account_id, access_key):
            account_by_key[access_key] = account_id
        else:  # found nowhere; moto answers the default account
            unknown_since[access_key] = creations
        return account_id

    return get_account_id_from


_KNOWN_NAMES = frozenset(Queue.BASE_ATTRIBUTES + Queue.FIFO_ATTRIBUTES + Queue.KMS_ATTRIBUTES)


class _AttributesAsRead(Mapping):
    """`queue.attributes` while a message is sent: each attribute computed when it
    is read, from the same names and values as moto's full dictionary."""

    def __init__(self, queue: Queue, full: property) -> None:
        self._queue, self._full = queue, full

    def _names(self) -> list[str]:
        names = list(Queue.BASE_ATTRIBUTES)
        if self._queue.fifo_queue:
            names += Queue.FIFO_ATTRIBUTES
        if self._queue.kms_master_key_id:  # type: ignore[attr-defined]
            names += Queue.KMS_ATTRIBUTES
        return names

    def __getitem__(self, name: str) -> Any:
        if name in self._names():
            value = getattr(self._queue, camelcase_to_underscores(name))
            return str(value).lower() if isinstance(value, bool) else value
        if name in _KNOWN_NAMES:  # a FIFO or KMS attribute this queue does not have
            raise KeyError(name)
        return self._full.fget(self._queue)[name]  # Policy, RedrivePolicy: as moto computes them

    def __iter__(self) -> Iterator[str]:
        return iter(self._full.fget(self._queue))

    def __len__(self) -> int:
        return len(self._full.fget(self._queue))


def _attributes_as_read_while_sending(full: property) -> property:
    def attributes(self: Queue) -> Any:
        if getattr(_sending, "active", False):
            return _AttributesAsRead(self, full)
        return full.fget(self)

    return property(attributes)


def _visible_messages(self: Queue) -> list[Message]:
    # Message.visible is `now > visible_at`, Message.delayed is `now < delayed_until`.
    now = unix_time_millis()
    return [m for m in self._messages if now > m.visible_at and not now < m.delayed_until]  # type: ignore[attr-defined]


# Set while SQSBackend.send_message runs on this thread.
_sending = threading.local()


def _marking_sends(send_message):
    @functools.wraps(send_message)
    def marked(*args: Any, **kwargs: Any) -> Any:
        _sending.active = True
        try:
            return send_message(*args, **kwargs)
        finally:
            _sending.active = False

    return marked


def install() -> None:
    """Patch moto (idempotent)."""
    if getattr(DomainDispatcherApplication, "_localaws_speed_installed", False):
        return
    DomainDispatcherApplication.get_backend_for_host = _remembering_backend_for_host(  # type: ignore[method-assign]
        DomainDispatcherApplication.get_backend_for_host)
    SQSBackend.is_message_valid_based_on_retention_period = _is_message_valid_based_on_retention_period  # type: ignore[method-assign]
    iam_models.get_account_id_from = _remembering_account_of_key(iam_models.get_account_id_from)
    for create in ("create_access_key", "create_temp_access_key"):
        setattr(iam_models.IAMBackend, create, _KeyCreations.counting(getattr(iam_models.IAMBackend, create)))
    Queue.attributes = _attributes_as_read_while_sending(Queue.attributes)  # type: ignore[method-assign,assignment]
    SQSBackend.send_message = _marking_sends(SQSBackend.send_message)  # type: ignore[method-assign]
    Queue.messages = property(_visible_messages)  # type: ignore[method-assign,assignment]
    DomainDispatcherApplication._localaws_speed_installed = True  # type: ignore[attr-defined]
