"""The configs of a study: runs grouped by config (the seeds of one config together), and one
table of per-config numbers from which summary.csv, stats.csv, the report and the figures are
computed.

A config is a group of runs with the same name as its user gave it (the config's name or grid
point, seed left out) and the same `group_hash` (the resolved config without its seed), so the
seeds of one config are together wherever they ran. The study stage reads runs as RunRecords,
each named by its run folder (`records_of`).
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

from regexp.results import RunRecord, RunStatus, SavedRun


def records_of(runs: Iterable[SavedRun]) -> list[RunRecord]:
    """The record of each saved run, named by its folder: the name checked to be a run folder
    under the root (a copied or renamed folder's metrics.json may still name the original)."""
    return [
        run.record if run.record.run == run.folder.name else run.record.model_copy(update={"run": run.folder.name})
        for run in runs
    ]


def _short(strength) -> str:
    """A strength in three significant digits (a tuned one has seventeen): 0.01, 0.000957, 2.12e-07."""
    return f"{strength:.3g}" if isinstance(strength, float) else str(strength)


def describe_regularizer(entries: list[dict]) -> str:
    """A compact text of what a config regularized, e.g. 'l2 0.01 on kernel+bias of conv' (strengths
    in three significant digits).

    `entries` are the record's `regularizer`: the config's penalty entries as resolved (config
    keys, not metrics keys)."""
    parts = []
    for e in entries:
        if e.get("type", "none") == "none":
            continue
        strength = (
            f"l1 {_short(e['l1'])} + l2 {_short(e['l2'])}"
            if e["type"] == "elasticnet"
            else f"{e['type']} {_short(e['lambda'])}"
        )
        where = " of " + "+".join(e["layers"]) if e.get("layers") else ""
        parts.append(f"{strength} on {'+'.join(e['targets'])}{where}")
    return "; ".join(parts) or "none"


def group_runs(records: Iterable[RunRecord]) -> dict[str, list[RunRecord]]:
    """{label: records}: the seeds of one config together (by run name), labels unique.

    Two configs that only share a name get their group hash appended to tell them apart.
    """
    groups: dict[tuple[str, str], list[RunRecord]] = {}
    for record in sorted(records, key=lambda record: record.run):
        label = record.group or record.run
        groups.setdefault((label, record.group_hash or record.run), []).append(record)
    labels = [label for label, _ in groups]
    short = [f"{label} [{key[:6]}]" for label, key in groups]
    return {
        (label if labels.count(label) == 1 else shown if short.count(shown) == 1 else f"{label} [{key}]"): members
        for ((label, key), members), shown in zip(groups.items(), short)
    }


@dataclass(frozen=True)
class ConfigRuns:
    """One config's runs and the numbers every view of it (summary, statistics, figures) reads."""

    label: str
    members: list[RunRecord]  # every run of the config, whatever its status, by run name

    @cached_property
    def completed(self) -> list[RunRecord]:
        return [m for m in self.members if m.status is RunStatus.COMPLETED]

    @cached_property
    def evaluated(self) -> list[RunRecord]:
        """The completed runs with a test accuracy (RunRecord.is_evaluated): the n of the statistics."""
        return [m for m in self.members if m.is_evaluated]

    def count(self, status: RunStatus) -> int:
        """How many of the config's runs ended with `status`."""
        return self._statuses[status]

    @cached_property
    def _statuses(self) -> collections.Counter:
        return collections.Counter(m.status for m in self.members)

    @cached_property
    def accuracies(self) -> list[float]:
        """The test accuracy of each evaluated run."""
        return [m.test_accuracy for m in self.evaluated]

    @cached_property
    def losses(self) -> list[float]:
        """The test loss of each evaluated run that recorded one."""
        return [m.test_loss for m in self.evaluated if m.test_loss is not None]

    @cached_property
    def seeds(self) -> list:
        """The seed of each evaluated run (None where not recorded)."""
        return [m.seed for m in self.evaluated]

    @cached_property
    def accuracy_by_seed(self) -> dict | None:
        """{seed: test accuracy} of the evaluated runs; None where a seed is unknown or repeated."""
        if None in self.seeds or len(set(self.seeds)) != len(self.seeds):
            return None
        return {m.seed: m.test_accuracy for m in self.evaluated}

    @cached_property
    def regularizer(self) -> str:
        """What the config regularized, as describe_regularizer says it."""
        return describe_regularizer(self.members[0].regularizer or [])

    @cached_property
    def data_description(self) -> str:
        data = self.members[0].data
        return (data.description if data is not None else None) or ""

    @cached_property
    def chance(self) -> float | None:
        """Chance accuracy of the config's data: 1 / the classes first recorded (None if none is)."""
        for m in self.members:
            classes = m.data.num_classes if m.data is not None else None
            if classes:
                return 1 / classes
        return None


def config_table(records: Iterable[RunRecord]) -> dict[str, ConfigRuns]:
    """{label: ConfigRuns} of `records`, in group_runs' order."""
    return {label: ConfigRuns(label, members) for label, members in group_runs(records).items()}
