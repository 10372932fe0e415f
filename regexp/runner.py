"""One run, end to end: data -> model -> training -> evaluation -> results on disk -> curves.

`run_experiment` is what `regexp run` calls once and `regexp sweep` calls per grid point.
A run trains in its staging folder, resumes there from its last finished epoch if it was
interrupted, and is promoted into `<root>/<name>/` when it ends; metrics.json is the last
file written and the only mark of a completed run. The run is locked (regexp.locks) from the
check that it is not completed yet until its promotion, so processes sharing a results root
never train the same run at once.
"""

from __future__ import annotations

import datetime
import logging
import shutil
import statistics
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from regexp import locks, results
from regexp.config import RunSpec, config_hash, group_hash, to_yaml
from regexp.console import say_once
from regexp.data import Dataset, check_batches, load_dataset
from regexp.errors import DataError, ModelError, ResultsError

COMPLETED, DIVERGED, FAILED, SKIPPED = "completed", "diverged", "failed", "skipped"
RUNNING_ELSEWHERE = "running elsewhere"  # a sweep found the run locked by another process and left it
NOT_FAILED = (COMPLETED, SKIPPED, RUNNING_ELSEWHERE)  # what a sweep neither counts as failed nor exits 1 for
WEIGHTS = "model.weights.h5"  # a completed run's final weights (Keras's save_weights format)

logger = logging.getLogger(__name__)


@dataclass
class RunOutcome:
    """How a run ended, and its metrics if it wrote any."""

    name: str
    status: str
    folder: Path
    metrics: dict | None = None
    message: str = ""


def failed_outcome(name: str, folder: Path, message: str, metrics: dict | None = None) -> RunOutcome:
    """The outcome of a failed run, its failure logged (once, here): `<name>: failed: <message>`."""
    logger.error("%s: failed: %s", name, message)
    return RunOutcome(name, FAILED, folder, metrics, message)


def running_elsewhere(name: str, folder: Path, locked: locks.RunLocked) -> RunOutcome:
    """The outcome of a run another process is training: left to it, and said so."""
    logger.info(f"{name}: being trained by another process ({locked.holder}); left to it")
    return RunOutcome(name, RUNNING_ELSEWHERE, folder, None, f"by {locked.holder}")


def existing_completed(spec: RunSpec, root: Path, force: bool) -> bool:
    """True if `spec` is already completed under `root` with the same config (so: skip it).

    A damaged run folder (results.load_run cannot read it) holds no completed run: it is trained
    again, after `set_aside_damaged_run` has moved it aside. A completed run of a different config
    under the same name is never replaced without `force`: that raises ResultsError.
    """
    done = results.completed_hash(results.run_dir(root, spec.name))
    if done is None or force:
        return False
    if done == config_hash(spec.config):
        return True
    raise ResultsError(
        f"{root / spec.name}: holds a completed run of a different config ({spec.source}); "
        "pass --force to replace it, or choose another --results folder"
    )


def set_aside_damaged_run(root: Path, name: str) -> None:
    """Move a damaged `<root>/<name>` to `<root>/.damaged/` (nothing a user wrote is deleted) and
    say where; raises ResultsError if it cannot be moved. (The CLI has said what is wrong with it.)"""
    folder = results.run_dir(root, name)
    try:
        aside = results.set_aside_damaged(root, name)
    except OSError as exc:
        raise ResultsError(f"{folder}: damaged, and it cannot be moved aside ({exc.strerror or exc})") from None
    if aside is not None:
        logger.info(f"{name}: moved the damaged folder {folder} to {aside}; training the run again")


_DATA_MEMO: dict[str, Dataset] = {}


