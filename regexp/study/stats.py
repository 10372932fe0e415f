"""Statistics across seeds: confidence intervals per config, each config against a baseline,
what the study can detect, how many seeds would decide it, and runs that collapsed.

Pure functions of run records (no TensorFlow, no files). A config is a row of
`configs.config_table` (its seeds together), as in summary.csv; only its evaluated runs
(completed with a test accuracy, RunRecord.is_evaluated) count (n).

- Interval of a config's mean test accuracy: Student t with n - 1 degrees of freedom; none
  when n = 1.
- Difference from the baseline (other - baseline, in test accuracy): a paired t-test on the
  per-seed differences when both configs hold the same set of distinct seeds (same seed: same
  initialisation and data order), otherwise Welch's t-test, whose interval uses the
  Welch-Satterthwaite degrees of freedom. Effect size: dz = mean / SD of the differences
  (paired), Cohen's d = difference of means / pooled SD (Welch).
- Equivalence (TOST): two one-sided t-tests of the same difference against -sesoi and +sesoi,
  with the same pairing rule; its p-value is the larger of the two.
- The difference p-values of all comparisons made are Holm-corrected together, and so are the
  equivalence p-values; verdicts are taken at ALPHA on the corrected p-values.
- Planning: the minimum detectable effect (80 % power at ALPHA / m, m comparisons) for the
  observed spread and n, and the seeds per config that would give that power for the sesoi.
- A run is collapsed when it diverged or its test accuracy is at chance (COLLAPSE_MARGIN above
  1 / classes or less); a comparison with a partly collapsed side is `unstable`.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
import warnings
from dataclasses import dataclass

from scipy import optimize
from scipy import stats as scipy_stats

from regexp.errors import RegexpError
from regexp.results import RunRecord, RunStatus
from regexp.study.configs import ConfigRuns, config_table
from regexp.study.escape import csv_cell

ALPHA = 0.05
CONFIDENCE = 0.95
POWER = 0.8
DEFAULT_SESOI_POINTS = 0.5
MAX_SEEDS = 1000  # seeds_needed beyond this is "more than 1000"
MAX_DOUBLINGS = 200  # of the bracket searched for the minimum detectable effect
COLLAPSE_MARGIN = 0.02  # a test accuracy at most this far above chance is collapsed
PAIRED = "paired t-test"
WELCH = "Welch t-test"
BETTER, WORSE, EQUIVALENT, UNDECIDED, UNSTABLE, BASELINE = (
    "better",
    "worse",
    "equivalent",
    "undecided",
    "unstable",
    "baseline",
)
NOT_TESTED = "not tested"
DIFFERENCE_PLAN = "difference"  # seeds for 80 % power to detect a difference of sesoi
EQUIVALENCE_PLAN = "equivalence"  # seeds for 80 % power of the equivalence test at the difference seen

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
    "sesoi",
    "p_equivalence",
    "p_equivalence_holm",
    "mde",
    "seeds_needed",
    "collapsed",
]


@dataclass(frozen=True)
class Spread:
    """What the power of a comparison's test depends on besides the effect: the pairing, the
    observed standard deviations and the numbers of runs (sd_other and n_other for Welch only)."""

    paired: bool
    sd: float  # paired: SD of the per-seed differences; Welch: the baseline's SD
    n: int  # paired: seeds; Welch: the baseline's runs
    sd_other: float = 0.0
    n_other: int = 0


@dataclass(frozen=True)
class Comparison:
    """One config's test accuracy minus the baseline's.

    `test` is PAIRED or WELCH, or None when no test could be made (`why` says why); the mean
    difference is given whenever both sides have a run. `shapiro_p` and `wilcoxon_p` check the
    paired test's assumption (n >= 3).
    """

    diff_mean: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    test: str | None = None
    p_value: float | None = None
    effect_size: float | None = None
    why: str | None = None
    p_equivalence: float | None = None
    spread: Spread | None = None
    shapiro_p: float | None = None
    wilcoxon_p: float | None = None


@dataclass(frozen=True)
class Collapse:
    """How many of a config's runs collapsed (diverged, or at chance), of those that finished."""

    collapsed: int
    runs: int  # completed with a test accuracy, or diverged
    ci: tuple[float, float] | None  # exact (Clopper-Pearson) 95 % interval of the rate

    @property
    def partly(self) -> bool:
        return 0 < self.collapsed < self.runs

    @property
    def text(self) -> str:
        return f"{self.collapsed}/{self.runs}"


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
    p_equivalence_holm: float | None = None
    verdict: str = ""
    sesoi: float | None = None
    mde: float | None = None
    seeds_needed: int | None = None  # None with a comparison tested: more than MAX_SEEDS
    seeds_for: str | None = None  # what seeds_needed plans for: DIFFERENCE_PLAN or EQUIVALENCE_PLAN
    collapse: Collapse | None = None
    collapse_p: float | None = None  # Fisher's exact test of the collapse rates, config vs baseline
    unstable_why: str | None = None

    @property
    def within_sesoi(self) -> bool:
        """Whether the equivalence test rejects: the difference is within ±sesoi."""
        return self.p_equivalence_holm is not None and self.p_equivalence_holm < ALPHA


