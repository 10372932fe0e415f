"""The command line: parses options and calls the library. Nothing here imports TensorFlow."""

from __future__ import annotations

import contextlib
import enum
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from regexp.errors import RegexpError
from regexp.study.escape import visible

app = typer.Typer(
    help="Experiments on L1, L2 and elastic-net regularization of a CNN on EMNIST.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)

ResultsOption = Annotated[
    Path, typer.Option("--results", "-r", help="Results root: each run writes a folder under it.")
]
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        "-s",
        metavar="SECTION.FIELD=VALUE",
        help="Override a config field, e.g. --set data.limit=600 (repeatable; values are YAML).",
    ),
]
EpochsOption = Annotated[int | None, typer.Option("--epochs", "-e", min=1, help="Override training.epochs.")]
ForceOption = Annotated[bool, typer.Option("--force", help="Run again even where a completed run exists.")]
SesoiOption = Annotated[
    float,
    typer.Option(
        "--sesoi",
        metavar="POINTS",
        help="Smallest effect of interest, in points of test accuracy: differences smaller than this do not "
        "matter (equivalence tests, seeds needed).",
    ),
]
ThreadsOption = Annotated[
    int | None, typer.Option("--threads", min=1, help="TensorFlow threads per run (default: all cores).")
]


# regexp.study.mlflow_export.DEFAULT_TRACKING_URI (a test keeps them equal), written here so --help imports nothing more
MLFLOW_DEFAULT_URI = "sqlite:///mlflow.db"
MlflowOption = Annotated[
    str | None,
    typer.Option(
        "--mlflow",
        metavar="URI",
        help="Also send each run to this MLflow tracking store as it completes, e.g. sqlite:///mlflow.db "
        "(the mlflow extra); a store that fails is one warning, never a lost run.",
    ),
]


def _live_logger(results: Path, uri: str | None):
    """The MLflow sender of `--mlflow URI` (None without it); refuses at once if MLflow is not installed."""
    if uri is None:
        return None
    from regexp.study.mlflow_export import LiveLogger, require_mlflow

    require_mlflow()
    return LiveLogger(results, uri, lambda line: typer.echo(line, err=True))


class Backend(str, enum.Enum):
    local = "local"
    ray = "ray"


BackendOption = Annotated[
    Backend,
    typer.Option("--backend", help="Where runs train: local processes, or tasks on a Ray cluster (the ray extra)."),
]
AddressOption = Annotated[
    str | None,
    typer.Option("--address", help="Ray: the cluster, HEAD:6379 (default: $RAY_ADDRESS, else a local Ray)."),
]
CpusPerRunOption = Annotated[
    int | None,
    typer.Option("--cpus-per-run", min=1, help="Ray: CPUs each run reserves, and its TensorFlow threads (default 1)."),
]
GpusPerRunOption = Annotated[
    float | None,
    typer.Option(
        "--gpus-per-run",
        min=0,
        help="Ray: GPUs each run reserves, may be a fraction (default: 1 if the cluster has GPUs).",
    ),
]
SharedResultsOption = Annotated[
    bool,
    typer.Option(
        "--shared-results", help="Ray: workers write straight into --results, mounted at the same path on every node."
    ),
]


@app.callback()
def _group(
    verbose: Annotated[
        bool, typer.Option("--verbose", help="Show TensorFlow's own start-up and log lines (hidden by default).")
    ] = False,
) -> None:
    """Experiments on L1, L2 and elastic-net regularization of a CNN on EMNIST.

    Start with the offline demo: regexp run configs/demo_digits.yaml
    """
    from regexp.run.logs import print_lines

    print_lines()
    if verbose:
        from regexp.console import VERBOSE_ENV

        os.environ[VERBOSE_ENV] = "1"  # inherited by worker processes


@contextlib.contextmanager
def user_errors():
    """Turn a RegexpError into one line on stderr and exit code 2: no traceback."""
    try:
        yield
    except RegexpError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _existing_folder(root: Path) -> Path:
    """`root` if it is a folder (a results root or one run folder), else RegexpError in one line."""
    if root.is_dir():
        return root
    what = "does not exist" if not os.path.lexists(root) else "is not a folder"
    raise RegexpError(f"{root}: {what}; give a results root or one run folder")


def _overrides(epochs: int | None, settings: list[str] | None) -> list[str]:
    return [*(settings or []), *([f"training.epochs={epochs}"] if epochs else [])]


