"""`regexp plot`: figures and summary from saved runs, without TensorFlow."""

import subprocess
import sys

from regexp.results.store import history_csv, write_json_atomic

from conftest import rising_history


def fake_run(root, name, group, seed, accuracy, lam=None, epochs=3):
    """A run folder as `regexp run` leaves it (only the files plot reads), with known numbers."""
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "history.csv").write_text(history_csv(rising_history(accuracy, epochs)))
    entry = {"type": "l2", "targets": ["kernel", "bias"], "lambda": lam, "l1": None, "l2": None, "layers": None}
    write_json_atomic(
        folder / "metrics.json",
        {
            "run": name,
            "group": group,
            "group_hash": group,
            "config_hash": name,
            "seed": seed,
            "status": "completed",
            "test_accuracy": accuracy,
            "test_loss": 1.0 - accuracy,
            "best_val_accuracy": accuracy - 0.01,
            "best_epoch": epochs,
            "sparsity": {"overall": lam or 0.0},
            "regularizer": [entry] if lam else [],
        },
    )


def make_results(root):
    for lam in (0.001, 0.01, 0.1):
        for seed in (0, 1):
            fake_run(root, f"grid__lambda-{lam}__seed-{seed}", f"grid__lambda-{lam}", seed, 0.9 - lam - seed / 100, lam)
    fake_run(root, "none", "none", 0, 0.85)


def test_plot_writes_curves_comparisons_and_summary_without_tensorflow(tmp_path):
    make_results(tmp_path)
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom regexp.cli import app\n"
        f"result = CliRunner().invoke(app, ['plot', {str(tmp_path)!r}])\n"
        "assert result.exit_code == 0, result.output\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    for run in ["none"] + [p.name for p in tmp_path.glob("grid__*")]:
        for figure in ("loss.png", "accuracy.png"):
            assert (tmp_path / run / figure).stat().st_size > 1000
    for figure in (
        "validation_accuracy.png",
        "validation_loss.png",
        "test_accuracy.png",
        "lambda_grid.png",
        "summary.csv",
        "summary.md",
    ):
        assert (tmp_path / figure).stat().st_size > 200, figure
    assert (tmp_path / "test_accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_one_run_folder_redraws_only_its_curves(cli, tmp_path):
    make_results(tmp_path)
    result = cli("plot", tmp_path / "none", "--format", "svg")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "none" / "loss.svg").read_text().lstrip().startswith("<?xml")
    assert not (tmp_path / "summary.csv").exists()


def test_summary_combines_runs_copied_from_several_machines(cli, tmp_path):
    fake_run(tmp_path / "a", "grid__lambda-0.01__seed-0", "grid__lambda-0.01", 0, 0.80, 0.01)
    fake_run(tmp_path / "b", "grid__lambda-0.01__seed-1", "grid__lambda-0.01", 1, 0.90, 0.01)
    combined = tmp_path / "combined"
    combined.mkdir()
    for machine in ("a", "b"):
        for run in (tmp_path / machine).iterdir():
            run.rename(combined / run.name)
    assert cli("plot", combined).exit_code == 0
    assert "| grid__lambda-0.01 | 2/2 | 0.8500 ± 0.0707 |" in (combined / "summary.md").read_text()


def test_plot_of_an_empty_folder_says_so(cli, tmp_path):
    result = cli("plot", tmp_path)
    assert result.exit_code == 2 and "no runs here" in result.output


def test_plot_redraws_only_missing_or_outdated_run_curves_unless_asked(cli, tmp_path):
    make_results(tmp_path)
    assert cli("plot", tmp_path).exit_code == 0
    drawn = {run.name: (run / "loss.png").stat().st_mtime_ns for run in tmp_path.iterdir() if run.is_dir()}
    outdated, missing = tmp_path / "none", tmp_path / "grid__lambda-0.1__seed-0"
    (outdated / "history.csv").write_text((outdated / "history.csv").read_text())  # a newer history
    (missing / "accuracy.png").unlink()

    result = cli("plot", tmp_path)
    assert result.exit_code == 0, result.output
    assert "5 of 7 runs' curves were up to date" in result.output
    redrawn = {name for name, before in drawn.items() if (tmp_path / name / "loss.png").stat().st_mtime_ns != before}
    assert redrawn == {outdated.name, missing.name}
    assert (missing / "accuracy.png").exists()

    result = cli("plot", tmp_path, "--redraw")
    assert result.exit_code == 0 and "up to date" not in result.output
    assert all((tmp_path / name / "loss.png").stat().st_mtime_ns != before for name, before in drawn.items())


def test_a_sparsity_recorded_as_null_is_left_out_of_the_summarys_mean(tmp_path):
    from test_report import fake_run

    from regexp.study import summary

    fake_run(tmp_path, "none", 0, 0.8, extra={"sparsity": {"overall": None}})  # a valid record: overall may be null
    fake_run(tmp_path, "none", 1, 0.82)
    [row] = summary.write_summary(tmp_path)
    assert (row["completed"], row["sparsity_mean"]) == (2, 0.01)
