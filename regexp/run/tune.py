"""Tuning (`regexp tune`): each config's `search:` explored on validation accuracy by Optuna, its
best values then re-run over fresh seeds, so the report compares every config at its best with
the baseline at its best.

- One Optuna study per config (per grid point), named after it, in Optuna's RDB storage on
  SQLite at `<root>/tune.db`. Parameter names are the field paths (`regularizer.lambda`).
- A trial is an ordinary run, `<config>__trial-0007` (the Optuna trial number), trained by the
  runner on the config's own seed; its objective is the best validation accuracy of any epoch.
  The pruner is asked after each epoch; a pruned trial's run is recorded `status: pruned`.
- A trial is claimed (a `claim` lock of its run name, regexp.results.locks) from the moment it is asked
  until the study is told how it ended; the next trial is chosen under the study's lock. So
  processes sharing a root never take one trial twice, and a RUNNING trial whose claim is free
  was cut short: the next process to choose resumes it (from its run's checkpoint, or from its
  run folder if the run had ended).
- Trial workers, each running `work_on_studies`: this process (`--jobs 1`), `jobs` spawned
  processes, or Ray tasks (regexp.run.ray_backend.run_trial_workers) on a root every node sees.
- Confirmation: the best trial's values re-run on the first `confirm_seeds` seeds that no
  trial of this tune used, as `<config>__confirm__seed-N`, grouped under the config's name.

TensorFlow is imported only by the runner, when a run trains; Optuna is imported here.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import multiprocessing
import os
import signal
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regexp import results
from regexp.config import RunSpec, config_hash, load_runs, validate
from regexp.config.schema import SearchConfig, SearchRange, apply_override, field_value
from regexp.errors import ConfigError, RegexpError, ResultsError
from regexp.results import locks
from regexp.run.runner import COMPLETED, DIVERGED, PRUNED, RunOutcome, run_experiment
from regexp.run.sweep import config_files

if TYPE_CHECKING:
    from regexp.run.ray_backend import RayCluster

TUNE_DB = "tune.db"
TRIAL, CONFIRMATION = "trial", "confirmation"
CLAIM = "claim"  # the lock kind of a trial being trained (see regexp.locks.lock_path)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    """One study: a config (or grid point) as validated, and its search."""

    spec: RunSpec

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def search(self) -> SearchConfig:
        return self.spec.config.search


def search_overrides(
    trials: int | None, confirm_seeds: int | None, sampler: str | None, pruner: str | None
) -> list[str]:
    """The `--set` overrides the CLI's search options stand for."""
    given = {"trials": trials, "confirm_seeds": confirm_seeds, "sampler": sampler, "pruner": pruner}
    return [f"search.{key}={value}" for key, value in given.items() if value is not None]


def load_targets(folder: Path, overrides: list[str]) -> list[Target]:
    """Every config of `folder` (or the one file) expanded into its grid points, each with a
    `search:`; all problems gathered into one ConfigError, as a sweep's plan does."""
    errors, targets = [], []
    for path in config_files(folder):
        try:
            specs = load_runs(path, overrides)
        except RegexpError as exc:
            errors.append(str(exc))
            continue
        for spec in specs:
            if spec.config.search is None:
                errors.append(f"{spec.source}: search: missing; regexp tune needs a search: section (docs/tuning.md)")
            else:
                targets.append(Target(spec))
    names = [t.name for t in targets]
    errors += [
        f"{t.spec.source}: name: '{t.name}' is also another config's name" for t in targets if names.count(t.name) > 1
    ]
    if errors:
        count = f"{len(errors)} problem{'s' * (len(errors) > 1)}"
        raise ConfigError(f"the tuning was not started, {count}:\n  " + "\n  ".join(errors))
    return targets


# --------------------------------------------------------------------------- run specs


def trial_name(study: str, number: int) -> str:
    return f"{study}__trial-{number:04d}"


def confirmation_name(study: str, seed: int) -> str:
    return f"{study}__confirm__seed-{seed}"


def space_record(search: SearchConfig) -> dict:
    """The search space as metrics.json records it (the report draws its axes from it)."""
    return {
        key: entry.model_dump() if isinstance(entry, SearchRange) else {"choices": list(entry)}
        for key, entry in search.space.items()
    }


