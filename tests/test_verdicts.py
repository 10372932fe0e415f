"""Verdicts that decide: equivalence (TOST), the minimum detectable effect, the seeds that would
decide, and collapsed runs, each number checked against scipy called directly here."""

import csv
import io
import math

import numpy as np
import pytest
from scipy import stats as sp
from test_stats import by_name, config, run

from regexp.errors import RegexpError
from regexp.results import RunStatus
from regexp.study import stats

SESOI = 0.005  # 0.5 points


def noncentral_power(nc, df, alpha):
    """Two-sided t-test power from scipy's noncentral t, by the textbook formula (the lower tail
    P(T < -c; nc) written as P(T > c; -nc): scipy's nct.cdf is NaN at some large noncentralities)."""
    c = sp.t.ppf(1 - alpha / 2, df)
    return sp.nct.sf(c, df, nc) + sp.nct.sf(c, df, -nc)


def study(base, others, seeds=None, sesoi=SESOI, classes=None):
    data = {"num_classes": classes} if classes else None
    runs = config("none", base, regularizer=[], data=data)
    for name, values in others.items():
        runs += config(name, values, seeds=seeds, data=data)
    return by_name(stats.config_stats(runs, sesoi=sesoi)[0])


def test_paired_tost_is_the_larger_of_two_one_sided_t_tests_against_minus_and_plus_sesoi():
    base, other = [0.80, 0.82, 0.84, 0.79], [0.803, 0.822, 0.842, 0.792]
    c = study(base, {"l2": other})["l2"].comparison
    d = np.subtract(other, base)
    lower = sp.ttest_1samp(d, -SESOI, alternative="greater").pvalue
    upper = sp.ttest_1samp(d, SESOI, alternative="less").pvalue
    assert c.test == stats.PAIRED
    assert c.p_equivalence == pytest.approx(max(lower, upper))


def test_welch_tost_shifts_one_side_by_the_sesoi_in_scipys_welch_test():
    base, other = [0.80, 0.82, 0.84, 0.81], [0.815, 0.80, 0.83]
    c = study(base, {"l2": other}, seeds=[7, 8, 9])["l2"].comparison
    lower = sp.ttest_ind(np.add(other, SESOI), base, equal_var=False, alternative="greater").pvalue
    upper = sp.ttest_ind(np.subtract(other, SESOI), base, equal_var=False, alternative="less").pvalue
    assert c.test == stats.WELCH
    assert c.p_equivalence == pytest.approx(max(lower, upper))


def test_equivalence_is_holm_corrected_over_the_comparisons_and_decides_equivalent_or_undecided():
    base = [0.80, 0.82, 0.84, 0.79, 0.83]
    offsets = {"tight": [0.0005, -0.0004, 0.0002, 0.0, -0.0001], "loose": [0.004, -0.003, 0.006, -0.005, 0.001]}
    rows = study(base, {name: np.add(base, o).tolist() for name, o in offsets.items()})
    raw = []
    for name in ("tight", "loose"):
        d = np.asarray(offsets[name])
        raw.append(
            max(
                sp.ttest_1samp(d, -SESOI, alternative="greater").pvalue,
                sp.ttest_1samp(d, SESOI, alternative="less").pvalue,
            )
        )
    expected = sorted(raw)
    expected = [min(1, 2 * expected[0]), max(min(1, 2 * expected[0]), expected[1])]  # Holm, m = 2, raw[0] < raw[1]
    assert raw[0] < raw[1]
    assert [rows["tight"].p_equivalence_holm, rows["loose"].p_equivalence_holm] == pytest.approx(expected)
    assert rows["tight"].verdict == "equivalent" and rows["tight"].within_sesoi
    assert rows["loose"].verdict == "undecided" and not rows["loose"].within_sesoi


def test_a_difference_smaller_than_the_sesoi_can_be_better_and_within_it():
    base = [0.80, 0.82, 0.84, 0.79, 0.83, 0.81]
    other = np.add(base, [0.002, 0.0021, 0.0019, 0.002, 0.00205, 0.00195]).tolist()
    row = study(base, {"l2": other})["l2"]
    assert row.verdict == "better" and row.within_sesoi


