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
import html
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from regexp.config import LAYER_NAMES
from regexp.errors import RegexpError
from regexp.results import WEIGHTS, SavedRun, scan_runs, write_text_atomic
from regexp.study import report_figures, stats
from regexp.study.plots import lambda_series
from regexp.study.summary import group_runs

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
        model, sparsity = run.metrics.get("model"), run.metrics.get("sparsity")
        layers = model.get("layers") if isinstance(model, dict) else None
        if not isinstance(layers, dict) and isinstance(sparsity, dict):
            layers = sparsity.get("layers")
        names.update(dict.fromkeys(layers if isinstance(layers, dict) else ()))
    return tuple(names) or LAYER_NAMES


def read_kernels(path: Path, names: tuple[str, ...] = LAYER_NAMES) -> dict[str, np.ndarray]:
    """The kernel (the first variable) of each layer of `names` found in a Keras 3 `.weights.h5` file.

    Keras 3 stores a layer's variables under `layers/<class name>/vars/` (that group's
    `name` attribute is the layer's name), numbered in creation order: 0 is the kernel.
    Raises OSError or KeyError when the file cannot be read.
    """
    import h5py

    kernels: dict[str, np.ndarray] = {}

    def visit(_name, item):
        if isinstance(item, h5py.Group) and item.attrs.get("name") in names and "0" in item:
            kernels[str(item.attrs["name"])] = np.asarray(item["0"][()], dtype=np.float64)

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return kernels


def magnitude_counts(weights: np.ndarray) -> list[int]:
    """Counts of |w| in report_figures' log10 bins; below the range (and zeros) in the first bin."""
    low, high = report_figures.LOG10_WEIGHT_RANGE
    logs = np.log10(np.maximum(np.abs(weights.ravel()), 10**low))
    counts, _ = np.histogram(np.clip(logs, low, high), bins=report_figures.WEIGHT_BINS, range=(low, high))
    return counts.tolist()


def _weight_histograms(runs: list[SavedRun], label_of: dict[int, str]) -> tuple[dict, dict[str, str]]:
    """({config: {layer: counts summed over its runs}}, {run name: what its weights file gave})."""
    histograms: dict[str, dict[str, list[int]]] = {}
    notes: dict[str, str] = {}
    for run in runs:
        name = _name(run)
        path = run.folder / WEIGHTS
        if run.metrics.get("status") != "completed":
            continue
        if not path.exists():
            notes[name] = NOT_RECORDED
            continue
        try:
            layers = recorded_layers([run])
            kernels = read_kernels(path, layers)
        except (OSError, KeyError, ValueError) as exc:
            notes[name] = f"cannot be read ({exc})"
            continue
        missing = [layer for layer in layers if layer not in kernels]
        notes[name] = "saved" + (f" (no {', '.join(missing)})" if missing else "")
        per_layer = histograms.setdefault(label_of[id(run.metrics)], {})
        for layer, kernel in kernels.items():
            counts = magnitude_counts(kernel)
            per_layer[layer] = [a + b for a, b in zip(per_layer.get(layer, [0] * len(counts)), counts)]
    return histograms, notes


# --------------------------------------------------------------------------- helpers


def _name(run: SavedRun) -> str:
    return run.metrics.get("run") or run.folder.name


def _completed(run: SavedRun) -> bool:
    return run.metrics.get("status") == "completed" and run.metrics.get("test_accuracy") is not None


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
    order = {stats.BETTER: 0, stats.NO_DIFFERENCE: 1, stats.WORSE: 2}
    diff = row.comparison.diff_mean if row.comparison and row.comparison.diff_mean is not None else 0.0
    return order.get(row.verdict, 3), -diff


def _regularized(row: stats.ConfigStats) -> str:
    return "no regularization" if row.regularizer == "none" else row.regularizer


# --------------------------------------------------------------------------- the answer


