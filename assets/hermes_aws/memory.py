"""Long-term memory on Amazon Bedrock AgentCore Memory, as a Hermes memory provider.

Environment (set by the construct)
----------------------------------
``HERMES_AWS_MEMORY_ID``          AgentCore Memory id; its presence turns the provider on
``HERMES_AWS_MEMORY_NAMESPACES``  JSON list of namespace templates with AgentCore's
                                  ``{actorId}``/``{sessionId}`` variables, e.g.
                                  ``["/users/{actorId}/facts", "/summaries/{actorId}/{sessionId}"]``
                                  (the namespaces of the memory's strategies)
``AWS_ENDPOINT_URL_BEDROCK_AGENTCORE``  data-plane endpoint override (tests)

How Hermes 0.19.0 runs a memory provider (checked in its source)
---------------------------------------------------------------
* ``AIAgent.__init__`` (``agent/agent_init.py``), unless ``skip_memory``: reads
  ``memory.provider`` from config.yaml and loads it with
  ``plugins.memory.load_memory_provider(name)``, which looks in the bundled
  ``plugins/memory/<name>/`` and then ``$HERMES_HOME/plugins/<name>/__init__.py``
  (a file mentioning ``MemoryProvider``) and calls its ``register(ctx)``, i.e. a
  *new provider instance per agent*. If ``is_available()`` it is initialised with
  ``session_id`` (the agent's), ``platform``, ``hermes_home``,
  ``agent_context="primary"`` and, when the agent has them, ``user_id``,
  ``user_name``, ``chat_id``, ``chat_type``, ``thread_id``.
* Before a turn (``agent/turn_context.py``): ``prefetch(user message)`` runs on a
  thread the manager waits for at most 8 s; what it returns is wrapped in a
  ``<memory-context>`` block appended to the API copy of the user message (the
  stored message keeps its text; Hermes stamps the sent text as ``api_content``).
* After a completed, non-interrupted turn (``run_agent._sync_external_memory_for_turn``):
  ``sync_turn(user text, final answer, session_id=...)`` on the manager's
  single background worker thread. ``AIAgent.close()`` does *not* wait for it,
  so a Lambda caller must call :func:`flush` before the invocation ends.
* Background-review forks are built with ``skip_memory=True``: they never
  reach the provider.

This provider
-------------
* Actor = the user: ``<platform>:<user id>`` (``telegram:123``, ``slack:U012ABC``;
  a ``user_id`` that already contains ``:`` is used as it is). No user id, a
  ``system:*`` user (Hermes's cron) or platform ``cron``: the provider stays
  idle for that agent (no recall, nothing recorded).
* Session = the agent's ``session_id`` (the chat's current session), updated
  by ``on_session_switch`` (compression, ``/new``).
* Record: one ``CreateEvent`` per completed turn with a conversational payload
  ``[USER text, ASSISTANT text]``; AgentCore's strategies extract long-term
  records from the events asynchronously.
* Recall: ``RetrieveMemoryRecords`` in each configured namespace (templates
  resolved for this actor/session) with the user's message as the search
  query; records outside the namespace (the service matches by prefix, so
  ``/users/telegram:1`` also finds ``/users/telegram:12``) are dropped; the
  rest is merged by score, de-duplicated and capped.
* Failures of the memory service never fail a turn: every call is caught,
  logged, and reported as a ``{"event": "memory", "op": "recall"|"record",
  "ok": false, ...}`` line (one line per call; ``ok: true`` lines carry counts).
  Each such line is also an embedded-metric-format record: ``MemoryFailures``
  (Count, 1 when ``ok`` is false, else 0) in ``HermesAgent/Serverless`` by
  ``Agent`` (``$HERMES_AWS_AGENT_NAME``, default ``default``), what the
  constructs' memory alarm watches (Sum).

Activation (cold start): :func:`activate` installs the plugin shim under
``$HERMES_HOME/plugins/`` and sets ``memory.provider`` in config.yaml.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Mapping, MutableMapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from agent.memory_provider import MemoryProvider

from hermes_aws import events

logger = logging.getLogger(__name__)

MEMORY_ID_ENV = "HERMES_AWS_MEMORY_ID"
NAMESPACES_ENV = "HERMES_AWS_MEMORY_NAMESPACES"
PROVIDER_NAME = "agentcore_memory"  # memory.provider and the plugin directory's name
CONFIG_FILE = "config.yaml"

DEFAULT_TOP_K = 5  # records asked for per namespace
MAX_RECORDS = 10  # records put into the prompt
MAX_CONTEXT_CHARS = 4000
MAX_QUERY_CHARS = 10_000  # searchQuery limit of RetrieveMemoryRecords
MAX_CONTENT_CHARS = 100_000  # conversational content limit of CreateEvent
FLUSH_TIMEOUT = 10.0
RECALL_ATTEMPTS = 2  # total attempts per RetrieveMemoryRecords call
RECORD_ATTEMPTS = 3  # total attempts per CreateEvent call

_VARIABLE = re.compile(r"\{([^{}]*)\}")
_KNOWN_VARIABLES = frozenset({"actorId", "sessionId"})
_MEMORY_ID = re.compile(r"[a-zA-Z][a-zA-Z0-9-_]{0,99}-[a-zA-Z0-9]{10}")
_ACTOR_BAD = re.compile(r"[^a-zA-Z0-9\-_/:]")
_SESSION_BAD = re.compile(r"[^a-zA-Z0-9\-_]")

CONTEXT_HEADER = "Long-term memory about this user (recalled from earlier conversations):"

PLUGIN_INIT = '''"""Hermes memory provider plugin: Amazon Bedrock AgentCore Memory.

