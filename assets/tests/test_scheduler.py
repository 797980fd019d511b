"""hermes_aws.scheduler: Hermes cron jobs -> EventBridge Scheduler, against a real moto server.

Jobs are made, paused, resumed, edited and removed with Hermes's own ``cron.jobs``
functions (hermes-agent 0.19.0), so the records are exactly what the ``cronjob``
tool writes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import boto3
import pytest

from hermes_aws import scheduler
from hermes_aws.scheduler import ScheduleError

GROUP = "hermes-agent-a"
OTHER_GROUP = "hermes-agent"  # a prefix of ours: must never be confused with it
ROLE_ARN = "arn:aws:iam::123456789012:role/hermes-scheduler"
MESSAGE_GROUP = "cron"
TZ = "Europe/Berlin"
ORIGIN = {"platform": "telegram", "chat_id": "4242", "chat_name": None, "thread_id": None, "user_id": "7"}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def _forget_memo() -> Iterator[None]:
    scheduler.forget()
    yield
    scheduler.forget()


@pytest.fixture
def cron(hermetic_hermes: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Hermes's ``cron.jobs`` on a fresh HERMES_HOME, timezone Europe/Berlin."""
    import hermes_time
    from cron import jobs

    monkeypatch.setenv("HERMES_TIMEZONE", TZ)
    hermes_time.reset_cache()
    yield jobs
    hermes_time.reset_cache()


@pytest.fixture
def jobs_path(hermetic_hermes: Any) -> Path:
    return hermetic_hermes.home / "cron" / "jobs.json"


class Calls:
    """Every scheduler API call a client makes, with its parameters (botocore event hook)."""

    def __init__(self, client: Any) -> None:
        self.log: list[tuple[str, dict[str, Any]]] = []
        client.meta.events.register("provide-client-params.scheduler.*", self._record)

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.log.append((model.name, dict(params)))

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.log]

    def writes(self) -> list[tuple[str, dict[str, Any]]]:
        return [(n, p) for n, p in self.log if not n.startswith(("List", "Get"))]

    def clear(self) -> None:
        self.log.clear()


@pytest.fixture
def aws(aws_env: str) -> dict[str, Any]:
    """Scheduler client (with a call log), both groups and the FIFO queue."""
    client = boto3.client("scheduler")
    client.create_schedule_group(Name=GROUP)
    client.create_schedule_group(Name=OTHER_GROUP)
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="hermes-inbound.fifo", Attributes={
        "FifoQueue": "true", "ContentBasedDeduplication": "true"})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return {"client": client, "queue_arn": arn, "calls": Calls(client)}


def run(aws: dict[str, Any], path: Path, **kwargs: Any) -> scheduler.ReconcileResult:
    args: dict[str, Any] = dict(group_name=GROUP, target_queue_arn=aws["queue_arn"], role_arn=ROLE_ARN,
                                message_group_id=MESSAGE_GROUP, origin=ORIGIN, client=aws["client"])
    args.update(kwargs)
    return scheduler.reconcile(path, **args)


def schedules(aws: dict[str, Any], group: str = GROUP) -> dict[str, dict[str, Any]]:
    """name -> full GetSchedule output of every schedule in ``group`` (not logged as calls)."""
    client = boto3.client("scheduler")
    names = [s["Name"] for s in client.list_schedules(GroupName=group)["Schedules"]]
    found = {n: client.get_schedule(GroupName=group, Name=n) for n in names}
    for schedule in found.values():
        schedule.pop("ResponseMetadata", None)
    return found


def of_job(found: dict[str, dict[str, Any]], job_id: str) -> dict[str, Any]:
    matching = [s for n, s in found.items() if n.startswith(f"hermes-{job_id}-")]
    assert len(matching) == 1, sorted(found)
    return matching[0]


def body(schedule: dict[str, Any]) -> dict[str, Any]:
    return json.loads(schedule["Target"]["Input"])


def write_jobs(path: Path, jobs: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"jobs": jobs}), encoding="utf-8")


