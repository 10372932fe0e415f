"""`regexp export ROOT --to mlflow` and `--mlflow URI`: saved runs into an MLflow tracking store.

Everything is read from the files on disk (no TensorFlow). Per run folder, one MLflow run:

- params: the resolved config.yaml as dotted names, as `regexp export` writes them (`config.training.seed`);
- metrics: every column of history.csv with step = epoch, and the run's own results from
  metrics.json (test accuracy and loss, best epoch, sparsity, wall time, ...) at step 0;
- tags: `regexp.*` (config name, config hash, group hash, seed, status, regexp's version and commit);
- artifacts: the figures, metrics.json, config.yaml, history.csv, model.txt (the weights with `with_weights`).

The seeds of one config (a group of `configs.group_runs`) are the child runs of one parent run
per config, which carries the config's params (seed left out) and its row of stats.csv, read by
column name: numbers as metrics (step = n, the seeds it counts), text (baseline, test, verdict)
as `regexp.stats.<column>` tags.

Sending again sends only what is new. Each MLflow run regexp makes carries the tag `regexp.id`
(a seed run: its folder name and its metrics.json's digest, so a run trained again is new; a
parent: its config name and group hash), set last, once everything else is logged: a run
created by an upload that was cut off has only `regexp.incomplete` and is replaced. A run
deleted on the MLflow side is left deleted and named, never re-created behind the user's back.

MLflow (the `mlflow` extra) is imported only inside the functions that talk to the store.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import hashlib
import io
import logging
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from regexp import results
from regexp.errors import RegexpError, TrackingError
from regexp.results import RunStatus, flatten
from regexp.study.configs import group_runs, records_of

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"  # MLflow's own default store since 3.7
ARTIFACTS_FOLDER = "mlartifacts"  # beside a SQLite store's file, as `mlflow server` names it
STATS = "stats.csv"
RUN_ARTIFACTS = (results.METRICS, results.CONFIG, results.HISTORY, results.MODEL_SUMMARY)
FIGURE_SUFFIXES = (".png", ".svg")
# The fields of the run record logged as a run's metrics (with what lies under them); the rest is in its metrics.json artifact.
RESULT_FIELDS = (
    "test_accuracy",
    "test_loss",
    "best_val_accuracy",
    "best_epoch",
    "best_epoch_test_accuracy",
    "best_epoch_test_loss",
    "epochs_run",
    "diverged_epoch",
    "wall_time_s",
    "train_samples_per_s",
    "param_count",
    "sparsity",
    "activations",
)
SEED_PARAM = "config.training.seed"  # left out of a parent's params even where it has a single seed
TAG_ID, TAG_INCOMPLETE, TAG_KIND = "regexp.id", "regexp.incomplete", "regexp.kind"
SEED_RUN, CONFIG_RUN = "seed", "config"
PARENT_TAG = "mlflow.parentRunId"
# A tracking server that does not answer fails the export in seconds, not after MLflow's minutes of retries.
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}


# --------------------------------------------------------------------------- what is sent (pure)


@dataclass(frozen=True)
class RunRecord:
    """One saved run as MLflow receives it."""

    identity: str
    name: str
    params: dict[str, str]
    metrics: list[tuple[str, float, int]]  # (key, value, step)
    tags: dict[str, str]
    artifacts: list[Path]
    status: str  # MLflow's: FINISHED or FAILED
    start_ms: int | None
    end_ms: int | None


@dataclass
class ConfigRecord:
    """One config (its seeds together) as the parent run of its seed runs."""

    identity: str
    label: str
    params: dict[str, str]
    tags: dict[str, str]
    seeds: list[RunRecord] = field(default_factory=list)


def record_digest(folder: Path) -> str:
    """A digest of the run's metrics.json: the same file, the same MLflow run; a run trained again is new."""
    return hashlib.sha256((folder / results.METRICS).read_bytes()).hexdigest()[:16]


def param_value(value) -> str:
    """A config value as an MLflow param: text as it is, null as an empty value, the rest as YAML writes it."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def run_params(config: dict) -> dict[str, str]:
    """The resolved config as params under the dotted names `regexp export` gives its columns."""
    return {key: param_value(value) for key, value in flatten(config, "config").items()}


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def run_metrics(run: results.SavedRun) -> list[tuple[str, float, int]]:
    """Every history.csv column per epoch (step = epoch), then the run's results from metrics.json (step 0)."""
    out = [(key, float(value), row["epoch"]) for row in run.history for key, value in row.items() if key != "epoch"]
    # The fields as on disk: a field written null stays in, one never written stays out.
    recorded = run.record.model_dump(include=set(RESULT_FIELDS), exclude_unset=True)
    for key, value in flatten(recorded).items():
        if _is_number(value):
            out.append((key, float(value), 0))
    return out


