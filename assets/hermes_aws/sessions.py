"""Conversation history in DynamoDB, for Hermes turns run outside a long-lived gateway.

Hermes 0.19.0 has no pluggable session store: ``AIAgent.run_conversation``
takes the history as ``conversation_history`` (OpenAI-format message dicts)
and returns the whole list in ``result["messages"]``. This module keeps those
dicts per chat in one DynamoDB table (single-table design, on-demand)::

    PK = SESSION#<key>   SK = META
        session_id   current session of the chat (``/new`` starts another)
        next_seq     sequence number of the next message (per chat, never reset,
                     so the messages of different sessions never collide)
        version      bumped by every write; every write is conditional on it
        created_at, updated_at (ISO 8601), expires_at (epoch s, optional TTL)
    PK = SESSION#<key>   SK = MSG#<session_id>#<seq:010d>
        message      the message dict as a JSON string (role, content,
                     tool_calls, tool_call_id, name, reasoning, ...)
        role, session_id, seq, created_at, expires_at (optional)

``<key>`` is ``<channel>:<chat id>``, e.g. ``telegram:12345`` (a Telegram forum
topic is a conversation of its own: ``telegram:<chat id>:<topic id>``).

Concurrency: :meth:`SessionStore.append` writes a turn's messages and advances
META's ``next_seq`` and ``version`` in one ``TransactWriteItems``, conditional
on the ``version`` it read (and each message key not existing yet). A writer
that lost the race gets a ``TransactionCanceledException``, re-reads META and
appends after the winner, so no turn is lost or overwritten. A turn that ran
while ``/new`` replaced the session is still written under the session it was
loaded from (it never leaks into the new one).

A transaction holds at most 100 items and 4 MB, so a turn with more than 99
messages (a long tool loop) is written in several transactions; only in that
case can another writer's messages land between two parts of one turn.

DynamoDB items are limited to 400 KB: a message whose JSON would not fit is
shrunk by cutting its longest strings (tool results first) and appending
:data:`TRUNCATION_MARKER`, so a huge tool output never fails a turn.

History for the next turn (:meth:`SessionStore.load_history`): the last
``max_messages`` messages of the current session (strongly consistent query,
newest first, then reversed), trimmed so it starts at a ``user`` message: a
history must never start with a tool result (or an assistant tool call) whose
counterpart was cut off. When Hermes compacted the context during a turn
(its context compressor returns a summarised message list), the worker starts
a new session holding the compacted list (:meth:`SessionStore.replace_session`),
as Hermes itself does when it splits a session on compression.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

logger = logging.getLogger(__name__)

TABLE_ENV = "HERMES_AWS_TABLE"
HISTORY_MAX_ENV = "HERMES_AWS_HISTORY_MAX_MESSAGES"
TTL_DAYS_ENV = "HERMES_AWS_SESSION_TTL_DAYS"
DEFAULT_HISTORY_MAX = 200

META_SK = "META"
TTL_ATTRIBUTE = "expires_at"
#: DynamoDB's item limit is 400 KB (names + values, UTF-8). Leave room for the
#: key and the other attributes.
MAX_MESSAGE_BYTES = 350_000
TRUNCATION_MARKER = "[... truncated by hermes-aws: {cut} characters removed to fit the DynamoDB item limit ...]"
#: TransactWriteItems allows 100 actions; one is the META update.
MAX_MESSAGES_PER_TRANSACTION = 99
#: and 4 MB in total.
MAX_TRANSACTION_BYTES = 3_800_000
MAX_APPEND_ATTEMPTS = 8


class SessionConflict(RuntimeError):
    """Another writer kept winning the race for META; the caller may retry the whole message."""


class ExtraConditionFailed(RuntimeError):
    """A condition of an ``also`` action failed; the transaction wrote nothing."""

    def __init__(self, reasons: Sequence[str | None]) -> None:
        super().__init__(f"condition of an extra transaction item failed: {list(reasons)}")
        self.reasons = list(reasons)


@dataclass(frozen=True)
class SessionMeta:
    key: str
    session_id: str
    next_seq: int
    version: int
    created_at: str = ""
    updated_at: str = ""


def pk(key: str) -> str:
    return f"SESSION#{key}"


def msg_sk(session_id: str, seq: int) -> str:
    return f"MSG#{session_id}#{seq:010d}"


def new_session_id() -> str:
    """Sortable, unique: ``20260521T101500Z-<12 hex>``."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:12]


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


