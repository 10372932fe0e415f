"""Statistics across seeds: confidence intervals per config, and each config against a baseline.

Pure functions of metrics.json dicts (no TensorFlow, no files). A config is a group of
`summary.group_runs` (its seeds together); only completed runs with a test accuracy count.

- Interval of a config's mean test accuracy: Student t with n - 1 degrees of freedom; none
  when n = 1.
- Difference from the baseline (other - baseline, in test accuracy): a paired t-test on the
  per-seed differences when both configs hold the same set of distinct seeds (same seed: same
  initialisation and data order), otherwise Welch's t-test, whose interval uses the
  Welch-Satterthwaite degrees of freedom. Effect size: dz = mean / SD of the differences
  (paired), Cohen's d = difference of means / pooled SD (Welch).
- The p-values of all comparisons made are Holm-corrected together; the verdict is taken at
  ALPHA on the corrected p-value.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
import warnings
from dataclasses import dataclass

from scipy import stats as scipy_stats

from regexp.errors import RegexpError
from regexp.study.summary import describe_regularizer, group_runs

ALPHA = 0.05
CONFIDENCE = 0.95
PAIRED = "paired t-test"
WELCH = "Welch t-test"
BETTER, WORSE, NO_DIFFERENCE, BASELINE = "better", "worse", "no detectable difference", "baseline"

# Test accuracies are float32 fractions k / N (N test samples): two differences of one sample
# each can differ by float32 rounding (about 1e-8). Spreads up to this are ties; one sample of
# the largest test set (EMNIST byclass, 116,323) is 8.6e-6.
TIE_TOLERANCE = 1e-6

COLUMNS = [
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
]


@dataclass(frozen=True)
class Comparison:
    """One config's test accuracy minus the baseline's.

    `test` is PAIRED or WELCH, or None when no test could be made (`why` says why); the mean
    difference is given whenever both sides have a run.
    """

    diff_mean: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    test: str | None = None
    p_value: float | None = None
    effect_size: float | None = None
    why: str | None = None


@dataclass
class ConfigStats:
    """One row of stats.csv, with what the report shows beside it."""

    config: str
    regularizer: str
    runs: int  # run folders of this config, whatever their status
    n: int  # completed runs with a test accuracy
    seeds: list
    accuracy_mean: float | None
    accuracy_ci: tuple[float, float] | None
    loss_mean: float | None
    baseline: str | None = None
    comparison: Comparison | None = None
    p_holm: float | None = None
    verdict: str = ""


def mean_interval(values: list[float], confidence: float = CONFIDENCE) -> tuple[float | None, tuple | None]:
    """(mean, (low, high)): the Student-t interval of the mean; no interval for fewer than 2 values."""
    if not values:
        return None, None
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, None
    half = scipy_stats.t.ppf((1 + confidence) / 2, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return mean, (mean - half, mean + half)


def paired_comparison(baseline: list[float], other: list[float]) -> Comparison:
    """Paired t-test of other - baseline, the lists aligned by seed."""
    differences = [o - b for o, b in zip(other, baseline)]
    mean = statistics.fmean(differences)
    if len(differences) < 2:
        return Comparison(mean, why="a single run on each side (n < 2)")
    if max(differences) - min(differences) <= TIE_TOLERANCE:
        return Comparison(mean, why="all per-seed differences are equal (zero variance)")
    result = scipy_stats.ttest_rel(other, baseline)
    interval = result.confidence_interval(CONFIDENCE)
    return Comparison(
        mean,
        float(interval.low),
        float(interval.high),
        PAIRED,
        float(result.pvalue),
        mean / statistics.stdev(differences),
    )


def welch_comparison(baseline: list[float], other: list[float]) -> Comparison:
    """Welch's t-test of mean(other) - mean(baseline); Cohen's d with the pooled SD."""
    mean = statistics.fmean(other) - statistics.fmean(baseline)
    if len(baseline) < 2 or len(other) < 2:
        side = "the baseline has" if len(baseline) < 2 else "this config has"
        return Comparison(mean, why=f"{side} a single run (n < 2)")
    if max(baseline) - min(baseline) <= TIE_TOLERANCE and max(other) - min(other) <= TIE_TOLERANCE:
        return Comparison(mean, why="every run of both configs has the same accuracy (zero variance)")
    with warnings.catch_warnings():
        # one side's runs all equal: scipy warns of precision loss in its variance (about 0 either way)
        warnings.simplefilter("ignore", RuntimeWarning)
        result = scipy_stats.ttest_ind(other, baseline, equal_var=False)
    interval = result.confidence_interval(CONFIDENCE)
    n1, n2 = len(other), len(baseline)
    pooled = math.sqrt(
        ((n1 - 1) * statistics.variance(other) + (n2 - 1) * statistics.variance(baseline)) / (n1 + n2 - 2)
    )
    return Comparison(mean, float(interval.low), float(interval.high), WELCH, float(result.pvalue), mean / pooled)


def compare(baseline: dict, other: dict) -> Comparison:
    """Compare two configs given as {seed: test accuracy} plus their plain lists.

    `baseline` and `other` are {"by_seed": {seed: accuracy} or None, "values": [accuracy]}:
    by_seed is None when the config's seeds are unknown or repeated.
    """
    if not baseline["values"] or not other["values"]:
        side = "the baseline has" if not baseline["values"] else "this config has"
        return Comparison(None, why=f"{side} no completed run")
    base_seeds, other_seeds = baseline["by_seed"], other["by_seed"]
    if base_seeds is not None and other_seeds is not None and set(base_seeds) == set(other_seeds):
        order = sorted(base_seeds, key=str)
        return paired_comparison([base_seeds[s] for s in order], [other_seeds[s] for s in order])
    return welch_comparison(baseline["values"], other["values"])


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given.

    The i-th smallest p (from 1) is multiplied by m - i + 1, capped at 1, and made no
    smaller than the adjusted p before it, so the adjusted values keep the raw order.
    """
    m = len(p_values)
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(sorted(range(m), key=lambda i: p_values[i])):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def _accuracies(members: list[dict]) -> dict:
    done = [m for m in members if m.get("status") == "completed" and m.get("test_accuracy") is not None]
    seeds = [m.get("seed") for m in done]
    unique = None not in seeds and len(set(seeds)) == len(seeds)
    return {
        "values": [m["test_accuracy"] for m in done],
        "losses": [m["test_loss"] for m in done if m.get("test_loss") is not None],
        "seeds": seeds,
        "by_seed": {m["seed"]: m["test_accuracy"] for m in done} if unique else None,
    }