def run_tags(run: results.SavedRun) -> dict[str, str]:
    """What a seed run is known by: config name, hashes, seed, status, regexp's version and source commit."""
    m = run.record
    source = m.regexp_source if isinstance(m.regexp_source, dict) else {}
    tags = {
        TAG_KIND: SEED_RUN,
        "regexp.run": run.folder.name,
        "regexp.config": m.group or run.folder.name,
        "regexp.config_hash": m.config_hash,
        "regexp.group_hash": m.group_hash,
        "regexp.seed": m.seed,
        "regexp.status": m.status.value,
        "regexp.version": (m.versions or {}).get("regexp"),
        "regexp.commit": source.get("commit") if isinstance(source, dict) else None,
        "regexp.error": m.error,
    }
    if isinstance(source, dict) and source.get("commit"):
        tags["mlflow.source.git.commit"] = source["commit"]
        tags["regexp.commit_dirty"] = source.get("dirty")
    return {key: str(value) for key, value in tags.items() if value is not None}


def run_artifacts(folder: Path, with_weights: bool) -> list[Path]:
    """The files of a run folder sent as artifacts: its record, its figures, and its weights if asked for."""
    files = [folder / name for name in RUN_ARTIFACTS]
    files += sorted(p for p in folder.iterdir() if p.suffix in FIGURE_SUFFIXES)
    if with_weights:
        files.append(folder / results.WEIGHTS)
    return [path for path in files if path.is_file()]


def _millis(iso: str | None) -> int | None:
    try:
        return int(datetime.datetime.fromisoformat(iso).timestamp() * 1000) if iso else None
    except (TypeError, ValueError):
        return None


def run_record(run: results.SavedRun, config: dict, with_weights: bool) -> RunRecord:
    """A saved run (its metrics.json, history.csv and resolved config.yaml read) as one MLflow run."""
    end = _millis(run.record.finished_at)
    wall = run.record.wall_time_s
    start = end - int(wall * 1000) if end is not None and _is_number(wall) else end
    return RunRecord(
        identity=f"run:{run.folder.name}:{record_digest(run.folder)}",
        name=run.folder.name,
        params=run_params(config),
        metrics=run_metrics(run),
        tags=run_tags(run),
        artifacts=run_artifacts(run.folder, with_weights),
        status="FAILED" if run.record.status is RunStatus.FAILED else "FINISHED",
        start_ms=start,
        end_ms=end,
    )


def read_config(folder: Path) -> tuple[dict | None, str | None]:
    """A run folder's resolved config.yaml, or (None, '<file>: why it cannot be read')."""
    path = folder / results.CONFIG
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        return None, f"{path}: cannot be read ({getattr(exc, 'strerror', None) or exc})"
    if not isinstance(config, dict):
        return None, f"{path}: not a config mapping"
    return config, None


def config_records(root: Path, with_weights: bool) -> tuple[list[ConfigRecord], list[str]]:
    """Every readable run under `root`, grouped by config as `regexp report` groups them; and one
    line per run folder left out ('<file>: <what is wrong>')."""
    runs, problems = results.scan_runs(root)
    by_name = {run.folder.name: run for run in runs}
    configs = []
    for label, members in group_runs(records_of(runs)).items():
        records = []
        for member in members:
            run = by_name[member.run]
            config, problem = read_config(run.folder)
            if problem:
                problems.append(problem)
                continue
            records.append(run_record(run, config, with_weights))
        if not records:
            continue
        first = members[0]
        group_hash = first.group_hash or first.run
        tags = {TAG_KIND: CONFIG_RUN, "regexp.config": label, "regexp.group_hash": group_hash}
        identity = f"config:{first.group or first.run}:{group_hash}"  # not the label: it can gain a suffix
        configs.append(ConfigRecord(identity, label, shared_params(records), tags, records))
    return configs, problems


def shared_params(seeds: list[RunRecord]) -> dict[str, str]:
    """The params every seed of a config has alike (all but the seed and the run's name): the parent's params."""
    first = seeds[0].params
    return {
        key: value
        for key, value in first.items()
        if key != SEED_PARAM and all(seed.params.get(key) == value for seed in seeds[1:])
    }


