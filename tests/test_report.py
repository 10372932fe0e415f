"""`regexp report`: stats.csv, report.md and a self-contained report.html from saved runs."""

import base64
import csv
import math
import shutil
import subprocess
import sys
from html.parser import HTMLParser

import numpy as np
import pytest
from scipy.stats import t as student_t

from regexp.results.store import history_csv, write_json_atomic

from conftest import TINY, merge, write_config

LAYERS = ("conv1", "conv2", "dense1", "dense2")
SECTIONS = {"answer", "data", "table", "forest", "lambda", "mechanism", "runs", "method"}
FIGURES = {"fig-forest", "fig-lambda", "fig-weights", "fig-activations", "fig-gap"}


@pytest.fixture(scope="module")
def keras_weights(tmp_path_factory):
    """A `.weights.h5` saved by Keras from a small regexp model, conv1's kernel set to known values."""
    from regexp.config import validate
    from regexp.training.model import build_model

    config = validate(
        {
            "data": {"dataset": "synthetic"},
            "model": {"num_classes": 5, "conv1_filters": 4, "conv2_filters": 4, "dense_units": 8},
        },
        "test",
        "tiny",
    )
    model = build_model(config, 5)
    known = np.linspace(-1, 1, 36, dtype=np.float32).reshape(3, 3, 1, 4)
    model.get_layer("conv1").kernel.assign(known)
    path = tmp_path_factory.mktemp("weights") / "model.weights.h5"
    model.save_weights(str(path))
    return path, known


def fake_run(
    root,
    config,
    seed,
    accuracy,
    *,
    regularizer=None,
    status="completed",
    weights=None,
    activations=True,
    lam=None,
    extra=None,
):
    """A run folder as `regexp run` leaves it (the files the report reads), with known numbers."""
    name = f"{config}__seed-{seed}"
    folder = root / name
    folder.mkdir(parents=True)
    rows = [
        {"epoch": e, "loss": 1.0 / e, "accuracy": 0.5 + 0.1 * e, "val_loss": 1.2 / e, "val_accuracy": 0.5 + 0.08 * e}
        for e in range(1, 4)
    ]
    (folder / "history.csv").write_text(history_csv(rows))
    metrics = {
        "run": name,
        "group": config,
        "group_hash": config,
        "config_hash": name,
        "seed": seed,
        "status": status,
        "regularizer": regularizer or [],
        "test_accuracy": accuracy if status == "completed" else None,
        "test_loss": 1 - accuracy,
        "epochs_run": 3,
        "epochs_planned": 3,
        "wall_time_s": 12.5,
        "sparsity": {"threshold": 0.001, "overall": 0.01, "layers": {layer: 0.01 for layer in LAYERS}},
        "data": {"description": "scikit-learn digits", "train": 1150, "validation": 287, "test": 360},
        "training_path": {"precision": "float32"},
        "versions": {"python": "3.11.7", "tensorflow": "2.21.0", "keras": "3.15.1", "numpy": "2.4.6"},
        "finished_at": "2026-11-25T12:00:00+00:00",
    }
    if status == "failed":
        metrics["error"] = "ValueError: broken on purpose"
    if activations and status == "completed":
        metrics["activations"] = {layer: {"mean_abs": 0.5 * accuracy, "zero_fraction": 0.4} for layer in LAYERS}
        metrics["best_epoch_test_accuracy"] = accuracy + 0.001
        metrics["best_epoch_test_loss"] = 1 - accuracy
    metrics.update(extra or {})
    if weights is not None:
        shutil.copy(weights, folder / "model.weights.h5")
    write_json_atomic(folder / "metrics.json", metrics)
    return folder


def l2(lam=0.01):
    return [{"type": "l2", "targets": ["activity"], "lambda": lam, "l1": None, "l2": None, "layers": None}]


L1 = [{"type": "l1", "targets": ["kernel"], "lambda": 0.01, "l1": None, "l2": None, "layers": None}]
NONE_ACC = [0.80, 0.82, 0.84]
L2_ACC = [0.85, 0.86, 0.90]  # +5, +4, +6 points on the same seeds
L1_ACC = [0.30, 0.25, 0.35]


def make_study(root, weights=None):
    for seed in range(3):
        fake_run(root, "none", seed, NONE_ACC[seed], weights=weights)
        fake_run(root, "l2_activity", seed, L2_ACC[seed], regularizer=l2(), weights=weights)
        fake_run(root, "l1_kernel", seed, L1_ACC[seed], regularizer=L1, weights=weights)


class Page(HTMLParser):
    """The ids, images, links and scripts of an HTML page."""

    def __init__(self):
        super().__init__()
        self.ids, self.images, self.links, self.scripts, self.text = set(), [], [], 0, []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        if tag == "script":
            self.scripts += 1
        for key in ("src", "href"):
            if key in attrs:
                self.links.append(attrs[key])

    def handle_data(self, data):
        self.text.append(data)


def parse(path):
    page = Page()
    page.feed(path.read_text())
    page.text = " ".join(page.text)
    return page