def _keras_verbosity() -> int:
    return 1 if sys.stdout.isatty() else 2  # a progress bar on a terminal, a line per epoch in logs


def _say_damaged(root: Path, damaged: list[str]) -> None:
    """Name each damaged run folder that the runs about to start will set aside."""
    from regexp import results

    for problem in damaged:
        typer.echo(f"damaged: {visible(problem)}; it is moved to {root / results.DAMAGED} and trained again", err=True)
    return damaged


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help="A YAML config file, e.g. configs/l2_activity.yaml.")],
    results: ResultsOption = Path("results"),
    epochs: EpochsOption = None,
    set_: SetOption = None,
    force: ForceOption = False,
    threads: ThreadsOption = None,
    mlflow: MlflowOption = None,
) -> None:
    """Run one experiment: train, evaluate, and write its results folder."""
    from regexp import results as results_lib
    from regexp.config import load_runs
    from regexp.run.runner import COMPLETED, SKIPPED, run_experiment

    with user_errors():
        specs = load_runs(config, _overrides(epochs, set_))
        if len(specs) > 1:
            raise RegexpError(f"{config}: sweep: this config asks for {len(specs)} runs; use `regexp sweep {config}`")
        tracker = _live_logger(results, mlflow)
        _say_damaged(results, results_lib.damaged_runs(results, [specs[0].name]))
        outcome = run_experiment(specs[0], results, force=force, verbose=_keras_verbosity(), threads=threads)
    if tracker is not None and outcome.status != SKIPPED:
        tracker.send([outcome.name])
    if outcome.status not in (COMPLETED, SKIPPED):
        raise typer.Exit(1)
    typer.echo(f"Results: {outcome.folder}")


@app.command()
def sweep(
    folder: Annotated[Path, typer.Argument(help="A folder of YAML configs (or one config with a sweep: grid).")],
    results: ResultsOption = Path("results"),
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs", "-j", min=1, help="Runs at once, each in its own process; cores are split between them."
        ),
    ] = 1,
    epochs: EpochsOption = None,
    set_: SetOption = None,
    force: ForceOption = False,
    seeds: Annotated[
        int | None,
        typer.Option(
            "--seeds",
            min=1,
            help="Run every config with training.seed 0..N-1, so the report can give confidence "
            "intervals and paired tests (a config whose grid already varies the seed keeps its own).",
        ),
    ] = None,
    backend: BackendOption = Backend.local,
    address: AddressOption = None,
    cpus_per_run: CpusPerRunOption = None,
    gpus_per_run: GpusPerRunOption = None,
    shared_results: SharedResultsOption = False,
    mlflow: MlflowOption = None,
    sesoi: SesoiOption = 0.5,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Print the plan and train nothing: the runs to train, those already completed, and a time "
            "estimate from comparable runs on disk. Writes nothing.",
        ),
    ] = False,
) -> None:
    """Run every config in a folder (grids expanded), then write the summary and comparison figures."""
    from regexp.run.sweep import SweepInterrupted, any_failed, make_executor, plan_study, run_study, status_table
    from regexp.study.stats import sesoi_fraction

    with user_errors():
        _check_backend_options(backend, jobs, address, cpus_per_run, gpus_per_run, shared_results)
        sesoi_fraction(sesoi)  # refused before anything trains
        if dry_run:
            _print_plan(folder, _overrides(epochs, set_), results, force, seeds)
            return
        study = plan_study(folder, _overrides(epochs, set_), results, force, seeds)
        tracker = _live_logger(results, mlflow)
        typer.echo(f"{study.size} runs: {len(study.done)} already completed, {len(study.todo)} to run -> {results}")
        _say_damaged(results, study.damaged)
        executor = make_executor(
            results,
            jobs=jobs,
            force=force,
            verbose=_keras_verbosity(),
            backend=backend.value,
            address=address,
            cpus_per_run=cpus_per_run,
            gpus_per_run=gpus_per_run,
            shared_results=shared_results,
        )
        try:
            send = None if tracker is None else (lambda outcome: tracker.send([outcome.name]))
            outcomes = run_study(study, executor, after_each=send)
        except SweepInterrupted as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(130) from None
        typer.echo(status_table(outcomes))
        skipped_folders = _write_study_outputs(results, sesoi)
        if tracker is not None:  # the configs' statistics, now that the report has written stats.csv
            tracker.send(spec.name for spec in study.todo)
    if any_failed(outcomes) or study.damaged or skipped_folders:
        raise typer.Exit(1)


