"""Hermes cron jobs -> Amazon EventBridge Scheduler (the serverless worker's ticker).

Hermes's ``cronjob`` tool keeps its jobs in ``$HERMES_HOME/cron/jobs.json`` and,
in a gateway, an in-process ticker fires them. A Lambda has no ticker: after
each agent turn the worker calls :func:`reconcile`, which makes the schedules of
this agent's schedule group agree with ``jobs.json``; a schedule that fires puts
``{"source": "hermes.cron", "job": {...}, "scheduled_time": ...}`` on the
agent's SQS FIFO queue, and the worker runs that job (:func:`fired_job`
validates the body, :func:`is_silent` is Hermes's ``[SILENT]`` rule).

Hermes's job records (hermes-agent 0.19.0, ``cron/jobs.py``)
-----------------------------------------------------------
``schedule`` is what ``parse_schedule`` produced when the job was made:

* ``{"kind": "once", "run_at": iso}`` from a delay (``"30m"``, ``"2h"``, ``"1d"``:
  now + delay) or an ISO timestamp (naive ones in Hermes's configured timezone);
  ``next_run_at`` holds the same instant while the job is pending;
* ``{"kind": "interval", "minutes": N}`` from ``"every 30m"`` / ``"every 2h"``;
  Hermes's first run is at creation + N, then N after each completed run;
* ``{"kind": "cron", "expr": "m h dom mon dow"}``, evaluated by croniter in
  Hermes's timezone (``HERMES_TIMEZONE`` or ``timezone:`` in config.yaml).

``state`` is ``scheduled`` | ``paused`` | ``completed`` | ``error`` with
``enabled``; ``repeat = {"times": N | None, "completed": k}``; ``deliver`` is
``"origin"``, ``"local"``, ``"telegram:<chat>[:<thread>]"``, ...; ``origin`` is
``{"platform", "chat_id", "chat_name", "thread_id", "user_id"}`` or null.

Mapping (:func:`schedule_expression`)
-------------------------------------
* once -> ``at(yyyy-mm-ddThh:mm:ss)`` of ``next_run_at`` (else ``run_at``), always
  written in **UTC** (``ScheduleExpressionTimezone = "UTC"``): the instant is
  exact, never an ambiguous wall-clock time around a DST change. Rounded up to
  the second, so it never fires before Hermes's time. ``ActionAfterCompletion =
  DELETE``.
* interval -> ``rate(N minutes|hours|days)`` (largest whole unit, singular for 1).
  ``StartDate`` = the job's ``next_run_at`` when that is in the future, because a
  rate schedule without one starts invoking immediately whereas Hermes's first
  run is one interval after creation (and after a resume).
* cron -> ``cron(m h dom mon dow *)`` in the given timezone (:func:`cron_to_eventbridge`):
  croniter (Hermes's own parser) expands and validates the fields; exactly one
  of day-of-month / day-of-week becomes ``?``; day-of-week 0-7 (Sun..Sat, Sun)
  becomes EventBridge's 1-7 (SUN..SAT). Rejected with :class:`ScheduleError`:
  anything but 5 fields of digits, ``*``, ``-``, ``,`` and ``/`` (Hermes's own
  syntax check), and a day-of-month restricted together with a day-of-week
  (cron fires when *either* matches; EventBridge has no such OR).

Reconcile (:func:`reconcile`)
-----------------------------
Schedule names are ``hermes-<job id>-<hash12>`` (job ids that are not
``[A-Za-z0-9_-]{1,36}`` become ``.<sha256[:16]>``), at most 56 characters. The
hash covers everything the schedule does (expression, timezone, target, role,
message group, retry policy, the job's id/name/prompt/skills/deliver/origin), so
one ``ListSchedules`` (which returns names and states, never descriptions) tells
what is in place:

* missing -> ``CreateSchedule`` (``State`` DISABLED for a paused job);
* changed definition -> a new schedule under the new name, then the old one is
  deleted (names are immutable; create-then-delete never leaves a gap);
* same definition, other state -> ``UpdateSchedule`` with ``State`` ENABLED /
  DISABLED (pause / resume);
* schedule of a job that is gone, ``completed``, out of repeats or a one-shot
  more than Hermes's grace (120 s) past its time -> ``DeleteSchedule``.

Only schedules in ``group_name`` whose names match the pattern above are ever
touched (the listing is filtered by group again on the client side). A one-shot
that is already due keeps whatever schedule it has (EventBridge fires with 60 s
precision and deletes it after); a one-shot that became due less than 120 s ago
and has no schedule (a "remind me in 1 minute" whose turn outlasted the minute)
gets ``at(now + 60 s)``. Since such a catch-up cannot tell "never scheduled" from
"fired and self-deleted", the worker must claim a one-shot with Hermes's
``claim_dispatch`` before running it, as Hermes's own ticker does.

A job whose schedule cannot be translated is reported in ``errors`` and its
existing schedules are left alone (reconcile never deletes what it cannot
replace). A missing ``jobs.json`` means "no information" (nothing is called or
deleted); ``{"jobs": []}`` means "no jobs" (everything of ours is deleted).

An unchanged reconcile makes no API call at all: after a reconcile without
errors the fingerprint of the desired state is kept in memory (per group, queue
and endpoint) for ``memo_ttl`` seconds (default 300), and a reconcile that
computes the same fingerprint returns at once. Time-dependent states (a one-shot
becoming due) change the fingerprint, so they are never skipped; drift made
outside (a schedule deleted by hand) is repaired on the first reconcile after
the TTL. ``force=True`` bypasses it.

Target and delivery semantics
-----------------------------
``Target = {Arn: <FIFO queue>, RoleArn: <scheduler role>, SqsParameters:
{MessageGroupId}, RetryPolicy: {MaximumRetryAttempts: 0}, Input: <json>}``
(the message group is fixed or derived from the job's own origin:
:func:`origin_message_group` gives ``<platform>:<chat id>``, so a job's runs
queue behind its chat's messages),
``FlexibleTimeWindow = OFF``. The Input carries ``"scheduled_time":
"<aws.scheduler.scheduled-time>"``, which EventBridge replaces per tick, so every
tick's body differs and, with **content-based deduplication on the FIFO queue
(required)**, a duplicate invocation of one tick is dropped by SQS. No retries:
one attempt per tick; a tick that cannot be delivered is lost and the next tick
runs as usual (retries would be deduplicated too, but at most one attempt keeps
the cost and reasoning simple). The Input's ``job.origin`` is the job's own
origin, or for a job without one the ``origin`` passed to :func:`reconcile` (the
chat of the turn that created it); it is not part of the hash, so a later
reconcile from another chat does not move an origin-less job. Bodies over
:data:`MAX_INPUT_BYTES` carry ``"prompt": null`` (the worker reads the prompt
from ``jobs.json``).

IAM for the worker: ``scheduler:CreateSchedule``, ``UpdateSchedule``,
``DeleteSchedule`` on ``arn:aws:scheduler:<region>:<account>:schedule/<group>/*``;
``scheduler:ListSchedules`` (a List action without resource-level permissions,
so ``Resource: "*"``; the code passes ``GroupName`` and filters by group itself);
``iam:PassRole`` on the scheduler role only (``iam:PassedToService =
scheduler.amazonaws.com``; Create and Update both pass it). ``GetSchedule`` is
not used (names and states come from the listing). The scheduler role
(trusted by ``scheduler.amazonaws.com``) needs ``sqs:SendMessage`` on the queue
(plus ``kms:GenerateDataKey``/``Decrypt`` if the queue uses a customer key).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone as dt_timezone
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

SOURCE = "hermes.cron"
NAME_PREFIX = "hermes-"
HASH_LENGTH = 12
SCHEDULED_TIME_ATTRIBUTE = "<aws.scheduler.scheduled-time>"
#: bodies above this carry ``prompt: null`` (EventBridge rule inputs stop at 8192 characters;
#: the Scheduler documents no limit, so stay under that one)
MAX_INPUT_BYTES = 8192
MAX_NAME_CHARS = 200
#: Hermes's ``cron.jobs.ONESHOT_GRACE_SECONDS`` (used when cron.jobs cannot be imported)
DEFAULT_ONESHOT_GRACE_SECONDS = 120
CATCH_UP_DELAY_SECONDS = 60
DEFAULT_MEMO_TTL_SECONDS = 300.0
FORMAT_VERSION = "1"

ENABLED = "ENABLED"
DISABLED = "DISABLED"

_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,36}$")
_MANAGED_NAME = re.compile(rf"^{re.escape(NAME_PREFIX)}(?P<id>[A-Za-z0-9_.-]+)-(?P<hash>[0-9a-f]{{{HASH_LENGTH}}})$")
#: Hermes's check that a schedule string is a cron expression (cron/jobs.py parse_schedule)
_CRON_FIELD = re.compile(r"^[\d*\-,/]+$")
_FIELD_MAX = {"minute": 59, "hour": 23, "day-of-month": 31, "month": 12}
#: SQS: 1-128 characters of alphanumerics and punctuation
_MESSAGE_GROUP = re.compile(r"^[!-~]{1,128}$")


class ScheduleError(ValueError):
    """A Hermes job whose schedule EventBridge Scheduler cannot express."""


# --------------------------------------------------------------------------- expressions


def schedule_expression(job: Mapping[str, Any], timezone: str = "UTC") -> tuple[str, str]:
    """``(ScheduleExpression, ScheduleExpressionTimezone)`` for a Hermes job record.

    ``timezone`` is Hermes's configured IANA zone (:func:`hermes_timezone`); it
    applies to cron expressions and to naive timestamps. ``at()`` expressions are
    always returned in UTC. Raises :class:`ScheduleError`.
    """
    tz = _zone(timezone)
    schedule = _schedule_of(job)
    kind = schedule.get("kind")
    if kind == "once":
        return f"at({_at_time(oneshot_due(job, timezone)):%Y-%m-%dT%H:%M:%S})", "UTC"
    if kind == "interval":
        return rate_expression(schedule.get("minutes")), tz.key
    if kind == "cron":
        return cron_to_eventbridge(schedule.get("expr")), tz.key
    raise ScheduleError(f"unsupported schedule kind {kind!r}")


def rate_expression(minutes: Any) -> str:
    """``rate(...)`` for Hermes's ``{"kind": "interval", "minutes": N}``."""
    if isinstance(minutes, bool) or not isinstance(minutes, int) or minutes <= 0:
        raise ScheduleError(f"interval minutes must be a positive integer, not {minutes!r}")
    for size, unit in ((1440, "day"), (60, "hour"), (1, "minute")):
        if minutes % size == 0:
            value = minutes // size
            return f"rate({value} {unit}{'' if value == 1 else 's'})"
    raise AssertionError("unreachable")  # pragma: no cover


