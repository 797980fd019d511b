"""Sync the knowledge bucket into ``HERMES_HOME``, once or forever.

* ``s3://$HERMES_AWS_KNOWLEDGE_BUCKET/knowledge/`` -> ``$HERMES_HOME/knowledge/``
  is a **mirror**: new and changed objects are downloaded, local files whose
  object is gone are deleted, directories left empty are removed.
* ``projects/`` -> ``$HERMES_HOME/projects/`` is a **copy**: nothing local is
  ever deleted.

Rules (seed 000 used ``aws s3 sync ... || true``, which failed silently):

* boto3 only, paginated ``ListObjectsV2``; a listing that fails part-way
  changes nothing locally (a partial listing must never delete the mirror).
* Change detection: a manifest per prefix in ``$HERMES_HOME/.hermes-aws/``
  records the ETag, size and the local file's size and mtime of every file
  written. An object is downloaded again when its ETag or size differs, or when
  the local file was changed, removed or never recorded.
* Writes are atomic (temporary file in the same directory, fsync, rename) and
  stay inside the target directory: keys with empty, ``.`` or ``..`` segments
  or a leading ``/`` are refused, "directory marker" keys (ending in ``/``) are
  skipped, symlinks in the tree are never followed (the mirror replaces them,
  the copy refuses to write through them).
* Every :func:`sync_once` logs exactly one JSON line
  ``{"event": "knowledge_sync", "ok": ..., "downloaded": ..., "deleted": ...,
  "unchanged": ..., "errors": ..., "refused": ..., "deferred": ..., "error": ...}``; ``ok`` is
  false when anything could not be mirrored (bucket missing, AccessDenied,
  network, a refused key). It never raises, and the loop never stops.

CLI: ``python -m hermes_aws.knowledge_sync [--loop]``. Without a bucket it says
so once and exits 0.
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import hashlib
import json
import logging
import os
import signal
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from hermes_aws.events import emit, short
from hermes_aws.fsutil import atomic_write, atomic_writer, safe_parent

logger = logging.getLogger(__name__)

BUCKET_ENV = "HERMES_AWS_KNOWLEDGE_BUCKET"
INTERVAL_ENV = "HERMES_AWS_KNOWLEDGE_SYNC_SECONDS"
DEFAULT_INTERVAL = 900
KNOWLEDGE_PREFIX = "knowledge/"
PROJECTS_PREFIX = "projects/"
STATE_DIR = ".hermes-aws"  # under HERMES_HOME: the sync manifests
TMP_PREFIX = ".hermes-sync-"
TMP_SUFFIX = ".tmp"
MANIFEST_VERSION = 1
LIST_PAGE_SIZE = 1000  # ListObjectsV2 maximum
LOCK_TIMEOUT = 300.0  # seconds to wait for another sync in the same HERMES_HOME
_CHUNK = 1 << 20


class UnsafeKey(ValueError):
    """An object key that cannot be mapped to a path inside the target directory."""


@dataclass(frozen=True)
class Target:
    """One prefix of the bucket and the local directory it lands in."""

    prefix: str
    dest: Path
    mirror: bool  # delete local files whose object is gone

    @property
    def name(self) -> str:
        return self.prefix.strip("/").replace("/", "_") or "root"


@dataclass
class SyncResult:
    downloaded: int = 0
    deleted: int = 0
    unchanged: int = 0
    errors: int = 0
    refused: int = 0
    deferred: int = 0  # left for the next sync because the time budget ran out
    messages: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.errors == 0 and self.refused == 0

    def fail(self, message: str) -> None:
        self.errors += 1
        self.messages.append(message)
        logger.error("knowledge sync: %s", message)

    def refuse(self, message: str) -> None:
        self.refused += 1
        self.messages.append(message)
        logger.warning("knowledge sync: %s", message)

    def event_fields(self) -> dict[str, Any]:
        error = None
        if self.messages:
            more = len(self.messages) - 1
            error = short(self.messages[0]) + (f" (+{more} more)" if more else "")
        return {
            "ok": self.ok, "downloaded": self.downloaded, "deleted": self.deleted,
            "unchanged": self.unchanged, "errors": self.errors, "refused": self.refused,
            "deferred": self.deferred, "error": error,
        }


def default_targets(home: Path) -> list[Target]:
    home = Path(home)
    return [
        Target(KNOWLEDGE_PREFIX, home / "knowledge", mirror=True),
        Target(PROJECTS_PREFIX, home / "projects", mirror=False),
    ]


def make_client(*, endpoint_url: str | None = None, **config: Any) -> Any:
    """An S3 client with bounded timeouts and retries.

    Region, credentials and endpoint come from the environment (task role,
    ``AWS_ENDPOINT_URL``) unless ``endpoint_url`` is given; ``config`` overrides
    botocore ``Config`` options.
    """
    import boto3
    from botocore.config import Config

    options: dict[str, Any] = {
        "connect_timeout": 10, "read_timeout": 60,
        "retries": {"max_attempts": 3, "mode": "standard"},
    }
    options.update(config)
    return boto3.client("s3", endpoint_url=endpoint_url, config=Config(**options))


# --------------------------------------------------------------------------- one sync


def sync_once(
    bucket: str,
    home: Path,
    *,
    s3: Any = None,
    targets: list[Target] | None = None,
    out: TextIO | None = None,
    budget: float | None = None,
) -> SyncResult:
    """Sync every target once, log one ``knowledge_sync`` JSON line, never raise.

    With a ``budget`` (seconds), no new download starts after it is spent: the
    rest is counted as ``deferred`` (not a failure) for the next sync. The
    gateway uses this so a large first sync cannot hold Hermes back past the
    container health check's start period.
    """
    started = time.monotonic()
    deadline = None if budget is None else started + budget
    result = SyncResult()
    home = Path(home)
    try:
        if s3 is None:
            s3 = make_client()
        with _sync_lock(home):
            for target in targets if targets is not None else default_targets(home):
                manifest = home / STATE_DIR / f"sync-{target.name}.json"
                try:
                    sync_target(s3, bucket, target, manifest, result, deadline=deadline)
                except Exception as exc:  # one prefix failing must not stop the other
                    result.fail(f"s3://{bucket}/{target.prefix}: {describe_error(exc)}")
    except Exception as exc:
        result.fail(f"s3://{bucket}: {describe_error(exc)}")
    emit(
        "knowledge_sync", out=out, bucket=bucket, **result.event_fields(),
        duration_ms=int((time.monotonic() - started) * 1000),
    )
    return result


def sync_target(
    s3: Any, bucket: str, target: Target, manifest_path: Path, result: SyncResult,
    *, deadline: float | None = None,
) -> None:
    """Bring ``target.dest`` in line with ``s3://bucket/target.prefix``."""
    try:
        objects = list(list_objects(s3, bucket, target.prefix))
    except Exception as exc:
        # Nothing local is touched: a partial listing must not delete the mirror.
        result.fail(f"listing s3://{bucket}/{target.prefix}: {describe_error(exc)}")
        return

    dest = target.dest
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
        result.fail(f"{dest} is not a directory; not syncing {target.prefix} into it")
        return
    dest.mkdir(mode=0o700, parents=True, exist_ok=True)

    old = load_manifest(manifest_path, bucket, target.prefix)
    new: dict[str, dict[str, Any]] = {}
    expected: set[str] = set()  # relative paths of every object (downloaded or not)

    for obj in objects:
        key = obj["Key"]
        try:
            rel = relative_path(key, target.prefix)
        except UnsafeKey as exc:
            result.refuse(f"refused key {key!r}: {exc}")
            continue
        if rel is None:
            continue  # directory marker
        expected.add(rel)
        entry = old.get(rel)
        if entry is not None and _is_unchanged(dest / rel, entry, obj):
            new[rel] = entry
            result.unchanged += 1
            continue
        if deadline is not None and time.monotonic() >= deadline:
            result.deferred += 1
            if entry is not None and (dest / rel).exists():
                new[rel] = entry  # the old version stays until the next sync
            continue
        try:
            new[rel] = download(s3, bucket, key, dest, rel, replace_links=target.mirror)
            result.downloaded += 1
        except Exception as exc:
            result.fail(f"downloading s3://{bucket}/{key}: {describe_error(exc)}")
            if entry is not None and (dest / rel).exists():
                new[rel] = entry  # keep the old entry: the old file is still there

    result.deleted += clean_tree(dest, expected, mirror=target.mirror)
    save_manifest(manifest_path, bucket, target.prefix, new)