def test_minimum_detectable_effect_has_80_percent_power_at_alpha_over_m():
    # paired, 3 seeds, two comparisons: planned at 0.025 with 2 df
    base = [0.80, 0.82, 0.84]
    offsets = {"a": [0.01, 0.03, 0.02], "b": [-0.02, 0.01, 0.04]}
    rows = study(base, {name: np.add(base, o).tolist() for name, o in offsets.items()})
    for name, o in offsets.items():
        sd = np.std(o, ddof=1)
        mde = rows[name].mde
        assert noncentral_power(mde * math.sqrt(3) / sd, 2, 0.025) == pytest.approx(0.8, abs=1e-6)
        assert noncentral_power(0.99 * mde * math.sqrt(3) / sd, 2, 0.025) < 0.8


def test_minimum_detectable_effect_of_two_seeds_and_of_welch():
    spread = stats.Spread(True, 0.01, 2)
    mde = stats.minimum_detectable_effect(spread, 0.05)
    assert noncentral_power(mde * math.sqrt(2) / 0.01, 1, 0.05) == pytest.approx(0.8, abs=1e-6)
    welch = stats.Spread(False, 0.01, 3, 0.03, 4)
    mde = stats.minimum_detectable_effect(welch, 0.05)
    a, b = 0.01**2 / 3, 0.03**2 / 4
    df = (a + b) ** 2 / (a**2 / 2 + b**2 / 3)
    assert noncentral_power(mde / math.sqrt(a + b), df, 0.05) == pytest.approx(0.8, abs=1e-6)


def test_zero_spread_detects_any_effect_with_two_seeds():
    assert stats.minimum_detectable_effect(stats.Spread(True, 0.0, 3), 0.05) == 0.0
    assert stats.seeds_needed(stats.Spread(True, 0.0, 3), SESOI, 0.05) == 2
    assert stats.seeds_needed(stats.Spread(False, 0.0, 3, 0.0, 3), SESOI, 0.05) == 2


def test_seeds_needed_is_the_first_n_with_80_percent_power():
    # dz = 0.5 at alpha 0.05: the power tables' 34 pairs
    assert stats.seeds_needed(stats.Spread(True, 0.01, 3), 0.005, 0.05) == 34
    for sd, alpha in ((0.004, 0.025), (0.02, 0.05 / 3)):
        n = stats.seeds_needed(stats.Spread(True, sd, 3), SESOI, alpha)
        assert noncentral_power(SESOI * math.sqrt(n) / sd, n - 1, alpha) >= 0.8
        assert noncentral_power(SESOI * math.sqrt(n - 1) / sd, n - 2, alpha) < 0.8


def test_seeds_needed_for_welch_uses_the_same_n_on_both_sides():
    spread = stats.Spread(False, 0.01, 3, 0.02, 5)
    n = stats.seeds_needed(spread, SESOI, 0.05)

    def welch_power(k):
        a, b = 0.01**2 / k, 0.02**2 / k
        return noncentral_power(SESOI / math.sqrt(a + b), (a + b) ** 2 / ((a**2 + b**2) / (k - 1)), 0.05)

    assert welch_power(n) >= 0.8 > welch_power(n - 1)


def test_an_undecided_comparison_says_how_many_seeds_and_more_than_1000_where_it_would_take_that():
    base = [0.80, 0.82, 0.84]
    rows = study(base, {"near": np.add(base, [0.01, -0.01, 0.003]).tolist()})
    row = rows["near"]
    assert row.verdict == "undecided"
    sd = np.std([0.01, -0.01, 0.003], ddof=1)
    n = row.seeds_needed
    assert noncentral_power(SESOI * math.sqrt(n) / sd, n - 1, 0.05) >= 0.8
    wild = study(base, {"wild": np.add(base, [0.15, -0.3, 0.01]).tolist()})["wild"]
    assert wild.verdict == "undecided" and wild.seeds_needed is None
    sd = np.std([0.15, -0.3, 0.01], ddof=1)  # accuracies within [0, 1], as a record holds them
    assert noncentral_power(SESOI * math.sqrt(1000) / sd, 999, 0.05) < 0.8
    table = list(csv.DictReader(io.StringIO(stats.to_csv(list(study(base, {"wild": [0.5, 0.9, 0.4]}).values())))))
    cells = {r["config"]: r for r in table}
    assert cells["wild"]["seeds_needed"] == "more than 1000" and cells["wild"]["sesoi"] == "0.005"
    assert cells["none"]["seeds_needed"] == "" and cells["none"]["mde"] == ""


