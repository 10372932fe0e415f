"""The study's report: does a penalty help, by how much, how sure are we, and why.

From saved runs alone (metrics.json, history.csv, model.weights.h5; no TensorFlow) it writes,
at the results root:

- `stats.csv`: one row per config (regexp.study.stats.COLUMNS);
- `report.md`: the answer, the tables and the method, as text;
- `report.html`: the same with every figure inlined (data: URIs), one file to mail or open.

`build_report` is a pure function of the runs; `write_report` reads the root and writes.
"""

from __future__ import annotations

import collections
import datetime
import glob
import hashlib
import os
import statistics
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from regexp.config import LAYER_NAMES
from regexp.errors import RegexpError, ResultsError
from regexp.results import WEIGHTS, RunStatus, SavedRun, scan_runs, summary_lock
from regexp.results.record import MAX_PARAMS
from regexp.results.store import (
    MAX_WEIGHTS_BYTES,
    DamagedRun,
    Vanished,
    WriteError,
    check_replaceable,
    inside_root,
    open_plain_file,
)
from regexp.study import pages, report_figures, stats, tune_report
from regexp.study.configs import ConfigRuns, config_table, records_of
from regexp.study.pages import Table, verdict_class
from regexp.study.plots import lambda_grids

NOT_RECORDED = "not recorded by this run"
QUESTION = (
    "Does a penalty help this CNN, by how much, how sure can we be, and why? Each config's test accuracy "
    "is compared with the baseline's over its seeds."
)


@dataclass
class Report:
    """What the report found and the texts it wrote."""

    rows: list[stats.ConfigStats]
    baseline: str | None
    baseline_how: str
    answer: list[str]  # the plain-language answer, one line each
    skipped: list[str]
    markdown: str = ""
    html: str = ""
    csv: str = ""
    written: list[Path] = field(default_factory=list)


# --------------------------------------------------------------------------- reading weights


def recorded_layers(runs: list[SavedRun]) -> tuple[str, ...]:
    """The names of the layers that carry a kernel, from the runs' own metrics.json (`model.layers`,
    else `sparsity.layers`), in the order first recorded; the reference CNN's when none says."""
    names: dict[str, None] = {}
    for run in runs:
        model = run.record.model
        layers = model.get("layers") if isinstance(model, dict) else None
        if not isinstance(layers, dict) and run.record.sparsity is not None:
            layers = run.record.sparsity.layers
        names.update(dict.fromkeys(layers if isinstance(layers, dict) else ()))
    return tuple(names) or LAYER_NAMES


def read_kernels(path: Path, max_values: int, names: tuple[str, ...] = LAYER_NAMES) -> dict[str, np.ndarray]:
    """The kernel (the first variable) of each layer of `names` found in a Keras 3 `.weights.h5` file.

    Keras 3 stores a layer's variables under `layers/<class name>/vars/` (that group's
    `name` attribute is the layer's name), numbered in creation order: 0 is the kernel.
    The file is opened as a plain file only (results.open_plain_file), and every kernel's
    declared shape is checked before it is read: together they may hold at most `max_values`
    numbers (the run's recorded parameter count). Raises OSError, KeyError or ValueError (the
    message saying what is wrong) when the file cannot be read.
    """
    import h5py

    found: dict[str, h5py.Dataset] = {}

    def visit(_name, item):
        if isinstance(item, h5py.Group) and item.attrs.get("name") in names and "0" in item:
            if isinstance(item["0"], h5py.Dataset):
                found[str(item.attrs["name"])] = item["0"]

    try:
        opened = open_plain_file(path, MAX_WEIGHTS_BYTES)
    except (DamagedRun, Vanished) as exc:
        raise ValueError(str(exc).removeprefix(f"{path}: ") or "missing") from None
    with opened, h5py.File(opened, "r") as f:
        f.visititems(visit)
        declared = sum(int(np.prod(dataset.shape, dtype=np.float64)) for dataset in found.values())
        if declared > max_values:
            raise ValueError(f"its kernels declare {declared} values, more than the run's {max_values} parameters")
        return {name: np.asarray(dataset[()], dtype=np.float64) for name, dataset in found.items()}


def magnitude_counts(weights: np.ndarray) -> list[int]:
    """Counts of |w| in report_figures' log10 bins; below the range (and zeros) in the first bin."""
    low, high = report_figures.LOG10_WEIGHT_RANGE
    logs = np.log10(np.maximum(np.abs(weights.ravel()), 10**low))
    counts, _ = np.histogram(np.clip(logs, low, high), bins=report_figures.WEIGHT_BINS, range=(low, high))
    return counts.tolist()


def _weight_histograms(runs: list[SavedRun], label_of: dict[str, str]) -> tuple[dict, dict[str, str]]:
    """({config: {layer: counts summed over its runs}}, {run name: what its weights file gave})."""
    histograms: dict[str, dict[str, list[int]]] = {}
    notes: dict[str, str] = {}
    for run in runs:
        name = run.folder.name
        path = run.folder / WEIGHTS
        if run.record.status is not RunStatus.COMPLETED:
            continue
        if not os.path.lexists(path):
            notes[name] = NOT_RECORDED
            continue
        try:
            layers = recorded_layers([run])
            kernels = read_kernels(path, run.record.param_count or MAX_PARAMS, layers)
        except (OSError, KeyError, ValueError, TypeError) as exc:
            notes[name] = f"cannot be read ({exc})"
            continue
        missing = [layer for layer in layers if layer not in kernels]
        notes[name] = "saved" + (f" (no {', '.join(missing)})" if missing else "")
        per_layer = histograms.setdefault(label_of[name], {})
        for layer, kernel in kernels.items():
            counts = magnitude_counts(kernel)
            per_layer[layer] = [a + b for a, b in zip(per_layer.get(layer, [0] * len(counts)), counts)]
    return histograms, notes


