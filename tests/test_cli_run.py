"""`regexp run` end to end on tiny data: what lands on disk, what the terminal shows."""

import json
import subprocess
import sys

import pytest

from regexp.results.store import read_history

from conftest import CONFIGS, REFERENCE_CONFIGS, TINY, TINY_SET, merge, write_config

RUN_FILES = {
    "config.yaml",
    "history.csv",
    "metrics.json",
    "loss.png",
    "accuracy.png",
    "model.txt",
    "model.weights.h5",
    "tensorboard",
}


# One reference config end to end in the fast tier; the other seven in the slow one.
@pytest.mark.parametrize(
    "name", [n if n == "none" else pytest.param(n, marks=pytest.mark.slow) for n in REFERENCE_CONFIGS]
)
def test_each_reference_config_runs_one_epoch_and_writes_its_files(cli, tmp_path, name):
    result = cli("run", CONFIGS / f"{name}.yaml", "--results", tmp_path, *TINY_SET)
    assert result.exit_code == 0, result.output
    folder = tmp_path / name
    assert {p.name for p in folder.iterdir()} == RUN_FILES
    assert all((folder / f).stat().st_size > 0 for f in RUN_FILES - {"tensorboard"})
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["epochs_run"] == 1
    assert f"Test loss: {metrics['test_loss']:.4f} / Test accuracy: {metrics['test_accuracy']:.4f}" in result.output
    history = read_history(folder / "history.csv")
    assert [row["epoch"] for row in history] == [1]
    assert ("penalty" in history[0]) == (name != "none")
    assert metrics["training_path"]["xla"] == (
        "activity penalties only (value and gradient)" if "activity" in name else "not used"
    )
    assert not (tmp_path / ".inprogress").exists()


def test_metrics_record_what_the_issue_asks_for(cli, tmp_path):
    config = write_config(
        tmp_path / "cfg",
        "l1",
        merge(
            TINY,
            {
                "regularizer": {"type": "l1", "targets": ["kernel", "activity"]},
                "model": {"num_classes": 10},
                "training": {"epochs": 2, "batch_size": 50},
            },
        ),
    )
    result = cli("run", config, "--results", tmp_path / "results")
    assert result.exit_code == 0, result.output
    m = json.loads((tmp_path / "results" / "l1" / "metrics.json").read_text())
    for key in (
        "test_loss",
        "test_accuracy",
        "status",
        "epochs_run",
        "wall_time_s",
        "train_samples_per_s",
        "param_count",
        "sparsity",
        "seed",
        "config_hash",
        "versions",
        "activity_penalty",
        "training_path",
        "activations",
        "best_epoch",
        "best_epoch_test_loss",
        "best_epoch_test_accuracy",
    ):
        assert m[key] is not None, key
    assert set(m["versions"]) == {"regexp", "python", "tensorflow", "keras", "numpy"}
    assert set(m["sparsity"]["layers"]) == {"conv1", "conv2", "dense1", "dense2"}
    assert 0 <= m["sparsity"]["overall"] <= 1
    assert m["param_count"] == 440_751 - 37 * 257  # 10 outputs instead of 47
    assert m["activity_penalty"]["semantics"] == "mean over the batch of the per-sample penalty (as the reference)"
    assert m["data"] == {
        "description": "synthetic (10 classes)",
        "num_classes": 10,
        "train": 240,
        "validation": 60,
        "test": 100,
        "input_shape": [28, 28, 1],
    }
    assert m["model"] == {
        "builder": "regexp.training.model:reference_cnn",
        "source": None,
        "sha256": None,
        "params": {"conv1_filters": 32, "conv2_filters": 64, "dense_units": 256, "dropout": 0.25},
        "layers": {"conv1": "conv", "conv2": "conv", "dense1": "dense", "dense2": "dense"},
    }
    assert m["training_path"]["layers"] == {
        **{name: "activity penalty: fused (XLA)" for name in ("conv1", "conv2", "dense1", "dense2")},
        **{name: "dropout: RandomBitsDropout" for name in ("drop1", "drop2")},
    }
    resolved = (tmp_path / "results" / "l1" / "config.yaml").read_text()
    assert "batch_size: 50" in resolved and "learning_rate: 0.001" in resolved  # defaults filled in


