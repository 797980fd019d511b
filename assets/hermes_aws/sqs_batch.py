"""One SQS FIFO batch, record by record, keeping each chat's order (standard library only).

The consumers of the agent's queue (the serverless worker and the AgentCore
dispatcher, both through :func:`process_batch`) receive batches from Lambda's
SQS event source with ``ReportBatchItemFailures``. :func:`process_batch` calls
``process(record, info)`` for each record and returns the
``{"batchItemFailures": [...]}`` answer:

* a record whose ``process`` raises is reported failed (SQS retries it; the
  FIFO queue holds the rest of its message group back);
* once a record of a group failed, every later record of that group in the
  batch is reported failed unprocessed, so a chat's order is kept;
* a record other than the first is not started with less than
  :data:`MIN_REMAINING_MS` of the invocation left (a function timeout would fail
  the whole batch); it is handed back, and so is the rest of its group.

``info.last_attempt`` tells ``process`` that SQS will dead-letter the message
if this attempt fails too (``ApproximateReceiveCount >= max_receive_count``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hermes_aws import events

logger = logging.getLogger(__name__)

#: a further record of a batch is not started with less time than this left
MIN_REMAINING_MS = 60_000


@dataclass
class RecordInfo:
    message_id: str
    group_id: str | None
    receive_count: int
    max_receive_count: int
    receipt_handle: str | None = None
    context: Any = None

    @property
    def last_attempt(self) -> bool:
        return self.receive_count >= self.max_receive_count


def record_info(record: Mapping[str, Any], max_receive_count: int, context: Any = None) -> RecordInfo:
    attrs = record.get("attributes") or {}
    return RecordInfo(
        message_id=str(record.get("messageId")),
        group_id=attrs.get("MessageGroupId"),
        receive_count=_int(attrs.get("ApproximateReceiveCount"), 1),
        max_receive_count=max_receive_count,
        receipt_handle=record.get("receiptHandle"),
        context=context,
    )


def process_batch(event: Mapping[str, Any] | None, context: Any, *, max_receive_count: int,
                  process: Callable[[dict[str, Any], RecordInfo], None],
                  skip_event: str = "consumer_skip") -> dict[str, Any]:
    failures: list[str] = []
    failed_groups: set[str] = set()
    for index, record in enumerate((event or {}).get("Records") or []):
        info = record_info(record, max_receive_count, context)
        if info.group_id is not None and info.group_id in failed_groups:
            failures.append(info.message_id)
            events.emit(skip_event, message_id=info.message_id, group=info.group_id,
                        reason="an earlier message of this group failed in this batch")
            continue
        remaining = remaining_ms(context) if index > 0 else None  # the first one always runs
        if remaining is not None and remaining < MIN_REMAINING_MS:
            failures.append(info.message_id)
            if info.group_id is not None:
                failed_groups.add(info.group_id)
            events.emit(skip_event, message_id=info.message_id, group=info.group_id,
                        reason="too little time left in this invocation", remaining_ms=remaining)
            continue
        try:
            process(record, info)
        except Exception:
            logger.exception("message %s failed (receive %d/%d)", info.message_id,
                             info.receive_count, info.max_receive_count)
            failures.append(info.message_id)
            if info.group_id is not None:
                failed_groups.add(info.group_id)
    return {"batchItemFailures": [{"itemIdentifier": mid} for mid in failures]}


def remaining_ms(context: Any) -> int | None:
    getter = getattr(context, "get_remaining_time_in_millis", None)
    if getter is None:
        return None
    try:
        return int(getter())
    except Exception:  # pragma: no cover
        return None


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default
