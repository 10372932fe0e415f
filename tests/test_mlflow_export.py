"""`regexp export ROOT --to mlflow` and `--mlflow URI`: runs in a real SQLite tracking store, read back with MlflowClient."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys

import pytest
import yaml

from regexp.config import config_hash, group_hash, to_yaml, validate
from regexp.results import flatten, history_csv, write_json_atomic

from conftest import REPO, TINY_SET, write_config

mlflow = pytest.importorskip("mlflow")
pytestmark = pytest.mark.mlflow

from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import ViewType  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402

ACCURACY = {"none": [0.80, 0.82], "l2": [0.85, 0.88]}
L2 = {"type": "l2", "targets": ["kernel", "bias"], "lambda": 0.01}
EPOCHS = 3


def history(accuracy: float) -> list[dict]:
    """Known per-epoch numbers, climbing to `accuracy` at the last epoch."""
    return [
        {
            "epoch": e,
            "loss": 2.0 / e,
            "accuracy": accuracy * e / EPOCHS,
            "val_loss": 2.2 / e,
            "val_accuracy": accuracy * e / EPOCHS - 0.01,
        }
        for e in range(1, EPOCHS + 1)
    ]


def saved_run(root, group: str, seed: int, accuracy: float, *, weights: bool = False):
    """A run folder as `regexp sweep --seeds` leaves it (resolved config.yaml, history.csv, metrics.json,
    a figure), with known numbers and without training."""
    raw = {"data": {"dataset": "digits"}, "training": {"epochs": EPOCHS, "seed": seed}}
    if group == "l2":
        raw["regularizer"] = L2
    config = validate(raw, "test", group)
    name = f"{group}__seed-{seed}"
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(to_yaml(config))
    (folder / "history.csv").write_text(history_csv(history(accuracy)))
    (folder / "loss.png").write_bytes(b"\x89PNG\r\n\x1a\nnot drawn in this test")
    if weights:
        (folder / "model.weights.h5").write_bytes(b"weights")
    write_json_atomic(
        folder / "metrics.json",
        {
            "run": name,
            "group": group,
            "config_hash": config_hash(config),
            "group_hash": group_hash(config),
            "seed": seed,
            "status": "completed",
            "regularizer": [entry.model_dump(by_alias=True, mode="json") for entry in config.penalties],
            "test_accuracy": accuracy,
            "test_loss": 1 - accuracy,
            "epochs_run": EPOCHS,
            "epochs_planned": EPOCHS,
            "best_epoch": EPOCHS,
            "wall_time_s": 12.5,
            "sparsity": {"threshold": 0.001, "overall": 0.25, "layers": {"conv1": 0.5}},
            "versions": {"regexp": "0.1.0", "tensorflow": "2.21.0"},
            "regexp_source": {"commit": "abc123", "dirty": False},
            "finished_at": "2026-11-25T12:00:00+00:00",
        },
    )
    return folder


@pytest.fixture(scope="session")
def blank_store(tmp_path_factory):
    """A SQLite tracking store with MLflow's tables made and nothing in them (making them takes seconds)."""
    path = tmp_path_factory.mktemp("blank") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def store(tmp_path, blank_store):
    """The URI of a fresh SQLite tracking store in tmp_path."""
    shutil.copy(blank_store, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture
def study(tmp_path, cli, store):
    """Two configs, two seeds each, with the report's stats.csv; and a SQLite store beside them."""
    root = tmp_path / "results"
    for group, accuracies in ACCURACY.items():
        for seed, accuracy in enumerate(accuracies):
            saved_run(root, group, seed, accuracy)
    assert cli("report", root).exit_code == 0
    return root, store


def export(cli, root, uri, *extra):
    return cli("export", root, "--to", "mlflow", "--tracking-uri", uri, *extra)


def runs_of(uri: str, experiment: str, view=ViewType.ACTIVE_ONLY) -> dict:
    """{run name: Run} of one experiment (names are unique in these tests)."""
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs([found.experiment_id], run_view_type=view)
    names = [run.info.run_name for run in runs]
    assert len(names) == len(set(names)), f"a run was logged twice: {sorted(names)}"
    return {run.info.run_name: run for run in runs}


def stats_rows(root) -> dict:
    with open(root / "stats.csv", newline="") as f:
        return {row["config"]: row for row in csv.DictReader(f)}


def test_each_run_arrives_with_its_config_history_results_tags_and_files(cli, study):
    root, uri = study
    done = export(cli, root, uri)
    assert done.exit_code == 0, done.output
    assert "4 runs sent, 0 already there" in done.output
    runs = runs_of(uri, str(root.resolve()))
    client = MlflowClient(uri)
    run = runs["l2__seed-1"]
    folder = root / "l2__seed-1"

    config = yaml.safe_load((folder / "config.yaml").read_text())
    expected_params = {
        key: ("" if value is None else value if isinstance(value, str) else yaml.safe_dump(value).strip())
        for key, value in flatten(config, "config").items()
    }
    assert run.data.params == {k: v.removesuffix("\n...") for k, v in expected_params.items()}
    assert run.data.params["config.regularizer.type"] == "l2"
    assert run.data.params["config.training.seed"] == "1"

    with open(folder / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for column in ("loss", "accuracy", "val_loss", "val_accuracy"):
        logged = client.get_metric_history(run.info.run_id, column)
        assert [(m.step, m.value) for m in sorted(logged, key=lambda m: m.step)] == [
            (int(row["epoch"]), float(row[column])) for row in rows
        ]
    assert run.data.metrics["test_accuracy"] == 0.88
    assert run.data.metrics["test_loss"] == pytest.approx(0.12)
    assert run.data.metrics["sparsity.layers.conv1"] == 0.5

    tags = run.data.tags
    metrics = json.loads((folder / "metrics.json").read_text())
    assert tags["regexp.config"] == "l2"
    assert tags["regexp.config_hash"] == metrics["config_hash"]
    assert tags["regexp.group_hash"] == metrics["group_hash"]
    assert tags["regexp.seed"] == "1"
    assert tags["regexp.status"] == "completed"
    assert tags["regexp.version"] == "0.1.0"
    assert tags["regexp.commit"] == tags["mlflow.source.git.commit"] == "abc123"
    assert run.info.status == "FINISHED"

    files = {artifact.path for artifact in client.list_artifacts(run.info.run_id)}
    assert files == {"metrics.json", "config.yaml", "history.csv", "loss.png"}
    copy = client.download_artifacts(run.info.run_id, "metrics.json", str(root.parent))
    assert json.loads(open(copy).read()) == metrics


def test_the_seeds_of_a_config_are_children_of_one_parent_carrying_its_statistics(cli, study):
    root, uri = study
    assert export(cli, root, uri).exit_code == 0
    runs = runs_of(uri, str(root.resolve()))
    assert set(runs) == {"none", "l2", "none__seed-0", "none__seed-1", "l2__seed-0", "l2__seed-1"}
    for group in ACCURACY:
        parent = runs[group]
        assert "mlflow.parentRunId" not in parent.data.tags
        for seed in range(2):
            assert runs[f"{group}__seed-{seed}"].data.tags["mlflow.parentRunId"] == parent.info.run_id
        children = [runs[f"{group}__seed-{seed}"].data.params for seed in range(2)]
        assert parent.data.params == {
            key: value
            for key, value in children[0].items()
            if children[1][key] == value and key != "config.training.seed"
        }
        assert "config.training.seed" not in parent.data.params
        assert parent.data.params["config.data.dataset"] == "digits"

    row = stats_rows(root)["l2"]
    l2 = runs["l2"].data
    assert l2.metrics["n"] == 2
    assert l2.metrics["test_accuracy_mean"] == pytest.approx((0.85 + 0.88) / 2)
    for column in ("test_accuracy_ci_low", "test_accuracy_ci_high", "diff_mean", "diff_ci_low", "diff_ci_high"):
        assert l2.metrics[column] == float(row[column])
    assert l2.metrics["diff_mean"] == pytest.approx(((0.85 - 0.80) + (0.88 - 0.82)) / 2)
    assert l2.tags["regexp.stats.verdict"] == row["verdict"] != ""
    assert l2.tags["regexp.stats.baseline"] == "none"
    assert runs["none"].data.tags["regexp.stats.verdict"] == "baseline"


def test_exporting_again_sends_only_new_runs_and_brings_the_statistics_up_to_date(cli, study):
    root, uri = study
    assert export(cli, root, uri).exit_code == 0
    again = export(cli, root, uri)
    assert again.exit_code == 0
    assert "0 runs sent, 4 already there" in again.output

    saved_run(root, "l2", 2, 0.90)
    assert cli("report", root).exit_code == 0
    third = export(cli, root, uri)
    assert third.exit_code == 0, third.output
    assert "1 runs sent, 4 already there" in third.output
    runs = runs_of(uri, str(root.resolve()))
    assert len(runs) == 7
    assert runs["l2__seed-2"].data.tags["mlflow.parentRunId"] == runs["l2"].info.run_id
    assert runs["l2"].data.metrics["n"] == 3
    assert runs["l2"].data.metrics["test_accuracy_mean"] == pytest.approx((0.85 + 0.88 + 0.90) / 3)


def test_a_run_deleted_in_mlflow_is_named_and_not_sent_again(cli, study):
    root, uri = study
    assert export(cli, root, uri).exit_code == 0
    deleted = runs_of(uri, str(root.resolve()))["none__seed-0"].info.run_id
    MlflowClient(uri).delete_run(deleted)

    again = export(cli, root, uri)
    assert again.exit_code == 0
    assert f"not sent: none__seed-0: deleted in MLflow (run {deleted})" in again.output
    assert "0 runs sent, 3 already there, 1 left deleted" in again.output
    assert "none__seed-0" not in runs_of(uri, str(root.resolve()))


def test_a_store_failing_mid_export_is_one_line_and_the_next_export_sends_the_rest_once(cli, study, monkeypatch):
    root, uri = study
    calls = []
    real_log_artifact = MlflowClient.log_artifact

    def failing_on_the_sixth(self, *args, **kwargs):
        calls.append(args)
        if len(calls) == 6:  # the second run's second file
            raise MlflowException("database is locked")
        return real_log_artifact(self, *args, **kwargs)

    monkeypatch.setattr(MlflowClient, "log_artifact", failing_on_the_sixth)
    failed = export(cli, root, uri)
    assert failed.exit_code == 2
    assert failed.output.strip().splitlines() == [
        f"error: {uri}: the MLflow store failed after 1 new runs were sent (database is locked); "
        "the same command sends the rest"
    ]
    monkeypatch.setattr(MlflowClient, "log_artifact", real_log_artifact)

    done = export(cli, root, uri)
    assert done.exit_code == 0, done.output
    assert "3 runs sent, 1 already there" in done.output
    assert "sent again: " in done.output  # the run cut off halfway was replaced, not kept half-sent
    runs = runs_of(uri, str(root.resolve()))  # asserts no name twice
    assert len(runs) == 6
    assert all("regexp.id" in run.data.tags and "regexp.incomplete" not in run.data.tags for run in runs.values())
    client = MlflowClient(uri)
    for name in ("none__seed-0", "none__seed-1", "l2__seed-0", "l2__seed-1"):
        assert len(client.list_artifacts(runs[name].info.run_id)) == 4


def test_weights_are_sent_only_when_asked_for(cli, tmp_path, store):
    root = tmp_path / "results"
    saved_run(root, "none", 0, 0.8, weights=True)
    uri = store
    assert export(cli, root, uri, "--experiment", "plain").exit_code == 0
    assert export(cli, root, uri, "--experiment", "heavy", "--with-weights").exit_code == 0
    client = MlflowClient(uri)
    plain = runs_of(uri, "plain")["none__seed-0"].info.run_id
    heavy = runs_of(uri, "heavy")["none__seed-0"].info.run_id
    assert "model.weights.h5" not in {a.path for a in client.list_artifacts(plain)}
    assert "model.weights.h5" in {a.path for a in client.list_artifacts(heavy)}
    assert client.get_experiment_by_name("heavy").artifact_location == (tmp_path / "mlartifacts").as_uri()


def test_a_deleted_experiment_is_one_line_and_nothing_is_sent(cli, study):
    root, uri = study
    assert export(cli, root, uri, "--experiment", "gone").exit_code == 0
    client = MlflowClient(uri)
    client.delete_experiment(client.get_experiment_by_name("gone").experiment_id)
    refused = export(cli, root, uri, "--experiment", "gone")
    assert refused.exit_code == 2
    assert refused.output.count("\n") == 1
    assert "experiment 'gone' was deleted in MLflow: restore it" in refused.output


def test_an_unreachable_tracking_server_is_one_line(cli, study):
    root, _ = study
    refused = export(cli, root, "http://127.0.0.1:9")  # the discard port: nothing listens there
    assert refused.exit_code == 2
    assert refused.output.startswith("error: http://127.0.0.1:9: the MLflow store failed after 0 new runs")
    assert refused.output.count("\n") == 1


def test_file_options_and_mlflow_options_are_not_mixed(cli, study):
    root, uri = study
    mixed = cli("export", root, "--to", "mlflow", "--format", "json")
    assert mixed.exit_code == 2
    assert "--to mlflow sends the runs to MLflow instead" in mixed.output
    stray = cli("export", root, "--experiment", "x")
    assert stray.exit_code == 2
    assert "need --to mlflow" in stray.output


def test_the_cli_default_store_is_the_module_default():
    from regexp.cli import MLFLOW_DEFAULT_URI
    from regexp.study.mlflow_export import DEFAULT_TRACKING_URI

    assert MLFLOW_DEFAULT_URI == DEFAULT_TRACKING_URI == "sqlite:///mlflow.db"


def test_an_empty_root_is_one_line_and_creates_no_store(cli, tmp_path):
    (tmp_path / "empty").mkdir()
    refused = export(cli, tmp_path / "empty", f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert refused.exit_code == 2
    assert "no readable runs here" in refused.output
    assert not (tmp_path / "mlflow.db").exists()


def test_export_to_mlflow_imports_no_tensorflow(study):
    root, uri = study
    code = (
        "import sys\nfrom regexp.study.mlflow_export import export_to_mlflow\n"
        f"export_to_mlflow({str(root)!r}, {uri!r})\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TensorFlow was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
def test_sweep_and_run_send_each_run_as_it_completes_and_a_down_store_is_one_warning(cli, tmp_path, store):
    folder = tmp_path / "cfg"
    write_config(folder, "none", {"data": {"dataset": "synthetic"}})
    uri = store
    root = tmp_path / "results"
    swept = cli("sweep", folder, "--results", root, "--seeds", "2", *TINY_SET, "--mlflow", uri)
    assert swept.exit_code == 0, swept.output
    runs = runs_of(uri, str(root.resolve()))
    assert set(runs) == {"none", "none__seed-0", "none__seed-1"}
    assert runs["none__seed-1"].data.tags["mlflow.parentRunId"] == runs["none"].info.run_id
    assert runs["none"].data.metrics["n"] == 2  # the statistics, sent once the report wrote stats.csv
    with open(root / "none__seed-0" / "history.csv", newline="") as f:
        losses = [float(row["loss"]) for row in csv.DictReader(f)]
    logged = MlflowClient(uri).get_metric_history(runs["none__seed-0"].info.run_id, "loss")
    assert [m.value for m in logged] == losses

    config = write_config(tmp_path / "one", "single", {"data": {"dataset": "synthetic"}})
    down = cli("run", config, "--results", root, *TINY_SET, "--mlflow", "http://127.0.0.1:9")
    assert down.exit_code == 0, down.output
    warnings = [line for line in io.StringIO(down.output) if "MLflow" in line]
    assert len(warnings) == 1 and warnings[0].startswith("warning: MLflow http://127.0.0.1:9: ")
    assert (root / "single" / "metrics.json").exists()