def read_stats(root: Path) -> dict[str, dict[str, str]]:
    """stats.csv (as `regexp report` writes it) as {config: {column: cell}}, read by column name; {} without one."""
    try:
        text = (root / STATS).read_text()
    except OSError:
        return {}
    rows = csv.DictReader(io.StringIO(text))
    if not rows.fieldnames or "config" not in rows.fieldnames:
        return {}
    return {row["config"]: {k: v for k, v in row.items() if k and k != "config"} for row in rows if row.get("config")}


def stats_metrics_and_tags(row: dict[str, str]) -> tuple[dict[str, float], dict[str, str]]:
    """A stats.csv row as a parent run's metrics (the cells that are numbers) and tags (the other non-empty cells)."""
    metrics, tags = {}, {}
    for column, cell in row.items():
        if cell is None or cell == "":
            continue
        try:
            metrics[column] = float(cell)
        except ValueError:
            tags[f"regexp.stats.{column}"] = cell
    return metrics, tags


def default_experiment(root: Path) -> str:
    """One experiment per results root: named after its absolute path (a run folder's: its root's)."""
    root = Path(root).resolve()
    return str(root.parent if results.is_run_folder(root) else root)


def sqlite_artifact_location(tracking_uri: str) -> str | None:
    """For a SQLite store, the folder beside its database file where new experiments keep their
    artifacts (MLflow's own default is ./mlruns under wherever the command ran); None otherwise."""
    match = re.fullmatch(r"sqlite:///(.+)", tracking_uri)
    if not match:
        return None
    return (Path(match.group(1)).resolve().parent / ARTIFACTS_FOLDER).as_uri()


# --------------------------------------------------------------------------- talking to the store


def require_mlflow():
    """The mlflow module, or a RegexpError saying how to install it."""
    try:
        import mlflow
    except ImportError:
        raise RegexpError(
            "MLflow is not installed: pip install -e '.[mlflow]' (or pip install mlflow, which adds its UI)"
        ) from None
    return mlflow