def with_values(target: Target, name: str, params: dict[str, Any], seed: int, tuning: dict, group: str) -> RunSpec:
    """The target's config with `params` applied as `--set` would, on `seed`, named `name`."""
    data = copy.deepcopy(target.spec.config.model_dump(by_alias=True, mode="json", exclude={"sweep", "search"}))
    for key, value in params.items():
        apply_override(data, key, value)
    data["training"]["seed"] = seed
    data["name"] = name
    source = f"{target.spec.source} [{name}]"
    return RunSpec(name, group, validate(data, source, name), source, tuning)


def trial_spec(target: Target, number: int, params: dict[str, Any]) -> RunSpec:
    name = trial_name(target.name, number)
    record = {"role": TRIAL, "study": target.name, "trial": number, "params": params}
    record["space"] = space_record(target.search)
    return with_values(target, name, params, target.spec.config.training.seed, record, name)


def fresh_seeds(used: set[int], count: int) -> list[int]:
    """The first `count` seeds from 0 up that are not in `used`."""
    seeds, seed = [], 0
    while len(seeds) < count:
        if seed not in used:
            seeds.append(seed)
        seed += 1
    return seeds


def confirmation_specs(target: Target, best_trial: int, params: dict[str, Any], seeds: list[int]) -> list[RunSpec]:
    """The best trial's values on each fresh seed, grouped under the config's own name."""
    specs = []
    for seed in seeds:
        record = {"role": CONFIRMATION, "study": target.name, "trial": None, "chosen_trial": best_trial}
        record.update(params=params, space=space_record(target.search))
        specs.append(with_values(target, confirmation_name(target.name, seed), params, seed, record, target.name))
    return specs


# --------------------------------------------------------------------------- the study


def storage_url(root: Path) -> str:
    return f"sqlite:///{(root / TUNE_DB).absolute()}"


def open_storage(root: Path):
    """Optuna's RDB storage on `<root>/tune.db`; a file that is no study database is a ResultsError."""
    import optuna
    import sqlalchemy.exc

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        # A long busy timeout: several workers write to the one SQLite file.
        return optuna.storages.RDBStorage(storage_url(root), engine_kwargs={"connect_args": {"timeout": 120}})
    except (sqlalchemy.exc.SQLAlchemyError, RuntimeError, ValueError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise ResultsError(
            f"{root / TUNE_DB}: not a usable Optuna study database ({reason}); move it aside to start the tuning afresh"
        ) from None


def make_sampler(search: SearchConfig, seed: int, worker: int):
    import optuna

    if search.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed + worker)  # each worker its own stream of start-up points
    # Quasi-random: the Sobol sequence's position is kept in the study, shared by all workers.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # QMCSampler is marked experimental
        return optuna.samplers.QMCSampler(scramble=True, seed=seed, warn_independent_sampling=False)


def make_pruner(search: SearchConfig, epochs: int):
    import optuna

    if search.pruner == "none":
        return optuna.pruners.NopPruner()
    if search.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs)
    return optuna.pruners.SuccessiveHalvingPruner()


def open_study(target: Target, root: Path, worker: int = 0):
    """The target's study in `<root>/tune.db`, created if new."""
    import optuna

    config = target.spec.config
    try:
        return optuna.create_study(
            study_name=target.name,
            storage=open_storage(root),
            sampler=make_sampler(target.search, config.training.seed, worker),
            pruner=make_pruner(target.search, config.training.epochs),
            direction="maximize",
            load_if_exists=True,
        )
    except ValueError as exc:  # e.g. a study of that name that minimizes
        raise ResultsError(f"{root / TUNE_DB}: study {target.name}: {exc}") from None


def suggest(trial, target: Target) -> dict[str, Any]:
    """The trial's value of each searched field (a resumed trial gets the values it was given);
    a range on a whole-number field gives whole numbers."""
    plain = target.spec.config.model_dump(by_alias=True, mode="json", exclude={"sweep", "search"})
    params = {}
    for key, entry in target.search.space.items():
        try:
            if not isinstance(entry, SearchRange):
                params[key] = trial.suggest_categorical(key, list(entry))
            elif isinstance(field_value(plain, key), int):
                params[key] = trial.suggest_int(key, int(entry.low), int(entry.high), log=entry.log)
            else:
                params[key] = trial.suggest_float(key, entry.low, entry.high, log=entry.log)
        except ValueError as exc:  # the study in tune.db was started with another range for this field
            raise ConfigError(
                f"{target.spec.source}: search.space.{key}: differs from the search study {target.name} in "
                f"tune.db was started with ({exc}); tune into another --results folder"
            ) from None
    return params


