"""The idempotency ledger of the agent's queue consumers (standard library only).

One item per delivered message or job tick in the sessions table:
``PK=UPDATE#<key>``, ``SK=STATE``, where ``key`` is the message's
``dedup_key`` (``telegram:<update_id>``, ``slack:<event_id>``) or a job
tick's (``cron:<job id>:<scheduled time>``). ``status``:

* no item: new, to be processed;
* :data:`STATUS_PERSISTED`: the turn and its reply text are stored (the
  ``Update`` of :meth:`UpdateLedger.persisted_action` goes into the same
  DynamoDB transaction as the session messages) but the reply was not
  (completely) delivered: send the stored text (from ``chunks_sent`` on), do
  not run the turn again;
* :data:`STATUS_DELIVERED`: done, acknowledge;
* :data:`STATUS_APOLOGIZED`: the last attempt failed and the chat was told
  once (:meth:`UpdateLedger.claim_apology`); a DLQ redrive processes it again.

Items expire (``expires_at``) after :data:`LEDGER_TTL_SECONDS`, longer than
SQS keeps a message. The serverless worker, the AgentCore dispatcher and the
AgentCore container all use it (:mod:`hermes_aws.turns`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

STATUS_PERSISTED = "PERSISTED"
STATUS_DELIVERED = "DELIVERED"
STATUS_APOLOGIZED = "APOLOGIZED"
#: idempotency records outlive SQS's maximum retention (14 days) so a late redelivery is still caught
LEDGER_TTL_SECONDS = 15 * 86400
MAX_STORED_REPLY_CHARS = 300_000


class AlreadyPersisted(RuntimeError):
    """The update already has a stored reply (or was delivered): another attempt won."""

    def __init__(self, key: str) -> None:
        super().__init__(f"{key} was persisted by a concurrent invocation")
        self.key = key


@dataclass
class UpdateState:
    key: str
    status: str | None = None
    reply: str | None = None
    chunks_sent: int = 0
    session_id: str | None = None

    @property
    def delivered(self) -> bool:
        return self.status == STATUS_DELIVERED

    @property
    def pending_reply(self) -> str | None:
        """The stored reply still to be (re)sent, if the turn already ran."""
        return self.reply if self.status in (STATUS_PERSISTED, STATUS_APOLOGIZED) else None


class UpdateLedger:
    """``UPDATE#<key>`` / ``STATE`` items in the sessions table (see the module doc)."""

    def __init__(self, table: str, client: Any, clock: Callable[[], float] = time.time) -> None:
        self.table = table
        self.client = client
        self.clock = clock

    @staticmethod
    def _key(key: str) -> dict[str, Any]:
        return {"PK": {"S": f"UPDATE#{key}"}, "SK": {"S": "STATE"}}

    @staticmethod
    def _now() -> str:
        return datetime.now(timezone.utc).isoformat(timespec="milliseconds")

    def _ttl(self) -> dict[str, str]:
        return {"N": str(int(self.clock() + LEDGER_TTL_SECONDS))}

    def get(self, key: str) -> UpdateState:
        item = self.client.get_item(TableName=self.table, Key=self._key(key), ConsistentRead=True).get("Item")
        if not item:
            return UpdateState(key)
        return UpdateState(
            key=key,
            status=item.get("status", {}).get("S"),
            reply=item.get("reply", {}).get("S"),
            chunks_sent=int(item.get("chunks_sent", {}).get("N", "0")),
            session_id=item.get("session_id", {}).get("S"),
        )

    def persisted_action(self, key: str, reply: str, *, session_key: str, session_id: str) -> dict[str, Any]:
        """A ``TransactWriteItems`` Update recording the stored reply.

        Only over no record or an apology (a DLQ redrive); ``apologized_at``
        survives, so an update is never apologised for twice.
        """
        return {"Update": {
            "TableName": self.table,
            "Key": self._key(key),
            "UpdateExpression": "SET #status = :persisted, reply = :reply, chunks_sent = :zero, "
                                "session_key = :skey, session_id = :sid, persisted_at = :now, expires_at = :ttl",
            "ConditionExpression": "attribute_not_exists(PK) OR #status = :apologized",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {
                ":persisted": {"S": STATUS_PERSISTED}, ":apologized": {"S": STATUS_APOLOGIZED},
                ":reply": {"S": reply[:MAX_STORED_REPLY_CHARS]}, ":zero": {"N": "0"},
                ":skey": {"S": session_key}, ":sid": {"S": session_id}, ":now": {"S": self._now()},
                ":ttl": self._ttl(),
            },
        }}

    def persist(self, key: str, reply: str, *, session_key: str, session_id: str) -> None:
        """:meth:`persisted_action` on its own (nothing else to store in the same transaction).

        Raises :class:`AlreadyPersisted` when its condition fails (another attempt stored a reply).
        """
        try:
            self.client.transact_write_items(TransactItems=[
                self.persisted_action(key, reply, session_key=session_key, session_id=session_id)])
        except self.client.exceptions.TransactionCanceledException as exc:
            reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
            if "ConditionalCheckFailed" in reasons:
                raise AlreadyPersisted(key) from None
            raise

    def record_progress(self, key: str, chunks_sent: int) -> None:
        self.client.update_item(
            TableName=self.table, Key=self._key(key),
            UpdateExpression="SET chunks_sent = :n", ExpressionAttributeValues={":n": {"N": str(chunks_sent)}})

    def mark_delivered(self, key: str, message_ids: list[Any]) -> None:
        self.client.update_item(
            TableName=self.table, Key=self._key(key),
            UpdateExpression="SET #status = :delivered, delivered_at = :now, message_ids = :ids, "
                             "expires_at = if_not_exists(expires_at, :ttl)",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":delivered": {"S": STATUS_DELIVERED}, ":now": {"S": self._now()},
                ":ids": {"S": json.dumps(message_ids)}, ":ttl": self._ttl(),
            })

    def claim_apology(self, key: str) -> bool:
        """True exactly once per update (conditional write); then the caller sends the apology."""
        try:
            self.client.update_item(
                TableName=self.table, Key=self._key(key),
                UpdateExpression="SET #status = :apologized, apologized_at = :now, "
                                 "expires_at = if_not_exists(expires_at, :ttl)",
                ConditionExpression="attribute_not_exists(apologized_at) AND "
                                    "(attribute_not_exists(#status) OR #status <> :delivered)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":apologized": {"S": STATUS_APOLOGIZED}, ":delivered": {"S": STATUS_DELIVERED},
                    ":now": {"S": self._now()}, ":ttl": self._ttl(),
                })
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True
