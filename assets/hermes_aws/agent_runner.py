"""Run one Hermes ``AIAgent`` turn from a prepared ``HERMES_HOME`` (Lambda worker, AgentCore).

The caller has rendered ``$HERMES_HOME/config.yaml`` (:func:`hermes_aws.home.prepare_home`),
exported the secrets it references and set ``TERMINAL_CWD`` to the directory
holding ``.hermes.md``. :func:`run_turn` then builds the agent the way Hermes's
own gateway and cron scheduler do (hermes-agent 0.19.0, ``gateway/run.py`` and
``cron/scheduler.py``):

* ``load_config()`` (expands ``${VAR}``), model = ``model.default`` (or a plain
  string ``model``), provider/base URL/API key/API mode from
  ``hermes_cli.runtime_provider.resolve_runtime_provider(requested=model.provider)``:
  for ``custom`` that is ``model.base_url`` and the expanded ``model.api_key``;
  for ``bedrock`` Hermes picks ``anthropic.AnthropicBedrock`` for Claude model
  ids and boto3 Converse otherwise, with the Lambda role's credentials.
* ``max_iterations`` = ``agent.max_turns`` (90), reasoning config, fallback chain
  and provider routing from config, as the gateway does.
* Toolsets: ``enabled_toolsets`` = what Hermes enables for the platform
  (``hermes_cli.tools_config._get_platform_tools(config, platform)``, honouring
  ``platform_toolsets``), ``disabled_toolsets`` = :data:`LAMBDA_DISABLED_TOOLSETS`
  plus the settings' ``agent.disabled_toolsets``. Hermes subtracts disabled
  toolsets last, so config can never re-enable one of ours.
* ``platform``, ``session_id``, ``user_id``, ``chat_id``, ``chat_type``,
  ``quiet_mode=True``, context files on (``skip_context_files=False``: SOUL.md
  from HERMES_HOME, ``.hermes.md`` from TERMINAL_CWD), no ``session_db`` (history
  lives in DynamoDB: :mod:`hermes_aws.sessions`).

Toolsets off on Lambda (:data:`LAMBDA_DISABLED_TOOLSETS`), and why
------------------------------------------------------------------
* ``terminal`` (terminal, process): a shell and background processes; a Lambda
  sandbox has a read-only filesystem but ``/tmp`` and is frozen between calls.
* ``file`` (read_file, write_file, patch, search_files): implemented on top of
  the terminal backend (``ShellFileOperations`` runs shell commands), and it
  would let the model read anything the function can (``/proc/self/environ``
  holds the secrets). Durable files are skills and memories, which have their
  own tools and are synced to S3.
* ``browser``, ``computer_use``: a headless browser / desktop driver, long-lived
  processes that the image does not ship.
* ``code_execution``: runs model-written Python in a subprocess with tool RPC.
* ``delegation``: sub-agents multiply model calls inside one 15-minute invocation.
* ``cronjob``: Hermes's scheduler needs a long-running ticker. When the worker
  maps jobs to EventBridge Scheduler (:mod:`hermes_aws.cron_bridge`) it passes
  ``allow_toolsets=("cronjob",)`` to re-enable it for chat turns.
* ``clarify``: blocks the turn waiting for the user's answer; a webhook turn
  cannot wait (Hermes's cron disables it for the same reason).
* ``session_search``: searches Hermes's SQLite ``state.db``, which this runtime
  does not use (no ``session_db``); it would always come back empty.
* ``tts``: produces an audio file for the gateway to upload; the worker sends text.
* ``kanban``, ``messaging``: need the gateway's dispatcher / live platform adapters.
* ``homeassistant``, ``spotify``, ``discord``, ``discord_admin``, ``yuanbao``,
  ``feishu_doc``, ``feishu_drive``, ``x_search``, ``video``, ``video_gen``, ``project``:
  other platforms' tools or desktop/GUI-only; Hermes keeps most of them off by
  default already, listed so a settings change cannot turn them on here.

Session context: :func:`session_context` binds Hermes's per-session variables
(``gateway.session_context.set_session_vars``: platform, chat, thread, user,
session key and id, message id) for a turn, as Hermes's gateway does, and
mirrors them in ``os.environ`` (tools that run in a worker thread without the
context fall back to it). Hermes's ``cronjob`` tool reads them to record the
chat a job was created in as its ``origin``; ``gateway=True`` also sets
``HERMES_GATEWAY_SESSION=1``, which Hermes requires before it offers the tool.

Kept: ``skills`` (skills_list, skill_view, skill_manage: write under
``$HERMES_HOME/skills``, synced to S3), ``memory`` (``$HERMES_HOME/memories``,
synced), ``todo`` (in-memory, per turn), ``web``/``search``/``vision``/``image_gen``
(HTTP APIs, available when their API keys are configured) and MCP servers from
config that Hermes can reach over HTTP.

Background review: after some turns Hermes spawns a daemon thread that asks the
model to update memories/skills ("self-improvement"). A Lambda sandbox is frozen
as soon as the handler returns, so that thread would run (or hang) during some
later invocation. :func:`run_turn` captures it instead and returns it as
:attr:`TurnResult.deferred_review`; the worker runs it synchronously after the
reply is sent and before the workspace is pushed to S3.

Compression: when Hermes's context compressor summarised the conversation
during the turn, the returned message list no longer starts with the history
that was passed in; :attr:`TurnResult.compacted` then holds the whole new
transcript (the caller starts a new session with it, as Hermes does).

Long-term memory (:mod:`hermes_aws.memory`, when activated): Hermes recalls
before the model call and records the turn on a background thread; the runner
waits for that write (:func:`hermes_aws.memory.flush`) before it returns. The
messages it returns are Hermes's; callers store them through
:func:`without_recall` so history keeps the user's own text, not the recalled block.

Guardrail interventions: when a provider's content policy blocks a call (a
Bedrock guardrail: ``stopReason: guardrail_intervened``), Hermes ends the turn
without a retry and returns ``failed: True`` with ``error: "content_policy_blocked:
<the block message>"`` and a ``final_response`` that wraps it in advice for a
Hermes operator (``hermes fallback add``); its transcript holds the user's
message but no reply. Retrying cannot help (the block is deterministic for that
prompt), so :func:`run_turn` returns a completed turn with ``blocked=True``
whose answer is the block message alone (the guardrail's configured
"blocked" text; :data:`BLOCKED_REPLY` when there is none) and whose messages
are Hermes's plus that answer as the assistant's reply. Callers do not store
them (:func:`hermes_aws.lambda_worker.run_chat`): a guardrail evaluates every
message of a request, so a stored blocked message would block every later turn.
Usage is the agent's running count (the blocked call itself is not counted by Hermes).

Failures: any other turn Hermes gives up on (``failed`` after its own API
retries, or no final response) raises :class:`AgentTurnError`; nothing of it
should be persisted.
"""

