"""Run locks: one results root, many writers.

A run being trained is locked by the process that trains it: an exclusive `flock` on
`<root>/.locks/<name>.lock`, a file that outlives the run's staging and final folders. The OS
releases the lock when that process ends, however it ends, so a killed run never leaves a
stale lock. The holder writes its pid and host into the file, so others can say who holds it.
Lock files are kept, empty of meaning once unlocked: deleting one while another process opens
it would let two processes lock two different files of the same name.

On a filesystem shared between machines the lock is only as good as the filesystem's
support for it: flock (or POSIX locks) must be coherent across nodes (NFSv4 with locking,
Lustre mounted with -o flock).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from regexp.errors import ResultsError
from regexp.results import store as results

LOCKS = ".locks"


class RunLocked(ResultsError):
    """The run is being trained by another process; `holder` says which, where known."""

    def __init__(self, folder: Path, holder: str) -> None:
        self.holder = holder
        super().__init__(
            f"{folder}: being trained by another process ({holder}); run it again once that process has ended"
        )


def lock_path(root: Path, name: str) -> Path:
    """The lock file of run `name` under `root` (the name is checked as for its run folder)."""
    results.run_dir(root, name)
    return root / LOCKS / f"{name}.lock"


class RunLock:
    """The exclusive lock of one run: `acquire()` takes it or raises RunLocked; `release()` gives it back."""

    def __init__(self, root: Path, name: str) -> None:
        self.path = lock_path(root, name)
        self.folder = results.run_dir(root, name)
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunLocked(self.folder, holder_of(self.path)) from None
        except BaseException:
            os.close(fd)
            raise
        # Written in place, not through a temporary file: the lock belongs to this very file.
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                os.ftruncate(fd, 0)  # an unlocked file names no holder
            finally:
                os.close(fd)  # closing the only descriptor releases the lock

    def __enter__(self) -> None:
        self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def holder_of(path: Path) -> str:
    """Who holds the lock at `path`, as its holder wrote it ("pid 123 on host"), where known."""
    try:
        text = path.read_text(errors="replace").strip()
    except OSError:
        text = ""
    return text if text.startswith("pid ") else "pid and host not known yet"


_SUMMARY_LOCKS_HELD: set[str] = set()  # roots whose summary lock this process holds


@contextlib.contextmanager
def summary_lock(root: Path) -> Iterator[None]:
    """Wait for, then hold, the lock of the root's summary: two sweeps ending at once write it one
    after the other, each from what is on disk when it starts, so the last one is complete.

    Re-entrant within a process (a sweep holds it while the report takes it again): a second
    flock on a new descriptor of the same file would wait for the first for ever.
    """
    path = root / LOCKS / ".summary.lock"  # a dot: no run can have this name
    key = os.path.abspath(path)
    if key in _SUMMARY_LOCKS_HELD:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _SUMMARY_LOCKS_HELD.add(key)
        yield
    finally:
        _SUMMARY_LOCKS_HELD.discard(key)
        os.close(fd)
