"""The report of a tuned results root (`regexp tune`, and `regexp report` on such a root):
tuning.md, tuning.html and tuning.png.

Read from the run folders alone (every run of a tune records `tuning` in its metrics.json:
role, study, trial, params, space), never from tune.db, so it needs neither Optuna nor
TensorFlow, and a damaged run folder is named and left out as everywhere else.

- Per study, a table of its trials: the values tried, the best validation accuracy, the epochs
  trained and how the trial ended (pruned, failed and diverged trials apart).
- One figure sheet: a row per study, a column per searched field, validation accuracy against
  the value (log axis for a log range), the chosen trial marked: the regularizers' best values
  side by side (the tuning playbook's isolation plot).
- A warning for each chosen value in the outer tenth of its range (on the log scale for a log range).
- The confirmation: each study's chosen values over fresh seeds compared with the baseline's
  (regexp.study.stats: paired by seed, Holm), and the answer in words with the chosen values.

tuning.md and tuning.html render one model of these sections (`tuning_model`) through
templates/tuning.md.j2 and tuning.html.j2 (regexp.study.pages: escaped as report.md/html are),
with a line linking back to report.md/html where they are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402

from regexp.results import RunRecord, RunStatus, scan_runs, write_bytes_atomic, write_text_atomic  # noqa: E402
from regexp.study import pages, stats  # noqa: E402
from regexp.study.configs import records_of  # noqa: E402
from regexp.study.figure_style import log_scale  # noqa: E402
from regexp.study.pages import TUNING_FIGURE, TUNING_HTML, TUNING_MD  # noqa: E402

TRIAL, CONFIRMATION = "trial", "confirmation"
EDGE = 0.1  # a chosen value this close to an end of its range (as a fraction of the range) is at its edge


def tuning_of(record: RunRecord) -> dict | None:
    """A run's `tuning` as written, or None for a run not made by `regexp tune`. A plain dict:
    beside the record's checked role, study and trial it holds what regexp tune adds (params,
    space, chosen_trial), which the record keeps unchecked."""
    return record.tuning.model_dump() if record.tuning is not None else None


def is_trial(record: RunRecord) -> bool:
    """True for a tuning trial's run (the ordinary report leaves these out: they were chosen on validation)."""
    return record.tuning is not None and record.tuning.role == TRIAL


@dataclass
class Study:
    """One config's search as its runs recorded it."""

    name: str
    space: dict = field(default_factory=dict)
    trials: list[RunRecord] = field(default_factory=list)
    confirmations: list[RunRecord] = field(default_factory=list)

    @property
    def chosen(self) -> RunRecord | None:
        """The trial the confirmation runs re-ran, else the completed trial of best validation accuracy."""
        numbers = {tuning_of(m).get("chosen_trial") for m in self.confirmations}
        for m in self.trials:
            if tuning_of(m).get("trial") in numbers:
                return m
        done = [m for m in self.trials if m.status is RunStatus.COMPLETED and m.best_val_accuracy is not None]
        return max(done, key=lambda m: m.best_val_accuracy, default=None)


def is_tuned(runs: list[RunRecord]) -> bool:
    """True for runs of which any was made by `regexp tune`: their root gets tuning.md/html."""
    return any(m.tuning is not None for m in runs)


def collect(runs: list[RunRecord]) -> dict[str, Study]:
    """The runs of `regexp tune` by study, trials in trial order."""
    studies: dict[str, Study] = {}
    for m in runs:
        record = tuning_of(m)
        if record is None:
            continue
        study = studies.setdefault(record["study"], Study(record["study"]))
        if isinstance(record.get("space"), dict):
            study.space = record["space"]
        (study.trials if record["role"] == TRIAL else study.confirmations).append(m)
    for study in studies.values():
        study.trials.sort(key=lambda m: tuning_of(m).get("trial") or 0)
    return dict(sorted(studies.items()))