Installed by hermes_aws.memory.activate(); the MemoryProvider lives in hermes_aws.memory.
"""

from hermes_aws.memory import AgentCoreMemoryProvider


def register(ctx):
    ctx.register_memory_provider(AgentCoreMemoryProvider())
'''
PLUGIN_YAML = f"name: {PROVIDER_NAME}\ndescription: Amazon Bedrock AgentCore Memory (hermes-aws)\n"


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class MemorySettings:
    memory_id: str
    namespaces: tuple[str, ...]
    top_k: int = DEFAULT_TOP_K

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> MemorySettings | None:
        """None when ``HERMES_AWS_MEMORY_ID`` is unset; ValueError naming the variable when malformed."""
        memory_id = (environ.get(MEMORY_ID_ENV) or "").strip()
        if not memory_id:
            return None
        if not _MEMORY_ID.fullmatch(memory_id):
            raise ValueError(f"{MEMORY_ID_ENV} is not an AgentCore Memory id (like my_memory-a1b2c3d4e5), "
                             f"got {memory_id!r}")
        return cls(memory_id, parse_namespaces(environ.get(NAMESPACES_ENV)))


def parse_namespaces(raw: str | None, *, source: str = NAMESPACES_ENV) -> tuple[str, ...]:
    """Validate the JSON list of namespace templates.

    Every template must use ``{actorId}`` or ``{sessionId}`` (a namespace without
    either would be shared by all users) and no other variable (a namespace is
    searched by prefix, so an unresolved ``{memoryStrategyId}`` cannot be used).
    """
    if raw is None or not raw.strip():
        raise ValueError(f"{source} must be set (a JSON list of namespace templates) when {MEMORY_ID_ENV} is")
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"{source} is not valid JSON: {exc}") from None
    if not isinstance(data, list) or not data or not all(isinstance(t, str) and t.strip() for t in data):
        raise ValueError(f"{source} must be a non-empty JSON list of strings, got {raw!r}")
    out: list[str] = []
    for template in (t.strip() for t in data):
        names = set(_VARIABLE.findall(template))
        unknown = sorted(names - _KNOWN_VARIABLES)
        if unknown:
            raise ValueError(f"{source}: namespace {template!r} uses {', '.join('{' + n + '}' for n in unknown)}; "
                             "only {actorId} and {sessionId} can be resolved")
        if not names:
            raise ValueError(f"{source}: namespace {template!r} has neither {{actorId}} nor {{sessionId}}; "
                             "it would be shared by every user")
        if template not in out:
            out.append(template)
    return tuple(out)


def resolve_namespace(template: str, actor_id: str, session_id: str) -> str:
    return template.replace("{actorId}", actor_id).replace("{sessionId}", session_id)


def actor_id_for(platform: str | None, user_id: Any) -> str | None:
    """``telegram:123``; None for no user, Hermes's ``system:*`` users and cron agents."""
    user = str(user_id or "").strip()
    platform = str(platform or "").strip().lower()
    if not user or user.startswith("system:") or platform == "cron":
        return None
    actor = user if ":" in user else f"{platform or 'user'}:{user}"
    actor = _ACTOR_BAD.sub("_", actor).strip(":")
    if not actor or not actor[0].isalnum():
        actor = "u" + actor
    return actor[:255]