from __future__ import annotations

import logging
import threading
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

LAMBDA_DISABLED_TOOLSETS: tuple[str, ...] = (
    "terminal", "file", "browser", "computer_use", "code_execution", "delegation",
    "cronjob", "clarify", "session_search", "tts", "kanban", "messaging",
    "homeassistant", "spotify", "discord", "discord_admin", "yuanbao",
    "feishu_doc", "feishu_drive", "x_search", "video", "video_gen", "project",
)


#: how Hermes 0.19.0 prefixes the error of a turn a content policy (a guardrail) blocked
CONTENT_POLICY_PREFIX = "content_policy_blocked:"
#: the answer to a blocked turn whose block came without a message
BLOCKED_REPLY = "Sorry, I can't help with that request."
#: what Hermes writes after the prefix when the refusal carried no text (agent/conversation_loop.py)
_NO_BLOCK_MESSAGE = frozenset({"model declined (content_filter)"})
_USAGE_KEYS = ("input_tokens", "output_tokens", "total_tokens", "cache_read_tokens", "cache_write_tokens",
               "api_calls", "estimated_cost_usd")


class AgentTurnError(RuntimeError):
    """Hermes could not produce an answer (model errors after its own retries, etc.)."""

    def __init__(self, message: str, *, reason: str | None = None, result: Mapping[str, Any] | None = None):
        super().__init__(message)
        self.reason = reason
        self.result = dict(result or {})