def position_in_range(value: float, entry: dict) -> float | None:
    """Where `value` lies in a {low, high, log} range, from 0 (low) to 1 (high); None for choices."""
    if "low" not in entry or "high" not in entry:
        return None
    low, high = float(entry["low"]), float(entry["high"])
    if entry.get("log"):
        return (math.log(value) - math.log(low)) / (math.log(high) - math.log(low))
    return (value - low) / (high - low)


def edge_warnings(study: Study) -> list[str]:
    """A sentence for each chosen value in the outer tenth of its range."""
    chosen = study.chosen
    if chosen is None:
        return []
    lines = []
    for key, value in (tuning_of(chosen).get("params") or {}).items():
        entry = study.space.get(key) or {}
        where = position_in_range(value, entry) if isinstance(value, (int, float)) else None
        if where is not None and (where < EDGE or where > 1 - EDGE):
            end = "low" if where < EDGE else "high"
            lines.append(
                f"the best {key} for {study.name} ({show(value)}) is at the {end} edge of its range "
                f"[{show(entry['low'])}, {show(entry['high'])}]: widen it"
            )
    return lines


def show(value) -> str:
    """A searched value as a person reads it: 3.2e-05, 0.001, 64."""
    if isinstance(value, float):
        return f"{value:.2g}" if abs(value) < 1e-3 or abs(value) >= 1e4 else f"{value:.3g}"
    return str(value)


def values_text(params: dict) -> str:
    return ", ".join(f"{key} = {show(value)}" for key, value in params.items()) or "its own values"


# --------------------------------------------------------------------------- the confirmation


@dataclass
class TuningReport:
    """What write_tuning found and wrote: the studies, the confirmation statistics, the answer."""

    studies: dict[str, Study]
    rows: list[stats.ConfigStats]
    baseline: str | None
    how: str
    answer: list[str]
    warnings: list[str]
    skipped: list[str] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)


def confirmation_answer(studies: dict[str, Study], rows: list[stats.ConfigStats], baseline: str | None) -> list[str]:
    """The answer in words: each config at its chosen values against the baseline at its own."""
    if not rows:
        return ["No confirmation runs completed yet: nothing is compared."]
    if baseline is None:
        return ["No baseline among the tuned configs (exactly one must have no regularization): nothing is compared."]
    by_name = {row.config: row for row in rows}
    base = by_name[baseline]

    def at_best(name: str) -> str:
        study = studies.get(name)
        chosen = study.chosen if study else None
        params = (tuning_of(chosen) or {}).get("params") or {} if chosen else {}
        trials = _trials(study) if study else "not tuned"
        return f"at its best {values_text(params)} ({trials})"

    base_reach = f"{_mean(base)}{_interval(base.accuracy_ci)}"
    lines = [f"The baseline {baseline}, {at_best(baseline)}, reaches {base_reach} over {base.n} fresh seeds."]
    for row in rows:
        if row.config == baseline:
            continue
        c = row.comparison
        reach = f"{_mean(row)}{_interval(row.accuracy_ci)}"
        head = f"{row.config}, {at_best(row.config)}, reaches {reach}"
        base_part = f"against {baseline} at its best ({_mean(base)})"
        if c is None or c.diff_mean is None:
            lines.append(f"{head}; {base_part}; {row.verdict}.")
            continue
        diff = f"{100 * c.diff_mean:+.1f} points"
        if c.ci_low is not None:
            diff += f" [{100 * c.ci_low:+.1f}, {100 * c.ci_high:+.1f}]"
        lines.append(f"{head}; {base_part}: {diff}, {row.verdict}.")
    return lines


def _trials(study: Study) -> str:
    return f"{len(study.trials)} trial{'s' * (len(study.trials) != 1)}"


def _mean(row: stats.ConfigStats) -> str:
    return "–" if row.accuracy_mean is None else f"{row.accuracy_mean:.4f}"


def _interval(ci) -> str:
    return "" if ci is None else f" [{ci[0]:.4f}, {ci[1]:.4f}]"


