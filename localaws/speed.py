"""Two of moto's hot paths made cheap, with the same answers.

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
"""

from __future__ import annotations

from typing import Any

from moto.core.utils import unix_time
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


def install() -> None:
    """Patch moto (idempotent)."""
    if getattr(DomainDispatcherApplication, "_localaws_speed_installed", False):
        return
    DomainDispatcherApplication.get_backend_for_host = _remembering_backend_for_host(  # type: ignore[method-assign]
        DomainDispatcherApplication.get_backend_for_host)
    SQSBackend.is_message_valid_based_on_retention_period = _is_message_valid_based_on_retention_period  # type: ignore[method-assign]
    DomainDispatcherApplication._localaws_speed_installed = True  # type: ignore[attr-defined]
