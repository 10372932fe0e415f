"""Results on disk: run folders, atomic writes, history.csv and metrics.json.

Layout under a results root:

    <root>/<run>/                 a finished run: config.yaml, history.csv, model.txt,
                                  model.weights.h5, loss.png, accuracy.png, tensorboard/,
                                  metrics.json (written last)
    <root>/.inprogress/<run>/     a run being trained: its files so far and its checkpoint
    <root>/.damaged/<run>-<UTC>/  a damaged run folder, moved aside before its run is trained again
    <root>/.locks/<run>.lock      the lock of a run being trained (regexp.results.locks)

A results root may come from anyone (docs/results-safety.md): every path regexp writes, moves
or deletes is built by `inside_root`, which follows no symbolic link below the root, and files
are read only as plain files within a size limit per kind (`open_plain_file`).

A run trains in its staging folder and is promoted into place by renaming the whole folder,
so `<root>/<run>/` only ever holds a finished run, and a failure to write leaves the previous
results as they were. Every file is written to a temporary name and renamed into place.

Reading is strict: `scan_runs` and `load_run` check every field regexp reads, and a run folder
that fails a check is named in one line ('<file>: <what is wrong>') and left out, never a traceback.

This module must stay free of TensorFlow: `regexp plot` reads results with it.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import errno
import io
import json
import os
import re
import shutil
import stat
import uuid
from dataclasses import dataclass
from pathlib import Path

from regexp.config import run_name_problem
from regexp.errors import ResultsError
from regexp.results.record import RECORD_KEYS, RecordError, RunRecord, RunStatus, parse_record

STAGING = ".inprogress"
METRICS = "metrics.json"
HISTORY = "history.csv"
CONFIG = "config.yaml"
CHECKPOINT = "checkpoint"
MODEL_SUMMARY = "model.txt"
WEIGHTS = "model.weights.h5"  # a completed run's final weights (Keras's save_weights format)
DAMAGED = ".damaged"
HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "penalty", "val_penalty")
REQUIRED_HISTORY_COLUMNS = ("epoch", "loss", "accuracy")
# A folder holding any of these is a run folder (a results root never holds them itself).
RUN_FILES = (METRICS, HISTORY, CONFIG, MODEL_SUMMARY)


def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")


def remove_temporary_files(folder: Path) -> None:
    """Delete the temporary files a killed writer left in `folder` (plain files only: a link or
    a folder of that name is not regexp's and is left alone)."""
    for temp in folder.glob(".*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISREG(os.lstat(temp).st_mode):
                temp.unlink()


def _kind(mode: int) -> str:
    """What kind of entry an lstat mode is, in the words of an error line ('a symbolic link')."""
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISREG(mode):
        return "a file"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device"


class WriteError(ResultsError, OSError):
    """A file of the results that cannot be written (one line, '<path>: cannot be written (why)');
    an OSError too, so that code handling failed writes handles it as before."""


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file, fsync and rename: never half a file.

    The temporary file is created exclusively (never through a link planted under its name), and
    a `path` that is anything but a plain file (a link, a folder, a FIFO) is refused with
    ResultsError and left alone: regexp replaces only files it could have written. A write that
    fails (a read-only folder, a full disk, a parent that is a file) raises WriteError.
    """
    path = Path(path)
    check_replaceable(path)
    temp = _temp_name(path)
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except OSError as exc:
        _remove_quietly(temp)
        raise WriteError(f"{path}: cannot be written ({exc.strerror or exc})") from None
    except BaseException:
        _remove_quietly(temp)
        raise


def check_replaceable(path: Path) -> None:
    """Refuse (ResultsError, nothing touched) to replace `path` unless it is absent or a plain file:
    a link, a folder or a FIFO in its place is not a file regexp wrote."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise WriteError(f"{path}: cannot be written ({exc.strerror or exc})") from None
    if not stat.S_ISREG(mode):
        raise ResultsError(f"{path}: is {_kind(mode)}, not a file regexp writes; left alone")


def _remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def write_text_atomic(path: Path, text: str) -> None:
    """`text` as UTF-8, atomically. A folder name that is not UTF-8 on disk reaches Python as lone
    surrogates, which UTF-8 cannot hold: they are written escaped ('\\udcff'), as Python prints them."""
    write_bytes_atomic(path, text.encode("utf-8", "backslashreplace"))


def write_json_atomic(path: Path, data: dict) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False, allow_nan=False) + "\n")