@dataclass
class Claimed:
    """A trial this process trains: the Optuna trial, and its claim (held until the study is told)."""

    trial: Any
    claim: locks.RunLock
    resumed: bool = False


@dataclass
class WaitFor:
    """No trial left to ask, but another process trains this one: wait for its claim."""

    name: str


def next_trial(study, target: Target, root: Path) -> Claimed | WaitFor | None:
    """Under the study's lock: a trial cut short (its claim free) to resume, else a new trial if the
    study has fewer than `trials`, else one to wait for, else None (the study is done)."""
    import optuna
    from optuna.trial import TrialState

    with locks.study_lock(root, target.name):
        trials = study.get_trials(deepcopy=False)
        busy = None
        for frozen in trials:
            if frozen.state != TrialState.RUNNING:
                continue
            claim = locks.RunLock(root, trial_name(target.name, frozen.number), CLAIM)
            try:
                claim.acquire()
            except locks.RunLocked:
                busy = busy or trial_name(target.name, frozen.number)
                continue
            if not _still_running(study, frozen.number):  # its process told the study and let go meanwhile
                claim.release()
                continue
            logger.info(f"{trial_name(target.name, frozen.number)}: cut short earlier (its process ended); resuming it")
            return Claimed(optuna.trial.Trial(study, frozen._trial_id), claim, resumed=True)
        if sum(t.state != TrialState.WAITING for t in trials) < target.search.trials:
            trial = study.ask()
            claim = locks.RunLock(root, trial_name(target.name, trial.number), CLAIM)
            claim.acquire()
            return Claimed(trial, claim)
        return WaitFor(busy) if busy else None


def _still_running(study, number: int) -> bool:
    """Whether trial `number` is RUNNING in the study's database now (not as first listed)."""
    from optuna.trial import TrialState

    return any(t.number == number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))


def finished_run(root: Path, spec: RunSpec) -> results.SavedRun | None:
    """`spec`'s run as saved, if it ended (completed, pruned or diverged) with this config."""
    try:
        run = results.load_run(results.run_dir(root, spec.name))
    except results.DamagedRun:
        return None
    if run is None or run.record.config_hash != config_hash(spec.config):
        return None
    return run if run.record.status in (COMPLETED, PRUNED, DIVERGED) else None


def _pruning_rule(trial, enabled: bool):
    """The runner's should_prune: report each epoch's validation accuracy to the trial, ask the pruner."""

    def should_prune(epoch: int, logs: dict) -> bool:
        value = logs.get("val_accuracy")
        if value is None:
            return False
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a resumed trial reports again an epoch it had reported
            trial.report(value, epoch)
        return enabled and trial.should_prune()

    return should_prune


def train_trial(claimed: Claimed, study, target: Target, root: Path, verbose, threads) -> RunOutcome:
    """Train one claimed trial as a run and tell the study how it ended."""
    from optuna.trial import TrialState

    trial = claimed.trial
    params = suggest(trial, target)
    spec = trial_spec(target, trial.number, params)
    trial.set_user_attr("run", spec.name)
    saved = finished_run(root, spec) if claimed.resumed else None
    if saved is not None:
        outcome = RunOutcome(spec.name, saved.record.status, saved.folder, saved.metrics)
    else:
        # A RegexpError here (data that cannot be loaded, a run folder of another config) concerns
        # every trial: it stops the tuning in one line, this trial left to be resumed.
        outcome = run_experiment(
            spec,
            root,
            verbose=verbose,
            threads=threads,
            should_prune=_pruning_rule(trial, target.search.pruner != "none"),
        )
    record = outcome.record
    value = record.best_val_accuracy if record is not None else None
    if outcome.status == COMPLETED and value is not None:
        study.tell(trial, value, skip_if_finished=True)
    elif outcome.status == PRUNED:
        study.tell(trial, state=TrialState.PRUNED, skip_if_finished=True)
    else:
        why = "diverged (non-finite loss)" if outcome.status == DIVERGED else outcome.status
        shown = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in params.items())
        logger.warning(f"{spec.name}: {why} at {shown}; left out of the search")
        study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
    return outcome