def session_id_for(session_id: Any) -> str:
    """A session id AgentCore accepts (``[a-zA-Z0-9][a-zA-Z0-9-_]*``, at most 100 characters)."""
    sid = _SESSION_BAD.sub("-", str(session_id or "").strip())[:100]
    if not sid or not sid[0].isalnum():
        sid = ("s" + sid)[:100]
    return sid


# --------------------------------------------------------------------------- process state

_lock = threading.Lock()
_settings: MemorySettings | None = None
_clients: dict[str, Any] = {}


def configure(settings: MemorySettings | None) -> None:
    """Set what new providers use (``activate`` does this); forgets the cached clients."""
    global _settings
    with _lock:
        _settings = settings
        _clients.clear()


def _current_settings() -> MemorySettings | None:
    with _lock:
        if _settings is not None:
            return _settings
    return MemorySettings.from_env(os.environ)


def _shared_client(kind: str) -> Any:
    """One ``bedrock-agentcore`` client per process and ``kind`` (thread-safe; created on first use).

    ``recall`` runs before the model call (Hermes waits 8 s at most): short
    timeouts, one retry. ``record`` runs in the background: more patience.
    """
    with _lock:
        if kind not in _clients:
            import boto3
            from botocore.config import Config

            attempts, read_timeout = (RECALL_ATTEMPTS, 4) if kind == "recall" else (RECORD_ATTEMPTS, 10)
            _clients[kind] = boto3.client("bedrock-agentcore", config=Config(
                connect_timeout=2, read_timeout=read_timeout,
                retries={"mode": "standard", "total_max_attempts": attempts}))
        return _clients[kind]


# --------------------------------------------------------------------------- the provider


class AgentCoreMemoryProvider(MemoryProvider):
    """Hermes ``MemoryProvider`` backed by AgentCore Memory (see the module docstring)."""

    def __init__(self, settings: MemorySettings | None = None, client: Any = None) -> None:
        self._settings = settings
        self._client = client
        self.actor_id: str | None = None
        self.session_id: str = ""
        self.writes = True

    @property
    def name(self) -> str:
        return PROVIDER_NAME

    @property
    def settings(self) -> MemorySettings | None:
        if self._settings is None:
            try:
                self._settings = _current_settings()
            except ValueError as exc:
                logger.error("AgentCore memory is misconfigured: %s", exc)
        return self._settings

    def client(self, kind: str) -> Any:
        return self._client if self._client is not None else _shared_client(kind)

    # -- lifecycle -----------------------------------------------------------
    def is_available(self) -> bool:
        return self.settings is not None

    def initialize(self, session_id: str, **kwargs: Any) -> None:
        self.session_id = session_id_for(session_id)
        self.actor_id = actor_id_for(kwargs.get("platform"), kwargs.get("user_id"))
        self.writes = kwargs.get("agent_context", "primary") == "primary"
        if self.actor_id is None:
            logger.debug("AgentCore memory idle: no user for this agent (platform %s)", kwargs.get("platform"))

    def on_session_switch(self, new_session_id: str, **kwargs: Any) -> None:
        if new_session_id:
            self.session_id = session_id_for(new_session_id)

    def get_tool_schemas(self) -> list[dict[str, Any]]:
        return []

    def namespaces(self) -> list[str]:
        settings = self.settings
        if settings is None or self.actor_id is None:
            return []
        return [resolve_namespace(t, self.actor_id, self.session_id) for t in settings.namespaces]

    # -- recall --------------------------------------------------------------
    def prefetch(self, query: str, *, session_id: str = "") -> str:
        """Memories relevant to ``query`` (the user's message) as prompt text; "" when none or on errors."""
        settings = self.settings
        query = (query or "").strip()[:MAX_QUERY_CHARS]
        if settings is None or self.actor_id is None or not query:
            return ""
        started = time.monotonic()
        namespaces = self.namespaces()

        def search(namespace: str) -> list[dict[str, Any]] | Exception:
            try:
                resp = self.client("recall").retrieve_memory_records(
                    memoryId=settings.memory_id, namespace=namespace,
                    searchCriteria={"searchQuery": query, "topK": settings.top_k},
                    maxResults=settings.top_k)
                return [r for r in resp.get("memoryRecordSummaries") or [] if in_namespace(r, namespace)]
            except Exception as exc:  # the service must never fail a turn
                return exc

        if len(namespaces) == 1:
            results = [search(namespaces[0])]
        else:
            with ThreadPoolExecutor(max_workers=min(len(namespaces), 4), thread_name_prefix="memory-recall") as pool:
                results = list(pool.map(search, namespaces))

        records: list[dict[str, Any]] = []
        failed: list[str] = []
        for namespace, result in zip(namespaces, results):
            if isinstance(result, Exception):
                failed.append(events.short(f"{type(result).__name__}: {result}"))
                logger.warning("AgentCore memory recall in %s failed: %s", namespace, result)
            else:
                records += result
        text, used = format_records(records)
        fields: dict[str, Any] = {
            "op": "recall", "ok": not failed, "actor": self.actor_id, "session": self.session_id,
            "namespaces": len(namespaces), "failed_namespaces": len(failed), "found": len(records),
            "recalled": used, "duration_ms": int((time.monotonic() - started) * 1000),
        }
        if failed:
            fields["error"] = failed[0]
        _emit(fields)
        return text

    # -- record --------------------------------------------------------------
    def sync_turn(self, user_content: str, assistant_content: str, *, session_id: str = "",
                  messages: list[dict[str, Any]] | None = None) -> None:
        """One ``CreateEvent`` with the user's text and the final answer (runs on Hermes's sync thread)."""
        settings = self.settings
        if settings is None or self.actor_id is None or not self.writes:
            return
        user_text = (user_content or "").strip()[:MAX_CONTENT_CHARS]
        answer = (assistant_content or "").strip()[:MAX_CONTENT_CHARS]
        if not user_text or not answer:
            return
        session = session_id_for(session_id) if session_id else self.session_id
        started = time.monotonic()
        fields: dict[str, Any] = {"op": "record", "actor": self.actor_id, "session": session}
        try:
            resp = self.client("record").create_event(
                memoryId=settings.memory_id, actorId=self.actor_id, sessionId=session,
                eventTimestamp=datetime.now(timezone.utc),
                payload=[
                    {"conversational": {"role": "USER", "content": {"text": user_text}}},
                    {"conversational": {"role": "ASSISTANT", "content": {"text": answer}}},
                ])
            fields.update(ok=True, event_id=(resp.get("event") or {}).get("eventId"))
        except Exception as exc:  # the service must never fail a turn
            logger.warning("AgentCore memory CreateEvent failed: %s", exc)
            fields.update(ok=False, error=events.short(f"{type(exc).__name__}: {exc}"))
        fields["duration_ms"] = int((time.monotonic() - started) * 1000)
        _emit(fields)


