"""Sweeps on a Ray cluster: every run is a Ray task with its own CPU (and GPU) reservation.
(`regexp tune --backend ray` runs its trial workers as such tasks too: see run_trial_workers.)

`regexp sweep --backend ray` runs its runs through `RayExecutor`, one of the sweep's three
executors (regexp.run.executors), after `plan` has validated every config and set aside the
completed runs, exactly as for local runs. Ray is imported only inside this module's
functions, so the CLI starts without it.

What travels where:

- driver -> worker: the RunSpec and the reservation. The task runs `run_experiment` into a
  private temporary root on the worker (under $REGEXP_RAY_WORK_DIR, or the system's temporary
  folder), with TensorFlow's thread pools sized to the CPUs it reserved.
- worker -> driver: the finished run folder's files (relative path -> bytes), the RunOutcome,
  the run's log lines and where it ran. The worker deletes its private root.
- driver: writes the files into `<root>/.inprogress/<name>/` with the same atomic writer as
  local runs, metrics.json last, and promotes the folder into `<root>/<name>/`. No shared
  filesystem is needed.

With --shared-results the results root is a folder every node mounts at the same path: the
workers run `run_experiment` into it directly, as local runs do, and nothing travels back.

Run locks (regexp.results.locks): with --shared-results each worker holds the lock of the run it
trains, on the shared root, as local runs do. Without it the driver holds the lock of every
run it submitted, from before submission until the run's folder is in place, and does not
submit a run another process holds.

A worker process or node that dies mid-run has its task retried by Ray, at most MAX_RETRIES
times: from scratch (its checkpoint was on the dead worker), or, with a shared root, from the
checkpoint of its last finished epoch. A Python exception is never retried: `run_experiment`
records a crashing run as failed, and anything else the task raises fails that run only. The
sweep goes on either way.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from regexp import results
from regexp.config import RunSpec
from regexp.errors import RegexpError, ResultsError
from regexp.results import RunLock, RunLocked
from regexp.run import logs
from regexp.run.executors import Executor, Finished, Started, run_guarded
from regexp.run.runner import (
    FAILED,
    RunOutcome,
    existing_completed,
    failed_outcome,
    running_elsewhere,
    skipped_outcome,
)

RAY_INSTALL_HINT = 'the ray backend needs Ray, an optional extra: pip install -e ".[ray]" (or pip install "ray>=2.9")'
MAX_RETRIES = 2  # how many times a run whose worker process or node died is started again
WORK_DIR_ENV = "REGEXP_RAY_WORK_DIR"  # where workers make their private results roots (a node's scratch disk)
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")  # Ray colours its error messages
WAIT_SECONDS = 1.0  # the driver wakes up this often while it waits, so Ctrl-C is prompt
CANCEL_GRACE_SECONDS = 10.0  # after Ctrl-C, how long interrupted runs get to clean up
PROGRESS_SECONDS = 5.0  # how often a tuning on Ray looks how many trials have ended

logger = logging.getLogger(__name__)


def require_ray():
    """The `ray` module, or a RegexpError that says in one line how to install it."""
    try:
        import ray
    except ImportError:
        raise RegexpError(RAY_INSTALL_HINT) from None
    return ray


# --------------------------------------------------------------------------- the worker side


@dataclass
class WorkerResult:
    """What a finished task sends back to the driver."""

    outcome: RunOutcome
    files: dict[str, bytes]  # the run folder's files by path relative to it; empty if it wrote none
    log_lines: list[str]
    seconds: float
    worker: str  # host and process id, for the progress line
    gpus_without_memory_growth: list[str]


def run_task(spec: RunSpec, cpus: int, gpus: float, shared_root: str | None, force: bool) -> WorkerResult:
    """The Ray task: one run, with TensorFlow's threads sized to the `cpus` it reserved.

    With `shared_root` (a folder every node mounts at the same path) the run writes straight
    into it; otherwise into a private temporary root, whose finished run folder comes back.
    """
    started = time.perf_counter()
    if not gpus:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # a CPU-only reservation keeps TensorFlow off the node's GPUs
    with logs.collected_lines() as lines:
        if shared_root is None:
            outcome, files = run_in_private_root(spec, cpus)
        else:
            outcome, files = run_guarded(spec, Path(shared_root), force, 0, cpus), {}
    return WorkerResult(
        outcome,
        files,
        lines,
        time.perf_counter() - started,
        f"{socket.gethostname()} pid {os.getpid()}",
        gpus_without_memory_growth(),
    )


def run_in_private_root(spec: RunSpec, cpus: int) -> tuple[RunOutcome, dict[str, bytes]]:
    """Run `spec` into a fresh temporary root on this node; its outcome and its folder's files.

    The root is named regexp-ray-<pid>-<random>, under $REGEXP_RAY_WORK_DIR or the system's
    temporary folder, and is deleted afterwards (a killed worker leaves its root behind).
    """
    private_root = Path(tempfile.mkdtemp(prefix=f"regexp-ray-{os.getpid()}-", dir=os.environ.get(WORK_DIR_ENV) or None))
    try:
        outcome = run_guarded(spec, private_root, False, 0, cpus)
        return outcome, folder_files(results.run_dir(private_root, spec.name))
    finally:
        shutil.rmtree(private_root, ignore_errors=True)


def folder_files(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` by its path relative to it (POSIX form); {} if there is no folder."""
    if not folder.is_dir():
        return {}
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not path.name.endswith(".tmp")
    }


