"""A stub Amazon Bedrock AgentCore Memory data plane on loopback, for tests.

    with StubAgentCoreMemory(namespaces=["/users/{actorId}/facts"]) as stub:
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_AGENTCORE", stub.origin)
        client = boto3.client("bedrock-agentcore")              # signed requests, real protocol
        stub.fail_next("CreateEvent", 403, "AccessDeniedException")   # scripted, in order
        stub.disconnect_next("RetrieveMemoryRecords")                 # close without answering
        ...
        stub.wait_for("CreateEvent", 1)                         # condition variable, no polling
        stub.calls_of("CreateEvent")[0].body["payload"]         # every call, failed ones too
        stub.records(actor="telegram:1")                        # what "extraction" produced

Speaks the REST-JSON protocol of the ``bedrock-agentcore`` service (botocore
``bedrock-agentcore/2024-02-28``):

* ``CreateEvent``: ``POST /memories/{memoryId}/events`` -> 201 ``{"event": {...}}``
* ``RetrieveMemoryRecords``: ``POST /memories/{memoryId}/retrieve`` -> 200
  ``{"memoryRecordSummaries": [...]}``
* ``ListEvents``: ``POST /memories/{memoryId}/actor/{actorId}/sessions/{sessionId}``

Requests must carry a SigV4 ``Authorization`` header for the
``bedrock-agentcore`` signing name (else 403 ``AccessDeniedException``); ids,
roles, text sizes and namespaces are checked against the service model's
patterns and limits (400 ``ValidationException``); an unknown memory id is
404 ``ResourceNotFoundException``. Errors are JSON ``{"message": ...}`` with an
``x-amzn-ErrorType`` header, as botocore parses them.

"Extraction" is immediate and deterministic: every ``USER`` message of a
recorded event becomes one memory record in each of the stub's namespace
templates resolved for the event's actor and session. Retrieval returns the
records whose namespace starts with the requested one, scored by the share of
the query's words (three letters or more, a few stop words left out) they
contain; records with no word in common are not returned.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from stubs import recording
from stubs.loopback import LoopbackServer, QuietHandler
from stubs.recording import RecordingStub

DEFAULT_MEMORY_ID = "hermes_memory-a1b2c3d4e5"
_PASS = -1

_MEMORY_ID = re.compile(r"[a-zA-Z][a-zA-Z0-9-_]{0,99}-[a-zA-Z0-9]{10}")
_ACTOR_ID = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9-_/]*(?::[a-zA-Z0-9-_/]+)*[a-zA-Z0-9-_/]*")
_SESSION_ID = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9-_]*")
_NAMESPACE = re.compile(r"[a-zA-Z0-9/*][a-zA-Z0-9-_/*]*(?::[a-zA-Z0-9-_/*]+)*[a-zA-Z0-9-_/*]*")
_ROLES = {"ASSISTANT", "USER", "TOOL", "OTHER"}
_WORD = re.compile(r"[a-z0-9]+")
STOP_WORDS = frozenset("the and you your are was were what which who whom this that with from for have has "
                       "had not but can could would should will about into than then them they their there "
                       "its it's our out all any how why when where".split())

_ROUTES: Sequence[tuple[str, re.Pattern[str]]] = (
    ("CreateEvent", re.compile(r"/memories/(?P<memoryId>[^/]+)/events")),
    ("RetrieveMemoryRecords", re.compile(r"/memories/(?P<memoryId>[^/]+)/retrieve")),
    ("ListEvents", re.compile(r"/memories/(?P<memoryId>[^/]+)/actor/(?P<actorId>[^/]+)/sessions/(?P<sessionId>[^/]+)")),
)


@dataclass
class RecordedCall(recording.RecordedCall):
    """``method`` is the operation name; ``params`` the URI parameters; ``body`` the JSON body."""

    body: Any = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass
class _Failure:
    status: int | None  # None: drop the connection; _PASS: serve normally
    error_type: str | None = None
    message: str = "stub failure"


@dataclass
class StoredEvent:
    memory_id: str
    actor_id: str
    session_id: str
    event_id: str
    timestamp: float
    payload: list[dict[str, Any]]


@dataclass
class MemoryRecord:
    memory_id: str
    record_id: str
    namespace: str
    strategy_id: str
    text: str
    created_at: float
    actor_id: str
    words: frozenset[str] = field(default_factory=frozenset)


def words(text: str) -> frozenset[str]:
    return frozenset(w for w in _WORD.findall(text.lower()) if len(w) >= 3 and w not in STOP_WORDS)


class ServiceError(Exception):
    def __init__(self, status: int, error_type: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.error_type, self.message, self.extra = status, error_type, message, extra


def _validation(message: str) -> ServiceError:
    return ServiceError(400, "ValidationException", message, reason="FieldValidationFailed")


class StubAgentCoreMemory(RecordingStub, LoopbackServer):
    failure_class = _Failure

    def __init__(self, namespaces: Sequence[str] = ("/users/{actorId}/facts",),
                 memory_id: str = DEFAULT_MEMORY_ID, host: str = "127.0.0.1", port: int = 0) -> None:
        self.memory_id = memory_id
        self.namespace_templates = list(namespaces)
        self.events: list[StoredEvent] = []
        self._records: list[MemoryRecord] = []
        self._event_seq = itertools.count(1)
        self._init_recording()  # calls, unauthorized, _failures, _cond
        super().__init__(_make_handler(self), "stub-agentcore-memory", host, port)

    # -- scripting -----------------------------------------------------------
    def fail_next(self, operation: str, status: int = 500, error_type: str = "ServiceException", *,
                  times: int = 1, after: int = 0, message: str = "stub failure") -> None:
        """The next ``times`` calls of ``operation`` answer ``status`` with ``error_type``."""
        with self._cond:
            for _ in range(after):
                self._failures[operation].append(_Failure(_PASS))
            for _ in range(times):
                self._failures[operation].append(_Failure(status, error_type, message))

    def add_record(self, actor_id: str, namespace: str, text: str) -> MemoryRecord:
        """Seed a long-term record directly (as if a strategy had extracted it)."""
        with self._cond:
            return self._add_record(self.memory_id, actor_id, namespace, "seeded", text)

    def reset(self) -> None:
        with self._cond:
            super().reset()
            self.events.clear()
            self._records.clear()

    # -- inspection ----------------------------------------------------------
    def records(self, actor: str | None = None) -> list[MemoryRecord]:
        with self._cond:
            return [r for r in self._records if actor is None or r.actor_id == actor]

    def events_of(self, actor: str, session: str | None = None) -> list[StoredEvent]:
        with self._cond:
            return [e for e in self.events if e.actor_id == actor and (session is None or e.session_id == session)]

    # -- operations ----------------------------------------------------------
    def _add_record(self, memory_id: str, actor_id: str, namespace: str, strategy: str, text: str) -> MemoryRecord:
        digest = hashlib.sha1(f"{namespace}\0{text}\0{len(self._records)}".encode()).hexdigest()
        record = MemoryRecord(memory_id, f"mem-{digest}", namespace, strategy, text, time.time(), actor_id,
                              words(text))
        self._records.append(record)
        return record

    def _check_memory(self, memory_id: str) -> None:
        if not _MEMORY_ID.fullmatch(memory_id):
            raise _validation(f"memoryId {memory_id!r} does not match the pattern")
        if memory_id != self.memory_id:
            raise ServiceError(404, "ResourceNotFoundException", f"Memory {memory_id} not found")

    def create_event(self, memory_id: str, body: dict[str, Any]) -> dict[str, Any]:
        self._check_memory(memory_id)
        actor, session = body.get("actorId"), body.get("sessionId")
        if not isinstance(actor, str) or not 1 <= len(actor) <= 255 or not _ACTOR_ID.fullmatch(actor):
            raise _validation(f"actorId {actor!r} is invalid")
        if not isinstance(session, str) or not 1 <= len(session) <= 100 or not _SESSION_ID.fullmatch(session):
            raise _validation(f"sessionId {session!r} is invalid")
        stamp = body.get("eventTimestamp")
        if isinstance(stamp, bool) or not isinstance(stamp, (int, float)):
            raise _validation("eventTimestamp must be an epoch timestamp")
        payload = body.get("payload")
        if not isinstance(payload, list) or len(payload) > 100:
            raise _validation("payload must be a list of at most 100 items")
        user_texts = []
        for item in payload:
            if not isinstance(item, dict) or len(item) != 1 or next(iter(item)) not in ("conversational", "blob"):
                raise _validation("each payload item must be exactly one of conversational, blob")
            conv = item.get("conversational")
            if conv is None:
                continue
            role, text = conv.get("role"), (conv.get("content") or {}).get("text")
            if role not in _ROLES:
                raise _validation(f"role {role!r} is not one of {sorted(_ROLES)}")
            if not isinstance(text, str) or not 1 <= len(text) <= 100_000:
                raise _validation("content.text must be 1 to 100000 characters")
            if role == "USER":
                user_texts.append(text)
        with self._cond:
            event_id = f"{next(self._event_seq):013d}#{hashlib.md5(actor.encode()).hexdigest()[:12]}"
            event = StoredEvent(memory_id, actor, session, event_id, float(stamp), payload)
            self.events.append(event)
            for i, template in enumerate(self.namespace_templates):
                namespace = template.replace("{actorId}", actor).replace("{sessionId}", session)
                for text in user_texts:
                    self._add_record(memory_id, actor, namespace, f"strategy-{i}", text)
        return {"event": {"memoryId": memory_id, "actorId": actor, "sessionId": session,
                          "eventId": event.event_id, "eventTimestamp": event.timestamp, "payload": payload}}

    def retrieve(self, memory_id: str, body: dict[str, Any]) -> dict[str, Any]:
        self._check_memory(memory_id)
        namespace = body.get("namespace")
        if namespace is not None and (not isinstance(namespace, str) or not _NAMESPACE.fullmatch(namespace)):
            raise _validation(f"namespace {namespace!r} is invalid")
        criteria = body.get("searchCriteria")
        if not isinstance(criteria, dict):
            raise _validation("searchCriteria is required")
        query = criteria.get("searchQuery")
        if not isinstance(query, str) or not 1 <= len(query) <= 10_000:
            raise _validation("searchCriteria.searchQuery must be 1 to 10000 characters")
        top_k = criteria.get("topK", 10)
        if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= 100:
            raise _validation("searchCriteria.topK must be 1 to 100")
        limit = min(top_k, int(body.get("maxResults") or 100))
        wanted = words(query)
        with self._cond:
            candidates = [r for r in self._records if r.memory_id == memory_id
                          and (namespace is None or r.namespace.startswith(namespace))]
        scored = [(len(wanted & r.words) / len(wanted), r) for r in candidates if wanted and wanted & r.words]
        scored.sort(key=lambda sr: (-sr[0], -sr[1].created_at))
        return {"memoryRecordSummaries": [{
            "memoryRecordId": r.record_id, "content": {"text": r.text}, "memoryStrategyId": r.strategy_id,
            "namespaces": [r.namespace], "createdAt": r.created_at, "score": round(score, 4),
        } for score, r in scored[:limit]]}

    def list_events(self, memory_id: str, actor: str, session: str) -> dict[str, Any]:
        self._check_memory(memory_id)
        return {"events": [{"memoryId": e.memory_id, "actorId": e.actor_id, "sessionId": e.session_id,
                            "eventId": e.event_id, "eventTimestamp": e.timestamp, "payload": e.payload}
                           for e in self.events_of(actor, session)]}


def signing_service(authorization: str) -> str | None:
    """``bedrock-agentcore`` from ``AWS4-HMAC-SHA256 Credential=AKID/20260521/us-east-1/bedrock-agentcore/aws4_request, ...``."""
    m = re.match(r"AWS4-HMAC-SHA256 Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request", authorization or "")
    return m.group(1) if m else None


def _make_handler(stub: StubAgentCoreMemory) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietHandler):
        protocol_version = "HTTP/1.1"
        server_version = "StubAgentCoreMemory/1"

        def do_GET(self) -> None:
            self._handle()

        def do_POST(self) -> None:
            self._handle()

        def _error(self, call: RecordedCall, err: ServiceError) -> None:
            body = {"message": err.message, **err.extra}
            call.status, call.response = err.status, body
            stub._record(call)
            self.send_json(err.status, body, {"x-amzn-ErrorType": err.error_type})

        def _handle(self) -> None:
            path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
            n = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(n) if n else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            for operation, pattern in _ROUTES:
                match = pattern.fullmatch(path)
                if match:
                    break
            else:
                operation, match = "Unknown", None
            call = RecordedCall(operation, dict(match.groupdict()) if match else {}, headers)
            try:
                call.body = json.loads(raw.decode("utf-8")) if raw else {}
            except ValueError:
                self._error(call, ServiceError(400, "ValidationException", "body is not JSON"))
                return
            if match is None or self.command != "POST":
                self._error(call, ServiceError(404, "UnknownOperationException", f"{self.command} {path}"))
                return
            if signing_service(headers.get("authorization", "")) != "bedrock-agentcore":
                with stub._cond:
                    stub.unauthorized.append(operation)
                self._error(call, ServiceError(403, "AccessDeniedException", "missing or wrong SigV4 signature"))
                return
            failure = stub._next_failure(operation)
            if failure is not None and failure.status == _PASS:
                failure = None
            if failure is not None and failure.status is None:
                call.status = 0
                stub._record(call)
                self.close_connection = True
                self.connection.close()
                return
            if failure is not None:
                self._error(call, ServiceError(failure.status, failure.error_type or "ServiceException",
                                               failure.message))
                return
            params = call.params
            try:
                if operation == "CreateEvent":
                    status, body = 201, stub.create_event(params["memoryId"], call.body)
                elif operation == "RetrieveMemoryRecords":
                    status, body = 200, stub.retrieve(params["memoryId"], call.body)
                else:
                    status, body = 200, stub.list_events(params["memoryId"], params["actorId"], params["sessionId"])
            except ServiceError as err:
                self._error(call, err)
                return
            call.status, call.response = status, body
            stub._record(call)
            self.send_json(status, body)

    return Handler