def list_objects(s3: Any, bucket: str, prefix: str) -> Iterator[dict[str, Any]]:
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": LIST_PAGE_SIZE}):
        yield from page.get("Contents", [])


def relative_path(key: str, prefix: str) -> str | None:
    """The local path (relative, ``/``-separated) for ``key``; None for a directory marker."""
    if not key.startswith(prefix):
        raise UnsafeKey(f"not under {prefix}")
    rel = key[len(prefix):]
    if rel == "" or rel.endswith("/"):
        return None
    if "\x00" in rel:
        raise UnsafeKey("contains a NUL character")
    parts = rel.split("/")
    if parts[0] == "":
        raise UnsafeKey("absolute path")
    for part in parts:
        if part in ("", ".", ".."):
            raise UnsafeKey(f"path segment {part!r} is not allowed")
        if len(part.encode("utf-8", "surrogatepass")) > 255:
            raise UnsafeKey("path segment longer than 255 bytes")
    return rel


def download(s3: Any, bucket: str, key: str, root: Path, rel: str, *, replace_links: bool) -> dict[str, Any]:
    """Download ``key`` to ``root/rel`` atomically; return its manifest entry."""
    parts = rel.split("/")
    parent = safe_parent(root, parts[:-1], replace_links=replace_links)
    path = parent / parts[-1]
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise OSError(errno.EISDIR, f"{path} is a directory locally")

    resp = s3.get_object(Bucket=bucket, Key=key)
    body = resp["Body"]
    modified = resp.get("LastModified")
    try:
        size = 0
        # The rename replaces a symlink at ``path`` itself, never its target.
        with atomic_writer(path, prefix=TMP_PREFIX, suffix=TMP_SUFFIX,
                           mtime=None if modified is None else modified.timestamp()) as f:
            for chunk in body.iter_chunks(_CHUNK):
                f.write(chunk)
                size += len(chunk)
            expected = resp.get("ContentLength")
            if expected is not None and size != expected:
                raise OSError(errno.EIO, f"short read: got {size} of {expected} bytes")
    finally:
        body.close()
    local = os.lstat(path)
    return {"etag": resp.get("ETag"), "size": size, "mtime_ns": local.st_mtime_ns}


