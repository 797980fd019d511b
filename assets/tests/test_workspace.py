"""hermes_aws.workspace against a real moto server (S3, conditional writes)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from hermes_aws.workspace import Workspace, is_ignored
from stubs.aws_resources import create_bucket

BUCKET = "ws-bucket"
SKILL = "---\nname: greet\ndescription: Greet people\n---\n# Greet\nSay hi.\n"


@pytest.fixture
def s3(aws_env: str) -> Any:
    client = boto3.client("s3")
    create_bucket(BUCKET, client=client)
    return client


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "hermes"


def ws(home: Path, s3: Any) -> Workspace:
    return Workspace(BUCKET, home, s3=s3)


def put(s3: Any, key: str, body: str) -> str:
    return s3.put_object(Bucket=BUCKET, Key=key, Body=body.encode())["ETag"]


def body(s3: Any, key: str) -> str:
    return s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()


def keys(s3: Any) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []))


class CallCounter:
    """Counts S3 API calls through botocore's event system."""

    def __init__(self, client: Any) -> None:
        self.calls: list[str] = []
        client.meta.events.register("before-call.s3.*", self._record)

    def _record(self, model: Any, **_: Any) -> None:
        self.calls.append(model.name)

    def take(self) -> list[str]:
        out, self.calls = self.calls, []
        return out


def test_moto_supports_conditional_writes(s3: Any) -> None:
    """The premise of the push logic: moto 5.2.5 (like S3) enforces If-None-Match / If-Match."""
    etag = s3.put_object(Bucket=BUCKET, Key="k", Body=b"1", IfNoneMatch="*")["ETag"]
    with pytest.raises(s3.exceptions.ClientError, match="PreconditionFailed"):
        s3.put_object(Bucket=BUCKET, Key="k", Body=b"2", IfNoneMatch="*")
    etag2 = s3.put_object(Bucket=BUCKET, Key="k", Body=b"2", IfMatch=etag)["ETag"]
    with pytest.raises(s3.exceptions.ClientError, match="PreconditionFailed"):
        s3.put_object(Bucket=BUCKET, Key="k", Body=b"3", IfMatch=etag)
    with pytest.raises(s3.exceptions.ClientError, match="PreconditionFailed"):
        s3.delete_object(Bucket=BUCKET, Key="k", IfMatch=etag)
    s3.delete_object(Bucket=BUCKET, Key="k", IfMatch=etag2)
    assert keys(s3) == []


def test_pull_downloads_then_only_when_s3_changed(s3: Any, home: Path) -> None:
    put(s3, "skills/greet/SKILL.md", SKILL)
    put(s3, "skills/greet/references/a.md", "ref")
    put(s3, "memories/MEMORY.md", "likes tea")
    put(s3, "skills/.hub/cache.json", "{}")  # Hermes's own cache: never synced
    put(s3, "knowledge/other.md", "not ours")
    w = ws(home, s3)
    counter = CallCounter(s3)

    first = w.pull()
    assert (first.downloaded, first.unchanged) == (3, 0)
    assert (home / "skills/greet/SKILL.md").read_text() == SKILL
    assert (home / "skills/greet/references/a.md").read_text() == "ref"
    assert (home / "memories/MEMORY.md").read_text() == "likes tea"
    assert not (home / "skills/.hub").exists()
    assert counter.take().count("GetObject") == 3

    # warm invocation, nothing changed in S3: two list calls, no download
    second = w.pull()
    assert (second.downloaded, second.unchanged) == (0, 3)
    assert counter.take() == ["ListObjectsV2", "ListObjectsV2"]

    # another sandbox changed one skill and deleted the reference
    put(s3, "skills/greet/SKILL.md", SKILL + "Also wave.\n")
    s3.delete_object(Bucket=BUCKET, Key="skills/greet/references/a.md")
    third = w.pull()
    assert (third.downloaded, third.deleted_local, third.unchanged) == (1, 1, 1)
    assert counter.take().count("GetObject") == 1
    assert "Also wave." in (home / "skills/greet/SKILL.md").read_text()
    assert not (home / "skills/greet/references").exists()  # emptied directory removed


def test_manifest_survives_a_new_workspace_object(s3: Any, home: Path) -> None:
    """Warm invocations may build a new Workspace; the manifest on disk is what counts."""
    put(s3, "memories/USER.md", "name: Ada")
    ws(home, s3).pull()
    counter = CallCounter(s3)
    assert ws(home, s3).pull().downloaded == 0
    assert "GetObject" not in counter.take()


