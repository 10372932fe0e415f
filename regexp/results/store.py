"""Results on disk: run folders, atomic writes, history.csv and metrics.json.

Layout under a results root:

    <root>/<run>/                 a finished run: config.yaml, history.csv, model.txt,
                                  model.weights.h5, loss.png, accuracy.png, tensorboard/,
                                  metrics.json (written last)
    <root>/.inprogress/<run>/     a run being trained: its files so far and its checkpoint
    <root>/.damaged/<run>-<UTC>/  a damaged run folder, moved aside before its run is trained again
    <root>/.locks/<run>.lock      the lock of a run being trained (regexp.results.locks)

A run trains in its staging folder and is promoted into place by renaming the whole folder,
so `<root>/<run>/` only ever holds a finished run, and a failure to write leaves the previous
results as they were. Every file is written to a temporary name and renamed into place.

Reading is strict: `scan_runs` and `load_run` check every field regexp reads, and a run folder
that fails a check is named in one line ('<file>: <what is wrong>') and left out, never a traceback.

This module must stay free of TensorFlow: `regexp plot` reads results with it.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from regexp.config import penalty_problem, run_name_problem
from regexp.errors import ResultsError

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
STATUSES = ("completed", "diverged", "failed")


def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")


def remove_temporary_files(folder: Path) -> None:
    """Delete the temporary files a killed writer left in `folder`."""
    for temp in folder.glob(".*.tmp"):
        temp.unlink(missing_ok=True)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file, fsync and rename: never half a file."""
    temp = _temp_name(path)
    try:
        with open(temp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path, data: dict) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False, allow_nan=False) + "\n")


# --------------------------------------------------------------------------- folders


def run_dir(root: Path, name: str) -> Path:
    """The final folder of run `name`, refused if the name would leave the results root."""
    return _confined(root, name)


def staging_dir(root: Path, name: str) -> Path:
    """The folder run `name` trains in before it is promoted."""
    return _confined(root / STAGING, name)


def _confined(parent: Path, name: str) -> Path:
    problem = run_name_problem(name)  # the rule config validation applied already; here for names from elsewhere
    if problem:
        raise ResultsError(f"run name {name!r} {problem}")
    path = parent / name
    if path.resolve().parent != parent.resolve():
        raise ResultsError(f"run name {name!r} leaves the results root {parent}")
    return path


def ensure_writable_root(root: Path) -> None:
    """Create the results root if needed, and prove it can be written, or raise ResultsError."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = _temp_name(root / "write-probe")
        probe.write_bytes(b"")
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
    """A run folder as read from disk, every field regexp reads checked."""

    folder: Path
    metrics: dict
    history: list[dict]  # rows of history.csv; [] where the run has none (failed before training)


class DamagedRun(Exception):
    """A run folder that cannot be read; the message is one line: '<path>: <what is wrong>'."""


def scan_runs(root: Path) -> tuple[list[SavedRun], list[str]]:
    """Every readable run under root (root itself if it is a run folder), sorted by name, and one line
    per damaged run folder ('<path>: <what is wrong>'), which is left out.

    A run folder is a folder directly under root that holds any of a run's files (RUN_FILES), or
    a folder that cannot be listed. A file under root whose name has no ordinary extension
    (letters only, as summary.csv or a figure has) stands where a run folder should be: damaged.
    Hidden entries (.inprogress, .damaged, ...) are not runs.
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
        candidates = [root]
    else:
        candidates = [root / name for name in names if not name.startswith(".")]
        candidates = [p for p in candidates if p.is_dir() or not _ordinary_file_name(p.name)]
    runs, damaged = [], []
    for folder in candidates:
        try:
            run = load_run(folder)
        except DamagedRun as exc:
            damaged.append(str(exc))
            continue
        if run is not None:
            runs.append(run)
    return runs, damaged


def _ordinary_file_name(name: str) -> bool:
    return re.fullmatch(r"\.[A-Za-z]{1,5}", Path(name).suffix) is not None


def is_run_folder(path: Path) -> bool:
    """Whether `path` is a folder holding any of a run's files."""
    try:
        return path.is_dir() and bool(set(os.listdir(path)) & set(RUN_FILES))
    except OSError:
        return False


def load_run(folder: Path) -> SavedRun | None:
    """The run saved in `folder`, every field regexp reads checked; None where there is no run
    (no such path, or a folder holding none of a run's files). Raises DamagedRun, with one line
    naming the file and what is wrong, for anything else that cannot be read.

    A completed or diverged run must have a valid history.csv; a failed run may have none.
    """
    folder = Path(folder)
    if not os.path.lexists(folder):
        return None
    if not folder.is_dir():
        raise DamagedRun(f"{folder}: " + ("is a file, not a run folder" if folder.is_file() else "is not a folder"))
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
    except _Vanished:
        return None


class _Vanished(Exception):
    """A file listed a moment ago is gone: its folder was renamed away while it was read."""


