"""One run, end to end: data -> model -> training -> evaluation -> results on disk -> curves.

`run_experiment` is what `regexp run` calls once and `regexp sweep` calls per grid point.
A run trains in its staging folder, resumes there from its last finished epoch if it was
interrupted, and is promoted into `<root>/<name>/` when it ends; metrics.json is the last
file written and the only mark of a completed run. The run is locked (regexp.results.locks) from the
check that it is not completed yet until its promotion, so processes sharing a results root
never train the same run at once.
"""

from __future__ import annotations

import datetime
import logging
import os
import shutil
import statistics
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from regexp import results
from regexp.config import RunSpec, config_hash, group_hash, to_yaml
from regexp.data import Dataset, check_batches, load_dataset
from regexp.errors import DataError, ModelError, ResultsError
from regexp.results.record import (
    MAX_ERROR_LENGTH,
    MAX_TRACEBACK_LENGTH,
    RecordError,
    RunRecord,
    RunStatus,
    parse_record,
)

# How a run ended as its record says (RunStatus), and what else a sweep can report about one.
COMPLETED, DIVERGED, FAILED = RunStatus.COMPLETED, RunStatus.DIVERGED, RunStatus.FAILED
PRUNED = RunStatus.PRUNED  # a tuning trial its pruner stopped early: neither completed nor failed
SKIPPED = "skipped"
RUNNING_ELSEWHERE = "running elsewhere"  # a sweep found the run locked by another process and left it
NOT_FAILED = (COMPLETED, SKIPPED, RUNNING_ELSEWHERE, PRUNED)  # what a sweep neither counts as failed nor exits 1 for

logger = logging.getLogger(__name__)


@dataclass
class RunOutcome:
    """How a run ended, and its metrics if it wrote any (`record`: the same, read as a RunRecord)."""

    name: str
    status: str
    folder: Path
    metrics: dict | None = None
    message: str = ""

    @property
    def record(self) -> RunRecord | None:
        """The run's metrics as a RunRecord; None where it wrote none, or none a reader can use."""
        if self.metrics is None:
            return None
        try:
            return parse_record(self.metrics)
        except RecordError:
            return None


def failed_outcome(name: str, folder: Path, message: str, metrics: dict | None = None) -> RunOutcome:
    """The outcome of a failed run, its failure logged (once, here): `<name>: failed: <message>`."""
    logger.error("%s: failed: %s", name, message)
    return RunOutcome(name, FAILED, folder, metrics, message)


def running_elsewhere(name: str, folder: Path, locked: results.RunLocked) -> RunOutcome:
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


def _prepare_staging(root: Path, name: str, config_text: str) -> bool:
    """Make the run's staging folder; keep what is there (True: resume) only if it is this config's
    and its checkpoint agrees with its history.csv. A staging folder that does not agree with
    itself is moved to `.damaged/` (said in one line) and the run starts over."""
    staging = results.staging_dir(root, name)
    if os.path.lexists(staging):
        problem = _staging_problem(staging, config_text)
        if problem is None:
            results.remove_temporary_files(staging)  # left by a process killed in the middle of a write
            return True
        if problem is _OTHER_CONFIG:
            shutil.rmtree(staging)  # a real folder (_staging_problem said so) of another config's run
        else:
            aside = results.set_aside(root, results.STAGING, name)
            logger.info(f"{name}: {problem}; moved it to {aside}, the run starts over")
    results.make_folder(root, results.STAGING, name)
    results.write_text_atomic(staging / results.CONFIG, config_text)
    return False


_OTHER_CONFIG = "it holds another config's run"