def _print_plan(folder: Path, overrides: list[str], root: Path, force: bool, seeds: int | None) -> None:
    """--dry-run: validate every config and print what a sweep would do (nothing trained or written)."""
    from regexp import results as results_lib
    from regexp.run.dry_run import plan_lines
    from regexp.run.sweep import plan

    todo, done = plan(folder, overrides, root, force, seeds)
    damaged = results_lib.damaged_runs(root, [spec.name for spec in todo]) if root.is_dir() else []
    for line in plan_lines(todo, done, root, damaged):
        typer.echo(visible(line))


def _write_study_outputs(root: Path, sesoi: float) -> list[str]:
    """The summary, comparison figures and report of `root`, written after a study's runs (one
    writer at a time: sweeps sharing the root take turns); returns the run folders left out."""
    from regexp.results import summary_lock
    from regexp.study.plots import plot_results

    with summary_lock(root):
        skipped_folders = plot_results(root).skipped
        for problem in skipped_folders:
            typer.echo(f"skipped: {visible(problem)}", err=True)
        typer.echo(f"Summary: {root / 'summary.md'}")
        _write_report(root, None, sesoi, name_skipped=False)  # plot_results named them just above
    return skipped_folders


class SamplerChoice(str, enum.Enum):
    qmc = "qmc"
    tpe = "tpe"


class PrunerChoice(str, enum.Enum):
    none = "none"
    successive_halving = "successive_halving"
    hyperband = "hyperband"


@app.command()
def tune(
    path: Annotated[Path, typer.Argument(help="A config with a search: section, or a folder of them.")],
    results: ResultsOption = Path("results"),
    trials: Annotated[int | None, typer.Option("--trials", min=1, help="Trials per config (search.trials).")] = None,
    confirm_seeds: Annotated[
        int | None,
        typer.Option(
            "--confirm-seeds", min=2, help="Fresh seeds the best values are re-run on (search.confirm_seeds)."
        ),
    ] = None,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            "-j",
            min=1,
            help="Trial workers sharing each study: local processes (default 1, and as many confirmation runs at "
            "once), or Ray tasks (default: as many as the cluster holds).",
        ),
    ] = None,
    sampler: Annotated[
        SamplerChoice | None, typer.Option("--sampler", help="qmc (quasi-random) or tpe (search.sampler).")
    ] = None,
    pruner: Annotated[
        PrunerChoice | None,
        typer.Option("--pruner", help="none, successive_halving or hyperband (search.pruner)."),
    ] = None,
    epochs: EpochsOption = None,
    set_: SetOption = None,
    backend: BackendOption = Backend.local,
    address: AddressOption = None,
    cpus_per_run: CpusPerRunOption = None,
    gpus_per_run: GpusPerRunOption = None,
    sesoi: SesoiOption = 0.5,
    mlflow: MlflowOption = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Print the plan and train nothing: each study's trials ended and to train, its confirmation "
            "runs, and a time estimate from comparable runs on disk. Writes nothing (not even tune.db).",
        ),
    ] = False,
) -> None:
    """Tune each config's search: on validation accuracy (Optuna), re-run its best values on fresh
    seeds, and report each config at its best against the baseline at its best."""
    from regexp import results as results_lib
    from regexp.run import tune as tune_lib
    from regexp.run.sweep import SweepInterrupted, any_failed, status_table
    from regexp.study.stats import sesoi_fraction

    with user_errors():
        _check_ray_options(backend, address, cpus_per_run, gpus_per_run, shared_results=False)
        sesoi_fraction(sesoi)  # refused before anything trains
        overrides = _overrides(epochs, set_) + tune_lib.search_overrides(
            trials, confirm_seeds, sampler and sampler.value, pruner and pruner.value
        )
        targets = tune_lib.load_targets(path, overrides)
        if dry_run:
            for line in tune_lib.plan_lines(targets, results):
                typer.echo(visible(line))
            return
        results_lib.ensure_writable_root(results)
        tune_lib.open_storage(results)  # a damaged tune.db is said before anything trains
        tracker = _live_logger(results, mlflow)
        planned = sum(t.search.trials for t in targets)
        typer.echo(f"{len(targets)} studies, {planned} trials in all -> {results / tune_lib.TUNE_DB}")
        try:
            tuned = tune_lib.run_tuning(
                targets,
                results,
                jobs=jobs,
                verbose=_keras_verbosity(),
                on_confirmation=lambda damaged: _say_damaged(results, damaged),
                after_each=None if tracker is None else (lambda outcome: tracker.send([outcome.name])),
                ray_cluster=_ray_cluster(backend, address, cpus_per_run, gpus_per_run),
            )
        except (KeyboardInterrupt, SweepInterrupted):
            typer.echo("interrupted: the same command resumes the tuning where it stopped", err=True)
            raise typer.Exit(130) from None
        if tuned.outcomes:
            typer.echo(status_table(tuned.outcomes))
        skipped_folders = _write_study_outputs(results, sesoi)  # and the tuning report
        if tracker is not None:  # the trials (trained in worker processes) and the configs' statistics
            tracker.send(tune_lib.run_names(targets, results))
    unconfirmed = len(targets) - len(tuned.chosen)  # a study none of whose trials completed (each named above)
    if any_failed(tuned.outcomes) or tuned.damaged or skipped_folders or unconfirmed:
        raise typer.Exit(1)