def record(job_id: str, schedule: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A hand-written Hermes job record (for shapes create_job would not make today)."""
    return {"id": job_id, "name": job_id, "prompt": f"do {job_id}", "skills": [], "deliver": "origin",
            "origin": None, "schedule": schedule, "repeat": {"times": None, "completed": 0},
            "enabled": True, "state": "scheduled", "next_run_at": None, "last_run_at": None, **fields}


# --------------------------------------------------------------------------- expressions


@pytest.mark.parametrize(("hermes", "eventbridge"), [
    ("0 9 * * *", "cron(0 9 * * ? *)"),
    ("*/15 * * * *", "cron(0/15 * * * ? *)"),
    ("0 */2 * * *", "cron(0 0/2 * * ? *)"),
    ("0 9 * * 1-5", "cron(0 9 ? * 2-6 *)"),  # Mon-Fri -> MON(2)-FRI(6)
    ("0 9 * * 0", "cron(0 9 ? * 1 *)"),  # Sunday 0 -> SUN 1
    ("0 9 * * 7", "cron(0 9 ? * 1 *)"),  # Sunday 7 -> SUN 1
    ("0 9 * * 6", "cron(0 9 ? * 7 *)"),  # Saturday 6 -> SAT 7
    ("0 9 * * 5-7", "cron(0 9 ? * 1,6,7 *)"),  # Fri-Sun wraps around
    ("0 9 * * */2", "cron(0 9 ? * 1,3,5,7 *)"),  # no '/' in EventBridge day-of-week
    ("0 9 * * 0-6", "cron(0 9 * * ? *)"),  # every day of the week = no restriction
    ("30 8 1,15 * *", "cron(30 8 1,15 * ? *)"),
    ("0 0 1 */3 *", "cron(0 0 1 1/3 ? *)"),
    ("5-30/5 * * * *", "cron(5,10,15,20,25,30 * * * ? *)"),
    ("0 9-17 * * 1-5", "cron(0 9-17 ? * 2-6 *)"),
    ("0 12 1-7 * *", "cron(0 12 1-7 * ? *)"),
])
def test_cron_translation(hermes: str, eventbridge: str) -> None:
    assert scheduler.cron_to_eventbridge(hermes) == eventbridge


@pytest.mark.parametrize(("hermes", "message"), [
    ("0 9 1 * 1", "either matches"),  # dom AND dow restricted: cron ORs them
    ("0 9 */2 * 1-5", "either matches"),
    ("0 9 * * MON", "not supported"),
    ("0 9 L * *", "not supported"),
    ("0 9 * * 1#2", "not supported"),
    ("0 9 * *", "exactly 5 fields"),
    ("0 9 * * * 30", "exactly 5 fields"),  # croniter's seconds field
    ("61 9 * * *", "invalid cron expression"),
    ("0 9 32 * *", "invalid cron expression"),
    ("", "exactly 5 fields"),
])
def test_cron_translation_rejects(hermes: str, message: str) -> None:
    with pytest.raises(ScheduleError, match=message):
        scheduler.cron_to_eventbridge(hermes)


@pytest.mark.parametrize(("minutes", "expression"), [
    (1, "rate(1 minute)"), (30, "rate(30 minutes)"), (60, "rate(1 hour)"), (90, "rate(90 minutes)"),
    (120, "rate(2 hours)"), (1440, "rate(1 day)"), (2880, "rate(2 days)"), (1500, "rate(25 hours)"),
])
def test_rate_expression(minutes: int, expression: str) -> None:
    assert scheduler.rate_expression(minutes) == expression


@pytest.mark.parametrize("minutes", [0, -5, 1.5, "30", None, True])
def test_rate_expression_rejects(minutes: Any) -> None:
    with pytest.raises(ScheduleError, match="positive integer"):
        scheduler.rate_expression(minutes)


def test_schedule_expression_for_every_hermes_kind(cron: Any) -> None:
    parse = cron.parse_schedule
    # Hermes's own parse results, as stored in jobs.json
    once = {"schedule": {"kind": "once", "run_at": "2030-01-02T03:04:05.250+02:00"},
            "next_run_at": "2030-01-02T03:04:05.250+02:00"}
    assert scheduler.schedule_expression(once, TZ) == ("at(2030-01-02T01:04:06)", "UTC")  # UTC, rounded up
    stamped = {"schedule": parse("2030-07-01T09:30"), "next_run_at": None}  # naive -> Hermes's timezone
    assert scheduler.schedule_expression(stamped, TZ) == ("at(2030-07-01T07:30:00)", "UTC")
    delay = {"schedule": parse("30m")}
    due = datetime.fromisoformat(delay["schedule"]["run_at"]).astimezone(timezone.utc)
    expected = (due.replace(microsecond=0) + timedelta(seconds=1 if due.microsecond else 0))
    assert scheduler.schedule_expression(delay, TZ) == (f"at({expected:%Y-%m-%dT%H:%M:%S})", "UTC")
    # a legacy naive next_run_at is read in Hermes's timezone
    legacy = {"schedule": {"kind": "once", "run_at": "2030-07-01T09:30:00"}, "next_run_at": "2030-07-01T09:30:00"}
    assert scheduler.schedule_expression(legacy, TZ) == ("at(2030-07-01T07:30:00)", "UTC")
    # next_run_at wins over run_at
    moved = {"schedule": {"kind": "once", "run_at": "2030-01-01T00:00:00+00:00"},
             "next_run_at": "2030-01-01T00:05:00+00:00"}
    assert scheduler.schedule_expression(moved, TZ)[0] == "at(2030-01-01T00:05:00)"
    assert scheduler.schedule_expression({"schedule": parse("every 2h")}, TZ) == ("rate(2 hours)", TZ)
    assert scheduler.schedule_expression({"schedule": parse("every 45m")}, "UTC") == ("rate(45 minutes)", "UTC")
    assert scheduler.schedule_expression({"schedule": parse("0 9 * * 1-5")}, TZ) == ("cron(0 9 ? * 2-6 *)", TZ)
    # a raw schedule string (the API may store one) is parsed with Hermes's parse_schedule
    assert scheduler.schedule_expression({"schedule": "every 1d"}, TZ) == ("rate(1 day)", TZ)


@pytest.mark.parametrize(("job", "timezone_name", "message"), [
    ({"schedule": {"kind": "cron", "expr": "0 9 * * *"}}, "Mars/Olympus", "unknown timezone"),
    ({"schedule": {"kind": "weekly"}}, "UTC", "unsupported schedule kind"),
    ({"schedule": None}, "UTC", "must be an object"),
    ({"schedule": "whenever"}, "UTC", "Invalid schedule"),
    ({"schedule": {"kind": "once"}, "next_run_at": None}, "UTC", "neither next_run_at"),
    ({"schedule": {"kind": "once", "run_at": "soon"}}, "UTC", "not an ISO timestamp"),
])
def test_schedule_expression_errors(cron: Any, job: dict[str, Any], timezone_name: str, message: str) -> None:
    with pytest.raises(ScheduleError, match=message):
        scheduler.schedule_expression(job, timezone_name)


def test_hermes_timezone_is_read_from_hermes(cron: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import hermes_time

    assert scheduler.hermes_timezone() == TZ
    monkeypatch.setenv("HERMES_TIMEZONE", "Asia/Kolkata")
    hermes_time.reset_cache()
    assert scheduler.hermes_timezone() == "Asia/Kolkata"


# --------------------------------------------------------------------------- reconcile


def test_reconcile_creates_one_schedule_per_kind(cron: Any, jobs_path: Path, aws: dict[str, Any]) -> None:
    future = (datetime.now(timezone.utc) + timedelta(days=3)).astimezone().replace(microsecond=0)
    delay = cron.create_job("stretch", "30m", origin=ORIGIN)
    stamp = cron.create_job("happy new year", future.isoformat(), deliver="telegram:99")
    every = cron.create_job("check the feed", "every 2h", name="feed", skills=["rss", "summarize"])
    daily = cron.create_job("standup notes", "0 9 * * 1-5", origin={"platform": "telegram", "chat_id": "55"})

    result = run(aws, jobs_path, timezone=TZ)

    found = schedules(aws)
    assert len(found) == 4 and sorted(result.created) == sorted(found)
    assert not (result.updated or result.deleted or result.errors)
    for job in (delay, stamp, every, daily):
        s = of_job(found, job["id"])
        assert s["GroupName"] == GROUP
        assert s["State"] == "ENABLED"
        assert s["FlexibleTimeWindow"] == {"Mode": "OFF"}
        target = s["Target"]
        assert target["Arn"] == aws["queue_arn"]
        assert target["RoleArn"] == ROLE_ARN
        assert target["SqsParameters"] == {"MessageGroupId": MESSAGE_GROUP}
        assert target["RetryPolicy"]["MaximumRetryAttempts"] == 0
        sent = body(s)
        assert set(sent) == {"source", "job", "scheduled_time"}
        assert sent["source"] == "hermes.cron"
        assert sent["scheduled_time"] == "<aws.scheduler.scheduled-time>"
        assert sent["job"]["id"] == job["id"] and sent["job"]["prompt"] == job["prompt"]
        assert len(s["Name"]) <= 64

    def at_of(job: dict[str, Any]) -> str:
        due = datetime.fromisoformat(job["next_run_at"]).astimezone(timezone.utc)
        due = due.replace(microsecond=0) + timedelta(seconds=1 if due.microsecond else 0)
        return f"at({due:%Y-%m-%dT%H:%M:%S})"

    s = of_job(found, delay["id"])
    assert (s["ScheduleExpression"], s["ScheduleExpressionTimezone"]) == (at_of(delay), "UTC")
    assert s["ActionAfterCompletion"] == "DELETE"
    assert body(s)["job"] == {"id": delay["id"], "name": "stretch", "prompt": "stretch", "skills": [],
                              "deliver": "origin", "origin": ORIGIN}

    s = of_job(found, stamp["id"])
    assert (s["ScheduleExpression"], s["ScheduleExpressionTimezone"]) == (at_of(stamp), "UTC")
    assert s["ActionAfterCompletion"] == "DELETE"
    assert body(s)["job"]["deliver"] == "telegram:99"
    assert body(s)["job"]["origin"] == ORIGIN  # no origin of its own: the turn's chat

    s = of_job(found, every["id"])
    assert (s["ScheduleExpression"], s["ScheduleExpressionTimezone"]) == ("rate(2 hours)", TZ)
    assert s.get("ActionAfterCompletion") in (None, "NONE")
    # first tick at Hermes's next_run_at (now + 2h), not at creation
    start = s["StartDate"].astimezone(timezone.utc)
    assert abs(start - datetime.fromisoformat(every["next_run_at"]).astimezone(timezone.utc)) < timedelta(seconds=1)
    assert body(s)["job"]["name"] == "feed" and body(s)["job"]["skills"] == ["rss", "summarize"]

    s = of_job(found, daily["id"])
    assert (s["ScheduleExpression"], s["ScheduleExpressionTimezone"]) == ("cron(0 9 ? * 2-6 *)", TZ)
    assert "StartDate" not in s or s["StartDate"] is None
    assert body(s)["job"]["origin"] == {"platform": "telegram", "chat_id": "55"}

    assert schedules(aws, OTHER_GROUP) == {}


def test_pause_resume_and_remove(cron: Any, jobs_path: Path, aws: dict[str, Any]) -> None:
    keep = cron.create_job("unrelated", "0 8 * * *")
    job = cron.create_job("water the plants", "every 1d")
    run(aws, jobs_path, timezone=TZ)
    name = of_job(schedules(aws), job["id"])["Name"]

    cron.pause_job(job["id"])
    result = run(aws, jobs_path, timezone=TZ)
    assert result.paused == [name] and not (result.created or result.deleted or result.updated)
    assert of_job(schedules(aws), job["id"])["State"] == "DISABLED"
    assert of_job(schedules(aws), keep["id"])["State"] == "ENABLED"

    cron.resume_job(job["id"])  # Hermes re-anchors next_run_at = now + 1d
    result = run(aws, jobs_path, timezone=TZ)
    assert result.resumed == [name] and not (result.created or result.deleted or result.updated)
    resumed = of_job(schedules(aws), job["id"])
    assert resumed["State"] == "ENABLED" and resumed["Name"] == name
    next_run = datetime.fromisoformat(cron.get_job(job["id"])["next_run_at"]).astimezone(timezone.utc)
    assert abs(resumed["StartDate"].astimezone(timezone.utc) - next_run) < timedelta(seconds=1)

    cron.remove_job(job["id"])
    result = run(aws, jobs_path, timezone=TZ)
    assert result.deleted == [name] and not (result.created or result.paused or result.resumed)
    left = schedules(aws)
    assert list(left) == [of_job(left, keep["id"])["Name"]]


def test_paused_job_without_schedule_is_created_disabled(cron: Any, jobs_path: Path, aws: dict[str, Any]) -> None:
    job = cron.create_job("later", "0 7 * * 1")
    cron.pause_job(job["id"])
    result = run(aws, jobs_path, timezone=TZ)
    assert len(result.created) == 1
    assert of_job(schedules(aws), job["id"])["State"] == "DISABLED"


def test_unchanged_reconcile_makes_no_api_calls(cron: Any, jobs_path: Path, aws: dict[str, Any]) -> None:
    cron.create_job("a", "every 30m")
    cron.create_job("b", "0 9 * * *")
    cron.create_job("c", "45m")
    calls = aws["calls"]

    first = run(aws, jobs_path, timezone=TZ)
    assert calls.names.count("CreateSchedule") == 3 and first.api_calls == len(calls.log)

    calls.clear()
    second = run(aws, jobs_path, timezone=TZ)
    assert calls.log == [] and second.api_calls == 0 and not second.changed
    assert second.skipped

    # without the in-memory record (a new sandbox, or force): one listing, no writes
    scheduler.forget()
    third = run(aws, jobs_path, timezone=TZ)
    assert calls.names == ["ListSchedules"] and len(third.unchanged) == 3 and not third.changed
    calls.clear()
    run(aws, jobs_path, timezone=TZ, force=True)
    assert calls.names == ["ListSchedules"]

    # a change is never skipped
    calls.clear()
    cron.create_job("d", "every 3h")
    fourth = run(aws, jobs_path, timezone=TZ)
    assert calls.names == ["ListSchedules", "CreateSchedule"] and len(fourth.created) == 1


def test_edited_job_is_replaced(cron: Any, jobs_path: Path, aws: dict[str, Any]) -> None:
    job = cron.create_job("summarize inbox", "0 18 * * *")
    run(aws, jobs_path, timezone=TZ)
    old = of_job(schedules(aws), job["id"])

    cron.update_job(job["id"], {"prompt": "summarize inbox and calendar", "schedule": "30 17 * * 1-5"})
    result = run(aws, jobs_path, timezone=TZ)

    new = of_job(schedules(aws), job["id"])  # exactly one schedule left for the job
    assert new["Name"] != old["Name"]
    assert result.updated == [new["Name"]] and result.deleted == [old["Name"]] and not result.created
    assert new["ScheduleExpression"] == "cron(30 17 ? * 2-6 *)"
    assert body(new)["job"]["prompt"] == "summarize inbox and calendar"

    # the timezone is part of the definition too
    result = run(aws, jobs_path, timezone="America/New_York", force=True)
    assert len(result.updated) == 1
    assert of_job(schedules(aws), job["id"])["ScheduleExpressionTimezone"] == "America/New_York"


def test_other_groups_and_foreign_schedules_are_never_touched(cron: Any, jobs_path: Path,
                                                            aws: dict[str, Any]) -> None:
    job = cron.create_job("mine", "every 1h")
    run(aws, jobs_path, timezone=TZ)
    mine = of_job(schedules(aws), job["id"])["Name"]
    client = boto3.client("scheduler")
    target = {"Arn": aws["queue_arn"], "RoleArn": ROLE_ARN, "SqsParameters": {"MessageGroupId": "x"},
              "Input": "{}"}
    # the same managed-looking name in another agent's group, and a stale-looking one there
    for name in (mine, "hermes-0123456789ab-0123456789ab"):
        client.create_schedule(Name=name, GroupName=OTHER_GROUP, ScheduleExpression="rate(5 minutes)",
                               FlexibleTimeWindow={"Mode": "OFF"}, Target=target)
    # a schedule in our group that reconcile did not make
    client.create_schedule(Name="manual-backup", GroupName=GROUP, ScheduleExpression="rate(1 day)",
                           FlexibleTimeWindow={"Mode": "OFF"}, Target=target)
    before = schedules(aws, OTHER_GROUP)
    calls = aws["calls"]
    calls.clear()

    cron.remove_job(job["id"])
    result = run(aws, jobs_path, timezone=TZ)

    assert result.deleted == [mine]
    assert list(schedules(aws)) == ["manual-backup"]
    assert schedules(aws, OTHER_GROUP) == before
    assert calls.writes() and all(params["GroupName"] == GROUP for _, params in calls.writes())
    assert all(params.get("GroupName") == GROUP for name, params in calls.log if name == "ListSchedules")


def test_listing_is_filtered_by_group_on_our_side(cron: Any, jobs_path: Path, aws: dict[str, Any]) -> None:
    """Even a listing that returned other groups' schedules would not make us touch them."""
    client = boto3.client("scheduler")
    client.create_schedule(Name="hermes-0123456789ab-0123456789ab", GroupName=OTHER_GROUP,
                           ScheduleExpression="rate(5 minutes)", FlexibleTimeWindow={"Mode": "OFF"},
                           Target={"Arn": aws["queue_arn"], "RoleArn": ROLE_ARN, "Input": "{}",
                                   "SqsParameters": {"MessageGroupId": "x"}})
    before = schedules(aws, OTHER_GROUP)

    class EveryGroup:
        def __init__(self, real: Any) -> None:
            self.real, self.meta = real, real.meta

        def list_schedules(self, **kwargs: Any) -> dict[str, Any]:
            kwargs.pop("GroupName", None)
            return self.real.list_schedules(**kwargs)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.real, name)

    write_jobs(jobs_path, [])
    result = run(aws, jobs_path, timezone=TZ, client=EveryGroup(aws["client"]))
    assert not result.changed and schedules(aws, OTHER_GROUP) == before