@dataclass
class TurnResult:
    final_response: str
    new_messages: list[dict[str, Any]]
    usage: dict[str, Any]
    compacted: list[dict[str, Any]] | None = None
    deferred_review: Callable[[], None] | None = field(default=None, repr=False)
    model: str = ""
    provider: str = ""
    #: a content policy (guardrail) blocked the turn; ``final_response`` is its message
    blocked: bool = False

    def __iter__(self) -> Iterator[Any]:
        """``final_response, new_messages, usage = run_turn(...)``."""
        return iter((self.final_response, self.new_messages, self.usage))


def disabled_toolsets(config: Mapping[str, Any], extra: Iterable[str] = (), allow: Iterable[str] = ()) -> list[str]:
    """:data:`LAMBDA_DISABLED_TOOLSETS` (less ``allow``) + ``agent.disabled_toolsets`` + ``extra``.

    In order, no duplicates. ``allow`` only lifts our own list: a toolset the
    settings disable stays disabled.
    """
    allowed = {str(a) for a in allow}
    out: list[str] = [t for t in LAMBDA_DISABLED_TOOLSETS if t not in allowed]
    agent_cfg = config.get("agent") if isinstance(config.get("agent"), Mapping) else {}
    for name in [*(agent_cfg.get("disabled_toolsets") or []), *extra]:
        name = str(name).strip()
        if name and name not in out:
            out.append(name)
    return out


def configured_model(config: Mapping[str, Any]) -> tuple[str, str | None]:
    """(model id, provider or None) from ``model.default``/``model.provider`` (or ``model: <id>``)."""
    model_cfg = config.get("model")
    if isinstance(model_cfg, str):
        return model_cfg.strip(), None
    if isinstance(model_cfg, Mapping):
        model = str(model_cfg.get("default") or model_cfg.get("model") or "").strip()
        provider = str(model_cfg.get("provider") or "").strip() or None
        return model, provider
    return "", None


def build_agent(
    *,
    session_id: str,
    user_id: str | None = None,
    platform: str = "telegram",
    chat_id: str | None = None,
    chat_type: str | None = None,
    user_name: str | None = None,
    extra_disabled_toolsets: Iterable[str] = (),
    allow_toolsets: Iterable[str] = (),
    **overrides: Any,
) -> Any:
    """An ``AIAgent`` configured from ``$HERMES_HOME/config.yaml`` (see the module docstring)."""
    from hermes_cli.config import load_config
    from hermes_cli.fallback_config import get_fallback_chain
    from hermes_cli.runtime_provider import resolve_runtime_provider
    from hermes_cli.tools_config import _get_platform_tools
    from hermes_constants import resolve_reasoning_config
    from run_agent import AIAgent

    cfg = load_config()
    model, provider = configured_model(cfg)
    if not model:
        raise ValueError("config.yaml has no model.default")
    runtime = resolve_runtime_provider(requested=provider, target_model=model)
    if runtime.get("provider") == "bedrock":
        _skip_models_probe(str(runtime.get("base_url") or ""))
    agent_cfg = cfg.get("agent") if isinstance(cfg.get("agent"), dict) else {}
    routing = cfg.get("provider_routing") if isinstance(cfg.get("provider_routing"), dict) else {}
    if cfg.get("mcp_servers"):
        _discover_mcp_tools()

    kwargs: dict[str, Any] = {
        "model": model,
        "api_key": runtime.get("api_key"),
        "base_url": runtime.get("base_url"),
        "provider": runtime.get("provider"),
        "api_mode": runtime.get("api_mode"),
        "max_iterations": int(agent_cfg.get("max_turns") or cfg.get("max_turns") or 90),
        "reasoning_config": resolve_reasoning_config(cfg, model),
        "fallback_model": get_fallback_chain(cfg) or None,
        "providers_allowed": routing.get("only"),
        "providers_ignored": routing.get("ignore"),
        "providers_order": routing.get("order"),
        "provider_sort": routing.get("sort"),
        "enabled_toolsets": sorted(_get_platform_tools(cfg, platform)),
        "disabled_toolsets": disabled_toolsets(cfg, extra_disabled_toolsets, allow_toolsets),
        "quiet_mode": True,
        "skip_context_files": False,
        "platform": platform,
        "session_id": session_id,
        "user_id": user_id,
        "user_name": user_name,
        "chat_id": chat_id,
        "chat_type": chat_type,
        "session_db": None,
    }
    kwargs.update(overrides)
    return AIAgent(**kwargs)


