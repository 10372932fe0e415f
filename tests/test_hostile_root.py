"""A results root that cannot be turned against its user (issue 18), case by case.

Each test plants what a hostile results root may hold (links, FIFOs, huge or odd values) with
real files under tmp_path, beside a folder `outside` that stands for the user's own files:
whatever regexp does with the root, `outside` keeps its bytes and modification times.
"""

from __future__ import annotations

import json
import os
import signal
import stat
from pathlib import Path

import numpy as np
import pytest

from regexp import results
from regexp.errors import ResultsError
from regexp.results import history_csv, locks, scan_runs, write_bytes_atomic, write_json_atomic
from regexp.results.record import RecordError, RunRecord, RunStatus, parse_record

from conftest import TINY_SET, rising_history, write_config

NONE_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "none.yaml"


def snapshot(folder: Path) -> dict[str, tuple[bytes | None, int]]:
    """Every entry under `folder` (links not followed): its bytes (None for a folder) and mtime."""
    out = {}
    for path in sorted(folder.rglob("*")):
        info = path.lstat()
        out[str(path.relative_to(folder))] = (
            path.read_bytes() if stat.S_ISREG(info.st_mode) else None,
            info.st_mtime_ns,
        )
    return out


@pytest.fixture
def outside(tmp_path):
    """A folder of the user's own files beside the results root, with a `victim.txt`."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "victim.txt").write_text("the user's own words\n")
    (folder / "sub").mkdir()
    (folder / "sub" / "keep.txt").write_text("keep me\n")
    return folder


def saved_run(root: Path, name: str, accuracy: float = 0.8, seed: int = 0, **fields) -> Path:
    """A completed run folder as `regexp run` leaves it, its record built through RunRecord."""
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(f"name: {name}\n")
    (folder / "history.csv").write_text(history_csv(rising_history(accuracy, 3)))
    record = RunRecord(
        run=name,
        status=RunStatus.COMPLETED,
        group=fields.pop("group", name),
        config_hash=fields.pop("config_hash", f"hash-{name}"),
        group_hash=fields.pop("group_hash", name),
        seed=seed,
        test_accuracy=accuracy,
        test_loss=1 - accuracy,
        epochs_run=3,
        best_epoch=3,
        best_val_accuracy=accuracy,
        sparsity={"overall": 0.1, "threshold": 0.001, "layers": {"conv1": 0.1}},
        regularizer=fields.pop("regularizer", [{"type": "none"}]),
        data={"description": "synthetic"},
    )
    data = record.model_dump(mode="json", exclude_none=True)
    data.update(fields)
    write_json_atomic(folder / "metrics.json", data)
    return folder


def l2(lam: float) -> dict:
    """An l2 penalty as a run records it (the resolved form)."""
    return {"type": "l2", "targets": ["kernel", "bias"], "lambda": lam, "l1": None, "l2": None, "layers": None}


def with_alarm(seconds: int, work):
    """`work()`, failing the test (instead of hanging the suite) if it takes more than `seconds`."""

    def hung(*_):
        raise AssertionError(f"still reading after {seconds} s: it blocked")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        return work()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# --------------------------------------------------------------------------- writes outside the root


def test_a_lock_file_that_is_a_link_is_refused_and_its_target_untouched(tmp_path, outside):
    root = tmp_path / "r"
    (root / ".locks").mkdir(parents=True)
    (root / ".locks" / "none.lock").symlink_to(outside / "victim.txt")
    before = snapshot(outside)
    with pytest.raises(ResultsError, match=r"none\.lock: is a symbolic link"):
        locks.RunLock(root, "none").acquire()
    assert snapshot(outside) == before


@pytest.mark.parametrize("hidden", [".locks", ".inprogress", ".damaged"])
def test_a_hidden_folder_that_is_a_link_is_refused(tmp_path, outside, hidden):
    root = tmp_path / "r"
    root.mkdir()
    (root / hidden).symlink_to(outside)
    saved_run(root, "x")
    (root / "x" / "metrics.json").write_text("{")  # damaged: it would be set aside into .damaged
    before = snapshot(outside)
    with pytest.raises(ResultsError, match=rf"{hidden}: is a symbolic link"):
        if hidden == ".locks":
            locks.RunLock(root, "x").acquire()
        elif hidden == ".inprogress":
            results.make_folder(root, results.STAGING, "x")
        else:
            results.set_aside_damaged(root, "x")
    assert snapshot(outside) == before
    assert (root / "x" / "metrics.json").read_text() == "{", "the damaged run is left where it was"


def test_a_locks_entry_that_is_a_file_is_one_line_not_a_traceback(cli, tmp_path):
    root = tmp_path / "r"
    root.mkdir()
    (root / ".locks").write_text("not a folder")
    result = cli("run", NONE_CONFIG, "--results", root, *TINY_SET)
    assert result.exit_code == 2, result.output
    assert result.output.strip() == f"error: {root / '.locks'}: is a file, where regexp keeps a folder (left alone)"


def test_the_staging_folder_of_a_run_that_is_a_link_is_never_cleared(tmp_path, outside):
    from regexp.run.runner import _prepare_staging

    root = tmp_path / "r"
    (root / ".inprogress").mkdir(parents=True)
    (root / ".inprogress" / "x").symlink_to(outside)
    before = snapshot(outside)
    with pytest.raises(ResultsError, match="is a symbolic link"):
        _prepare_staging(root, "x", "name: x\n")
    assert snapshot(outside) == before


def test_names_read_from_metrics_never_build_paths(tmp_path, outside):
    from regexp.study.plots import plot_results

    root = tmp_path / "r" / "deep"
    for index, lam in enumerate((0.01, 0.1)):
        saved_run(
            root,
            f"evil__lambda-{lam}",
            regularizer=[l2(lam)],
            config_hash=f"h{index}",
        )
        path = root / f"evil__lambda-{lam}" / "metrics.json"
        record = json.loads(path.read_text())
        record["run"] = f"x/../../../outside/evil__lambda-{lam}"
        path.write_text(json.dumps(record))
    before = snapshot(outside)
    report = plot_results(root)
    assert snapshot(outside) == before
    assert len(report.skipped) == 2 and all("run: 'x/../../../outside/evil__" in line for line in report.skipped)


def test_a_lambda_grid_figure_is_named_after_the_folders_not_the_records(tmp_path):
    from regexp.study.plots import plot_results

    root = tmp_path / "r"
    for index, lam in enumerate((0.01, 0.1)):
        saved_run(root, f"grid__lambda-{lam}", regularizer=[l2(lam)], config_hash=f"h{index}")
        path = root / f"grid__lambda-{lam}" / "metrics.json"
        record = json.loads(path.read_text())
        record["run"] = f"other__lambda-{lam}"  # a valid name, but not this folder's
        path.write_text(json.dumps(record))
    plot_results(root)
    assert (root / "lambda_grid.png").is_file() and not (root / "lambda_other.png").exists()


def test_a_run_folder_that_is_a_link_is_named_and_left_alone_by_plot(tmp_path, outside):
    from regexp.study.plots import plot_results

    saved_run(outside, "elsewhere")
    before = snapshot(outside)
    root = tmp_path / "r"
    saved_run(root, "here")
    (root / "linked").symlink_to(outside / "elsewhere")
    report = plot_results(root, redraw=True)
    assert snapshot(outside) == before
    assert report.skipped == [
        f"{root / 'linked'}: is a symbolic link; regexp follows no links inside a results root (left alone)"
    ]
    assert (root / "here" / "loss.png").is_file()


def test_a_root_that_is_a_link_is_followed(tmp_path):
    from regexp.study.plots import plot_results

    real = tmp_path / "real"
    saved_run(real, "a")
    saved_run(real, "b", accuracy=0.7)
    (tmp_path / "link").symlink_to(real)
    report = plot_results(tmp_path / "link")
    assert report.found == 2 and not report.skipped and (real / "summary.csv").is_file()


def test_a_file_regexp_writes_that_is_a_link_or_a_folder_is_refused(tmp_path, outside):
    root = tmp_path / "r"
    root.mkdir()
    (root / "summary.csv").symlink_to(outside / "victim.txt")
    (root / "report.html").mkdir()
    before = snapshot(outside)
    with pytest.raises(ResultsError, match=r"summary\.csv: is a symbolic link, not a file regexp writes; left alone"):
        write_bytes_atomic(root / "summary.csv", b"x")
    with pytest.raises(ResultsError, match=r"report\.html: is a folder, not a file regexp writes; left alone"):
        write_bytes_atomic(root / "report.html", b"x")
    assert snapshot(outside) == before


def test_a_write_that_fails_is_one_line_naming_the_file(tmp_path):
    (tmp_path / "a-file").write_text("")
    with pytest.raises(results.WriteError) as caught:
        write_bytes_atomic(tmp_path / "a-file" / "report.html", b"x")
    assert str(caught.value) == f"{tmp_path / 'a-file' / 'report.html'}: cannot be written (Not a directory)"
    assert isinstance(caught.value, OSError) and isinstance(caught.value, ResultsError)
    assert (tmp_path / "a-file").read_text() == ""


def test_a_run_folder_whose_name_is_not_utf8_is_reported_with_its_bytes_escaped(cli, tmp_path):
    root = tmp_path / "r"
    saved_run(root, "a")
    bad = root / os.fsdecode(b"bad\xfe")
    saved_run(root, "b", seed=1).rename(bad)
    (bad / "metrics.json").write_text("{")
    result = cli("report", root)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "bad\\udcfe" in (root / "report.html").read_text()


def test_plot_and_report_with_a_folder_named_like_their_files_say_so_in_one_line(cli, tmp_path):
    root = tmp_path / "r"
    saved_run(root, "a")
    (root / "summary.csv").mkdir()
    (root / "report.html").mkdir()
    for command in ("plot", "report"):
        result = cli(command, root)
        assert result.exit_code == 2, result.output
        assert result.output.strip().splitlines()[-1].endswith("is a folder, not a file regexp writes; left alone")
        assert "Traceback" not in result.output


# --------------------------------------------------------------------------- bounded reads


@pytest.mark.parametrize("name", ["metrics.json", "history.csv"])
def test_a_fifo_in_a_run_folder_is_damaged_without_blocking(tmp_path, name):
    root = tmp_path / "r"
    folder = saved_run(root, "x")
    (folder / name).unlink()
    os.mkfifo(folder / name)
    runs, damaged = with_alarm(10, lambda: scan_runs(root))
    assert runs == [] and damaged == [f"{folder / name}: is a FIFO, not a plain file"]


def test_a_link_to_dev_zero_is_not_read(tmp_path):
    root = tmp_path / "r"
    folder = saved_run(root, "x")
    (folder / "metrics.json").unlink()
    (folder / "metrics.json").symlink_to("/dev/zero")
    runs, damaged = with_alarm(10, lambda: scan_runs(root))
    assert runs == [] and "metrics.json: is a symbolic link" in damaged[0]


def test_a_metrics_file_over_its_size_limit_is_damaged_unread(tmp_path):
    root = tmp_path / "r"
    folder = saved_run(root, "x")
    with open(folder / "metrics.json", "r+b") as f:
        f.truncate(results.MAX_METRICS_BYTES + 1)  # sparse: costs no disk
    runs, damaged = scan_runs(root)
    assert runs == []
    assert damaged == [
        f"{folder / 'metrics.json'}: {results.MAX_METRICS_BYTES + 1} bytes, "
        f"more than the {results.MAX_METRICS_BYTES} such a file may hold"
    ]


def test_weights_declaring_more_values_than_the_run_has_parameters_are_not_read(tmp_path):
    import h5py

    from regexp.study.report import read_kernels

    path = tmp_path / "model.weights.h5"
    with h5py.File(path, "w") as f:
        group = f.create_group("layers/conv2d/vars")
        group.attrs["name"] = "conv1"
        group.create_dataset("0", shape=(50_000_000,), dtype="float32")  # declared, never written: a small file
    assert path.stat().st_size < 100_000
    with pytest.raises(ValueError, match="its kernels declare 50000000 values, more than the run's 1000 parameters"):
        read_kernels(path, 1000)


# --------------------------------------------------------------------------- the run record


@pytest.mark.parametrize(
    "change, problem",
    [
        ({"training_path": "x"}, "training_path: 'x' is not an object"),
        ({"versions": ["2.0"]}, 'versions: ["2.0"] is not an object of name: version text'),
        ({"sparsity": {"overall": 0.1, "layers": [0.1]}}, "sparsity.layers: [0.1] is not an object of layer: number"),
        ({"sparsity": {"overall": 0.1, "threshold": "x"}}, "sparsity.threshold: 'x' is not a number from 0 to 1"),
        ({"best_epoch_test_accuracy": "x"}, "best_epoch_test_accuracy: 'x' is not a number from 0 to 1"),
        ({"test_accuracy": 1.5}, "test_accuracy: 1.5 is not a number from 0 to 1"),
        ({"test_accuracy": -0.1}, "test_accuracy: -0.1 is not a number from 0 to 1"),
        ({"test_loss": 1e308}, "test_loss: 1e+308 is not a finite number of at most 1e+15"),
        ({"regularizer": [{"type": "l2", "lambda": 0.1}]}, "regularizer[0].targets: missing"),
        ({"group": "\ud800"}, "group: '\\ud800' is not text of at most 1000 characters"),
        ({"group": "g" * 1_000_001}, "group: 'gggg"),
        ({"run": "../outside"}, "run: '../outside' is not a run name"),
        ({"run": "report.html"}, "run: 'report.html' is not a run name"),
        ({"status": "done"}, "status: 'done' is not one of completed, diverged, failed"),
        ({"seed": True}, "seed: true is not a whole number"),
        ({"data": {"description": 7}}, "data.description: 7 is not text of at most 1000 characters"),
        ({"activations": {"conv1": {"mean_abs": "x"}}}, "activations: "),
        ({"test_accuracy": None}, "test_accuracy: missing (the run is completed)"),
    ],
)
def test_the_record_names_the_first_field_that_a_reader_could_not_use(tmp_path, change, problem):
    folder = saved_run(tmp_path, "x")
    record = json.loads((folder / "metrics.json").read_text())
    record.update(change)
    (folder / "metrics.json").write_text(json.dumps(record))  # 1e999 and NaN are written as Infinity/NaN
    runs, damaged = scan_runs(tmp_path)
    assert runs == [] and len(damaged) == 1
    assert damaged[0].startswith(f"{folder / 'metrics.json'}: {problem}"), damaged[0]


def test_the_json_number_1e999_is_infinity_and_refused(tmp_path):
    folder = saved_run(tmp_path, "x")
    text = (folder / "metrics.json").read_text().replace('"test_loss": 0.19', '"test_loss": 1e999')
    (folder / "metrics.json").write_text(text)
    assert "1e999" in text
    _, damaged = scan_runs(tmp_path)
    assert damaged == [f"{folder / 'metrics.json'}: test_loss: Infinity is not a finite number of at most 1e+15"]


def test_unknown_keys_are_kept_and_not_checked():
    record = parse_record({"run": "a", "status": "completed", "test_accuracy": 0.5, "test_loss": 1.0, "later": [1]})
    assert record.status is RunStatus.COMPLETED and record.status == "completed"
    assert record.model_extra == {"later": [1]}


def test_a_tuning_record_is_checked_and_a_pruned_run_needs_no_test_numbers():
    trial = {"role": "trial", "study": "none", "trial": 3, "params": {"training.learning_rate": 0.001}}
    record = parse_record({"run": "a", "status": "pruned", "tuning": trial})
    assert record.status is RunStatus.PRUNED and record.tuning.trial == 3
    with pytest.raises(RecordError, match="tuning: .*role 'trial' or 'confirmation'"):
        parse_record({"run": "a", "status": "pruned", "tuning": {"role": "guess", "study": "none"}})


def test_labels_with_dollar_signs_are_drawn_as_plain_text(tmp_path):
    from regexp.study.plots import plot_results

    root = tmp_path / "r"
    saved_run(root, "a", group=r"$\foo$ and $x^$")
    saved_run(root, "b", group=r"$\foo$ and $x^$", seed=1, accuracy=0.7)
    report = plot_results(root)
    assert not report.skipped and (root / "test_accuracy.png").is_file()


# --------------------------------------------------------------------------- wrong numbers


def test_copies_of_a_run_are_counted_once_and_named(tmp_path):
    import shutil

    root = tmp_path / "r"
    saved_run(root, "real", config_hash="same", seed=0)
    for copy in ("copy1", "copy2"):
        shutil.copytree(root / "real", root / copy)
    saved_run(root, "other-seed", config_hash="same", seed=1, group="real")
    saved_run(root, "same-config-other-name", config_hash="same", seed=0)  # its own group: counted there
    runs, left_out = scan_runs(root)
    assert sorted(run.folder.name for run in runs) == ["other-seed", "real", "same-config-other-name"]
    assert left_out == [
        f"{root / name}: the same run as real (config hash same, seed 0); counted once" for name in ("copy1", "copy2")
    ]


@pytest.mark.parametrize(
    "name", ["report.html", "summary.csv", "metrics.json", "history.csv", "config.yaml", "model.txt", "checkpoint"]
)
def test_names_regexp_writes_are_refused_as_run_names_in_one_line(cli, tmp_path, name):
    config = write_config(tmp_path, "c", {"name": name, "data": {"dataset": "synthetic"}})
    result = cli("run", config, "--results", tmp_path / "r")
    assert result.exit_code == 2
    (line,) = result.output.strip().splitlines()
    assert line.startswith(f"error: {config}: name: '{name}' is reserved: regexp writes files and folders")
    assert not (tmp_path / "r").exists()


def _staging_with(root: Path, name: str, config_text: str, history_epochs: int | None, checkpoint: str) -> Path:
    staging = root / ".inprogress" / name
    staging.mkdir(parents=True)
    (staging / "config.yaml").write_text(config_text)
    if history_epochs is not None:
        (staging / "history.csv").write_text(history_csv(rising_history(0.5, history_epochs)))
    if checkpoint == "file":
        (staging / "checkpoint").write_text("")
    else:
        (staging / "checkpoint").mkdir()
        (staging / "checkpoint" / checkpoint).write_bytes(b"")
    return staging


@pytest.mark.parametrize(
    "history_epochs, checkpoint, why",
    [
        (None, "epoch-0002.npz", "its checkpoint is at epoch 2 but "),
        (1, "epoch-0002.npz", "its checkpoint is at epoch 2 but "),
        (2, "file", "checkpoint is a file, not a folder"),
    ],
)
def test_a_staging_folder_that_disagrees_with_itself_is_moved_aside_and_the_run_starts_over(
    tmp_path, caplog, history_epochs, checkpoint, why
):
    from regexp.run.runner import _prepare_staging

    root = tmp_path / "r"
    staging = _staging_with(root, "x", "name: x\n", history_epochs, checkpoint)
    kept = snapshot(staging)
    with caplog.at_level("INFO"):
        assert _prepare_staging(root, "x", "name: x\n") is False
    (aside,) = (root / ".damaged").iterdir()
    assert snapshot(aside) == kept, "moved as it was"
    assert sorted(p.name for p in staging.iterdir()) == ["config.yaml"], "a fresh staging folder"
    (line,) = [r.getMessage() for r in caplog.records if "starts over" in r.getMessage()]
    assert why in line and str(aside) in line


def test_a_staging_folder_whose_checkpoint_agrees_with_its_history_is_resumed(tmp_path):
    from regexp.run.runner import _prepare_staging

    root = tmp_path / "r"
    _staging_with(root, "x", "name: x\n", 2, "epoch-0002.npz")
    assert _prepare_staging(root, "x", "name: x\n") is True
    assert not (root / ".damaged").exists()


# --------------------------------------------------------------------------- one line, never a traceback


def test_report_and_plot_of_a_file_say_so_in_one_line(cli, tmp_path):
    path = tmp_path / "a-file"
    path.write_text("")
    for command in ("report", "plot", "export"):
        result = cli(command, path)
        assert result.exit_code == 2, (command, result.output)
        assert "Traceback" not in result.output and result.output.startswith("error: "), (command, result.output)


def test_export_reads_config_yaml_as_a_plain_file_and_config_columns_from_it_alone(tmp_path, outside):
    from regexp.study.export import collect_rows

    root = tmp_path / "r"
    (outside / "secret.yaml").write_text("password: hunter2\n")
    linked, latin, shadow = saved_run(root, "linked"), saved_run(root, "latin"), saved_run(root, "shadow")
    (linked / "config.yaml").unlink()
    (linked / "config.yaml").symlink_to(outside / "secret.yaml")
    (latin / "config.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    record = json.loads((shadow / "metrics.json").read_text())
    record["config"] = {"name": "forged"}
    record["note"] = "\ud800"
    (shadow / "metrics.json").write_text(json.dumps(record))
    rows, problems = collect_rows(root)
    assert problems == [
        f"{latin / 'config.yaml'}: not UTF-8 text (byte 9)",
        f"{linked / 'config.yaml'}: is a symbolic link; regexp follows no links inside a results root",
    ]
    (row,) = rows
    assert row["config.name"] == "shadow" and row["note"] == "\\ud800"


def test_a_digest_cache_entry_that_is_not_a_sha256_is_computed_again(tmp_path):
    import hashlib

    from regexp.data import cache
    from regexp.run import provenance

    data = tmp_path / "data.bin"
    data.write_bytes(b"some bytes")
    expected = hashlib.sha256(b"some bytes").hexdigest()
    assert provenance.file_sha256(data) == expected
    (entry,) = (cache.cache_dir() / "digests").iterdir()
    entry.write_text(json.dumps({"identity": cache.file_identity(data), "sha256": "<script>"}))
    assert provenance.file_sha256(data) == expected


def test_a_cache_entry_with_the_right_key_but_bad_arrays_is_a_miss(tmp_path):
    from regexp.data import cache

    key = {"dataset": "test"}
    images, labels = np.zeros((4, 8, 8), np.uint8), np.zeros(4, np.uint8)
    path = cache.save_arrays("t", key, (images, labels, images, labels))
    assert cache.load_arrays("t", key) is not None
    np.savez_compressed(
        path,
        key=np.array(json.dumps(key, sort_keys=True)),
        x_train=images,
        y_train=labels[:3],
        x_test=images,
        y_test=labels,
    )
    assert cache.load_arrays("t", key) is None