def _comparison_sentence(row: stats.ConfigStats, base: stats.ConfigStats) -> str:
    """One config against the baseline, its verdict left out."""
    c = row.comparison
    if c.p_value is None:
        shown = f"{_pts(c.diff_mean)} points; " if c.diff_mean is not None else ""
        return f"{row.config} ({_regularized(row)}): {shown}{row.verdict.removeprefix('not tested: ')}."
    runs = f" over {row.n} seeds" if c.test == stats.PAIRED else f", n = {row.n} vs {base.n} runs"
    holm = _p(row.p_holm) if row.p_holm < 0.001 else f"= {_p(row.p_holm)}"
    return (
        f"{row.config} ({_regularized(row)}): {_pts(c.diff_mean)} points of test accuracy "
        f"(95 % CI {_pts(c.ci_low)} to {_pts(c.ci_high)}; {c.test}{runs}, Holm p {holm})."
    )


def answer_parts(
    rows: list[stats.ConfigStats], baseline: str | None, how: str
) -> tuple[str, list[tuple[stats.ConfigStats, str]], list[str]]:
    """The plain-language answer: (headline, [(config, its sentence)], notes)."""
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
    base_text = (
        f"{baseline} ({_regularized(base)}: {_num(base.accuracy_mean)}{_interval(base.accuracy_ci)}, n = {base.n})"
    )
    if not others:
        return f"Only the baseline {base_text} is here: nothing to compare.", [], []
    tested = [r for r in others if r.p_holm is not None]
    better = [r for r in others if r.verdict == stats.BETTER]
    worse = [r for r in others if r.verdict == stats.WORSE]
    if better:
        headline = (
            f"{len(better)} of {len(others)} configs beat {base_text}: "
            + ", ".join(f"{r.config} by {_pts(r.comparison.diff_mean)} points" for r in better)
            + "."
        )
    else:
        headline = f"No config detectably beats {base_text}."
    if worse:
        headline += f" {len(worse)} {'is' if len(worse) == 1 else 'are'} detectably worse."
    if tested:
        headline += (
            f" Verdicts at α = {stats.ALPHA} after Holm's correction over {len(tested)} "
            f"comparison{'s' if len(tested) != 1 else ''}."
        )
    else:
        headline += " No comparison could be tested (see each config)."
    notes = []
    if any(r.verdict == stats.NO_DIFFERENCE for r in others):
        notes.append(
            "“No detectable difference” means these runs cannot tell the two apart, not that they are "
            "equal: the interval shows which differences remain plausible."
        )
    return headline, [(r, _comparison_sentence(r, base)) for r in others], notes


def answer(rows: list[stats.ConfigStats], baseline: str | None, how: str) -> list[str]:
    """The plain-language answer as lines: the headline, one line per config compared, notes."""
    headline, items, notes = answer_parts(rows, baseline, how)
    return [headline, *(f"{_short_verdict(row.verdict)}: {sentence}" for row, sentence in items), *notes]


def _short_verdict(verdict: str) -> str:
    return "not tested" if verdict.startswith("not tested") else verdict


# --------------------------------------------------------------------------- building


def _lambda_grids(metrics: list[dict]) -> dict[str, dict[str, dict[float, list[float]]]]:
    grids: dict[str, dict[str, dict[float, list[float]]]] = {}
    for base, series in lambda_series(metrics).items():
        for label, points in series.items():
            by_lambda = grids.setdefault(base, {}).setdefault(label, {})
            for lam, m in points:
                values = by_lambda.setdefault(lam, [])
                if m.get("status") == "completed" and m.get("test_accuracy") is not None:
                    values.append(m["test_accuracy"])
    return grids


def _activations(runs: list[SavedRun], label_of: dict[int, str]) -> dict:
    found: dict[str, dict[str, dict[str, list[float]]]] = {}
    for run in runs:
        recorded = run.metrics.get("activations")
        if not _completed(run) or not isinstance(recorded, dict):
            continue
        per_layer = found.setdefault(label_of[id(run.metrics)], {})
        for layer, values in recorded.items():
            if isinstance(values, dict):
                for key in ("mean_abs", "zero_fraction"):
                    if isinstance(values.get(key), (int, float)):
                        per_layer.setdefault(layer, {}).setdefault(key, []).append(float(values[key]))
    return found