# --------------------------------------------------------------------------- message encoding


def encode_message(message: Mapping[str, Any], limit: int = MAX_MESSAGE_BYTES) -> tuple[str, bool]:
    """JSON for ``message`` of at most ``limit`` UTF-8 bytes; (json, truncated?).

    Oversized messages are shrunk by cutting their longest string values:
    ``content`` of tool results first, then any ``content``, then any other
    string (tool-call arguments last, as cutting them breaks their JSON).
    """
    text = json.dumps(message, ensure_ascii=False, default=str, separators=(",", ":"))
    if len(text.encode("utf-8")) <= limit:
        return text, False
    msg = json.loads(text)  # a deep copy with only JSON types
    for _ in range(64):  # each pass cuts the longest string; a few passes always suffice
        size = len(json.dumps(msg, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
        if size <= limit:
            break
        path, value = _longest_string(msg)
        if path is None or value is None:
            break
        excess = size - limit
        # characters to cut: bytes over the limit (a char is >= 1 byte) plus the marker's size
        cut = min(len(value), excess + len(TRUNCATION_MARKER) + 32)
        keep = max(0, len(value) - cut)
        _set_path(msg, path, value[:keep] + TRUNCATION_MARKER.format(cut=len(value) - keep))
    text = json.dumps(msg, ensure_ascii=False, separators=(",", ":"))
    if len(text.encode("utf-8")) > limit:  # pathological: thousands of small strings
        stub = {k: msg[k] for k in ("role", "tool_call_id", "name") if isinstance(msg, dict) and k in msg}
        stub["content"] = TRUNCATION_MARKER.format(cut=len(text))
        text = json.dumps(stub, ensure_ascii=False, separators=(",", ":"))
    return text, True


def _longest_string(msg: Any) -> tuple[list[Any] | None, str | None]:
    """Path and value of the string to cut next, by priority then length."""
    candidates: list[tuple[int, int, list[Any], str]] = []

    def walk(obj: Any, path: list[Any]) -> None:
        if isinstance(obj, str):
            if len(obj) > len(TRUNCATION_MARKER) + 64:
                top = path[0] if path else None
                if top == "content":
                    priority = 0 if isinstance(msg, dict) and msg.get("role") == "tool" else 1
                elif top == "tool_calls":
                    priority = 3
                else:
                    priority = 2
                candidates.append((priority, -len(obj), path, obj))
        elif isinstance(obj, dict):
            for k, v in obj.items():
                walk(v, [*path, k])
        elif isinstance(obj, list):
            for i, v in enumerate(obj):
                walk(v, [*path, i])

    walk(msg, [])
    if not candidates:
        return None, None
    candidates.sort(key=lambda c: (c[0], c[1]))
    _, _, path, value = candidates[0]
    return path, value


def _set_path(obj: Any, path: list[Any], value: Any) -> None:
    for part in path[:-1]:
        obj = obj[part]
    obj[path[-1]] = value


def trim_to_user_boundary(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Drop leading messages until the first ``user`` message (none left when there is none)."""
    for i, m in enumerate(messages):
        if m.get("role") == "user":
            return [dict(x) for x in messages[i:]]
    return []


# --------------------------------------------------------------------------- the store


class SessionStore:
    """Sessions of chats in one DynamoDB table (see the module docstring)."""

    def __init__(
        self,
        table: str,
        *,
        client: Any = None,
        max_messages: int = DEFAULT_HISTORY_MAX,
        ttl_days: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if client is None:
            import boto3

            client = boto3.client("dynamodb")
        self.table = table
        self.client = client
        self.max_messages = max_messages
        self.ttl_days = ttl_days
        self.clock = clock

    @classmethod
    def from_env(cls, environ: Mapping[str, str], *, client: Any = None) -> SessionStore:
        table = (environ.get(TABLE_ENV) or "").strip()
        if not table:
            raise ValueError(f"{TABLE_ENV} is not set")
        return cls(
            table,
            client=client,
            max_messages=_positive_int(environ.get(HISTORY_MAX_ENV), DEFAULT_HISTORY_MAX, HISTORY_MAX_ENV),
            ttl_days=_positive_float(environ.get(TTL_DAYS_ENV), TTL_DAYS_ENV),
        )

    # -- helpers -----------------------------------------------------------
    def _ttl(self) -> dict[str, Any]:
        if not self.ttl_days:
            return {}
        return {TTL_ATTRIBUTE: {"N": str(int(self.clock() + self.ttl_days * 86400))}}

    @staticmethod
    def _meta_from_item(key: str, item: Mapping[str, Any]) -> SessionMeta:
        return SessionMeta(
            key=key,
            session_id=item["session_id"]["S"],
            next_seq=int(item["next_seq"]["N"]),
            version=int(item["version"]["N"]),
            created_at=item.get("created_at", {}).get("S", ""),
            updated_at=item.get("updated_at", {}).get("S", ""),
        )

    # -- META ----------------------------------------------------------------
    def get_meta(self, key: str) -> SessionMeta | None:
        resp = self.client.get_item(
            TableName=self.table, Key={"PK": {"S": pk(key)}, "SK": {"S": META_SK}}, ConsistentRead=True,
        )
        item = resp.get("Item")
        return self._meta_from_item(key, item) if item else None

    def current(self, key: str) -> SessionMeta:
        """META of the chat, creating it (a first session) when the chat is new."""
        meta = self.get_meta(key)
        if meta is not None:
            return meta
        now = _now_iso()
        item = {
            "PK": {"S": pk(key)}, "SK": {"S": META_SK},
            "session_id": {"S": new_session_id()}, "next_seq": {"N": "0"}, "version": {"N": "0"},
            "created_at": {"S": now}, "updated_at": {"S": now}, **self._ttl(),
        }
        try:
            self.client.put_item(TableName=self.table, Item=item, ConditionExpression="attribute_not_exists(PK)")
        except self.client.exceptions.ConditionalCheckFailedException:
            meta = self.get_meta(key)  # another writer created it first: use theirs
            if meta is None:  # pragma: no cover - deleted in between
                raise SessionConflict(f"META of {key} vanished while being created") from None
            return meta
        return self._meta_from_item(key, item)

    def new_session(
        self, key: str, *, session_id: str | None = None, also: Sequence[Mapping[str, Any]] = (),
    ) -> SessionMeta:
        """Start a fresh session for the chat (``/new``); returns the new META.

        ``session_id``: the new id (default: generated). ``also``: extra
        ``TransactWriteItems`` actions written atomically with it (see :meth:`append`).
        """
        session_id = session_id or new_session_id()
        for _ in range(MAX_APPEND_ATTEMPTS):
            meta = self.current(key)
            try:
                return self._write_chunk(meta, session_id, [], new_session_id=session_id, also=also)
            except _TransactionConflict:
                continue
        raise SessionConflict(f"could not start a new session for {key}: META kept changing")

    def _meta_update_parts(
        self, meta: SessionMeta, *, session_id: str, next_seq: int, now: str,
    ) -> tuple[dict[str, str], dict[str, Any], list[str]]:
        names = {"#version": "version", "#sid": "session_id", "#next": "next_seq", "#updated": "updated_at"}
        values: dict[str, Any] = {
            ":expected": {"N": str(meta.version)}, ":version": {"N": str(meta.version + 1)},
            ":sid": {"S": session_id}, ":next": {"N": str(next_seq)}, ":updated": {"S": now},
        }
        sets = ["#version = :version", "#sid = :sid", "#next = :next", "#updated = :updated"]
        ttl = self._ttl()
        if ttl:
            names["#ttl"] = TTL_ATTRIBUTE
            values[":ttl"] = ttl[TTL_ATTRIBUTE]
            sets.append("#ttl = :ttl")
        return names, values, sets

    # -- history ---------------------------------------------------------------
    def load_history(self, key: str, meta: SessionMeta | None = None) -> list[dict[str, Any]]:
        """The last ``max_messages`` messages of the current session, starting at a user message."""
        meta = meta or self.get_meta(key)
        if meta is None or self.max_messages <= 0:
            return []
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "PK = :pk AND begins_with(SK, :prefix)",
            "ExpressionAttributeValues": {
                ":pk": {"S": pk(key)}, ":prefix": {"S": f"MSG#{meta.session_id}#"},
            },
            "ProjectionExpression": "message",
            "ScanIndexForward": False,  # newest first
            "ConsistentRead": True,
        }
        while len(items) < self.max_messages:
            kwargs["Limit"] = self.max_messages - len(items)
            resp = self.client.query(**kwargs)
            items.extend(resp.get("Items", []))
            if "LastEvaluatedKey" not in resp:
                break
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
        messages = [json.loads(item["message"]["S"]) for item in reversed(items)]
        return trim_to_user_boundary(messages)

    def session_messages(self, key: str, session_id: str) -> list[dict[str, Any]]:
        """Every stored message of one session, oldest first (tests, tools)."""
        out: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "PK = :pk AND begins_with(SK, :prefix)",
            "ExpressionAttributeValues": {":pk": {"S": pk(key)}, ":prefix": {"S": f"MSG#{session_id}#"}},
            "ConsistentRead": True,
        }
        while True:
            resp = self.client.query(**kwargs)
            out.extend(json.loads(i["message"]["S"]) for i in resp.get("Items", []))
            if "LastEvaluatedKey" not in resp:
                return out
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    # -- writes ----------------------------------------------------------------
    def append(
        self, key: str, session_id: str, messages: Sequence[Mapping[str, Any]],
        *, meta: SessionMeta | None = None, also: Sequence[Mapping[str, Any]] = (),
    ) -> SessionMeta:
        """Append ``messages`` to ``session_id`` of the chat; returns META after the write.

        ``meta`` is what the caller read before the turn (saves a read); when
        it is stale the conditional write fails and META is read again.

        ``also``: further ``TransactWriteItems`` actions (e.g. the worker's
        idempotency record) written in the same transaction as the last
        messages, so "turn stored" and "record says stored" cannot disagree.
        When one of *their* conditions fails, :class:`ExtraConditionFailed` is
        raised (nothing of that transaction was written).
        """
        if not messages and not also:
            return meta or self.current(key)
        encoded = []
        for m in messages:
            text, truncated = encode_message(m)
            if truncated:
                logger.warning("session %s: a %s message was truncated to fit DynamoDB", key, m.get("role"))
            encoded.append((str(m.get("role") or ""), text))
        return self._write_parts(
            key, session_id, encoded, meta=meta, also=also, new_session_id=None,
            failure=lambda n: f"could not append to {key} after {n} attempts: META kept changing",
        )

    def replace_session(
        self, key: str, messages: Sequence[Mapping[str, Any]], *, session_id: str | None = None,
        also: Sequence[Mapping[str, Any]] = (),
    ) -> SessionMeta:
        """Start a new session that holds ``messages`` (a compacted transcript); returns META.

        ``session_id`` and ``also`` as in :meth:`new_session` / :meth:`append`
        (``also`` is written with the last part).
        """
        encoded = [(str(m.get("role") or ""), encode_message(m)[0]) for m in messages]
        session_id = session_id or new_session_id()
        return self._write_parts(
            key, session_id, encoded, meta=None, also=also, new_session_id=session_id,
            failure=lambda n: f"could not replace the session of {key}",
        )

    def _write_parts(
        self, key: str, session_id: str, encoded: Sequence[tuple[str, str]], *,
        meta: SessionMeta | None, also: Sequence[Mapping[str, Any]], new_session_id: str | None,
        failure: Callable[[int], str],
    ) -> SessionMeta:
        """Write ``encoded`` messages in transaction-sized parts; return META after the last part.

        ``new_session_id`` (if any) is switched to by the first part written, ``also``
        is written with the last. A part whose META condition fails (another writer
        got there first) is retried after re-reading META; after
        ``MAX_APPEND_ATTEMPTS`` conflicts in all, :class:`SessionConflict` is raised
        with ``failure(attempts)`` as its message.
        """
        remaining = encoded
        attempts = 0
        while True:
            if meta is None:
                meta = self.current(key)
            chunk = _take_chunk(remaining, reserve=len(also))
            last = len(chunk) == len(remaining)
            try:
                meta = self._write_chunk(meta, session_id, chunk, new_session_id=new_session_id,
                                         also=also if last else ())
            except _TransactionConflict:
                attempts += 1
                if attempts >= MAX_APPEND_ATTEMPTS:
                    raise SessionConflict(failure(attempts)) from None
                logger.info("session %s: concurrent write, re-reading META (attempt %d)", key, attempts)
                meta = None
                continue
            new_session_id = None  # only the first part starts the session
            remaining = remaining[len(chunk):]
            if last:
                return meta

    def _write_chunk(
        self, meta: SessionMeta, session_id: str, chunk: Sequence[tuple[str, str]],
        *, new_session_id: str | None, also: Sequence[Mapping[str, Any]] = (),
    ) -> SessionMeta:
        now = _now_iso()
        ttl = self._ttl()
        start = meta.next_seq
        current_sid = new_session_id or meta.session_id
        names, values, sets = self._meta_update_parts(
            meta, session_id=current_sid, next_seq=start + len(chunk), now=now)
        actions: list[dict[str, Any]] = [{
            "Update": {
                "TableName": self.table,
                "Key": {"PK": {"S": pk(meta.key)}, "SK": {"S": META_SK}},
                "UpdateExpression": "SET " + ", ".join(sets),
                "ConditionExpression": "#version = :expected",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
        }]
        for offset, (role, text) in enumerate(chunk):
            seq = start + offset
            actions.append({
                "Put": {
                    "TableName": self.table,
                    "Item": {
                        "PK": {"S": pk(meta.key)}, "SK": {"S": msg_sk(session_id, seq)},
                        "message": {"S": text}, "role": {"S": role},
                        "session_id": {"S": session_id}, "seq": {"N": str(seq)},
                        "created_at": {"S": now}, **ttl,
                    },
                    "ConditionExpression": "attribute_not_exists(SK)",
                }
            })
        own = len(actions)
        actions.extend(dict(a) for a in also)
        try:
            self.client.transact_write_items(TransactItems=actions)
        except self.client.exceptions.TransactionCanceledException as exc:
            reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
            if any(code == "ConditionalCheckFailed" for code in reasons[own:]):
                raise ExtraConditionFailed(reasons[own:]) from exc
            if any(code == "ConditionalCheckFailed" for code in reasons[:own]) or not reasons:
                raise _TransactionConflict() from exc
            raise
        return SessionMeta(meta.key, current_sid, start + len(chunk), meta.version + 1, meta.created_at, now)


class _TransactionConflict(Exception):
    pass


def _take_chunk(encoded: Sequence[tuple[str, str]], *, reserve: int = 0) -> list[tuple[str, str]]:
    """The longest prefix that fits one transaction (at least one message).

    ``reserve`` actions are kept free when the whole rest fits (for ``also``).
    """
    limit = MAX_MESSAGES_PER_TRANSACTION
    if len(encoded) + reserve <= MAX_MESSAGES_PER_TRANSACTION:
        limit = len(encoded)
    elif len(encoded) <= MAX_MESSAGES_PER_TRANSACTION:
        limit = len(encoded) - 1  # leave the last message(s) for a final part with room for ``also``
    chunk: list[tuple[str, str]] = []
    size = 0
    for role, text in encoded:
        n = len(text.encode("utf-8")) + 200
        if chunk and (len(chunk) >= limit or size + n > MAX_TRANSACTION_BYTES):
            break
        chunk.append((role, text))
        size += n
    return chunk


def _positive_int(raw: str | None, default: int, name: str) -> int:
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return value


def _positive_float(raw: str | None, name: str) -> float | None:
    if raw is None or not raw.strip():
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return value