def run_trials(
    target: Target, root: Path, *, verbose=0, threads: int | None = None, worker: int = 0, wait: bool = True
) -> None:
    """Train the target's trials until its study holds `trials` finished ones (resuming any cut
    short); with `wait`, also wait for those other processes are training, else leave them."""
    study = open_study(target, root, worker)
    while True:
        chosen = next_trial(study, target, root)
        if chosen is None or (isinstance(chosen, WaitFor) and not wait):
            return
        if isinstance(chosen, WaitFor):
            logger.info(f"{chosen.name}: being trained by another process; waiting for it")
            locks.wait_until_free(root, chosen.name, CLAIM)
            continue
        try:
            train_trial(chosen, study, target, root, verbose, threads)
        finally:
            chosen.claim.release()


# --------------------------------------------------------------------------- workers


def work_on_studies(targets: list[Target], root: Path, threads: int | None, worker: int) -> None:
    """A trial worker's loop (a worker process's, or a Ray task's): train trials of every study
    until each holds its `trials`, then wait for those the other workers are training (and
    resume any whose worker died meanwhile). Raises RegexpError for what concerns every trial."""
    for wait in (False, True):  # every study's trials first; then wait for those the other workers train
        for target in targets:
            run_trials(target, root, verbose=0, threads=threads, worker=worker, wait=wait)


def _worker_main(targets: list[Target], root: Path, threads: int, worker: int) -> None:
    from regexp.run import logs

    logs.print_lines()
    try:
        work_on_studies(targets, root, threads, worker)
    except RegexpError as exc:  # one line, as the CLI says it; the driver reports the worker's exit code
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


