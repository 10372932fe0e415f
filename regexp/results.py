"""Results on disk: run folders, atomic writes, history.csv and metrics.json.

Layout under a results root:

    <root>/<run>/                 a finished run: config.yaml, history.csv, model.txt,
                                  loss.png, accuracy.png, metrics.json (written last)
    <root>/.inprogress/<run>/     a run being trained: its files so far and its checkpoint

A run trains in its staging folder and is promoted into place by renaming the whole folder,
so `<root>/<run>/` only ever holds a finished run, and a failure to write leaves the previous
results as they were. Every file is written to a temporary name and renamed into place.

This module must stay free of TensorFlow: `regexp plot` reads results with it.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import uuid
from pathlib import Path

from regexp.errors import ResultsError

STAGING = ".inprogress"
METRICS = "metrics.json"
HISTORY = "history.csv"
CONFIG = "config.yaml"
CHECKPOINT = "checkpoint"
HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "penalty", "val_penalty")


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
    if not name or name.startswith(".") or "/" in name or "\\" in name or os.path.isabs(name):
        raise ResultsError(f"run name {name!r} is not a plain folder name")
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
    if the second rename fails the old one is put back.
    """
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
    """history.csv as a list of {column: number}, epoch as int."""
    with open(path, newline="") as f:
        return [
            {k: (int(v) if k == "epoch" else float(v)) for k, v in row.items() if v not in ("", None)}
            for row in csv.DictReader(f)
        ]


# --------------------------------------------------------------------------- metrics.json


def read_metrics(folder: Path) -> dict | None:
    """A run's metrics.json, or None if it has none or it cannot be read."""
    try:
        return json.loads((folder / METRICS).read_text())
    except (OSError, ValueError):
        return None


def completed_hash(folder: Path) -> str | None:
    """The config hash of a completed run in `folder`, or None if it holds no completed run."""
    metrics = read_metrics(folder)
    if metrics and metrics.get("status") == "completed":
        return metrics.get("config_hash")
    return None


def find_runs(root: Path) -> list[Path]:
    """Run folders under `root` (the root itself if it is one), sorted by name."""
    if (root / METRICS).exists():
        return [root]
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / METRICS).exists())
