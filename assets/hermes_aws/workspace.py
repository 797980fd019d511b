"""Two-way sync of Hermes's skills and memories between S3 and a local ``HERMES_HOME``.

On Lambda (and AgentCore) ``HERMES_HOME`` is ``/tmp/hermes``: it survives warm
invocations of one sandbox but nothing else. The durable copy lives in S3::

    s3://$HERMES_AWS_BUCKET/$HERMES_AWS_SKILLS_PREFIX   (default skills/)   <-> $HERMES_HOME/skills/
    s3://$HERMES_AWS_BUCKET/$HERMES_AWS_MEMORIES_PREFIX (default memories/) <-> $HERMES_HOME/memories/

A manifest per area (``$HERMES_HOME/.hermes-aws/workspace-<area>.json``) records,
for every file this sandbox has in sync with S3, the object's ETag and the
SHA-256 and size of its content. It stays in ``/tmp`` across warm invocations.

:meth:`Workspace.pull` (before a turn): one paginated ``ListObjectsV2`` per
area. Objects whose ETag matches the manifest are not downloaded, so a warm
invocation whose S3 side did not change costs two list calls. New or changed
objects are downloaded (atomically); a local file that was changed but not
yet pushed and whose object also changed is overwritten (remote wins, logged
as a conflict). A file whose object disappeared is deleted locally, unless it
was changed locally (then it stays and is pushed as a new object).

:meth:`Workspace.push` (after a turn): every local file is hashed and compared
with the manifest; only changed files are uploaded, with S3 conditional
writes so a concurrent writer (another sandbox of the same function) is never
silently overwritten:

* a file S3 did not have: ``PutObject`` with ``If-None-Match: *``;
* a file changed since it was pulled: ``PutObject`` with ``If-Match: <ETag>``;
* a file deleted locally: ``DeleteObject`` with ``If-Match: <ETag>``.

A failed precondition (HTTP 412, or 409 ``ConditionalRequestConflict`` when
two conditional writes race) means somebody else changed the object first:
the local change is *not* written, a ``workspace_conflict`` event is logged
and the next pull brings the other writer's version (last writer loses,
visibly). For ``memories/MEMORY.md`` written by two chats at the same moment
that means one chat's memory edit is dropped and logged.

Never synced (Hermes's per-install state and caches, not content): any path
segment starting with ``.`` (``.bundled_manifest``, ``.hub/``, ``.usage.json``,
``.curator_suppressed``, ``.archive/``), ``__pycache__`` and files ending in
``.lock`` (the memory tool's ``MEMORY.md.lock``), ``.tmp`` or ``.pyc``. Keys that would escape the target directory are refused
(see :func:`hermes_aws.knowledge_sync.relative_path`); symlinks are never
followed or uploaded.

Every pull/push logs one ``{"event": "workspace_sync", ...}`` line.
"""

from __future__ import annotations

import hashlib
import logging
import mimetypes
import os
import stat
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hermes_aws.events import emit, short
from hermes_aws.fsutil import atomic_writer, safe_parent
from hermes_aws.knowledge_sync import (
    UnsafeKey, describe_error, list_objects, load_manifest, relative_path, save_manifest,
)

logger = logging.getLogger(__name__)

BUCKET_ENV = "HERMES_AWS_BUCKET"
SKILLS_PREFIX_ENV = "HERMES_AWS_SKILLS_PREFIX"
MEMORIES_PREFIX_ENV = "HERMES_AWS_MEMORIES_PREFIX"
DEFAULT_SKILLS_PREFIX = "skills/"
DEFAULT_MEMORIES_PREFIX = "memories/"
STATE_DIR = ".hermes-aws"
TMP_PREFIX = ".hermes-ws-"
IGNORED_NAMES = frozenset({"__pycache__"})
IGNORED_SUFFIXES = (".lock", ".tmp", ".pyc")
#: error codes that mean "another writer changed the object first"
CONFLICT_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "412", "409"})
_CHUNK = 1 << 20


def is_ignored(rel: str) -> bool:
    """True for Hermes's own state/caches and temp files (``rel`` is ``/``-separated)."""
    parts = rel.split("/")
    if any(p.startswith(".") or p in IGNORED_NAMES for p in parts):
        return True
    return parts[-1].endswith(IGNORED_SUFFIXES)


@dataclass(frozen=True)
class Area:
    name: str  # skills | memories
    prefix: str  # ends with "/"
    dest: Path


@dataclass
class SyncReport:
    direction: str
    downloaded: int = 0
    uploaded: int = 0
    deleted_local: int = 0
    deleted_remote: int = 0
    unchanged: int = 0
    refused: int = 0
    conflicts: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    uploaded_keys: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def fields(self) -> dict[str, Any]:
        return {
            "direction": self.direction, "ok": self.ok, "downloaded": self.downloaded,
            "uploaded": self.uploaded, "deleted_local": self.deleted_local,
            "deleted_remote": self.deleted_remote, "unchanged": self.unchanged,
            "refused": self.refused, "conflicts": len(self.conflicts),
            "error": short("; ".join(self.errors)) if self.errors else None,
        }