def write_record(path: Path, record: dict) -> None:
    """Write a run record (metrics.json) atomically, checked through RunRecord first: a writer never
    leaves a record its own reader would call damaged (RecordError names the field), nor a key
    the record does not name (readers keep such keys of other versions' records; regexp writes none)."""
    unnamed = sorted(set(record) - RECORD_KEYS)
    if unnamed:
        raise RecordError(f"{', '.join(unnamed)}: not a field of the run record (regexp/results/record.py)")
    parse_record(record)
    write_json_atomic(path, record)


# --------------------------------------------------------------------------- folders


LOCKS = ".locks"  # the run locks (regexp.results.locks)


def inside_root(root: Path, *parts: str) -> Path:
    """`root/part/part/...`, the one way regexp builds a path it writes, moves or deletes.

    Each part must be one plain name, and every step below `root` that exists must be a real
    folder (the last one: anything but a symbolic link); links are never followed below the
    root (the root itself may be one). Anything else raises ResultsError naming the step, and
    nothing is touched.
    """
    path = Path(root)
    for index, part in enumerate(parts):
        if not part or part in (".", "..") or "/" in part or "\0" in part:
            raise ResultsError(f"{path}: {part!r} is not one plain name under the results root")
        path = path / part
        try:
            mode = os.lstat(path).st_mode
        except (FileNotFoundError, NotADirectoryError):
            continue  # not there (yet): making it, or writing into it, will say why it cannot be
        except OSError as exc:
            raise ResultsError(f"{path}: cannot be read ({exc.strerror or exc})") from None
        if stat.S_ISLNK(mode):
            raise ResultsError(
                f"{path}: is a symbolic link; regexp follows no links inside a results root (left alone)"
            )
        if index < len(parts) - 1 and not stat.S_ISDIR(mode):
            raise ResultsError(f"{path}: is {_kind(mode)}, where regexp keeps a folder (left alone)")
    return path


def make_folder(root: Path, *parts: str) -> Path:
    """`inside_root(root, *parts)` made (with the folders above it) where missing; a step that is
    not a real folder raises ResultsError, as does a folder that cannot be made. The root itself
    is made where missing (it may be a link to a folder)."""
    try:
        Path(root).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ResultsError(f"{root}: results folder cannot be made ({exc.strerror or exc})") from None
    for depth in range(1, len(parts) + 1):
        path = inside_root(root, *parts[:depth])
        try:
            os.mkdir(path)
        except FileExistsError:
            mode = os.lstat(path).st_mode
            if not stat.S_ISDIR(mode):
                raise ResultsError(f"{path}: is {_kind(mode)}, where regexp keeps a folder (left alone)") from None
        except OSError as exc:
            raise ResultsError(f"{path}: cannot be made ({exc.strerror or exc})") from None
    return inside_root(root, *parts)


def run_dir(root: Path, name: str) -> Path:
    """The final folder of run `name`, refused if the name is not a run name or the folder a link."""
    return inside_root(root, _checked_name(name))


def staging_dir(root: Path, name: str) -> Path:
    """The folder run `name` trains in before it is promoted."""
    return inside_root(root, STAGING, _checked_name(name))


def _checked_name(name: str) -> str:
    problem = run_name_problem(name)  # the rule config validation applied already; here for names from elsewhere
    if problem:
        raise ResultsError(f"run name {name!r} {problem}")
    return name