def gpus_without_memory_growth() -> list[str]:
    """GPUs this process's TensorFlow set up without memory growth (it must be on before any model)."""
    if "tensorflow" not in sys.modules:
        return []
    import tensorflow as tf

    return [
        gpu.name for gpu in tf.config.list_physical_devices("GPU") if not tf.config.experimental.get_memory_growth(gpu)
    ]


# --------------------------------------------------------------------------- the driver side


@dataclass
class Reservation:
    """What each run reserves, and how many such runs the cluster holds at once."""

    cpus: int
    gpus: float
    at_once: int

    def describe(self) -> str:
        threads = f"{self.cpus} TensorFlow thread{'s' * (self.cpus > 1)}"
        gpus = f" and {self.gpus:g} GPU" if self.gpus else ""
        return f"each run reserves {self.cpus} CPU{'s' * (self.cpus > 1)}{gpus} ({threads}), up to {self.at_once} at a time"


def plan_reservation(nodes: list[dict], cpus_per_run: int, gpus_per_run: float | None) -> Reservation:
    """Check that some node of the cluster can hold one run, and count how many fit at once.

    `nodes` is `ray.nodes()`. GPUs default to one per run where the cluster has any, else none.
    A reservation no node can hold would wait for ever in Ray: it is refused here instead.
    """
    resources = [node.get("Resources", {}) for node in nodes if node.get("Alive")]
    if gpus_per_run is None:
        gpus_per_run = 1 if any(r.get("GPU", 0) for r in resources) else 0
    at_once = sum(_runs_on_node(r, cpus_per_run, gpus_per_run) for r in resources)
    if at_once == 0:
        largest = max(resources, key=lambda r: (r.get("CPU", 0), r.get("GPU", 0)), default={})
        raise RegexpError(
            f"no node of the Ray cluster can hold a run that reserves {cpus_per_run} CPUs and {gpus_per_run:g} GPUs "
            f"(the largest has {largest.get('CPU', 0):g} CPUs, {largest.get('GPU', 0):g} GPUs); "
            "lower --cpus-per-run or --gpus-per-run"
        )
    return Reservation(cpus_per_run, gpus_per_run, at_once)


def _runs_on_node(resources: dict, cpus: int, gpus: float) -> int:
    fits = math.floor(resources.get("CPU", 0) / cpus + 1e-9)
    if gpus:
        fits = min(fits, math.floor(resources.get("GPU", 0) / gpus + 1e-9))
    return fits