# --------------------------------------------------------------------------- helpers


def _num(value: float | None, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _pts(value: float | None) -> str:
    """A difference in accuracy as signed percentage points."""
    return "–" if value is None else f"{100 * value:+.1f}"


def _p(value: float | None) -> str:
    if value is None:
        return "–"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def _interval(ci: tuple | None, digits: int = 4) -> str:
    return "" if ci is None else f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def _verdict_order(row: stats.ConfigStats) -> tuple:
    """Unstable comparisons first (their runs broke), then the settled, then the open ones."""
    order = {stats.UNSTABLE: 0, stats.BETTER: 1, stats.WORSE: 2, stats.EQUIVALENT: 3, stats.UNDECIDED: 4}
    diff = row.comparison.diff_mean if row.comparison and row.comparison.diff_mean is not None else 0.0
    return order.get(row.verdict, 5), -diff


def _regularized(row: stats.ConfigStats) -> str:
    return "no regularization" if row.regularizer == "none" else row.regularizer


def _sesoi_text(row: stats.ConfigStats) -> str:
    return f"±{100 * row.sesoi:g} points"


def _seeds_text(row: stats.ConfigStats) -> str:
    """The seeds per config that would decide an undecided comparison."""
    return f"more than {stats.MAX_SEEDS}" if row.seeds_needed is None else str(row.seeds_needed)


def _rate(collapse: stats.Collapse) -> str:
    low, high = collapse.ci
    return (
        f"{collapse.collapsed} of {collapse.runs} runs collapsed (rate {collapse.collapsed / collapse.runs:.0%}, "
        f"exact 95 % CI {low:.0%} to {high:.0%})"
    )


def verdict_text(row: stats.ConfigStats) -> str:
    """The verdict as the table shows it: better/worse within the sesoi say so, equivalent says how close."""
    if row.verdict in (stats.BETTER, stats.WORSE) and row.within_sesoi:
        return f"{row.verdict}, by less than {_sesoi_text(row)}"
    if row.verdict == stats.EQUIVALENT:
        return f"{row.verdict} (within {_sesoi_text(row)})"
    return row.verdict


# --------------------------------------------------------------------------- the answer


def _test_text(row: stats.ConfigStats, base: stats.ConfigStats) -> str:
    c = row.comparison
    runs = f" over {row.n} seeds" if c.test == stats.PAIRED else f", n = {row.n} vs {base.n} runs"
    return f"{c.test}{runs}, Holm p {_p_eq(row.p_holm)}"


def _p_eq(value: float) -> str:
    return _p(value) if value < 0.001 else f"= {_p(value)}"


def _comparison_sentence(row: stats.ConfigStats, base: stats.ConfigStats) -> str:
    """One config against the baseline, its verdict left out."""
    c = row.comparison
    who = f"{row.config} ({_regularized(row)})"
    if row.verdict == stats.UNSTABLE:
        sides = [f"{row.config}: {_rate(row.collapse)}"]
        if base.collapse.runs:
            sides.append(f"the baseline {base.config}: {_rate(base.collapse)}")
        rate_test = (
            f"; Fisher's exact test of the two rates p = {_p(row.collapse_p)}" if row.collapse_p is not None else ""
        )
        shown = (
            f" The accuracy difference, {_pts(c.diff_mean)} points, is taken over a mixture of collapsed and "
            "working runs: no interval is given for it."
            if c.diff_mean is not None
            else ""
        )
        return f"{who}: {'; '.join(sides)}{rate_test}.{shown}"
    if c.p_value is None:
        shown = f"{_pts(c.diff_mean)} points; " if c.diff_mean is not None else ""
        return f"{who}: {shown}{row.verdict.removeprefix(stats.NOT_TESTED + ': ')}."
    measured = (
        f"{who}: {_pts(c.diff_mean)} points of test accuracy "
        f"(95 % CI {_pts(c.ci_low)} to {_pts(c.ci_high)}; {_test_text(row, base)})"
    )
    equivalence = f"equivalence test within {_sesoi_text(row)}, Holm p {_p_eq(row.p_equivalence_holm)}"
    if row.verdict in (stats.BETTER, stats.WORSE):
        if row.within_sesoi:
            return f"{measured}, by less than the smallest effect of interest ({equivalence})."
        return f"{measured}."
    if row.verdict == stats.EQUIVALENT:
        return f"{measured}: within {_sesoi_text(row)} ({equivalence})."
    return (
        f"{measured}: neither a difference nor equivalence within {_sesoi_text(row)} is shown ({equivalence}); "
        f"these runs detect differences of {100 * row.mde:.1f} points or more (80 % power)."
    )


def _deciding_lines(rows: list[stats.ConfigStats], root: Path) -> list[str]:
    """What would decide the open questions: seeds per undecided comparison, the command, and the unstable."""
    undecided = [r for r in rows if r.verdict == stats.UNDECIDED]
    unstable = [r for r in rows if r.verdict == stats.UNSTABLE]
    lines = []
    if undecided:
        level = stats.planning_alpha(rows)
        sesoi = undecided[0].sesoi
        needs = ", ".join(f"{r.config} {_seeds_text(r)}" for r in undecided if r.seeds_for == stats.DIFFERENCE_PLAN)
        if needs:
            lines.append(
                f"To decide the undecided: seeds per config for 80 % power to detect {100 * sesoi:g} points at the "
                f"observed spread (α = {stats.ALPHA}/{round(stats.ALPHA / level)}): {needs}."
            )
        for r in (r for r in undecided if r.seeds_for == stats.EQUIVALENCE_PLAN):
            lines.append(
                f"{r.config}: these runs already have 80 % power to detect {100 * sesoi:g} points, but the difference "
                f"seen ({_pts(r.comparison.diff_mean)} points) lies inside ±{100 * sesoi:g}; for 80 % power of the "
                f"equivalence test if that is the true difference: {_seeds_text(r)} seeds per config."
            )
        feasible = [r.seeds_needed for r in undecided if r.seeds_needed is not None]
        if feasible:
            flag = "" if round(100 * sesoi, 9) == stats.DEFAULT_SESOI_POINTS else f" --sesoi {100 * sesoi:g}"
            lines.append(
                f"Command: regexp sweep CONFIGS --seeds {max(feasible)} --results {root}{flag} "
                "(CONFIGS: this study's config folder; completed seeds are kept, only the new ones train)."
            )
        if len(feasible) < len(undecided):
            lines.append(
                f"More than {stats.MAX_SEEDS} seeds: no practical study settles that comparison at this smallest "
                "effect of interest; only a larger --sesoi, or less spread between seeds, would."
            )
    if unstable:
        lines.append(
            "Unstable (" + ", ".join(r.config for r in unstable) + "): some seeds collapse and some do not; more "
            "seeds only measure the collapse rate. Find why those runs collapse (e.g. a smaller λ or learning "
            "rate) before comparing accuracies."
        )
    return lines


def answer_parts(
    rows: list[stats.ConfigStats], baseline: str | None, how: str, root: Path = Path("results")
) -> tuple[str, list[tuple[stats.ConfigStats, str]], list[str]]:
    """The plain-language answer: (headline, [(config, its sentence)], notes ending with what would decide)."""
    if not rows:
        return "No run here could be read: nothing to compare (the damaged folders are listed).", [], []
    if baseline is None:
        ranked = [r for r in rows if r.accuracy_mean is not None]
        notes = []
        if ranked:
            best = max(ranked, key=lambda r: r.accuracy_mean)
            notes.append(
                f"Highest mean test accuracy: {best.config} ({_regularized(best)}), "
                f"{_num(best.accuracy_mean)}{_interval(best.accuracy_ci)} over n = {best.n}."
            )
        return (
            (
                f"No comparison was made: there is no baseline ({how}). The table gives each config's mean test "
                "accuracy with its 95 % interval."
            ),
            [],
            notes,
        )
    base = next(r for r in rows if r.config == baseline)
    others = sorted((r for r in rows if r.config != baseline), key=_verdict_order)
    if base.n == 0:
        return f"The baseline {baseline} has no completed run: nothing can be compared.", [], []
    shown_interval = "" if base.collapse.partly else _interval(base.accuracy_ci)
    base_text = f"{baseline} ({_regularized(base)}: {_num(base.accuracy_mean)}{shown_interval}, n = {base.n})"
    if not others:
        return f"Only the baseline {base_text} is here: nothing to compare.", [], []
    tested = [r for r in others if r.p_holm is not None]
    better = [r for r in others if r.verdict == stats.BETTER]
    counts = collections.Counter(r.verdict for r in others if not r.verdict.startswith(stats.NOT_TESTED))
    if better:
        headline = (
            f"{len(better)} of {len(others)} configs beat {base_text}: "
            + ", ".join(f"{r.config} by {_pts(r.comparison.diff_mean)} points" for r in better)
            + "."
        )
    else:
        headline = f"No config detectably beats {base_text}."
    settled = [
        f"{counts[v]} {v}" for v in (stats.WORSE, stats.EQUIVALENT, stats.UNDECIDED, stats.UNSTABLE) if counts[v]
    ]
    if settled:
        headline += " Of the others: " + ", ".join(settled) + "."
    if tested:
        headline += (
            f" Verdicts at α = {stats.ALPHA} after Holm's correction over {len(tested)} "
            f"comparison{'s' if len(tested) != 1 else ''}; smallest effect of interest {_sesoi_text(base)}."
        )
    else:
        headline += " No comparison could be tested (see each config)."
    partly = [r for r in rows if r.collapse and r.collapse.partly]
    if partly:
        headline = (
            "Unstable: "
            + "; ".join(f"{r.config}: {r.collapse.collapsed} of {r.collapse.runs} seeds collapsed" for r in partly)
            + ". "
            + headline
        )
    return headline, [(r, _comparison_sentence(r, base)) for r in others], _deciding_lines(others, root)


def answer(rows: list[stats.ConfigStats], baseline: str | None, how: str, root: Path = Path("results")) -> list[str]:
    """The plain-language answer as lines: the headline, one line per config compared, what would decide."""
    headline, items, notes = answer_parts(rows, baseline, how, root)
    return [headline, *(f"{_short_verdict(row.verdict)}: {sentence}" for row, sentence in items), *notes]


def _short_verdict(verdict: str) -> str:
    return stats.NOT_TESTED if verdict.startswith(stats.NOT_TESTED) else verdict


# --------------------------------------------------------------------------- building


def _activations(runs: list[SavedRun], label_of: dict[str, str]) -> dict:
    found: dict[str, dict[str, dict[str, list[float]]]] = {}
    for run in runs:
        recorded = run.record.activations
        if not run.record.is_evaluated or recorded is None:
            continue
        per_layer = found.setdefault(label_of[run.folder.name], {})
        for layer, values in recorded.items():
            if isinstance(values, dict):
                for key in ("mean_abs", "zero_fraction"):
                    if isinstance(values.get(key), (int, float)):
                        per_layer.setdefault(layer, {}).setdefault(key, []).append(float(values[key]))
    return found


def _sparsity(runs: list[SavedRun], label_of: dict[str, str]) -> dict[str, dict[str, float]]:
    """{config: {layer and 'overall': mean near-zero fraction over its evaluated runs}}."""
    values: dict[str, dict[str, list[float]]] = {}
    for run in runs:
        if not run.record.is_evaluated:
            continue
        sparsity = run.record.sparsity
        per = values.setdefault(label_of[run.folder.name], {})
        if sparsity is None:
            continue
        for layer, fraction in (sparsity.layers or {}).items():
            per.setdefault(layer, []).append(fraction)
        if sparsity.overall is not None:
            per.setdefault("overall", []).append(sparsity.overall)
    return {label: {k: statistics.fmean(v) for k, v in per.items()} for label, per in values.items()}


@dataclass
class _Material:
    """Everything the texts are made of."""

    root: Path
    runs: list[SavedRun]
    skipped: list[str]
    rows: list[stats.ConfigStats]
    baseline: str | None
    how: str
    answer: list[str]
    label_of: dict[str, str]  # run folder name: its config's label
    weight_notes: dict[str, str]
    figures: dict[str, tuple[str | None, str]]  # id: (data URI or None, caption or why missing)
    sparsity: dict[str, dict[str, float]]
    tuned: bool = False  # the root holds runs of regexp tune: the report links to tuning.md/html


def build_report(
    root: Path,
    runs: list[SavedRun],
    skipped: list[str],
    baseline: str | None = None,
    figures: bool = True,
    sesoi_points: float = stats.DEFAULT_SESOI_POINTS,
    tuned: bool = False,
) -> Report:
    """The report of these runs: statistics, answer, stats.csv, report.md and report.html
    (with figures unless `figures` is False; linking to tuning.md/html if `tuned`). An unknown
    `baseline`, or a smallest effect of interest (`sesoi_points`, percentage points) outside
    (0, 100), is a RegexpError."""
    records = records_of(runs)
    rows, chosen, how = stats.config_stats(records, baseline, stats.sesoi_fraction(sesoi_points))
    groups = config_table(records)
    label_of = {m.run: label for label, config in groups.items() for m in config.members}
    histograms, weight_notes = _weight_histograms(runs, label_of)
    material = _Material(
        root,
        runs,
        skipped,
        rows,
        chosen,
        how,
        answer(rows, chosen, how, root),
        label_of,
        weight_notes,
        {},
        _sparsity(runs, label_of),
        tuned,
    )
    if figures:
        material.figures = _figures(material, groups, histograms)
    report = Report(rows, chosen, how, material.answer, skipped)
    report.csv = stats.to_csv(rows)
    report.markdown = to_markdown(material, generation_stamp(report.csv))
    report.html = to_html(material, generation_stamp(report.csv, report.markdown))
    return report


def _figures(material: _Material, groups: dict[str, ConfigRuns], histograms: dict) -> dict:
    rows, baseline, runs, label_of = material.rows, material.baseline, material.runs, material.label_of
    config_order = [r.config for r in rows]
    colors = report_figures.config_colors(config_order)
    out: dict[str, tuple[str | None, str]] = {}

    def add(key: str, fig, caption: str, missing: str) -> None:
        out[key] = (report_figures.png_data_uri(fig), caption) if fig is not None else (None, missing)

    add(
        "forest",
        report_figures.forest_plot(rows, baseline) if baseline else None,
        "Each config's test accuracy minus the baseline's, in percentage points: dot the mean difference, bar its "
        "95 % confidence interval (paired or Welch t, as in the table). A bar that crosses zero is compatible with "
        "no difference; colours follow the verdict after Holm's correction (green better, red worse, blue "
        "equivalent, grey undecided, purple unstable: a mixture of collapsed and working runs, drawn without its "
        "interval; hollow ochre not tested).",
        "No forest plot: "
        + ("there is no baseline to compare with." if baseline is None else "there is no other config to compare."),
    )
    grids = lambda_grids(records_of(runs))
    base_values = groups[baseline].accuracies if baseline else []
    add(
        "lambda",
        report_figures.lambda_curves(grids, (baseline, base_values) if baseline else None),
        "Test accuracy against the penalty strength λ for each λ grid: line the mean over seeds, band its 95 % "
        "t interval (none where a point has one run); grey dashed line and band: the baseline's mean and interval.",
        "No λ curves: no config here is a grid over regularizer.lambda (e.g. sweep: {regularizer.lambda: "
        "[0.001, 0.01, 0.1]}).",
    )
    ordered = {label: histograms[label] for label in config_order if label in histograms}
    threshold = next((r.record.sparsity.threshold for r in runs if r.record.sparsity is not None), None)
    without = sorted(n for n, note in material.weight_notes.items() if note != "saved" and not note.startswith("saved"))
    add(
        "weights",
        report_figures.weight_histograms(ordered, recorded_layers(runs), threshold, colors),
        "Distribution of the final kernel weights' magnitudes per layer (log scale), each config's seeds pooled: "
        "L1 pushes weights towards zero (mass to the left of the dotted near-zero threshold), L2 shrinks them "
        "without zeroing them." + (f" Weights not recorded by: {', '.join(without)}." if without else ""),
        f"No weight histograms: the final weights ({WEIGHTS}) were not recorded by these runs.",
    )
    activations = _activations(runs, label_of)
    no_activations = sorted(r.folder.name for r in runs if r.record.is_evaluated and r.record.activations is None)
    add(
        "activations",
        report_figures.activation_bars(
            {label: activations[label] for label in config_order if label in activations},
            recorded_layers(runs),
            colors,
        ),
        "Mean |activation| and the fraction of exactly-zero activations of each layer on the test set: an activity "
        "penalty shrinks the activations themselves; zeros after ReLU are units switched off. dense2's outputs are the "
        "softmax probabilities (their mean is 1 / classes whatever the penalty)."
        + (f" Activations not recorded by: {', '.join(no_activations)}." if no_activations else ""),
        "No activation figure: activation statistics (metrics.json `activations`) were not recorded by these runs.",
    )
    histories = {
        label: [r.history for r in runs if r.record.is_evaluated and label_of[r.folder.name] == label and r.history]
        for label in config_order
    }
    add(
        "gap",
        report_figures.generalization_gap({k: v for k, v in histories.items() if v}, colors),
        "Training minus validation accuracy per epoch (history.csv). Training accuracy is the running mean over an "
        "epoch with dropout on, so early epochs can show a negative gap. A gap that grows with the epochs is "
        "overfitting; a penalty that regularizes keeps it smaller.",
        "No generalization-gap figure: no completed run has a history.csv.",
    )
    return out


# --------------------------------------------------------------------------- shared content


def _data_lines(material: _Material) -> list[str]:
    runs = material.runs
    records = [run.record for run in runs]
    statuses = collections.Counter(m.status.value for m in records)
    descriptions = collections.Counter((m.data.description if m.data else None) or "not recorded" for m in records)
    epochs = sorted({m.epochs_planned for m in records if m.epochs_planned})
    seeds = sorted({m.seed for m in records if m.seed is not None})
    split = next((m.data for m in records if m.data is not None and m.data.model_fields_set), None)
    sizes = (split.train, split.validation, split.test) if split else (None,)
    lines = [
        f"Results root: {material.root}",
        (
            f"Runs: {len(runs)} ({', '.join(f'{n} {s}' for s, n in sorted(statuses.items()))}) in {len(material.rows)} "
            f"configs; seeds {', '.join(map(str, seeds)) or 'not recorded'}; "
            f"epochs {', '.join(map(str, epochs)) or 'not recorded'}."
        ),
        "Data: "
        + "; ".join(f"{d} ({n} runs)" for d, n in descriptions.items())
        + ("; {} training / {} validation / {} test samples".format(*sizes) if None not in sizes else "")
        + ".",
        (f"Baseline: {material.baseline} ({material.how})." if material.baseline else f"No baseline: {material.how}."),
    ]
    if len(descriptions) > 1:
        lines.append("Warning: these runs use different data; accuracies from different data are not comparable.")
    if material.skipped:
        lines.append(f"Left out: {len(material.skipped)} damaged run folder(s), listed below.")
    return lines


def _n_text(row: stats.ConfigStats) -> str:
    return str(row.n) if row.n == row.runs else f"{row.n} of {row.runs}"


def _table(material: _Material) -> tuple[list[str], list[list[str]]]:
    header = [
        "config",
        "regularizer",
        "n",
        "test accuracy [95 % CI]",
        "test loss",
        "Δ accuracy, points [95 % CI]",
        "test",
        "p",
        "p (Holm)",
        "p equivalence (Holm)",
        "detectable, points",
        "seeds to decide",
        "effect size",
        "collapsed",
        "verdict",
    ]
    body = []
    for r in material.rows:
        c = r.comparison
        mixture = r.collapse is not None and r.collapse.partly
        effect = ""
        if c and c.effect_size is not None:
            effect = f"{'dz' if c.test == stats.PAIRED else 'd'} = {c.effect_size:.2f}"
        diff = ""
        if c and c.diff_mean is not None:
            if r.verdict == stats.UNSTABLE:
                diff = _pts(c.diff_mean) + " (mixture: no interval)"
            else:
                diff = _pts(c.diff_mean) + (f" [{_pts(c.ci_low)}, {_pts(c.ci_high)}]" if c.ci_low is not None else "")
        if mixture:
            accuracy = _num(r.accuracy_mean) + " (mixture: no interval)"
        else:
            accuracy = _num(r.accuracy_mean) + (
                _interval(r.accuracy_ci) if r.accuracy_ci else (" (n = 1: no interval)" if r.n == 1 else "")
            )
        collapsed = ""
        if r.collapse and r.collapse.runs:
            collapsed = r.collapse.text + (" (some)" if mixture else "")
        body.append(
            [
                r.config,
                r.regularizer,
                _n_text(r),
                accuracy,
                _num(r.loss_mean),
                diff,
                (c.test if c and c.test else ""),
                _p(c.p_value) if c and c.p_value is not None else "",
                _p(r.p_holm) if r.p_holm is not None else "",
                _p(r.p_equivalence_holm) if r.p_equivalence_holm is not None else "",
                f"{100 * r.mde:.1f}" if r.mde is not None else "",
                _seeds_text(r) if r.verdict == stats.UNDECIDED else "",
                effect,
                collapsed,
                verdict_text(r),
            ]
        )
    return header, body


def _run_table(material: _Material) -> tuple[list[str], list[list[str]]]:
    header = [
        "run",
        "config",
        "seed",
        "status",
        "test accuracy",
        "test loss",
        "test accuracy at best epoch",
        "epochs",
        "precision",
        "wall time",
        "finished (UTC)",
        "weights",
    ]
    body = []
    for run in sorted(material.runs, key=lambda run: run.folder.name):
        name, m = run.folder.name, run.record
        best = m.best_epoch_test_accuracy
        status = m.status.value + (f": {m.error}" if m.error else "")
        body.append(
            [
                name,
                material.label_of.get(name, "?"),
                _shown(m.seed),
                status,
                _num(m.test_accuracy),
                _num(m.test_loss),
                _num(best) if best is not None else "not recorded" if m.is_evaluated else "–",
                f"{_shown(m.epochs_run)}/{_shown(m.epochs_planned)}",
                (m.training_path.precision if m.training_path else None) or "not recorded",
                f"{m.wall_time_s:.1f} s" if m.wall_time_s is not None else "–",
                _shown(m.finished_at).replace("T", " ")[:16],  # UTC, to the minute
                material.weight_notes.get(name, "–").replace(NOT_RECORDED, "not recorded"),
            ]
        )
    return header, body


def _shown(value) -> str:
    """A recorded value in a table cell; a dash where the record has none."""
    return "–" if value is None else str(value)


def _runs_note(body: list[list[str]]) -> str:
    if any("not recorded" in cell for row in body for cell in row):
        return f"“not recorded”: {NOT_RECORDED} (made before regexp recorded it). "
    return ""


def _versions(material: _Material) -> list[str]:
    counts = collections.Counter(
        ", ".join(f"{k} {v}" for k, v in (run.record.versions or {}).items()) or NOT_RECORDED for run in material.runs
    )
    return [f"{text}: {n} run{'s' if n != 1 else ''}" for text, n in counts.most_common()]


def _sparsity_table(material: _Material) -> tuple[list[str], list[list[str]]]:
    layers = recorded_layers(material.runs)
    header = ["config", *layers, "overall"]
    body = [
        [
            r.config,
            *(
                f"{material.sparsity[r.config][k]:.1%}" if k in material.sparsity[r.config] else "–"
                for k in (*layers, "overall")
            ),
        ]
        for r in material.rows
        if r.config in material.sparsity
    ]
    return header, body


def _compute_lines(runs: list[SavedRun]) -> str:
    """The compute used, from the runs' own records: total training time, and the machines."""
    seconds = sum(r.record.wall_time_s for r in runs if r.record.wall_time_s is not None)
    machines = collections.Counter()
    for run in runs:
        host = run.record.host
        if isinstance(host, dict):
            gpus = host.get("gpus")
            gpu = ", ".join(map(str, gpus)) if isinstance(gpus, list) and gpus else "no GPU"
            machines[f"{host.get('cpu', 'CPU not recorded')}, {host.get('cores', '?')} cores, {gpu}"] += 1
        else:
            machines["machine not recorded"] += 1
    where = "; ".join(f"{text} ({n} run{'s' if n != 1 else ''})" for text, n in machines.most_common())
    return (
        f"Compute: {seconds / 3600:.2f} hours of training in all ({seconds:.0f} s, the runs' recorded wall "
        f"times, failed runs included), on {where or 'no machine recorded'}."
    )


def _assumption_lines(rows: list[stats.ConfigStats]) -> list[str]:
    """Per paired comparison of 3 or more seeds: Shapiro-Wilk on the differences, Wilcoxon beside the t-test."""
    lines = []
    for r in rows:
        c = r.comparison
        if not c or c.shapiro_p is None:
            continue
        t_rejects, w_rejects = c.p_value < stats.ALPHA, c.wilcoxon_p < stats.ALPHA
        agreement = "they agree" if t_rejects == w_rejects else "they disagree"
        smallest = 2 ** (1 - c.spread.n)  # the exact signed-rank test's smallest two-sided p
        floor = (
            f" (with {c.spread.n} seeds the Wilcoxon test cannot go below p = {smallest:.3g})"
            if smallest >= stats.ALPHA
            else ""
        )
        normal = "no evidence against normality" if c.shapiro_p >= stats.ALPHA else "the differences look non-normal"
        lines.append(
            f"{r.config}: Shapiro–Wilk p = {_p(c.shapiro_p)} ({normal}); Wilcoxon signed-rank p = {_p(c.wilcoxon_p)} "
            f"beside the paired t-test's p = {_p(c.p_value)} (both unadjusted): {agreement} at α = {stats.ALPHA}"
            f"{floor}."
        )
    return lines


def method_lines(material: _Material) -> list[str]:
    """The Method section: what the numbers are, what they cover and assume, and the compute used."""
    sesoi = next((r.sesoi for r in material.rows if r.sesoi is not None), stats.DEFAULT_SESOI_POINTS / 100)
    m = sum(r.p_holm is not None for r in material.rows)
    chance = (
        "chance is 1 / the number of classes recorded in metrics.json (the test set's class shares are not "
        "recorded; the split is stratified, so each class has about that share); where the number of classes is not "
        "recorded, only divergence counts"
    )
    lines = [
        "A config is one configuration with its seeds together (the summary's grouping); only completed runs count (n).",
        (
            "Sources of variation: a run's seed sets its weight initialisation, dropout and the order of its training "
            "batches; the train / validation / test split is fixed. The intervals and tests cover the variation "
            "between seeds only, not a different split or different data."
        ),
        (
            "Interval of a config's mean test accuracy: a Student t interval of the mean with n − 1 degrees of "
            "freedom, 95 % (not ± SD); none for n = 1. No interval is adjusted for the number of comparisons."
        ),
        (
            "Difference from the baseline (config − baseline, test accuracy): when both configs ran the same set of "
            "seeds, a paired t-test on the per-seed differences, effect size dz = mean / SD of the differences; "
            "otherwise Welch's t-test with Welch–Satterthwaite degrees of freedom, effect size Cohen's d = difference "
            "of means / pooled SD."
        ),
        (
            f"Smallest effect of interest (--sesoi): {100 * sesoi:g} points of test accuracy. Equivalence: two "
            "one-sided t-tests (TOST) of the same difference against −sesoi and +sesoi, paired or Welch as the "
            "difference test; its p-value is the larger of the two."
        ),
        (
            "Holm's step-down correction is applied over the comparisons made, separately to the difference tests "
            f"and to the equivalence tests; verdicts at α = {stats.ALPHA}: “better” / “worse” when the difference "
            "test rejects (“by less than the smallest effect of interest” when equivalence rejects too), "
            "“equivalent” when only equivalence rejects, “undecided” when neither does, “unstable” when some but "
            "not all runs of either side collapsed, “not tested” with the reason (a side with fewer than 2 runs, no "
            "spread at all, or no baseline). Unstable comparisons stay in both Holm families."
        ),
        (
            f"Detectable (minimum detectable effect): the smallest |difference| the comparison's test would detect "
            f"with 80 % power at the planning level α / m = {stats.ALPHA} / {max(m, 1)} (Bonferroni, a conservative "
            "plan for Holm), at the observed spread and n; paired: noncentral t with n − 1 df and noncentrality "
            "δ√n / s_d; Welch: Welch–Satterthwaite df and noncentrality δ / √(s₁²/n₁ + s₂²/n₂). Seeds to decide: "
            f"the fewest seeds per config (both sides) for 80 % power at the smallest effect of interest; where the runs "
            "already have that many, the difference seen lies inside the margin, and the seeds are those for 80 % "
            "power of the equivalence test if the true difference is the one seen (an approximation that errs low "
            f"only where the power is small); “more than {stats.MAX_SEEDS}” beyond that."
        ),
        (
            f"Collapsed run: it diverged (non-finite loss), or its test accuracy is at most "
            f"{100 * stats.COLLAPSE_MARGIN:g} points above chance; {chance}. Per config: collapsed runs of those "
            "that finished, with an exact (Clopper–Pearson) binomial 95 % interval of the rate; two configs' rates "
            "are compared by Fisher's exact test. A partly collapsed config's runs are a mixture of two kinds: no "
            "t interval is given over them."
        ),
        (
            "Assumption: the t-tests assume roughly normal per-seed differences (paired) or means (Welch). Checked "
            "on each paired comparison with 3 or more seeds: Shapiro–Wilk on the differences, and the Wilcoxon "
            "signed-rank test as a companion that does not assume normality."
        ),
        *_assumption_lines(material.rows),
        _compute_lines(material.runs),
        (
            "stats.csv: one row per config; `baseline` holds the baseline config's name on every row (empty when there "
            "is none); the baseline's own row has empty difference cells; `test` is “paired t-test” or “Welch "
            "t-test”; `effect_size` is dz (paired) or Cohen's d (Welch); `sesoi` and `mde` are fractions of 1 like "
            "`diff_mean`; `collapsed` is k/n. Text cells that a spreadsheet would run as a formula start with '."
        ),
    ]
    return lines


# --------------------------------------------------------------------------- markdown


# --------------------------------------------------------------------------- rendering

TITLE = "Regularization study: report"
# Each section's title, once: both templates take them from here.
TITLES = {
    "answer": "The answer",
    "data": "The question and the data",
    "table": "Results by config",
    "forest": "Difference from the baseline",
    "lambda": "Test accuracy against λ",
    "mechanism": "Why: what the penalty did to the network",
    "weights": "Weights",
    "sparsity": "Near-zero weights per layer (mean over seeds)",
    "activations": "Activations",
    "gap": "Generalization gap",
    "runs": "What each run recorded",
    "skipped": "Skipped (damaged) run folders",
    "method": "Method",
}
FIGURE_ALTS = {
    "forest": "forest plot",
    "lambda": "lambda curves",
    "weights": "weight magnitude histograms",
    "activations": "activation magnitudes",
    "gap": "generalization gap",
}
TUNING_LINK = "How each config's values were chosen, trial by trial"
RESULTS_NOTE = (
    f"Δ: config minus baseline, in percentage points of test accuracy. Verdicts at α = {stats.ALPHA} on the "
    "Holm-corrected p-values of the difference and equivalence tests; the intervals are not adjusted (see Method). "
    "Detectable: the smallest difference these runs detect with 80 % power; seeds to decide: per config, for the "
    "smallest effect of interest."
)
TABLE_NUMERIC = {
    "n",
    "test accuracy [95 % CI]",
    "test loss",
    "Δ accuracy, points [95 % CI]",
    "p",
    "p (Holm)",
    "p equivalence (Holm)",
    "detectable, points",
    "seeds to decide",
    "effect size",
    "collapsed",
}
RUNS_NUMERIC = {"seed", "test accuracy", "test loss", "test accuracy at best epoch", "epochs", "wall time"}


def report_model(material: _Material, stamp: str = "") -> dict:
    """Everything both templates show, as plain text and Tables (nothing escaped yet: the templates do it)."""
    headline, items, notes = answer_parts(material.rows, material.baseline, material.how, material.root)
    sparsity = _sparsity_table(material) if material.sparsity else None
    runs_header, runs_body = _run_table(material)
    figures = {}
    for key, alt in FIGURE_ALTS.items():
        uri, text = material.figures.get(key, (None, "Figures were not drawn."))
        figures[key] = {"uri": uri, "text": text, "alt": alt}
    return {
        "title": TITLE,
        "titles": TITLES,
        "question": QUESTION,
        "when": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "root": str(material.root),
        "headline": headline,
        "items": [
            {"verdict": _short_verdict(row.verdict), "cls": verdict_class(row.verdict), "sentence": sentence}
            for row, sentence in items
        ],
        "notes": notes,
        "answer_lines": material.answer,
        "data_lines": _data_lines(material),
        "results": Table(*_table(material), frozenset(TABLE_NUMERIC), "verdict"),
        "results_note": RESULTS_NOTE,
        "sparsity": Table(*sparsity, frozenset(sparsity[0][1:])) if sparsity else None,
        "runs": Table(runs_header, runs_body, frozenset(RUNS_NUMERIC)),
        "versions": _runs_note(runs_body) + "Versions: " + "; ".join(_versions(material)) + ".",
        "skipped": material.skipped,
        "method": method_lines(material),
        "figures": figures,
        "figures_elsewhere": "The figures (forest plot, λ curves, weights, activations, generalization gap) are in "
        "report.html.",
        "stamp": stamp,
        "tuning": pages.Link(TUNING_LINK, pages.TUNING_MD, pages.TUNING_HTML) if material.tuned else None,
    }


def to_markdown(material: _Material, stamp: str = "") -> str:
    """report.md: the answer, the data, the tables and the method (figures: report.html), from
    templates/report.md.j2; every value escaped as Markdown text, as report.html escapes it as HTML."""
    return pages.markdown("report.md.j2", report_model(material, stamp))


def to_html(material: _Material, stamp: str = "") -> str:
    """report.html: one self-contained page (inline CSS and images; no script, no network), from
    templates/report.html.j2 with autoescape on; `stamp` (generation_stamp) names the files it was
    written with."""
    return pages.html("report.html.j2", report_model(material, stamp))


# --------------------------------------------------------------------------- writing


REPORT_FILES = ("stats.csv", pages.REPORT_MD, pages.REPORT_HTML)  # published in this order: the page last


def generation_stamp(csv_text: str, markdown_text: str | None = None) -> str:
    """The line that ties a report's files together: the sha256 of the stats.csv (and report.md) it was
    written with, so a reader can tell a report.html from a different generation."""
    parts = [f"stats.csv sha256 {hashlib.sha256(csv_text.encode()).hexdigest()[:16]}"]
    if markdown_text is not None:
        parts.append(f"report.md sha256 {hashlib.sha256(markdown_text.encode()).hexdigest()[:16]}")
    return "Written with " + " and ".join(parts) + "."


def clear_stale_temporaries(root: Path) -> list[Path]:
    """Delete the temporary files of report writers that died (`.stats.csv.<id>.tmp` and the like).

    Call it holding the root's summary lock: every writer of these files holds it, so any
    temporary found then belongs to a writer that is gone. Returns what was deleted.
    """
    removed = []
    for name in REPORT_FILES:
        for temp in root.glob(f".{glob.escape(name)}.*.tmp"):
            if temp.is_file() and not temp.is_symlink():
                temp.unlink(missing_ok=True)
                removed.append(temp)
    return removed


def _publish(root: Path, texts: dict[str, str]) -> list[Path]:
    """Write every file to its temporary first (fsynced), then rename them in REPORT_FILES order:
    a writer killed while writing leaves the previous generation whole."""
    generation = uuid.uuid4().hex[:8]
    for name in texts:
        check_replaceable(inside_root(root, name))  # a link or folder in its place is left alone, in one line
    temps = {name: root / f".{name}.{generation}.tmp" for name in texts}
    try:
        for name, temp in temps.items():
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
            with os.fdopen(fd, "wb") as f:
                f.write(texts[name].encode("utf-8", "backslashreplace"))  # names not UTF-8 on disk: escaped
                f.flush()
                os.fsync(f.fileno())
        for name in REPORT_FILES:
            if name in temps:
                os.replace(temps[name], root / name)
    except OSError as exc:
        raise WriteError(f"{root}: the report cannot be written ({exc.strerror or exc})") from None
    finally:
        for temp in temps.values():
            temp.unlink(missing_ok=True)
    return [root / name for name in REPORT_FILES if name in texts]


def write_report(root: Path, baseline: str | None = None, sesoi_points: float = stats.DEFAULT_SESOI_POINTS) -> Report:
    """Read every run under `root` and write stats.csv, report.md and report.html there.

    `sesoi_points` is the smallest effect of interest in percentage points (--sesoi). Damaged
    run folders are left out and listed (Report.skipped). A root with no run folder at all, an
    unknown `baseline` or a bad `sesoi_points` is a RegexpError, and nothing is written. The
    three files are written under the root's summary lock, stale temporaries of dead writers
    cleared first.
    """
    runs, skipped = scan_runs(root)
    if not runs and not skipped:
        raise RegexpError(f"{root}: no runs here (a run folder holds a metrics.json)")
    # --- regexp tune's hook: its trials were chosen on validation, so only its confirmation runs
    # (and ordinary runs) are compared here; tune_report writes tuning.md/html about the trials
    # (`regexp report` and `regexp tune` write them right after this report, which links to them).
    tuned = tune_report.is_tuned(records_of(runs))
    runs = [run for run in runs if not tune_report.is_trial(run.record)]
    # --- end of regexp tune's hook
    report = build_report(root, runs, skipped, baseline, sesoi_points=sesoi_points, tuned=tuned)
    try:
        with summary_lock(root):
            clear_stale_temporaries(root)
            report.written = _publish(
                root, {"stats.csv": report.csv, pages.REPORT_MD: report.markdown, pages.REPORT_HTML: report.html}
            )
    except OSError as exc:
        raise ResultsError(f"{root}: the report cannot be written ({exc.strerror or exc})") from None
    return report