def cron_to_eventbridge(expr: Any) -> str:
    """Hermes's 5-field cron ``m h dom mon dow`` -> ``cron(m h dom mon dow *)``.

    The fields are expanded by croniter (what Hermes evaluates them with) and
    rendered canonically: ``*``, ``a/step`` (a step that runs to the end of the
    field), ``a-b`` runs and comma lists. Raises :class:`ScheduleError`.
    """
    text = expr if isinstance(expr, str) else ""
    fields = text.split()
    if len(fields) != 5:
        raise ScheduleError(
            f"cron expression {expr!r} must have exactly 5 fields (minute hour day-of-month month "
            f"day-of-week); EventBridge Scheduler has no seconds field")
    for value in fields:
        if not _CRON_FIELD.match(value):
            raise ScheduleError(
                f"cron field {value!r} in {expr!r} is not supported: use digits, '*', '-', ',' and '/' "
                f"(no names, L, W, # or ?)")
    from croniter import croniter  # Hermes's cron dependency

    try:
        expanded, nth_weekday = croniter.expand(" ".join(fields))
    except Exception as exc:
        raise ScheduleError(f"invalid cron expression {expr!r}: {exc}") from None
    if nth_weekday:  # pragma: no cover - '#' is rejected above
        raise ScheduleError(f"cron expression {expr!r}: nth weekday is not supported")
    minute, hour, dom, month, dow = expanded
    for values in expanded:
        if values != ["*"] and not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise ScheduleError(f"cron expression {expr!r} expands to unsupported values {values!r}")
    dom_any, dow_any = dom == ["*"], dow == ["*"]
    if not dom_any and not dow_any:
        raise ScheduleError(
            f"cron expression {expr!r} restricts both day-of-month and day-of-week; cron runs when "
            f"either matches, which EventBridge Scheduler cannot express (one of them must be '?'). "
            f"Split it into two jobs.")
    parts = [
        _render(minute, _FIELD_MAX["minute"]),
        _render(hour, _FIELD_MAX["hour"]),
        _render(dom, _FIELD_MAX["day-of-month"]) if dow_any else "?",
        _render(month, _FIELD_MAX["month"]),
        "?" if dow_any else _render(sorted({(d % 7) + 1 for d in dow}), 7, steps=False),
        "*",
    ]
    return f"cron({' '.join(parts)})"