def test_job_payload_defaults_like_hermes() -> None:
    bare = {"id": "j1", "prompt": "p" * 80, "skill": "legacy"}
    assert scheduler.job_payload(bare) == {"id": "j1", "name": "p" * 50, "prompt": "p" * 80,
                                           "skills": ["legacy"], "deliver": "local", "origin": None}
    assert scheduler.job_payload(bare, ORIGIN)["deliver"] == "origin"
    assert scheduler.job_payload({**bare, "deliver": ["telegram", " slack "]})["deliver"] == "telegram,slack"
    assert scheduler.job_payload({**bare, "skills": ["a", "a", " b "]})["skills"] == ["a", "b"]
    # an origin without platform/chat_id is no origin
    assert scheduler.job_payload({**bare, "origin": {"platform": "telegram"}})["origin"] is None


def test_missing_jobs_file_changes_nothing(cron: Any, jobs_path: Path, aws: dict[str, Any]) -> None:
    cron.create_job("x", "every 2h")
    run(aws, jobs_path, timezone=TZ)
    jobs_path.unlink()
    aws["calls"].clear()
    result = run(aws, jobs_path, timezone=TZ, force=True)
    assert result.skipped == "no jobs file" and aws["calls"].log == []
    assert len(schedules(aws)) == 1
    # an empty job list, on the other hand, means "no jobs"
    write_jobs(jobs_path, [])
    result = run(aws, jobs_path, timezone=TZ)
    assert len(result.deleted) == 1 and schedules(aws) == {}


