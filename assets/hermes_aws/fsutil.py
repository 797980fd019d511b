"""Small file-system helpers shared by the runtime: atomic writes and symlink-safe directories.

* :func:`atomic_writer` / :func:`atomic_write`: write to a temporary file in the
  target's directory, optionally fsync it, then ``os.replace`` it over the
  target. Readers see the old content or the new, never a partial file; a
  symlink at the target is replaced itself, never written through. On any
  failure (including ``KeyboardInterrupt``) the temporary file is removed and
  the target is left as it was.
* :func:`safe_parent`: create ``root/dir/...`` one level at a time without
  following symlinks.

Standard library only (the health probe imports this and must start fast).
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

DIR_MODE = 0o700
TMP_SUFFIX = ".tmp"


@contextmanager
def atomic_writer(
    path: Path | str,
    *,
    mode: int | None = None,
    prefix: str | None = None,
    suffix: str = TMP_SUFFIX,
    fsync: bool = True,
    mtime: float | None = None,
) -> Iterator[BinaryIO]:
    """Yield a binary file whose content replaces ``path`` atomically when the block succeeds.

    The temporary file is created next to ``path`` (same file system, so the
    rename is atomic) as ``<prefix><random><suffix>``; ``prefix`` defaults to
    ``.<name of path>.``. Callers that clean up or ignore stale temporaries by
    name pass their own ``prefix``/``suffix``.

    * ``mode``: permission bits set on the temporary file before anything is
      written (``mkstemp`` creates it 0600 less the umask).
    * ``fsync``: flush the data to disk before the rename. Pass ``False`` for
      scratch files whose loss on a crash does not matter (e.g. under ``/tmp``).
    * ``mtime``: epoch seconds set as the file's access and modification time
      before it is renamed into place.

    An exception raised inside the block (e.g. a failed size check) discards the
    temporary file and leaves ``path`` untouched.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}." if prefix is None else prefix, suffix=suffix, dir=path.parent
    )
    try:
        with os.fdopen(fd, "wb") as f:
            if mode is not None:
                os.fchmod(f.fileno(), mode)
            yield f
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        if mtime is not None:
            os.utime(tmp, (mtime, mtime))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write(
    path: Path | str,
    data: bytes,
    *,
    mode: int | None = None,
    prefix: str | None = None,
    suffix: str = TMP_SUFFIX,
    fsync: bool = True,
) -> None:
    """Replace ``path`` with ``data`` atomically; options as in :func:`atomic_writer`."""
    with atomic_writer(path, mode=mode, prefix=prefix, suffix=suffix, fsync=fsync) as f:
        f.write(data)


def safe_parent(root: Path, dirs: Iterable[str], *, replace_links: bool = False) -> Path:
    """Create ``root/dirs[0]/dirs[1]/...`` without following symlinks; return the last directory.

    ``root`` itself is trusted (the caller checked it). Missing directories are
    created with mode 0700. An existing entry that is not a real directory (a
    symlink, even one pointing at a directory, or a file):

    * ``replace_links=False``: raises ``OSError(ENOTDIR)`` with the message
      ``"<path> is a symlink; not writing through it"`` (or ``"... is not a
      directory; ..."``);
    * ``replace_links=True`` (a tree the caller owns, like the knowledge mirror):
      is deleted and replaced by a new directory.
    """
    current = root
    for part in dirs:
        current = current / part
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            current.mkdir(mode=DIR_MODE)
            continue
        if stat.S_ISDIR(st.st_mode):
            continue
        if not replace_links:
            kind = "a symlink" if stat.S_ISLNK(st.st_mode) else "not a directory"
            raise OSError(errno.ENOTDIR, f"{current} is {kind}; not writing through it")
        current.unlink()  # stale link or file in a tree the caller owns
        current.mkdir(mode=DIR_MODE)
    return current