def _render(values: list[Any], high: int, *, steps: bool = True) -> str:
    """Canonical EventBridge text for an expanded field (``steps``: ``/`` allowed in the field)."""
    if values == ["*"]:  # croniter already turns full ranges (0-6, 1-31, ...) into '*'
        return "*"
    nums = sorted(set(values))
    if steps and len(nums) >= 3:
        step = nums[1] - nums[0]
        if step > 1 and all(b - a == step for a, b in zip(nums, nums[1:])) and nums[-1] + step > high:
            return f"{nums[0]}/{step}"
    out: list[str] = []
    start = prev = nums[0]
    for n in nums[1:] + [None]:  # type: ignore[list-item]
        if n is not None and n == prev + 1:
            prev = n
            continue
        if prev - start >= 2:
            out.append(f"{start}-{prev}")
        else:
            out.extend(str(v) for v in range(start, prev + 1))
        if n is not None:
            start = prev = n
    return ",".join(out)


def oneshot_due(job: Mapping[str, Any], timezone: str = "UTC") -> datetime:
    """The aware UTC instant a ``once`` job is due: ``next_run_at``, else ``schedule.run_at``."""
    raw = job.get("next_run_at") or _schedule_of(job).get("run_at")
    if not isinstance(raw, str) or not raw.strip():
        raise ScheduleError("one-shot job has neither next_run_at nor schedule.run_at")
    return _instant(raw, timezone)


