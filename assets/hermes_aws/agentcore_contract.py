"""What the AgentCore dispatcher Lambda and the AgentCore Runtime container agree on.

Standard library only (and the light :mod:`hermes_aws.turns`): the dispatcher
(a zip Lambda without Hermes) and the container (:mod:`hermes_aws.agentcore_app`)
both import it.

Invocation
----------
``InvokeAgentRuntime(agentRuntimeArn, runtimeSessionId, runtimeUserId, payload)``:

* ``runtimeSessionId`` (:func:`runtime_session_id`): ``hermes-`` + the SHA-256
  (hex) of the chat, ``<channel>:<chat id>`` (the queue's message group), so it
  is deterministic, 71 characters (the API wants 33-256), and every message of
  one chat lands on the same microVM while it is warm. A scheduled job runs on
  the microVM of the chat it was created in (its ``origin``), or of
  ``cron:<job id>`` when it has none.
* ``runtimeUserId``: the user the message is from, ``<channel>:<user id>``
  (needs ``bedrock-agentcore:InvokeAgentRuntimeForUser`` besides
  ``InvokeAgentRuntime``); ``<platform>:<user id>`` of a job's origin, or
  ``cron`` without one.
* ``payload`` (JSON, ``application/json``)::

      {"version": 1,
       "body": <the SQS message body, exactly as the ingress or the scheduler wrote it>,
       "sqs_message_id": "...", "receive_count": 1}

  The container parses ``body`` with the same code the serverless worker uses
  (:func:`hermes_aws.chats.parse_queue_body`, :func:`hermes_aws.scheduler.fired_job`),
  so both shapes understand exactly the same messages.

Answer
------
The container answers ``application/json`` (the data plane returns it as the
streaming ``response`` body with that ``contentType``)::

      {"version": 1, "outcome": "answered" | "guardrail_blocked" | "new_session" | "silent" | "stored" | "ignored",
       "reply": "<text to send>" | null, "session_id": "...", "usage": {...},
       "model": "...", "duration_ms": 1234}

``guardrail_blocked``: a guardrail blocked the turn and ``reply`` is its
message (sent like an answer and kept in the ledger, but not stored in the
chat's history). ``stored``: an earlier attempt already ran the turn (a
dispatcher retry that reached the container while the first turn ran);
``reply`` is its stored text, ``chunks_sent`` how much of it went out, and
nothing ran again. An already delivered message is ``ignored``. ``reply`` is null when nothing is to be sent (``silent``: a job answered
Hermes's ``[SILENT]``; ``ignored``: a body that is not a message). A turn the
container could not run is an HTTP 500 from the container, which the data
plane turns into a ``RuntimeClientError``; the dispatcher retries it like any
other failure. :func:`read_response` also accepts a ``text/event-stream``
answer (``data: <json>`` lines, the SDK's format for generator handlers) and
joins the events.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

# a chat turn's outcomes (hermes_aws.turns), plus a job's "silent"
from hermes_aws.turns import (
    MODEL_OUTCOMES, OUTCOME_ANSWERED, OUTCOME_GUARDRAIL_BLOCKED, OUTCOME_IGNORED, OUTCOME_NEW_SESSION,
)

PAYLOAD_VERSION = 1
SESSION_PREFIX = "hermes-"
#: InvokeAgentRuntime's runtimeSessionId length limits (botocore: SessionType)
SESSION_ID_MIN, SESSION_ID_MAX = 33, 256
CRON_USER = "cron"

OUTCOME_SILENT = "silent"
OUTCOME_STORED = "stored"
OUTCOMES = frozenset({OUTCOME_ANSWERED, OUTCOME_GUARDRAIL_BLOCKED, OUTCOME_NEW_SESSION, OUTCOME_SILENT,
                      OUTCOME_STORED, OUTCOME_IGNORED})


class ContractError(ValueError):
    """A payload or an answer that does not follow this contract."""


def runtime_session_id(chat: str) -> str:
    """``hermes-<sha256 hex of chat>``: 71 characters, the same for every message of the chat."""
    if not chat:
        raise ContractError("a runtime session needs a chat")
    session = SESSION_PREFIX + hashlib.sha256(chat.encode("utf-8")).hexdigest()
    assert SESSION_ID_MIN <= len(session) <= SESSION_ID_MAX
    return session


def job_chat(job: Mapping[str, Any]) -> str:
    """The chat a fired job's turn belongs to: its origin chat, else ``cron:<job id>``."""
    origin = job.get("origin") if isinstance(job.get("origin"), Mapping) else None
    if origin and origin.get("platform") and origin.get("chat_id") not in (None, ""):
        return f"{origin['platform']}:{origin['chat_id']}"
    return f"cron:{job.get('id')}"


