"""Sweeps: every config of a folder, each grid expanded, run one by one or N at a time.

Everything is validated before anything trains. Completed runs with the same config are
skipped, failed or interrupted ones run again (resuming from their checkpoint). One run
failing never stops the others. A run another process is training (it holds the run's lock,
see regexp.results.locks) is left to it and reported as "running elsewhere", which is not a failure.
Ctrl-C stops after saying what finished and how to resume; a second Ctrl-C stops at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from regexp import results
from regexp.config import RunSpec, load_runs
from regexp.errors import ConfigError, RegexpError, ResultsError
from regexp.run.executors import Executor, InProcessExecutor, Started, WorkerProcessesExecutor
from regexp.run.runner import (
    FAILED,
    NOT_FAILED,
    RUNNING_ELSEWHERE,
    SKIPPED,
    RunOutcome,
    existing_completed,
    skipped_outcome,
)

CONFIG_SUFFIXES = (".yaml", ".yml")

logger = logging.getLogger(__name__)


class SweepInterrupted(Exception):
    """Ctrl-C: the sweep stopped; what finished is on disk and the same command resumes."""


def config_files(folder: Path) -> list[Path]:
    """The config files of a folder (not its subfolders), sorted; or the one file given."""
    if folder.is_file():
        return [folder]
    if not folder.is_dir():
        raise ConfigError(f"{folder}: no such folder")
    files = sorted(p for p in folder.iterdir() if p.suffix in CONFIG_SUFFIXES and p.is_file())
    if not files:
        raise ConfigError(f"{folder}: no .yaml config files in this folder")
    return files


def plan(
    folder: Path, overrides: list[str], root: Path, force: bool, seeds: int | None = None
) -> tuple[list[RunSpec], list[RunSpec]]:
    """Validate every config and expand every grid (each over seeds 0..seeds-1 if given):
    (runs to do, runs already completed).

    All errors are gathered and raised together, so one pass shows everything to fix.
    """
    errors, specs = [], []
    for path in config_files(folder):
        try:
            specs.extend(load_runs(path, overrides, seeds))
        except RegexpError as exc:
            errors.append(str(exc))
    owners: dict[str, str] = {}
    for spec in specs:
        if spec.name in owners:
            errors.append(f"{spec.source}: name: run '{spec.name}' is also produced by {owners[spec.name]}")
        owners.setdefault(spec.name, spec.source)
    todo, done = [], []
    if not errors:
        for spec in specs:
            try:
                (done if existing_completed(spec, root, force) else todo).append(spec)
            except ResultsError as exc:
                errors.append(str(exc))
    if errors:
        count = f"{len(errors)} problem{'s' * (len(errors) > 1)}"
        raise ConfigError(f"the sweep was not started, {count}:\n  " + "\n  ".join(errors))
    return todo, done


@dataclass
class StudyPlan:
    """What a sweep will do in a results root: the runs to train, those already completed with
    the same config, and the damaged run folders among the former (set aside before training)."""

    root: Path
    todo: list[RunSpec]
    done: list[RunSpec]
    damaged: list[str]

    @property
    def size(self) -> int:
        return len(self.todo) + len(self.done)


def plan_study(
    folder: Path, overrides: list[str], root: Path, force: bool = False, seeds: int | None = None
) -> StudyPlan:
    """Validate a folder of configs against a results root (which must be writable) and say
    what is to run; nothing is trained or written."""
    todo, done = plan(folder, overrides, root, force, seeds)
    results.ensure_writable_root(root)
    return StudyPlan(root, todo, done, results.damaged_runs(root, [spec.name for spec in todo]))


def run_study(
    study: StudyPlan, executor: Executor, after_each: Callable[[RunOutcome], None] | None = None
) -> list[RunOutcome]:
    """Run what `study` has to do through `executor`: every run's outcome, the completed runs it
    found on disk included, sorted by name (`after_each` as in run_sweep). Raises SweepInterrupted on Ctrl-C."""
    trained = run_sweep(study.todo, executor, after_each)
    found = [skipped_outcome(spec, study.root, quiet=True) for spec in study.done]
    return sorted(found + trained, key=lambda outcome: outcome.name)


def any_failed(outcomes: list[RunOutcome]) -> bool:
    """True if a run failed or diverged (skipped and running-elsewhere runs are no failures)."""
    return any(outcome.status not in NOT_FAILED for outcome in outcomes)


@dataclass
class Progress:
    """Runs done / total, elapsed, and an estimate from the runs that finished."""

    total: int
    jobs: int = 1
    done: int = 0
    failed: int = 0
    started: float = 0.0
    trained_seconds: float = 0.0
    trained: int = 0

    def line(self, current: str = "") -> str:
        elapsed = time.perf_counter() - self.started
        eta = ""
        if self.trained:
            remaining = (self.total - self.done) * self.trained_seconds / self.trained / self.jobs
            eta = f" | about {_duration(remaining)} left"
        failed = f", {self.failed} failed" if self.failed else ""
        return f"[sweep {self.done}/{self.total} done{failed} | {_duration(elapsed)} elapsed{eta}]" + (
            f" {current}" if current else ""
        )

    def record(self, outcome: RunOutcome, seconds: float) -> None:
        self.done += 1
        if outcome.status not in NOT_FAILED:
            self.failed += 1
        if outcome.status not in (SKIPPED, RUNNING_ELSEWHERE):
            self.trained += 1
            self.trained_seconds += seconds


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _stop_at_second_interrupt() -> None:
    def stop_now(signum, frame):
        os._exit(130)

    signal.signal(signal.SIGINT, stop_now)


def make_executor(
    root: Path,
    *,
    jobs: int = 1,
    force: bool = False,
    verbose: int | str = "auto",
    backend: str = "local",
    address: str | None = None,
    cpus_per_run: int | None = None,
    gpus_per_run: float | None = None,
    shared_results: bool = False,
) -> Executor:
    """The Executor for these options: Ray tasks, worker processes (jobs > 1), or this process."""
    if backend == "ray":
        from regexp.run.ray_backend import RayExecutor  # imports Ray only when asked for

        return RayExecutor(
            root,
            force,
            address=address,
            cpus_per_run=cpus_per_run or 1,
            gpus_per_run=gpus_per_run,
            shared_results=shared_results,
        )
    if jobs > 1:
        return WorkerProcessesExecutor(root, force, jobs)
    return InProcessExecutor(root, force, verbose)


def run_sweep(
    todo: list[RunSpec], executor: Executor, after_each: Callable[[RunOutcome], None] | None = None
) -> list[RunOutcome]:
    """Run `todo` with `executor` (see make_executor); returns an outcome per run, in `todo` order.
    `after_each` is called with each run's outcome as it finishes (e.g. to send it to MLflow).

    This function alone keeps the progress line and the outcomes.
    """
    progress = Progress(len(todo), started=time.perf_counter())
    outcomes: dict[str, RunOutcome] = {}
    try:
        with contextlib.closing(executor.run(todo)) as events:
            for event in events:
                if isinstance(event, Started):
                    progress.jobs = event.at_once
                    logger.info(progress.line(event.what))
                    continue
                outcome = event.outcome
                outcomes[outcome.name] = outcome
                progress.record(outcome, event.seconds)
                if not executor.announces_each_run:
                    logger.info(progress.line(f"{outcome.name}: {outcome.status}{event.where}"))
                if after_each is not None:
                    after_each(outcome)
    except KeyboardInterrupt:
        _stop_at_second_interrupt()
        unfinished = (
            "keep their checkpoint and resume from their last finished epoch"
            if executor.keeps_checkpoints
            else "start again from scratch (their checkpoints were on the Ray workers)"
        )
        raise SweepInterrupted(
            f"interrupted: {progress.done} of {progress.total} runs finished; unfinished runs {unfinished} "
            "when you run the same command again"
        ) from None
    logger.info(progress.line())
    return [outcomes[spec.name] for spec in todo]


def status_table(outcomes: list[RunOutcome]) -> str:
    """A plain-text table: every run with its status, test accuracy and loss, and any error."""
    width = max([len(o.name) for o in outcomes] + [3])
    status_width = max([len(o.status) for o in outcomes] + [9])
    lines = [f"{'run':<{width}}  {'status':<{status_width}}  {'test acc':>8}  {'test loss':>9}"]
    for o in outcomes:
        record = o.record
        acc = f"{record.test_accuracy:.4f}" if record and record.test_accuracy is not None else "–"
        loss = f"{record.test_loss:.4f}" if record and record.test_loss is not None else "–"
        note = f"  {o.message}" if o.message and o.status in (FAILED, RUNNING_ELSEWHERE) else ""
        lines.append(f"{o.name:<{width}}  {o.status:<{status_width}}  {acc:>8}  {loss:>9}{note}")
    return "\n".join(lines)
