"""One gateway process per data folder: an exclusive lock on a file in it.

Two processes on one folder would each extend the party's audit chain from the same head —
a fork that the verifier rightly refuses — and would race on the store. So `lvvx gateway
run` holds `LOCK_FILE` locked (``flock``, exclusive, non-blocking) from before the store is
opened until the process ends; a second process finds it locked and refuses to start with
`AlreadyRunning`, naming the PID written in the file.

The lock belongs to the open file, not to the file's existence: a process that dies (even by
SIGKILL) loses it with its descriptors, so a stale file never blocks a restart, and the file
is never deleted (deleting it would let a second process lock a new file while the first
still holds the old one).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from types import TracebackType
from typing import Self

from broker.errors import LocalError
from broker.owner_only import private_dir

LOCK_FILE = "gateway.lock"
"""In the data folder; holds the PID of the process that has the folder."""

LOCK_FILE_MODE = 0o600
"""Only the gateway's own user reads it: the PID is no secret, but the folder's files are its."""


class AlreadyRunning(LocalError):
    """Another process holds this gateway's data folder."""

    reason = "ALREADY_RUNNING"


class DataDirLock:
    """The exclusive lock on ``data_dir``'s `LOCK_FILE` (the folder is made, owner-only, if
    missing)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_FILE
        self._fd: int | None = None

    @property
    def pid(self) -> int:
        return os.getpid()

    def acquire(self) -> None:
        """Take the lock, or raise `AlreadyRunning` with the holder's PID."""
        private_dir(self.path.parent)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, LOCK_FILE_MODE)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                raise AlreadyRunning(
                    f"another gateway (pid {holder}) is running on {self.path.parent.resolve()}; "
                    "stop it first"
                ) from None
            os.fchmod(fd, LOCK_FILE_MODE)  # a file left by an older version may be wider
            written = os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            os.ftruncate(fd, written)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        """Give the folder up (closing the file releases the lock; the file stays)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