def load_run_data(spec: RunSpec) -> Dataset:
    """The run's dataset, loaded once per process for all runs that share a data config."""
    key = spec.config.data.model_dump_json() + str(spec.config.model.num_classes)
    if key not in _DATA_MEMO:
        _DATA_MEMO.clear()  # hold one dataset at a time: EMNIST byclass is ~700 MB
        try:
            _DATA_MEMO[key] = load_dataset(spec.config.data, spec.config.model.num_classes)
        except DataError as exc:
            raise DataError(f"{spec.source}: {exc}") from None
    training = spec.config.training
    try:
        check_batches(_DATA_MEMO[key], spec.config.data, training.batch_size, training.validation_split)
    except DataError as exc:
        raise DataError(f"{spec.source}: {exc}") from None
    return _DATA_MEMO[key]


def _prepare_staging(staging: Path, config_text: str) -> bool:
    """Make the staging folder; keep what is there (True: resume) only if it is this config's."""
    previous = staging / results.CONFIG
    if previous.exists() and previous.read_text() == config_text and (staging / results.CHECKPOINT).exists():
        results.remove_temporary_files(staging)  # left by a process killed in the middle of a write
        return True
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    results.write_text_atomic(previous, config_text)
    return False


def _median_rate(samples: int, seconds: list[float]) -> float | None:
    steady = seconds[1:] or seconds  # the first epoch includes tracing and graph building
    return samples / statistics.median(steady) if steady else None


def run_experiment(
    spec: RunSpec,
    root: Path,
    *,
    force: bool = False,
    verbose: int | str = "auto",
    threads: int | None = None,
) -> RunOutcome:
    """Run one experiment into `root`; user errors raise RegexpError before anything is written.

    A run that another process is training raises locks.RunLocked (a RegexpError) and is left
    alone; one that another process completed meanwhile is skipped.
    """
    if existing_completed(spec, root, force):
        return skipped_outcome(spec, root)
    data = load_run_data(spec)
    prepared = prepare_run(spec, data, threads)
    results.ensure_writable_root(root)
    with locks.RunLock(root, spec.name):
        if existing_completed(spec, root, force):  # completed by another process since the check above
            return skipped_outcome(spec, root)
        set_aside_damaged_run(root, spec.name)
        return _run_locked(spec, root, data, verbose, threads, prepared)


def prepare_run(spec: RunSpec, data: Dataset, threads: int | None):
    """`prepare_training` before anything is written, so that a model builder that does not build
    a fitting model, or penalties its layers cannot take, are one line naming the config (ModelError).
    None where it crashed otherwise: `_train_and_record` tries again and records the failed run."""
    try:
        return prepare_training(spec.config, data, threads)
    except ModelError as exc:
        raise ModelError(f"{spec.source}: {exc}") from None
    except Exception:  # noqa: BLE001 - recorded as the run's failure by _train_and_record
        return None


def skipped_outcome(spec: RunSpec, root: Path) -> RunOutcome:
    """The outcome of a run already completed with this config under `root`, said so."""
    final = results.run_dir(root, spec.name)
    logger.info(f"{spec.name}: already completed with this config in {final} (--force to run it again)")
    return RunOutcome(spec.name, SKIPPED, final, results.read_metrics(final))


def _run_locked(spec: RunSpec, root: Path, data: Dataset, verbose, threads, prepared=None) -> RunOutcome:
    """Stage, train, record and promote one run; its lock is held by the caller."""
    final = results.run_dir(root, spec.name)
    staging = results.staging_dir(root, spec.name)
    config = spec.config
    try:
        resumed = _prepare_staging(staging, to_yaml(config))
    except OSError as exc:
        raise ResultsError(f"{staging}: cannot write ({exc.strerror or exc})") from None
    started = time.perf_counter()
    try:
        metrics = _train_and_record(spec, data, staging, resumed, verbose, threads, prepared)
    except KeyboardInterrupt:
        raise
    except OSError as exc:
        return failed_outcome(spec.name, final, f"could not write results in {staging}: {exc.strerror or exc}")
    except Exception as exc:  # a run that crashes is recorded as failed; a sweep goes on
        message = f"{type(exc).__name__}: {exc}"
        metrics = _failure_metrics(spec, message, traceback.format_exc(), time.perf_counter() - started)
        if results.completed_hash(final) is None:  # else keep the completed run
            try:
                results.write_json_atomic(staging / results.METRICS, metrics)
                results.promote(staging, final)
            except OSError:
                pass
        return failed_outcome(spec.name, final, message, metrics)
    try:
        results.promote(staging, final)
    except OSError as exc:
        return failed_outcome(spec.name, final, f"could not move {staging} into {final}: {exc.strerror or exc}")
    if metrics["status"] == COMPLETED:
        logger.info(f"Test loss: {metrics['test_loss']:.4f} / Test accuracy: {metrics['test_accuracy']:.4f}")
    else:
        logger.info(f"{spec.name}: diverged (non-finite loss) in epoch {metrics['diverged_epoch']}")
    return RunOutcome(spec.name, metrics["status"], final, metrics)