def run_all_trials(targets: list[Target], root: Path, jobs: int, verbose) -> None:
    """Every target's trials: in this process, or in `jobs` worker processes sharing each study."""
    if jobs == 1:
        for target in targets:
            run_trials(target, root, verbose=verbose)
        return
    threads = max(1, (os.cpu_count() or 1) // jobs)
    logger.info(f"tuning with {jobs} worker processes, {threads} TensorFlow thread{'s' * (threads > 1)} each")
    context = multiprocessing.get_context("spawn")  # a fresh interpreter each: TensorFlow's threads are set at start
    workers = [context.Process(target=_worker_main, args=(targets, root, threads, i)) for i in range(jobs)]
    for process in workers:
        process.start()
    try:
        for process in workers:
            process.join()
    except BaseException:
        for process in workers:
            process.terminate()
        raise
    stopped = {process.pid: process.exitcode for process in workers if process.exitcode}
    if stopped:
        check_stopped_workers(stopped, jobs, studies_ended(targets, root))


def check_stopped_workers(stopped: dict[int, int], jobs: int, studies_done: bool) -> None:
    """Workers that stopped early ({pid: exit code}): those killed (a signal) are said, and the
    tuning goes on if the other workers resumed and ended their trials (`studies_done`); a worker
    that stopped on an error (said in its own line), or trials left cut short, stop it here."""
    killed = {pid: _signal_name(-code) for pid, code in stopped.items() if code < 0}
    if studies_done and len(killed) == len(stopped):
        for pid, name in killed.items():
            logger.warning(f"tuning worker pid {pid} was killed ({name}); the other workers ended every trial")
        return
    how = [
        f"pid {pid} killed ({killed[pid]})" if pid in killed else f"pid {pid} exit code {code}"
        for pid, code in stopped.items()
    ]
    raise RegexpError(
        f"{len(stopped)} of {jobs} tuning workers stopped ({', '.join(how)}); run the same command again to "
        "resume (a trial cut short is resumed)"
    )


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:  # a real-time signal has no name
        return f"signal {number}"


def studies_ended(targets: list[Target], root: Path) -> bool:
    """Whether every target's study in tune.db holds its `trials`, none of them cut short."""
    recorded = recorded_trials(root)
    counts = [(trial_counts(recorded.get(t.name, {})), t.search.trials) for t in targets]
    return all(ended >= trials and not cut_short for (ended, cut_short), trials in counts)


# --------------------------------------------------------------------------- confirmation


@dataclass
class Chosen:
    """A study's best trial: its number, values and objective, and how many trials the study ran."""

    target: Target
    trial: int
    params: dict[str, Any]
    value: float
    trials: int
    states: dict[str, int] = field(default_factory=dict)


def best_of(target: Target, root: Path) -> Chosen | None:
    """The target study's best completed trial, or None (said so) if no trial completed."""
    from optuna.trial import TrialState

    study = open_study(target, root)
    trials = study.get_trials(deepcopy=False)
    states: dict[str, int] = {}
    for t in trials:
        states[t.state.name.lower()] = states.get(t.state.name.lower(), 0) + 1
    if not any(t.state == TrialState.COMPLETE for t in trials):
        logger.warning(f"{target.name}: no trial completed ({states}); it is not confirmed")
        return None
    best = study.best_trial
    return Chosen(target, best.number, dict(best.params), best.value, len(trials), states)


def plan_confirmation(targets: list[Target], root: Path) -> tuple[list[Chosen], list[RunSpec]]:
    """Each study's best trial and its confirmation runs, on seeds no trial of these studies used."""
    used = {t.spec.config.training.seed for t in targets}
    chosen = [c for c in (best_of(t, root) for t in targets) if c is not None]
    specs = []
    for c in chosen:
        specs += confirmation_specs(c.target, c.trial, c.params, fresh_seeds(used, c.target.search.confirm_seeds))
    return chosen, specs


# --------------------------------------------------------------------------- the plan, before spending the time


def recorded_trials(root: Path) -> dict[str, dict[str, int]]:
    """{study: {trial state: count}} as `<root>/tune.db` holds them, read without writing (no
    database is made where none is, none is migrated); {} where there is none. A file that is no
    Optuna database is a ResultsError, as when tuning would open it."""
    import sqlite3

    path = root / TUNE_DB
    if not path.exists():
        return {}
    if path.is_symlink() or not path.is_file():
        raise ResultsError(f"{path}: not a plain file; move it aside to start the tuning afresh")
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path.absolute()}?mode=ro", uri=True)) as db:
            rows = db.execute(
                "SELECT studies.study_name, trials.state, COUNT(*) FROM trials "
                "JOIN studies ON trials.study_id = studies.study_id GROUP BY studies.study_name, trials.state"
            ).fetchall()
    except sqlite3.Error as exc:
        raise ResultsError(
            f"{path}: not a usable Optuna study database ({exc}); move it aside to start the tuning afresh"
        ) from None
    found: dict[str, dict[str, int]] = {}
    for study, state, count in rows:
        found.setdefault(str(study), {})[str(state)] = int(count)
    return found


def trials_ended_line(targets: list[Target], root: Path) -> str | None:
    """ "[tune 3/8 trials ended]" as tune.db holds it now; None if it cannot be read just now."""
    try:
        recorded = recorded_trials(root)
    except ResultsError:  # busy with the workers' writes: the next look will tell
        return None
    ended = sum(min(trial_counts(recorded.get(t.name, {}))[0], t.search.trials) for t in targets)
    return f"[tune {ended}/{sum(t.search.trials for t in targets)} trials ended]"


def trial_counts(states: dict[str, int]) -> tuple[int, int]:
    """(trials ended, trials cut short: RUNNING) of a study's {state: count} (recorded_trials)."""
    ended = sum(count for state, count in states.items() if state not in ("RUNNING", "WAITING"))
    return ended, states.get("RUNNING", 0)


def plan_lines(targets: list[Target], root: Path) -> list[str]:
    """What `regexp tune` would do, one line per study, and the time it would take (estimated from
    comparable runs on disk); reads `root`, writes nothing."""
    from regexp.run.dry_run import estimate_line

    recorded = recorded_trials(root)
    lines = [f"dry run: {len(targets)} studies -> {root / TUNE_DB}" + ("" if recorded else " (no study recorded yet)")]
    to_train: list[RunSpec] = []
    for target in targets:
        ended, cut_short = trial_counts(recorded.get(target.name, {}))
        new = max(0, target.search.trials - ended - cut_short)
        confirmed = _completed_confirmations(target, root)
        left = max(0, target.search.confirm_seeds - confirmed)
        lines.append(
            f"  {target.name}: {ended} of {target.search.trials} trials ended"
            + (f", {cut_short} cut short (resumed)" if cut_short else "")
            + f", {new} new; then {left} of {target.search.confirm_seeds} confirmation runs to train"
        )
        to_train += [target.spec] * (new + cut_short + left)
    lines.append(estimate_line(to_train, root) + ("; pruned trials take less" if to_train else ""))
    lines.append("nothing was trained or written")
    return lines


