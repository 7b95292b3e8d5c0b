"""Three of moto's hot paths made cheap, with the same answers.

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
"""

from __future__ import annotations

from typing import Any

from moto.core.utils import unix_time
from moto.iam import models as iam_models
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.sqs.models import Message, SQSBackend


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


def _remembering_account_of_key(original):
    account_by_key: dict[str, str] = {}

    def get_account_id_from(access_key: str) -> str:
        account_id = account_by_key.get(access_key)
        if account_id is not None:
            account = iam_models.iam_backends.get(account_id)
            if account is not None and any(
                    access_key in account[partition].access_keys for partition in iam_models.PARTITION_NAMES):
                return account_id
        account_id = original(access_key)
        if account_id != iam_models.DEFAULT_ACCOUNT_ID:
            account_by_key[access_key] = account_id
        return account_id

    return get_account_id_from


def install() -> None:
    """Patch moto (idempotent)."""
    if getattr(DomainDispatcherApplication, "_localaws_speed_installed", False):
        return
    DomainDispatcherApplication.get_backend_for_host = _remembering_backend_for_host(  # type: ignore[method-assign]
        DomainDispatcherApplication.get_backend_for_host)
    SQSBackend.is_message_valid_based_on_retention_period = _is_message_valid_based_on_retention_period  # type: ignore[method-assign]
    iam_models.get_account_id_from = _remembering_account_of_key(iam_models.get_account_id_from)
    DomainDispatcherApplication._localaws_speed_installed = True  # type: ignore[attr-defined]