def test_completed_exhausted_and_past_jobs_have_no_schedule(cron: Any, jobs_path: Path,
                                                           aws: dict[str, Any]) -> None:
    now = datetime(2030, 5, 1, 12, 0, tzinfo=timezone.utc)
    soon = (now + timedelta(hours=1)).isoformat()
    jobs = [
        record("live", {"kind": "cron", "expr": "0 * * * *"}),
        record("finished", {"kind": "cron", "expr": "0 * * * *"}, state="completed", enabled=False),
        record("exhausted", {"kind": "interval", "minutes": 60}, repeat={"times": 3, "completed": 3}),
        record("ran", {"kind": "once", "run_at": soon}, next_run_at=soon, last_run_at=now.isoformat()),
        record("long-gone", {"kind": "once", "run_at": (now - timedelta(hours=1)).isoformat()}),
    ]
    write_jobs(jobs_path, jobs)
    result = run(aws, jobs_path, timezone="UTC", now=now)
    assert [n.split("-")[1] for n in result.created] == ["live"] and not result.errors

    # a schedule left over for a job that then completed is deleted
    write_jobs(jobs_path, [{**jobs[0], "state": "completed", "enabled": False}])
    result = run(aws, jobs_path, timezone="UTC", now=now)
    assert len(result.deleted) == 1 and not result.created
    assert schedules(aws) == {}


