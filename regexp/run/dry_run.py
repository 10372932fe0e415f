"""A study's plan before spending the time: which runs would train, which are done, and how long
the training would take, estimated from comparable runs already on disk.

Nothing here trains or writes. `plan_lines(todo, done, root)` is for any command that plans
runs (`regexp sweep --dry-run`, and a tuning command's); `estimate` is the estimate alone.

Comparable runs are saved runs (any name) with the same resolved `data` and `model` sections as
the run planned, as their config.yaml records them; their time per epoch is the recorded wall
time over the epochs trained in that process (a resumed run counts only its new epochs).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

import yaml

from regexp import results
from regexp.config import RunSpec, resolved_dict


@dataclass(frozen=True)
class Estimate:
    """Training time for the runs to train, from the measured epoch times of comparable runs."""

    seconds: float  # over the runs that have comparable runs, one run after another
    estimated: int  # runs to train with comparable runs on disk
    without: list[str]  # runs to train with none
    measured: int  # comparable runs the estimate rests on


def _shape(config: dict) -> tuple:
    return config.get("data"), config.get("model")


def _saved_config(folder: Path) -> dict | None:
    """A saved run's config.yaml as data, if it is a plain file of sensible size that parses."""
    try:
        data = yaml.safe_load(results.read_plain_text(folder / results.CONFIG, results.MAX_CONFIG_BYTES))
    except (OSError, results.DamagedRun, yaml.YAMLError):
        return None
    return data if isinstance(data, dict) else None


def epoch_seconds(record: results.RunRecord) -> float | None:
    """A saved run's measured seconds per epoch: wall time / epochs trained by that process."""
    wall, epochs = record.wall_time_s, record.epochs_run
    if wall is None or epochs is None or wall <= 0:
        return None
    trained = epochs - (record.resumed_from_epoch or 0)
    return wall / trained if trained > 0 else None


def measured_epochs(root: Path) -> dict[tuple, list[float]]:
    """{(data, model) sections: seconds per epoch of each saved run with that shape} under `root`."""
    by_shape: dict[tuple, list[float]] = {}
    for run in results.scan_runs(root)[0]:
        seconds = epoch_seconds(run.record)
        saved = _saved_config(run.folder) if seconds is not None else None
        if saved is not None:
            by_shape.setdefault(repr(_shape(saved)), []).append(seconds)
    return by_shape


def estimate(todo: list[RunSpec], root: Path) -> Estimate:
    """The training time of `todo`, one run after another: each run's epochs times the median
    seconds per epoch of the comparable runs under `root`."""
    by_shape = measured_epochs(root)
    seconds, estimated, without, measured = 0.0, 0, [], set()
    for spec in todo:
        key = repr(_shape(resolved_dict(spec.config)))
        times = by_shape.get(key)
        if not times:
            without.append(spec.name)
            continue
        seconds += statistics.median(times) * spec.config.training.epochs
        estimated += 1
        measured.add(key)
    return Estimate(seconds, estimated, without, sum(len(by_shape[k]) for k in measured))


def duration(seconds: float) -> str:
    """Seconds as 45s, 3m20s or 2h05m."""
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def estimate_line(todo: list[RunSpec], root: Path) -> str:
    """The estimate in words, said as an estimate, or why there is none."""
    if not todo:
        return "nothing to train"
    found = estimate(todo, root)
    if not found.estimated:
        return "no estimate: no comparable run (same data and model) under " + str(root)
    line = (
        f"estimate: about {duration(found.seconds)} of training, one run after another, for {found.estimated} of "
        f"{len(todo)} runs (their epochs at the median time per epoch of {found.measured} comparable runs on disk; "
        "--jobs N shares the cores, so expect less than N times faster)"
    )
    if found.without:
        line += f"; no estimate for {len(found.without)} (no comparable run: {', '.join(found.without)})"
    return line


def plan_lines(todo: list[RunSpec], done: list[RunSpec], root: Path, damaged: list[str] = ()) -> list[str]:
    """What a study would do, one line each: the runs to train, those already completed, the damaged
    folders that would be set aside, and the time estimate. Reads `root`, writes nothing."""
    lines = [f"dry run: {len(todo) + len(done)} runs, {len(done)} already completed, {len(todo)} to train -> {root}"]
    lines += [f"  train: {spec.name} ({spec.source})" for spec in todo]
    lines += [f"  done:  {spec.name}" for spec in done]
    lines += [f"  damaged, would be set aside and trained again: {problem}" for problem in damaged]
    lines.append(estimate_line(todo, root))
    lines.append("nothing was trained or written")
    return lines
