"""hermes_aws.cron_bridge: jobs.json shared through DynamoDB (moto), merges, reconcile rounds, delivery targets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from hermes_aws import cron_bridge, scheduler
from hermes_aws.cron_bridge import CronBridge, CronConfig, JobsStore, delivery_targets, merge_jobs
from stubs.aws_resources import create_sessions_table

TABLE = "hermes-sessions"
GROUP = "hermes-cron-test"
ROLE = "arn:aws:iam::123456789012:role/scheduler"
ORIGIN = {"platform": "telegram", "chat_id": "1", "chat_name": None, "thread_id": None, "user_id": "1"}


def job(job_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": job_id, "name": job_id, "prompt": f"do {job_id}", "schedule": {"kind": "interval", "minutes": 60},
            "state": "scheduled", "enabled": True, "deliver": "origin", "origin": ORIGIN,
            "repeat": {"times": None, "completed": 0}, **fields}


# --------------------------------------------------------------------------- merge


def test_merge_keeps_jobs_created_on_both_sides() -> None:
    base = [job("a")]
    assert [j["id"] for j in merge_jobs(base, [job("a"), job("b")], [job("a"), job("c")])] == ["a", "c", "b"]


def test_merge_takes_the_only_changed_side_and_removal_beats_an_edit() -> None:
    a, paused = job("a"), job("a", state="paused", enabled=False)
    assert merge_jobs([a], [a], [paused]) == [paused]  # theirs changed
    assert merge_jobs([a], [paused], [a]) == [paused]  # ours changed
    assert merge_jobs([a], [], [a]) == []  # removed here, untouched there
    assert merge_jobs([a], [], [paused]) == []  # removed here, edited there: removed
    assert merge_jobs([a], [paused], []) == []  # and the other way round


def test_merge_edits_of_different_fields_of_one_job_combine() -> None:
    base = job("a")
    ours = {**base, "prompt": "new prompt"}  # a user edit here
    theirs = {**base, "last_run_at": "2026-01-01T00:00:00+01:00", "repeat": {"times": None, "completed": 1}}
    (merged,) = merge_jobs([base], [ours], [theirs])
    assert merged["prompt"] == "new prompt" and merged["last_run_at"] and merged["repeat"]["completed"] == 1
    # the same field changed on both sides: ours (the later writer) wins; a field we dropped stays dropped
    (both,) = merge_jobs([base], [{**ours, "deliver": "local"}], [{**theirs, "deliver": "telegram:9"}])
    assert both["deliver"] == "local"
    (dropped,) = merge_jobs([base], [{k: v for k, v in base.items() if k != "origin"}], [theirs])
    assert "origin" not in dropped


# --------------------------------------------------------------------------- store


@pytest.fixture
def ddb(aws_env: str) -> Any:
    client = boto3.client("dynamodb")
    create_sessions_table(TABLE, client=client)
    return client


def write_jobs(store: JobsStore, jobs: list[dict[str, Any]]) -> None:
    store.jobs_path.parent.mkdir(parents=True, exist_ok=True)
    store.jobs_path.write_text(json.dumps({"jobs": jobs, "updated_at": "x"}))


def test_two_sandboxes_editing_at_once_lose_nothing(ddb: Any, tmp_path: Path,
                                                     capfd: pytest.CaptureFixture[str]) -> None:
    a, b = JobsStore(TABLE, ddb, tmp_path / "a"), JobsStore(TABLE, ddb, tmp_path / "b")
    assert a.pull() == 0 and b.pull() == 0 and not a.jobs_path.exists()
    write_jobs(a, [job("x")])
    write_jobs(b, [job("y")])  # both started from "no jobs"
    assert a.push() is True
    assert b.push() is True  # conflict -> merged -> written
    assert "cron_merge" in capfd.readouterr().out
    version, shared = a.remote()
    assert version == 2 and sorted(j["id"] for j in shared) == ["x", "y"]
    assert sorted(j["id"] for j in b.local_jobs() or []) == ["x", "y"]
    a.pull()
    assert sorted(j["id"] for j in a.local_jobs() or []) == ["x", "y"]
    # now a removes x while b pauses it
    write_jobs(a, [job("y")])
    write_jobs(b, [job("x", state="paused", enabled=False), job("y")])
    a.push()
    b.push()
    assert [j["id"] for j in b.remote()[1] or []] == ["y"]
    assert b.push() is False  # nothing left to write


def test_pull_keeps_unpushed_local_edits(ddb: Any, tmp_path: Path) -> None:
    a, b = JobsStore(TABLE, ddb, tmp_path / "a"), JobsStore(TABLE, ddb, tmp_path / "b")
    write_jobs(a, [job("x")])
    a.push()
    b.pull()
    write_jobs(b, [job("x"), job("local-only")])  # e.g. a push that failed last turn
    write_jobs(a, [job("x"), job("z")])
    a.push()
    b.pull()
    assert sorted(j["id"] for j in b.local_jobs() or []) == ["local-only", "x", "z"]
    assert b.push() is True and sorted(j["id"] for j in a.remote()[1] or []) == ["local-only", "x", "z"]


def test_unchanged_jobs_are_not_written(ddb: Any, tmp_path: Path) -> None:
    a = JobsStore(TABLE, ddb, tmp_path / "a")
    write_jobs(a, [job("x")])
    assert a.push() is True
    a.jobs_path.write_text(json.dumps({"jobs": [job("x")], "updated_at": "rewritten by Hermes"}))
    assert a.push() is False and a.remote()[0] == 1


def test_oversized_jobs_are_refused(ddb: Any, tmp_path: Path) -> None:
    a = JobsStore(TABLE, ddb, tmp_path / "a")
    write_jobs(a, [job("x", prompt="p" * 400_000)])
    with pytest.raises(ValueError, match="too large"):
        a.push()


# --------------------------------------------------------------------------- bridge


@pytest.fixture
def queue_arn(aws_env: str) -> str:
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="q.fifo", Attributes={"FifoQueue": "true",
                                                           "ContentBasedDeduplication": "true"})["QueueUrl"]
    boto3.client("scheduler").create_schedule_group(Name=GROUP)
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def bridge(home: Path, ddb: Any, queue_arn: str) -> CronBridge:
    return CronBridge(CronConfig(GROUP, ROLE, queue_arn, "UTC"), JobsStore(TABLE, ddb, home),
                      boto3.client("scheduler"))


def schedule_jobs() -> list[str]:
    client = boto3.client("scheduler")
    out = []
    for s in client.list_schedules(GroupName=GROUP)["Schedules"]:
        target = client.get_schedule(GroupName=GROUP, Name=s["Name"])["Target"]
        out.append(json.loads(target["Input"])["job"]["id"])
    return sorted(out)


def test_a_reconcile_from_a_stale_list_is_redone(ddb: Any, queue_arn: str, tmp_path: Path,
                                                 hermetic_hermes: Any) -> None:
    scheduler.forget()
    a, b = bridge(tmp_path / "a", ddb, queue_arn), bridge(tmp_path / "b", ddb, queue_arn)
    write_jobs(a.store, [job("x")])
    a.sync(ORIGIN)
    b.pull()
    write_jobs(b.store, [job("x"), job("y")])
    b.sync(ORIGIN)
    assert schedule_jobs() == ["x", "y"]
    # a still holds the list without y; its next reconcile deletes y's schedule, notices the
    # newer list, pulls it and reconciles again
    scheduler.forget()
    result = a.sync(ORIGIN)
    assert schedule_jobs() == ["x", "y"]
    assert a.last_sync["rounds"] == 2 and result.created  # y recreated in the second round
    assert sorted(j["id"] for j in a.store.local_jobs() or []) == ["x", "y"]


def test_schedules_queue_behind_their_origin_chat(ddb: Any, queue_arn: str, tmp_path: Path,
                                                  hermetic_hermes: Any) -> None:
    scheduler.forget()
    slack_origin = {"platform": "slack", "chat_id": "C1", "thread_id": "1700.1"}
    b = bridge(tmp_path / "b", ddb, queue_arn)
    write_jobs(b.store, [job("t"), job("s", origin=slack_origin), job("none", origin=None)])
    b.sync(ORIGIN)
    client = boto3.client("scheduler")
    groups = {}
    for s in client.list_schedules(GroupName=GROUP)["Schedules"]:
        target = client.get_schedule(GroupName=GROUP, Name=s["Name"])["Target"]
        groups[json.loads(target["Input"])["job"]["id"]] = target["SqsParameters"]["MessageGroupId"]
    assert groups == {"t": "telegram:1", "s": "slack:C1", "none": "cron"}


def test_config_from_env() -> None:
    assert CronConfig.from_env({}) is None
    with pytest.raises(ValueError, match="HERMES_AWS_SCHEDULER_ROLE_ARN"):
        CronConfig.from_env({"HERMES_AWS_SCHEDULE_GROUP": "g", "HERMES_AWS_QUEUE_ARN": "arn:q"})
    config = CronConfig.from_env({"HERMES_AWS_SCHEDULE_GROUP": "g", "HERMES_AWS_SCHEDULER_ROLE_ARN": "arn:r",
                                  "HERMES_AWS_QUEUE_ARN": "arn:q", "HERMES_AWS_SCHEDULE_TIMEZONE": " Asia/Tokyo "})
    assert config == CronConfig("g", "arn:r", "arn:q", "Asia/Tokyo")


def test_cold_start_pins_the_toolset_policy_and_seeds_the_timezone(tmp_path: Path) -> None:
    from hermes_aws.agent_runner import LAMBDA_DISABLED_TOOLSETS

    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump({"model": {"default": "m"}, "agent": {"disabled_toolsets": ["web"]}}))
    env: dict[str, str] = {}
    assert cron_bridge.cold_start(tmp_path, env, table=TABLE, client=None) is None  # not enabled
    pinned = yaml.safe_load(config_path.read_text())["agent"]["disabled_toolsets"]
    assert pinned[0] == "web" and set(pinned) == (set(LAMBDA_DISABLED_TOOLSETS) - {"cronjob"}) | {"web"}
    assert yaml.safe_load(config_path.read_text())["model"] == {"default": "m"}
    assert cron_bridge.pin_disabled_toolsets(config_path, ["terminal"]) is False  # idempotent
    env = {"HERMES_AWS_SCHEDULE_GROUP": "g", "HERMES_AWS_SCHEDULER_ROLE_ARN": "arn:r",
           "HERMES_AWS_QUEUE_ARN": "arn:q", "HERMES_AWS_SCHEDULE_TIMEZONE": "America/New_York"}
    assert cron_bridge.cold_start(tmp_path, env, table=TABLE, client=None) is not None
    assert env["HERMES_TIMEZONE"] == "America/New_York"
    env["HERMES_AWS_SCHEDULE_TIMEZONE"] = "Mars/Olympus"
    with pytest.raises(scheduler.ScheduleError):
        cron_bridge.cold_start(tmp_path, env, table=TABLE, client=None)


def test_delivery_targets() -> None:
    tg = {"platform": "telegram", "chat_id": "-100", "thread_id": "7"}
    both = ["telegram", "slack"]
    assert delivery_targets("origin", tg, both) == ([("telegram", "-100", "7")], [])
    assert delivery_targets("local", tg, both) == ([], [])
    assert delivery_targets("telegram", tg, both) == ([("telegram", "-100", "7")], [])
    assert delivery_targets("slack", tg, both) == ([], ["slack"])  # no home channel to fall back on
    assert delivery_targets("origin,slack:C9:1700.5,origin", tg, both) == (
        [("telegram", "-100", "7"), ("slack", "C9", "1700.5")], [])
    assert delivery_targets("slack:#general,discord:1,all", tg, both) == ([], ["slack:#general", "discord:1", "all"])
    assert delivery_targets("origin", tg, ["slack"]) == ([], ["origin"])  # channel not configured
    assert delivery_targets("origin", None, both) == ([], ["origin"])