def test_training_lowers_the_loss_on_learnable_data(cli, tmp_path):
    config = write_config(
        tmp_path,
        "learn",
        merge(
            TINY, {"data": {"limit": 1000}, "model": {"num_classes": 5}, "training": {"epochs": 4, "batch_size": 50}}
        ),
    )
    assert cli("run", config, "--results", tmp_path / "r").exit_code == 0
    history = read_history(tmp_path / "r" / "learn" / "history.csv")
    assert history[-1]["loss"] < history[0]["loss"]
    assert history[-1]["val_accuracy"] > 0.5  # 5 classes: chance is 0.2


def test_bad_config_exits_2_with_one_line_and_writes_nothing(cli, tmp_path):
    config = tmp_path / "x.yaml"
    config.write_text("regularizer: {type: l3}\n")
    result = cli("run", config, "--results", tmp_path / "results")
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {config}: regularizer.type: 'l3' is not one of none, l1, l2, elasticnet"
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_completed_run_is_skipped_and_rerun_only_with_force(cli, tmp_path):
    args = ["run", CONFIGS / "none.yaml", "--results", tmp_path, *TINY_SET]
    assert cli(*args).exit_code == 0
    before = (tmp_path / "none" / "metrics.json").read_text()
    again = cli(*args)
    assert again.exit_code == 0 and "already completed" in again.output
    assert (tmp_path / "none" / "metrics.json").read_text() == before
    changed = cli(*args, "--set", "training.seed=1")
    assert changed.exit_code == 2 and "different config" in changed.output and "--force" in changed.output
    forced = cli(*args, "--set", "training.seed=1", "--force")
    assert forced.exit_code == 0
    assert json.loads((tmp_path / "none" / "metrics.json").read_text())["seed"] == 1


def test_help_does_not_import_tensorflow():
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom regexp.cli import app\n"
        "for args in ([], ['--help'], ['run', '--help'], ['sweep', '--help'], ['plot', '--help']):\n"
        "    assert CliRunner().invoke(app, args).exit_code in (0, 2)\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'imported TensorFlow'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_no_network_ends_with_the_download_advice_naming_file_and_field(cli, tmp_path, monkeypatch):
    from regexp.data import emnist

    monkeypatch.setattr(emnist, "MATLAB_URL", "http://127.0.0.1:9/matlab.zip")  # nothing listens there
    monkeypatch.chdir(tmp_path)
    result = cli("run", CONFIGS / "l2_activity.yaml", "--results", tmp_path / "results")
    assert result.exit_code == 2
    error = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "Traceback" not in result.output
    assert error[0].startswith(f"error: {CONFIGS / 'l2_activity.yaml'}: data.dataset: cannot download")
    assert "download it by hand" in error[0] and "data.path" in error[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no results, no stray .mat file


def test_idx_folder_without_its_files_names_file_and_field(cli, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    config = write_config(tmp_path, "idx", {"data": {"dataset": "idx", "path": str(empty)}})
    result = cli("run", config, "--results", tmp_path / "results")
    assert result.exit_code == 2
    assert result.output.startswith(f"error: {config}: data.path: ")
    assert "train-images-idx3-ubyte" in result.output
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_offline_demo_trains_for_real_and_beats_chance_clearly(cli, tmp_path):
    """configs/demo_digits.yaml as shipped: measured 0.961 test accuracy (chance: 0.10)."""
    result = cli("run", CONFIGS / "demo_digits.yaml", "--results", tmp_path)
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "demo_digits" / "metrics.json").read_text())
    assert metrics["data"]["num_classes"] == 10 and metrics["epochs_run"] == 15
    assert metrics["test_accuracy"] > 0.85
