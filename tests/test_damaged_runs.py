"""Damaged run folders on disk are named in one line each and left out; sweeps train them again.

A corpus of damaged run folders (`DAMAGES`) is built by `damage_corpus` beside good runs under
tmp_path; every reader (scan_runs, the summary, `plot`, `sweep`) must name each one and go on.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from regexp.results.store import (
    DamagedRun,
    SavedRun,
    history_csv,
    load_run,
    scan_runs,
    set_aside_damaged,
    write_json_atomic,
)

from conftest import rising_history


def good_run(root: Path, name: str, accuracy: float = 0.8, epochs: int = 3, status: str = "completed") -> Path:
    """A run folder with the files and fields `regexp run` writes that regexp reads back."""
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(f"name: {name}\n")
    if status != "failed":
        (folder / "history.csv").write_text(history_csv(rising_history(accuracy, epochs)))
    done = status == "completed"
    write_json_atomic(
        folder / "metrics.json",
        {
            "run": name,
            "group": name,
            "group_hash": name,
            "config_hash": f"hash-{name}",
            "seed": 0,
            "status": status,
            "test_accuracy": accuracy if done else None,
            "test_loss": 1.0 - accuracy if done else None,
            "epochs_run": epochs if status != "failed" else 0,
            "best_val_accuracy": accuracy - 0.01 if done else None,
            "best_epoch": epochs if done else None,
            "sparsity": {"overall": 0.1} if done else None,
            "regularizer": [
                {"type": "l2", "targets": ["kernel", "bias"], "lambda": 0.01, "l1": None, "l2": None, "layers": None}
            ],
            "data": {"description": "synthetic"},
            **({"error": "RuntimeError: boom"} if status == "failed" else {}),
        },
    )
    return folder


# --------------------------------------------------------------------------- the corpus of damages


def _edit_metrics(folder: Path, change) -> None:
    metrics = json.loads((folder / "metrics.json").read_text())
    change(metrics)
    (folder / "metrics.json").write_text(json.dumps(metrics))


def _edit_history(folder: Path, change) -> None:
    with open(folder / "history.csv", newline="") as f:
        lines = list(csv.reader(f))
    lines = change(lines)
    (folder / "history.csv").write_text("".join(",".join(cells) + "\n" for cells in lines))


def _set_cell(lines, row: int, column: str, value: str):
    lines[row][lines[0].index(column)] = value
    return lines


def _drop_column(lines, column: str):
    index = lines[0].index(column)
    return [cells[:index] + cells[index + 1 :] for cells in lines]


def _replace_with_file(folder: Path) -> None:
    shutil.rmtree(folder)  # a run folder holds files and its tensorboard/ folder
    folder.write_text("not a folder\n")


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


# name: (how to damage a good run folder with 3 epochs, the file named in the problem, what the line says)
DAMAGES = {
    "metrics_truncated": (lambda f: _truncate(f / "metrics.json"), "metrics.json", "not valid JSON: it ends early"),
    "metrics_garbled": (
        lambda f: (f / "metrics.json").write_text('{"run": "x", "status" "completed"}'),
        "metrics.json",
        "not valid JSON (Expecting ':' delimiter, line 1 column 23)",
    ),
    "metrics_empty": (lambda f: (f / "metrics.json").write_text(""), "metrics.json", "is empty"),
    "metrics_not_an_object": (
        lambda f: (f / "metrics.json").write_text("[1, 2]\n"),
        "metrics.json",
        "holds a JSON list, not an object",
    ),
    "metrics_missing": (lambda f: (f / "metrics.json").unlink(), "metrics.json", "missing"),
    "metrics_not_utf8": (
        lambda f: (f / "metrics.json").write_bytes(b'{"run": "\xff"}'),
        "metrics.json",
        "not UTF-8 text",
    ),
    "metrics_nan": (
        lambda f: (f / "metrics.json").write_text('{"run": "x", "status": "completed", "test_loss": NaN}'),
        "metrics.json",
        "NaN is not valid JSON",
    ),
    "metrics_status_unknown": (
        lambda f: _edit_metrics(f, lambda m: m.update(status="done")),
        "metrics.json",
        "status: 'done' is not one of completed, diverged, failed",
    ),
    "metrics_accuracy_text": (
        lambda f: _edit_metrics(f, lambda m: m.update(test_accuracy="high")),
        "metrics.json",
        "test_accuracy: 'high' is not a number",
    ),
    "metrics_run_number": (
        lambda f: _edit_metrics(f, lambda m: m.update(run=7)),
        "metrics.json",
        "run: 7 is not a run name",
    ),
    "metrics_no_status": (lambda f: _edit_metrics(f, lambda m: m.pop("status")), "metrics.json", "status: missing"),
    "metrics_no_test_accuracy": (
        lambda f: _edit_metrics(f, lambda m: m.pop("test_accuracy")),
        "metrics.json",
        "test_accuracy: missing (the run is completed)",
    ),
    "metrics_sparsity_list": (
        lambda f: _edit_metrics(f, lambda m: m.update(sparsity=[0.1])),
        "metrics.json",
        "sparsity: [0.1] is not an object with a number 'overall'",
    ),
    "metrics_regularizer_bad_lambda": (
        lambda f: _edit_metrics(f, lambda m: m["regularizer"][0].update({"lambda": "big"})),
        "metrics.json",
        "regularizer[0].lambda: expected a number, got string 'big'",
    ),
    "history_bad_row": (
        lambda f: _edit_history(f, lambda lines: _set_cell(lines, 3, "loss", "abc")),
        "history.csv",
        "row 3: 'abc' is not a number (column loss)",
    ),
    "history_empty": (lambda f: (f / "history.csv").write_text(""), "history.csv", "is empty"),
    "history_no_header": (lambda f: _edit_history(f, lambda lines: lines[1:]), "history.csv", "no header row"),
    "history_missing_column": (
        lambda f: _edit_history(f, lambda lines: _drop_column(lines, "accuracy")),
        "history.csv",
        "column 'accuracy' is missing",
    ),
    "history_extra_column": (
        lambda f: _edit_history(f, lambda lines: [c + (["lr"] if i == 0 else ["0.1"]) for i, c in enumerate(lines)]),
        "history.csv",
        "unknown column 'lr'",
    ),
    "history_missing": (lambda f: (f / "history.csv").unlink(), "history.csv", "missing (the run is completed)"),
    "history_epochs_skip": (
        lambda f: _edit_history(f, lambda lines: _set_cell(lines, 3, "epoch", "4")),
        "history.csv",
        "row 3: epoch 4, expected 3",
    ),
    "history_epoch_fraction": (
        lambda f: _edit_history(f, lambda lines: _set_cell(lines, 1, "epoch", "1.5")),
        "history.csv",
        "row 1: epoch '1.5' is not a whole number",
    ),
    "history_short_row": (
        lambda f: _edit_history(f, lambda lines: lines[:2] + [lines[2][:3]] + lines[3:]),
        "history.csv",
        "row 2: 3 values, the header has 5 columns",
    ),
    "history_no_loss_value": (
        lambda f: _edit_history(f, lambda lines: _set_cell(lines, 2, "loss", "")),
        "history.csv",
        "row 2: no value in column loss",
    ),
    "history_cut_short": (
        lambda f: _edit_history(f, lambda lines: lines[:3]),
        "history.csv",
        "2 epochs, but metrics.json says epochs_run 3",
    ),
    "history_truncated_mid_row": (lambda f: _truncate(f / "history.csv"), "history.csv", "row "),
    "run_folder_is_a_file": (_replace_with_file, "", "is a file, not a run folder"),
}


def damage_corpus(root: Path) -> dict[str, str]:
    """Good runs and one damaged run folder per entry of DAMAGES under root; returns
    {damaged run name: the problem line expected for it}."""
    expected = {}
    for name, (damage, file, says) in DAMAGES.items():
        folder = good_run(root, name)
        damage(folder)
        expected[name] = f"{folder / file if file else folder}: {says}"
    return expected


def make_good_runs(root: Path) -> list[str]:
    good_run(root, "good_a", accuracy=0.9)
    good_run(root, "good_b", accuracy=0.7)
    good_run(root, "good_failed_before_training", status="failed")
    return ["good_a", "good_b", "good_failed_before_training"]


def test_the_corpus_damages_what_it_says_it_damages(tmp_path):
    make_good_runs(tmp_path)
    for name in ("good_a", "good_b", "good_failed_before_training"):
        assert isinstance(load_run(tmp_path / name), SavedRun)
    expected = damage_corpus(tmp_path / "damaged")
    for name in expected:
        with pytest.raises(DamagedRun):
            load_run(tmp_path / "damaged" / name)


def test_scan_runs_returns_good_runs_and_names_each_damaged_folder_once(tmp_path):
    good = make_good_runs(tmp_path)
    expected = damage_corpus(tmp_path)
    runs, damaged = scan_runs(tmp_path)
    assert [run.folder.name for run in runs] == sorted(good)
    assert len(damaged) == len(expected) == len(DAMAGES)
    for name, line in expected.items():
        folder = str(tmp_path / name)
        matches = [problem for problem in damaged if problem.startswith((folder + os.sep, folder + ":"))]
        assert len(matches) == 1, (name, damaged)
        assert matches[0].startswith(line), (matches[0], line)
        assert "\n" not in matches[0]


def test_scan_runs_reads_numbers_and_leaves_a_failed_run_without_history_in(tmp_path):
    make_good_runs(tmp_path)
    runs = {run.folder.name: run for run in scan_runs(tmp_path)[0]}
    assert runs["good_a"].metrics["test_accuracy"] == 0.9
    assert [row["epoch"] for row in runs["good_a"].history] == [1, 2, 3]
    assert runs["good_a"].history[0]["loss"] == 1.0
    assert runs["good_failed_before_training"].history == []


def test_scan_runs_of_one_run_folder_reads_that_run_alone(tmp_path):
    make_good_runs(tmp_path)
    runs, damaged = scan_runs(tmp_path / "good_a")
    assert [run.folder for run in runs] == [tmp_path / "good_a"] and damaged == []
    folder = good_run(tmp_path, "broken")
    DAMAGES["history_bad_row"][0](folder)
    assert scan_runs(folder) == ([], [f"{folder / 'history.csv'}: row 3: 'abc' is not a number (column loss)"])


def test_scan_runs_leaves_hidden_folders_documents_and_folders_without_run_files_alone(tmp_path):
    make_good_runs(tmp_path)
    for name in (".inprogress", ".damaged", "notes"):
        (tmp_path / name / "x").mkdir(parents=True)
        (tmp_path / name / "x" / "metrics.json").write_text("garbled")
    for name in ("summary.csv", "summary.md", "test_accuracy.png", "report.html", "notes.txt"):
        (tmp_path / name).write_text("text")
    runs, damaged = scan_runs(tmp_path)
    assert len(runs) == 3 and damaged == []


def test_a_folder_that_cannot_be_listed_is_named(tmp_path, monkeypatch):
    make_good_runs(tmp_path)
    locked = tmp_path / "locked"
    locked.mkdir()
    real_listdir = os.listdir

    def listdir(path="."):
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied")
        return real_listdir(path)

    monkeypatch.setattr(os, "listdir", listdir)
    runs, damaged = scan_runs(tmp_path)
    assert len(runs) == 3 and damaged == [f"{locked}: cannot be read (Permission denied)"]


UNPRIVILEGED = 65534  # nobody / nogroup: root reads folders whatever their permissions, so root scans as nobody


def scan_without_privileges(root: Path) -> tuple[list[str], list[str]]:
    """scan_runs(root) in a forked child that has given up root (as root), or here (as anyone else):
    the run folders read and the damaged ones named."""
    if os.geteuid() != 0:
        runs, damaged = scan_runs(root)
        return [run.folder.name for run in runs], damaged
    for path in [root, *root.rglob("*")]:
        os.chown(path, UNPRIVILEGED, UNPRIVILEGED, follow_symlinks=False)
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # the child only scans and reports: no pytest machinery may run in it
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(UNPRIVILEGED)
            os.setuid(UNPRIVILEGED)
            runs, damaged = scan_runs(root)
            os.write(write_end, json.dumps([[run.folder.name for run in runs], damaged]).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        answer = pipe.read()
    os.waitpid(child, 0)
    names, damaged = json.loads(answer)
    return names, damaged


def test_a_folder_with_unreadable_permissions_is_named():
    root = Path(tempfile.mkdtemp(prefix="regexp-unreadable-"))  # not under tmp_path: nobody may enter it
    try:
        make_good_runs(root)
        os.chmod(root / "good_b", 0)
        names, damaged = scan_without_privileges(root)
    finally:
        os.chmod(root / "good_b", 0o755)
        shutil.rmtree(root)
    assert names == ["good_a", "good_failed_before_training"]
    assert damaged == [f"{root / 'good_b'}: cannot be read (Permission denied)"]


def test_set_aside_damaged_moves_the_folder_untouched_and_leaves_good_runs(tmp_path):
    make_good_runs(tmp_path)
    damage_corpus(tmp_path)
    assert set_aside_damaged(tmp_path, "good_a") is None and (tmp_path / "good_a" / "metrics.json").exists()
    assert set_aside_damaged(tmp_path, "not_there") is None
    before = (tmp_path / "history_bad_row" / "history.csv").read_bytes()
    aside = set_aside_damaged(tmp_path, "history_bad_row")
    assert aside.parent == tmp_path / ".damaged" and aside.name.startswith("history_bad_row-")
    assert not (tmp_path / "history_bad_row").exists()
    assert (aside / "history.csv").read_bytes() == before
    moved_file = set_aside_damaged(tmp_path, "run_folder_is_a_file")
    assert moved_file.read_text() == "not a folder\n"
    good_run(tmp_path, "history_bad_row")
    DAMAGES["history_bad_row"][0](tmp_path / "history_bad_row")
    again = set_aside_damaged(tmp_path, "history_bad_row")
    assert again != aside and again.exists() and aside.exists()


# --------------------------------------------------------------------------- plot, summary


def summary_configs(root: Path) -> list[str]:
    with open(root / "summary.csv", newline="") as f:
        return sorted(row["config"] for row in csv.DictReader(f))


def test_summary_leaves_damaged_runs_out_and_keeps_every_readable_one(tmp_path):
    from regexp.study import summary

    good = make_good_runs(tmp_path)
    damage_corpus(tmp_path)
    rows = summary.write_summary(tmp_path)
    assert sorted(row["config"] for row in rows) == summary_configs(tmp_path) == sorted(good)
    failed = next(row for row in rows if row["config"] == "good_failed_before_training")
    assert (failed["runs"], failed["completed"], failed["failed"]) == (1, 0, 1)


def test_plot_names_each_damaged_folder_draws_the_rest_and_exits_1(cli, tmp_path):
    good = make_good_runs(tmp_path)
    expected = damage_corpus(tmp_path)
    result = cli("plot", tmp_path)
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    for line in expected.values():
        assert result.output.count(f"skipped: {line}") == 1, (line, result.output)
    assert result.output.count("skipped: ") == len(DAMAGES)
    assert "wrote " in result.output
    assert summary_configs(tmp_path) == sorted(good)
    for name in ("good_a", "good_b"):
        assert (tmp_path / name / "loss.png").stat().st_size > 1000
    for figure in ("validation_accuracy.png", "validation_loss.png", "test_accuracy.png", "summary.md"):
        assert (tmp_path / figure).exists(), figure
    assert not (tmp_path / ".damaged").exists(), "plot only reads: nothing is moved"


def test_plot_of_one_damaged_run_folder_names_it_and_writes_nothing(cli, tmp_path):
    folder = good_run(tmp_path, "broken")
    DAMAGES["history_extra_column"][0](folder)
    result = cli("plot", folder)
    assert result.exit_code == 1
    assert f"skipped: {folder / 'history.csv'}: unknown column 'lr'" in result.output
    assert not (folder / "loss.png").exists()


def test_plot_of_a_file_is_a_user_error(cli, tmp_path):
    (tmp_path / "x").write_text("x")
    result = cli("plot", tmp_path / "x")
    assert result.exit_code == 2 and "no runs here" in result.output


def test_promote_moves_a_damaged_folder_aside_instead_of_deleting_it(tmp_path):
    from regexp.results.store import promote

    folder = good_run(tmp_path, "run")
    DAMAGES["metrics_truncated"][0](folder)
    before = (folder / "metrics.json").read_bytes()
    staging = good_run(tmp_path / ".inprogress", "run")
    promote(staging, folder)
    assert load_run(folder).metrics["status"] == "completed"
    (aside,) = (tmp_path / ".damaged").iterdir()
    assert (aside / "metrics.json").read_bytes() == before


# --------------------------------------------------------------------------- sweep and run train them again


def snapshot(path: Path) -> dict[str, bytes]:
    """Every file under `path` (or the file itself) with its bytes."""
    if path.is_file():
        return {"": path.read_bytes()}
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


RETRAINED = [
    "metrics_truncated",
    "metrics_empty",
    "history_bad_row",
    "history_missing_column",
    "history_cut_short",
    "run_folder_is_a_file",
]


@pytest.mark.slow
def test_sweep_trains_damaged_runs_again_keeping_the_damaged_copies_byte_for_byte(cli, tmp_path):
    from conftest import TINY, merge, write_config

    configs, root = tmp_path / "configs", tmp_path / "results"
    tiny = merge(TINY, {"model": {"num_classes": 5}, "training": {"epochs": 3, "batch_size": 50}})
    for name in [*RETRAINED, "untouched"]:
        write_config(configs, name, tiny)
    first = cli("sweep", configs, "--results", root)
    assert first.exit_code == 0, first.output

    expected, kept = {}, {}
    for name in RETRAINED:
        damage, file, says = DAMAGES[name]
        damage(root / name)
        expected[name] = f"{root / name / file if file else root / name}: {says}"
        kept[name] = snapshot(root / name)
    stray = good_run(root, "stray_from_elsewhere")
    DAMAGES["history_bad_row"][0](stray)
    stray_bytes = snapshot(stray)
    untouched_stamp = (root / "untouched" / "metrics.json").stat().st_mtime_ns

    second = cli("sweep", configs, "--results", root)
    assert second.exit_code == 1, second.output
    assert isinstance(second.exception, SystemExit) and "Traceback" not in second.output
    assert f"{len(RETRAINED) + 1} runs: 1 already completed, {len(RETRAINED)} to run" in second.output
    for name, line in expected.items():
        assert second.output.count(f"damaged: {line}") == 1, (line, second.output)
        assert load_run(root / name).metrics["status"] == "completed"
        (aside,) = (root / ".damaged").glob(f"{name}-*")
        assert f"moved the damaged folder {root / name} to {aside}" in second.output
        assert snapshot(aside) == kept[name], name
    assert second.output.count(f"skipped: {stray / 'history.csv'}: row 3: 'abc' is not a number") == 1
    assert snapshot(stray) == stray_bytes, "a damaged folder that is not part of the sweep is left as it is"
    assert (root / "untouched" / "metrics.json").stat().st_mtime_ns == untouched_stamp
    assert summary_configs(root) == sorted([*RETRAINED, "untouched"])

    third = cli("sweep", configs, "--results", root)
    assert f"{len(RETRAINED) + 1} already completed, 0 to run" in third.output
    assert third.exit_code == 1 and "skipped: " in third.output and "damaged: " not in third.output


@pytest.mark.slow
def test_run_on_a_damaged_completed_folder_moves_it_aside_and_trains_again(cli, tmp_path):
    from conftest import TINY, write_config

    config, root = write_config(tmp_path / "configs", "tiny", TINY), tmp_path / "results"
    assert cli("run", config, "--results", root).exit_code == 0
    DAMAGES["metrics_garbled"][0](root / "tiny")
    kept = snapshot(root / "tiny")
    result = cli("run", config, "--results", root)
    assert result.exit_code == 0, result.output
    assert f"damaged: {root / 'tiny' / 'metrics.json'}: not valid JSON" in result.output
    (aside,) = (root / ".damaged").iterdir()
    assert snapshot(aside) == kept
    assert load_run(root / "tiny").metrics["status"] == "completed"


def test_a_damaged_folder_that_cannot_be_moved_fails_that_run_in_one_line(cli, tmp_path, monkeypatch):
    from conftest import TINY, write_config

    config, root = write_config(tmp_path / "configs", "tiny", TINY), tmp_path / "results"
    folder = good_run(root, "tiny")
    DAMAGES["history_empty"][0](folder)
    kept = snapshot(folder)
    real_rename = os.rename

    def rename(source, target):
        if Path(source) == folder:
            raise PermissionError(13, "Permission denied")
        return real_rename(source, target)

    monkeypatch.setattr(os, "rename", rename)
    result = cli("run", config, "--results", root)
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert f"error: {folder}: damaged, and it cannot be moved aside (Permission denied)" in result.output
    assert snapshot(folder) == kept and not (root / ".inprogress" / "tiny").exists()


def test_a_run_folder_renamed_away_while_it_is_read_is_absent_not_damaged(tmp_path, monkeypatch):
    folder = good_run(tmp_path, "promoted_over")
    listed = os.listdir(folder)
    real_listdir = os.listdir
    monkeypatch.setattr(os, "listdir", lambda path=".": listed if Path(path) == folder else real_listdir(path))
    for name in listed:
        (folder / name).unlink()
    assert load_run(folder) is None


def test_a_metrics_link_to_nothing_is_damaged(tmp_path):
    folder = good_run(tmp_path, "linked")
    (folder / "metrics.json").unlink()
    (folder / "metrics.json").symlink_to(tmp_path / "nowhere.json")
    assert scan_runs(tmp_path) == ([], [f"{folder / 'metrics.json'}: cannot be read (a link to nothing)"])
