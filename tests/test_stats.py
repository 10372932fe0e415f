"""Statistics across seeds, checked against values computed here by formula (numpy and the t
distribution's quantiles), and textbook values."""

import csv
import io
import math

import numpy as np
import pytest
from scipy.stats import t as student_t

from regexp.errors import RegexpError
from regexp.results import RunStatus, parse_record
from regexp.study import stats

L2 = [{"type": "l2", "targets": ["activity"], "lambda": 0.01, "l1": None, "l2": None, "layers": None}]


def run(config, seed, accuracy, loss=0.5, regularizer=None, status=RunStatus.COMPLETED, data=None):
    """The record of one run, as `regexp run` writes it (the fields the statistics read)."""
    return parse_record(
        {
            "run": f"{config}__seed-{seed}",
            "group": config,
            "group_hash": config,
            "seed": seed,
            "status": status,
            "test_accuracy": accuracy if status is RunStatus.COMPLETED else None,
            "test_loss": loss,
            "regularizer": [] if regularizer is None else regularizer,
            "data": data,
        }
    )


def config(name, accuracies, seeds=None, regularizer=L2, data=None):
    return [
        run(name, seed, a, regularizer=regularizer, data=data)
        for seed, a in zip(seeds or range(len(accuracies)), accuracies)
    ]


def by_name(rows):
    return {row.config: row for row in rows}


def t_interval(values):
    """Mean and 95 % interval by formula: mean ± t(0.975, n-1) · s / sqrt(n)."""
    x = np.asarray(values, dtype=float)
    half = student_t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return x.mean(), x.mean() - half, x.mean() + half


def test_t_quantile_matches_the_textbook_table():
    # Student t, two-sided 95 %: 12.706 (1 df), 4.303 (2 df), 2.776 (4 df), 2.228 (10 df)
    for df, table in ((1, 12.706), (2, 4.303), (4, 2.776), (10, 2.228)):
        assert round(student_t.ppf(0.975, df), 3) == table
    mean, (low, high) = stats.mean_interval([0.80, 0.82, 0.87])
    sd = np.std([0.80, 0.82, 0.87], ddof=1)
    assert (mean - low, high - mean) == pytest.approx((4.303 * sd / math.sqrt(3),) * 2, rel=1e-3)


def test_config_interval_is_student_t_with_n_minus_1_df_and_loss_is_the_mean():
    runs = [run("none", s, a, loss) for s, a, loss in ((0, 0.80, 0.6), (1, 0.82, 0.5), (2, 0.87, 0.4))]
    (row,), baseline, _ = stats.config_stats(runs)
    mean, low, high = t_interval([0.80, 0.82, 0.87])
    assert (row.n, baseline, row.verdict) == (3, "none", "baseline")
    assert row.accuracy_mean == pytest.approx(mean)
    assert row.accuracy_ci == pytest.approx((low, high))
    assert row.loss_mean == pytest.approx(0.5)


def test_same_seeds_give_a_paired_test_on_per_seed_differences():
    base = [0.80, 0.82, 0.84, 0.79]
    other = [0.83, 0.84, 0.88, 0.80]
    rows, _, _ = stats.config_stats(config("none", base, regularizer=[]) + config("l2", other))
    c = by_name(rows)["l2"].comparison
    d = np.subtract(other, base)
    se = d.std(ddof=1) / math.sqrt(len(d))
    t = d.mean() / se
    assert c.test == stats.PAIRED
    assert c.diff_mean == pytest.approx(d.mean())
    assert c.p_value == pytest.approx(2 * student_t.sf(abs(t), len(d) - 1))
    assert (c.ci_low, c.ci_high) == pytest.approx(
        (d.mean() - student_t.ppf(0.975, 3) * se, d.mean() + student_t.ppf(0.975, 3) * se)
    )
    assert c.effect_size == pytest.approx(d.mean() / d.std(ddof=1))  # dz
    assert by_name(rows)["l2"].p_holm == pytest.approx(c.p_value)  # one comparison: Holm leaves it


def test_pairing_follows_the_seed_not_the_order_of_the_runs():
    base = config("none", [0.80, 0.90, 0.85], seeds=[0, 1, 2], regularizer=[])
    other = config("l2", [0.91, 0.86, 0.82], seeds=[1, 2, 0])  # seed 0: 0.82, 1: 0.91, 2: 0.86
    c = by_name(stats.config_stats(base + other)[0])["l2"].comparison
    d = np.array([0.82 - 0.80, 0.91 - 0.90, 0.86 - 0.85])
    assert c.test == stats.PAIRED
    assert c.effect_size == pytest.approx(d.mean() / d.std(ddof=1))


