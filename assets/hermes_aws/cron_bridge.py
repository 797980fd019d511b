"""Hermes's scheduled jobs on Lambda: shared ``jobs.json``, schedules, fired runs.

Hermes's ``cronjob`` tool keeps its jobs in ``$HERMES_HOME/cron/jobs.json``,
which on Lambda lives in one sandbox's ``/tmp``. This module makes the jobs
the agent's, not a sandbox's, and runs them without Hermes's ticker:

* :class:`JobsStore` - ``jobs.json`` shared by every sandbox through one item of
  the sessions table (``PK=CRON#jobs``, ``SK=STATE``: ``jobs`` = the job list as
  JSON, ``version`` = a counter). :meth:`JobsStore.pull` (before a turn) brings
  the shared list into ``jobs.json``; :meth:`JobsStore.push` (after it) writes a
  changed list back with a write conditional on the version it was based on.
  When another sandbox wrote first (two chats editing jobs at once), the push
  re-reads the item, merges three ways - per job, then per field, against the
  version both started from - and retries: jobs created in either chat survive,
  an edit on one side and a no-op on the other keeps the edit, a removal wins
  over a concurrent edit, and two edits of the same field keep the later
  writer's. The base of the merge is kept next to ``jobs.json``
  (``.hermes-aws/cron-jobs-base.json``). No new IAM: the worker already reads
  and writes the table.
* :class:`CronBridge` - configured from the environment (``HERMES_AWS_SCHEDULE_GROUP``,
  ``HERMES_AWS_SCHEDULER_ROLE_ARN``, ``HERMES_AWS_QUEUE_ARN``, optional
  ``HERMES_AWS_SCHEDULE_TIMEZONE``). :meth:`CronBridge.sync` pushes and then
  calls :func:`hermes_aws.scheduler.reconcile` so EventBridge Scheduler agrees
  with the jobs (message group = the job's origin chat,
  :func:`~hermes_aws.scheduler.origin_message_group`). A reconcile that changed
  schedules from a list that another sandbox has meanwhile replaced is redone
  from the new list, so the last reconcile always works from the latest jobs.
  :meth:`CronBridge.run_fired` runs a fired job as Hermes's external-provider
  path does (``cron.jobs.claim_job_for_fire``, ``claim_dispatch`` for one-shots,
  ``cron.scheduler.run_job`` - a fresh agent with the job's prompt and skills,
  platform ``cron``, no ``cronjob``/``messaging``/``clarify`` tools -,
  ``save_job_output``, ``mark_job_run``), with the claims pushed before the run
  so another sandbox cannot run the same tick. The result is returned, not
  delivered: the worker delivers it through its own channel senders
  (:func:`delivery_targets`). ``[SILENT]`` (Hermes's rule,
  :func:`hermes_aws.scheduler.is_silent`) and blank answers deliver nothing;
  a failed run delivers Hermes's one-line failure summary.
* :func:`cold_start` - pins :data:`hermes_aws.agent_runner.LAMBDA_DISABLED_TOOLSETS`
  (but ``cronjob``) into ``config.yaml``'s ``agent.disabled_toolsets``, because
  Hermes's cron runner builds its own agent and honours only that list (without
  it a cron run would get the terminal and file tools), and seeds
  ``HERMES_TIMEZONE`` from ``HERMES_AWS_SCHEDULE_TIMEZONE`` so Hermes computes
  run times in the zone the schedules use.

Every sync and run logs one ``{"event": "cron_sync" | "cron_run", ...}`` line
(job ids and counts, never prompts or answers).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hermes_aws import events, scheduler
from hermes_aws.fsutil import atomic_write

logger = logging.getLogger(__name__)

GROUP_ENV = "HERMES_AWS_SCHEDULE_GROUP"
ROLE_ARN_ENV = "HERMES_AWS_SCHEDULER_ROLE_ARN"
QUEUE_ARN_ENV = "HERMES_AWS_QUEUE_ARN"
TIMEZONE_ENV = "HERMES_AWS_SCHEDULE_TIMEZONE"
STORE_PK = "CRON#jobs"
STORE_SK = "STATE"
STATE_DIR = ".hermes-aws"
BASE_FILE = "cron-jobs-base.json"
MAX_PUSH_ATTEMPTS = 8
MAX_RECONCILE_ROUNDS = 3
#: leave room in DynamoDB's 400 KB item for the key and the other attributes
MAX_JOBS_BYTES = 380_000
#: toolsets a chat turn may have although :data:`LAMBDA_DISABLED_TOOLSETS` lists them
CRON_TOOLSET = "cronjob"
_MISSING = object()


# --------------------------------------------------------------------------- merge


def merge_jobs(base: Sequence[Mapping[str, Any]], ours: Sequence[Mapping[str, Any]],
               theirs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Three-way merge of Hermes job lists (see the module doc); order: theirs, then our new jobs."""
    b, o, t = _by_id(base), _by_id(ours), _by_id(theirs)
    out: list[dict[str, Any]] = []
    for job_id in [*t, *(i for i in o if i not in t)]:
        bj, oj, tj = b.get(job_id), o.get(job_id), t.get(job_id)
        if oj == bj:
            merged = tj
        elif tj == bj:
            merged = oj
        elif oj is None or tj is None:
            merged = None  # removed on one side, edited on the other: the removal wins
        else:
            merged = _merge_fields(bj or {}, oj, tj)
        if merged is not None:
            out.append(dict(merged))
    return out


