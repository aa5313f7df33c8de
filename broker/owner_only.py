"""Owner-only files and folders, whatever the process's umask.

Everything a gateway, the demo or the CLI keeps under a data folder — SQLite stores and
their side files, the embedded log, keys, tokens, configurations — is for the party's own
operator only: folders 0700, files 0600. A umask of 022 (the usual default) would leave
them readable by every local user, so modes are set explicitly, not left to the umask.
"""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
PROCESS_UMASK = 0o077
"""What the CLI sets for itself: a file made by any library it calls is owner-only too."""

SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
"""The files SQLite keeps beside a database (it gives them the database file's mode)."""


def private_dir(path: str | os.PathLike[str]) -> Path:
    """Make ``path`` and any missing parents, each 0700; an existing ``path`` is set to 0700
    (its existing parents are left as they are: they may be shared, like /tmp)."""
    folder = Path(path)
    missing = []
    for parent in (folder, *folder.parents):
        if parent.exists():
            break
        missing.append(parent)
    for made in reversed(missing):
        made.mkdir(mode=PRIVATE_DIR_MODE, exist_ok=True)
    os.chmod(folder, PRIVATE_DIR_MODE)
    for made in missing:
        os.chmod(made, PRIVATE_DIR_MODE)
    return folder


def private_file(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` (empty) if missing, and set it to 0600 either way. Its folder must
    exist (`private_dir`): a missing one is a wrong path, not something to make here.

    An existing file is changed by path, never opened: closing a descriptor of a file drops
    every POSIX lock this process holds on it, SQLite's included (see "How To Corrupt An
    SQLite Database File", §2.2)."""
    file = Path(path)
    try:
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        os.chmod(file, PRIVATE_FILE_MODE)
        return file
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)  # the umask may have taken bits off the mode
    finally:
        os.close(fd)
    return file


def private_sqlite(path: str | os.PathLike[str]) -> Path:
    """A SQLite database file (and any side files already there) made owner-only before it
    is opened, so SQLite creates its -wal and -shm files owner-only as well. In a folder
    that does not exist nothing is made: opening it fails, as SQLite reports."""
    file = Path(path)
    if not file.parent.is_dir():
        return file
    private_file(file)
    for suffix in SQLITE_SIDE_FILES:
        side = file.with_name(file.name + suffix)
        if side.exists():
            os.chmod(side, PRIVATE_FILE_MODE)
    return file


def write_private_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path``, owner-only (its folder made private if missing)."""
    private_dir(Path(path).parent)
    file = private_file(path)
    file.write_text(text)
    return file