def job_user(job: Mapping[str, Any]) -> str:
    origin = job.get("origin") if isinstance(job.get("origin"), Mapping) else None
    if origin and origin.get("platform") and origin.get("user_id") not in (None, ""):
        return f"{origin['platform']}:{origin['user_id']}"
    return CRON_USER


def request_payload(body: Mapping[str, Any], *, sqs_message_id: str | None = None,
                    receive_count: int = 1) -> bytes:
    return json.dumps({"version": PAYLOAD_VERSION, "body": dict(body), "sqs_message_id": sqs_message_id,
                       "receive_count": receive_count}, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def parse_request(payload: Any) -> dict[str, Any]:
    """The queue body of an invocation payload (raises :class:`ContractError`)."""
    if not isinstance(payload, Mapping):
        raise ContractError("the payload is not a JSON object")
    if payload.get("version") != PAYLOAD_VERSION:
        raise ContractError(f"unsupported payload version {payload.get('version')!r}")
    body = payload.get("body")
    if not isinstance(body, Mapping):
        raise ContractError("the payload has no body object")
    return dict(body)


def answer(outcome: str, reply: str | None = None, **fields: Any) -> dict[str, Any]:
    if outcome not in OUTCOMES:
        raise ContractError(f"unknown outcome {outcome!r}")
    return {"version": PAYLOAD_VERSION, "outcome": outcome, "reply": reply, **fields}


def read_response(content_type: str | None, chunks: Iterable[bytes]) -> dict[str, Any]:
    """The container's answer from ``InvokeAgentRuntime``'s ``response`` stream and ``contentType``.

    ``application/json``: one JSON object. ``text/event-stream``: ``data:``
    lines, each a JSON value; the last object is the answer, and string events
    before it are joined as its ``reply`` when it has none (a handler that
    streams text). Raises :class:`ContractError` when there is no answer.
    """
    raw = b"".join(chunks)
    ctype = (content_type or "").split(";")[0].strip().lower()
    if ctype == "text/event-stream":
        texts: list[str] = []
        result: dict[str, Any] | None = None
        for line in raw.decode("utf-8").splitlines():
            if not line.startswith("data:"):
                continue
            try:
                value = json.loads(line[5:].strip())
            except ValueError as exc:
                raise ContractError(f"an event is not JSON: {line[:200]!r}") from exc
            if isinstance(value, str):
                texts.append(value)
            elif isinstance(value, Mapping):
                if "error" in value and "outcome" not in value:
                    raise ContractError(f"the runtime streamed an error: {str(value.get('error'))[:300]}")
                result = dict(value)
        if result is None and texts:
            result = answer(OUTCOME_ANSWERED, "".join(texts))
        elif result is not None and result.get("reply") is None and texts:
            result["reply"] = "".join(texts)
        if result is None:
            raise ContractError("the event stream held no answer")
        return _checked(result)
    try:
        value = json.loads(raw.decode("utf-8"))
    except ValueError as exc:
        raise ContractError(f"the answer is not JSON ({ctype or 'no content type'}): {raw[:200]!r}") from exc
    if not isinstance(value, Mapping):
        raise ContractError("the answer is not a JSON object")
    return _checked(dict(value))


def _checked(result: dict[str, Any]) -> dict[str, Any]:
    if "error" in result and "outcome" not in result:
        raise ContractError(f"the runtime answered an error: {str(result.get('error'))[:300]}")
    if result.get("outcome") not in OUTCOMES:
        raise ContractError(f"the answer has no known outcome: {str(result)[:300]}")
    reply = result.get("reply")
    if reply is not None and not isinstance(reply, str):
        raise ContractError("the answer's reply is not a string")
    return result