def _by_id(jobs: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    return {str(j["id"]): j for j in jobs if isinstance(j, Mapping) and j.get("id") is not None}


def _merge_fields(base: Mapping[str, Any], ours: Mapping[str, Any], theirs: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in [*theirs, *(k for k in ours if k not in theirs)]:
        b, o, t = base.get(key, _MISSING), ours.get(key, _MISSING), theirs.get(key, _MISSING)
        value = t if o == b else o
        if value is not _MISSING:
            out[key] = value
    return out


# --------------------------------------------------------------------------- store


class JobsStore:
    """``$HERMES_HOME/cron/jobs.json`` <-> one DynamoDB item (see the module doc)."""

    def __init__(self, table: str, client: Any, home: Path) -> None:
        self.table, self.client, self.home = table, client, Path(home)
        self.jobs_path = self.home / "cron" / "jobs.json"
        self.base_path = self.home / STATE_DIR / BASE_FILE

    # -- local ---------------------------------------------------------------
    def local_jobs(self) -> list[dict[str, Any]] | None:
        return scheduler.load_jobs(self.jobs_path)

    def _write_local(self, jobs: list[dict[str, Any]]) -> None:
        self.jobs_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        doc = {"jobs": jobs, "updated_at": datetime.now(timezone.utc).isoformat()}
        atomic_write(self.jobs_path, json.dumps(doc, indent=2, ensure_ascii=False).encode("utf-8"),
                     mode=0o600, prefix=".jobs_", fsync=False)

    def base(self) -> tuple[int, list[dict[str, Any]] | None]:
        try:
            data = json.loads(self.base_path.read_text(encoding="utf-8"))
            return int(data["version"]), data.get("jobs")
        except (OSError, ValueError, KeyError, TypeError):
            return 0, None

    def _save_base(self, version: int, jobs: list[dict[str, Any]] | None) -> None:
        self.base_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        atomic_write(self.base_path, json.dumps({"version": version, "jobs": jobs}).encode("utf-8"),
                     mode=0o600, fsync=False)

    # -- shared ----------------------------------------------------------------
    def _key(self) -> dict[str, Any]:
        return {"PK": {"S": STORE_PK}, "SK": {"S": STORE_SK}}

    def remote(self) -> tuple[int, list[dict[str, Any]] | None]:
        item = self.client.get_item(TableName=self.table, Key=self._key(), ConsistentRead=True).get("Item")
        if not item:
            return 0, None
        jobs = json.loads(item["jobs"]["S"])
        return int(item["version"]["N"]), jobs if isinstance(jobs, list) else []

    def remote_version(self) -> int:
        item = self.client.get_item(TableName=self.table, Key=self._key(), ConsistentRead=True,
                                    ProjectionExpression="version").get("Item")
        return int(item["version"]["N"]) if item else 0

    def pull(self) -> int:
        """Bring the shared jobs into ``jobs.json`` (merging unpushed local edits); the version."""
        version, remote = self.remote()
        base_version, base = self.base()
        if version == base_version and self.base_path.exists():
            return version
        local = self.local_jobs()
        if local is not None and not _same(local, base):
            merged = merge_jobs(base or [], local, remote or [])  # local edits a push never wrote
            self._write_local(merged)
        elif remote is not None:
            self._write_local(remote)
        self._save_base(version, remote)
        return version

    def push(self) -> bool:
        """Write local edits to the shared item (merging with a concurrent writer); True when written."""
        for _ in range(MAX_PUSH_ATTEMPTS):
            local = self.local_jobs()
            base_version, base = self.base()
            if local is None or _same(local, base):
                return False
            text = json.dumps(local, ensure_ascii=False, separators=(",", ":"))
            if len(text.encode("utf-8")) > MAX_JOBS_BYTES:
                raise ValueError(f"cron jobs are too large to share ({len(text)} characters)")
            condition = ("attribute_not_exists(PK)" if base_version == 0
                         else "version = :base")
            values: dict[str, Any] = {":base": {"N": str(base_version)}} if base_version else {}
            try:
                self.client.put_item(
                    TableName=self.table,
                    Item={**self._key(), "jobs": {"S": text}, "version": {"N": str(base_version + 1)},
                          "updated_at": {"S": datetime.now(timezone.utc).isoformat(timespec="milliseconds")}},
                    ConditionExpression=condition, **({"ExpressionAttributeValues": values} if values else {}))
            except self.client.exceptions.ConditionalCheckFailedException:
                version, remote = self.remote()
                merged = merge_jobs(base or [], local, remote or [])
                self._write_local(merged)
                self._save_base(version, remote)
                events.emit("cron_merge", based_on=base_version, merged_with=version, jobs=len(merged))
                continue
            self._save_base(base_version + 1, local)
            return True
        raise RuntimeError("cron jobs: too many concurrent writers; giving up this push")


def _same(a: list[dict[str, Any]] | None, b: list[dict[str, Any]] | None) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


# --------------------------------------------------------------------------- bridge


@dataclass(frozen=True)
class CronConfig:
    group: str
    role_arn: str
    queue_arn: str
    timezone: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> CronConfig | None:
        """None without ``HERMES_AWS_SCHEDULE_GROUP``; ValueError when the rest is missing."""
        group = (environ.get(GROUP_ENV) or "").strip()
        if not group:
            return None
        role = (environ.get(ROLE_ARN_ENV) or "").strip()
        queue = (environ.get(QUEUE_ARN_ENV) or "").strip()
        missing = [name for name, value in ((ROLE_ARN_ENV, role), (QUEUE_ARN_ENV, queue)) if not value]
        if missing:
            raise ValueError(f"{GROUP_ENV} is set but {', '.join(missing)} is not")
        return cls(group, role, queue, (environ.get(TIMEZONE_ENV) or "").strip() or None)


@dataclass
class CronRun:
    """What :meth:`CronBridge.run_fired` did."""

    job_id: str
    ran: bool
    reason: str | None = None  # why it did not run
    success: bool = False
    text: str = ""  # what to deliver ("" = nothing: [SILENT], blank)
    silent: bool = False
    error: str | None = None


@dataclass
class CronBridge:
    config: CronConfig
    store: JobsStore
    scheduler_client: Any = None
    last_sync: dict[str, Any] = field(default_factory=dict)

    @property
    def jobs_path(self) -> Path:
        return self.store.jobs_path

    def client(self) -> Any:
        if self.scheduler_client is None:
            from hermes_aws.secrets import make_client

            self.scheduler_client = make_client("scheduler")
        return self.scheduler_client

    def pull(self) -> int:
        return self.store.pull()

    def sync(self, origin: Mapping[str, Any] | None = None) -> scheduler.ReconcileResult:
        """Push local job edits, then make the schedules agree (see the module doc)."""
        started = time.monotonic()
        pushed = self.store.push()
        result = scheduler.ReconcileResult()
        rounds = 0
        for rounds in range(1, MAX_RECONCILE_ROUNDS + 1):  # noqa: B007
            version, _ = self.store.base()
            result = scheduler.reconcile(
                self.jobs_path, group_name=self.config.group, target_queue_arn=self.config.queue_arn,
                role_arn=self.config.role_arn, message_group_id=scheduler.origin_message_group,
                origin=origin, client=self.client(), timezone=self.config.timezone)
            if not result.changed or self.store.remote_version() == version:
                break
            self.store.pull()  # another sandbox replaced the jobs meanwhile: redo from its list
        self.last_sync = {"pushed": pushed, "rounds": rounds, **result.summary()}
        events.emit("cron_sync", ok=not result.errors, duration_ms=int((time.monotonic() - started) * 1000),
                    **self.last_sync, errors_detail=events.short(json.dumps(result.errors)) if result.errors else None)
        return result

    def run_fired(self, fired: scheduler.FiredJob) -> CronRun:
        """Claim and run a fired job like Hermes's external-provider fire path (see the module doc)."""
        from cron import jobs as cron_jobs

        self.store.pull()
        job_id = fired.job_id
        if cron_jobs.get_job(job_id) is None:
            return CronRun(job_id, ran=False, reason="the job no longer exists")
        if not cron_jobs.claim_job_for_fire(job_id):
            return CronRun(job_id, ran=False, reason="paused, disabled or already being fired")
        if not cron_jobs.claim_dispatch(job_id):
            self.store.push()
            return CronRun(job_id, ran=False, reason="one-shot already dispatched")
        self.store.push()  # the claim is shared before anything runs
        job = cron_jobs.get_job(job_id)
        if job is None:  # removed by a concurrent edit the push merged in
            return CronRun(job_id, ran=False, reason="the job no longer exists")
        success, output, final, error = _run_hermes_job(job)
        try:
            cron_jobs.save_job_output(job_id, output)
        except Exception:  # the output file is diagnostics only
            logger.debug("could not save the output of cron job %s", job_id, exc_info=True)
        final = final or ""
        content = final if success else _failure_summary(job, error)
        silent = bool(success and scheduler.is_silent(content))
        if success and not final.strip():
            success, error = False, "Agent completed but produced an empty response"
        cron_jobs.mark_job_run(job_id, success, error)
        text = "" if silent or not content.strip() else _wrap(job, content)
        return CronRun(job_id, ran=True, success=success, text=text, silent=silent, error=error)


def _run_hermes_job(job: dict[str, Any]) -> tuple[bool, str, str, str | None]:
    """``cron.scheduler.run_job`` with the process environment of a cron run, restored afterwards."""
    from cron.scheduler import run_job

    # run_job sets HERMES_CRON_SESSION for the rest of the process; a cron run is no gateway session
    with _restored_environment("HERMES_GATEWAY_SESSION", "HERMES_CRON_SESSION"):
        os.environ.pop("HERMES_GATEWAY_SESSION", None)
        return run_job(job)


@contextmanager
def _restored_environment(*names: str) -> Iterator[None]:
    """Put the given environment variables back to their current values afterwards."""
    saved = {name: os.environ.get(name) for name in names}
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _failure_summary(job: Mapping[str, Any], error: str | None) -> str:
    try:
        from cron.scheduler import _summarize_cron_failure_for_delivery

        return str(_summarize_cron_failure_for_delivery(dict(job), error))
    except Exception:  # pragma: no cover - Hermes internals moved
        return f"⚠️ Scheduled job '{job.get('name') or job.get('id')}' failed."


def _wrap(job: Mapping[str, Any], content: str) -> str:
    """Content with a short header naming the job, unless ``cron.wrap_response`` is false (as in Hermes)."""
    try:
        from hermes_cli.config import load_config

        cron_cfg = load_config().get("cron") or {}
        if isinstance(cron_cfg, Mapping) and cron_cfg.get("wrap_response", True) is False:
            return content
    except Exception:  # pragma: no cover
        pass
    return f"⏰ {job.get('name') or job.get('id')}\n\n{content}"


# --------------------------------------------------------------------------- delivery


def delivery_targets(deliver: str, origin: Mapping[str, Any] | None,
                     channels: Sequence[str]) -> tuple[list[tuple[str, str, str | None]], list[str]]:
    """``(targets, skipped)`` of a job's ``deliver`` value, as ``(platform, chat id, thread id)``.

    Parts (comma-separated) as Hermes reads them: ``origin`` (the job's origin
    chat), ``local`` (nothing), a bare platform (``telegram``: the origin when
    it is that platform; there are no home channels here), or
    ``platform:chat[:thread]``. Only ``channels`` (the configured ones) are
    delivered to; anything else is reported in ``skipped``.
    """
    targets: list[tuple[str, str, str | None]] = []
    skipped: list[str] = []
    origin_target = None
    if origin and origin.get("platform") and origin.get("chat_id"):
        thread = origin.get("thread_id")
        origin_target = (str(origin["platform"]), str(origin["chat_id"]), str(thread) if thread else None)
    for raw in (deliver or "").split(","):
        part = raw.strip()
        if not part or part.lower() == "local":
            continue
        target = None
        if part.lower() == "origin":
            target = origin_target
        elif ":" not in part:
            if origin_target and origin_target[0] == part.lower():
                target = origin_target
        else:
            platform, _, rest = part.partition(":")
            chat, _, thread = rest.partition(":")
            if chat and not chat.startswith("#"):
                target = (platform.lower(), chat, thread or None)
        if target is None or target[0] not in channels:
            skipped.append(part)
        elif target not in targets:
            targets.append(target)
    return targets, skipped


# --------------------------------------------------------------------------- cold start


def cold_start(home: Path, environ: MutableMapping[str, str], *, table: str, client: Any) -> CronBridge | None:
    """Pin the Lambda toolset policy into config.yaml; the bridge when scheduled jobs are enabled."""
    from hermes_aws.agent_runner import LAMBDA_DISABLED_TOOLSETS

    pin_disabled_toolsets(home / "config.yaml", [t for t in LAMBDA_DISABLED_TOOLSETS if t != CRON_TOOLSET])
    config = CronConfig.from_env(environ)
    if config is None:
        return None
    if config.timezone:
        scheduler._zone(config.timezone)  # a bad zone is a deployment error: fail the cold start
        if not (environ.get("HERMES_TIMEZONE") or "").strip():
            environ["HERMES_TIMEZONE"] = config.timezone
    return CronBridge(config, JobsStore(table, client, home))


def pin_disabled_toolsets(config_path: Path, names: Sequence[str]) -> bool:
    """Add ``names`` to ``agent.disabled_toolsets`` in Hermes's config.yaml; True when it changed."""
    import yaml

    try:
        config = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        config = {}
    if not isinstance(config, dict):
        raise ValueError(f"{config_path}: not a mapping")
    agent = config.get("agent")
    if not isinstance(agent, dict):
        agent = config["agent"] = {}
    current = [str(n) for n in agent.get("disabled_toolsets") or []]
    wanted = current + [n for n in names if n not in current]
    if wanted == current:
        return False
    agent["disabled_toolsets"] = wanted
    atomic_write(config_path, yaml.safe_dump(config, sort_keys=False, allow_unicode=True).encode("utf-8"),
                 mode=0o600, fsync=False)
    return True


__all__ = [
    "CronBridge", "CronConfig", "CronRun", "JobsStore", "cold_start", "delivery_targets", "merge_jobs",
    "pin_disabled_toolsets",
]