def test_push_uploads_only_changed_files_with_conditions(s3: Any, home: Path) -> None:
    etag = put(s3, "skills/greet/SKILL.md", SKILL)
    put(s3, "memories/MEMORY.md", "likes tea")
    w = ws(home, s3)
    w.pull()
    counter = CallCounter(s3)
    seen: list[dict[str, Any]] = []
    s3.meta.events.register("before-parameter-build.s3.PutObject",
                            lambda params, **_: seen.append({k: v for k, v in params.items() if k != "Body"}))

    assert w.push().uploaded == 0  # nothing changed: no write at all
    assert counter.take() == []

    (home / "skills/greet/SKILL.md").write_text(SKILL + "v2\n")
    (home / "skills/new-skill").mkdir()
    (home / "skills/new-skill/SKILL.md").write_text("---\nname: new-skill\n---\n")
    (home / "memories/MEMORY.md.lock").write_text("")  # Hermes's lock file
    (home / "skills/.usage.json").write_text("{}")  # Hermes's telemetry
    (home / "skills/new-skill/__pycache__").mkdir()
    (home / "skills/new-skill/__pycache__/x.pyc").write_bytes(b"\0")
    report = w.push()
    assert report.ok and report.uploaded == 2 and report.unchanged == 1
    assert sorted(report.uploaded_keys) == ["skills/greet/SKILL.md", "skills/new-skill/SKILL.md"]
    conditions = {p["Key"]: (p.get("IfMatch"), p.get("IfNoneMatch")) for p in seen}
    assert conditions == {"skills/greet/SKILL.md": (etag, None), "skills/new-skill/SKILL.md": (None, "*")}
    assert body(s3, "skills/greet/SKILL.md").endswith("v2\n")
    assert keys(s3) == ["memories/MEMORY.md", "skills/greet/SKILL.md", "skills/new-skill/SKILL.md"]

    # the manifest now holds the new ETags: no re-upload, no re-download
    counter.take()
    assert w.push().uploaded == 0 and w.pull().downloaded == 0
    assert [c for c in counter.take() if c != "ListObjectsV2"] == []


def test_push_deletes_objects_of_deleted_local_files(s3: Any, home: Path) -> None:
    put(s3, "skills/old/SKILL.md", SKILL)
    put(s3, "skills/keep/SKILL.md", SKILL)
    w = ws(home, s3)
    w.pull()
    (home / "skills/old/SKILL.md").unlink()
    report = w.push()
    assert report.deleted_remote == 1 and report.ok
    assert keys(s3) == ["skills/keep/SKILL.md"]
    assert w.push().deleted_remote == 0  # recorded once


def test_conflicting_update_is_not_written_and_logged(s3: Any, home: Path, capfd: pytest.CaptureFixture[str]) -> None:
    put(s3, "memories/MEMORY.md", "v1")
    w = ws(home, s3)
    w.pull()
    put(s3, "memories/MEMORY.md", "v1 + other sandbox")  # concurrent writer
    (home / "memories/MEMORY.md").write_text("v1 + this sandbox")
    report = w.push()
    assert report.uploaded == 0 and report.conflicts == ["memories/MEMORY.md"] and report.ok
    assert body(s3, "memories/MEMORY.md") == "v1 + other sandbox"  # never overwritten
    events = [json.loads(line) for line in capfd.readouterr().out.splitlines() if line.startswith("{")]
    conflict = [e for e in events if e["event"] == "workspace_conflict"]
    assert conflict and conflict[0]["key"] == "memories/MEMORY.md"
    push_line = [e for e in events if e["event"] == "workspace_sync" and e["direction"] == "push"][-1]
    assert push_line["conflicts"] == 1
    # the next pull brings the winner's version (remote wins, logged again)
    assert w.pull().conflicts == ["memories/MEMORY.md"]
    assert (home / "memories/MEMORY.md").read_text() == "v1 + other sandbox"


def test_conflicting_create_is_not_written(s3: Any, home: Path) -> None:
    w = ws(home, s3)
    w.pull()
    (home / "skills/x").mkdir(parents=True)
    (home / "skills/x/SKILL.md").write_text("mine")
    put(s3, "skills/x/SKILL.md", "theirs")  # created elsewhere after our pull
    report = w.push()
    assert report.conflicts == ["skills/x/SKILL.md"] and report.uploaded == 0
    assert body(s3, "skills/x/SKILL.md") == "theirs"