def test_only_undecided_comparisons_get_seeds_needed():
    base = [0.80, 0.82, 0.84]
    row = study(base, {"far": np.add(base, [0.10, 0.11, 0.12]).tolist()})["far"]
    assert row.verdict == "better" and row.seeds_needed is None and row.mde is not None


def test_wilcoxon_and_shapiro_beside_the_paired_test():
    base, d = [0.80, 0.82, 0.84, 0.79], [0.01, 0.03, 0.02, 0.05]
    c = study(base, {"l2": np.add(base, d).tolist()})["l2"].comparison
    d = np.add(base, d) - np.asarray(base)
    assert c.shapiro_p == pytest.approx(sp.shapiro(d).pvalue)
    assert c.wilcoxon_p == pytest.approx(sp.wilcoxon(d).pvalue)
    two = study([0.8, 0.82], {"l2": [0.81, 0.84]})["l2"].comparison
    assert two.shapiro_p is None and two.wilcoxon_p is None


def clopper_pearson(k, n):
    low = 0.0 if k == 0 else sp.beta.ppf(0.025, k, n - k + 1)
    high = 1.0 if k == n else sp.beta.ppf(0.975, k + 1, n - k)
    return low, high


def test_collapsed_runs_are_counted_with_an_exact_binomial_interval():
    # 10 classes: chance 0.10, collapsed at or below 0.12
    rows = study(
        [0.80, 0.82, 0.84],
        {"partly": [0.11, 0.85, 0.10], "fully": [0.10, 0.11, 0.095], "never": [0.83, 0.84, 0.86]},
        classes=10,
    )
    for name, k in (("partly", 2), ("fully", 3), ("never", 0), ("none", 0)):
        collapse = rows[name].collapse
        assert (collapse.collapsed, collapse.runs) == (k, 3)
        assert collapse.ci == pytest.approx(clopper_pearson(k, 3))
    assert rows["partly"].verdict == "unstable" and "this config: 2 of 3 runs collapsed" in rows["partly"].unstable_why
    assert rows["partly"].collapse_p == pytest.approx(sp.fisher_exact([[2, 1], [0, 3]]).pvalue)
    assert rows["fully"].verdict == "worse" and rows["never"].verdict != "unstable"
    cells = {r["config"]: r for r in csv.DictReader(io.StringIO(stats.to_csv(list(rows.values()))))}
    assert cells["partly"]["collapsed"] == "2/3" and cells["never"]["collapsed"] == "0/3"
    assert cells["partly"]["test_accuracy_ci_low"] == "" and cells["partly"]["diff_ci_low"] == ""
    assert cells["never"]["test_accuracy_ci_low"] != ""


def test_a_diverged_run_is_collapsed_and_a_partly_collapsed_baseline_makes_every_comparison_unstable():
    runs = config("none", [0.80, 0.82], regularizer=[]) + [run("none", 2, None, status=RunStatus.DIVERGED)]
    runs += config("l2", [0.83, 0.84, 0.86])
    rows = by_name(stats.config_stats(runs)[0])
    assert rows["none"].collapse.text == "1/3"
    assert rows["l2"].verdict == "unstable" and "the baseline: 1 of 3 runs collapsed" in rows["l2"].unstable_why


def test_without_a_recorded_class_count_only_divergence_counts_as_collapse():
    rows = study([0.80, 0.82, 0.84], {"low": [0.05, 0.85, 0.83]})
    assert rows["low"].collapse.collapsed == 0


@pytest.mark.parametrize("points", [0, -1, 100, float("nan")])
def test_a_sesoi_outside_0_to_100_points_is_one_error(points):
    with pytest.raises(RegexpError, match=r"--sesoi: .* between 0 and 100"):
        stats.sesoi_fraction(points)