def _sparsity(runs: list[SavedRun], label_of: dict[int, str]) -> dict[str, dict[str, float]]:
    """{config: {layer and 'overall': mean near-zero fraction over its completed runs}}."""
    values: dict[str, dict[str, list[float]]] = {}
    for run in runs:
        sparsity = run.metrics.get("sparsity") or {}
        if not _completed(run) or not isinstance(sparsity, dict):
            continue
        per = values.setdefault(label_of[id(run.metrics)], {})
        for layer, fraction in (sparsity.get("layers") or {}).items():
            per.setdefault(layer, []).append(fraction)
        if sparsity.get("overall") is not None:
            per.setdefault("overall", []).append(sparsity["overall"])
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
    label_of: dict[int, str]
    weight_notes: dict[str, str]
    figures: dict[str, tuple[str | None, str]]  # id: (data URI or None, caption or why missing)
    sparsity: dict[str, dict[str, float]]


def build_report(
    root: Path, runs: list[SavedRun], skipped: list[str], baseline: str | None = None, figures: bool = True
) -> Report:
    """The report of these runs: statistics, answer, stats.csv, report.md and report.html
    (with figures unless `figures` is False). An unknown `baseline` is a RegexpError."""
    metrics = [run.metrics for run in runs]
    rows, chosen, how = stats.config_stats(metrics, baseline)
    groups = group_runs(metrics)
    label_of = {id(m): label for label, members in groups.items() for m in members}
    histograms, weight_notes = _weight_histograms(runs, label_of)
    material = _Material(
        root,
        runs,
        skipped,
        rows,
        chosen,
        how,
        answer(rows, chosen, how),
        label_of,
        weight_notes,
        {},
        _sparsity(runs, label_of),
    )
    if figures:
        material.figures = _figures(material, groups, histograms)
    report = Report(rows, chosen, how, material.answer, skipped)
    report.csv = stats.to_csv(rows)
    report.markdown = to_markdown(material)
    report.html = to_html(material)
    return report


def _figures(material: _Material, groups: dict[str, list[dict]], histograms: dict) -> dict:
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
        "no difference; colours follow the verdict after Holm's correction (green better, red worse, grey no "
        "detectable difference, hollow ochre not tested).",
        "No forest plot: "
        + ("there is no baseline to compare with." if baseline is None else "there is no other config to compare."),
    )
    grids = _lambda_grids([run.metrics for run in runs])
    base_values = []
    if baseline:
        base_values = [
            m["test_accuracy"]
            for m in groups[baseline]
            if m.get("status") == "completed" and m.get("test_accuracy") is not None
        ]
    add(
        "lambda",
        report_figures.lambda_curves(grids, (baseline, base_values) if baseline else None),
        "Test accuracy against the penalty strength λ for each λ grid: line the mean over seeds, band its 95 % "
        "t interval (none where a point has one run); grey dashed line and band: the baseline's mean and interval.",
        "No λ curves: no config here is a grid over regularizer.lambda (e.g. sweep: {regularizer.lambda: "
        "[0.001, 0.01, 0.1]}).",
    )
    ordered = {label: histograms[label] for label in config_order if label in histograms}
    threshold = next(
        (r.metrics["sparsity"].get("threshold") for r in runs if isinstance(r.metrics.get("sparsity"), dict)), None
    )
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
    no_activations = sorted(
        _name(r) for r in runs if _completed(r) and not isinstance(r.metrics.get("activations"), dict)
    )
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
        label: [r.history for r in runs if _completed(r) and label_of[id(r.metrics)] == label and r.history]
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
    statuses = collections.Counter(run.metrics.get("status", "unknown") for run in runs)
    descriptions = collections.Counter(
        (run.metrics.get("data") or {}).get("description") or "not recorded" for run in runs
    )
    epochs = sorted({run.metrics.get("epochs_planned") for run in runs if run.metrics.get("epochs_planned")})
    seeds = sorted({run.metrics.get("seed") for run in runs if run.metrics.get("seed") is not None})
    split = next(((run.metrics.get("data") or {}) for run in runs if run.metrics.get("data")), {})
    lines = [
        f"Results root: {material.root}",
        (
            f"Runs: {len(runs)} ({', '.join(f'{n} {s}' for s, n in sorted(statuses.items()))}) in {len(material.rows)} "
            f"configs; seeds {', '.join(map(str, seeds)) or 'not recorded'}; "
            f"epochs {', '.join(map(str, epochs)) or 'not recorded'}."
        ),
        "Data: "
        + "; ".join(f"{d} ({n} runs)" for d, n in descriptions.items())
        + (
            f"; {split['train']} training / {split['validation']} validation / {split['test']} test samples"
            if {"train", "validation", "test"} <= set(split)
            else ""
        )
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
        "effect size",
        "verdict",
    ]
    body = []
    for r in material.rows:
        c = r.comparison
        effect = ""
        if c and c.effect_size is not None:
            effect = f"{'dz' if c.test == stats.PAIRED else 'd'} = {c.effect_size:.2f}"
        diff = ""
        if c and c.diff_mean is not None:
            diff = _pts(c.diff_mean) + (f" [{_pts(c.ci_low)}, {_pts(c.ci_high)}]" if c.ci_low is not None else "")
        accuracy = _num(r.accuracy_mean) + (
            _interval(r.accuracy_ci) if r.accuracy_ci else (" (n = 1: no interval)" if r.n == 1 else "")
        )
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
                effect,
                r.verdict,
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
    for run in sorted(material.runs, key=_name):
        m = run.metrics
        best = m.get("best_epoch_test_accuracy")
        epochs = f"{m.get('epochs_run', '–')}/{m.get('epochs_planned', '–')}"
        status = m.get("status", "unknown") + (f": {m['error']}" if m.get("error") else "")
        body.append(
            [
                _name(run),
                material.label_of.get(id(m), "?"),
                str(m.get("seed", "–")),
                status,
                _num(m.get("test_accuracy")),
                _num(m.get("test_loss")),
                _num(best) if best is not None else "not recorded" if _completed(run) else "–",
                epochs,
                (m.get("training_path") or {}).get("precision", "not recorded"),
                f"{m['wall_time_s']:.1f} s" if isinstance(m.get("wall_time_s"), (int, float)) else "–",
                str(m.get("finished_at", "–")).replace("T", " ")[:16],  # UTC, to the minute
                material.weight_notes.get(_name(run), "–").replace(NOT_RECORDED, "not recorded"),
            ]
        )
    return header, body