def write_run_folder(staging: Path, files: dict[str, bytes]) -> None:
    """Write a run's files into a fresh `staging` folder atomically, metrics.json last."""
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    for name in sorted(files, key=lambda n: n == results.METRICS):
        relative = PurePosixPath(name)
        if relative.is_absolute() or ".." in relative.parts:
            raise OSError(f"a worker sent a file outside its run folder: {name}")
        path = staging.joinpath(*relative.parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        results.write_bytes_atomic(path, files[name])


def store_result(root: Path, spec: RunSpec, result: WorkerResult) -> RunOutcome:
    """Put a worker's run folder into place under the driver's `root`, as a local run would be.

    A run with no files wrote into the shared root itself (or wrote nothing): its folder must
    then be visible here, else `root` is not shared with that worker.
    """
    final = results.run_dir(root, spec.name)
    outcome = replace(result.outcome, folder=final)
    if not result.files:
        if outcome.metrics is not None and results.read_metrics(final) is None:
            return failed_outcome(
                spec.name,
                final,
                f"the worker wrote {spec.name} where this machine cannot see it: is {root} shared with every node?",
            )
        return outcome
    if outcome.status == FAILED and results.completed_hash(final) is not None:
        return outcome  # a failed rerun (--force) keeps the completed run, as run_experiment does
    staging = results.staging_dir(root, spec.name)
    try:
        write_run_folder(staging, result.files)
        results.promote(staging, final)
    except OSError as exc:
        return failed_outcome(spec.name, final, f"could not write results in {staging}: {exc.strerror or exc}")
    return outcome


def task_error_message(error: Exception) -> str:
    """One line for a task that ended without a result: it raised, or its worker died too often."""
    cause = getattr(error, "cause", None)  # a RayTaskError carries the exception the task raised
    if cause is not None:
        return f"the Ray task raised {type(cause).__name__}: {cause}"
    summary = ANSI_ESCAPE.sub("", str(error)).strip().splitlines() or [""]
    return f"the Ray task was lost ({type(error).__name__}, {MAX_RETRIES} retries at most): {summary[0]}"


def task_failure(root: Path, spec: RunSpec, error: Exception) -> RunOutcome:
    """The outcome of a run whose task ended without a result."""
    return failed_outcome(spec.name, results.run_dir(root, spec.name), task_error_message(error))


def connect(ray, address: str | None) -> bool:
    """Connect to the cluster at `address` (None: Ray's default); False if already connected."""
    if ray.is_initialized():
        return False  # a program (or a test) that embeds regexp connected already: use its cluster
    ray.init(address=address, log_to_driver=False)  # each run's lines come back with its result
    return True


@contextlib.contextmanager
def connected(address: str | None) -> Iterator:
    """The `ray` module, connected to the cluster at `address` for the block (left connected if it
    was already); one connection for all the steps of a command (regexp tune's trials and runs)."""
    ray = require_ray()
    connected_here = connect(ray, address)
    try:
        yield ray
    finally:
        if connected_here:
            ray.shutdown()


class RayExecutor(Executor):
    """Each run a Ray task with its own reservation; finished run folders are written under `root`.

    With `shared_results`, `root` is a folder every node mounts at the same path, and the
    workers write into it directly.
    """

    def __init__(
        self,
        root: Path,
        force: bool,
        *,
        address: str | None,
        cpus_per_run: int,
        gpus_per_run: float | None,
        shared_results: bool,
    ) -> None:
        self.root, self.force, self.address = root, force, address
        self.cpus_per_run, self.gpus_per_run, self.shared_results = cpus_per_run, gpus_per_run, shared_results
        self.keeps_checkpoints = shared_results  # else they were on the workers

    def run(self, specs: list[RunSpec]) -> Iterator[Started | Finished]:
        if not specs:
            return
        ray = require_ray()
        connected_here = connect(ray, self.address)
        pending: dict = {}
        held: dict[str, RunLock] = {}  # without a shared root, the driver holds the lock of each run it submitted
        try:
            reservation = plan_reservation(ray.nodes(), self.cpus_per_run, self.gpus_per_run)
            where = (
                f"writing into the shared {self.root.resolve()}" if self.shared_results else "results come back here"
            )
            logger.info(
                f"running on the Ray cluster at {ray.get_runtime_context().gcs_address}: "
                f"{reservation.describe()}; {where}"
            )
            shared_root = str(self.root.resolve()) if self.shared_results else None
            task = ray.remote(max_calls=1)(run_task)  # a fresh worker process per run, as locally
            not_submitted: list[RunOutcome] = []
            for spec in specs:
                if not self.shared_results:
                    outcome = self._lock(spec, held)
                    if outcome is not None:
                        not_submitted.append(outcome)
                        continue
                options = with_reservation(task, f"regexp:{spec.name}", reservation)
                pending[options.remote(spec, reservation.cpus, reservation.gpus, shared_root, self.force)] = spec
            if pending:
                yield Started(
                    f"submitted {len(pending)} run{'s' * (len(pending) > 1)}", min(reservation.at_once, len(pending))
                )
            for outcome in not_submitted:
                yield Finished(outcome, 0.0)
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=WAIT_SECONDS)
                for ref in ready:
                    spec = pending.pop(ref)
                    outcome, where, seconds = collect(ray, ref, spec, self.root)
                    if spec.name in held:
                        held.pop(spec.name).release()
                    yield Finished(outcome, seconds, where)
        except BaseException:  # Ctrl-C, or the caller stopped early
            stop_tasks(ray, list(pending))
            raise
        finally:
            for lock in held.values():
                lock.release()
            if connected_here:
                ray.shutdown()

    def _lock(self, spec: RunSpec, held: dict[str, RunLock]) -> RunOutcome | None:
        """Take the run's lock for the driver: None if it is to be submitted, else its outcome
        (another process holds it, or completed it since the sweep was planned)."""
        lock, final = RunLock(self.root, spec.name), results.run_dir(self.root, spec.name)
        try:
            lock.acquire()
        except RunLocked as locked:
            return running_elsewhere(spec.name, final, locked)
        try:
            if existing_completed(spec, self.root, self.force):
                lock.release()
                return skipped_outcome(spec, self.root)
        except ResultsError as exc:
            lock.release()
            return failed_outcome(spec.name, final, str(exc))
        held[spec.name] = lock
        return None


