"""The figures share one style module and one λ figure (issue 23 §3): `regexp plot` saves the
report's λ figure, mean and 95 % t interval, not a ± std variant of its own."""

import math

import numpy as np
import pytest
from matplotlib.figure import Figure
from scipy.stats import t as student_t
from test_report import fake_run, l2

from regexp.study import figure_style, plots, report_figures


def grid_study(root):
    for seed in range(3):
        for lam in (0.001, 0.1):
            fake_run(
                root,
                f"grid__lambda-{lam}",
                seed,
                0.9 - lam + seed / 100,
                regularizer=l2(lam),
                extra={"sparsity": {"threshold": 0.001, "overall": lam + seed / 1000, "layers": {}}},
            )
    fake_run(root, "grid__lambda-0.1", 9, 0.5, regularizer=l2(0.1), status="failed")


def test_mean_with_interval_draws_the_t_interval_of_the_mean():
    values = [[0.80, 0.82, 0.87], [0.70]]
    ax = Figure().subplots()
    figure_style.mean_with_interval(ax, [1.0, 2.0], values, "C0", "x")
    band = ax.collections[0].get_paths()[0].vertices
    x = np.asarray(values[0])
    half = student_t.ppf(0.975, 2) * x.std(ddof=1) / math.sqrt(3)
    at_one = band[np.isclose(band[:, 0], 1.0), 1]
    assert at_one.max() == pytest.approx(x.mean() + half) and at_one.min() == pytest.approx(x.mean() - half)
    at_two = band[np.isclose(band[:, 0], 2.0), 1]
    assert np.allclose(at_two, 0.70)  # one value: no interval, the band closes on the mean


def test_lambda_grids_hold_the_completed_runs_values_by_grid_series_and_lambda(tmp_path):
    grid_study(tmp_path)
    from regexp.results import scan_runs
    from regexp.study.configs import records_of

    runs = records_of(scan_runs(tmp_path)[0])
    grids = plots.lambda_grids(runs)
    assert grids == {
        "grid": {"grid": {0.001: pytest.approx([0.899, 0.909, 0.919]), 0.1: pytest.approx([0.8, 0.81, 0.82])}}
    }
    sparsity = plots.lambda_grids(runs, lambda m: m.sparsity.overall)
    assert sparsity["grid"]["grid"][0.1] == pytest.approx([0.1, 0.101, 0.102])


def test_regexp_plot_saves_the_reports_lambda_figure(cli, tmp_path, monkeypatch):
    grid_study(tmp_path)
    drawn = []
    original = report_figures.lambda_curves

    def spy(grids, baseline=None, sparsity=None):
        drawn.append((grids, baseline, sparsity))
        return original(grids, baseline, sparsity)

    monkeypatch.setattr(report_figures, "lambda_curves", spy)
    assert cli("plot", tmp_path).exit_code == 0
    assert (tmp_path / "lambda_grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (grids, baseline, sparsity), *_ = drawn
    assert baseline is None and set(grids) == set(sparsity) == {"grid"}
    assert grids["grid"]["grid"][0.001] == pytest.approx([0.899, 0.909, 0.919])


def test_every_figure_module_uses_one_resolution_and_palette():
    assert plots.DPI == report_figures.DPI == figure_style.DPI
    labels = [f"c{i}" for i in range(12)]
    assert report_figures.config_colors(labels) == figure_style.config_colors(labels)
    assert [s["color"] for s in figure_style.line_styles(12)] == list(figure_style.config_colors(labels).values())


def test_a_lambda_grid_whose_runs_all_failed_is_drawn_with_a_note_not_a_crash(tmp_path):
    for lam in (0.01, 0.1):
        fake_run(tmp_path, f"broken__lambda-{lam}", 0, 0.5, regularizer=l2(lam), status="failed")
    fake_run(tmp_path, "none", 0, 0.8)
    written = plots.plot_results(tmp_path).written
    assert tmp_path / "lambda_broken.png" in written and (tmp_path / "lambda_broken.png").stat().st_size > 0


def test_log_axes_label_their_decades_as_plain_text_not_raw_mathtext():
    from regexp.study.figure_style import log_scale

    def labels(scale) -> list[str]:
        fig = Figure()
        ax = fig.subplots()
        ax.plot([1e-6, 1e-2], [0.1, 0.9])
        scale(ax)
        fig.canvas.draw()
        return [tick.get_text() for tick in ax.get_xticklabels() if tick.get_text()]

    assert any("mathdefault" in label for label in labels(lambda ax: ax.set_xscale("log")))  # the control
    plain = labels(log_scale)
    assert "1e\u221204" in plain and not any("$" in label or "mathdefault" in label for label in plain), plain