@contextlib.contextmanager
def _quiet_mlflow() -> Iterator[None]:
    """MLflow's and Alembic's INFO lines (creating the database's tables...) hidden while regexp talks to the store."""
    loggers = [logging.getLogger(name) for name in ("mlflow", "alembic")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def store_failures() -> tuple[type[BaseException], ...]:
    """The exceptions that mean the tracking store failed or refused (not a bug in regexp)."""
    from mlflow.exceptions import MlflowException

    failures: list[type[BaseException]] = [MlflowException, OSError]
    with contextlib.suppress(ImportError):
        import requests

        failures.append(requests.exceptions.RequestException)
    with contextlib.suppress(ImportError):
        import sqlalchemy.exc

        failures.append(sqlalchemy.exc.SQLAlchemyError)
    return tuple(failures)


def one_line(exc: BaseException) -> str:
    """An exception as one short line."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


@dataclass
class Sent:
    """What an export did: MLflow runs made, found already there, left deleted, and folders left out."""

    experiment: str = ""
    experiment_id: str = ""
    new: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)  # uploads that were cut off, sent again
    deleted: list[str] = field(default_factory=list)  # one line each
    parents_new: int = 0
    stats_updated: int = 0
    problems: list[str] = field(default_factory=list)


class _Store:
    """An MlflowClient on one experiment, with the runs regexp made there, by identity."""

    def __init__(self, tracking_uri: str, experiment: str) -> None:
        mlflow = require_mlflow()
        self.client = mlflow.MlflowClient(tracking_uri=tracking_uri)
        self.uri = tracking_uri
        self.experiment_id = self._experiment(experiment)
        self.complete: dict[str, object] = {}
        self.incomplete: dict[str, list] = {}
        for run in self._all_runs():
            tags = run.data.tags
            if TAG_ID in tags:
                self.complete[tags[TAG_ID]] = run
            elif TAG_INCOMPLETE in tags and run.info.lifecycle_stage == "active":
                self.incomplete.setdefault(tags[TAG_INCOMPLETE], []).append(run)

    def _experiment(self, name: str) -> str:
        found = self.client.get_experiment_by_name(name)
        if found is None:
            return self.client.create_experiment(
                name, artifact_location=sqlite_artifact_location(self.uri), tags={"regexp.results_root": name}
            )
        if found.lifecycle_stage == "deleted":
            raise TrackingError(
                f"{self.uri}: experiment {name!r} was deleted in MLflow: restore it "
                f"(mlflow experiments restore --experiment-id {found.experiment_id}) or choose another with --experiment"
            )
        return found.experiment_id

    def _all_runs(self) -> Iterable:
        from mlflow.entities import ViewType

        token = None
        while True:
            page = self.client.search_runs(
                [self.experiment_id], run_view_type=ViewType.ALL, max_results=1000, page_token=token
            )
            yield from page
            token = page.token
            if not token:
                return

    def drop_incomplete(self, identity: str) -> bool:
        """Delete what an upload of `identity` that was cut off left; True if there was any."""
        leftovers = self.incomplete.pop(identity, [])
        for run in leftovers:
            self.client.delete_run(run.info.run_id)
        return bool(leftovers)

    def create(self, identity: str, name: str, tags: dict[str, str], start_ms: int | None = None):
        """A new MLflow run, marked incomplete until `finish`."""
        return self.client.create_run(
            self.experiment_id, start_time=start_ms, tags={**tags, TAG_INCOMPLETE: identity}, run_name=name
        )

    def log(self, run_id: str, params: dict[str, str], metrics: list[tuple[str, float, int]], timestamp: int) -> None:
        """Params and metrics in batches of the sizes MLflow accepts."""
        from mlflow.entities import Metric, Param
        from mlflow.utils.validation import MAX_METRICS_PER_BATCH, MAX_PARAMS_TAGS_PER_BATCH

        items = [Param(key, value) for key, value in params.items()]
        for start in range(0, len(items), MAX_PARAMS_TAGS_PER_BATCH):
            self.client.log_batch(run_id, params=items[start : start + MAX_PARAMS_TAGS_PER_BATCH])
        points = [Metric(key, value, timestamp, step) for key, value, step in metrics]
        for start in range(0, len(points), MAX_METRICS_PER_BATCH):
            self.client.log_batch(run_id, metrics=points[start : start + MAX_METRICS_PER_BATCH])

    def finish(self, run_id: str, identity: str) -> None:
        """Mark the run complete: from now on it is recognised and never sent again."""
        self.client.set_tag(run_id, TAG_ID, identity)
        self.client.delete_tag(run_id, TAG_INCOMPLETE)


def _now_ms() -> int:
    return int(datetime.datetime.now(datetime.timezone.utc).timestamp() * 1000)


def _send_seed(store: _Store, record: RunRecord, parent_id: str) -> None:
    run = store.create(record.identity, record.name, {**record.tags, PARENT_TAG: parent_id}, record.start_ms)
    run_id = run.info.run_id
    store.log(run_id, record.params, record.metrics, record.end_ms or _now_ms())
    for path in record.artifacts:
        store.client.log_artifact(run_id, str(path))
    store.client.set_terminated(run_id, record.status, end_time=record.end_ms)
    store.finish(run_id, record.identity)


def _parent(store: _Store, config: ConfigRecord, sent: Sent) -> str | None:
    """The id of the config's parent run, made if new; None if it was deleted in MLflow (said in `sent`)."""
    found = store.complete.get(config.identity)
    if found is not None:
        if found.info.lifecycle_stage == "deleted":
            sent.deleted.append(
                f"{config.label}: its parent run {found.info.run_id} was deleted in MLflow, so its seeds are not "
                f"sent (mlflow runs restore --run-id {found.info.run_id} brings it back)"
            )
            return None
        return found.info.run_id
    store.drop_incomplete(config.identity)
    starts = [seed.start_ms for seed in config.seeds if seed.start_ms is not None]
    ends = [seed.end_ms for seed in config.seeds if seed.end_ms is not None]
    run = store.create(config.identity, config.label, config.tags, min(starts, default=None))
    store.log(run.info.run_id, config.params, [], _now_ms())
    store.client.set_terminated(run.info.run_id, "FINISHED", end_time=max(ends, default=None))
    store.finish(run.info.run_id, config.identity)
    store.complete[config.identity] = store.client.get_run(run.info.run_id)
    sent.parents_new += 1
    return run.info.run_id


def _update_stats(store: _Store, parent_id: str, row: dict[str, str]) -> bool:
    """Log the config's stats.csv row on its parent run where it differs from what is there; True if it did."""
    metrics, tags = stats_metrics_and_tags(row)
    current = store.client.get_run(parent_id).data
    changed_metrics = {k: v for k, v in metrics.items() if current.metrics.get(k) != v}
    changed_tags = {k: v for k, v in tags.items() if current.tags.get(k) != v}
    if not changed_metrics and not changed_tags:
        return False
    step = int(metrics.get("n", 0))
    store.log(parent_id, {}, [(k, v, step) for k, v in changed_metrics.items()], _now_ms())
    for key, value in changed_tags.items():
        store.client.set_tag(parent_id, key, value)
    return True


def export_to_mlflow(
    root: Path,
    tracking_uri: str = DEFAULT_TRACKING_URI,
    experiment: str | None = None,
    *,
    with_weights: bool = False,
    only: set[str] | None = None,
) -> Sent:
    """Send the runs under `root` that the store does not have yet (those named in `only`, if given),
    each under its config's parent run, and bring the parents' statistics up to date with stats.csv.

    Raises TrackingError, naming the store and how far it got, if the store fails or refuses; what
    was sent until then stays there and the same call sends the rest.
    """
    require_mlflow()
    for name, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)
    configs, problems = config_records(Path(root), with_weights)
    if not configs and only is None:
        raise RegexpError(f"{root}: no readable runs here (a run folder holds a metrics.json)")
    experiment = experiment or default_experiment(root)
    sent = Sent(experiment=experiment, problems=problems)
    stats = read_stats(Path(root))
    failures = store_failures()
    with _quiet_mlflow():
        try:
            store = _Store(tracking_uri, experiment)
            sent.experiment_id = store.experiment_id
            for config in configs:
                seeds = [r for r in config.seeds if only is None or r.name in only]
                if not seeds:
                    continue
                parent_id = _parent(store, config, sent)
                if parent_id is None:
                    continue
                for record in seeds:
                    _send_if_new(store, record, parent_id, sent)
                if config.label in stats and _update_stats(store, parent_id, stats[config.label]):
                    sent.stats_updated += 1
        except failures as exc:
            raise TrackingError(
                f"{tracking_uri}: the MLflow store failed after {len(sent.new)} new runs were sent "
                f"({one_line(exc)}); the same command sends the rest"
            ) from None
    return sent


