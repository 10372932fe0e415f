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
import errno
import fcntl
import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

from regexp.errors import ResultsError
from regexp.results import store as results

LOCKS = results.LOCKS


class RunLocked(ResultsError):
    """The run is being trained by another process; `holder` says which, where known."""

    def __init__(self, folder: Path, holder: str) -> None:
        self.holder = holder
        super().__init__(
            f"{folder}: being trained by another process ({holder}); run it again once that process has ended"
        )


def lock_path(root: Path, name: str, kind: str = "lock") -> Path:
    """The lock file of run `name` under `root` (the name is checked as for its run folder);
    `kind` tells apart the locks one run has (`claim`: a tuning trial's, held from ask to tell)."""
    results.run_dir(root, name)
    return results.inside_root(root, LOCKS, f"{name}.{kind}")


def _open_lock_file(root: Path, name: str) -> int:
    """A descriptor of `<root>/.locks/<name>`, made if missing: a plain file, never reached
    through a symbolic link (a planted link would have its target truncated), or ResultsError."""
    results.make_folder(root, LOCKS)
    path = results.inside_root(root, LOCKS, name)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ResultsError(f"{path}: is a symbolic link, not a lock file regexp made; left alone") from None
        raise ResultsError(f"{path}: cannot be opened ({exc.strerror or exc})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise ResultsError(f"{path}: is not a plain file, as a lock file regexp made is; left alone")
    os.set_blocking(fd, True)
    return fd


class RunLock:
    """The exclusive lock of one run: `acquire()` takes it or raises RunLocked; `release()` gives it back."""

    def __init__(self, root: Path, name: str, kind: str = "lock") -> None:
        self.root, self.path = Path(root), lock_path(root, name, kind)
        self.folder = results.run_dir(root, name)
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = _open_lock_file(self.root, self.path.name)
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
        with results.open_plain_file(path, 1024) as f:
            text = f.read(1024).decode("utf-8", errors="replace").strip()
    except (OSError, results.DamagedRun, results.Vanished):
        text = ""
    return text if text.startswith("pid ") else "pid and host not known yet"


def wait_until_free(root: Path, name: str, kind: str = "lock") -> None:
    """Block until no process holds that lock (take it, then give it back at once)."""
    fd = _open_lock_file(root, lock_path(root, name, kind).name)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    finally:
        os.close(fd)


@contextlib.contextmanager
def study_lock(root: Path, study: str) -> Iterator[None]:
    """Wait for, then hold, the lock of a tuning study: processes sharing it choose their next
    trial one after the other, so none is asked twice or taken by two."""
    fd = _open_lock_file(root, f".study-{study}.lock")  # a dot: no run can have this name
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


_SUMMARY_LOCKS_HELD: set[str] = set()  # roots whose summary lock this process holds


@contextlib.contextmanager
def summary_lock(root: Path) -> Iterator[None]:
    """Wait for, then hold, the lock of the root's summary: two sweeps ending at once write it one
    after the other, each from what is on disk when it starts, so the last one is complete.

    Re-entrant within a process (a sweep holds it while the report takes it again): a second
    flock on a new descriptor of the same file would wait for the first for ever.
    """
    path = results.inside_root(root, LOCKS, ".summary.lock")  # a dot: no run can have this name
    key = os.path.abspath(path)
    if key in _SUMMARY_LOCKS_HELD:
        yield
        return
    fd = _open_lock_file(root, path.name)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _SUMMARY_LOCKS_HELD.add(key)
        yield
    finally:
        _SUMMARY_LOCKS_HELD.discard(key)
        os.close(fd)