def _instant(raw: str, timezone: str) -> datetime:
    """An ISO timestamp as an aware UTC datetime; naive ones are in ``timezone``."""
    try:
        when = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ScheduleError(f"{raw!r} is not an ISO timestamp") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=_zone(timezone))
    return when.astimezone(dt_timezone.utc)


def _at_time(when: datetime) -> datetime:
    """Rounded up to the whole second, so the schedule never fires before Hermes's time."""
    when = when.astimezone(dt_timezone.utc)
    if when.microsecond:
        when = when.replace(microsecond=0) + timedelta(seconds=1)
    return when


def _schedule_of(job: Mapping[str, Any]) -> Mapping[str, Any]:
    schedule = job.get("schedule")
    if isinstance(schedule, str):  # the API may store the raw string; parse it as Hermes does
        from cron.jobs import parse_schedule

        try:
            schedule = parse_schedule(schedule)
        except ValueError as exc:
            raise ScheduleError(str(exc)) from None
    if not isinstance(schedule, Mapping):
        raise ScheduleError(f"job schedule must be an object, not {type(schedule).__name__}")
    return schedule


def _zone(name: str) -> Any:
    from zoneinfo import ZoneInfo

    try:
        return ZoneInfo(str(name))
    except Exception:
        raise ScheduleError(f"unknown timezone {name!r}") from None


def hermes_timezone() -> str:
    """Hermes's configured IANA timezone (``HERMES_TIMEZONE`` / config.yaml), else ``"UTC"``."""
    try:
        from hermes_time import get_timezone

        tz = get_timezone()
        key = getattr(tz, "key", None)
        if key:
            return str(key)
    except Exception:  # pragma: no cover - Hermes missing or broken config
        logger.debug("could not resolve Hermes's timezone", exc_info=True)
    return "UTC"


def _oneshot_grace_seconds() -> int:
    try:
        from cron.jobs import ONESHOT_GRACE_SECONDS

        return int(ONESHOT_GRACE_SECONDS)
    except Exception:  # pragma: no cover
        return DEFAULT_ONESHOT_GRACE_SECONDS


# --------------------------------------------------------------------------- names and payloads


def schedule_id_part(job_id: str) -> str:
    """The job-id part of schedule names (injective: hashed ids start with ``.``)."""
    if _SAFE_ID.match(job_id):
        return job_id
    return "." + hashlib.sha256(job_id.encode("utf-8")).hexdigest()[:16]


def schedule_name(job_id: str, definition_hash: str) -> str:
    return f"{NAME_PREFIX}{schedule_id_part(job_id)}-{definition_hash[:HASH_LENGTH]}"


def _clean_origin(origin: Any) -> dict[str, Any] | None:
    """A Hermes origin (``platform`` + ``chat_id`` required) with JSON-scalar values, else None."""
    if not isinstance(origin, Mapping):
        return None
    cleaned: dict[str, Any] = {}
    for key, value in origin.items():
        if not isinstance(key, str):
            continue
        if value is None or isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
            cleaned[key] = str(value) if isinstance(value, int) else value
    if not cleaned.get("platform") or not cleaned.get("chat_id"):
        return None
    return cleaned


def _skills(job: Mapping[str, Any]) -> list[str]:
    """Hermes's ``_normalize_skill_list(skill, skills)``."""
    raw = job.get("skills")
    items = ([job.get("skill")] if job.get("skill") else []) if raw is None else (
        [raw] if isinstance(raw, str) else list(raw) if isinstance(raw, (list, tuple)) else [])
    out: list[str] = []
    for item in items:
        text = str(item or "").strip()
        if text and text not in out:
            out.append(text)
    return out


def _deliver(job: Mapping[str, Any], origin: Mapping[str, Any] | None) -> str:
    """Hermes's canonical ``deliver`` string (lists flattened; default origin-or-local)."""
    value = job.get("deliver")
    if isinstance(value, (list, tuple)):
        value = ",".join(str(p).strip() for p in value if str(p).strip())
    text = str(value).strip() if value is not None else ""
    return text or ("origin" if origin else "local")