def _check_backend_options(backend: Backend, jobs: int, address, cpus_per_run, gpus_per_run, shared_results) -> None:
    """A sweep's options: refuse those that do not belong to the chosen backend; for Ray, check that it is installed."""
    if backend is Backend.ray and jobs != 1:
        raise RegexpError("--jobs is for the local backend; on Ray, --cpus-per-run sets how many runs fit at once")
    _check_ray_options(backend, address, cpus_per_run, gpus_per_run, shared_results)


def _check_ray_options(backend: Backend, address, cpus_per_run, gpus_per_run, shared_results: bool) -> None:
    """Refuse Ray's options without --backend ray; with it, check that Ray is installed."""
    if backend is Backend.ray:
        from regexp.run.ray_backend import require_ray

        require_ray()
    elif address is not None or cpus_per_run is not None or gpus_per_run is not None or shared_results:
        raise RegexpError("--address, --cpus-per-run, --gpus-per-run and --shared-results need --backend ray")


def _ray_cluster(backend: Backend, address, cpus_per_run, gpus_per_run):
    """The Ray cluster `regexp tune` runs on, or None for the local backend."""
    if backend is not Backend.ray:
        return None
    from regexp.run.ray_backend import RayCluster

    return RayCluster(address, cpus_per_run, gpus_per_run)


class ImageFormat(str, enum.Enum):
    png = "png"
    svg = "svg"


@app.command()
def plot(
    root: Annotated[Path, typer.Argument(help="A results root, or one run folder.")] = Path("results"),
    format: Annotated[
        ImageFormat, typer.Option("--format", "-f", help="Image format of the figures.")
    ] = ImageFormat.png,
    redraw: Annotated[
        bool,
        typer.Option(
            "--redraw",
            help="Redraw every run's own loss and accuracy curves, also those already drawn after its "
            "last epoch (e.g. after upgrading regexp).",
        ),
    ] = False,
) -> None:
    """Draw the comparison figures and the summary from saved runs, and any run's curves that are
    missing or out of date (no training, no TensorFlow)."""
    from regexp.study.plots import plot_results

    with user_errors():
        report = plot_results(_existing_folder(root), format.value, redraw=redraw)
        if not (report.found or report.skipped):
            raise RegexpError(f"{root}: no runs here (a run folder holds a metrics.json)")
    for problem in report.skipped:
        typer.echo(f"skipped: {visible(problem)}", err=True)
    current = (
        f" ({report.runs_current} of {report.runs} runs' curves were up to date; --redraw redraws them)"
        if report.runs_current
        else ""
    )
    typer.echo(f"wrote {len(report.written)} files under {root}{current}")
    if report.skipped:
        raise typer.Exit(1)


@app.command()
def report(
    root: Annotated[Path, typer.Argument(help="A results root.")] = Path("results"),
    baseline: Annotated[
        str | None,
        typer.Option(
            "--baseline",
            "-b",
            help="The config every other is compared with (default: the only one without regularization).",
        ),
    ] = None,
    sesoi: SesoiOption = 0.5,
) -> None:
    """Write report.html, report.md and stats.csv: each config's test accuracy with its 95 % interval,
    its difference from the baseline (paired or Welch t-test, Holm-corrected), equivalence within the
    smallest effect of interest, the seeds that would decide, and why (no TensorFlow)."""
    with user_errors():
        written = _write_report(_existing_folder(root), baseline, sesoi)
    if written.skipped:
        raise typer.Exit(1)