def test_different_seeds_give_welch_with_satterthwaite_df_and_pooled_cohens_d():
    base, other = [0.80, 0.82, 0.84, 0.86], [0.85, 0.90, 0.88]
    rows, _, _ = stats.config_stats(config("none", base, regularizer=[]) + config("l2", other, seeds=[5, 6, 7]))
    c = by_name(rows)["l2"].comparison
    v1, v2 = np.var(other, ddof=1) / 3, np.var(base, ddof=1) / 4
    se = math.sqrt(v1 + v2)
    df = (v1 + v2) ** 2 / (v1**2 / 2 + v2**2 / 3)
    diff = np.mean(other) - np.mean(base)
    pooled = math.sqrt((2 * np.var(other, ddof=1) + 3 * np.var(base, ddof=1)) / 5)
    assert c.test == stats.WELCH
    assert c.diff_mean == pytest.approx(diff)
    assert c.p_value == pytest.approx(2 * student_t.sf(abs(diff / se), df))
    assert (c.ci_low, c.ci_high) == pytest.approx(
        (diff - student_t.ppf(0.975, df) * se, diff + student_t.ppf(0.975, df) * se)
    )
    assert c.effect_size == pytest.approx(diff / pooled)


def test_a_repeated_seed_falls_back_to_welch():
    base = config("none", [0.80, 0.82, 0.84], regularizer=[])
    other = config("l2", [0.85, 0.86, 0.90], seeds=[0, 1, 1])
    assert by_name(stats.config_stats(base + other)[0])["l2"].comparison.test == stats.WELCH


def test_one_run_per_config_has_no_interval_and_is_not_tested():
    rows, _, _ = stats.config_stats(config("none", [0.8729], regularizer=[]) + config("l2", [0.8901]))
    row = by_name(rows)["l2"]
    assert row.n == 1 and row.accuracy_ci is None
    assert row.comparison.diff_mean == pytest.approx(0.8901 - 0.8729)
    assert row.comparison.p_value is None and row.p_holm is None
    assert row.verdict == "not tested: a single run on each side (n < 2)"


def test_a_single_baseline_run_against_several_is_not_tested():
    rows, _, _ = stats.config_stats(config("none", [0.87], regularizer=[]) + config("l2", [0.88, 0.89], seeds=[4, 5]))
    assert by_name(rows)["l2"].verdict == "not tested: the baseline has a single run (n < 2)"


def test_equal_per_seed_differences_are_not_tested_but_their_difference_is_shown():
    base = [0.80, 0.82, 0.85]
    rows, _, _ = stats.config_stats(config("none", base, regularizer=[]) + config("l2", [a + 0.02 for a in base]))
    row = by_name(rows)["l2"]
    assert row.comparison.diff_mean == pytest.approx(0.02)
    assert row.comparison.p_value is None
    assert row.verdict == "not tested: all per-seed differences are equal (zero variance)"


def test_differences_of_one_sample_each_are_ties_despite_float32_rounding():
    # 360 test samples, one more right on every seed: float32 accuracies whose differences differ in the last bits
    base = [float(np.float32(k / 360)) for k in (316, 317, 318)]
    other = [float(np.float32((k + 1) / 360)) for k in (316, 317, 318)]
    assert len({o - b for o, b in zip(other, base)}) > 1
    row = by_name(stats.config_stats(config("none", base, regularizer=[]) + config("l2", other))[0])["l2"]
    assert row.comparison.diff_mean == pytest.approx(1 / 360, abs=1e-7)
    assert row.verdict == "not tested: all per-seed differences are equal (zero variance)"


def test_identical_runs_in_both_configs_are_not_tested_by_welch():
    rows, _, _ = stats.config_stats(config("none", [0.8, 0.8], regularizer=[]) + config("l2", [0.8, 0.8], seeds=[3, 4]))
    assert by_name(rows)["l2"].verdict.startswith("not tested: every run of both configs has the same accuracy")


def test_holm_step_down_multiplies_by_rank_and_stays_monotone():
    # sorted: 0.005 * 4 = 0.02, 0.01 * 3 = 0.03, 0.03 * 2 = 0.06, 0.04 * 1 = 0.04 -> raised to 0.06
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert stats.holm([]) == []


def paired_config(name, base, p_value, spread=0.01):
    """Three runs whose differences from `base` are m - s, m, m + s with the paired t-test's
    two-sided p equal to p_value (t = m * sqrt(3) / s, 2 df)."""
    mean = student_t.isf(p_value / 2, 2) * spread / math.sqrt(3)
    return config(name, [b + mean + k * spread for b, k in zip(base, (-1, 0, 1))])


