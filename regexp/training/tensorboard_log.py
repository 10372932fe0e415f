"""TensorBoard event files for a run, in `<run>/tensorboard/`.

    tensorboard/train/        per epoch: loss, accuracy, penalty (history.csv's numbers, step =
                              epoch); a histogram of every trainable weight after the first
                              epoch, then as often as their cost allows (HISTOGRAM_TIME_SHARE)
    tensorboard/validation/   per epoch: the same scalars on the validation data
    tensorboard/              at the end: the run's hyper-parameters (HParams plugin) and the
                              test loss and accuracy

Written with TensorBoard's own summary APIs (tf.summary, tensorboard.plugins.hparams). Each
epoch's events are flushed when the epoch is recorded, so the files never hold half an epoch;
`RunBoard.close` runs before the run folder is promoted.

A resumed run continues the same folders without duplicate steps, whatever wrote them before:
when training starts at epoch k (Keras tells it in `on_epoch_begin`), every event with a step
after k is removed from the existing files, and the end-of-run files are removed (they are
written again at the end). Removing them from the files, rather than relying on TensorBoard's
purge of orphaned data (SessionLog.START), keeps the files right for every reader.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

# isort: off
from regexp.tf_runtime import keras, tf  # first: TensorBoard's modules import TensorFlow, which must come through it
# isort: on

from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
from tensorboard.compat.proto import event_pb2
from tensorboard.plugins.histogram.summary_v2 import histogram_pb
from tensorboard.plugins.hparams import api as hp
from tensorboard.summary.writer.record_writer import RecordWriter

from regexp import results
from regexp.results import flatten

FOLDER = "tensorboard"
TRAIN, VALIDATION = "train", "validation"
SCALARS = ("loss", "accuracy", "penalty")  # history.csv's columns; val_<name> go to validation/
TEST_LOSS, TEST_ACCURACY = "test_loss", "test_accuracy"
# Weight histograms are written after the first epoch of each fit, then after any epoch where
# the time spent on them stays within this share of the training time so far (every epoch of
# an EMNIST-sized run; fewer on tiny data). Their cost: benchmarks/README.md.
HISTOGRAM_TIME_SHARE = 0.03


def event_files(folder: Path) -> list[Path]:
    """The TensorBoard event files directly in `folder`, oldest first."""
    return sorted(p for p in folder.glob("*tfevents*") if p.is_file() and not p.name.startswith("."))


def drop_steps_after(folder: Path, last_step: int) -> None:
    """Keep only events with step <= `last_step` in the event files under `folder`'s subfolders,
    and remove the event files directly in `folder` (the end-of-run summaries).

    A file is rewritten atomically, and only if it loses an event; a record cut short by a
    kill ends the file's readable part and is dropped with it.
    """
    if not folder.is_dir():
        return
    for path in event_files(folder):
        path.unlink()
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        results.remove_temporary_files(sub)
        for path in event_files(sub):
            records = list(RawEventFileLoader(str(path)).Load())
            kept = [record for record in records if event_pb2.Event.FromString(record).step <= last_step]
            if len(kept) == len(records) and _whole(path, records):
                continue
            results.write_bytes_atomic(path, _encode(kept))


class _Buffer:
    def __init__(self):
        self.chunks: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.chunks.append(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def _encode(records: list[bytes]) -> bytes:
    buffer = _Buffer()
    writer = RecordWriter(buffer)
    for record in records:
        writer.write(record)
    return b"".join(buffer.chunks)


def _whole(path: Path, records: list[bytes]) -> bool:
    """True if `records` are all of the file (no cut-short record after them)."""
    return path.stat().st_size == len(_encode(records))


def hyperparameters(config, precision: str, layers: dict[str, str] | None = None) -> dict:
    """The run's hyper-parameters as HParams values (str, int, float, bool): the regularizer as
    written (`regularizer.type`, or `regularizer.0.type` ... for a list), for a list also where
    each layer's penalties sit (`placement.conv1`: "kernel l2 0.01, activity l1 0.001"), and the
    training settings, with the precision actually used. `layers`: the model's {name: kind}
    (default: the reference CNN's)."""
    from regexp.config import REFERENCE_LAYERS, resolved_dict
    from regexp.training.model import describe_penalty, layer_penalties

    resolved = resolved_dict(config)
    values = flatten({"regularizer": resolved["regularizer"]})
    if isinstance(config.regularizer, list):
        for layer, targets in layer_penalties(config, layers or REFERENCE_LAYERS).items():
            values[f"placement.{layer}"] = (
                ", ".join(
                    f"{target} "
                    + " ".join(f"{k} {v}" if k != "type" else str(v) for k, v in describe_penalty(entry).items())
                    for target, entry in targets.items()
                )
                or "none"
            )
    training = resolved["training"]
    values.update(
        {
            "training.seed": training["seed"],
            "training.epochs": training["epochs"],
            "training.batch_size": training["batch_size"],
            "training.learning_rate": training["learning_rate"],
            "training.precision": precision,
            "data.dataset": resolved["data"]["dataset"],
        }
    )
    return {key: value for key, value in values.items() if value is not None and value != ""}


class RunBoard(keras.callbacks.Callback):
    """Writes a run's TensorBoard files: pass it to `fit` as a callback, call `record_epoch`
    with each finished epoch's logs (before the checkpoint is saved), and `close` at the end."""

    def __init__(self, folder: Path, run_name: str, hparams: dict, histogram_share: float = HISTOGRAM_TIME_SHARE):
        super().__init__()
        self.folder = Path(folder)
        self.run_name = run_name
        self.hparams = hparams
        self.histogram_share = histogram_share
        self.histogram_epochs: list[int] = []  # the epochs whose histograms this fit wrote
        self.histogram_seconds = 0.0
        self._started = 0.0
        self._writers: dict[str, tf.summary.SummaryWriter] = {}

    def on_epoch_begin(self, epoch, logs=None):
        self._open(first_epoch=epoch)

    def _open(self, first_epoch: int) -> None:
        if self._writers:
            return
        drop_steps_after(self.folder, first_epoch)
        self._started = time.perf_counter()
        for name in (TRAIN, VALIDATION):
            (self.folder / name).mkdir(parents=True, exist_ok=True)
            self._writers[name] = tf.summary.create_file_writer(str(self.folder / name))

    def record_epoch(self, epoch: int, logs: dict) -> None:
        """Write epoch `epoch`'s (1-based) scalars, and its weight histograms when due; flush."""
        self._open(first_epoch=epoch - 1)
        with self._writers[TRAIN].as_default(step=epoch):
            for name in SCALARS:
                if name in logs:
                    tf.summary.scalar(name, logs[name])
            if self._histograms_due():
                self._write_histograms(epoch)
        with self._writers[VALIDATION].as_default(step=epoch):
            for name in SCALARS:
                if f"val_{name}" in logs:
                    tf.summary.scalar(name, logs[f"val_{name}"])
        for writer in self._writers.values():
            writer.flush()

    def _histograms_due(self) -> bool:
        if not self.histogram_epochs:
            return True
        expected = self.histogram_seconds / len(self.histogram_epochs)
        spent = time.perf_counter() - self._started - self.histogram_seconds
        return self.histogram_seconds + expected <= self.histogram_share * spent

    def _write_histograms(self, epoch: int) -> None:
        started = time.perf_counter()
        for weight in self.model.trainable_weights:
            values = weight.numpy()
            if np.isfinite(values).all():  # a diverged run's NaN weights have no histogram
                tf.summary.experimental.write_raw_pb(histogram_pb(weight.path, values).SerializeToString(), step=epoch)
        self.histogram_seconds += time.perf_counter() - started
        self.histogram_epochs.append(epoch)

    def close(self, epochs_run: int, test_loss: float | None, test_accuracy: float | None) -> None:
        """Write the hyper-parameters and the test metrics (where there are some), and close every file."""
        self._open(first_epoch=epochs_run)  # a resumed run with no epoch left to train still cleans up
        session = tf.summary.create_file_writer(str(self.folder))
        with session.as_default(step=epochs_run):
            hp.hparams(self.hparams, trial_id=self.run_name)
            if test_loss is not None:
                tf.summary.scalar(TEST_LOSS, test_loss)
            if test_accuracy is not None:
                tf.summary.scalar(TEST_ACCURACY, test_accuracy)
        for writer in (*self._writers.values(), session):
            writer.close()
        self._writers.clear()
