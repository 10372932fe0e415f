"""How a sweep's runs are executed: one at a time in this process, N at a time in worker
processes, or as tasks on a Ray cluster (regexp.run.ray_backend.RayExecutor).

Each way is an Executor: `run(specs)` starts the runs and yields what happens, as it happens:
`Started` when runs begin (for the progress line), then a `Finished` per run, with its outcome,
in the order the runs end. The sweep (`regexp.run.sweep.run_sweep`) alone keeps the progress, the
outcomes and the status table. Ctrl-C comes out of the iterator as KeyboardInterrupt; closing
the iterator early stops what is still running.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from regexp import results
from regexp.config import RunSpec
from regexp.errors import RegexpError
from regexp.results import RunLocked
from regexp.run import logs
from regexp.run.runner import RunOutcome, failed_outcome, run_experiment, running_elsewhere

logger = logging.getLogger(__name__)


@dataclass
class Started:
    """Runs began: `what` says which, for the progress line; `at_once` is how many train at the same time."""

    what: str
    at_once: int = 1


@dataclass
class Finished:
    """A run ended: its outcome, its wall time, and where it ran (' on <host> pid <pid>') if elsewhere."""

    outcome: RunOutcome
    seconds: float
    where: str = ""


class Executor:
    """Runs RunSpecs into a results root and yields Started / Finished as they happen."""

    keeps_checkpoints = True  # an interrupted run resumes from its last finished epoch (else from scratch)
    announces_each_run = False  # a Started before each run, one at a time: no progress line at each finish

    def run(self, specs: list[RunSpec]) -> Iterator[Started | Finished]:
        raise NotImplementedError


def run_guarded(spec: RunSpec, root: Path, force: bool, verbose, threads: int | None) -> RunOutcome:
    """`run_experiment`, where what concerns this run only becomes its outcome: a run another
    process is training is left to it, and a user error found at run time (e.g. its data cannot
    be loaded) fails this run; the sweep goes on with the others either way."""
    try:
        return run_experiment(spec, root, force=force, verbose=verbose, threads=threads)
    except RunLocked as locked:
        return running_elsewhere(spec.name, results.run_dir(root, spec.name), locked)
    except RegexpError as exc:
        return failed_outcome(spec.name, results.run_dir(root, spec.name), str(exc))


class InProcessExecutor(Executor):
    """One run after the other, in this process, with Keras's own progress."""

    announces_each_run = True

    def __init__(self, root: Path, force: bool, verbose: int | str) -> None:
        self.root, self.force, self.verbose = root, force, verbose

    def run(self, specs: list[RunSpec]) -> Iterator[Started | Finished]:
        for spec in specs:
            yield Started(spec.name)
            started = time.perf_counter()
            outcome = run_guarded(spec, self.root, self.force, self.verbose, None)
            yield Finished(outcome, time.perf_counter() - started)


class WorkerProcessesExecutor(Executor):
    """`jobs` runs at once, each in a fresh worker process with `cores / jobs` TensorFlow threads."""

    def __init__(self, root: Path, force: bool, jobs: int) -> None:
        self.root, self.force, self.jobs = root, force, jobs

    def run(self, specs: list[RunSpec]) -> Iterator[Started | Finished]:
        threads = max(1, (os.cpu_count() or 1) // self.jobs)
        logger.info(f"running {self.jobs} runs at a time, {threads} TensorFlow thread{'s' * (threads > 1)} each")
        context = get_context("spawn")  # a fresh interpreter per run: TensorFlow's threads are set at start
        pool = futures.ProcessPoolExecutor(
            self.jobs, mp_context=context, initializer=_worker_init, max_tasks_per_child=1
        )
        try:
            pending = {pool.submit(_worker_run, spec, self.root, self.force, threads): spec for spec in specs}
            yield Started(f"started {min(self.jobs, len(specs))} runs", self.jobs)
            while pending:
                done, _ = futures.wait(pending, return_when=futures.FIRST_COMPLETED)
                for future in done:
                    spec = pending.pop(future)
                    try:
                        outcome, seconds = future.result()
                    except Exception as exc:  # noqa: BLE001 - the worker process died (killed, out of memory)
                        outcome = failed_outcome(
                            spec.name, results.run_dir(self.root, spec.name), f"worker process died: {exc}"
                        )
                        seconds = 0.0
                    yield Finished(outcome, seconds)
        except BaseException:  # Ctrl-C, or the caller stopped early: stop every worker now
            for process in list(getattr(pool, "_processes", {}).values()):
                process.terminate()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)


def _worker_init() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what Ctrl-C does
    logs.print_lines()  # a worker's lines go to the terminal the sweep was started from


def _worker_run(spec: RunSpec, root: Path, force: bool, threads: int) -> tuple[RunOutcome, float]:
    started = time.perf_counter()
    return run_guarded(spec, root, force, 0, threads), time.perf_counter() - started