def _is_unregularized(members: list[dict]) -> bool:
    return describe_regularizer(members[0].get("regularizer") or []) == "none"


def choose_baseline(groups: dict[str, list[dict]], requested: str | None = None) -> tuple[str | None, str]:
    """(baseline label or None, a sentence saying how it was chosen or why there is none).

    The requested config if given (an unknown name is a RegexpError listing the configs), else
    the only config without regularization.
    """
    if requested is not None:
        if requested not in groups:
            raise RegexpError(f"--baseline: no config {requested!r} here; the configs are: {', '.join(groups)}")
        return requested, "as asked with --baseline"
    unregularized = [label for label, members in groups.items() if _is_unregularized(members)]
    if len(unregularized) == 1:
        return unregularized[0], "the only config without regularization"
    if not unregularized:
        return None, "no config without regularization, and none chosen with --baseline"
    return None, (
        f"{len(unregularized)} configs have no regularization ({', '.join(unregularized)}); choose one with --baseline"
    )


def config_stats(runs: list[dict], baseline: str | None = None) -> tuple[list[ConfigStats], str | None, str]:
    """Per config: n, mean and interval of test accuracy, test loss, and the comparison with
    the baseline, Holm-corrected over all comparisons made, with a verdict.

    Returns (rows: the baseline first, then best mean accuracy first; the baseline's label or
    None; how the baseline was chosen). `baseline` names a config (--baseline) or is None
    for the automatic choice.
    """
    groups = group_runs(runs)
    chosen, how = choose_baseline(groups, baseline)
    data = {label: _accuracies(members) for label, members in groups.items()}
    rows = []
    for label, members in groups.items():
        accuracy_mean, accuracy_ci = mean_interval(data[label]["values"])
        rows.append(
            ConfigStats(
                config=label,
                regularizer=describe_regularizer(members[0].get("regularizer") or []),
                runs=len(members),
                n=len(data[label]["values"]),
                seeds=data[label]["seeds"],
                accuracy_mean=accuracy_mean,
                accuracy_ci=accuracy_ci,
                loss_mean=statistics.fmean(data[label]["losses"]) if data[label]["losses"] else None,
                baseline=chosen,
            )
        )
    for row in rows:
        if chosen is None:
            row.verdict = "not tested: no baseline"
        elif row.config == chosen:
            row.verdict = BASELINE
        else:
            row.comparison = compare(data[chosen], data[row.config])
    tested = [row for row in rows if row.comparison and row.comparison.p_value is not None]
    for row, adjusted in zip(tested, holm([row.comparison.p_value for row in tested])):
        row.p_holm = adjusted
        if adjusted >= ALPHA:
            row.verdict = NO_DIFFERENCE
        else:
            row.verdict = BETTER if row.comparison.diff_mean > 0 else WORSE
    for row in rows:
        if row.comparison and row.comparison.p_value is None:
            row.verdict = f"not tested: {row.comparison.why}"
    rows.sort(key=lambda r: (r.config != chosen, r.accuracy_mean is None, -(r.accuracy_mean or 0.0), r.config))
    return rows, chosen, how


def csv_row(row: ConfigStats) -> dict:
    """A ConfigStats as the cells of stats.csv (None for an empty cell)."""
    c = row.comparison or Comparison(None)
    low, high = row.accuracy_ci or (None, None)
    return {
        "config": row.config,
        "n": row.n,
        "test_accuracy_mean": row.accuracy_mean,
        "test_accuracy_ci_low": low,
        "test_accuracy_ci_high": high,
        "test_loss_mean": row.loss_mean,
        "baseline": row.baseline,
        "diff_mean": c.diff_mean,
        "diff_ci_low": c.ci_low,
        "diff_ci_high": c.ci_high,
        "test": c.test,
        "p_value": c.p_value,
        "p_holm": row.p_holm,
        "effect_size": c.effect_size,
        "verdict": row.verdict,
    }


def to_csv(rows: list[ConfigStats]) -> str:
    """stats.csv: one line per config, COLUMNS exactly, empty cells where a value does not apply."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in csv_row(row).items()})
    return out.getvalue()