def test_power_falls_back_to_the_normal_approximation_where_nct_is_not_finite(monkeypatch):
    monkeypatch.setattr(sp.nct, "sf", lambda *a: float("nan"))
    assert stats.two_sided_power(50.0, 3, 0.05) == pytest.approx(1.0)
    assert stats.two_sided_power(0.0, 3, 0.05) == pytest.approx(2 * sp.norm.sf(sp.t.isf(0.025, 3)))


def test_power_where_scipys_nct_cdf_is_nan():
    assert math.isnan(sp.nct.cdf(-sp.t.isf(0.025, 1), 1, 8.0))  # the case the lower-tail rewrite avoids
    assert stats.two_sided_power(8.0, 1, 0.05) == pytest.approx(noncentral_power(8.0, 1, 0.05))


# --------------------------------------------------------------------------- the report's words


def report_study(root, host=None):
    """none, a config equivalent to it, one undecided, one partly collapsed (10 classes, chance 0.10)."""
    from test_report import fake_run, l2

    data = {"description": "scikit-learn digits", "num_classes": 10, "train": 1150, "validation": 287, "test": 360}
    base = [0.80, 0.82, 0.84, 0.81]
    extra = {"data": data, **({"host": host} if host else {})}
    for seed, b in enumerate(base):
        fake_run(root, "none", seed, b, extra=extra)
        fake_run(root, "same", seed, b + (0.0005, -0.0004, 0.0002, 0.0)[seed], regularizer=l2(0.001), extra=extra)
        fake_run(root, "open", seed, b + (0.03, -0.02, 0.01, -0.01)[seed], regularizer=l2(0.01), extra=extra)
        fake_run(root, "broken", seed, (0.10, 0.85, 0.11, 0.84)[seed], regularizer=l2(1.0), extra=extra)


def test_the_answer_flags_collapse_first_and_ends_with_what_would_decide(cli, tmp_path):
    report_study(tmp_path)
    result = cli("report", tmp_path)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("Unstable: broken: 2 of 4 seeds collapsed. ")
    assert "Of the others: 1 equivalent, 1 undecided, 1 unstable." in lines[0]
    assert "smallest effect of interest ±0.5 points" in lines[0]
    unstable = next(line for line in lines if line.startswith("unstable: broken"))
    assert "broken: 2 of 4 runs collapsed (rate 50%, exact 95 % CI 7% to 93%)" in unstable
    assert "no interval is given for it" in unstable
    assert next(line for line in lines if line.startswith("equivalent: same")).count("within ±0.5 points") == 2
    undecided = next(line for line in lines if line.startswith("undecided: open"))
    assert "neither a difference nor equivalence within ±0.5 points is shown" in undecided
    row = {r["config"]: r for r in csv.DictReader(open(tmp_path / "stats.csv", newline=""))}["open"]
    seeds = int(row["seeds_needed"])
    assert "To decide the undecided: seeds per config for 80 % power to detect 0.5 points" in result.output
    assert f"open {seeds}." in result.output
    assert f"Command: regexp sweep CONFIGS --seeds {seeds} --results {tmp_path} (CONFIGS" in result.output
    answer_end = lines.index(next(line for line in lines if line.startswith("Report: ")))
    assert lines[answer_end - 1].startswith("Unstable (broken): some seeds collapse")


def test_sesoi_is_recorded_and_changes_the_verdicts(cli, tmp_path):
    report_study(tmp_path)
    assert cli("report", tmp_path, "--sesoi", "5").exit_code == 0
    rows = {r["config"]: r for r in csv.DictReader(open(tmp_path / "stats.csv", newline=""))}
    assert {r["sesoi"] for r in rows.values()} == {"0.05"}
    assert rows["open"]["verdict"] == "equivalent"  # ±2 points of spread, within ±5
    md = (tmp_path / "report.md").read_text()
    assert "Smallest effect of interest (--sesoi): 5 points" in md