def job_payload(job: Mapping[str, Any], origin: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``job`` object of a fired body: id, name, prompt, skills, deliver, origin."""
    job_origin = _clean_origin(job.get("origin")) or _clean_origin(origin)
    prompt = "" if job.get("prompt") is None else str(job.get("prompt"))
    skills = _skills(job)
    name = str(job.get("name") or "").strip() or (prompt or (skills[0] if skills else "") or str(job["id"]))[:50]
    return {
        "id": str(job["id"]), "name": name[:MAX_NAME_CHARS], "prompt": prompt, "skills": skills,
        "deliver": _deliver(job, job_origin), "origin": job_origin,
    }


def origin_message_group(origin: Mapping[str, Any] | None) -> str:
    """``<platform>:<chat id>`` (the chat's own queue group, as the ingress uses), else ``cron``."""
    if origin and origin.get("platform") and origin.get("chat_id"):
        group = f"{origin['platform']}:{origin['chat_id']}"
        if _MESSAGE_GROUP.match(group):
            return group
    return "cron"


def message_input(payload: Mapping[str, Any]) -> str:
    """The schedule's ``Target.Input``; the prompt is dropped when the body would be too large."""
    body = {"source": SOURCE, "job": dict(payload), "scheduled_time": SCHEDULED_TIME_ATTRIBUTE}
    text = _dumps(body)
    if len(text.encode("utf-8")) > MAX_INPUT_BYTES:
        body["job"]["prompt"] = None
        text = _dumps(body)
        if len(text.encode("utf-8")) > MAX_INPUT_BYTES:
            raise ScheduleError(f"job {payload.get('id')!r} is too large for a schedule input "
                                f"even without its prompt")
    return text


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _hash(value: Any) -> str:
    return hashlib.sha256(_dumps(value).encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- desired state


#: exact: this name must exist (other versions are replaced);
#: catch_up: leave any existing version alone, create this one only when there is none
_EXACT, _CATCH_UP = "exact", "catch_up"


@dataclass
class _Desired:
    job_id: str
    id_part: str
    mode: str
    name: str = ""
    state: str = ENABLED
    request: dict[str, Any] = field(default_factory=dict)  # CreateSchedule/UpdateSchedule arguments


@dataclass
class _Target:
    group_name: str
    queue_arn: str
    role_arn: str
    message_group_id: str | Callable[[Mapping[str, Any] | None], str]
    timezone: str

    def group_for(self, origin: Mapping[str, Any] | None) -> str:
        group = self.message_group_id(origin) if callable(self.message_group_id) else self.message_group_id
        if not isinstance(group, str) or not _MESSAGE_GROUP.match(group):
            raise ScheduleError(f"invalid SQS message group id {group!r}")
        return group


def _wanted_state(job: Mapping[str, Any]) -> str | None:
    """ENABLED / DISABLED, or None when the job should have no schedule."""
    state = str(job.get("state") or "").strip().lower()
    if state == "completed":
        return None
    repeat = job.get("repeat")
    if isinstance(repeat, Mapping):
        times, completed = repeat.get("times"), repeat.get("completed") or 0
        if isinstance(times, int) and times > 0 and isinstance(completed, int) and completed >= times:
            return None
    if state == "paused" or job.get("enabled", True) is False:
        return DISABLED
    return ENABLED


def _desired_for(job: Mapping[str, Any], target: _Target, origin: Mapping[str, Any] | None,
                 now: datetime, grace: int) -> _Desired | None:
    job_id = str(job["id"])
    id_part = schedule_id_part(job_id)
    state = _wanted_state(job)
    if state is None:
        return None
    schedule = _schedule_of(job)
    kind = schedule.get("kind")
    mode = _EXACT
    start_date: datetime | None = None
    if kind == "once":
        if job.get("last_run_at"):
            return None  # a one-shot runs once (Hermes: _recoverable_oneshot_run_at)
        due = oneshot_due(job, target.timezone)
        if due <= now:
            if state == DISABLED or (now - due).total_seconds() > grace:
                return None
            # due already: keep what is there; nothing there -> fire a minute from now
            mode = _CATCH_UP
            expression, tz = f"at({_at_time(now + timedelta(seconds=CATCH_UP_DELAY_SECONDS)):%Y-%m-%dT%H:%M:%S})", "UTC"
        else:
            expression, tz = schedule_expression(job, target.timezone)
    else:
        expression, tz = schedule_expression(job, target.timezone)
        if kind == "interval" and isinstance(job.get("next_run_at"), str):
            try:
                nxt: datetime | None = _instant(job["next_run_at"], target.timezone)
            except ScheduleError:
                nxt = None
            if nxt is not None and nxt > now:
                start_date = _at_time(nxt)  # Hermes's next run; without it a rate starts at once

    own = job_payload(job)  # the job's own origin: what the hash covers
    effective = job_payload(job, origin)
    group = target.group_for(own["origin"])  # the job's own: a fallback origin must not move it
    definition = {
        "v": FORMAT_VERSION, "expression": expression, "timezone": tz, "queue": target.queue_arn,
        "role": target.role_arn, "group": group, "retries": 0, "job": own,
    }
    name = schedule_name(job_id, _hash(definition))
    request: dict[str, Any] = {
        "Name": name,
        "GroupName": target.group_name,
        "ScheduleExpression": expression,
        "ScheduleExpressionTimezone": tz,
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "Description": f"Hermes cron job {job_id}: {effective['name']}"[:512],
        "Target": {
            "Arn": target.queue_arn,
            "RoleArn": target.role_arn,
            "Input": message_input(effective),
            "SqsParameters": {"MessageGroupId": group},
            "RetryPolicy": {"MaximumRetryAttempts": 0},
        },
    }
    if kind == "once":
        request["ActionAfterCompletion"] = "DELETE"
    if start_date is not None:
        request["StartDate"] = start_date
    return _Desired(job_id=job_id, id_part=id_part, mode=mode, name=name, state=state, request=request)


# --------------------------------------------------------------------------- reconcile


@dataclass
class ReconcileResult:
    """What :func:`reconcile` did; lists hold schedule names."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)  # new names of replaced definitions
    paused: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # job id or schedule name -> message
    skipped: str | None = None  # why nothing was looked at
    api_calls: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.paused or self.resumed or self.deleted)

    def summary(self) -> dict[str, Any]:
        """Counts for an event line."""
        out: dict[str, Any] = {k: len(getattr(self, k)) for k in
                               ("created", "updated", "paused", "resumed", "deleted", "unchanged", "errors")}
        out["api_calls"] = self.api_calls
        if self.skipped:
            out["skipped"] = self.skipped
        return out


_memo: dict[tuple[str, ...], tuple[str, float]] = {}
_memo_lock = threading.Lock()


def forget() -> None:
    """Drop the in-memory record of what was last applied (tests; after a redeploy)."""
    with _memo_lock:
        _memo.clear()


def load_jobs(jobs_path: str | Path) -> list[dict[str, Any]] | None:
    """Hermes's job records from ``jobs.json``; None when the file does not exist.

    Read like Hermes's ``load_jobs`` (BOM tolerated, control characters in strings
    accepted, a bare list accepted) but never rewritten. Hermes replaces the file
    atomically, so no lock is needed to read it.
    """
    path = Path(jobs_path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        return None
    data = json.loads(text, strict=False)
    jobs = data.get("jobs", []) if isinstance(data, dict) else data
    if not isinstance(jobs, list):
        raise ValueError(f"{path}: expected {{'jobs': [...]}}, got {type(data).__name__}")
    return [job for job in jobs if isinstance(job, dict)]


def reconcile(
    jobs_path: str | Path,
    *,
    group_name: str,
    target_queue_arn: str,
    role_arn: str,
    message_group_id: str | Callable[[Mapping[str, Any] | None], str],
    origin: Mapping[str, Any] | None = None,
    client: Any = None,
    timezone: str | None = None,
    now: datetime | None = None,
    force: bool = False,
    memo_ttl: float = DEFAULT_MEMO_TTL_SECONDS,
) -> ReconcileResult:
    """Make the schedules of ``group_name`` agree with Hermes's ``jobs.json`` (see the module doc).

    ``origin``: the origin (``{"platform", "chat_id", "thread_id", ...}``) used for
    jobs that have none, i.e. the chat of the turn that just ran.
    ``message_group_id``: the SQS message group of every schedule, or a function
    of a job's own origin (None for a job without one), e.g.
    :func:`origin_message_group` (so a job's runs queue behind its chat's messages). ``timezone``:
    defaults to :func:`hermes_timezone`. Per-job and per-schedule failures are
    collected in ``errors``; failing to list the group raises.
    """
    if not group_name or not target_queue_arn or not role_arn or not message_group_id:
        raise ValueError("group_name, target_queue_arn, role_arn and message_group_id are required")
    result = ReconcileResult()
    jobs = load_jobs(jobs_path)
    if jobs is None:
        result.skipped = "no jobs file"
        return result
    target = _Target(group_name, target_queue_arn, role_arn, message_group_id,
                     timezone or hermes_timezone())
    _zone(target.timezone)
    moment = (now or datetime.now(dt_timezone.utc)).astimezone(dt_timezone.utc)
    grace = _oneshot_grace_seconds()

    desired: dict[str, _Desired] = {}  # id part -> desired
    protected: set[str] = set()  # id parts whose schedules must not be touched (errors)
    for job in jobs:
        raw_id = job.get("id")
        if not isinstance(raw_id, str) or not raw_id.strip():
            result.errors[str(raw_id)] = "job without an id"
            continue
        try:
            want = _desired_for(job, target, origin, moment, grace)
        except ScheduleError as exc:
            result.errors[raw_id] = str(exc)
            protected.add(schedule_id_part(raw_id))
            continue
        if want is not None:
            if want.id_part in desired:
                result.errors[raw_id] = "duplicate job id"
                protected.add(want.id_part)
                continue
            desired[want.id_part] = want
    for id_part in protected:
        desired.pop(id_part, None)
    job_errors = set(result.errors)

    if client is None:
        from hermes_aws.secrets import make_client

        client = make_client("scheduler")
    memo_key = (str(getattr(getattr(client, "meta", None), "endpoint_url", "")),
                str(getattr(getattr(client, "meta", None), "region_name", "")),
                group_name, target_queue_arn, str(Path(jobs_path)))
    fingerprint = _hash({
        "desired": sorted((d.id_part, d.mode, d.name, d.state) for d in desired.values()),
        "protected": sorted(protected),
    })
    if not force and memo_ttl > 0:
        with _memo_lock:
            seen = _memo.get(memo_key)
        if seen and seen[0] == fingerprint and time.monotonic() - seen[1] < memo_ttl:
            result.skipped = "unchanged since the last reconcile"
            return result

    def call(operation: str, **kwargs: Any) -> Any:
        result.api_calls += 1
        return getattr(client, operation)(**kwargs)

    existing: dict[str, dict[str, str]] = {}  # id part -> {name: state}
    token: str | None = None
    while True:
        page = call("list_schedules", GroupName=group_name, NamePrefix=NAME_PREFIX, MaxResults=100,
                    **({"NextToken": token} if token else {}))
        for summary in page.get("Schedules") or []:
            name = summary.get("Name") or ""
            match = _MANAGED_NAME.match(name)
            if summary.get("GroupName") != group_name or not match:
                continue  # another group (never ours to touch) or not a name we made
            existing.setdefault(match.group("id"), {})[name] = summary.get("State") or ENABLED
        token = page.get("NextToken")
        if not token:
            break

    for id_part, want in desired.items():
        versions = existing.get(id_part, {})
        if want.mode != _EXACT and versions:
            result.unchanged.extend(versions)
            continue
        if want.name in versions:
            current = versions[want.name]
            if current == want.state:
                result.unchanged.append(want.name)
            elif _apply(call, "update_schedule", want, result):
                (result.resumed if want.state == ENABLED else result.paused).append(want.name)
        elif _apply(call, "create_schedule", want, result):
            (result.updated if versions else result.created).append(want.name)
        else:
            continue  # keep the old versions when the new one could not be made
        for old in versions:
            if old != want.name:
                _delete(call, group_name, old, result)

    for id_part, versions in existing.items():
        if id_part in desired or id_part in protected:
            continue
        for name in versions:
            _delete(call, group_name, name, result)

    with _memo_lock:
        # job errors are a function of jobs.json (reported again on every call); API errors are not
        if memo_ttl > 0 and not (set(result.errors) - job_errors):
            _memo[memo_key] = (fingerprint, time.monotonic())
        else:
            _memo.pop(memo_key, None)
    return result


def _error_code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def _apply(call: Callable[..., Any], operation: str, want: _Desired, result: ReconcileResult) -> bool:
    request = {**want.request, "State": want.state}
    try:
        call(operation, **request)
        return True
    except Exception as exc:
        if operation == "create_schedule" and _error_code(exc) == "ConflictException":
            # made meanwhile by a concurrent reconcile: same name, same definition; set the state
            try:
                call("update_schedule", **request)
                return True
            except Exception as exc2:
                exc = exc2
        logger.warning("%s %s failed: %s", operation, want.name, exc)
        result.errors[want.name] = f"{operation}: {_error_code(exc) or type(exc).__name__}: {exc}"
        return False


def _delete(call: Callable[..., Any], group_name: str, name: str, result: ReconcileResult) -> None:
    try:
        call("delete_schedule", GroupName=group_name, Name=name)
    except Exception as exc:
        if _error_code(exc) != "ResourceNotFoundException":  # gone already (a fired at() deletes itself)
            logger.warning("delete_schedule %s failed: %s", name, exc)
            result.errors[name] = f"delete_schedule: {_error_code(exc) or type(exc).__name__}: {exc}"
            return
    result.deleted.append(name)


# --------------------------------------------------------------------------- fired schedules


_BODY_KEYS = frozenset({"source", "job", "scheduled_time"})
_JOB_KEYS = frozenset({"id", "name", "prompt", "skills", "deliver", "origin"})
_MAX_ID_CHARS = 128


@dataclass(frozen=True)
class FiredJob:
    """A validated ``hermes.cron`` message body."""

    job_id: str
    name: str
    prompt: str | None  # None: too large for the schedule input; read it from jobs.json by id
    skills: tuple[str, ...]
    deliver: str
    origin: dict[str, Any] | None
    scheduled_time: datetime  # aware

    @property
    def dedup_key(self) -> str:
        """``cron:<job id>:<scheduled time>``: one key per tick (for an idempotency ledger)."""
        return f"cron:{self.job_id}:{self.scheduled_time.astimezone(dt_timezone.utc):%Y-%m-%dT%H:%M:%SZ}"

    def job_record(self) -> dict[str, Any]:
        """A Hermes-shaped job dict of the fired fields (merge over the jobs.json record)."""
        record: dict[str, Any] = {
            "id": self.job_id, "name": self.name, "skills": list(self.skills),
            "skill": self.skills[0] if self.skills else None, "deliver": self.deliver, "origin": self.origin,
        }
        if self.prompt is not None:
            record["prompt"] = self.prompt
        return record


def fired_job(message_body: Any) -> FiredJob | None:
    """The job of a body a schedule delivered, or None (other sources and anything malformed).

    The shape is checked strictly: exactly the keys :func:`message_input` writes,
    with their types, a safe job id and an aware ``scheduled_time``.
    """
    if not isinstance(message_body, Mapping) or message_body.get("source") != SOURCE:
        return None
    try:
        return _parse_fired(message_body)
    except (TypeError, ValueError) as exc:
        logger.warning("malformed %s body: %s", SOURCE, exc)
        return None


def _parse_fired(body: Mapping[str, Any]) -> FiredJob:
    if set(body) != _BODY_KEYS:
        raise ValueError(f"keys must be {sorted(_BODY_KEYS)}, got {sorted(map(str, body))}")
    job = body["job"]
    if not isinstance(job, Mapping) or set(job) != _JOB_KEYS:
        raise ValueError(f"job must be an object with keys {sorted(_JOB_KEYS)}")
    job_id = job["id"]
    if (not isinstance(job_id, str) or not job_id.strip() or len(job_id) > _MAX_ID_CHARS
            or job_id in (".", "..") or any(c in job_id for c in "/\\") or not job_id.isprintable()):
        raise ValueError(f"unsafe job id {job_id!r}")
    if not isinstance(job["name"], str):
        raise ValueError("job.name must be a string")
    if job["prompt"] is not None and not isinstance(job["prompt"], str):
        raise ValueError("job.prompt must be a string or null")
    skills = job["skills"]
    if not isinstance(skills, list) or not all(isinstance(s, str) and s.strip() for s in skills):
        raise ValueError("job.skills must be a list of names")
    if not isinstance(job["deliver"], str) or not job["deliver"].strip():
        raise ValueError("job.deliver must be a non-empty string")
    origin = job["origin"]
    if origin is not None:
        if not isinstance(origin, Mapping) or _clean_origin(origin) != dict(origin):
            raise ValueError("job.origin must be null or an object with platform, chat_id and scalar values")
    when = body["scheduled_time"]
    if not isinstance(when, str):
        raise ValueError("scheduled_time must be a string")
    try:
        moment = datetime.fromisoformat(when.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"scheduled_time {when!r} is not an ISO timestamp") from None
    if moment.tzinfo is None:
        raise ValueError(f"scheduled_time {when!r} has no timezone")
    return FiredJob(
        job_id=job_id, name=job["name"], prompt=job["prompt"], skills=tuple(skills),
        deliver=job["deliver"].strip(), origin=dict(origin) if origin is not None else None,
        scheduled_time=moment,
    )


# --------------------------------------------------------------------------- [SILENT]

#: Hermes 0.19.0 cron/scheduler.py ``_CRON_SILENCE_TOKENS``
SILENCE_TOKENS = frozenset({"[SILENT]", "SILENT", "NO_REPLY", "NO REPLY"})


def is_silent(response_text: Any) -> bool:
    """Hermes's cron silence rule (``cron.scheduler._is_cron_silence_response``).

    True when, whitespace-trimmed and case-insensitively, the whole response or
    its first or last non-empty line is ``[SILENT]`` / ``SILENT`` / ``NO_REPLY`` /
    ``NO REPLY`` (inner whitespace collapsed), or the response starts with
    ``[SILENT]``. A token inside a sentence is content and is delivered. Hermes
    applies it only to successful runs with a non-blank response.
    """
    if not isinstance(response_text, str):
        return False
    stripped = response_text.strip()
    if not stripped:
        return False

    def is_token(line: str) -> bool:
        return " ".join(line.strip().upper().split()) in SILENCE_TOKENS

    if is_token(stripped):
        return True
    lines = [line for line in stripped.splitlines() if line.strip()]
    if lines and (is_token(lines[0]) or is_token(lines[-1])):
        return True
    return stripped.upper().startswith("[SILENT]")


__all__ = [
    "SOURCE", "ScheduleError", "schedule_expression", "rate_expression", "cron_to_eventbridge",
    "oneshot_due", "hermes_timezone", "schedule_name", "job_payload", "origin_message_group",
    "message_input", "load_jobs", "ReconcileResult", "reconcile", "forget", "FiredJob", "fired_job",
    "is_silent",
]