def _staging_problem(staging: Path, config_text: str) -> str | None:
    """Why the staging folder `staging` cannot be resumed, or None if it can: `_OTHER_CONFIG`
    when it is a sound staging folder of another config (or of none yet), else what is wrong."""
    from regexp.training.checkpoint import saved_epochs

    if results.entry_kind(staging) != "a folder":
        return f"{staging} is {results.entry_kind(staging)}, not a staging folder"
    for folder, subfolders, files in os.walk(staging):  # links are listed, never followed
        for entry in sorted(subfolders + files):
            kind = results.entry_kind(Path(folder) / entry)
            if kind not in (None, "a file", "a folder"):
                return f"{Path(folder) / entry} is {kind}"
    checkpoint = staging / results.CHECKPOINT
    if results.entry_kind(checkpoint) not in (None, "a folder"):
        return f"{checkpoint} is {results.entry_kind(checkpoint)}, not a folder"
    try:
        previous = results.read_plain_text(staging / results.CONFIG, results.MAX_CONFIG_BYTES)
    except results.DamagedRun:
        previous = None
    epochs = saved_epochs(checkpoint) if results.entry_kind(checkpoint) else []
    if previous != config_text or not epochs:
        return _OTHER_CONFIG
    history = staging / results.HISTORY
    try:
        rows = results.read_history(history)
    except results.DamagedRun as exc:
        return f"its checkpoint is at epoch {epochs[0]} but {exc}"
    if len(rows) < epochs[0]:
        return f"its checkpoint is at epoch {epochs[0]} but {history} holds {len(rows)} epochs"
    return None


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
    should_prune: Callable[[int, dict], bool] | None = None,
) -> RunOutcome:
    """Run one experiment into `root`; user errors raise RegexpError before anything is written.

    A run that another process is training raises results.RunLocked (a RegexpError) and is left
    alone; one that another process completed meanwhile is skipped. `should_prune(epoch, logs)`,
    asked after each epoch (regexp tune's pruner), stops the run when it says so: status PRUNED.
    """
    if existing_completed(spec, root, force):
        return skipped_outcome(spec, root)
    data = load_run_data(spec)
    prepared = prepare_run(spec, data, threads)
    results.ensure_writable_root(root)
    with results.RunLock(root, spec.name):
        if existing_completed(spec, root, force):  # completed by another process since the check above
            return skipped_outcome(spec, root)
        set_aside_damaged_run(root, spec.name)
        return _run_locked(spec, root, data, verbose, threads, prepared, should_prune)


def prepare_run(spec: RunSpec, data: Dataset, threads: int | None):
    """The training stage's set-up (`session.prepare_training`: runtime settings, input streams and
    the compiled model) before anything is written, so that a model builder that does not build a
    fitting model, or penalties its layers cannot take, are one line naming the config (ModelError).
    None where it crashed otherwise: `train_run` tries again and the run is recorded as failed."""
    from regexp.training.session import prepare_training

    try:
        return prepare_training(spec.config, data, threads)
    except ModelError as exc:
        raise ModelError(f"{spec.source}: {exc}") from None
    except Exception:  # noqa: BLE001 - recorded as the run's failure when train_run meets it again
        return None


def skipped_outcome(spec: RunSpec, root: Path, quiet: bool = False) -> RunOutcome:
    """The outcome of a run already completed with this config under `root`, said so unless `quiet`."""
    final = results.run_dir(root, spec.name)
    if not quiet:
        logger.info(f"{spec.name}: already completed with this config in {final} (--force to run it again)")
    return RunOutcome(spec.name, SKIPPED, final, results.read_metrics(final))


def _run_locked(
    spec: RunSpec, root: Path, data: Dataset, verbose, threads, prepared=None, should_prune=None
) -> RunOutcome:
    """Stage, train, record and promote one run; its lock is held by the caller."""
    final = results.run_dir(root, spec.name)
    staging = results.staging_dir(root, spec.name)
    config = spec.config
    try:
        resumed = _prepare_staging(root, spec.name, to_yaml(config))
    except OSError as exc:
        raise ResultsError(f"{staging}: cannot write ({exc.strerror or exc})") from None
    started = time.perf_counter()
    try:
        metrics = _train_and_record(spec, data, staging, resumed, verbose, threads, prepared, should_prune)
    except KeyboardInterrupt:
        raise
    except OSError as exc:
        return failed_outcome(spec.name, final, f"could not write results in {staging}: {exc.strerror or exc}")
    except Exception as exc:  # a run that crashes is recorded as failed; a sweep goes on
        message = f"{type(exc).__name__}: {exc}"
        metrics = _failure_metrics(spec, message, traceback.format_exc(), time.perf_counter() - started)
        if results.completed_hash(final) is None:  # else keep the completed run
            try:
                results.write_record(staging / results.METRICS, metrics)
                results.promote(staging, final)
            except OSError:
                pass
        return failed_outcome(spec.name, final, message, metrics)
    try:
        results.promote(staging, final)
    except OSError as exc:
        return failed_outcome(spec.name, final, f"could not move {staging} into {final}: {exc.strerror or exc}")
    record = results.parse_record(metrics)  # the record as written (write_record checked it)
    if record.status is COMPLETED:
        logger.info(f"Test loss: {record.test_loss:.4f} / Test accuracy: {record.test_accuracy:.4f}")
    elif record.status is PRUNED:
        logger.info(f"{spec.name}: pruned after epoch {record.epochs_run}")
    else:
        logger.info(f"{spec.name}: diverged (non-finite loss) in epoch {record.diverged_epoch}")
    return RunOutcome(spec.name, record.status, final, metrics)