def clean_tree(root: Path, expected: set[str], *, mirror: bool) -> int:
    """Remove leftovers under ``root``; return how many files/links were deleted.

    Always removes our own stale temporary files. In mirror mode also removes
    files and symlinks that are not ``expected`` and directories left empty.
    """
    deleted = 0
    for dirpath, dirnames, filenames in os.walk(root, topdown=False, followlinks=False):
        base = Path(dirpath)
        for name in filenames:
            path = base / name
            rel = path.relative_to(root).as_posix()
            if rel in expected:
                continue
            if name.startswith(TMP_PREFIX) and name.endswith(TMP_SUFFIX):
                path.unlink(missing_ok=True)
            elif mirror:
                path.unlink(missing_ok=True)
                deleted += 1
        if not mirror:
            continue
        for name in dirnames:
            path = base / name
            if path.is_symlink():  # os.walk lists symlinks to directories here
                path.unlink(missing_ok=True)
                deleted += 1
                continue
            try:
                path.rmdir()  # only succeeds when empty
            except OSError:
                pass
    return deleted


def describe_error(exc: BaseException) -> str:
    """A short, secret-free description of an S3/network/file error."""
    try:
        from botocore.exceptions import ClientError
    except ImportError:  # pragma: no cover - boto3 is a dependency
        ClientError = ()  # type: ignore[assignment,misc]
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = err.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        message = err.get("Message") or ""
        return short(f"{code}: {message}" if message else str(code))
    return short(f"{type(exc).__name__}: {exc}")


# --------------------------------------------------------------------------- state


def load_manifest(
    path: Path, bucket: str, prefix: str, *, what: str = "knowledge sync",
) -> dict[str, dict[str, Any]]:
    """The file entries of the manifest at ``path``.

    Empty when the manifest is missing, unreadable (logged, prefixed ``what``)
    or written for another bucket, prefix or format version. Also used by
    :mod:`hermes_aws.workspace`, whose manifests have the same envelope.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        logger.warning("%s: ignoring unreadable manifest %s: %s", what, path, exc)
        return {}
    if (
        not isinstance(data, dict) or data.get("version") != MANIFEST_VERSION
        or data.get("bucket") != bucket or data.get("prefix") != prefix
        or not isinstance(data.get("files"), dict)
    ):
        return {}  # another bucket or format: everything is downloaded again
    return {k: v for k, v in data["files"].items() if isinstance(v, dict)}


def save_manifest(
    path: Path, bucket: str, prefix: str, files: Mapping[str, Any], *, fsync: bool = True,
) -> None:
    """Write the manifest atomically (``fsync=False`` for state that may be lost, e.g. in ``/tmp``)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    payload = json.dumps(
        {"version": MANIFEST_VERSION, "bucket": bucket, "prefix": prefix, "files": dict(files)},
        sort_keys=True,
    ).encode("utf-8")
    atomic_write(path, payload, suffix=TMP_SUFFIX, fsync=fsync)


