"""`regexp export`: one row per saved run, for pandas, spreadsheets or a database.

Columns, in this order:

- `run` (the run folder's name) and `status`;
- `config.<section>.<field>`: the run's resolved config.yaml, flattened to dotted names; a
  list-form regularizer gets indexed columns (`config.regularizer.0.type`,
  `config.regularizer.1.lambda`, ...), a list of plain values (targets, layers) is one
  comma-separated value;
- every field of metrics.json under its own dotted name (`test_accuracy`,
  `sparsity.layers.conv1`, `versions.tensorflow`, `wall_time_s`, ...), lists of entries
  indexed as above (`regularizer.0.type`).

A column a run does not have is empty (CSV) or null (JSON). No TensorFlow is imported.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import yaml

from regexp import results
from regexp.results import flatten
from regexp.study.escape import csv_cell

FORMATS = ("csv", "json")


def run_row(run: results.SavedRun) -> tuple[dict | None, str | None]:
    """One run's flat row, or (None, '<file>: why it cannot be read').

    config.yaml is read as a plain file only (never through a link, at most
    results.MAX_CONFIG_BYTES); the `config.*` columns come from it alone, never from metrics.json.
    """
    folder, metrics = run.folder, run.metrics
    path = folder / results.CONFIG
    try:
        config = yaml.safe_load(results.read_plain_text(path, results.MAX_CONFIG_BYTES))
    except results.DamagedRun as exc:
        return None, str(exc)
    except (yaml.YAMLError, RecursionError) as exc:
        return None, f"{path}: not YAML ({' '.join(str(exc).split()) if isinstance(exc, yaml.YAMLError) else exc})"
    if not isinstance(config, dict):
        return None, f"{path}: not a config mapping"
    row = {"run": folder.name, "status": run.record.status.value}  # metrics.json's `run` is the folder's name
    row.update(flatten(config, "config"))
    # Every field of metrics.json as written, those the record does not name included: the plain dict.
    row.update({key: value for key, value in flatten(metrics).items() if key not in row and not _config_key(key)})
    return {key: _cell(value) for key, value in row.items()}, None


def _config_key(key: str) -> bool:
    """Whether a metrics column would take the name of a config column (they come from config.yaml alone)."""
    return key == "config" or key.startswith("config.")


def _cell(value):
    """A value as export writes it: text that cannot be encoded (a lone surrogate) with the bad
    characters escaped, a non-finite number as null (metrics.json keys regexp does not check)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def collect_rows(root: Path) -> tuple[list[dict], list[str]]:
    """The rows of every run under `root` (or of `root` itself if it is a run folder), sorted by
    run name, and one line ('<file>: <what is wrong>') for each run folder left out because it
    is damaged (see `results.scan_runs`) or its config.yaml cannot be read."""
    runs, problems = results.scan_runs(root)
    rows = []
    for run in runs:
        row, problem = run_row(run)
        if row is None:
            problems.append(problem)
        else:
            rows.append(row)
    return rows, problems


def columns(rows: list[dict]) -> list[str]:
    """Every column of `rows`, in first-seen order: run, status, config.*, then the metrics."""
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    names = list(seen)
    return (
        [n for n in names if not n.startswith("config.") and n in ("run", "status")]
        + [n for n in names if n.startswith("config.")]
        + [n for n in names if not n.startswith("config.") and n not in ("run", "status")]
    )


def to_csv(rows: list[dict]) -> str:
    """The rows as CSV with a header, readable by `pandas.read_csv` with no options; text cells
    (and column names) that a spreadsheet would run as a formula start with `'` (escape.csv_cell)."""
    out = io.StringIO()
    names = columns(rows)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([csv_cell(name) for name in names])
    for row in rows:
        writer.writerow([csv_cell("" if row.get(name) is None else row[name]) for name in names])
    return out.getvalue()


def to_json(rows: list[dict]) -> str:
    """The rows as a JSON list of objects, every object with every column (null where missing)."""
    names = columns(rows)
    return json.dumps([{name: row.get(name) for name in names} for row in rows], indent=1) + "\n"


def export_text(rows: list[dict], format: str) -> str:
    """The rows in `format` (csv or json)."""
    return to_json(rows) if format == "json" else to_csv(rows)