def with_reservation(task, name: str, reservation: Reservation):
    """The Ray task `task` named `name` (Ray titles its worker process ray::<name>), reserving
    `reservation`'s CPUs and GPUs; retried when its worker dies, never when it raises."""
    return task.options(
        name=name,
        num_cpus=reservation.cpus,
        num_gpus=reservation.gpus,
        max_retries=MAX_RETRIES,
        retry_exceptions=False,
    )


def stop_tasks(ray, refs: list) -> None:
    """Interrupt unfinished runs and give their workers a moment to delete their private roots."""
    for ref in refs:
        ray.cancel(ref)  # a KeyboardInterrupt in the run's worker, as Ctrl-C would be locally
    if refs:
        ray.wait(refs, num_returns=len(refs), timeout=CANCEL_GRACE_SECONDS)


def collect(ray, ref, spec: RunSpec, root: Path) -> tuple[RunOutcome, str, float]:
    """A finished task's outcome, with its files written under `root`: (outcome, ' on <worker>', seconds)."""
    try:
        result: WorkerResult = ray.get(ref)
    except ray.exceptions.RayError as exc:
        return task_failure(root, spec, exc), "", 0.0
    for line in result.log_lines:
        logger.info(line)
    if result.gpus_without_memory_growth:
        logger.warning(
            f"{spec.name}: warning: GPU memory growth was not on for {', '.join(result.gpus_without_memory_growth)}"
        )
    return store_result(root, spec, result), f" on {result.worker}", result.seconds


# --------------------------------------------------------------------------- tuning on Ray


@dataclass(frozen=True)
class RayCluster:
    """Where and how a command runs on Ray: the cluster's address (None: Ray's default) and what
    each run (each of regexp tune's trial workers) reserves; see RayExecutor and run_trial_workers."""

    address: str | None = None
    cpus_per_run: int | None = None
    gpus_per_run: float | None = None


@dataclass
class TrialWorkerResult:
    """What one of regexp tune's trial workers sends back: the error that stopped it (None if it
    ended its work), its lines, and where it ran."""

    error: str | None
    log_lines: list[str]
    worker: str