def sesoi_fraction(points: float) -> float:
    """The smallest effect of interest as a fraction of 1, from --sesoi POINTS; a RegexpError unless 0 < POINTS < 100."""
    if not (isinstance(points, (int, float)) and 0 < points < 100):
        raise RegexpError(f"--sesoi: {points} is not a number of points between 0 and 100 (exclusive)")
    return points / 100


# --------------------------------------------------------------------------- intervals and tests


def mean_interval(values: list[float], confidence: float = CONFIDENCE) -> tuple[float | None, tuple | None]:
    """(mean, (low, high)): the Student-t interval of the mean; no interval for fewer than 2 values."""
    if not values:
        return None, None
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, None
    half = scipy_stats.t.ppf((1 + confidence) / 2, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return mean, (mean - half, mean + half)


def welch_df(sd1: float, n1: int, sd2: float, n2: int) -> float:
    """Welch-Satterthwaite degrees of freedom of a difference of two means (not both SDs zero)."""
    a, b = sd1**2 / n1, sd2**2 / n2
    return (a + b) ** 2 / (a**2 / (n1 - 1) + b**2 / (n2 - 1))


def tost_p(mean: float, se: float, df: float, sesoi: float) -> float:
    """The equivalence p-value of a difference `mean` with standard error `se`: the larger of the
    one-sided t-tests of H0 difference <= -sesoi and of H0 difference >= +sesoi."""
    below = scipy_stats.t.sf((mean + sesoi) / se, df)
    above = scipy_stats.t.cdf((mean - sesoi) / se, df)
    return float(max(below, above))


def _assumption_checks(differences: list[float]) -> tuple[float | None, float | None]:
    """(Shapiro-Wilk p of the per-seed differences, Wilcoxon signed-rank p); None for n < 3."""
    if len(differences) < 3:
        return None, None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ties and zeros: scipy warns and falls back to its normal approximation
        shapiro = float(scipy_stats.shapiro(differences).pvalue)
        wilcoxon = float(scipy_stats.wilcoxon(differences).pvalue)
    return shapiro, wilcoxon


def paired_comparison(
    baseline: list[float], other: list[float], sesoi: float = DEFAULT_SESOI_POINTS / 100
) -> Comparison:
    """Paired t-test and TOST of other - baseline, the lists aligned by seed."""
    differences = [o - b for o, b in zip(other, baseline)]
    mean = statistics.fmean(differences)
    if len(differences) < 2:
        return Comparison(mean, why="a single run on each side (n < 2)")
    if max(differences) - min(differences) <= TIE_TOLERANCE:
        return Comparison(mean, why="all per-seed differences are equal (zero variance)")
    result = scipy_stats.ttest_rel(other, baseline)
    interval = result.confidence_interval(CONFIDENCE)
    sd, n = statistics.stdev(differences), len(differences)
    shapiro, wilcoxon = _assumption_checks(differences)
    return Comparison(
        mean,
        float(interval.low),
        float(interval.high),
        PAIRED,
        float(result.pvalue),
        mean / sd,
        p_equivalence=tost_p(mean, sd / math.sqrt(n), n - 1, sesoi),
        spread=Spread(True, sd, n),
        shapiro_p=shapiro,
        wilcoxon_p=wilcoxon,
    )


def welch_comparison(
    baseline: list[float], other: list[float], sesoi: float = DEFAULT_SESOI_POINTS / 100
) -> Comparison:
    """Welch's t-test and TOST of mean(other) - mean(baseline); Cohen's d with the pooled SD."""
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
    s1, s2 = statistics.stdev(other), statistics.stdev(baseline)
    pooled = math.sqrt(((n1 - 1) * s1**2 + (n2 - 1) * s2**2) / (n1 + n2 - 2))
    se = math.sqrt(s1**2 / n1 + s2**2 / n2)
    return Comparison(
        mean,
        float(interval.low),
        float(interval.high),
        WELCH,
        float(result.pvalue),
        mean / pooled,
        p_equivalence=tost_p(mean, se, welch_df(s1, n1, s2, n2), sesoi),
        spread=Spread(False, s2, n2, s1, n1),
    )


def compare(baseline: ConfigRuns, other: ConfigRuns, sesoi: float = DEFAULT_SESOI_POINTS / 100) -> Comparison:
    """Compare two configs' test accuracies: paired by seed when both hold the same set of distinct
    seeds (ConfigRuns.accuracy_by_seed), else Welch's test of the plain lists."""
    if not baseline.accuracies or not other.accuracies:
        side = "the baseline has" if not baseline.accuracies else "this config has"
        return Comparison(None, why=f"{side} no completed run")
    base_seeds, other_seeds = baseline.accuracy_by_seed, other.accuracy_by_seed
    if base_seeds is not None and other_seeds is not None and set(base_seeds) == set(other_seeds):
        order = sorted(base_seeds, key=str)
        return paired_comparison([base_seeds[s] for s in order], [other_seeds[s] for s in order], sesoi)
    return welch_comparison(baseline.accuracies, other.accuracies, sesoi)


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


# --------------------------------------------------------------------------- power and planning


def two_sided_power(noncentrality: float, df: float, alpha: float) -> float:
    """Power of a two-sided t-test at level `alpha` with `df` degrees of freedom and this noncentrality.

    The lower tail is taken as the upper tail of the mirrored noncentrality: scipy's `nct.cdf`
    returns NaN there at large noncentralities (e.g. df 1, noncentrality 8). Any tail still not
    finite is replaced by its normal approximation.
    """
    if math.isinf(noncentrality):
        return 1.0
    critical = scipy_stats.t.isf(alpha / 2, df)
    tails = []
    for nc in (noncentrality, -noncentrality):
        tail = scipy_stats.nct.sf(critical, df, nc)
        tails.append(tail if math.isfinite(tail) else scipy_stats.norm.sf(critical - nc))
    return float(min(1.0, max(0.0, sum(tails))))


def power(effect: float, spread: Spread, alpha: float, n: int | None = None) -> float:
    """Power of the comparison's test to detect a difference of `effect` at level `alpha`.

    Paired: n - 1 df and noncentrality effect * sqrt(n) / sd. Welch: Welch-Satterthwaite df and
    noncentrality effect / sqrt(sd1^2 / n1 + sd2^2 / n2). `n` replaces the observed numbers of
    runs (every side) to plan a study of n seeds per config.
    """
    if spread.paired:
        seeds = n or spread.n
        if spread.sd == 0:
            return 1.0 if effect else alpha
        return two_sided_power(effect * math.sqrt(seeds) / spread.sd, seeds - 1, alpha)
    n1, n2 = (n, n) if n else (spread.n, spread.n_other)
    se = math.sqrt(spread.sd**2 / n1 + spread.sd_other**2 / n2)
    if se == 0:
        return 1.0 if effect else alpha
    return two_sided_power(effect / se, welch_df(spread.sd, n1, spread.sd_other, n2), alpha)


def minimum_detectable_effect(spread: Spread, alpha: float, target: float = POWER) -> float:
    """The smallest |difference| the comparison's test detects with `target` power at `alpha`."""
    if spread.sd == 0 and spread.sd_other == 0:
        return 0.0

    def short(effect: float) -> float:
        return power(effect, spread, alpha) - target

    scale = spread.sd if spread.paired else math.hypot(spread.sd, spread.sd_other)
    high = scale
    for _ in range(MAX_DOUBLINGS):  # power rises to 1 with the effect: double until the bracket holds the root
        if short(high) >= 0:
            break
        high *= 2
    else:
        raise ArithmeticError(f"no effect up to {high} reaches {target:.0%} power")
    return float(optimize.brentq(short, 0.0, high, xtol=1e-12 * high))


def _standard_error(spread: Spread, n: int) -> tuple[float, float]:
    """(standard error of the difference, its degrees of freedom) with n seeds per config."""
    if spread.paired:
        return spread.sd / math.sqrt(n), n - 1
    se = math.sqrt(spread.sd**2 / n + spread.sd_other**2 / n)
    return se, welch_df(spread.sd, n, spread.sd_other, n) if se else n - 1


def equivalence_power(difference: float, spread: Spread, sesoi: float, alpha: float, n: int) -> float:
    """Power of the equivalence test (TOST at level `alpha`, n seeds per config) when the true
    difference is `difference`: P(T1 > c) - P(T2 > -c), the two one-sided statistics' tails (exact
    for a known spread; with the spread estimated, close where the power is high, where plans
    are made, and an underestimate where it is low, as the tests check against a simulation)."""
    se, df = _standard_error(spread, n)
    if se == 0:
        return 1.0 if abs(difference) < sesoi else 0.0
    critical = scipy_stats.t.isf(alpha, df)
    upper = scipy_stats.nct.sf(critical, df, (difference + sesoi) / se)
    lower = scipy_stats.nct.sf(-critical, df, (difference - sesoi) / se)
    return float(max(0.0, upper - lower)) if math.isfinite(upper - lower) else 0.0


def seeds_needed(spread: Spread, effect: float, alpha: float, target: float = POWER) -> int | None:
    """The fewest seeds per config (at least 2) whose test detects `effect` with `target` power at
    `alpha`, at the observed spread; None when it would take more than MAX_SEEDS."""
    return _fewest_seeds(lambda n: power(effect, spread, alpha, n) >= target)


def equivalence_seeds_needed(
    spread: Spread, difference: float, sesoi: float, alpha: float, target: float = POWER
) -> int | None:
    """The fewest seeds per config for the equivalence test to reach `target` power if the true
    difference is the one observed; None beyond MAX_SEEDS (always when |difference| >= sesoi)."""
    if abs(difference) >= sesoi:
        return None
    return _fewest_seeds(lambda n: equivalence_power(difference, spread, sesoi, alpha, n) >= target)


def _fewest_seeds(enough) -> int | None:
    """The first n in 2..MAX_SEEDS for which `enough(n)` holds (it must only grow with n); None if none."""
    if not enough(MAX_SEEDS):
        return None
    low, high = 2, MAX_SEEDS  # power grows with n: the first n that is enough, by bisection
    while low < high:
        middle = (low + high) // 2
        low, high = (low, middle) if enough(middle) else (middle + 1, high)
    return low


# --------------------------------------------------------------------------- collapse


def is_collapsed(m: RunRecord, chance: float | None) -> bool:
    """A run diverged, or completed with a test accuracy at most COLLAPSE_MARGIN above chance."""
    if m.status is RunStatus.DIVERGED:
        return True
    return m.is_evaluated and chance is not None and m.test_accuracy <= chance + COLLAPSE_MARGIN


def collapse_count(config: ConfigRuns) -> Collapse:
    """How many of a config's finished runs (evaluated, or diverged) collapsed, with the exact
    binomial 95 % interval of the rate."""
    finished = [m for m in config.members if m.status is RunStatus.DIVERGED or m.is_evaluated]
    k = sum(is_collapsed(m, config.chance) for m in finished)
    if not finished:
        return Collapse(0, 0, None)
    interval = scipy_stats.binomtest(k, len(finished)).proportion_ci(CONFIDENCE, method="exact")
    return Collapse(k, len(finished), (float(interval.low), float(interval.high)))


def collapse_rate_p(config: Collapse, baseline: Collapse) -> float:
    """Fisher's exact test (two-sided) of two collapse rates."""
    table = [
        [config.collapsed, config.runs - config.collapsed],
        [baseline.collapsed, baseline.runs - baseline.collapsed],
    ]
    return float(scipy_stats.fisher_exact(table).pvalue)


# --------------------------------------------------------------------------- per config


def choose_baseline(groups: dict[str, ConfigRuns], requested: str | None = None) -> tuple[str | None, str]:
    """(baseline label or None, a sentence saying how it was chosen or why there is none).

    The requested config if given (an unknown name is a RegexpError listing the configs), else
    the only config without regularization.
    """
    if requested is not None:
        if requested not in groups:
            raise RegexpError(f"--baseline: no config {requested!r} here; the configs are: {', '.join(groups)}")
        return requested, "as asked with --baseline"
    unregularized = [label for label, config in groups.items() if config.regularizer == "none"]
    if len(unregularized) == 1:
        return unregularized[0], "the only config without regularization"
    if not unregularized:
        return None, "no config without regularization, and none chosen with --baseline"
    return None, (
        f"{len(unregularized)} configs have no regularization ({', '.join(unregularized)}); choose one with --baseline"
    )


def _unstable_why(row: ConfigStats, base: ConfigStats) -> str | None:
    """Why a comparison with a partly collapsed side is unstable (None when neither side is)."""
    sides = [
        f"{'the baseline' if r is base else 'this config'}: {r.collapse.collapsed} of {r.collapse.runs} runs collapsed"
        for r in (row, base)
        if r.collapse and r.collapse.partly
    ]
    return "; ".join(sides) or None


def verdict_of(row: ConfigStats) -> str:
    """The verdict of a tested comparison from its corrected p-values (collapse aside)."""
    differs = row.p_holm < ALPHA
    if differs:
        return BETTER if row.comparison.diff_mean > 0 else WORSE
    return EQUIVALENT if row.within_sesoi else UNDECIDED


def plan_seeds(row: ConfigStats, sesoi: float, alpha: float) -> tuple[int | None, str]:
    """(seeds per config, what for) that would decide an undecided comparison.

    First the seeds giving the difference test 80 % power against a difference of sesoi. Where
    this study already has that many, the difference seen lies inside the margin: then the seeds
    giving the equivalence test 80 % power if the true difference is the one seen.
    """
    c = row.comparison
    needed = seeds_needed(c.spread, sesoi, alpha)
    have = min(row.n, c.spread.n) if c.spread.paired else min(c.spread.n, c.spread.n_other)
    if needed is not None and needed <= have:
        return equivalence_seeds_needed(c.spread, c.diff_mean, sesoi, alpha), EQUIVALENCE_PLAN
    return needed, DIFFERENCE_PLAN


def _config_row(config: ConfigRuns, baseline: str | None, sesoi: float) -> ConfigStats:
    """A config's row before its comparison: n, mean and interval of test accuracy, test loss, collapses."""
    accuracy_mean, accuracy_ci = mean_interval(config.accuracies)
    return ConfigStats(
        config=config.label,
        regularizer=config.regularizer,
        runs=len(config.members),
        n=len(config.accuracies),
        seeds=config.seeds,
        accuracy_mean=accuracy_mean,
        accuracy_ci=accuracy_ci,
        loss_mean=statistics.fmean(config.losses) if config.losses else None,
        baseline=baseline,
        sesoi=sesoi,
        collapse=collapse_count(config),
    )


def config_stats(
    runs: list[RunRecord], baseline: str | None = None, sesoi: float = DEFAULT_SESOI_POINTS / 100
) -> tuple[list[ConfigStats], str | None, str]:
    """Per config: n, mean and interval of test accuracy, test loss, collapses, and the comparison
    with the baseline (difference and equivalence, each Holm-corrected over all comparisons made),
    with a verdict, the minimum detectable effect and the seeds that would decide it.

    Returns (rows: the baseline first, then best mean accuracy first; the baseline's label or
    None; how the baseline was chosen). `baseline` names a config (--baseline) or is None
    for the automatic choice; `sesoi` is the smallest effect of interest, a fraction of 1.
    """
    groups = config_table(runs)
    chosen, how = choose_baseline(groups, baseline)
    rows = [_config_row(config, chosen, sesoi) for config in groups.values()]
    by_label = {row.config: row for row in rows}
    for row in rows:
        if chosen is None:
            row.verdict = f"{NOT_TESTED}: no baseline"
        elif row.config == chosen:
            row.verdict = BASELINE
        else:
            row.comparison = compare(groups[chosen], groups[row.config], sesoi)
    tested = [row for row in rows if row.comparison and row.comparison.p_value is not None]
    level = ALPHA / len(tested) if tested else ALPHA  # planning_alpha(rows) once the rows are tested
    adjusted = holm([row.comparison.p_value for row in tested])
    adjusted_equivalence = holm([row.comparison.p_equivalence for row in tested])
    for row, p_holm, p_equivalence_holm in zip(tested, adjusted, adjusted_equivalence):
        row.p_holm, row.p_equivalence_holm = p_holm, p_equivalence_holm
        row.verdict = verdict_of(row)
        row.mde = minimum_detectable_effect(row.comparison.spread, level)
        if row.verdict == UNDECIDED:
            row.seeds_needed, row.seeds_for = plan_seeds(row, sesoi, level)
    for row in rows:
        if row.comparison and row.comparison.p_value is None:
            row.verdict = f"{NOT_TESTED}: {row.comparison.why}"
        if row.comparison:
            base = by_label[chosen]
            row.unstable_why = _unstable_why(row, base)
            if row.collapse.runs and base.collapse.runs:
                row.collapse_p = collapse_rate_p(row.collapse, base.collapse)
            if row.unstable_why:
                row.verdict, row.seeds_needed, row.seeds_for = UNSTABLE, None, None
    rows.sort(key=lambda r: (r.config != chosen, r.accuracy_mean is None, -(r.accuracy_mean or 0.0), r.config))
    return rows, chosen, how


def planning_alpha(rows: list[ConfigStats]) -> float:
    """ALPHA / m, m the comparisons tested: the level the minimum detectable effects are planned at."""
    m = sum(row.p_holm is not None for row in rows)
    return ALPHA / m if m else ALPHA


# --------------------------------------------------------------------------- stats.csv


def csv_row(row: ConfigStats) -> dict:
    """A ConfigStats as the cells of stats.csv (None for an empty cell).

    A partly collapsed config's accuracy interval, and an unstable comparison's difference
    interval, are left empty: a t interval over a mixture of collapsed and working runs is not one.
    """
    c = row.comparison or Comparison(None)
    mixture = row.collapse is not None and row.collapse.partly
    low, high = (None, None) if mixture or not row.accuracy_ci else row.accuracy_ci
    unstable = row.verdict == UNSTABLE
    seeds = None
    if row.verdict == UNDECIDED:
        seeds = row.seeds_needed if row.seeds_needed is not None else f"more than {MAX_SEEDS}"
    return {
        "config": row.config,
        "n": row.n,
        "test_accuracy_mean": row.accuracy_mean,
        "test_accuracy_ci_low": low,
        "test_accuracy_ci_high": high,
        "test_loss_mean": row.loss_mean,
        "baseline": row.baseline,
        "diff_mean": c.diff_mean,
        "diff_ci_low": None if unstable else c.ci_low,
        "diff_ci_high": None if unstable else c.ci_high,
        "test": c.test,
        "p_value": c.p_value,
        "p_holm": row.p_holm,
        "effect_size": c.effect_size,
        "verdict": row.verdict,
        "sesoi": row.sesoi,
        "p_equivalence": c.p_equivalence,
        "p_equivalence_holm": row.p_equivalence_holm,
        "mde": row.mde,
        "seeds_needed": seeds,
        "collapsed": row.collapse.text if row.collapse and row.collapse.runs else None,
    }


def to_csv(rows: list[ConfigStats]) -> str:
    """stats.csv: one line per config, COLUMNS exactly, empty cells where a value does not apply;
    text cells a spreadsheet would run as a formula start with `'` (escape.csv_cell)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: csv_cell("" if v is None else v) for k, v in csv_row(row).items()})
    return out.getvalue()