def ensure_writable_root(root: Path) -> None:
    """Create the results root if needed, and prove it can be written, or raise ResultsError."""
    try:
        Path(root).mkdir(parents=True, exist_ok=True)
        probe = _temp_name(Path(root) / "write-probe")
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
        probe.unlink()
    except OSError as exc:
        raise ResultsError(f"{root}: results folder cannot be written ({exc.strerror or exc})") from None


def promote(staging: Path, final: Path) -> None:
    """Move a finished staging folder into place, replacing an older run of that name.

    The old folder is renamed aside first and removed only once the new one is in place;
    if the second rename fails the old one is put back. A damaged old folder is not removed:
    it is moved to `.damaged/` (set_aside_damaged).
    """
    set_aside_damaged(final.parent, final.name)
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(final, old)
    try:
        os.replace(staging, final)
    except BaseException:
        if old is not None:
            os.replace(old, final)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    try:
        staging.parent.rmdir()  # the .inprogress folder, once empty
    except OSError:
        pass


# --------------------------------------------------------------------------- reading runs


@dataclass(frozen=True)
class SavedRun:
    """A run folder as read from disk, every field regexp reads checked: `record` is metrics.json
    as a typed RunRecord, `metrics` the same as the plain dict on disk (unknown keys included)."""

    folder: Path
    metrics: dict
    history: list[dict]  # rows of history.csv; [] where the run has none (failed before training)
    record: RunRecord | None = None  # None only where a SavedRun is made by hand from a dict


class DamagedRun(Exception):
    """A run folder that cannot be read; the message is one line: '<path>: <what is wrong>'."""


def scan_runs(root: Path) -> tuple[list[SavedRun], list[str]]:
    """Every readable run under root (root itself if it is a run folder), sorted by name, and one line
    per run folder left out ('<path>: <what is wrong>'): damaged, or a copy of another run.

    A run folder is a folder directly under root that holds any of a run's files (RUN_FILES), or
    a folder that cannot be listed. A file under root whose name has no ordinary extension
    (letters only, as summary.csv or a figure has), a symbolic link, a FIFO or a device stands
    where a run folder should be: damaged, and left alone. Hidden entries (.inprogress,
    .damaged, ...) are not runs. Copies of a run within one config group are one run computed
    once: the original is kept, the copies are named (`duplicate_runs`).
    """
    root = Path(root)
    if not os.path.lexists(root):
        return [], []
    if not root.is_dir():
        return [], [f"{root}: is not a folder"]
    try:
        names = sorted(os.listdir(root))
    except OSError as exc:
        return [], [f"{root}: cannot be read ({exc.strerror or exc})"]
    if set(names) & set(RUN_FILES):
        candidates, follow = [root], True  # the root itself may be a link
    else:
        candidates = [root / name for name in names if not name.startswith(".") and _may_be_a_run(root / name)]
        follow = False
    runs, damaged = [], []
    for folder in candidates:
        try:
            run = load_run(folder, follow_link=follow)
        except DamagedRun as exc:
            damaged.append(str(exc))
            continue
        if run is not None:
            runs.append(run)
    kept, copies = duplicate_runs(runs)
    return kept, damaged + copies