@dataclass(frozen=True)
class TrialWork:
    """What every trial worker runs: `loop(targets, root, threads, worker)` (regexp.run.tune's own
    worker loop, passed in: this module does not import the tuning) on the results root, where
    the driver made the study database `database`."""

    loop: Callable[[list, Path, int, int], None]
    targets: list
    root: Path
    database: Path


def trial_worker_task(work: TrialWork, cpus: int, gpus: float, worker: int) -> TrialWorkerResult:
    """The Ray task of one trial worker: the tuning's worker loop on the results root, which this
    node must see at the same path (the study database the driver made must be there)."""
    if not gpus:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # a CPU-only reservation keeps TensorFlow off the node's GPUs
    with logs.collected_lines() as lines:
        try:
            if not work.database.is_file():
                raise ResultsError(
                    f"{work.database}: not found on Ray node {socket.gethostname()}: a tuning on Ray needs "
                    "--results on a folder every node mounts at the same path"
                )
            work.loop(work.targets, work.root, cpus, worker)
            error = None
        except RegexpError as exc:
            error = str(exc)
    return TrialWorkerResult(error, lines, f"{socket.gethostname()} pid {os.getpid()}")


def run_trial_workers(
    ray, work: TrialWork, jobs: int | None, cluster: RayCluster, progress: Callable[[], str | None] = lambda: None
) -> None:
    """regexp tune's trials on the connected Ray cluster: `jobs` trial workers (at most, and by
    default, as many as the cluster holds at once), each a Ray task with one run's reservation
    that shares the study database and the trial claims under `work.root` as worker processes do.
    A worker's lines come back when it ends; meanwhile `progress()`'s line is shown when it changes.

    A worker whose process or node dies is started again by Ray (MAX_RETRIES times at most) and
    resumes the trial it left. RegexpError, in one line, if a worker stopped on an error.
    """
    reservation = plan_reservation(ray.nodes(), cluster.cpus_per_run or 1, cluster.gpus_per_run)
    count = min(jobs or reservation.at_once, reservation.at_once)
    logger.info(
        f"tuning with {count} trial worker{'s' * (count > 1)} on the Ray cluster at "
        f"{ray.get_runtime_context().gcs_address}: {reservation.describe()}; writing into {work.root}"
    )
    task = ray.remote(max_calls=1)(trial_worker_task)  # a fresh process each: TensorFlow's threads are set at start
    pending = {}
    for worker in range(count):
        options = with_reservation(task, f"regexp:tune-worker-{worker}", reservation)
        pending[options.remote(work, reservation.cpus, reservation.gpus, worker)] = worker
    errors: list[str] = []
    shown: str | None = None
    next_look = 0.0

    def show_progress() -> None:
        nonlocal shown
        line = progress()
        if line is not None and line != shown:
            logger.info(line)
            shown = line

    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=WAIT_SECONDS)
            for ref in ready:
                error = _trial_worker_ended(ray, ref, pending.pop(ref))
                if error is not None and error not in errors:
                    errors.append(error)
            if time.monotonic() >= next_look:
                show_progress()
                next_look = time.monotonic() + PROGRESS_SECONDS
    except BaseException:  # Ctrl-C: the workers' trials are left to be resumed
        stop_tasks(ray, list(pending))
        raise
    show_progress()  # where the workers left the studies
    if errors:
        others = f" (and {len(errors) - 1} other error{'s' * (len(errors) > 2)})" if len(errors) > 1 else ""
        raise RegexpError(f"a tuning worker on Ray stopped: {errors[0]}{others}; run the same command again to resume")


def _trial_worker_ended(ray, ref, worker: int) -> str | None:
    """Show a finished trial worker's lines; the error that stopped it, or None."""
    try:
        result: TrialWorkerResult = ray.get(ref)
    except ray.exceptions.RayError as exc:
        return f"worker {worker}: {task_error_message(exc)}"
    for line in result.log_lines:
        logger.info(line)
    logger.info(f"tuning worker {worker} on {result.worker} ended")
    return result.error