@pytest.mark.parametrize("value", ["0", "-1", "100"])
def test_a_bad_sesoi_is_one_line_and_writes_nothing(cli, tmp_path, value):
    report_study(tmp_path)
    result = cli("report", tmp_path, "--sesoi", value)
    assert result.exit_code == 2
    assert (
        result.output.strip()
        == f"error: --sesoi: {float(value)} is not a number of points between 0 and 100 (exclusive)"
    )
    assert not (tmp_path / "stats.csv").exists()
    sweep = cli("sweep", tmp_path / "nowhere", "--sesoi", value, "--results", tmp_path / "r")
    assert sweep.exit_code == 2 and "--sesoi" in sweep.output and not (tmp_path / "r").exists()


def test_method_names_the_checks_and_the_compute_from_the_runs_records(cli, tmp_path):
    report_study(tmp_path, host={"name": "box", "cpu": "Test CPU 9000", "cores": 2, "gpus": None})
    assert cli("report", tmp_path).exit_code == 0
    md = (tmp_path / "report.md").read_text()
    method = md[md.index("## Method") :]
    assert "t interval of the mean" in method and "(not ± SD)" in method
    assert "No interval is adjusted for the number of comparisons" in method
    assert "test split is fixed" in method
    # 16 runs x 12.5 s
    assert "Compute: 0.06 hours of training in all (200 s" in method
    assert "Test CPU 9000, 2 cores, no GPU (16 runs)" in method
    d = np.array([0.03, -0.02, 0.01, -0.01])
    expected = f"open: Shapiro–Wilk p = {sp.shapiro(d).pvalue:.3f}"
    assert expected in method
    assert "Wilcoxon signed-rank p = " in method and "they agree at α = 0.05" in method


def simulated_tost_power(d, sd, n, alpha, rng, runs=40_000):
    """The share of simulated paired studies (normal differences) whose TOST rejects."""
    x = rng.normal(d, sd, size=(runs, n))
    se = x.std(axis=1, ddof=1) / math.sqrt(n)
    c = sp.t.isf(alpha, n - 1)
    return (((x.mean(axis=1) + SESOI) / se > c) & ((x.mean(axis=1) - SESOI) / se < -c)).mean()


@pytest.mark.parametrize("n", [39, 60])
def test_equivalence_power_matches_a_simulation_of_tost_where_plans_are_made(n):
    rng = np.random.default_rng(n)
    power = stats.equivalence_power(0.001, stats.Spread(True, 0.01, n), SESOI, 0.05, n)
    assert 0.6 < power < 0.99
    assert power == pytest.approx(simulated_tost_power(0.001, 0.01, n, 0.05, rng), abs=0.015)


def test_equivalence_power_never_overstates_at_low_power():
    rng = np.random.default_rng(3)
    power = stats.equivalence_power(0.002, stats.Spread(True, 0.01, 10), SESOI, 0.05, 10)
    assert power <= simulated_tost_power(0.002, 0.01, 10, 0.05, rng) + 0.01


def test_an_undecided_comparison_with_the_power_planned_for_is_planned_on_equivalence():
    # 10 seeds, differences of -0.28 points on average, SD 0.443: the difference test already has 80 %
    # power against 0.5 points, neither test rejects, so the plan is the equivalence test's at -0.28
    base = [0.80, 0.82, 0.84, 0.79, 0.83, 0.81, 0.85, 0.78, 0.80, 0.82]
    z = np.array([-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, -0.2, 0.2, 0.0])
    offsets = -0.0028 + 0.00443 * (z - z.mean()) / z.std(ddof=1)
    row = study(base, {"near": np.add(base, offsets).tolist()})["near"]
    d = np.asarray(offsets)
    assert row.verdict == "undecided" and row.seeds_for == stats.EQUIVALENCE_PLAN
    assert stats.seeds_needed(row.comparison.spread, SESOI, 0.05) <= 10
    n = row.seeds_needed
    spread = stats.Spread(True, d.std(ddof=1), 10)
    assert stats.equivalence_power(d.mean(), spread, SESOI, 0.05, n) >= 0.8
    assert stats.equivalence_power(d.mean(), spread, SESOI, 0.05, n - 1) < 0.8
    assert stats.equivalence_seeds_needed(spread, 0.006, SESOI, 0.05) is None  # outside the margin: never
