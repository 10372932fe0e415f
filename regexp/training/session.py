"""One run's training, start to end, in one call: `train_run`.

The runner hands this stage a config, the data and a staging folder, and gets back what training
produced (`TrainedRun`): the per-epoch rows (already written to history.csv as each epoch ended),
the test numbers, and the facts the run record keeps about the model and the training path.
The order of the set-up is TensorFlow's: threads before its first op, GPU memory growth before
any model, the precision policy before the model is built.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from regexp import results
from regexp.config import ExperimentConfig
from regexp.console import say_once
from regexp.data import Dataset
from regexp.training import model as model_lib
from regexp.training import reuse, speedups, tensorboard_log, train

logger = logging.getLogger(__name__)


@dataclass
class TrainedRun:
    """What training one run produced, for its record."""

    diverged_epoch: int | None
    stopped_after: int | None  # the epoch after which `should_stop` stopped training (a pruned trial)
    rows: list[dict]
    epochs_run: int
    resumed_from_epoch: int | None
    best_epoch: int | None
    best_val_accuracy: float | None
    test_loss: float | None = None
    test_accuracy: float | None = None
    best_epoch_test_loss: float | None = None
    best_epoch_test_accuracy: float | None = None
    train_seconds: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    train_size: int = 0
    param_count: int = 0
    sparsity: dict | None = None
    activations: dict | None = None
    data_counts: dict = field(default_factory=dict)
    model: dict = field(default_factory=dict)  # model_lib.model_identity
    penalties: dict = field(default_factory=dict)  # model_lib.penalty_summary, as placed on the model
    training_path: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)


class Prepared(NamedTuple):
    """A run's training set-up: the compiled model to train, its input streams, the precision
    (and why), TensorFlow's thread counts, whether the model is one compiled for an earlier run
    of the same graph (regexp/training/reuse.py), and the model as built for this run (what
    model.txt describes: no optimizer yet)."""

    model: Any
    splits: train.Splits
    precision: str
    precision_reason: str
    threads: dict
    reused: bool
    built: Any


def prepare_training(config: ExperimentConfig, data: Dataset, threads: int | None = None) -> Prepared:
    """Runtime settings, input streams and the compiled model of a run, in the order TensorFlow
    needs. The model is built from the run's seed; where this process compiled a model of the
    same graph before, that one is trained instead, given the fresh model's state."""
    thread_counts = train.configure_threads(threads, 1 if threads else None)
    train.enable_gpu_memory_growth()
    precision, precision_reason = train.choose_precision(config.training.precision)
    train.enable_determinism(config.training.seed)
    splits = _splits(data, config.training.batch_size, config.training.validation_split, config.training.seed)
    fresh = model_lib.build_model(config, data.num_classes, precision, input_shape=data.input_shape)
    per_call = train.steps_per_execution(splits.steps_per_epoch, train.MAX_STEPS_PER_EXECUTION)
    key = reuse.graph_key(config, fresh, precision, per_call)
    model, reused = reuse.compiled_model(fresh, key, config.training.learning_rate, per_call)
    return Prepared(model, splits, precision, precision_reason, thread_counts, reused, fresh)


_SPLITS_MEMO: dict[tuple, tuple[Dataset, train.Splits]] = {}  # the data held too: its id stays its own


def _splits(data: Dataset, batch_size: int, validation_split: float, seed: int) -> train.Splits:
    """`train.make_splits`, kept for the next run of the same data, batch size, split and seed (a
    study's trials): its streams are rebuilt only when one of these changes. The training stream
    starts at the epoch `train.fit` sets, so a kept one serves a new run as a new one would."""
    key = (id(data), batch_size, validation_split, seed)
    if key not in _SPLITS_MEMO:
        _SPLITS_MEMO.clear()
        _SPLITS_MEMO[key] = (data, train.make_splits(data, batch_size, validation_split, seed))
    return _SPLITS_MEMO[key][1]


def train_run(
    config: ExperimentConfig,
    data: Dataset,
    staging: Path,
    *,
    name: str,
    resumed: bool,
    verbose: int | str = "auto",
    threads: int | None = None,
    on_epoch: Callable[[int, dict], None] | None = None,
    should_stop: Callable[[int, dict], bool] | None = None,
    prepared: Prepared | None = None,
) -> TrainedRun:
    """Train `config` on `data` in `staging` (resuming from its checkpoint if `resumed`), evaluate
    it, and write the run's training files there: model.txt, history.csv after every epoch,
    TensorBoard events, the final weights; the checkpoint is removed once training has ended.

    `should_stop(epoch, logs)`, asked after each epoch (regexp tune's pruner), ends training
    there when it says so; such a run is not evaluated on the test set.
    `prepared`: what `prepare_training` returned for this run, if the caller called it already."""
    prepared = prepared or prepare_training(config, data, threads)
    try:
        return _train_prepared(config, data, staging, prepared, name, resumed, verbose, on_epoch, should_stop)
    except BaseException:
        reuse.forget()  # a step cut off mid-run is not trained again
        raise