def _base_metrics(spec: RunSpec) -> dict:
    config = spec.config
    return {
        "run": spec.name,
        "group": spec.group,
        "config_hash": config_hash(config),
        "group_hash": group_hash(config),
        "seed": config.training.seed,
        "regularizer": [entry.model_dump(by_alias=True, mode="json") for entry in config.penalties],
        **({"tuning": spec.tuning} if spec.tuning is not None else {}),
    }


def _failure_metrics(spec: RunSpec, message: str, trace: str, seconds: float) -> dict:
    return {
        **_base_metrics(spec),
        "status": FAILED,
        "error": message[:MAX_ERROR_LENGTH],
        "traceback": trace[-MAX_TRACEBACK_LENGTH:],  # its end says where it failed
        "wall_time_s": round(seconds, 3),
        "finished_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _train_and_record(spec, data, staging, resumed, verbose, threads, prepared=None, should_prune=None) -> dict:
    """Train the run in `staging`, draw its curves and write its metrics.json: the run record."""
    # TensorFlow is imported here, not at module level: the CLI must start without it.
    from regexp.run import provenance
    from regexp.study import plots
    from regexp.training import model as model_lib
    from regexp.training.session import train_run

    config = spec.config
    started = time.perf_counter()
    trained = train_run(
        config,
        data,
        staging,
        name=spec.name,
        resumed=resumed,
        verbose=verbose,
        threads=threads,
        should_stop=should_prune,
        prepared=prepared,
    )
    plots.plot_run(staging, trained.rows, spec.name)
    metrics = {
        **_base_metrics(spec),
        "status": DIVERGED if trained.diverged_epoch else PRUNED if trained.stopped_after else COMPLETED,
        "test_loss": trained.test_loss,
        "test_accuracy": trained.test_accuracy,
        "epochs_run": trained.epochs_run,
        "epochs_planned": config.training.epochs,
        "diverged_epoch": trained.diverged_epoch,
        "resumed_from_epoch": trained.resumed_from_epoch,
        "best_val_accuracy": trained.best_val_accuracy,
        "best_epoch": trained.best_epoch,
        "best_epoch_test_loss": trained.best_epoch_test_loss,
        "best_epoch_test_accuracy": trained.best_epoch_test_accuracy,
        "wall_time_s": round(time.perf_counter() - started, 3),
        "train_samples_per_s": _median_rate(trained.train_size, trained.train_seconds),
        "epoch_seconds": [round(seconds, 3) for seconds in trained.epoch_seconds],
        "param_count": trained.param_count,
        "sparsity": trained.sparsity,
        "activations": trained.activations,
        "model": trained.model,
        "penalties": trained.penalties,
        "activity_penalty": model_lib.activity_semantics(),
        "data": trained.data_counts,
        "training_path": trained.training_path,
        "versions": {"regexp": provenance.regexp_version(), **trained.versions},
        **provenance.collect(config.data),
        "finished_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    metrics = _finite(metrics)
    results.write_record(staging / results.METRICS, metrics)
    return metrics


def _finite(value):
    """NaN and infinity become null: metrics.json stays strict JSON."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