def in_namespace(record: Mapping[str, Any], namespace: str) -> bool:
    """Whether ``record`` lies in ``namespace`` or below it.

    ``RetrieveMemoryRecords`` matches namespaces by prefix, so ``/users/telegram:1``
    would also return ``/users/telegram:12``'s records; those are dropped here.
    """
    below = namespace.rstrip("/") + "/"
    return any(ns == namespace or str(ns).startswith(below) for ns in record.get("namespaces") or ())


def format_records(records: Sequence[Mapping[str, Any]], *, max_records: int = MAX_RECORDS,
                   max_chars: int = MAX_CONTEXT_CHARS) -> tuple[str, int]:
    """Best-scored unique record texts as a bullet list under :data:`CONTEXT_HEADER`; (text, count)."""
    ranked = sorted(records, key=lambda r: -float(r.get("score") or 0.0))
    seen: set[str] = set()
    lines: list[str] = []
    size = len(CONTEXT_HEADER)
    for record in ranked:
        text = " ".join(str(((record.get("content") or {}).get("text")) or "").split())
        key = text.lower()
        if not text or key in seen or record.get("memoryRecordId") in seen:
            continue
        line = f"- {text}"
        if size + len(line) + 1 > max_chars:
            continue
        seen.update({key, str(record.get("memoryRecordId"))})
        lines.append(line)
        size += len(line) + 1
        if len(lines) >= max_records:
            break
    if not lines:
        return "", 0
    return CONTEXT_HEADER + "\n" + "\n".join(lines), len(lines)


def memory_metric_fields(ok: bool, agent: str | None = None) -> dict[str, Any]:
    """The EMF block of a recall/record line: ``MemoryFailures`` = 0 or 1 by [Agent]."""
    return events.emf_fields(events.METRIC_NAMESPACE, {"Agent": agent or events.agent_name()},
                             {"MemoryFailures": (0 if ok else 1, "Count")})