def build(root: Path) -> TuningReport | None:
    """The tuning report of `root`, or None if no run there was made by `regexp tune`."""
    runs, skipped = scan_runs(root)
    studies = collect(records_of(runs))
    if not studies:
        return None
    confirmations = [m for study in studies.values() for m in study.confirmations]
    rows, baseline, how = stats.config_stats(confirmations) if confirmations else ([], None, "")
    warnings = [line for study in studies.values() for line in edge_warnings(study)]
    return TuningReport(studies, rows, baseline, how, confirmation_answer(studies, rows, baseline), warnings, skipped)


# --------------------------------------------------------------------------- tables and figure


def trial_table(study: Study) -> tuple[list[str], list[list[str]]]:
    """The study's trials: number, each searched value, best validation accuracy, epochs, how it ended."""
    keys = list(study.space)
    chosen = study.chosen
    header = ["trial", *keys, "best val accuracy", "epochs", "ended"]
    body = []
    for m in study.trials:
        params = tuning_of(m).get("params") or {}
        best = m.best_val_accuracy
        ended = m.status.value + (" (chosen)" if m is chosen else "")
        epochs = "/".join("–" if epochs is None else str(epochs) for epochs in (m.epochs_run, m.epochs_planned))
        body.append(
            [
                str(tuning_of(m).get("trial")),
                *[show(params[k]) if k in params else "–" for k in keys],
                "–" if best is None else f"{best:.4f}",
                epochs,
                ended,
            ]
        )
    return header, body


def figure(studies: dict[str, Study]) -> Figure | None:
    """Validation accuracy against each searched value: a row per study, a column per field."""
    seen = [key for study in studies.values() for key in study.space]
    # Fields every study searches (the learning rate) first: their column has a plot in every row.
    keys = sorted(dict.fromkeys(seen), key=lambda key: -seen.count(key))
    if not keys or not any(study.trials for study in studies.values()):
        return None
    fig = Figure(figsize=(4 * len(keys) + 1, 2.6 * len(studies) + 0.6), dpi=100, layout="constrained")
    axes = fig.subplots(len(studies), len(keys), squeeze=False, sharey=True)
    for row, study in enumerate(studies.values()):
        chosen = study.chosen
        for col, key in enumerate(keys):
            ax = axes[row][col]
            entry = study.space.get(key)
            if entry is None:
                ax.set_axis_off()
                continue
            for m in study.trials:
                value = (tuning_of(m).get("params") or {}).get(key)
                accuracy = m.best_val_accuracy
                if value is None or accuracy is None or isinstance(value, str):
                    continue
                done = m.status is RunStatus.COMPLETED
                ax.scatter(
                    [value], [accuracy], s=28, color="#0969da" if done else "none", edgecolors="#0969da", linewidths=1
                )
                if m is chosen:
                    ax.scatter([value], [accuracy], s=160, marker="*", color="#cf222e", zorder=3)
            if entry.get("log"):
                log_scale(ax)
            if "low" in entry:
                ax.set_xlim(float(entry["low"]), float(entry["high"]))
            ax.set_title(f"{study.name}: {key}", fontsize=9)
            ax.grid(alpha=0.3)
            if col == 0:
                ax.set_ylabel("best val accuracy")
            ax.tick_params(labelleft=True)
    fig.suptitle(
        "Tuning: each trial's best validation accuracy (hollow: pruned), the chosen trial starred", fontsize=10
    )
    return fig


def confirmation_table(report: TuningReport) -> tuple[list[str], list[list[str]]]:
    """Each confirmed config over its fresh seeds: test accuracy, difference from the baseline, Holm p, verdict."""
    header = ["config", "seeds", "test accuracy [95 % CI]", "vs baseline (points)", "Holm p", "verdict"]
    body = []
    for row in report.rows:
        c = row.comparison
        mean = "–" if row.accuracy_mean is None else f"{row.accuracy_mean:.4f}{_interval(row.accuracy_ci)}"
        diff = "–" if c is None or c.diff_mean is None else f"{100 * c.diff_mean:+.1f}"
        if c is not None and c.ci_low is not None:
            diff += f" [{100 * c.ci_low:+.1f}, {100 * c.ci_high:+.1f}]"
        holm = "–" if row.p_holm is None else f"{row.p_holm:.3f}"
        body.append([row.config, str(row.n), mean, diff, holm, row.verdict])
    return header, body