def test_conflicting_delete_keeps_the_remote_version(s3: Any, home: Path) -> None:
    put(s3, "skills/x/SKILL.md", "v1")
    w = ws(home, s3)
    w.pull()
    put(s3, "skills/x/SKILL.md", "v2 elsewhere")
    (home / "skills/x/SKILL.md").unlink()
    report = w.push()
    assert report.conflicts == ["skills/x/SKILL.md"] and report.deleted_remote == 0
    assert body(s3, "skills/x/SKILL.md") == "v2 elsewhere"
    w.pull()
    assert (home / "skills/x/SKILL.md").read_text() == "v2 elsewhere"


def test_remote_delete_of_a_locally_changed_file_keeps_it(s3: Any, home: Path) -> None:
    put(s3, "skills/x/SKILL.md", "v1")
    w = ws(home, s3)
    w.pull()
    (home / "skills/x/SKILL.md").write_text("v1 edited here")
    s3.delete_object(Bucket=BUCKET, Key="skills/x/SKILL.md")
    report = w.pull()
    assert report.conflicts == ["skills/x/SKILL.md"] and report.deleted_local == 0
    assert w.push().uploaded == 1  # as a new object (If-None-Match: *)
    assert body(s3, "skills/x/SKILL.md") == "v1 edited here"


def test_unsafe_keys_are_refused_and_symlinks_not_uploaded(s3: Any, home: Path, tmp_path: Path) -> None:
    put(s3, "skills/../escape.md", "x")
    put(s3, "skills//abs.md", "x")
    w = ws(home, s3)
    report = w.pull()
    assert report.refused == 2 and not (home / "escape.md").exists()
    outside = tmp_path / "secret.txt"
    outside.write_text("do not upload")
    (home / "skills/link.md").symlink_to(outside)
    assert w.push().uploaded == 0
    assert keys(s3) == sorted(["skills//abs.md", "skills/../escape.md"])


def test_pull_failure_raises_and_changes_nothing(s3: Any, home: Path) -> None:
    w = Workspace("no-such-bucket", home, s3=s3)
    with pytest.raises(s3.exceptions.NoSuchBucket):
        w.pull()
    assert not (home / ".hermes-aws").exists()


def test_push_errors_are_reported_not_raised(s3: Any, home: Path) -> None:
    w = ws(home, s3)
    w.pull()
    (home / "memories/MEMORY.md").write_text("x")
    w.bucket = "no-such-bucket"
    report = w.push()
    assert not report.ok and "NoSuchBucket" in report.errors[0]


def test_custom_prefixes_from_env(s3: Any, home: Path) -> None:
    put(s3, "agents/a1/skills/s/SKILL.md", SKILL)
    w = Workspace.from_env({"HERMES_AWS_BUCKET": BUCKET, "HERMES_AWS_SKILLS_PREFIX": "agents/a1/skills",
                            "HERMES_AWS_MEMORIES_PREFIX": "agents/a1/memories/"}, home, s3=s3)
    assert [a.prefix for a in w.areas] == ["agents/a1/skills/", "agents/a1/memories/"]
    assert w.pull().downloaded == 1 and (home / "skills/s/SKILL.md").exists()
    with pytest.raises(ValueError, match="HERMES_AWS_BUCKET is not set"):
        Workspace.from_env({}, home, s3=s3)
    with pytest.raises(ValueError, match="must not overlap"):
        Workspace(BUCKET, home, s3=s3, skills_prefix="a/", memories_prefix="a/b/")


def test_is_ignored() -> None:
    for rel in (".bundled_manifest", ".hub/index.json", ".usage.json", ".usage.json.lock", "x/__pycache__/m.pyc",
                "MEMORY.md.lock", "a/.mem_123.tmp", ".archive/old/SKILL.md", ".curator_suppressed"):
        assert is_ignored(rel), rel
    for rel in ("greet/SKILL.md", "MEMORY.md", "cat/skill/references/api.md", "s/scripts/run.py"):
        assert not is_ignored(rel), rel


def test_download_is_streamed_into_place(s3: Any, home: Path) -> None:
    big = "x" * (3 << 20)  # several chunks
    s3.upload_fileobj(io.BytesIO(big.encode()), BUCKET, "skills/big/SKILL.md")
    assert ws(home, s3).pull().downloaded == 1
    assert (home / "skills/big/SKILL.md").stat().st_size == len(big)
    assert not [p for p in (home / "skills/big").iterdir() if p.name.startswith(".hermes-ws-")]