def _send_if_new(store: _Store, record: RunRecord, parent_id: str, sent: Sent) -> None:
    found = store.complete.get(record.identity)
    if found is not None:
        if found.info.lifecycle_stage == "deleted":
            sent.deleted.append(
                f"{record.name}: deleted in MLflow (run {found.info.run_id}), not sent again "
                f"(mlflow runs restore --run-id {found.info.run_id} brings it back)"
            )
        else:
            sent.already.append(record.name)
        return
    if store.drop_incomplete(record.identity):
        sent.replaced.append(record.name)
    _send_seed(store, record, parent_id)
    sent.new.append(record.name)


def summary_line(sent: Sent, tracking_uri: str) -> str:
    """What an export did, in one line."""
    parts = [f"{len(sent.new)} runs sent", f"{len(sent.already)} already there"]
    if sent.deleted:
        parts.append(f"{len(sent.deleted)} left deleted")
    if sent.stats_updated:
        parts.append(f"statistics of {sent.stats_updated} configs updated")
    return f"MLflow {tracking_uri}, experiment {sent.experiment!r}: " + ", ".join(parts)


class LiveLogger:
    """`--mlflow URI` on run and sweep: sends each run as it completes. The run folder is the record:
    a store that fails or refuses is one warning line and no more tries in this command."""

    def __init__(self, root: Path, tracking_uri: str, warn) -> None:
        self.root, self.uri, self.warn = Path(root), tracking_uri, warn
        self.working = True
        self.sent: set[str] = set()

    def send(self, names: Iterable[str]) -> None:
        """Send the runs `names` (finished, under the root) and update their configs' statistics."""
        names = set(names)
        if not self.working or not names:
            return
        try:
            outcome = export_to_mlflow(self.root, self.uri, only=names)
        except Exception as exc:  # noqa: BLE001 - whatever the store does, training goes on and the run stays on disk
            self.working = False
            self.warn(
                f"warning: MLflow {self.uri}: {one_line(exc)}; not sending more runs in this command "
                f"(they are on disk: regexp export {self.root} --to mlflow --tracking-uri {self.uri} sends them)"
            )
            return
        self.sent.update(outcome.new)
        for line in outcome.deleted:
            self.warn(f"mlflow: {line}")