def _base_metrics(spec: RunSpec) -> dict:
    config = spec.config
    return {
        "run": spec.name,
        "group": spec.group,
        "config_hash": config_hash(config),
        "group_hash": group_hash(config),
        "seed": config.training.seed,
        "regularizer": [entry.model_dump(by_alias=True, mode="json") for entry in config.penalties],
    }


def _failure_metrics(spec: RunSpec, message: str, trace: str, seconds: float) -> dict:
    return {
        **_base_metrics(spec),
        "status": FAILED,
        "error": message,
        "traceback": trace,
        "wall_time_s": round(seconds, 3),
        "finished_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def prepare_training(config, data: Dataset, threads: int | None = None):
    """Runtime settings, input streams and the compiled model of a run, in the order TensorFlow
    needs (threads before its first op, GPU memory growth before any model):
    returns (model, splits, precision, precision_reason, thread_counts)."""
    from regexp import model as model_lib
    from regexp import train

    thread_counts = train.configure_threads(threads, 1 if threads else None)
    train.enable_gpu_memory_growth()
    precision, precision_reason = train.choose_precision(config.training.precision)
    train.enable_determinism(config.training.seed)
    splits = train.make_splits(data, config.training.batch_size, config.training.validation_split, config.training.seed)
    model = model_lib.build_model(config, data.num_classes, precision, input_shape=data.input_shape)
    per_call = train.steps_per_execution(splits.steps_per_epoch, train.MAX_STEPS_PER_EXECUTION)
    model_lib.compile_model(model, config.training.learning_rate, per_call)
    return model, splits, precision, precision_reason, thread_counts


def _train_and_record(spec, data, staging, resumed, verbose, threads, prepared=None) -> dict:
    # TensorFlow is imported here, not at module level: the CLI must start without it.
    from regexp import model as model_lib
    from regexp import plots, provenance, speedups, tensorboard_log, train

    config = spec.config
    started = time.perf_counter()
    model, splits, precision, precision_reason, thread_counts = prepared or prepare_training(config, data, threads)
    if precision == "float32" and config.training.precision == "auto":
        say_once(f"no native bfloat16 on this machine ({precision_reason}): training in float32")
    board = tensorboard_log.RunBoard(
        staging / tensorboard_log.FOLDER,
        spec.name,
        tensorboard_log.hyperparameters(config, precision, model_lib.layer_inventory(model)),
    )
    results.write_text_atomic(staging / "model.txt", model_lib.model_summary(model, config))

    history_path = staging / results.HISTORY
    rows = results.read_history(history_path) if resumed and history_path.exists() else []

    def record_epoch(epoch: int, logs: dict) -> None:
        rows[:] = [row for row in rows if row["epoch"] < epoch] + [{"epoch": epoch, **logs}]
        results.write_text_atomic(history_path, results.history_csv(rows))
        board.record_epoch(epoch, logs)
        if verbose == 0:  # no Keras progress (parallel sweeps): one line per epoch instead
            shown = " ".join(
                f"{k} {logs[k]:.4f}" for k in ("loss", "accuracy", "val_loss", "val_accuracy") if k in logs
            )
            logger.info(f"{spec.name}: epoch {epoch}/{config.training.epochs} {shown}")

    logger.info(
        f"{spec.name}: {data.description}; {splits.train_size} train / {splits.validation_size} validation / "
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
    status = DIVERGED if fitted.diverged_epoch else COMPLETED
    # The best epoch as training tracked it for its weights (train.SaveCheckpoint), not chosen a second time.
    best = next((row for row in rows if row["epoch"] == fitted.best_epoch), None)
    test_loss = test_accuracy = best_test_loss = best_test_accuracy = activations = None
    sparsity = model_lib.weight_sparsity(model)
    if status == COMPLETED:
        test_loss, test_accuracy = train.evaluate(model, splits)
        activations = train.activation_statistics(model, splits.test)
        train.write_weights(model, staging / WEIGHTS)
        if fitted.best_weights is not None:  # the weights of `best_epoch`, kept in the checkpoint until now
            model.set_weights(fitted.best_weights)
            best_test_loss, best_test_accuracy = train.evaluate(model, splits)
    board.close(fitted.epochs_run, test_loss, test_accuracy)
    shutil.rmtree(staging / results.CHECKPOINT, ignore_errors=True)
    plots.plot_run(staging, rows, spec.name)
    metrics = {
        **_base_metrics(spec),
        "status": status,
        "test_loss": test_loss,
        "test_accuracy": test_accuracy,
        "epochs_run": fitted.epochs_run,
        "epochs_planned": config.training.epochs,
        "diverged_epoch": fitted.diverged_epoch,
        "resumed_from_epoch": fitted.initial_epoch or None,
        "best_val_accuracy": best.get("val_accuracy") if best else None,
        "best_epoch": best["epoch"] if best else None,
        "best_epoch_test_loss": best_test_loss,
        "best_epoch_test_accuracy": best_test_accuracy,
        "wall_time_s": round(time.perf_counter() - started, 3),
        "train_samples_per_s": _median_rate(splits.train_size, fitted.train_seconds),
        "param_count": int(model.count_params()),
        "sparsity": sparsity,
        "activations": activations,
        "model": model_identity(config, model),
        "penalties": model_lib.penalty_summary(config, model),
        "activity_penalty": model_lib.activity_semantics(),
        "data": {
            "description": data.description,
            "num_classes": data.num_classes,
            "input_shape": list(data.input_shape),
            "train": splits.train_size,
            "validation": splits.validation_size,
            "test": splits.test_size,
        },
        "training_path": {
            "input": "tf.data (uint8 in memory, autotune off, repeating stream of index-shuffled batches, "
            + (f"{splits.prefetch} prefetched)" if splits.prefetch else "no prefetch on CPU)"),
            "steps_per_execution": int(model.steps_per_execution),
            "precision": precision,
            "precision_reason": precision_reason,
            "threads": thread_counts,
            **speedups.describe(config.training.fast_path, _has_activity_penalty(config)),
            "layers": model_lib.layer_paths(model),
        },
        "versions": {"regexp": provenance.regexp_version(), **train.versions()},
        **provenance.collect(config.data),
        "finished_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    metrics = _finite(metrics)
    results.write_json_atomic(staging / results.METRICS, metrics)
    return metrics


def model_identity(config, model) -> dict:
    """metrics.json's `model`: the builder, its source file and SHA-256 (None for the reference
    CNN, part of regexp), the arguments it was called with, and the layers that carry a kernel."""
    from regexp import model as model_lib

    file = config.model.builder_file
    return {
        "builder": model_lib.builder_name(config),
        "source": str(file) if file else None,
        "sha256": config.model.builder_sha256,
        "params": config.model.builder_params(),
        "layers": model_lib.layer_inventory(model),
    }


def _has_activity_penalty(config) -> bool:
    return any(entry.type != "none" and "activity" in entry.targets for entry in config.penalties)


def _finite(value):
    """NaN and infinity become null: metrics.json stays strict JSON."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