def _emit(fields: dict[str, Any]) -> None:
    try:
        if fields.get("op") in ("recall", "record"):
            fields = {**fields, **memory_metric_fields(bool(fields.get("ok")))}
        events.emit("memory", **fields)
    except Exception:  # logging must never fail a turn
        logger.debug("could not emit the memory event", exc_info=True)


def register(ctx: Any) -> None:
    """Hermes plugin entry point (also what the installed shim does)."""
    ctx.register_memory_provider(AgentCoreMemoryProvider())


# --------------------------------------------------------------------------- activation and turns


def activate(environ: Mapping[str, str] | None = None, hermes_home: Path | str | None = None,
             config: MutableMapping[str, Any] | None = None) -> MemorySettings | None:
    """Turn the provider on (or off) for this process; call once at cold start, after ``prepare_home``.

    With ``HERMES_AWS_MEMORY_ID`` set: writes ``$HERMES_HOME/plugins/agentcore_memory/``,
    sets ``memory.provider: agentcore_memory`` in ``$HERMES_HOME/config.yaml``
    (and in ``config`` when given, e.g. ``settings.config``) and returns the
    settings. Without it: removes that plugin and setting if present and returns
    None. Raises ValueError naming the variable when the environment is malformed.
    Agents must be built with ``skip_memory=False`` (the default) and with
    ``user_id``/``platform`` (the actor) and ``session_id``.
    """
    env = os.environ if environ is None else environ
    home = Path(hermes_home or env.get("HERMES_HOME") or "").absolute()
    settings = MemorySettings.from_env(env)
    plugin_dir = home / "plugins" / PROVIDER_NAME
    if settings is None:
        configure(None)
        if plugin_dir.is_dir():
            for f in plugin_dir.iterdir():
                f.unlink()
            plugin_dir.rmdir()
        _set_provider(home / CONFIG_FILE, config, None)
        return None

    from hermes_aws.fsutil import atomic_write

    plugin_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic_write(plugin_dir / "__init__.py", PLUGIN_INIT.encode(), mode=0o600, fsync=False)
    atomic_write(plugin_dir / "plugin.yaml", PLUGIN_YAML.encode(), mode=0o600, fsync=False)
    _set_provider(home / CONFIG_FILE, config, PROVIDER_NAME)
    configure(settings)
    _emit({"op": "activate", "ok": True, "memory_id": settings.memory_id, "namespaces": list(settings.namespaces)})
    return settings


def _set_provider(path: Path, config: MutableMapping[str, Any] | None, provider: str | None) -> None:
    """``memory.provider`` = ``provider`` in config.yaml (and ``config``); None removes ours only."""
    import yaml

    from hermes_aws.fsutil import atomic_write

    targets: list[MutableMapping[str, Any]] = [config] if config is not None else []
    on_disk: dict[str, Any] | None = None
    if path.is_file():
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path} is not a YAML mapping")
        on_disk = loaded
        targets.append(on_disk)
    elif provider is not None:
        on_disk = {}
        targets.append(on_disk)
    changed = False
    for cfg in targets:
        memory = cfg.get("memory")
        current = memory.get("provider") if isinstance(memory, dict) else None
        if provider is None:
            if current == PROVIDER_NAME:
                memory.pop("provider")
                changed = changed or cfg is on_disk
            continue
        if current and current != provider:
            logger.warning("memory.provider %r replaced by %r: %s is set", current, provider, MEMORY_ID_ENV)
        if current != provider:
            if not isinstance(memory, dict):
                memory = cfg["memory"] = {}
            memory["provider"] = provider
            changed = changed or cfg is on_disk
    if on_disk is not None and changed:
        text = yaml.safe_dump(on_disk, sort_keys=False, allow_unicode=True, default_flow_style=False)
        atomic_write(path, text.encode("utf-8"), mode=0o600, fsync=False)


def flush(agent: Any, timeout: float = FLUSH_TIMEOUT) -> bool:
    """Wait until the agent's queued memory writes (``sync_turn``) ran; True when drained.

    Call after ``run_conversation`` returned and before the invocation ends
    (``AIAgent.close()`` does not wait): Lambda freezes the sandbox, and with it
    Hermes's background sync thread, as soon as the handler returns.
    """
    manager = getattr(agent, "_memory_manager", None)
    if manager is None:
        return True
    try:
        return bool(manager.flush_pending(timeout=timeout))
    except Exception:  # pragma: no cover - Hermes internals changed
        logger.debug("memory flush failed", exc_info=True)
        return False