def _train_prepared(config, data, staging, prepared: Prepared, name, resumed, verbose, on_epoch, should_stop):
    model, splits, precision, precision_reason, thread_counts, reused, built = prepared
    if precision == "float32" and config.training.precision == "auto":
        say_once(f"no native bfloat16 on this machine ({precision_reason}): training in float32")
    board = tensorboard_log.RunBoard(
        staging / tensorboard_log.FOLDER,
        name,
        tensorboard_log.hyperparameters(config, precision, model_lib.layer_inventory(model)),
    )
    results.write_text_atomic(staging / results.MODEL_SUMMARY, model_lib.model_summary(built, config))

    history_path = staging / results.HISTORY
    rows = results.read_history(history_path) if resumed and history_path.exists() else []
    stopped: list[int] = []

    def record_epoch(epoch: int, logs: dict) -> None:
        rows[:] = [row for row in rows if row["epoch"] < epoch] + [{"epoch": epoch, **logs}]
        results.write_text_atomic(history_path, results.history_csv(rows))
        board.record_epoch(epoch, logs)
        if verbose == 0:  # no Keras progress (parallel sweeps): one line per epoch instead
            shown = " ".join(
                f"{k} {logs[k]:.4f}" for k in ("loss", "accuracy", "val_loss", "val_accuracy") if k in logs
            )
            logger.info(f"{name}: epoch {epoch}/{config.training.epochs} {shown}")
        if on_epoch is not None:
            on_epoch(epoch, logs)
        # Asked here, before the epoch's checkpoint: every epoch a resumed run skips was reported.
        if should_stop is not None and should_stop(epoch, logs):
            stopped.append(epoch)
            model.stop_training = True

    logger.info(
        f"{name}: {data.description}; {splits.train_size} train / {splits.validation_size} validation / "
        f"{splits.test_size} test; {precision} ({precision_reason})"
        + ("; resuming from its checkpoint" if resumed else "")
    )
    fitted = train.fit(
        model,
        splits,
        config.training.epochs,
        checkpoint_dir=str(staging / results.CHECKPOINT),
        record_epoch=record_epoch,
        verbose=verbose,
        callbacks=[board],
    )
    # The best epoch as training tracked it for its weights (train.SaveCheckpoint), not chosen a second time.
    best = next((row for row in rows if row["epoch"] == fitted.best_epoch), None)
    trained = TrainedRun(
        diverged_epoch=fitted.diverged_epoch,
        stopped_after=stopped[-1] if stopped and not fitted.diverged_epoch else None,
        rows=rows,
        epochs_run=fitted.epochs_run,
        resumed_from_epoch=fitted.initial_epoch or None,
        best_epoch=best["epoch"] if best else None,
        best_val_accuracy=best.get("val_accuracy") if best else None,
        train_seconds=fitted.train_seconds,
        epoch_seconds=fitted.epoch_seconds,
        train_size=splits.train_size,
        param_count=int(model.count_params()),
        sparsity=model_lib.weight_sparsity(model),
        data_counts={
            "description": data.description,
            "num_classes": data.num_classes,
            "train": splits.train_size,
            "validation": splits.validation_size,
            "test": splits.test_size,
            "input_shape": list(data.input_shape),
        },
        model=model_lib.model_identity(config, model),
        penalties=model_lib.penalty_summary(config, model),
        training_path={
            "input": "tf.data (uint8 in memory, autotune off, repeating stream of index-shuffled batches, "
            + (f"{splits.prefetch} prefetched)" if splits.prefetch else "no prefetch on CPU)"),
            "steps_per_execution": int(model.steps_per_execution),
            "compiled": "reused from an earlier run of this graph in the process" if reused else "for this run",
            "precision": precision,
            "precision_reason": precision_reason,
            "threads": thread_counts,
            **speedups.describe(config.training.fast_path, _has_activity_penalty(config)),
            "layers": model_lib.layer_paths(model),
        },
        versions=train.versions(),
    )
    if not fitted.diverged_epoch and stopped:
        train.write_weights(model, staging / results.WEIGHTS)  # a pruned trial: never judged on the test set
    elif not fitted.diverged_epoch:
        trained.test_loss, trained.test_accuracy = train.evaluate(model, splits)
        trained.activations = train.activation_statistics(model, splits.test)
        train.write_weights(model, staging / results.WEIGHTS)
        if fitted.best_weights is not None:  # the weights of `best_epoch`, kept in the checkpoint until now
            model.set_weights(fitted.best_weights)
            trained.best_epoch_test_loss, trained.best_epoch_test_accuracy = train.evaluate(model, splits)
    board.close(fitted.epochs_run, trained.test_loss, trained.test_accuracy)
    shutil.rmtree(staging / results.CHECKPOINT, ignore_errors=True)
    return trained


def _has_activity_penalty(config: ExperimentConfig) -> bool:
    return any(entry.type != "none" and "activity" in entry.targets for entry in config.penalties)