def test_holm_turns_raw_significance_into_undecided_and_keeps_the_order():
    base = [0.70, 0.72, 0.74]
    runs = config("none", base, regularizer=[])
    for name, p in (("a", 0.005), ("b", 0.01), ("c", 0.03), ("d", 0.04)):
        runs += paired_config(name, base, p)
    rows = by_name(stats.config_stats(runs)[0])
    assert [rows[n].comparison.p_value for n in "abcd"] == pytest.approx([0.005, 0.01, 0.03, 0.04])
    assert [rows[n].p_holm for n in "abcd"] == pytest.approx([0.02, 0.03, 0.06, 0.06])
    assert [rows[n].verdict for n in "abcd"] == [
        "better",
        "better",
        "undecided",
        "undecided",
    ]
    # d alone: 1 x 0.04 < 0.05; only the step-down's monotonicity (never below c's 0.06) keeps it out


def test_a_significant_loss_of_accuracy_is_worse():
    base = [0.80, 0.82, 0.84]
    runs = config("none", base, regularizer=[]) + config("l1", [b - 0.30 + k for b, k in zip(base, (0, 0.01, -0.005))])
    row = by_name(stats.config_stats(runs)[0])["l1"]
    assert row.verdict == "worse" and row.comparison.diff_mean < 0 and row.comparison.effect_size < 0


def test_failed_runs_are_not_counted():
    runs = config("none", [0.8, 0.82], regularizer=[]) + [run("none", 2, None, status=RunStatus.FAILED)]
    (row,), _, _ = stats.config_stats(runs)
    assert (row.runs, row.n, row.seeds) == (3, 2, [0, 1])


def test_baseline_is_the_only_unregularized_config_or_the_one_asked_for():
    runs = config("none", [0.8, 0.81], regularizer=[]) + config("l2", [0.82, 0.83])
    assert stats.config_stats(runs)[1] == "none"
    rows, baseline, how = stats.config_stats(runs, baseline="l2")
    assert baseline == "l2" and "--baseline" in how
    assert by_name(rows)["none"].comparison.diff_mean == pytest.approx(-0.02)


def test_an_unknown_baseline_is_one_error_listing_the_configs():
    runs = config("none", [0.8], regularizer=[]) + config("l2", [0.82])
    with pytest.raises(RegexpError, match=r"--baseline: no config 'l3' here; the configs are: l2, none"):
        stats.config_stats(runs, baseline="l3")


def test_without_a_baseline_only_intervals_are_given():
    rows, baseline, how = stats.config_stats(config("l2", [0.8, 0.82]) + config("l1", [0.5, 0.6]))
    assert baseline is None and "no config without regularization" in how
    assert all(r.comparison is None and r.verdict == "not tested: no baseline" and r.accuracy_ci for r in rows)


def test_two_unregularized_configs_need_baseline_to_be_named():
    runs = config("none", [0.8, 0.81], regularizer=[]) + config("none_long", [0.82, 0.83], regularizer=[])
    baseline, how = stats.config_stats(runs)[1:]
    assert baseline is None and "none, none_long" in how and "--baseline" in how


def test_stats_csv_has_exactly_the_columns_and_empty_diff_cells_for_the_baseline():
    runs = config("none", [0.80, 0.82, 0.84], regularizer=[]) + config("l2", [0.83, 0.84, 0.88])
    table = list(csv.DictReader(io.StringIO(stats.to_csv(stats.config_stats(runs)[0]))))
    assert list(table[0]) == [
        "config",
        "n",
        "test_accuracy_mean",
        "test_accuracy_ci_low",
        "test_accuracy_ci_high",
        "test_loss_mean",
        "baseline",
        "diff_mean",
        "diff_ci_low",
        "diff_ci_high",
        "test",
        "p_value",
        "p_holm",
        "effect_size",
        "verdict",
        "sesoi",
        "p_equivalence",
        "p_equivalence_holm",
        "mde",
        "seeds_needed",
        "collapsed",
    ]
    base, l2 = table
    assert base["config"] == "none" and base["baseline"] == "none" and base["verdict"] == "baseline"
    assert all(
        base[k] == "" for k in ("diff_mean", "diff_ci_low", "diff_ci_high", "test", "p_value", "p_holm", "effect_size")
    )
    assert l2["baseline"] == "none" and l2["test"] == "paired t-test"
    assert float(l2["diff_mean"]) == pytest.approx(0.03)