def _is_unchanged(path: Path, entry: Mapping[str, Any], obj: Mapping[str, Any]) -> bool:
    if entry.get("etag") != obj.get("ETag") or entry.get("size") != obj.get("Size"):
        return False
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return (
        stat.S_ISREG(st.st_mode)
        and st.st_size == entry.get("size")
        and st.st_mtime_ns == entry.get("mtime_ns")
    )


class _sync_lock:
    """Serialise syncs of one HERMES_HOME within this container (monitor loop, manual run).

    The lock file lives in the local temp dir, not on EFS: an NFS lock left by a
    task that died would block the next task's first sync until its lease expires.
    """

    def __init__(self, home: Path, timeout: float = LOCK_TIMEOUT) -> None:
        digest = hashlib.sha256(str(Path(home).absolute()).encode()).hexdigest()[:16]
        self.path = Path(tempfile.gettempdir()) / f"hermes-aws-sync-{digest}.lock"
        self.timeout = timeout
        self.fd: int | None = None

    def __enter__(self) -> _sync_lock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise TimeoutError(f"another sync has held {self.path} for {self.timeout:.0f}s") from None
                time.sleep(0.5)
        self.fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


# --------------------------------------------------------------------------- loop and CLI


def interval_from_env(environ: Mapping[str, str]) -> int:
    raw = (environ.get(INTERVAL_ENV) or "").strip()
    if not raw:
        return DEFAULT_INTERVAL
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        logger.warning("%s=%r is not a positive integer; using %d", INTERVAL_ENV, raw, DEFAULT_INTERVAL)
        return DEFAULT_INTERVAL
    return value


def run_loop(
    sync: Callable[[], Any],
    interval: float,
    *,
    initial_delay: float = 0.0,
    iterations: int | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Call ``sync`` every ``interval`` seconds until ``stop`` is set (or ``iterations`` ran).

    ``sync`` is expected not to raise (``sync_once`` does not); if it does, the
    failure is logged as a ``knowledge_sync`` line with ``ok: false`` and the loop
    goes on.
    """
    stop = stop or threading.Event()
    if initial_delay > 0 and stop.wait(initial_delay):
        return
    done = 0
    while not stop.is_set():
        try:
            sync()
        except Exception as exc:
            logger.exception("knowledge sync crashed")
            emit("knowledge_sync", ok=False, errors=1, error=short(f"{type(exc).__name__}: {exc}"))
        done += 1
        if iterations is not None and done >= iterations:
            return
        if stop.wait(interval):
            return


def main(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(
        prog="python -m hermes_aws.knowledge_sync",
        description=f"Sync s3://${BUCKET_ENV}/knowledge/ (mirror) and projects/ (copy) into $HERMES_HOME.",
    )
    parser.add_argument("--loop", action="store_true",
                        help=f"sync now and then every ${INTERVAL_ENV} seconds (default {DEFAULT_INTERVAL}), forever")
    parser.add_argument("--home", type=Path, help="target HERMES_HOME (default: $HERMES_HOME)")
    parser.add_argument("--bucket", help=f"bucket name (default: ${BUCKET_ENV})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)

    bucket = (args.bucket or env.get(BUCKET_ENV) or "").strip()
    if not bucket:
        logger.info("no knowledge bucket configured (%s is not set); nothing to sync", BUCKET_ENV)
        return 0
    home = args.home or (Path(env["HERMES_HOME"]) if env.get("HERMES_HOME") else None)
    if home is None:
        print("hermes_aws.knowledge_sync: error: no --home given and HERMES_HOME is not set", file=sys.stderr)
        return 2

    if not args.loop:
        return 0 if sync_once(bucket, home).ok else 1

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    interval = interval_from_env(env)
    logger.info("syncing s3://%s into %s every %ds", bucket, home, interval)
    run_loop(lambda: sync_once(bucket, home), interval, stop=stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
