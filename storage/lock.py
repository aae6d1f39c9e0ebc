"""The store's ``lock`` file (§5.7) and the ``abort`` marker.

``lock``: an exclusive POSIX record lock on byte [0, 1), as Java's ``FileChannel.tryLock(0, 1,
false)`` takes, so a Java broker and ours exclude each other.  POSIX locks are per process, so a
second store opened in the same process is refused through a process-wide registry as well.
"""

from __future__ import annotations

import fcntl
import os

from storage.errors import StoreLockedError

_held_in_process: set[str] = set()


class StoreLock:
    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self._fd = -1

    def acquire(self) -> None:
        if self.path in _held_in_process:
            raise StoreLockedError(f"Lock failed, MQ already started ({self.path})")
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 0)
        except OSError:
            os.close(fd)
            raise StoreLockedError(f"Lock failed, MQ already started ({self.path})") from None
        os.pwrite(fd, b"lock", 0)
        self._fd = fd
        _held_in_process.add(self.path)

    def release(self) -> None:
        if self._fd >= 0:
            try:
                fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, 0)
            finally:
                os.close(self._fd)
                self._fd = -1
                _held_in_process.discard(self.path)

    @property
    def held(self) -> bool:
        return self._fd >= 0


def abort_exists(path: str) -> bool:
    return os.path.exists(path)


def create_abort(path: str) -> None:
    """Present while the store runs; still there at the next start = the last exit crashed."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    dir_fd = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def remove_abort(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
