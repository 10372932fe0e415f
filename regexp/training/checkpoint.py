"""regexp's own per-epoch checkpoint: what a killed run needs to continue as if never stopped.

After every finished epoch, one file `<checkpoint>/epoch-NNNN.npz` holds every variable of the
model (weights and the dropout layers' seed-generator state, whichever dropout layer is used),
every variable of the optimizer (Adam's moments, its iteration count, its learning rate), the
number of finished epochs, and the best epoch so far (by validation accuracy) with its weights.

It is written with `results.write_bytes_atomic` (temporary name, fsync, rename); the previous
epoch's file is deleted only once the new one is in place, so a kill while writing leaves the
epoch before to resume from. Restoring reads the newest file that is whole and matches the
model, and skips (and names) any other.
"""

from __future__ import annotations

import io
import json
import logging
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from regexp import results
from regexp.tf_runtime import keras

logger = logging.getLogger(__name__)

FORMAT = 1
_FILE = re.compile(r"epoch-(\d{4,})\.npz")


@dataclass
class TrainingState:
    """Where training stands: epochs finished and the best epoch so far (1-based) with its weights."""

    epoch: int = 0
    best_epoch: int | None = None
    best_val_accuracy: float | None = None
    best_weights: list[np.ndarray] | None = None

    def consider(self, epoch: int, val_accuracy: float | None, model: keras.Model) -> None:
        """Keep `model`'s weights if epoch `epoch` has the best validation accuracy so far
        (the first of equals: a later epoch must be strictly better to replace it)."""
        if val_accuracy is None or not val_accuracy == val_accuracy:  # absent or NaN
            return
        if self.best_val_accuracy is None or val_accuracy > self.best_val_accuracy:
            self.best_epoch, self.best_val_accuracy = epoch, val_accuracy
            self.best_weights = [np.array(w) for w in model.get_weights()]


def file_name(epoch: int) -> str:
    """The checkpoint file of the state after `epoch` finished epochs."""
    return f"epoch-{epoch:04d}.npz"


def saved_epochs(folder: Path) -> list[int]:
    """Epochs with a checkpoint file in `folder`, newest first."""
    found = [int(m.group(1)) for p in folder.glob("epoch-*.npz") if (m := _FILE.fullmatch(p.name))]
    return sorted(found, reverse=True)


def _values(variables) -> list[np.ndarray]:
    return [np.array(keras.ops.convert_to_numpy(v)) for v in variables]


def _ensure_optimizer_built(model: keras.Model) -> None:
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)


def save(folder: Path, model: keras.Model, state: TrainingState) -> Path:
    """Write the checkpoint of `state.epoch` into `folder`, then delete the older ones."""
    _ensure_optimizer_built(model)
    model_values, optimizer_values = _values(model.variables), _values(model.optimizer.variables)
    best = state.best_weights or []
    meta = {
        "format": FORMAT,
        "epoch": state.epoch,
        "best_epoch": state.best_epoch,
        "best_val_accuracy": state.best_val_accuracy,
        "model_variables": [v.path for v in model.variables],
        "optimizer_variables": [v.path for v in model.optimizer.variables],
        "best_weights": len(best),
    }
    arrays = {"meta": np.frombuffer(json.dumps(meta).encode("utf-8"), np.uint8)}
    arrays.update({f"model_{i}": v for i, v in enumerate(model_values)})
    arrays.update({f"optimizer_{i}": v for i, v in enumerate(optimizer_values)})
    arrays.update({f"best_{i}": v for i, v in enumerate(best)})
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / file_name(state.epoch)
    results.write_bytes_atomic(path, buffer.getvalue())
    for epoch in saved_epochs(folder):
        if epoch < state.epoch:
            (folder / file_name(epoch)).unlink(missing_ok=True)
    return path


class UnusableCheckpoint(Exception):
    """A checkpoint file that cannot be read, or that was not written by this model."""


def _read(path: Path, model: keras.Model) -> tuple[dict, list, list, list]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            meta = json.loads(npz["meta"].tobytes().decode("utf-8"))
            model_values = [npz[f"model_{i}"] for i in range(len(meta["model_variables"]))]
            optimizer_values = [npz[f"optimizer_{i}"] for i in range(len(meta["optimizer_variables"]))]
            best = [npz[f"best_{i}"] for i in range(meta["best_weights"])]
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, EOFError) as exc:
        raise UnusableCheckpoint(f"cannot be read ({type(exc).__name__}: {exc})") from None
    if meta.get("format") != FORMAT:
        raise UnusableCheckpoint(f"format {meta.get('format')!r}, expected {FORMAT}")
    if [v.shape for v in model_values] != [tuple(v.shape) for v in model.variables]:
        raise UnusableCheckpoint("its model variables do not match this model's")
    if [tuple(v.shape) for v in optimizer_values] != [tuple(v.shape) for v in model.optimizer.variables]:
        raise UnusableCheckpoint("its optimizer variables do not match this model's")
    if best and [w.shape for w in best] != [tuple(w.shape) for w in model.weights]:
        raise UnusableCheckpoint("its best-epoch weights do not match this model's")
    return meta, model_values, optimizer_values, best


def restore(folder: Path, model: keras.Model) -> TrainingState | None:
    """Load the newest usable checkpoint in `folder` into `model` and its optimizer.

    Returns the state it holds, or None when there is none to resume from. Temporary files a
    killed writer left are deleted; a file that cannot be used is named in one logged line and skipped.
    """
    if not folder.is_dir():
        return None
    results.remove_temporary_files(folder)
    _ensure_optimizer_built(model)
    for epoch in saved_epochs(folder):
        path = folder / file_name(epoch)
        try:
            meta, model_values, optimizer_values, best = _read(path, model)
        except UnusableCheckpoint as exc:
            logger.warning(f"{path}: {exc}; left out")
            continue
        for variable, value in zip(model.variables, model_values):
            variable.assign(value)
        for variable, value in zip(model.optimizer.variables, optimizer_values):
            variable.assign(value)
        return TrainingState(meta["epoch"], meta["best_epoch"], meta["best_val_accuracy"], best or None)
    return None