def _read_run(folder: Path, names: set[str]) -> SavedRun:
    metrics_path, history_path = folder / METRICS, folder / HISTORY
    if METRICS not in names:
        raise DamagedRun(f"{metrics_path}: missing")
    metrics = _parse_metrics(metrics_path)
    history: list[dict] = []
    if HISTORY in names:
        history = _parse_history(history_path)
    elif metrics["status"] != "failed":
        raise DamagedRun(f"{history_path}: missing (the run is {metrics['status']})")
    epochs_run = metrics.get("epochs_run")
    if metrics["status"] == "completed" and epochs_run is not None and len(history) != epochs_run:
        raise DamagedRun(f"{history_path}: {len(history)} epochs, but {METRICS} says epochs_run {epochs_run}")
    return SavedRun(folder, metrics, history)


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
    damaged is there. Raises OSError if it cannot be moved."""
    folder = run_dir(root, name)
    if run_problem(folder) is None:
        return None
    aside = Path(root) / DAMAGED
    aside.mkdir(exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target, count = aside / f"{name}-{stamp}", 1
    while os.path.lexists(target):
        count += 1
        target = aside / f"{name}-{stamp}-{count}"
    os.rename(folder, target)
    return target


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        if not os.path.lexists(path):
            raise _Vanished from None
        raise DamagedRun(f"{path}: cannot be read (a link to nothing)") from None
    except IsADirectoryError:
        raise DamagedRun(f"{path}: is a folder, not a file") from None
    except OSError as exc:
        raise DamagedRun(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DamagedRun(f"{path}: not UTF-8 text (byte {exc.start})") from None


def _show(value) -> str:
    text = repr(value) if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


# The fields of metrics.json that regexp reads, and what each must be (None is allowed unless required).
_METRICS_FIELDS = {
    "run": (lambda v: isinstance(v, str) and v != "", "a run name"),
    "group": (lambda v: isinstance(v, str), "text"),
    "group_hash": (lambda v: isinstance(v, str), "text"),
    "config_hash": (lambda v: isinstance(v, str), "text"),
    "error": (lambda v: isinstance(v, str), "text"),
    "seed": (_is_int, "a whole number"),
    "epochs_run": (lambda v: _is_int(v) and v >= 0, "a whole number"),
    "epochs_planned": (_is_int, "a whole number"),
    "best_epoch": (_is_int, "a whole number"),
    "diverged_epoch": (_is_int, "a whole number"),
    "test_accuracy": (_is_number, "a number"),
    "test_loss": (_is_number, "a number"),
    "best_val_accuracy": (_is_number, "a number"),
    "wall_time_s": (_is_number, "a number"),
    "sparsity": (
        lambda v: isinstance(v, dict) and (not v or _is_number(v.get("overall"))),
        "an object with a number 'overall'",
    ),
    "regularizer": (lambda v: isinstance(v, list), "a list"),
    "data": (
        lambda v: isinstance(v, dict) and isinstance(v.get("description", ""), str),
        "an object with a text 'description'",
    ),
}
_REQUIRED_WHEN_COMPLETED = ("test_accuracy", "test_loss")


def _parse_metrics(path: Path) -> dict:
    text = _read_text(path)
    if not text.strip():
        raise DamagedRun(f"{path}: is empty")
    try:
        metrics = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        if exc.pos >= len(text.rstrip()) or not text.rstrip().endswith(("}", "]")):
            raise DamagedRun(f"{path}: not valid JSON: it ends early (truncated?)") from None
        raise DamagedRun(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno} column {exc.colno})") from None
    except ValueError as exc:
        raise DamagedRun(f"{path}: {exc}") from None
    if not isinstance(metrics, dict):
        raise DamagedRun(f"{path}: holds a JSON {type(metrics).__name__}, not an object")
    for field in ("run", "status"):
        if metrics.get(field) is None:
            raise DamagedRun(f"{path}: {field}: missing")
    if metrics["status"] not in STATUSES:
        raise DamagedRun(f"{path}: status: {_show(metrics['status'])} is not one of {', '.join(STATUSES)}")
    if metrics["status"] == "completed":
        for field in _REQUIRED_WHEN_COMPLETED:
            if metrics.get(field) is None:
                raise DamagedRun(f"{path}: {field}: missing (the run is completed)")
    for field, (valid, expected) in _METRICS_FIELDS.items():
        value = metrics.get(field)
        if value is not None and not valid(value):
            raise DamagedRun(f"{path}: {field}: {_show(value)} is not {expected}")
    for index, entry in enumerate(metrics.get("regularizer") or []):
        problem = penalty_problem(entry)  # the config's own rules, on the entry as it was resolved
        if problem:
            field, _, what = problem.partition(": ")
            where = f"regularizer[{index}]" + ("" if field == "(top level)" else f".{field}")
            raise DamagedRun(f"{path}: {where}: {what}")
    return metrics


def _parse_history(path: Path) -> list[dict]:
    """history.csv as a list of {column: number}, epoch as int, empty cells left out; raises
    DamagedRun naming the row and column of the first problem."""
    text = _read_text(path)
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
    except _Vanished:
        raise DamagedRun(f"{path}: missing") from None


# --------------------------------------------------------------------------- metrics.json


def read_metrics(folder: Path) -> dict | None:
    """A run's metrics.json, or None if it has none or it cannot be read."""
    try:
        return json.loads((folder / METRICS).read_text())
    except (OSError, ValueError):
        return None


def completed_hash(folder: Path) -> str | None:
    """The config hash of a completed run in `folder`, or None if it holds no completed run
    (a damaged run folder holds none, whatever its metrics.json says)."""
    try:
        run = load_run(folder)
    except DamagedRun:
        return None
    if run is not None and run.metrics["status"] == "completed":
        return run.metrics.get("config_hash")
    return None