def read_stats(root):
    with open(root / "stats.csv", newline="") as f:
        return {row["config"]: row for row in csv.DictReader(f)}


def test_report_tests_each_penalty_against_no_regularization(cli, tmp_path):
    make_study(tmp_path)
    result = cli("report", tmp_path)
    assert result.exit_code == 0, result.output
    table = read_stats(tmp_path)
    assert list(table) == ["none", "l2_activity", "l1_kernel"]  # the baseline first, then best first
    d = np.subtract(L2_ACC, NONE_ACC)
    se = d.std(ddof=1) / math.sqrt(3)
    p = 2 * student_t.sf(d.mean() / se, 2)
    row = table["l2_activity"]
    assert row["test"] == "paired t-test" and row["baseline"] == "none"
    assert float(row["diff_mean"]) == pytest.approx(0.05)
    assert float(row["diff_ci_low"]) == pytest.approx(0.05 - student_t.ppf(0.975, 2) * se)
    assert float(row["p_value"]) == pytest.approx(p)
    p_l1 = float(table["l1_kernel"]["p_value"])
    assert float(row["p_holm"]) == pytest.approx(2 * p if p < p_l1 else max(2 * p_l1, p))  # Holm over 2
    assert row["verdict"] == "better" and table["l1_kernel"]["verdict"] == "worse"
    assert table["none"]["verdict"] == "baseline" and table["none"]["diff_mean"] == ""
    headline = "1 of 2 configs beat none (no regularization: 0.8200"
    assert headline in result.output and headline in (tmp_path / "report.md").read_text()
    assert "l2_activity by +5.0 points" in result.output
    assert "better: l2_activity (l2 0.01 on activity): +5.0 points of test accuracy (95 % CI" in result.output


def test_html_is_one_self_contained_page_with_every_section_and_figure(cli, tmp_path, keras_weights):
    make_study(tmp_path, weights=keras_weights[0])
    for seed in range(2):
        for lam in (0.001, 0.1):
            fake_run(
                tmp_path,
                f"grid__lambda-{lam}",
                seed,
                0.8 + lam + seed / 100,
                regularizer=l2(lam),
                weights=keras_weights[0],
            )
    assert cli("report", tmp_path).exit_code == 0
    page = parse(tmp_path / "report.html")
    assert SECTIONS | FIGURES <= page.ids
    assert page.scripts == 0
    assert page.links and all(link.startswith("data:image/png;base64,") for link in page.links)
    assert len(page.images) == len(FIGURES)
    for src in page.images:
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "not recorded by this run" not in page.text
    assert "grid__lambda-0.001__seed-0" in page.text and "float32" in page.text and "keras 3.15.1" in page.text


def test_report_imports_no_tensorflow(tmp_path):
    make_study(tmp_path)
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom regexp.cli import app\n"
        f"result = CliRunner().invoke(app, ['report', {str(tmp_path)!r}])\n"
        "assert result.exit_code == 0, result.output\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TensorFlow imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert (tmp_path / "report.html").exists()


def test_weights_are_read_from_the_keras_file_by_layer_name(keras_weights):
    from regexp.study.report import read_kernels

    path, known = keras_weights
    kernels = read_kernels(path, 10**6)
    assert sorted(kernels) == sorted(LAYERS)
    np.testing.assert_array_equal(kernels["conv1"], known)
    assert kernels["dense2"].shape == (8, 5)


def test_runs_without_weights_or_activations_say_not_recorded(cli, tmp_path):
    for seed in range(2):
        fake_run(tmp_path, "none", seed, 0.8 + seed / 100, activations=False)
        fake_run(tmp_path, "l2_activity", seed, 0.85 + seed / 50, regularizer=l2(), activations=False)
    assert cli("report", tmp_path).exit_code == 0
    page = parse(tmp_path / "report.html")
    assert "fig-weights" not in page.ids and "fig-activations" not in page.ids and "fig-gap" in page.ids
    assert "final weights (model.weights.h5) were not recorded by these runs" in page.text
    assert "not recorded by this run" in page.text
    assert "activations`) were not recorded by these runs" in page.text


def test_a_root_of_one_run_reports_it_without_an_interval(cli, tmp_path):
    fake_run(tmp_path, "none", 0, 0.8729)
    result = cli("report", tmp_path)
    assert result.exit_code == 0, result.output
    row = read_stats(tmp_path)["none"]
    assert (row["n"], row["test_accuracy_ci_low"], row["verdict"]) == ("1", "", "baseline")
    assert "Only the baseline none" in result.output
    assert "n = 1: no interval" in (tmp_path / "report.md").read_text()


def test_one_seed_per_config_is_shown_but_not_tested(cli, tmp_path):
    fake_run(tmp_path, "none", 0, 0.8729)
    fake_run(tmp_path, "l2_activity", 0, 0.8901, regularizer=l2())
    result = cli("report", tmp_path)
    assert result.exit_code == 0
    row = read_stats(tmp_path)["l2_activity"]
    assert float(row["diff_mean"]) == pytest.approx(0.0172)
    assert row["p_value"] == "" and row["verdict"] == "not tested: a single run on each side (n < 2)"
    assert "+1.7 points; a single run on each side (n < 2)" in result.output
    assert "No config detectably beats none" in result.output