def run_turn(
    user_message: str,
    *,
    history: Sequence[Mapping[str, Any]] = (),
    agent: Any = None,
    **agent_options: Any,
) -> TurnResult:
    """Run one turn; return the answer, only the messages this turn added, and token usage.

    Raises :class:`AgentTurnError` when Hermes fails the turn; a turn a guardrail
    blocked is answered with the block message (``blocked=True``). ``agent`` is for
    tests that bring their own; by default one is built (:func:`build_agent`)
    and closed afterwards unless a deferred review still needs it (the review
    closes it). ``agent_options`` are :func:`build_agent`'s (``session_id``, ``user_id``,
    ``platform``, ...).
    """
    own_agent = agent is None
    if agent is None:
        agent = build_agent(**agent_options)
    captured: list[Callable[[], None]] = []

    def capture_review(messages_snapshot: list[dict[str, Any]], review_memory: bool = False,
                       review_skills: bool = False) -> None:
        from agent.background_review import spawn_background_review_thread

        target, _ = spawn_background_review_thread(
            agent, messages_snapshot, review_memory=review_memory, review_skills=review_skills)
        captured.append(target)

    agent._spawn_background_review = capture_review  # instance attribute shadows the method
    history_list = [dict(m) for m in history]
    try:
        result = agent.run_conversation(user_message, conversation_history=history_list or None)
    except BaseException:
        if own_agent:
            _flush_memory(agent)
            _close(agent)
        raise
    if own_agent:
        _flush_memory(agent)  # the turn's memory write runs on a thread Lambda would freeze

    blocked = blocked_reply(result)
    if blocked is not None:
        result = _blocked_turn(result, blocked, agent)
    final = result.get("final_response")
    if result.get("failed") or result.get("interrupted") or not isinstance(final, str) or not final.strip():
        if own_agent:
            _close(agent)
        reason = result.get("failure_reason") or ("interrupted" if result.get("interrupted") else None)
        detail = result.get("error") or final or "no final response"
        raise AgentTurnError(f"Hermes turn failed: {str(detail)[:300]}", reason=reason, result=result)

    messages = list(result.get("messages") or [])
    compacted = None
    if _starts_with(messages, history_list):
        new_messages = [dict(m) for m in messages[len(history_list):]]
    else:  # Hermes's compressor replaced the transcript during the turn
        compacted = [dict(m) for m in messages]
        new_messages = _current_turn(compacted)
    usage = {
        "input_tokens": int(result.get("input_tokens") or result.get("prompt_tokens") or 0),
        "output_tokens": int(result.get("output_tokens") or result.get("completion_tokens") or 0),
        "total_tokens": int(result.get("total_tokens") or 0),
        "cache_read_tokens": int(result.get("cache_read_tokens") or 0),
        "cache_write_tokens": int(result.get("cache_write_tokens") or 0),
        "api_calls": int(result.get("api_calls") or 0),
        "estimated_cost_usd": result.get("estimated_cost_usd"),
    }

    review: Callable[[], None] | None = None
    if captured:
        review = _deferred(captured[0], agent if own_agent else None)
    elif own_agent:
        _close(agent)
    return TurnResult(final, new_messages, usage, compacted=compacted, deferred_review=review,
                      model=str(result.get("model") or ""), provider=str(result.get("provider") or ""),
                      blocked=blocked is not None)