TITLE = "Tuning"
# Each section's title, once: both templates take them from here.
TITLES = {
    "answer": "Answer",
    "widen": "Ranges to widen",
    "confirmation": "Confirmation (fresh seeds, test accuracy)",
    "skipped": "Left out (damaged run folders)",
}
FIGURE_ALT = "validation accuracy against each searched value"
REPORT_LINK = "The report: each config at its chosen values against the baseline, with its figures and method"
CONFIRMATION_NUMERIC = frozenset({"seeds", "test accuracy [95 % CI]", "vs baseline (points)", "Holm p"})
TRIAL_NUMERIC = {"trial", "best val accuracy", "epochs"}


def trial_numeric(study: Study) -> frozenset[str]:
    """The trial table's numeric columns: its counts and accuracy, and each field searched over a range."""
    ranges = {key for key, entry in study.space.items() if isinstance(entry, dict) and "low" in entry}
    return frozenset(TRIAL_NUMERIC | ranges)


def tuning_model(report: TuningReport, has_figure: bool, report_link: pages.Link | None = None) -> dict:
    """Everything both templates show, as plain text and Tables (nothing escaped yet: the templates do it)."""
    return {
        "title": TITLE,
        "titles": TITLES,
        "report_link": report_link,
        "answer": report.answer,
        "warnings": report.warnings,
        "baseline_line": f"Baseline: {report.baseline} ({report.how}).",
        "confirmation": (
            pages.Table(*confirmation_table(report), CONFIRMATION_NUMERIC, "verdict") if report.rows else None
        ),
        "figure": {"src": pages.TUNING_FIGURE, "alt": FIGURE_ALT} if has_figure else None,
        "studies": [
            {
                "title": f"{study.name}: {_trials(study)}",
                "trials": pages.Table(*trial_table(study), trial_numeric(study)),
            }
            for study in report.studies.values()
        ],
        "skipped": report.skipped,
    }


def report_link(root: Path) -> pages.Link | None:
    """The link back to the root's report, in each format whose file is there (None: neither is)."""
    md, html = ((name if (root / name).is_file() else None) for name in (pages.REPORT_MD, pages.REPORT_HTML))
    return pages.Link(REPORT_LINK, md, html) if md or html else None


def to_markdown(report: TuningReport, has_figure: bool, link: pages.Link | None = None) -> str:
    """tuning.md from templates/tuning.md.j2, every value escaped as Markdown text."""
    return pages.markdown("tuning.md.j2", tuning_model(report, has_figure, link))


def to_html(report: TuningReport, has_figure: bool, link: pages.Link | None = None) -> str:
    """tuning.html from templates/tuning.html.j2 with autoescape on; the figure is tuning.png beside it."""
    return pages.html("tuning.html.j2", tuning_model(report, has_figure, link))


def write_tuning(root: Path) -> TuningReport | None:
    """Write tuning.md, tuning.html and tuning.png at `root` if any run there was made by
    `regexp tune`; returns what was written (None: not a tuned root, nothing written)."""
    import io

    report = build(root)
    if report is None:
        return None
    fig = figure(report.studies)
    if fig is not None:
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        write_bytes_atomic(root / TUNING_FIGURE, buffer.getvalue())
        report.written.append(root / TUNING_FIGURE)
    link = report_link(root)
    texts = {TUNING_MD: to_markdown(report, fig is not None, link), TUNING_HTML: to_html(report, fig is not None, link)}
    for name, text in texts.items():
        write_text_atomic(root / name, text)
        report.written.append(root / name)
    return report