def test_paused_due_oneshot_gets_no_schedule(jobs_path: Path, aws: dict[str, Any]) -> None:
    now = datetime(2030, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
    due = (now - timedelta(seconds=30)).isoformat()  # inside the grace window, but paused
    write_jobs(jobs_path, [record("held", {"kind": "once", "run_at": due}, next_run_at=due,
                                  state="paused", enabled=False)])
    result = run(aws, jobs_path, timezone="UTC", now=now)
    assert not result.changed and schedules(aws) == {}


def test_due_oneshot_is_kept_or_caught_up(cron: Any, jobs_path: Path, aws: dict[str, Any]) -> None:
    now = datetime(2030, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
    due = (now + timedelta(minutes=1)).isoformat()
    job = record("remind", {"kind": "once", "run_at": due}, next_run_at=due)
    write_jobs(jobs_path, [job])
    run(aws, jobs_path, timezone="UTC", now=now)
    original = of_job(schedules(aws), "remind")
    assert original["ScheduleExpression"] == "at(2030-05-01T12:01:00)"

    # due now: the schedule that is there is left to fire (and delete itself)
    later = now + timedelta(minutes=1, seconds=30)
    result = run(aws, jobs_path, timezone="UTC", now=later)
    assert result.unchanged == [original["Name"]] and not (result.deleted or result.created)

    # no schedule (never made, or fired and deleted itself before the worker claimed the job)
    # while inside Hermes's 120 s grace: one a minute from now (claim_dispatch keeps it to one run)
    boto3.client("scheduler").delete_schedule(GroupName=GROUP, Name=original["Name"])
    result = run(aws, jobs_path, timezone="UTC", now=later + timedelta(seconds=5))
    caught = of_job(schedules(aws), "remind")
    assert result.created == [caught["Name"]]
    assert caught["ScheduleExpression"] == "at(2030-05-01T12:02:35)" and caught["ActionAfterCompletion"] == "DELETE"
    result = run(aws, jobs_path, timezone="UTC", now=later + timedelta(seconds=20))
    assert result.unchanged == [caught["Name"]] and not result.changed  # not made again

    # past the grace window it is dropped, like Hermes drops it
    result = run(aws, jobs_path, timezone="UTC", now=now + timedelta(minutes=10))
    assert result.deleted == [caught["Name"]] and schedules(aws) == {}


def test_untranslatable_job_is_reported_and_left_alone(cron: Any, jobs_path: Path, aws: dict[str, Any]) -> None:
    job = cron.create_job("monthly", "0 9 1 * *")
    run(aws, jobs_path, timezone=TZ)
    existing = of_job(schedules(aws), job["id"])
    # Hermes accepts "1st of the month OR Mondays"; EventBridge cannot express it
    cron.update_job(job["id"], {"schedule": "0 9 1 * 1"})
    aws["calls"].clear()
    result = run(aws, jobs_path, timezone=TZ)
    assert list(result.errors) == [job["id"]] and "either matches" in result.errors[job["id"]]
    assert aws["calls"].writes() == [] and not result.changed
    assert of_job(schedules(aws), job["id"]) == existing


def test_origin_fallback_is_pinned_at_creation(cron: Any, jobs_path: Path, aws: dict[str, Any]) -> None:
    job = cron.create_job("no origin recorded", "every 6h")
    run(aws, jobs_path, timezone=TZ, origin=ORIGIN)
    assert body(of_job(schedules(aws), job["id"]))["job"]["origin"] == ORIGIN
    result = run(aws, jobs_path, timezone=TZ, origin={"platform": "telegram", "chat_id": "1"}, force=True)
    assert not result.changed
    assert body(of_job(schedules(aws), job["id"]))["job"]["origin"] == ORIGIN


def test_large_prompt_is_left_out_of_the_input(cron: Any, jobs_path: Path, aws: dict[str, Any]) -> None:
    job = cron.create_job("x" * (scheduler.MAX_INPUT_BYTES + 10), "every 1d", name="big")
    run(aws, jobs_path, timezone=TZ)
    s = of_job(schedules(aws), job["id"])
    assert len(s["Target"]["Input"].encode()) <= scheduler.MAX_INPUT_BYTES
    sent = body(s)
    assert sent["job"]["prompt"] is None and sent["job"]["name"] == "big"
    sent["scheduled_time"] = "2030-01-01T00:00:00Z"
    fired = scheduler.fired_job(sent)
    assert fired is not None and fired.prompt is None and "prompt" not in fired.job_record()


def test_concurrent_reconciles_tolerate_conflicts(cron: Any, jobs_path: Path, aws: dict[str, Any]) -> None:
    """Another sandbox created / deleted the same schedules between our listing and our writes."""
    keep = cron.create_job("keep", "every 2h")
    gone = cron.create_job("gone", "every 3h")
    run(aws, jobs_path, timezone=TZ)
    names = {j["id"]: of_job(schedules(aws), j["id"])["Name"] for j in (keep, gone)}
    cron.pause_job(keep["id"])
    cron.remove_job(gone["id"])

    class StaleListing:
        """Lists what was there before; the other sandbox already applied the new state."""

        def __init__(self, real: Any) -> None:
            self.real, self.meta = real, real.meta
            self.listing = real.list_schedules(GroupName=GROUP)

        def list_schedules(self, **_: Any) -> dict[str, Any]:
            return self.listing

        def __getattr__(self, name: str) -> Any:
            return getattr(self.real, name)

    stale = StaleListing(aws["client"])
    boto3.client("scheduler").delete_schedule(GroupName=GROUP, Name=names[gone["id"]])
    result = run(aws, jobs_path, timezone=TZ, client=stale)
    assert result.errors == {}
    assert result.deleted == [names[gone["id"]]]  # already gone: fine
    assert result.paused == [names[keep["id"]]]

    # created meanwhile by the other sandbox (ConflictException): our state is still applied
    newer = cron.create_job("new", "0 6 * * *")
    run(aws, jobs_path, timezone=TZ, force=True)  # the other sandbox, before the pause
    cron.pause_job(newer["id"])
    blind = StaleListing(aws["client"])
    blind.listing = {"Schedules": []}
    result = run(aws, jobs_path, timezone=TZ, client=blind, force=True)
    made = of_job(schedules(aws), newer["id"])
    assert result.errors == {} and made["Name"] in result.created
    assert made["State"] == "DISABLED"


def test_api_failures_are_reported_per_schedule(cron: Any, jobs_path: Path, aws_env: str) -> None:
    from botocore.config import Config

    # the group does not exist (AWS: ResourceNotFoundException; moto 5.2.5: a 500, hence no retries)
    client = boto3.client("scheduler", config=Config(retries={"max_attempts": 1, "mode": "standard"}))
    cron.create_job("a", "every 2h")
    result = scheduler.reconcile(jobs_path, group_name="missing-group", target_queue_arn="arn:aws:sqs:x",
                                 role_arn=ROLE_ARN, message_group_id="g", client=client, timezone="UTC")
    assert len(result.errors) == 1 and "create_schedule" in next(iter(result.errors.values()))
    assert not result.created
    # not remembered as applied: the next call tries again
    again = scheduler.reconcile(jobs_path, group_name="missing-group", target_queue_arn="arn:aws:sqs:x",
                                role_arn=ROLE_ARN, message_group_id="g", client=client, timezone="UTC")
    assert again.api_calls == 2


def test_schedule_names() -> None:
    assert scheduler.schedule_name("c45b9d99a69b", "ab" * 32) == "hermes-c45b9d99a69b-abababababab"
    odd = scheduler.schedule_name("../weird id/with:chars" * 3, "0" * 64)
    assert len(odd) <= 64 and odd.startswith("hermes-.")
    assert set(odd) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
    long_id = "a" * 60
    assert len(scheduler.schedule_name(long_id, "0" * 64)) <= 64
    # hashed ids cannot collide with plain ones
    assert scheduler.schedule_name("a/b", "0" * 64) != scheduler.schedule_name("a_b", "0" * 64)


def test_corrupt_jobs_file_raises(jobs_path: Path, aws: dict[str, Any]) -> None:
    jobs_path.parent.mkdir(parents=True)
    jobs_path.write_text('"not jobs"')
    with pytest.raises(ValueError):
        run(aws, jobs_path, timezone="UTC")
    assert aws["calls"].log == []


def test_jobs_file_variants_are_read_like_hermes(jobs_path: Path) -> None:
    jobs_path.parent.mkdir(parents=True)
    jobs_path.write_bytes(b'\xef\xbb\xbf[{"id": "a", "prompt": "line\x01"}]')  # BOM, bare list, control char
    assert [j["id"] for j in scheduler.load_jobs(jobs_path) or []] == ["a"]


# --------------------------------------------------------------------------- fired bodies


def fired_body(**job_overrides: Any) -> dict[str, Any]:
    job = {"id": "c45b9d99a69b", "name": "stretch", "prompt": "stretch", "skills": ["yoga"],
           "deliver": "origin", "origin": dict(ORIGIN)}
    job.update(job_overrides)
    return {"source": "hermes.cron", "job": job, "scheduled_time": "2030-01-02T08:00:00Z"}


def test_fired_job_accepts_what_a_schedule_sends(cron: Any, jobs_path: Path, aws: dict[str, Any]) -> None:
    job = cron.create_job("stretch", "every 1h", skills=["yoga"], origin=ORIGIN)
    run(aws, jobs_path, timezone=TZ)
    # what EventBridge delivers: the Input with the context attribute filled in
    text = of_job(schedules(aws), job["id"])["Target"]["Input"]
    delivered = json.loads(text.replace("<aws.scheduler.scheduled-time>", "2030-01-02T08:00:00Z"))
    fired = scheduler.fired_job(delivered)
    assert fired is not None
    assert (fired.job_id, fired.name, fired.prompt, fired.skills, fired.deliver, fired.origin) == (
        job["id"], "stretch", "stretch", ("yoga",), "origin", ORIGIN)
    assert fired.scheduled_time == datetime(2030, 1, 2, 8, tzinfo=timezone.utc)
    assert fired.dedup_key == f"cron:{job['id']}:2030-01-02T08:00:00Z"
    assert fired.job_record()["skill"] == "yoga"
    assert scheduler.fired_job(fired_body(origin=None, skills=[])) is not None


@pytest.mark.parametrize("bad", [
    {"source": "telegram", "update": {"update_id": 1}, "received_at": "2030-01-01T00:00:00Z"},
    {**fired_body(), "source": "telegram"},
    {**fired_body(), "update": {}},  # extra key
    {k: v for k, v in fired_body().items() if k != "scheduled_time"},
    {**fired_body(), "scheduled_time": "<aws.scheduler.scheduled-time>"},  # not substituted
    {**fired_body(), "scheduled_time": "2030-01-02T08:00:00"},  # naive
    {**fired_body(), "scheduled_time": 1893571200},
    {**fired_body(), "job": "c45b9d99a69b"},
    fired_body(id=""), fired_body(id="../../etc"), fired_body(id=".."), fired_body(id=7),
    fired_body(id="a\nb"), fired_body(id="x" * 200),
    fired_body(prompt=["do"]), fired_body(name=None), fired_body(skills="yoga"), fired_body(skills=[""]),
    fired_body(deliver=""), fired_body(deliver=None),
    fired_body(origin={"platform": "telegram"}), fired_body(origin="telegram:1"),
    fired_body(origin={"platform": "telegram", "chat_id": "1", "x": {"nested": 1}}),
    {**fired_body(), "job": {**fired_body()["job"], "model": "gpt"}},  # extra job key
    {**fired_body(), "job": {k: v for k, v in fired_body()["job"].items() if k != "deliver"}},
    None, [], "hermes.cron",
])
def test_fired_job_rejects_malformed_bodies(bad: Any) -> None:
    assert scheduler.fired_job(bad) is None


# --------------------------------------------------------------------------- [SILENT]


SILENCE_CASES = [
    ("[SILENT]", True), ("  [silent]\n", True), ("SILENT", True), ("no_reply", True), ("No  Reply", True),
    ("2 deals filtered\n\n[SILENT]", True), ("[SILENT]\nnothing new", True),
    ("[SILENT] No changes detected", True), ("NO_REPLY\n", True),
    ("I considered staying [SILENT] but here is the summary", False),
    ("Silent retry succeeded", False), ("SILENTLY done", False), ("", False), ("   ", False),
    ("Report:\n- a\n- b", False), ("nothing [SILENT] here\nmore", False),
]


@pytest.mark.parametrize(("text", "silent"), SILENCE_CASES)
def test_is_silent(text: str, silent: bool) -> None:
    assert scheduler.is_silent(text) is silent


def test_is_silent_matches_hermes(hermetic_hermes: Any) -> None:
    from cron.scheduler import _is_cron_silence_response

    for text, _ in SILENCE_CASES + [(None, False), (42, False), ("\n\nsilent\n\n", True)]:
        assert scheduler.is_silent(text) is _is_cron_silence_response(text), text
