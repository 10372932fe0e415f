"""`regexp sweep` through the CLI on tiny synthetic data."""

import csv
import json
import statistics

import pytest

from regexp.results.store import read_history

from conftest import TINY, merge, write_config

TINY5 = merge(TINY, {"model": {"num_classes": 5}})


def metrics(root, name):
    return json.loads((root / name / "metrics.json").read_text())


@pytest.fixture
def grid_folder(tmp_path):
    folder = tmp_path / "configs"
    write_config(
        folder,
        "grid",
        merge(
            TINY5,
            {"regularizer": {"type": "l2"}, "sweep": {"regularizer.lambda": [0.001, 0.1], "training.seed": [0, 1]}},
        ),
    )
    write_config(folder, "plain", TINY5)
    return folder


def test_a_one_run_sweep_trains_it_and_writes_the_summary_and_the_report(cli, tmp_path):
    """The fast tier's sweep end to end: plan, run, status table, summary, report."""
    folder = tmp_path / "configs"
    write_config(folder, "only", merge(TINY5, {"data": {"limit": 100, "test_limit": 50}}))
    root = tmp_path / "r"
    result = cli("sweep", folder, "--results", root)
    assert result.exit_code == 0, result.output
    assert "1 runs: 0 already completed, 1 to run" in result.output
    assert metrics(root, "only")["status"] == "completed"
    assert (root / "summary.md").exists() and (root / "report.html").exists()


@pytest.mark.slow
def test_sweep_runs_every_grid_point_then_skips_completed_and_reruns_with_force(cli, tmp_path, grid_folder):
    root = tmp_path / "results"
    first = cli("sweep", grid_folder, "--results", root)
    assert first.exit_code == 0, first.output
    names = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert sorted(p.name for p in root.iterdir() if p.name.startswith(".")) == [".locks"]  # the runs' lock files
    assert names == [
        "grid__lambda-0.001__seed-0",
        "grid__lambda-0.001__seed-1",
        "grid__lambda-0.1__seed-0",
        "grid__lambda-0.1__seed-1",
        "plain",
    ]
    assert "[sweep 5/5 done" in first.output
    assert metrics(root, "grid__lambda-0.1__seed-1")["seed"] == 1
    stamp = {n: (root / n / "metrics.json").stat().st_mtime_ns for n in names}

    again = cli("sweep", grid_folder, "--results", root)
    assert again.exit_code == 0 and "5 already completed, 0 to run" in again.output
    assert {n: (root / n / "metrics.json").stat().st_mtime_ns for n in names} == stamp

    forced = cli("sweep", grid_folder, "--results", root, "--force", "--set", "data.limit=200")
    assert forced.exit_code == 0 and "0 already completed, 5 to run" in forced.output
    assert all(metrics(root, n)["data"]["train"] == 160 for n in names)


def test_invalid_config_stops_the_sweep_before_anything_trains_listing_all_errors(cli, tmp_path, grid_folder):
    (grid_folder / "bad1.yaml").write_text("regularizer: {type: l3}\n")
    (grid_folder / "bad2.yaml").write_text("training: {epochs: 0}\n")
    result = cli("sweep", grid_folder, "--results", tmp_path / "results")
    assert result.exit_code == 2
    assert "2 problems" in result.output
    assert "bad1.yaml: regularizer.type" in result.output and "bad2.yaml: training.epochs" in result.output
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_a_failing_run_does_not_stop_the_others_and_the_exit_code_says_so(cli, tmp_path, monkeypatch):
    folder = tmp_path / "configs"
    for name in ("a_ok", "b_broken", "c_ok"):
        write_config(folder, name, TINY5)
    write_config(
        folder, "d_diverges", merge(TINY5, {"training": {"learning_rate": 1e12, "epochs": 3, "batch_size": 50}})
    )
    from regexp.training import model as model_lib

    real_build = model_lib.build_model

    def build_or_break(config, *args, **kwargs):
        if config.name == "b_broken":
            raise RuntimeError("injected fault")
        return real_build(config, *args, **kwargs)

    monkeypatch.setattr(model_lib, "build_model", build_or_break)
    root = tmp_path / "results"
    result = cli("sweep", folder, "--results", root)
    assert result.exit_code == 1
    table = result.output[result.output.index("run ") :]
    assert "a_ok" in table and "c_ok" in table
    assert metrics(root, "a_ok")["status"] == metrics(root, "c_ok")["status"] == "completed"
    broken = metrics(root, "b_broken")
    assert broken["status"] == "failed" and "injected fault" in broken["error"]
    diverged = metrics(root, "d_diverges")
    assert diverged["status"] == "diverged" and diverged["diverged_epoch"] == 1 and diverged["epochs_run"] == 1
    broken_line = next(line for line in table.splitlines() if line.startswith("b_broken "))
    assert broken_line.split()[1] == "failed" and "injected fault" in broken_line
    # Run again: the completed ones are skipped, the failed and diverged ones run again.
    monkeypatch.setattr(model_lib, "build_model", real_build)
    again = cli("sweep", folder, "--results", root)
    assert "2 already completed, 2 to run" in again.output
    assert metrics(root, "b_broken")["status"] == "completed"


