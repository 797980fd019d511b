"""Bedrock AgentCore Runtime container: one Hermes turn per ``/invocations`` request.

Entry point of the Dockerfile's ``agentcore`` target (``python -m
hermes_aws.agentcore_app``): bedrock-agentcore's ``BedrockAgentCoreApp``
(Starlette on uvicorn) serves AgentCore's HTTP protocol contract on
``0.0.0.0:8080`` (``HERMES_AWS_AGENTCORE_HOST`` / ``_PORT`` override them):

* ``GET /ping`` -> ``{"status": "Healthy" | "HealthyBusy", "time_of_last_update"}``.
  ``HealthyBusy`` while the process starts (cold start in the background), while a
  turn runs and while the work after a turn runs (Hermes's background review,
  skills/memories upload, cron jobs sync), so AgentCore does not end an idle
  session whose microVM is still writing state back.
* ``POST /invocations`` (header ``X-Amzn-Bedrock-AgentCore-Runtime-Session-Id``)
  with the payload of :mod:`hermes_aws.agentcore_contract`: the SQS body the
  dispatcher received. Answer: the contract's JSON (``application/json``).

One microVM per runtime session (per chat, see the contract), but nothing
here assumes it: the process keeps one :class:`~hermes_aws.lambda_worker.Runtime`
for every chat it serves and runs one turn at a time.

Per invocation, the same steps as the serverless worker, with the same code
(:func:`hermes_aws.lambda_worker.run_chat`, :func:`~hermes_aws.lambda_worker.run_job`),
minus what the dispatcher does (:mod:`hermes_aws.turns`: idempotency check
before, replies, apology, metrics after):

1. **Cold start**, once per process (:func:`hermes_aws.lambda_worker.cold_start`):
   secrets into the environment, ``HERMES_HOME`` rendered from the settings
   document, the cron bridge and the memory provider when configured, Hermes
   imported. A process that lands on a fresh microVM starts from nothing and
   resumes from the shared stores: history from DynamoDB, skills and memories
   from S3, cron jobs from the table.
2. A chat message (:func:`hermes_aws.chats.parse_queue_body`): ``/new``,
   ``/start``, ``/reset`` start a new session; anything else is a Hermes turn
   (workspace pull, history, :func:`hermes_aws.agent_runner.run_turn`, the new
   messages and the ledger's ``PERSISTED`` record in one DynamoDB transaction;
   a guardrail-blocked turn records only the ledger), exactly as the worker runs it. A fired ``hermes.cron`` job runs through the
   cron bridge and is recorded the same way. Under the turn lock the ledger is
   read first: a message an earlier attempt already answered (a dispatcher
   retry after its invocation timed out, waiting for the first turn) is
   answered ``stored`` with that reply, or ``ignored`` once delivered, and
   nothing runs again.
3. The answer goes back at once; the work after the turn runs in a background
   thread that holds the turn lock (the next turn waits for it) and keeps
   ``/ping`` busy. On SIGTERM (the session ends) uvicorn stops serving and the
   process waits up to :data:`SHUTDOWN_GRACE_SECONDS` for that work, then exits 0.

Warm turns reuse what is local: the rendered home, the imported Hermes, the
workspace manifest (only changed objects are downloaded) and the chat's
history (:class:`WarmHistory`: the transcript of the last turn stays in memory
and is used again when the chat's ``META`` item still has the version this
process wrote, so a warm turn reads one item instead of querying the history).

Errors: an exception in a turn is logged and answered with HTTP 500 by the
SDK (``{"error": ...}``); the data plane reports it to the dispatcher as a
``RuntimeClientError`` and the dispatcher retries the message.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from hermes_aws import agentcore_contract as contract
from hermes_aws import events

logger = logging.getLogger(__name__)

HOST_ENV = "HERMES_AWS_AGENTCORE_HOST"
PORT_ENV = "HERMES_AWS_AGENTCORE_PORT"
DEFAULT_HOST = "0.0.0.0"  # the contract: listen on every interface of the microVM
DEFAULT_PORT = 8080
#: how long SIGTERM waits for the work after the last turn
SHUTDOWN_GRACE_SECONDS = 25.0


# --------------------------------------------------------------------------- warm history


@dataclass
class _Cached:
    session_id: str
    version: int
    messages: list[dict[str, Any]]  # what load_history would return for that META


class WarmHistory:
    """A :class:`~hermes_aws.sessions.SessionStore` that remembers the last transcript per chat.

    After this process writes a turn it knows the chat's history and the META
    ``version`` its write produced. The next ``load_history`` with a META of
    that very session and version returns the remembered messages; any other
    version (another process or a concurrent writer wrote since) queries
    DynamoDB as usual. Messages are kept as DynamoDB would give them back
    (JSON round trip, the store's truncation), trimmed the way
    ``load_history`` trims (last ``max_messages``, starting at a user message).
    Everything else is delegated to the store.
    """

    def __init__(self, store: Any) -> None:
        self._store = store
        self._cache: dict[str, _Cached] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def forget(self, key: str | None = None) -> None:
        with self._lock:
            if key is None:
                self._cache.clear()
            else:
                self._cache.pop(key, None)

    def load_history(self, key: str, meta: Any = None) -> list[dict[str, Any]]:
        if meta is not None:
            with self._lock:
                cached = self._cache.get(key)
            if cached is not None and cached.session_id == meta.session_id and cached.version == meta.version:
                self.hits += 1
                return [dict(m) for m in cached.messages]
        self.misses += 1
        messages = self._store.load_history(key, meta)
        if meta is not None:
            self._remember(key, meta.session_id, meta.version, messages)
        return messages

    def append(self, key: str, session_id: str, messages: Sequence[Mapping[str, Any]], *,
               meta: Any = None, also: Sequence[Mapping[str, Any]] = ()) -> Any:
        with self._lock:
            before = self._cache.get(key)
        after = self._store.append(key, session_id, messages, meta=meta, also=also)
        # Only this write happened since the remembered read: the META we read had the
        # remembered version, and the sequence advanced by exactly our messages.
        if (before is not None and meta is not None and before.session_id == session_id == after.session_id
                and before.version == meta.version and after.next_seq == meta.next_seq + len(messages)):
            self._remember(key, session_id, after.version, before.messages + self._as_stored(messages))
        else:
            self.forget(key)
        return after

    def replace_session(self, key: str, messages: Sequence[Mapping[str, Any]], **kwargs: Any) -> Any:
        after = self._store.replace_session(key, messages, **kwargs)
        self._remember(key, after.session_id, after.version, self._as_stored(messages))
        return after

    def new_session(self, key: str, **kwargs: Any) -> Any:
        after = self._store.new_session(key, **kwargs)
        self._remember(key, after.session_id, after.version, [])
        return after

    def _remember(self, key: str, session_id: str, version: int, messages: list[dict[str, Any]]) -> None:
        from hermes_aws.sessions import trim_to_user_boundary

        limit = self._store.max_messages
        window = messages[-limit:] if limit > 0 else []
        with self._lock:
            self._cache[key] = _Cached(session_id, version, trim_to_user_boundary(window))

    @staticmethod
    def _as_stored(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        from hermes_aws.sessions import encode_message

        return [json.loads(encode_message(m)[0]) for m in messages]


# --------------------------------------------------------------------------- the process


class AgentProcess:
    """The process's state: one runtime, one turn at a time, the busy count /ping reports."""

    def __init__(self, environ: Any = None,
                 cold_start: Callable[..., Any] | None = None) -> None:
        self.environ = os.environ if environ is None else environ
        self._cold_start = cold_start
        self._rt: Any = None
        self._rt_lock = threading.Lock()
        self._turn_lock = threading.Lock()
        self._busy = 0
        self._busy_lock = threading.Lock()
        self.background: threading.Thread | None = None

    # -- busy ------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        with self._busy_lock:
            return self._busy > 0

    def _enter(self) -> None:
        with self._busy_lock:
            self._busy += 1

    def _leave(self) -> None:
        with self._busy_lock:
            self._busy -= 1

    # -- cold start ----------------------------------------------------------------
    def runtime(self) -> Any:
        with self._rt_lock:
            if self._rt is None:
                self._enter()
                try:
                    self._rt = self._start()
                finally:
                    self._leave()
            return self._rt

    def _start(self) -> Any:
        from hermes_aws import lambda_worker

        start = self._cold_start or lambda_worker.cold_start
        rt = start(self.environ)
        return replace(rt, sessions=WarmHistory(rt.sessions))

    def warm_up(self) -> threading.Thread:
        """Cold start in the background (``/ping`` answers HealthyBusy meanwhile)."""
        def run() -> None:
            try:
                self.runtime()
            except Exception:  # retried (and raised) by the first invocation
                logger.exception("cold start failed; retrying on the first invocation")

        thread = threading.Thread(target=run, name="cold-start", daemon=True)
        thread.start()
        return thread

    # -- invocations -------------------------------------------------------------------
    def invoke(self, payload: Any, session_header: str | None = None) -> dict[str, Any]:
        started = time.monotonic()
        body = contract.parse_request(payload)
        rt = self.runtime()
        self._turn_lock.acquire()
        self._enter()
        after: Callable[[], None] | None = None
        try:
            result, after = self._dispatch(rt, body)
        except BaseException:
            self._leave()
            self._turn_lock.release()
            raise
        result["duration_ms"] = round((time.monotonic() - started) * 1000, 1)
        events.emit("agentcore_invocation", agent=rt.agent_name, outcome=result["outcome"],
                    runtime_session=events.short(session_header, 80), session=result.get("session_id"),
                    duration_ms=result["duration_ms"])
        self._after(after)
        return result

    def _after(self, work: Callable[[], None] | None) -> None:
        """Run ``work`` in a thread that owns the turn lock and the busy mark until it is done."""
        def run() -> None:
            try:
                if work is not None:
                    work()
            except Exception:
                logger.exception("work after the turn failed")
            finally:
                self._leave()
                self._turn_lock.release()

        if work is None:
            run()
            return
        self.background = threading.Thread(target=run, name="after-turn", daemon=False)
        self.background.start()

    def _dispatch(self, rt: Any, body: dict[str, Any]) -> tuple[dict[str, Any], Callable[[], None] | None]:
        from hermes_aws import scheduler
        from hermes_aws.chats import parse_queue_body

        if body.get("source") == scheduler.SOURCE:
            fired = scheduler.fired_job(body)
            if fired is None or rt.cron is None:
                reason = "malformed hermes.cron body" if fired is None else "scheduled jobs are not enabled"
                return contract.answer(contract.OUTCOME_IGNORED, reason=reason), None
            return self._cron(rt, fired)
        message = parse_queue_body(body)
        if message is None:
            return contract.answer(contract.OUTCOME_IGNORED, reason="not a chat message"), None
        return self._chat(rt, message)

    def _chat(self, rt: Any, message: Any) -> tuple[dict[str, Any], Callable[[], None] | None]:
        from hermes_aws import lambda_worker
        from hermes_aws.chats import ReplyTarget

        stored = self._stored(rt, message.dedup_key)
        if stored is not None:
            return stored, None
        # The dispatcher shows "typing..." while it waits; nothing to show from here.
        result = lambda_worker.run_chat(rt, message, ReplyTarget())
        extra = dict(result.fields)
        if result.outcome in contract.MODEL_OUTCOMES:
            extra["usage"] = result.usage
        return contract.answer(result.outcome, result.reply, session_id=result.session_id, **extra), result.after

    @staticmethod
    def _stored(rt: Any, key: str) -> dict[str, Any] | None:
        """The answer for a message an earlier attempt already answered (read under the turn lock).

        A dispatcher retry after its invocation timed out waits here for the
        first turn; it gets that turn's stored reply instead of running the turn again.
        """
        state = rt.ledger.get(key)
        if state.delivered:
            return contract.answer(contract.OUTCOME_IGNORED, reason="already delivered", session_id=state.session_id)
        if state.pending_reply is not None:
            return contract.answer(contract.OUTCOME_STORED, state.pending_reply, session_id=state.session_id,
                                   chunks_sent=state.chunks_sent)
        return None

    def _cron(self, rt: Any, fired: Any) -> tuple[dict[str, Any], Callable[[], None] | None]:
        from hermes_aws import lambda_worker

        stored = self._stored(rt, fired.dedup_key)
        if stored is not None:
            return stored, None
        result = lambda_worker.run_job(rt, fired)
        if not result.ran:
            return contract.answer(contract.OUTCOME_IGNORED, reason=result.reason), \
                lambda: lambda_worker.sync_cron(rt, origin=fired.origin)
        outcome = contract.OUTCOME_SILENT if result.silent or not result.text else contract.OUTCOME_ANSWERED

        def after() -> None:
            lambda_worker.sync_cron(rt, origin=fired.origin)  # mark_job_run's bookkeeping, schedules
            if rt.workspace is not None:
                rt.workspace.push()

        return contract.answer(outcome, result.text or None, session_id=fired.dedup_key, success=result.success,
                               error=result.error), after

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Wait for the work after the last turn (tests, shutdown)."""
        thread = self.background
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True


# --------------------------------------------------------------------------- the app


def create_app(process: AgentProcess | None = None) -> Any:
    """A ``BedrockAgentCoreApp`` serving ``process`` (a new one by default)."""
    from bedrock_agentcore.runtime import BedrockAgentCoreApp, PingStatus

    proc = process or AgentProcess()
    app = BedrockAgentCoreApp()
    app.state.process = proc  # type: ignore[attr-defined]

    @app.entrypoint
    def invoke(payload: Any, context: Any) -> dict[str, Any]:
        # A sync handler: the SDK runs it in a worker thread, so /ping keeps answering.
        return proc.invoke(payload, getattr(context, "session_id", None))

    @app.ping
    def ping() -> Any:
        return PingStatus.HEALTHY_BUSY if proc.busy else PingStatus.HEALTHY

    return app


def main(environ: Mapping[str, str] | None = None) -> None:
    env = os.environ if environ is None else environ
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    process = AgentProcess(env)
    app = create_app(process)
    process.warm_up()
    host = (env.get(HOST_ENV) or "").strip() or DEFAULT_HOST
    port = int((env.get(PORT_ENV) or "").strip() or DEFAULT_PORT)
    # uvicorn shuts down gracefully on SIGTERM, restores the previous handler and
    # raises the signal again: this handler then lets the work after the last
    # turn finish (AgentCore allows a grace period) and exits cleanly.
    signal.signal(signal.SIGTERM, _exit_when_idle(process))
    app.run(port=port, host=host)
    process.wait_idle(SHUTDOWN_GRACE_SECONDS)


def _exit_when_idle(process: AgentProcess) -> Callable[..., None]:
    def handler(signum: int, frame: Any) -> None:
        finished = process.wait_idle(SHUTDOWN_GRACE_SECONDS)
        events.emit("agentcore_shutdown", signal=signum, finished=finished)
        raise SystemExit(0 if finished else 1)
    return handler


if __name__ == "__main__":
    main()