def _may_be_a_run(path: Path) -> bool:
    """Whether the entry `path` of a results root is a run folder, or stands where one should be."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return False
    if stat.S_ISDIR(mode):
        return True
    return not _ordinary_file_name(path.name) or not (stat.S_ISREG(mode) or stat.S_ISLNK(mode))


def duplicate_runs(runs: list[SavedRun]) -> tuple[list[SavedRun], list[str]]:
    """`runs` less the copies, and one line per run left out.

    A copy is a run with the config hash and seed of another run of the same config group (group
    label and group hash): the report would pool the two as independent seeds of that config,
    though they are one computation. Of such runs the one whose folder its record names is kept
    (copies were renamed), else the first by name. Two configs that differ only in their names
    are two groups, each counted in its own.
    """
    first: dict[tuple, SavedRun] = {}
    kept, copies = [], []
    for run in sorted(runs, key=lambda run: (run.folder.name != run.record.run, run.folder.name)):
        m = run.record
        key = (m.group, m.group_hash, m.config_hash, m.seed)
        if key[2] is None or key[3] is None:
            kept.append(run)
        elif key in first:
            copies.append(
                f"{run.folder}: the same run as {first[key].folder.name} "
                f"(config hash {key[2]}, seed {key[3]}); counted once"
            )
        else:
            first[key] = run
            kept.append(run)
    return sorted(kept, key=lambda run: run.folder.name), sorted(copies)


def _ordinary_file_name(name: str) -> bool:
    return re.fullmatch(r"\.[A-Za-z]{1,5}", Path(name).suffix) is not None


def is_run_folder(path: Path) -> bool:
    """Whether `path` is a folder holding any of a run's files."""
    try:
        return path.is_dir() and bool(set(os.listdir(path)) & set(RUN_FILES))
    except OSError:
        return False


def load_run(folder: Path, *, follow_link: bool = False) -> SavedRun | None:
    """The run saved in `folder`, every field regexp reads checked; None where there is no run
    (no such path, or a folder holding none of a run's files). Raises DamagedRun, with one line
    naming the file and what is wrong, for anything else that cannot be read: a `folder` that is
    a symbolic link among them, unless `follow_link` (a results root named by the user).

    A completed or diverged run must have a valid history.csv; a failed run may have none.
    """
    folder = Path(folder)
    try:
        mode = (os.stat if follow_link else os.lstat)(folder).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise DamagedRun(f"{folder}: cannot be read ({exc.strerror or exc})") from None
    if stat.S_ISLNK(mode):
        raise DamagedRun(f"{folder}: is a symbolic link; regexp follows no links inside a results root (left alone)")
    if not stat.S_ISDIR(mode):
        raise DamagedRun(f"{folder}: is {_kind(mode)}, not a run folder")
    try:
        names = set(os.listdir(folder))
    except FileNotFoundError:
        return None  # renamed away (promoted over, or set aside) since it was listed
    except OSError as exc:
        raise DamagedRun(f"{folder}: cannot be read ({exc.strerror or exc})") from None
    if not names & set(RUN_FILES):
        return None
    try:
        return _read_run(folder, names)
    except Vanished:
        return None


class Vanished(Exception):
    """A file listed a moment ago is gone: its folder was renamed away while it was read."""


def _read_run(folder: Path, names: set[str]) -> SavedRun:
    metrics_path, history_path = folder / METRICS, folder / HISTORY
    if METRICS not in names:
        raise DamagedRun(f"{metrics_path}: missing")
    metrics, record = _parse_record(metrics_path)
    history: list[dict] = []
    if HISTORY in names:
        history = _parse_history(history_path)
    elif record.status is not RunStatus.FAILED:
        raise DamagedRun(f"{history_path}: missing (the run is {record.status})")
    epochs_run = record.epochs_run
    if record.status is RunStatus.COMPLETED and epochs_run is not None and len(history) != epochs_run:
        raise DamagedRun(f"{history_path}: {len(history)} epochs, but {METRICS} says epochs_run {epochs_run}")
    return SavedRun(folder, metrics, history, record)


def run_problem(folder: Path) -> str | None:
    """What is wrong with the run folder `folder` ('<path>: <what>'), or None if it is readable or absent."""
    try:
        load_run(folder)
    except DamagedRun as exc:
        return str(exc)
    return None


def damaged_runs(root: Path, names: list[str]) -> list[str]:
    """One line per damaged run folder among the runs `names` under root ('<path>: <what is wrong>')."""
    return [problem for name in names if (problem := run_problem(run_dir(root, name))) is not None]