@pytest.mark.slow
def test_jobs_2_gives_the_same_results_as_jobs_1(cli, tmp_path):
    folder = tmp_path / "configs"
    write_config(
        folder,
        "grid",
        merge(
            TINY5, {"regularizer": {"type": "l2", "targets": ["activity"]}, "sweep": {"training.seed": [0, 1, 2, 3]}}
        ),
    )
    one, two = tmp_path / "jobs1", tmp_path / "jobs2"
    assert cli("sweep", folder, "--results", one, "--jobs", "1").exit_code == 0
    result = cli("sweep", folder, "--results", two, "--jobs", "2")
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in one.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert (
        names == sorted(p.name for p in two.iterdir() if p.is_dir() and not p.name.startswith(".")) and len(names) == 4
    )
    for name in names:
        a, b = metrics(one, name), metrics(two, name)
        for key in ("status", "config_hash", "epochs_run", "param_count", "seed", "data", "penalties"):
            assert a[key] == b[key], key
        # One thread per run under --jobs 2 instead of two: float sums in another order, so
        # the numbers agree to rounding, not to the bit (equal thread counts agree to the bit).
        assert b["test_loss"] == pytest.approx(a["test_loss"], rel=1e-4)
        assert b["test_accuracy"] == pytest.approx(a["test_accuracy"], abs=0.011)
        assert (one / name / "config.yaml").read_text() == (two / name / "config.yaml").read_text()
        ha, hb = read_history(one / name / "history.csv"), read_history(two / name / "history.csv")
        assert [r["epoch"] for r in ha] == [r["epoch"] for r in hb]
        assert [r["loss"] for r in hb] == pytest.approx([r["loss"] for r in ha], rel=1e-4)


@pytest.mark.slow
def test_summary_gives_mean_and_std_over_seeds_best_first(cli, tmp_path):
    folder = tmp_path / "configs"
    write_config(folder, "seeds", merge(TINY5, {"sweep": {"training.seed": [0, 1, 2]}}))
    write_config(folder, "strong", merge(TINY5, {"regularizer": {"type": "l2", "lambda": 0.5}}))
    root = tmp_path / "results"
    assert cli("sweep", folder, "--results", root).exit_code == 0
    runs = [metrics(root, f"seeds__seed-{s}") for s in range(3)]
    acc = [m["test_accuracy"] for m in runs]
    loss = [m["test_loss"] for m in runs]
    with open(root / "summary.csv") as f:
        rows = {row["config"]: row for row in csv.DictReader(f)}
    row = rows["seeds"]
    assert int(row["runs"]) == int(row["completed"]) == 3
    assert float(row["test_accuracy_mean"]) == pytest.approx(sum(acc) / 3)
    assert float(row["test_accuracy_std"]) == pytest.approx(statistics.stdev(acc))
    assert float(row["test_loss_mean"]) == pytest.approx(sum(loss) / 3)
    assert float(row["test_loss_std"]) == pytest.approx(statistics.stdev(loss))
    assert float(row["best_val_accuracy_mean"]) == pytest.approx(sum(m["best_val_accuracy"] for m in runs) / 3)
    assert float(row["sparsity_mean"]) == pytest.approx(sum(m["sparsity"]["overall"] for m in runs) / 3)
    assert rows["strong"]["runs"] == "1" and rows["strong"]["test_accuracy_std"] == ""
    order = [r for r in rows]
    means = [float(rows[c]["test_accuracy_mean"]) for c in order]
    assert means == sorted(means, reverse=True)
    assert "| seeds | 3/3 |" in (root / "summary.md").read_text()