def test_a_renamed_run_folder_is_named_by_its_folder_in_the_report(cli, tmp_path):
    for seed in range(2):
        fake_run(tmp_path, "none", seed, 0.8 + seed / 100)
    (tmp_path / "none__seed-1").rename(tmp_path / "none-moved")  # its metrics.json still says none__seed-1
    assert cli("report", tmp_path).exit_code == 0
    report = (tmp_path / "report.md").read_text()
    assert "| none-moved | none |" in report and "none__seed-1" not in report


def test_failed_runs_are_listed_and_not_counted(cli, tmp_path):
    make_study(tmp_path)
    fake_run(tmp_path, "l2_activity", 3, 0.0, regularizer=l2(), status="failed")
    assert cli("report", tmp_path).exit_code == 0
    assert read_stats(tmp_path)["l2_activity"]["n"] == "3"
    assert "failed: ValueError: broken on purpose" in parse(tmp_path / "report.html").text
    assert "| l2_activity | l2 0.01 on activity | 3 of 4 |" in (tmp_path / "report.md").read_text()


def test_a_grid_without_baseline_gives_intervals_only(cli, tmp_path):
    for seed in range(2):
        for lam in (0.001, 0.01, 0.1):
            fake_run(tmp_path, f"grid__lambda-{lam}", seed, 0.9 - lam + seed / 100, regularizer=l2(lam))
    result = cli("report", tmp_path)
    assert result.exit_code == 0, result.output
    assert "No comparison was made: there is no baseline (no config without regularization" in result.output
    table = read_stats(tmp_path)
    assert all(
        r["baseline"] == "" and r["verdict"] == "not tested: no baseline" and r["test_accuracy_ci_low"]
        for r in table.values()
    )
    page = parse(tmp_path / "report.html")
    assert "fig-forest" not in page.ids and "fig-lambda" in page.ids
    assert "No forest plot: there is no baseline" in page.text


def test_baseline_can_be_chosen_and_an_unknown_one_writes_nothing(cli, tmp_path):
    make_study(tmp_path)
    result = cli("report", tmp_path, "--baseline", "nope")
    assert result.exit_code == 2
    assert result.output.strip() == (
        "error: --baseline: no config 'nope' here; the configs are: l1_kernel, l2_activity, none"
    )
    assert not (tmp_path / "report.html").exists() and not (tmp_path / "stats.csv").exists()
    assert cli("report", tmp_path, "--baseline", "l1_kernel").exit_code == 0
    assert read_stats(tmp_path)["none"]["verdict"] == "better"


def test_damaged_run_folders_are_named_left_out_and_exit_1(cli, tmp_path):
    make_study(tmp_path)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "metrics.json").write_text("{not json")
    result = cli("report", tmp_path)
    assert result.exit_code == 1
    assert f"skipped: {tmp_path / 'broken'}" in result.output  # the folder named, then what is wrong
    page = parse(tmp_path / "report.html")
    assert "skipped" in page.ids and str(tmp_path / "broken") in page.text
    assert "broken" not in read_stats(tmp_path)


def test_an_empty_folder_is_one_error(cli, tmp_path):
    result = cli("report", tmp_path)
    assert result.exit_code == 2 and "no runs here" in result.output


@pytest.mark.slow
def test_sweep_writes_the_report_at_its_end(cli, tmp_path):
    folder = tmp_path / "configs"
    tiny = merge(TINY, {"model": {"num_classes": 5}, "sweep": {"training.seed": [0, 1]}})
    write_config(folder, "none", tiny)
    write_config(folder, "l2", merge(tiny, {"regularizer": {"type": "l2", "targets": ["activity"]}}))
    result = cli("sweep", folder, "--results", tmp_path / "results")
    assert result.exit_code == 0, result.output
    assert "Report: " in result.output
    table = read_stats(tmp_path / "results")
    assert table["none"]["verdict"] == "baseline" and table["l2"]["test"] == "paired t-test"
    page = parse(tmp_path / "results" / "report.html")
    assert {"fig-forest", "fig-gap"} <= page.ids


def test_a_root_of_only_damaged_folders_says_nothing_could_be_read(cli, tmp_path):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "metrics.json").write_text("[]")
    result = cli("report", tmp_path)
    assert result.exit_code == 1
    assert "No run here could be read" in result.output and (tmp_path / "report.html").exists()


def test_a_tuned_strength_is_described_in_three_significant_digits():
    from regexp.study.configs import describe_regularizer

    assert describe_regularizer([{"type": "l2", "lambda": 0.0009596851584270444, "targets": ["activity"]}]) == (
        "l2 0.00096 on activity"
    )
    entry = {"type": "elasticnet", "l1": 0.01, "l2": 2.1231735588621825e-07, "targets": ["kernel", "bias"]}
    assert describe_regularizer([entry]) == "l1 0.01 + l2 2.12e-07 on kernel+bias"