def set_aside_damaged(root: Path, name: str) -> Path | None:
    """Move a damaged `<root>/<name>` (a run folder that cannot be read, or a file in its place) to
    `<root>/.damaged/<name>-<UTC timestamp>/`, untouched, and return where; None if nothing
    damaged is there. A symbolic link in its place raises ResultsError and is left alone;
    raises OSError if it cannot be moved."""
    if run_problem(run_dir(root, name)) is None:
        return None
    return set_aside(root, name)


def set_aside(root: Path, *parts: str) -> Path:
    """Move `<root>/<parts...>` (a run folder, a staging folder) to `<root>/.damaged/<last part>-<UTC>`
    as it is, and return where. Paths checked as inside_root checks them; OSError if it cannot be moved."""
    source = inside_root(root, *parts)
    make_folder(root, DAMAGED)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target, count = inside_root(root, DAMAGED, f"{parts[-1]}-{stamp}"), 1
    while os.path.lexists(target):
        count += 1
        target = inside_root(root, DAMAGED, f"{parts[-1]}-{stamp}-{count}")
    os.rename(source, target)
    return target


def entry_kind(path: Path) -> str | None:
    """What `path` is without following a link ('a folder', 'a file', 'a symbolic link', ...), None if absent."""
    try:
        return _kind(os.lstat(path).st_mode)
    except FileNotFoundError:
        return None


# The most bytes regexp reads from each kind of file in a results root (docs/hostile-results.md).
MAX_METRICS_BYTES = 4 * 2**20
MAX_HISTORY_BYTES = 16 * 2**20
MAX_CONFIG_BYTES = 2**20
MAX_WEIGHTS_BYTES = 4 * 2**30