def _completed_confirmations(target: Target, root: Path) -> int:
    """How many of the target's confirmation runs are completed under `root` (any seed)."""
    prefix = confirmation_name(target.name, 0).rsplit("-", 1)[0] + "-"
    try:
        names = [entry.name for entry in os.scandir(root) if entry.name.startswith(prefix)]
    except OSError:
        return 0
    return sum(results.completed_hash(results.run_dir(root, name)) is not None for name in names)


# --------------------------------------------------------------------------- the whole tuning


@dataclass
class Tuned:
    """How a tuning ended: each study's chosen trial, the confirmation runs' outcomes, and the
    damaged confirmation folders that were set aside before they trained again."""

    chosen: list[Chosen]
    outcomes: list[RunOutcome]
    damaged: list[str]


def run_tuning(
    targets: list[Target],
    root: Path,
    *,
    jobs: int | None,
    verbose,
    on_confirmation,
    after_each=None,
    ray_cluster: RayCluster | None = None,
) -> Tuned:
    """Every study's trials, then each chosen trial re-run on fresh seeds: locally (`jobs` worker
    processes sharing each study, 1 by default), or on `ray_cluster` (`jobs` trial workers as
    Ray tasks, by default as many as it holds; the confirmation runs as `regexp sweep --backend
    ray --shared-results` runs them). `on_confirmation(damaged)` is told the damaged confirmation
    folders before they are set aside; `after_each(outcome)` hears of each confirmation run as
    it ends. Raises KeyboardInterrupt or SweepInterrupted when stopped: the same call resumes."""
    from regexp.run.sweep import make_executor

    if ray_cluster is None:
        run_all_trials(targets, root, jobs or 1, verbose)
        return confirm(targets, root, make_executor(root, jobs=jobs or 1, verbose=verbose), on_confirmation, after_each)
    from regexp.run import ray_backend

    with ray_backend.connected(ray_cluster.address) as ray:  # one connection for the trials and the confirmation
        shared = root.resolve()  # the workers find the study where this driver made it
        work = ray_backend.TrialWork(work_on_studies, targets, shared, shared / TUNE_DB)
        ray_backend.run_trial_workers(ray, work, jobs, ray_cluster, progress=lambda: trials_ended_line(targets, root))
        executor = make_executor(
            root,
            backend="ray",
            address=ray_cluster.address,
            cpus_per_run=ray_cluster.cpus_per_run,
            gpus_per_run=ray_cluster.gpus_per_run,
            shared_results=True,  # the trial workers needed the root on every node already
        )
        return confirm(targets, root, executor, on_confirmation, after_each)


def confirm(targets: list[Target], root: Path, executor, on_confirmation, after_each) -> Tuned:
    """Each study's best trial re-run on fresh seeds through `executor` (those completed kept)."""
    from regexp.run.runner import existing_completed
    from regexp.run.sweep import run_sweep

    chosen, specs = plan_confirmation(targets, root)
    todo = [spec for spec in specs if not existing_completed(spec, root, False)]
    logger.info(f"confirmation: {len(specs)} runs, {len(specs) - len(todo)} already completed, {len(todo)} to run")
    damaged = results.damaged_runs(root, [spec.name for spec in todo])
    on_confirmation(damaged)
    outcomes = run_sweep(todo, executor, after_each=after_each)
    return Tuned(chosen, outcomes, damaged)


def run_names(targets: list[Target], root: Path) -> list[str]:
    """The run folders under `root` that belong to the targets' studies: trials and confirmations."""
    prefixes = tuple(f"{target.name}__{kind}" for target in targets for kind in ("trial-", "confirm__"))
    try:
        return sorted(entry.name for entry in os.scandir(root) if entry.name.startswith(prefixes))
    except OSError:
        return []