def blocked_reply(result: Mapping[str, Any]) -> str | None:
    """The answer to a turn a content policy blocked (see the module doc); None for any other result."""
    error = result.get("error")
    if result.get("interrupted") or not isinstance(error, str) or not error.startswith(CONTENT_POLICY_PREFIX):
        return None
    message = error[len(CONTENT_POLICY_PREFIX):].strip()
    return BLOCKED_REPLY if not message or message in _NO_BLOCK_MESSAGE else message


def _blocked_turn(result: Mapping[str, Any], reply: str, agent: Any) -> dict[str, Any]:
    """Hermes's blocked result as a completed one: ``reply`` answers it, usage from the agent's counters."""
    messages = [dict(m) for m in result.get("messages") or []]
    last = messages[-1] if messages else {}
    if not (last.get("role") == "assistant" and last.get("content") == reply):
        messages.append({"role": "assistant", "content": reply})
    out: dict[str, Any] = {**result, "final_response": reply, "messages": messages,
                           "failed": False, "completed": True}
    for key in _USAGE_KEYS:  # Hermes's blocked result carries none of them
        if out.get(key) is None:
            out[key] = getattr(agent, f"session_{key}", None)
    for key in ("model", "provider"):
        out.setdefault(key, getattr(agent, key, ""))
    return out


#: ``set_session_vars`` keyword -> the environment variable it stands for
_SESSION_ENV = {
    "platform": "HERMES_SESSION_PLATFORM", "chat_id": "HERMES_SESSION_CHAT_ID",
    "chat_name": "HERMES_SESSION_CHAT_NAME", "thread_id": "HERMES_SESSION_THREAD_ID",
    "user_id": "HERMES_SESSION_USER_ID", "user_name": "HERMES_SESSION_USER_NAME",
    "session_key": "HERMES_SESSION_KEY", "session_id": "HERMES_SESSION_ID",
    "message_id": "HERMES_SESSION_MESSAGE_ID",
}
GATEWAY_SESSION_ENV = "HERMES_GATEWAY_SESSION"


@contextmanager
def session_context(*, platform: str, chat_id: str, chat_name: str | None = None, thread_id: str | None = None,
                    user_id: str | None = None, user_name: str | None = None, session_key: str | None = None,
                    session_id: str | None = None, message_id: str | None = None,
                    gateway: bool = False) -> Iterator[None]:
    """Hermes's session variables for one turn (see the module doc); cleared afterwards."""
    from gateway.session_context import clear_session_vars, set_session_vars

    values = {"platform": platform, "chat_id": chat_id, "chat_name": chat_name, "thread_id": thread_id,
              "user_id": user_id, "user_name": user_name, "session_key": session_key,
              "session_id": session_id, "message_id": message_id}
    strings = {k: "" if v is None else str(v) for k, v in values.items()}
    names = [*_SESSION_ENV.values(), GATEWAY_SESSION_ENV]
    saved = {name: os.environ.get(name) for name in names}
    tokens = set_session_vars(**strings)
    try:
        for key, name in _SESSION_ENV.items():
            if strings[key]:
                os.environ[name] = strings[key]
            else:
                os.environ.pop(name, None)
        if gateway:
            os.environ[GATEWAY_SESSION_ENV] = "1"
        yield
    finally:
        clear_session_vars(tokens)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _deferred(target: Callable[[], None], agent_to_close: Any) -> Callable[[], None]:
    """Hermes's review target, closing the agent afterwards (when the runner built it)."""
    def review() -> None:
        try:
            target()
        finally:
            if agent_to_close is not None:
                _close(agent_to_close)
    return review