def open_plain_file(path: Path, limit: int):
    """`path` opened for reading as a binary file object, if it is a plain file of at most `limit`
    bytes: never through a symbolic link, never a FIFO or a device (opened without blocking, then
    checked). Raises DamagedRun naming the file otherwise, Vanished if it is gone."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise Vanished from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise DamagedRun(f"{path}: is a symbolic link; regexp follows no links inside a results root") from None
        raise DamagedRun(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise DamagedRun(f"{path}: is {_kind(info.st_mode)}, not a plain file")
        if info.st_size > limit:
            raise DamagedRun(f"{path}: {info.st_size} bytes, more than the {limit} such a file may hold")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _read_bytes(path: Path, limit: int) -> bytes:
    try:
        with open_plain_file(path, limit) as f:
            data = f.read(limit + 1)  # a file that grows while it is read stops at the limit
    except OSError as exc:
        raise DamagedRun(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if len(data) > limit:
        raise DamagedRun(f"{path}: more than the {limit} bytes such a file may hold")
    return data


def _read_text(path: Path, limit: int) -> str:
    """The UTF-8 text of the plain file `path` (see open_plain_file); Vanished if it is gone."""
    data = _read_bytes(path, limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DamagedRun(f"{path}: not UTF-8 text (byte {exc.start})") from None


def read_plain_text(path: Path, limit: int) -> str:
    """The UTF-8 text of the plain file `path` (see open_plain_file); DamagedRun naming what is wrong."""
    try:
        return _read_text(path, limit)
    except Vanished:
        raise DamagedRun(f"{path}: missing") from None


def _parse_record(path: Path) -> tuple[dict, RunRecord]:
    """metrics.json as the dict on disk and as its RunRecord; DamagedRun naming what is wrong."""
    text = _read_text(path, MAX_METRICS_BYTES)
    if not text.strip():
        raise DamagedRun(f"{path}: is empty")
    try:
        metrics = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        if exc.pos >= len(text.rstrip()) or not text.rstrip().endswith(("}", "]")):
            raise DamagedRun(f"{path}: not valid JSON: it ends early (truncated?)") from None
        raise DamagedRun(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno} column {exc.colno})") from None
    except (ValueError, RecursionError) as exc:
        raise DamagedRun(f"{path}: {exc if isinstance(exc, ValueError) else 'nested too deeply'}") from None
    try:
        return metrics, parse_record(metrics)
    except RecordError as exc:
        raise DamagedRun(f"{path}: {exc}") from None


def _parse_metrics(path: Path) -> dict:
    return _parse_record(path)[0]


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _parse_history(path: Path) -> list[dict]:
    """history.csv as a list of {column: number}, epoch as int, empty cells left out; raises
    DamagedRun naming the row and column of the first problem."""
    text = _read_text(path, MAX_HISTORY_BYTES)
    if not text.strip():
        raise DamagedRun(f"{path}: is empty")
    try:
        lines = [cells for cells in csv.reader(io.StringIO(text, newline="")) if cells]
    except csv.Error as exc:
        raise DamagedRun(f"{path}: not CSV ({exc})") from None
    header, body = lines[0], lines[1:]
    if all(_parses_as_number(cell) for cell in header):
        raise DamagedRun(f"{path}: no header row (its first line holds numbers)")
    for column in header:
        if header.count(column) > 1:
            raise DamagedRun(f"{path}: column {column!r} appears twice")
        if column not in HISTORY_COLUMNS:
            raise DamagedRun(f"{path}: unknown column {column!r} (expected {', '.join(HISTORY_COLUMNS)})")
    for column in REQUIRED_HISTORY_COLUMNS:
        if column not in header:
            raise DamagedRun(f"{path}: column {column!r} is missing")
    if not body:
        raise DamagedRun(f"{path}: holds no epochs")
    rows = []
    for number, cells in enumerate(body, start=1):
        if len(cells) != len(header):
            raise DamagedRun(f"{path}: row {number}: {len(cells)} values, the header has {len(header)} columns")
        row = {}
        for column, cell in zip(header, cells):
            if cell == "":
                if column in REQUIRED_HISTORY_COLUMNS:
                    raise DamagedRun(f"{path}: row {number}: no value in column {column}")
                continue
            if column == "epoch":
                if not re.fullmatch(r"\d+", cell.strip()):
                    raise DamagedRun(f"{path}: row {number}: epoch {cell!r} is not a whole number")
                row[column] = int(cell)
            elif _parses_as_number(cell):
                row[column] = float(cell)
            else:
                raise DamagedRun(f"{path}: row {number}: {cell!r} is not a number (column {column})")
        if row["epoch"] != number:
            raise DamagedRun(f"{path}: row {number}: epoch {row['epoch']}, expected {number} (epochs run 1, 2, 3, ...)")
        rows.append(row)
    return rows


def _parses_as_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------- history.csv


def history_csv(rows: list[dict]) -> str:
    """Rows of per-epoch logs as CSV; penalty columns only where some penalty is non-zero."""
    present = {key for row in rows for key in row}
    columns = [c for c in HISTORY_COLUMNS if c in present]
    if not any(row.get("penalty") for row in rows):
        columns = [c for c in columns if c not in ("penalty", "val_penalty")]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (int(row[k]) if k == "epoch" else repr(float(row[k]))) for k in columns if k in row})
    return out.getvalue()


def read_history(path: Path) -> list[dict]:
    """history.csv as a list of {column: number}, epoch as int; raises DamagedRun if it cannot be read."""
    try:
        return _parse_history(Path(path))
    except Vanished:
        raise DamagedRun(f"{path}: missing") from None


# --------------------------------------------------------------------------- metrics.json


def read_metrics(folder: Path) -> dict | None:
    """A run's metrics.json, or None if it has none or it cannot be read."""
    try:
        return _parse_metrics(Path(folder) / METRICS)
    except (DamagedRun, Vanished):
        return None


def completed_hash(folder: Path) -> str | None:
    """The config hash of a completed run in `folder`, or None if it holds no completed run
    (a damaged run folder holds none, whatever its metrics.json says)."""
    try:
        run = load_run(folder)
    except DamagedRun:
        return None
    if run is not None and run.record.status is RunStatus.COMPLETED:
        return run.record.config_hash
    return None
