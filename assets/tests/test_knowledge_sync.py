"""Tests for hermes_aws.knowledge_sync: real boto3 against the moto server (loopback only)."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hermes_aws import knowledge_sync as ks
from stubs.loopback import LoopbackServer, QuietHandler

BUCKET = "team-knowledge"


@pytest.fixture
def s3(aws_env: str, loopback_only: list[str]) -> Any:
    client = ks.make_client(retries={"max_attempts": 1, "mode": "standard"})
    client.create_bucket(Bucket=BUCKET)
    return client


def put(s3: Any, key: str, body: str | bytes) -> None:
    s3.put_object(Bucket=BUCKET, Key=key, Body=body.encode() if isinstance(body, str) else body)


def sync(s3: Any, home: Path, bucket: str = BUCKET) -> tuple[ks.SyncResult, dict[str, Any]]:
    """One sync; returns the result and its single JSON event line."""
    out = io.StringIO()
    result = ks.sync_once(bucket, home, s3=s3, out=out)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1, lines
    event = json.loads(lines[0])
    assert event["event"] == "knowledge_sync"
    return result, event


def tree(root: Path) -> dict[str, str]:
    """Every regular file under root (relative path -> text), skipping nothing."""
    return {
        p.relative_to(root).as_posix(): p.read_text()
        for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()
    }


def dirs(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_dir())


# --------------------------------------------------------------------------- mirror and copy


def test_first_sync_downloads_everything(s3: Any, tmp_path: Path) -> None:
    home = tmp_path / "hermes"
    put(s3, "knowledge/runbook.md", "# Runbook")
    put(s3, "knowledge/teams/platform/oncall.md", "page the SRE")
    put(s3, "projects/atlas/README.md", "Atlas")
    put(s3, "skills/ignored.md", "other prefixes are not synced")

    result, event = sync(s3, home)

    assert (result.downloaded, result.deleted, result.unchanged, result.errors) == (3, 0, 0, 0)
    assert event["ok"] is True and event["error"] is None
    assert {k: event[k] for k in ("downloaded", "deleted", "unchanged", "errors", "refused")} == {
        "downloaded": 3, "deleted": 0, "unchanged": 0, "errors": 0, "refused": 0}
    assert event["bucket"] == BUCKET
    assert tree(home / "knowledge") == {"runbook.md": "# Runbook", "teams/platform/oncall.md": "page the SRE"}
    assert tree(home / "projects") == {"atlas/README.md": "Atlas"}
    assert not (home / "skills").exists()
    # Only our manifests are added to HERMES_HOME besides the two trees.
    assert sorted(p.name for p in (home / ks.STATE_DIR).iterdir()) == ["sync-knowledge.json", "sync-projects.json"]


def test_second_sync_downloads_nothing(s3: Any, tmp_path: Path) -> None:
    home = tmp_path / "hermes"
    put(s3, "knowledge/a.md", "A")
    put(s3, "projects/b.md", "B")
    sync(s3, home)
    result, event = sync(s3, home)
    assert (result.downloaded, result.unchanged, result.deleted) == (0, 2, 0)
    assert event["ok"] is True


def test_changes_and_deletions_follow_the_bucket(s3: Any, tmp_path: Path) -> None:
    home = tmp_path / "hermes"
    put(s3, "knowledge/a.md", "aaaa")
    put(s3, "knowledge/keep.md", "keep")
    put(s3, "knowledge/deep/er/gone.md", "gone soon")
    put(s3, "projects/p/plan.md", "plan v1")
    put(s3, "projects/p/old.md", "old")
    sync(s3, home)
    (home / "knowledge" / "agent-scratch.txt").write_text("not in the bucket")
    (home / "projects" / "p" / "local-notes.md").write_text("mine")

    put(s3, "knowledge/a.md", "bbbb")  # same size, new content: the ETag tells
    put(s3, "knowledge/new/fresh.md", "fresh")
    s3.delete_object(Bucket=BUCKET, Key="knowledge/deep/er/gone.md")
    put(s3, "projects/p/plan.md", "plan v2")
    s3.delete_object(Bucket=BUCKET, Key="projects/p/old.md")

    result, event = sync(s3, home)

    assert tree(home / "knowledge") == {"a.md": "bbbb", "keep.md": "keep", "new/fresh.md": "fresh"}
    assert dirs(home / "knowledge") == ["new"]  # deep/er and deep were emptied and removed
    # projects/ is a copy: deleted objects and local files stay
    assert tree(home / "projects") == {"p/plan.md": "plan v2", "p/old.md": "old", "p/local-notes.md": "mine"}
    assert (result.downloaded, result.deleted, result.unchanged) == (3, 2, 1)
    assert event["ok"] is True


def test_locally_modified_file_is_restored(s3: Any, tmp_path: Path) -> None:
    home = tmp_path / "hermes"
    put(s3, "knowledge/policy.md", "the real policy")
    sync(s3, home)
    for tampered in ("tampered", "THE REAL POLICY"):  # another size; the same size (only mtime tells)
        (home / "knowledge" / "policy.md").write_text(tampered)
        result, _ = sync(s3, home)
        assert result.downloaded == 1
        assert (home / "knowledge" / "policy.md").read_text() == "the real policy"


def test_mtime_follows_the_object_and_no_temp_files_remain(s3: Any, tmp_path: Path) -> None:
    home = tmp_path / "hermes"
    put(s3, "knowledge/a.md", "A")
    sync(s3, home)
    head = s3.head_object(Bucket=BUCKET, Key="knowledge/a.md")
    assert (home / "knowledge" / "a.md").stat().st_mtime == head["LastModified"].timestamp()
    assert not [p for p in home.rglob("*") if p.name.endswith(ks.TMP_SUFFIX)]


def test_stale_temp_files_are_cleaned_in_both_trees(s3: Any, tmp_path: Path) -> None:
    home = tmp_path / "hermes"
    put(s3, "knowledge/a.md", "A")
    put(s3, "projects/b.md", "B")
    sync(s3, home)
    for tree_name in ("knowledge", "projects"):
        (home / tree_name / f"{ks.TMP_PREFIX}crashed{ks.TMP_SUFFIX}").write_text("half")
    result, _ = sync(s3, home)
    assert result.deleted == 0  # our own leftovers are not "deletions"
    assert tree(home / "knowledge") == {"a.md": "A"}
    assert tree(home / "projects") == {"b.md": "B"}


def test_directory_markers_are_skipped(s3: Any, tmp_path: Path) -> None:
    home = tmp_path / "hermes"
    put(s3, "knowledge/", b"")
    put(s3, "knowledge/empty-folder/", b"")
    put(s3, "knowledge/folder/", b"")
    put(s3, "knowledge/folder/doc.md", "doc")
    result, event = sync(s3, home)
    assert event["ok"] is True and result.downloaded == 1
    assert tree(home / "knowledge") == {"folder/doc.md": "doc"}
    assert dirs(home / "knowledge") == ["folder"]


def test_pagination(s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ks, "LIST_PAGE_SIZE", 2)
    calls: list[dict[str, Any]] = []
    real = s3.list_objects_v2

    def spy(**kwargs: Any) -> Any:
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(s3, "list_objects_v2", spy)
    home = tmp_path / "hermes"
    for i in range(5):
        put(s3, f"knowledge/doc{i}.md", str(i))
    result, _ = sync(s3, home)
    assert result.downloaded == 5
    assert len(tree(home / "knowledge")) == 5
    knowledge_calls = [c for c in calls if c["Prefix"] == "knowledge/"]
    assert len(knowledge_calls) == 3 and all(c["MaxKeys"] == 2 for c in knowledge_calls)


def test_changing_bucket_downloads_again(s3: Any, tmp_path: Path) -> None:
    home = tmp_path / "hermes"
    put(s3, "knowledge/a.md", "A")
    sync(s3, home)
    s3.create_bucket(Bucket="other-knowledge")
    s3.put_object(Bucket="other-knowledge", Key="knowledge/a.md", Body=b"A")
    result, _ = sync(s3, home, bucket="other-knowledge")
    assert result.downloaded == 1 and result.unchanged == 0


def test_spent_budget_defers_downloads_without_failing(s3: Any, tmp_path: Path) -> None:
    home = tmp_path / "hermes"
    put(s3, "knowledge/a.md", "v1")
    sync(s3, home)
    put(s3, "knowledge/a.md", "v2")
    put(s3, "knowledge/b.md", "B")
    out = io.StringIO()
    result = ks.sync_once(BUCKET, home, s3=s3, out=out, budget=0)
    event = json.loads(out.getvalue())
    assert event["ok"] is True and event["deferred"] == 2 and result.downloaded == 0
    assert tree(home / "knowledge") == {"a.md": "v1"}  # the old version stays meanwhile
    result, event = sync(s3, home)  # the next sync catches up
    assert result.downloaded == 2 and event["deferred"] == 0
    assert tree(home / "knowledge") == {"a.md": "v2", "b.md": "B"}


# --------------------------------------------------------------------------- safety


@pytest.mark.parametrize("key", [
    "knowledge/../evil.md",
    "knowledge/a/../../evil.md",
    "knowledge//evil.md",
    "knowledge/./evil.md",
])
def test_unsafe_keys_are_refused(s3: Any, tmp_path: Path, key: str) -> None:
    home = tmp_path / "hermes"
    put(s3, key, "pwned")
    put(s3, "knowledge/fine.md", "fine")
    result, event = sync(s3, home)
    assert result.refused == 1 and result.downloaded == 1
    assert event["ok"] is False and event["refused"] == 1
    assert repr(key) in event["error"]
    assert tree(home / "knowledge") == {"fine.md": "fine"}
    written = [p for p in tmp_path.rglob("evil.md")]
    assert written == []


def test_relative_path_rules() -> None:
    assert ks.relative_path("knowledge/a/b.md", "knowledge/") == "a/b.md"
    assert ks.relative_path("knowledge/a/", "knowledge/") is None
    assert ks.relative_path("knowledge/", "knowledge/") is None
    for key in ("knowledge//a", "knowledge/..", "knowledge/a/./b", "knowledge/a\x00b", "knowledge/" + "x" * 256,
                "projects/a"):
        with pytest.raises(ks.UnsafeKey):
            ks.relative_path(key, "knowledge/")


def test_mirror_replaces_symlinks_instead_of_following_them(s3: Any, tmp_path: Path) -> None:
    home = tmp_path / "hermes"
    outside = tmp_path / "outside"
    outside.mkdir()
    (home / "knowledge").mkdir(parents=True)
    (home / "knowledge" / "docs").symlink_to(outside, target_is_directory=True)
    (home / "knowledge" / "stray-link").symlink_to(outside / "x")
    (home / "knowledge" / "file.md").symlink_to(outside / "file.md")
    put(s3, "knowledge/docs/a.md", "A")
    put(s3, "knowledge/file.md", "F")

    result, event = sync(s3, home)

    assert event["ok"] is True
    assert list(outside.iterdir()) == []  # nothing written through a link
    assert not (home / "knowledge" / "docs").is_symlink()
    assert not (home / "knowledge" / "file.md").is_symlink()
    assert tree(home / "knowledge") == {"docs/a.md": "A", "file.md": "F"}
    assert not (home / "knowledge" / "stray-link").is_symlink()  # mirror removes what the bucket lacks


def test_copy_refuses_to_write_through_symlinks(s3: Any, tmp_path: Path) -> None:
    home = tmp_path / "hermes"
    outside = tmp_path / "outside"
    outside.mkdir()
    (home / "projects").mkdir(parents=True)
    (home / "projects" / "linked").symlink_to(outside, target_is_directory=True)
    put(s3, "projects/linked/x.md", "X")
    put(s3, "projects/ok.md", "ok")
    result, event = sync(s3, home)
    assert event["ok"] is False and result.errors == 1 and result.downloaded == 1
    assert "not writing through it" in event["error"]
    assert list(outside.iterdir()) == []
    assert (home / "projects" / "linked").is_symlink()  # projects/ is never deleted from


def test_refuses_a_target_that_is_a_symlink(s3: Any, tmp_path: Path) -> None:
    home = tmp_path / "hermes"
    outside = tmp_path / "outside"
    outside.mkdir()
    home.mkdir()
    (home / "knowledge").symlink_to(outside, target_is_directory=True)
    put(s3, "knowledge/a.md", "A")
    result, event = sync(s3, home)
    assert event["ok"] is False and "is not a directory" in event["error"]
    assert list(outside.iterdir()) == []


# --------------------------------------------------------------------------- failures


def test_missing_bucket_is_logged_and_leaves_the_mirror_alone(s3: Any, tmp_path: Path) -> None:
    home = tmp_path / "hermes"
    put(s3, "knowledge/a.md", "A")
    sync(s3, home)
    result, event = sync(s3, home, bucket="no-such-bucket")
    assert event["ok"] is False and result.errors == 2  # both prefixes
    assert "NoSuchBucket" in event["error"] and "(+1 more)" in event["error"]
    assert (result.downloaded, result.deleted) == (0, 0)
    assert tree(home / "knowledge") == {"a.md": "A"}  # a failed listing never deletes


class _DenyAll(QuietHandler):
    BODY = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
            b"<Message>Access Denied</Message><RequestId>R</RequestId></Error>")

    def do_GET(self) -> None:  # noqa: N802
        self.send_bytes(403, self.BODY, content_type="application/xml")


@pytest.fixture
def deny_all_endpoint(aws_env: str, loopback_only: list[str]) -> Iterator[str]:
    with LoopbackServer(_DenyAll, "deny-all") as server:
        yield server.origin


def test_access_denied_is_logged(deny_all_endpoint: str, tmp_path: Path) -> None:
    client = ks.make_client(endpoint_url=deny_all_endpoint, retries={"max_attempts": 1, "mode": "standard"})
    result, event = sync(client, tmp_path / "hermes")
    assert event["ok"] is False and result.errors == 2
    assert "AccessDenied" in event["error"]


def test_unreachable_endpoint_is_logged(aws_env: str, loopback_only: list[str], tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    client = ks.make_client(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=2)
    result, event = sync(client, tmp_path / "hermes")
    assert event["ok"] is False
    assert "EndpointConnectionError" in event["error"]


def test_loop_survives_failures(aws_env: str, loopback_only: list[str], tmp_path: Path,
                                capfd: pytest.CaptureFixture[str]) -> None:
    client = ks.make_client(retries={"max_attempts": 1, "mode": "standard"})
    calls: list[int] = []

    def failing_sync() -> ks.SyncResult:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("unexpected crash")  # even a crash does not end the loop
        return ks.sync_once("no-such-bucket", tmp_path / "hermes", s3=client)

    ks.run_loop(failing_sync, interval=0, iterations=3)
    assert len(calls) == 3
    events = [json.loads(line) for line in capfd.readouterr().out.splitlines()]
    assert [e["event"] for e in events] == ["knowledge_sync"] * 3
    assert [e["ok"] for e in events] == [False, False, False]
    assert "unexpected crash" in events[1]["error"]


def test_loop_waits_between_syncs_and_stops() -> None:
    stop = threading.Event()
    calls: list[int] = []

    def one() -> None:
        calls.append(1)
        if len(calls) == 2:
            stop.set()

    ks.run_loop(one, interval=0.01, stop=stop)
    assert len(calls) == 2
    stop.clear()
    stop.set()
    ks.run_loop(one, interval=0.01, initial_delay=5, stop=stop)  # stopped during the initial delay
    assert len(calls) == 2


def test_interval_from_env(caplog: pytest.LogCaptureFixture) -> None:
    assert ks.interval_from_env({}) == 900
    assert ks.interval_from_env({ks.INTERVAL_ENV: "60"}) == 60
    assert ks.interval_from_env({ks.INTERVAL_ENV: "0"}) == 900
    assert ks.interval_from_env({ks.INTERVAL_ENV: "often"}) == 900
    assert "often" in caplog.text


# --------------------------------------------------------------------------- CLI


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERMES_")}
    env.update(extra)
    return env


def test_cli_without_bucket_says_so_and_exits_0(tmp_path: Path) -> None:
    for args in ([], ["--loop"]):
        proc = subprocess.run(
            [sys.executable, "-m", "hermes_aws.knowledge_sync", *args],
            env=cli_env(HERMES_HOME=str(tmp_path)), capture_output=True, text=True, timeout=30,
        )
        assert proc.returncode == 0
        assert proc.stdout == ""
        assert proc.stderr.count("no knowledge bucket configured") == 1


def test_cli_one_shot_against_moto(s3: Any, tmp_path: Path) -> None:
    put(s3, "knowledge/a.md", "A")
    home = tmp_path / "hermes"
    proc = subprocess.run(
        [sys.executable, "-m", "hermes_aws.knowledge_sync"],
        env=cli_env(HERMES_HOME=str(home), HERMES_AWS_KNOWLEDGE_BUCKET=BUCKET, HERMES_AWS_GATEWAY_ID="Agents/Gateway"),
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stdout.splitlines()
    assert json.loads(line)["ok"] is True
    assert json.loads(line)["gateway"] == "Agents/Gateway"
    assert (home / "knowledge" / "a.md").read_text() == "A"

    proc = subprocess.run(
        [sys.executable, "-m", "hermes_aws.knowledge_sync", "--bucket", "no-such-bucket"],
        env=cli_env(HERMES_HOME=str(home)), capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["ok"] is False
