"""Sweeps: every config of a folder, each grid expanded, run one by one or N at a time.

Everything is validated before anything trains. Completed runs with the same config are
skipped, failed or interrupted ones run again (resuming from their checkpoint). One run
failing never stops the others. Ctrl-C stops after saying what finished and how to resume;
a second Ctrl-C stops at once.
"""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from regexp import results
from regexp.config import RunSpec, load_runs
from regexp.errors import ConfigError, RegexpError, ResultsError
from regexp.runner import COMPLETED, FAILED, SKIPPED, RunOutcome, existing_completed, run_experiment

CONFIG_SUFFIXES = (".yaml", ".yml")


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


def plan(folder: Path, overrides: list[str], root: Path, force: bool) -> tuple[list[RunSpec], list[RunSpec]]:
    """Validate every config and expand every grid: (runs to do, runs already completed).

    All errors are gathered and raised together, so one pass shows everything to fix.
    """
    errors, specs = [], []
    for path in config_files(folder):
        try:
            specs.extend(load_runs(path, overrides))
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
        if outcome.status not in (COMPLETED, SKIPPED):
            self.failed += 1
        if outcome.status != SKIPPED:
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


def _run_guarded(spec: RunSpec, root: Path, force: bool, verbose, threads, log) -> RunOutcome:
    try:
        return run_experiment(spec, root, force=force, verbose=verbose, threads=threads, log=log)
    except RegexpError as exc:  # e.g. its data cannot be loaded: this run fails, the sweep goes on
        log(f"{spec.name}: failed: {exc}")
        return RunOutcome(spec.name, FAILED, results.run_dir(root, spec.name), None, str(exc))


def _worker_init() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what Ctrl-C does


def _worker_run(spec: RunSpec, root: Path, force: bool, threads: int) -> tuple[RunOutcome, float]:
    started = time.perf_counter()

    def log(text: str) -> None:
        print(text, flush=True)

    return _run_guarded(spec, root, force, 0, threads, log), time.perf_counter() - started


def run_sweep(
    todo: list[RunSpec],
    root: Path,
    *,
    jobs: int = 1,
    force: bool = False,
    verbose: int | str = "auto",
    log=print,
    backend: str = "local",
    address: str | None = None,
    cpus_per_run: int | None = None,
    gpus_per_run: float | None = None,
    shared_results: bool = False,
) -> list[RunOutcome]:
    """Run `todo` into `root`, `jobs` at a time; returns an outcome per run, in `todo` order.

    backend="ray" runs them as tasks on the Ray cluster at `address` instead, each reserving
    `cpus_per_run` CPUs (default 1) and `gpus_per_run` GPUs; with `shared_results` the workers
    write into `root` directly (see regexp.ray_backend).
    """
    progress = Progress(len(todo), jobs, started=time.perf_counter())
    outcomes: dict[str, RunOutcome] = {}
    try:
        if backend == "ray":
            from regexp.ray_backend import run_on_ray  # imports Ray only when asked for

            run_on_ray(todo, root, address=address, cpus_per_run=cpus_per_run or 1, gpus_per_run=gpus_per_run,
                       shared_results=shared_results, force=force, progress=progress, outcomes=outcomes, log=log)
        elif jobs <= 1:
            for spec in todo:
                log(progress.line(spec.name))
                started = time.perf_counter()
                outcome = _run_guarded(spec, root, force, verbose, None, log)
                outcomes[spec.name] = outcome
                progress.record(outcome, time.perf_counter() - started)
        else:
            _run_parallel(todo, root, jobs, force, progress, outcomes, log)
    except KeyboardInterrupt:
        _stop_at_second_interrupt()
        checkpoints_kept = backend != "ray" or shared_results
        unfinished = ("keep their checkpoint and resume from their last finished epoch" if checkpoints_kept
                      else "start again from scratch (their checkpoints were on the Ray workers)")
        raise SweepInterrupted(
            f"interrupted: {progress.done} of {progress.total} runs finished; unfinished runs {unfinished} "
            "when you run the same command again"
        ) from None
    log(progress.line())
    return [outcomes[spec.name] for spec in todo]


def _run_parallel(todo, root, jobs, force, progress, outcomes, log) -> None:
    threads = max(1, (os.cpu_count() or 1) // jobs)
    log(f"running {jobs} runs at a time, {threads} TensorFlow thread{'s' * (threads > 1)} each")
    context = get_context("spawn")  # a fresh interpreter per run: TensorFlow's threads are set at start
    executor = ProcessPoolExecutor(jobs, mp_context=context, initializer=_worker_init, max_tasks_per_child=1)
    try:
        pending = {executor.submit(_worker_run, spec, root, force, threads): spec for spec in todo}
        log(progress.line(f"started {min(jobs, len(todo))} runs"))
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                spec = pending.pop(future)
                try:
                    outcome, seconds = future.result()
                except Exception as exc:  # the worker process died (killed, out of memory)
                    outcome, seconds = RunOutcome(spec.name, FAILED, results.run_dir(root, spec.name), None,
                                                  f"worker process died: {exc}"), 0.0
                    log(f"{spec.name}: failed: {outcome.message}")
                outcomes[spec.name] = outcome
                progress.record(outcome, seconds)
                log(progress.line(f"{spec.name}: {outcome.status}"))
    except KeyboardInterrupt:
        for process in list(getattr(executor, "_processes", {}).values()):
            process.terminate()
        executor.shutdown(wait=False, cancel_futures=True)
        raise
    executor.shutdown(wait=True)


def status_table(outcomes: list[RunOutcome]) -> str:
    """A plain-text table: every run with its status, test accuracy and loss, and any error."""
    width = max([len(o.name) for o in outcomes] + [3])
    lines = [f"{'run':<{width}}  {'status':<9}  {'test acc':>8}  {'test loss':>9}"]
    for o in outcomes:
        m = o.metrics or {}
        acc = f"{m['test_accuracy']:.4f}" if m.get("test_accuracy") is not None else "–"
        loss = f"{m['test_loss']:.4f}" if m.get("test_loss") is not None else "–"
        note = f"  {o.message}" if o.message and o.status == FAILED else ""
        lines.append(f"{o.name:<{width}}  {o.status:<9}  {acc:>8}  {loss:>9}{note}")
    return "\n".join(lines)
