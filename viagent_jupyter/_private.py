"""Private files and directories: creation (0700/0600 whatever the umask) and OpenSSH's trust
rule before use.

A path the package trusts (the home, ``keys/``, the database, the key file) must be owned by the
user, not group/world-writable, and not a symlink; otherwise another local user could swap in
their own database (pointing a provider at their server) or their own key. The check raises the
caller's error type with one line naming the path and the ``chmod``/``chown`` that fixes it.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from .errors import ViagentError

__all__ = ["check_private", "home_lock", "make_private_dir"]


def make_private_dir(path: Path) -> None:
    """Create ``path`` and every missing parent as 0700, one by one (``mkdir(parents=True)``
    would make the parents ``0777 & ~umask``: world-writable under ``umask 000``)."""
    missing: list[Path] = []
    cur = path
    while not cur.exists() and not cur.is_symlink():
        missing.append(cur)
        if cur.parent == cur:
            break
        cur = cur.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:  # another process made it meanwhile: its own check follows
            continue
        os.chmod(directory, 0o700)


def check_private(path: Path, what: str, error: type[ViagentError], *,
                  secret: bool = False) -> None:
    """Refuse ``path`` (a missing one passes) when it is a symlink, belongs to another user,
    or is group/world-writable (``secret``: also readable by others)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise error(f"The {what} {path} is a symbolic link; refusing to use it (another user "
                    f"could point it elsewhere). Replace it with a real "
                    f"{'directory' if what.endswith(('home', 'directory')) else 'file'}.")
    if not hasattr(os, "geteuid"):  # no POSIX ownership (Windows): nothing more to check
        return
    uid = os.geteuid()
    if st.st_uid != uid:
        raise error(f"The {what} {path} belongs to another user (uid {st.st_uid}); refusing to "
                    f"use it. If it is yours, run: chown {uid} '{path}'.")
    mode = stat.S_IMODE(st.st_mode)
    if secret and mode & 0o077:
        raise error(f"The {what} {path} is readable by other users (mode {mode:o}); run: "
                    f"chmod 600 '{path}'.")
    if mode & 0o022:
        fix = "700" if stat.S_ISDIR(st.st_mode) else "600"
        raise error(f"The {what} {path} is writable by other users (mode {mode:o}); refusing "
                    f"to use it. Run: chmod {fix} '{path}'.")


@contextlib.contextmanager
def home_lock(home: Path, name: str = "vault.lock") -> Iterator[None]:
    """An exclusive lock across processes (``flock`` on ``<home>/<name>``, created 0600)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: the O_EXCL/link steps still hold
        yield
        return
    path = home / name
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