def _runs_note(body: list[list[str]]) -> str:
    if any("not recorded" in cell for row in body for cell in row):
        return f"“not recorded”: {NOT_RECORDED} (made before regexp recorded it). "
    return ""


def _versions(material: _Material) -> list[str]:
    counts = collections.Counter(
        ", ".join(f"{k} {v}" for k, v in (run.metrics.get("versions") or {}).items()) or NOT_RECORDED
        for run in material.runs
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


METHOD = [
    ("A config is one configuration with its seeds together (the summary's grouping); only completed runs count (n)."),
    "Interval of a config's mean test accuracy: Student t with n − 1 degrees of freedom, 95 %; none for n = 1.",
    (
        "Difference from the baseline (config − baseline, test accuracy): when both configs ran the same set of seeds, "
        "a paired t-test on the per-seed differences (the same seed gives the same initialisation and data order), "
        "effect size dz = mean / SD of the differences; otherwise Welch's t-test with Welch–Satterthwaite degrees of "
        "freedom, effect size Cohen's d = difference of means / pooled SD."
    ),
    (
        f"The p-values of all comparisons made are corrected together with Holm's step-down method; verdict "
        f"“better” or “worse” when the corrected p < {stats.ALPHA}, else “no detectable difference”. Not tested: a "
        "side with fewer than 2 runs, or no spread at all (every difference equal), or no baseline."
    ),
    (
        "The 95 % intervals are each comparison's own, not adjusted for the number of comparisons: an interval that "
        "excludes zero can still go with “no detectable difference” after Holm's correction. An interval reaching "
        "past 0 or 1 (or past ±100 points) says the runs disagree too much for the t approximation (e.g. some seeds "
        "collapse): more seeds are needed to say anything."
    ),
    (
        "stats.csv: one row per config; `baseline` holds the baseline config's name on every row (empty when there is "
        "none); the baseline's own row has empty difference cells; `test` is “paired t-test” or “Welch t-test”; "
        "`effect_size` is dz (paired) or Cohen's d (Welch)."
    ),
]


# --------------------------------------------------------------------------- markdown


def _md_table(header: list[str], body: list[list[str]]) -> list[str]:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + [
        "| " + " | ".join(cell(c) for c in row) + " |" for row in body
    ]


def to_markdown(material: _Material) -> str:
    """report.md: the answer, the data, the tables and the method (figures: report.html)."""
    lines = ["# Regularization study: report", "", f"_{QUESTION}_", "", "## The answer", ""]
    lines += [f"- {line}" for line in material.answer]
    lines += ["", "## The question and the data", ""] + [f"- {line}" for line in _data_lines(material)]
    lines += ["", "## Results by config", ""] + _md_table(*_table(material))
    if material.sparsity:
        lines += ["", "## Near-zero weights per layer (mean over seeds)", ""] + _md_table(*_sparsity_table(material))
    lines += ["", "## What each run recorded", ""] + _md_table(*_run_table(material))
    lines += ["", _runs_note(_run_table(material)[1]) + "Versions: " + "; ".join(_versions(material)) + "."]
    if material.skipped:
        lines += ["", "## Skipped (damaged) run folders", ""] + [f"- {line}" for line in material.skipped]
    lines += ["", "## Method", ""] + [f"- {line}" for line in METHOD]
    lines += [
        "",
        ("The figures (forest plot, λ curves, weights, activations, generalization gap) are in report.html."),
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- html

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1180px; margin: 1.5em auto;
       padding: 0 1em; color: #1f2328; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #d0d7de; padding-bottom: 0.2em; }
.question { color: #57606a; font-style: italic; }
.answer { border: 2px solid #0969da; border-radius: 8px; padding: 0.6em 1.2em; background: #f6f8fa; }
.answer .headline { font-size: 1.15em; font-weight: 600; }
.answer ul { padding-left: 1.2em; } .answer li { margin: 0.25em 0; }
table { border-collapse: collapse; font-size: 0.86em; margin: 0.6em 0; }
.wide { overflow-x: auto; }
th, td { border: 1px solid #d0d7de; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
th { background: #f6f8fa; } td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.better { background: #dafbe1; color: #1a7f37; font-weight: 600; }
.worse { background: #ffebe9; color: #cf222e; font-weight: 600; }
.nodiff { background: #eaeef2; color: #57606a; }
.nottested { background: #fff8c5; color: #7d4e00; }
.baseline { background: #ddf4ff; color: #0969da; font-weight: 600; }
figure { margin: 1em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eaeef2; }
figcaption, .missing, .note { color: #57606a; font-size: 0.9em; }
.missing { font-style: italic; } .skipped { color: #cf222e; }
"""


def _verdict_class(verdict: str) -> str:
    if verdict.startswith("not tested"):
        return "nottested"
    return {
        stats.BETTER: "better",
        stats.WORSE: "worse",
        stats.NO_DIFFERENCE: "nodiff",
        stats.BASELINE: "baseline",
    }.get(verdict, "")


def _html_table(
    header: list[str], body: list[list[str]], numeric: set[int] = frozenset(), verdict_column: int | None = None
) -> str:
    out = ['<div class="wide"><table>', "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"]
    for row in body:
        cells = []
        for i, text in enumerate(row):
            cls = "num" if i in numeric else (_verdict_class(text) if i == verdict_column else "")
            cells.append(f'<td class="{cls}">{html.escape(text)}</td>' if cls else f"<td>{html.escape(text)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    return "\n".join(out + ["</table></div>"])


def _html_figure(material: _Material, key: str, alt: str) -> str:
    uri, text = material.figures.get(key, (None, "Figures were not drawn."))
    if uri is None:
        return f'<p class="missing">{html.escape(text)}</p>'
    return (
        f'<figure id="fig-{key}"><img src="{uri}" alt="{html.escape(alt)}">'
        f"<figcaption>{html.escape(text)}</figcaption></figure>"
    )


def _answer_html(material: _Material) -> str:
    headline, items, notes = answer_parts(material.rows, material.baseline, material.how)
    lines = [
        f'<li><span class="{_verdict_class(row.verdict)}">{html.escape(_short_verdict(row.verdict))}</span> '
        f"{html.escape(sentence)}</li>"
        for row, sentence in items
    ]
    lines += [f'<li class="note">{html.escape(note)}</li>' for note in notes]
    return (
        f'<div class="answer" id="answer"><p class="headline">{html.escape(headline)}</p>'
        + (f"<ul>{''.join(lines)}</ul>" if lines else "")
        + "</div>"
    )


def to_html(material: _Material) -> str:
    """report.html: one self-contained page (inline CSS and images; no script, no network)."""
    when = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    table_header, table_body = _table(material)
    runs_header, runs_body = _run_table(material)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>Regularization study: report</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>Regularization study: report</h1>",
        f'<p class="question">{html.escape(QUESTION)}</p>',
        f'<p class="note">Written by regexp report on {when} from {html.escape(str(material.root))}.</p>',
        "<h2>The answer</h2>",
        _answer_html(material),
        '<h2 id="data">The question and the data</h2><ul>'
        + "".join(f"<li>{html.escape(line)}</li>" for line in _data_lines(material))
        + "</ul>",
        '<h2 id="table">Results by config</h2>',
        _html_table(table_header, table_body, numeric={2, 3, 4, 5, 7, 8, 9}, verdict_column=10),
        (
            '<p class="note">Δ: config minus baseline, in percentage points of test accuracy. Verdicts at α = '
            f"{stats.ALPHA} on the Holm-corrected p-value; the intervals are not adjusted (see Method).</p>"
        ),
        '<h2 id="forest">Difference from the baseline</h2>',
        _html_figure(material, "forest", "forest plot"),
        '<h2 id="lambda">Test accuracy against λ</h2>',
        _html_figure(material, "lambda", "lambda curves"),
        '<h2 id="mechanism">Why: what the penalty did to the network</h2>',
        "<h3>Weights</h3>",
        _html_figure(material, "weights", "weight magnitude histograms"),
    ]
    if material.sparsity:
        sparsity = _sparsity_table(material)
        parts += [
            ('<p class="note">Fraction of near-zero weights (|w| below the threshold) per layer, mean over seeds:</p>'),
            _html_table(*sparsity, numeric=set(range(1, len(sparsity[0])))),
        ]
    parts += [
        "<h3>Activations</h3>",
        _html_figure(material, "activations", "activation magnitudes"),
        "<h3>Generalization gap</h3>",
        _html_figure(material, "gap", "generalization gap"),
        '<h2 id="runs">What each run recorded</h2>',
        _html_table(runs_header, runs_body, numeric={2, 4, 5, 6, 7, 9, 10}),
        '<p class="note">'
        + html.escape(_runs_note(runs_body) + "Versions: " + "; ".join(_versions(material)))
        + ".</p>",
    ]
    if material.skipped:
        parts += [
            '<h2 id="skipped">Skipped (damaged) run folders</h2><ul class="skipped">'
            + "".join(f"<li>{html.escape(line)}</li>" for line in material.skipped)
            + "</ul>"
        ]
    parts += [
        '<h2 id="method">Method</h2><ul>' + "".join(f"<li>{html.escape(line)}</li>" for line in METHOD) + "</ul>",
        "</body></html>",
        "",
    ]
    return "\n".join(parts)


# --------------------------------------------------------------------------- writing


def write_report(root: Path, baseline: str | None = None) -> Report:
    """Read every run under `root` and write stats.csv, report.md and report.html there.

    Damaged run folders are left out and listed (Report.skipped). A root with no run folder
    at all, or an unknown `baseline`, is a RegexpError, and nothing is written.
    """
    runs, skipped = scan_runs(root)
    if not runs and not skipped:
        raise RegexpError(f"{root}: no runs here (a run folder holds a metrics.json)")
    report = build_report(root, runs, skipped, baseline)
    for name, text in (("stats.csv", report.csv), ("report.md", report.markdown), ("report.html", report.html)):
        write_text_atomic(root / name, text)
        report.written.append(root / name)
    return report