def _write_report(root: Path, baseline: str | None, sesoi: float, name_skipped: bool = True):
    """Write the report of `root`, name what was skipped, and print the answer."""
    from regexp.study.report import write_report
    from regexp.study.tune_report import write_tuning

    written = write_report(root, baseline, sesoi_points=sesoi)
    for line in written.skipped if name_skipped else []:
        typer.echo(f"skipped: {visible(line)}", err=True)
    typer.echo("\n".join(map(visible, written.answer)))
    typer.echo(f"Report: {root / 'report.html'} (and report.md, stats.csv)")
    tuning = write_tuning(root)  # a root `regexp tune` wrote into: its search and confirmation
    if tuning is not None:
        typer.echo("Tuning, each config at its best against the baseline at its best:")
        typer.echo("\n".join(f"  {line}" for line in tuning.answer + tuning.warnings))
        typer.echo(f"Tuning report: {root / 'tuning.html'} (and tuning.md, tuning.png)")
    return written


class ExportFormat(str, enum.Enum):
    csv = "csv"
    json = "json"


class ExportTarget(str, enum.Enum):
    mlflow = "mlflow"


@app.command()
def export(
    root: Annotated[Path, typer.Argument(help="A results root, or one run folder.")] = Path("results"),
    format: Annotated[ExportFormat, typer.Option("--format", "-f", help="csv or json.")] = ExportFormat.csv,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")] = None,
    to: Annotated[
        ExportTarget | None,
        typer.Option(
            "--to",
            help="Send the runs to an experiment tracker instead: mlflow (the mlflow extra). Seeds of one config "
            "become child runs of one parent run with the config's statistics; runs already there are not sent again.",
        ),
    ] = None,
    tracking_uri: Annotated[
        str,
        typer.Option("--tracking-uri", metavar="URI", help="--to mlflow: the tracking store (a file or a server)."),
    ] = MLFLOW_DEFAULT_URI,
    experiment: Annotated[
        str | None,
        typer.Option("--experiment", help="--to mlflow: the experiment (default: the results root's absolute path)."),
    ] = None,
    with_weights: Annotated[
        bool, typer.Option("--with-weights", help="--to mlflow: send each run's model.weights.h5 too.")
    ] = False,
) -> None:
    """One row per saved run: its resolved config and every metric, as dotted columns (no TensorFlow);
    or, with --to mlflow, every run into an MLflow tracking store."""
    from regexp import results
    from regexp.study.export import collect_rows, export_text

    if to is ExportTarget.mlflow:
        with user_errors():
            if output is not None or format is not ExportFormat.csv:
                raise RegexpError("--output and --format write a file; --to mlflow sends the runs to MLflow instead")
            _export_to_mlflow(root, tracking_uri, experiment, with_weights)
        return
    with user_errors():
        if experiment is not None or with_weights or tracking_uri != MLFLOW_DEFAULT_URI:
            raise RegexpError("--tracking-uri, --experiment and --with-weights need --to mlflow")
        rows, problems = collect_rows(_existing_folder(root))
        for problem in problems:
            typer.echo(f"skipped: {visible(problem)}", err=True)
        if not rows:
            raise RegexpError(f"{root}: no readable runs here (a run folder holds a metrics.json)")
        text = export_text(rows, format.value)
        if output is None:
            typer.echo(text, nl=False)
            return
        results.write_text_atomic(output, text)  # a failure is one line: results.WriteError
    typer.echo(f"wrote {len(rows)} runs to {output}", err=True)


def _export_to_mlflow(root: Path, tracking_uri: str, experiment: str | None, with_weights: bool) -> None:
    """`regexp export ROOT --to mlflow`: send what is new, say what was left out and what was done."""
    from regexp.study.mlflow_export import export_to_mlflow, summary_line

    if not root.is_dir():
        raise RegexpError(f"{root}: no such folder")
    sent = export_to_mlflow(root, tracking_uri, experiment, with_weights=with_weights)
    for problem in sent.problems:
        typer.echo(f"skipped: {problem}", err=True)
    for line in sent.deleted:
        typer.echo(f"not sent: {line}", err=True)
    for name in sent.replaced:
        typer.echo(f"sent again: {name} (its earlier upload was cut off)", err=True)
    typer.echo(summary_line(sent, tracking_uri))
    typer.echo(f"See them: mlflow server --backend-store-uri {tracking_uri} (the mlflow-ui extra has the UI)")


def main() -> None:
    app()