#: how Hermes marks recalled long-term memories in the text it sends (agent/memory_manager.py)
MEMORY_CONTEXT_MARKER = "<memory-context>"


def without_recall(message: Mapping[str, Any]) -> dict[str, Any]:
    """The message to store: a user message keeps what the user wrote, not the memories recalled for it.

    Hermes keeps the text it sent (the user's text plus a ``<memory-context>``
    block) as ``api_content``; stored and replayed, every later turn would carry
    that stale recall. Other ``api_content`` is kept.
    """
    out = dict(message)
    api_content = out.get("api_content")
    if out.get("role") == "user" and isinstance(api_content, str) and MEMORY_CONTEXT_MARKER in api_content:
        del out["api_content"]
    return out


def _flush_memory(agent: Any) -> None:
    """Wait for Hermes's queued memory-provider writes (:func:`hermes_aws.memory.flush`); never raises."""
    if getattr(agent, "_memory_manager", None) is None:
        return
    try:
        from hermes_aws import memory

        memory.flush(agent)
    except Exception:  # pragma: no cover - best effort
        logger.debug("memory flush failed", exc_info=True)


def _starts_with(messages: Sequence[Mapping[str, Any]], prefix: Sequence[Mapping[str, Any]]) -> bool:
    if len(messages) < len(prefix):
        return False
    return all(a is b or dict(a) == dict(b) for a, b in zip(messages, prefix))


def _current_turn(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages from the last user message on."""
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].get("role") == "user":
            return list(messages[i:])
    return list(messages)


def _close(agent: Any) -> None:
    try:
        agent.close()
    except Exception:  # pragma: no cover - best effort
        logger.debug("agent.close() failed", exc_info=True)


def _skip_models_probe(base_url: str) -> None:
    """Keep Hermes's cost estimator from probing ``<bedrock-runtime>/models``.

    hermes-agent 0.19.0 (``agent/usage_pricing.get_pricing_entry``) looks up
    prices with an unsigned ``GET <base_url>/models`` and ``/v1/models``, an
    OpenAI-compatible route Bedrock does not serve (403); the empty result is
    cached for 5 minutes. Seeding that cache with "no metadata" skips two
    pointless HTTPS requests per sandbox and 5 minutes (prices then come from
    Hermes's built-in table). Hermes internals: a no-op if they change.
    """
    if not base_url:
        return
    try:
        import time as _time

        from agent import model_metadata as mm

        normalized = mm._normalize_base_url(base_url)
        if normalized and normalized not in mm._endpoint_model_metadata_cache:
            mm._endpoint_model_metadata_cache[normalized] = {}
            mm._endpoint_model_metadata_cache_time[normalized] = _time.time() + 10 * 365 * 86400
    except Exception:  # pragma: no cover - Hermes changed; the probe just happens
        logger.debug("could not pre-seed Hermes's model metadata cache", exc_info=True)


_mcp_lock = threading.Lock()
_mcp_done = False


def _discover_mcp_tools() -> None:
    """Connect configured MCP servers once per process (non-fatal, as in Hermes's cron)."""
    global _mcp_done
    with _mcp_lock:
        if _mcp_done:
            return
        _mcp_done = True
        try:
            from tools.mcp_tool import discover_mcp_tools

            tools = discover_mcp_tools()
            if tools:
                logger.info("%d MCP tool(s) available", len(tools))
        except Exception as exc:
            logger.warning("MCP initialisation failed (non-fatal): %s", exc)