def _normalize_prefix(prefix: str) -> str:
    prefix = prefix.strip().lstrip("/")
    if not prefix:
        raise ValueError("a workspace prefix must not be empty")
    return prefix if prefix.endswith("/") else prefix + "/"


class Workspace:
    """Skills and memories of one agent, synced between S3 and ``home``."""

    def __init__(
        self, bucket: str, home: Path, *, s3: Any = None,
        skills_prefix: str = DEFAULT_SKILLS_PREFIX, memories_prefix: str = DEFAULT_MEMORIES_PREFIX,
    ) -> None:
        if s3 is None:
            from hermes_aws.knowledge_sync import make_client

            s3 = make_client()
        self.bucket = bucket
        self.home = Path(home)
        self.s3 = s3
        self.areas = [
            Area("skills", _normalize_prefix(skills_prefix), self.home / "skills"),
            Area("memories", _normalize_prefix(memories_prefix), self.home / "memories"),
        ]
        prefixes = [a.prefix for a in self.areas]
        if any(a != b and a.startswith(b) for a in prefixes for b in prefixes) or len(set(prefixes)) != 2:
            raise ValueError(f"workspace prefixes must not overlap: {prefixes}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str], home: Path, *, s3: Any = None) -> Workspace:
        bucket = (environ.get(BUCKET_ENV) or "").strip()
        if not bucket:
            raise ValueError(f"{BUCKET_ENV} is not set")
        return cls(
            bucket, home, s3=s3,
            skills_prefix=environ.get(SKILLS_PREFIX_ENV) or DEFAULT_SKILLS_PREFIX,
            memories_prefix=environ.get(MEMORIES_PREFIX_ENV) or DEFAULT_MEMORIES_PREFIX,
        )

    # -- manifest ----------------------------------------------------------
    def _manifest_path(self, area: Area) -> Path:
        return self.home / STATE_DIR / f"workspace-{area.name}.json"

    def _load_manifest(self, area: Area) -> dict[str, dict[str, Any]]:
        return load_manifest(self._manifest_path(area), self.bucket, area.prefix, what="workspace")

    def _save_manifest(self, area: Area, files: Mapping[str, Any]) -> None:
        save_manifest(self._manifest_path(area), self.bucket, area.prefix, files, fsync=False)

    # -- pull ----------------------------------------------------------------
    def pull(self) -> SyncReport:
        """Bring S3 changes into ``home``; raises when S3 cannot be listed (nothing is changed then)."""
        started = time.monotonic()
        report = SyncReport("pull")
        try:
            for area in self.areas:
                self._pull_area(area, report)
        except Exception as exc:
            report.errors.append(describe_error(exc))
            raise
        finally:
            emit("workspace_sync", bucket=self.bucket, **report.fields(),
                 duration_ms=int((time.monotonic() - started) * 1000))
        return report

    def _pull_area(self, area: Area, report: SyncReport) -> None:
        objects = list(list_objects(self.s3, self.bucket, area.prefix))  # all or nothing
        area.dest.mkdir(mode=0o700, parents=True, exist_ok=True)
        manifest = self._load_manifest(area)
        new: dict[str, dict[str, Any]] = {}
        listed: set[str] = set()
        for obj in objects:
            key = obj["Key"]
            try:
                rel = relative_path(key, area.prefix)
            except UnsafeKey as exc:
                report.refused += 1
                logger.warning("workspace: refused key %r: %s", key, exc)
                continue
            if rel is None or is_ignored(rel):
                continue
            listed.add(rel)
            entry = manifest.get(rel)
            if entry is not None and entry.get("etag") == obj.get("ETag"):
                new[rel] = entry  # S3 unchanged; a local change (if any) waits for push
                report.unchanged += 1
                continue
            path = area.dest / rel
            local_sha = _sha256_or_none(path)
            if local_sha is not None and entry is not None and local_sha != entry.get("sha256"):
                self._conflict(report, key, "changed in S3 and locally; the S3 version wins")
            new[rel] = self._download(key, area.dest, rel)
            if local_sha != new[rel]["sha256"]:
                report.downloaded += 1
            else:
                report.unchanged += 1
        for rel, entry in manifest.items():
            if rel in listed:
                continue
            path = area.dest / rel
            local_sha = _sha256_or_none(path)
            if local_sha is None:
                continue
            if local_sha == entry.get("sha256"):
                path.unlink()
                _remove_empty_parents(path.parent, area.dest)
                report.deleted_local += 1
            else:
                self._conflict(report, area.prefix + rel, "deleted in S3 but changed locally; kept, will be uploaded")
        self._save_manifest(area, new)

    def _download(self, key: str, root: Path, rel: str) -> dict[str, Any]:
        parts = rel.split("/")
        path = safe_parent(root, parts[:-1]) / parts[-1]
        resp = self.s3.get_object(Bucket=self.bucket, Key=key)
        body = resp["Body"]
        digest = hashlib.sha256()
        size = 0
        try:
            with atomic_writer(path, mode=0o600, prefix=TMP_PREFIX, suffix="", fsync=False) as f:
                for chunk in body.iter_chunks(_CHUNK):
                    f.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                if path.is_symlink() or path.is_dir():
                    raise OSError(f"{path} is a symlink or directory locally; not replacing it")
        finally:
            body.close()
        return {"etag": resp.get("ETag"), "sha256": digest.hexdigest(), "size": size}

    # -- push ----------------------------------------------------------------
    def push(self) -> SyncReport:
        """Upload local changes with conditional writes; never raises (errors are in the report)."""
        started = time.monotonic()
        report = SyncReport("push")
        for area in self.areas:
            try:
                self._push_area(area, report)
            except Exception as exc:
                report.errors.append(f"{area.prefix}: {describe_error(exc)}")
                logger.exception("workspace push of %s failed", area.prefix)
        emit("workspace_sync", bucket=self.bucket, **report.fields(),
             duration_ms=int((time.monotonic() - started) * 1000))
        return report

    def _push_area(self, area: Area, report: SyncReport) -> None:
        manifest = self._load_manifest(area)
        seen: set[str] = set()
        try:
            for rel, path in _walk_files(area.dest):
                seen.add(rel)
                data = path.read_bytes()
                sha = hashlib.sha256(data).hexdigest()
                entry = manifest.get(rel)
                if entry is not None and entry.get("sha256") == sha:
                    report.unchanged += 1
                    continue
                key = area.prefix + rel
                kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "Body": data,
                                          "ContentType": _content_type(rel)}
                if entry is not None and entry.get("etag"):
                    kwargs["IfMatch"] = entry["etag"]
                else:
                    kwargs["IfNoneMatch"] = "*"
                try:
                    resp = self.s3.put_object(**kwargs)
                except Exception as exc:
                    if _is_conflict(exc) or _error_code(exc) in ("NoSuchKey", "404"):
                        # 404: If-Match on an object another writer deleted meanwhile
                        self._conflict(report, key, "changed in S3 since it was pulled; local change not written")
                        continue
                    report.errors.append(f"uploading {key}: {describe_error(exc)}")
                    continue
                manifest[rel] = {"etag": resp.get("ETag"), "sha256": sha, "size": len(data)}
                report.uploaded += 1
                report.uploaded_keys.append(key)
            for rel in [r for r in manifest if r not in seen]:
                key = area.prefix + rel
                try:
                    self.s3.delete_object(Bucket=self.bucket, Key=key, IfMatch=manifest[rel]["etag"])
                except Exception as exc:
                    code = _error_code(exc)
                    if code in ("NoSuchKey", "404"):
                        manifest.pop(rel)  # already gone
                        continue
                    if _is_conflict(exc):
                        manifest.pop(rel)  # the next pull downloads the other writer's version
                        self._conflict(report, key, "deleted locally but changed in S3; S3 version kept")
                        continue
                    report.errors.append(f"deleting {key}: {describe_error(exc)}")
                    continue
                manifest.pop(rel)
                report.deleted_remote += 1
        finally:
            self._save_manifest(area, manifest)

    def _conflict(self, report: SyncReport, key: str, what: str) -> None:
        report.conflicts.append(key)
        logger.warning("workspace conflict on s3://%s/%s: %s", self.bucket, key, what)
        emit("workspace_conflict", bucket=self.bucket, key=key, detail=what)


# --------------------------------------------------------------------------- helpers


def _walk_files(root: Path) -> Iterator[tuple[str, Path]]:
    """(relative path, path) of regular files under ``root``; no symlinks, no ignored paths."""
    if not root.is_dir():
        return
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        rel_dir = base.relative_to(root).as_posix()
        dirnames[:] = sorted(d for d in dirnames
                             if not is_ignored(d) and not (base / d).is_symlink())
        for name in sorted(filenames):
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if is_ignored(rel):
                continue
            path = base / name
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode):
                yield rel, path


def _sha256_or_none(path: Path) -> str | None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _remove_empty_parents(directory: Path, root: Path) -> None:
    while directory != root and root in directory.parents:
        try:
            directory.rmdir()
        except OSError:
            return
        directory = directory.parent


def _content_type(rel: str) -> str:
    if rel.endswith(".md"):
        return "text/markdown; charset=utf-8"
    guessed, _ = mimetypes.guess_type(rel)
    return guessed or "application/octet-stream"


def _error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    code = str(response.get("Error", {}).get("Code") or "")
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code or (str(status) if status else "")


def _is_conflict(exc: BaseException) -> bool:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return False
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return _error_code(exc) in CONFLICT_CODES or status in (409, 412)
