"""`regexp sweep --dry-run`: the plan and a time estimate from comparable runs on disk; nothing
is trained or written."""

import os
import statistics

import pytest
from test_report import fake_run

from regexp.config import config_hash, load_runs, to_yaml
from regexp.results import RunStatus
from regexp.run import dry_run

from conftest import TINY, merge, run_record, write_config


def tree(root):
    """Every path under root with its size and mtime: what a command that writes nothing leaves alone."""
    out = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            info = os.lstat(path)
            out[path] = (info.st_size, info.st_mtime_ns)
    return out


@pytest.fixture
def study(tmp_path):
    """Two configs over 2 seeds; seed 0 of `none` completed on disk (3 epochs, 8.0 s per epoch), plus a
    comparable run under another name (resumed after epoch 1: 2 epochs in 20 s, 10.0 s per epoch)."""
    folder = tmp_path / "configs"
    write_config(folder, "none", TINY)
    write_config(folder, "l2", merge(TINY, {"regularizer": {"type": "l2", "targets": ["activity"]}}))
    root = tmp_path / "results"
    spec = load_runs(folder / "none.yaml", [], 2)[0]
    done = fake_run(
        root,
        "none",
        0,
        0.8,
        extra={"config_hash": config_hash(spec.config), "wall_time_s": 24.0},
    )
    (done / "config.yaml").write_text(to_yaml(spec.config))
    other = fake_run(root, "old", 5, 0.7, extra={"wall_time_s": 20.0, "resumed_from_epoch": 1})
    (other / "config.yaml").write_text(to_yaml(spec.config))
    return folder, root


def test_epoch_seconds_counts_only_the_epochs_this_process_trained():
    assert dry_run.epoch_seconds(run_record(wall_time_s=30.0, epochs_run=4, resumed_from_epoch=1)) == 10.0
    assert dry_run.epoch_seconds(run_record(wall_time_s=30.0, epochs_run=3)) == 10.0
    assert dry_run.epoch_seconds(run_record(wall_time_s=30.0, epochs_run=0)) is None
    assert dry_run.epoch_seconds(run_record(status=RunStatus.FAILED)) is None


def test_dry_run_lists_the_plan_and_estimates_from_comparable_runs_and_writes_nothing(cli, study):
    folder, root = study
    before = tree(root)
    result = cli("sweep", folder, "--results", root, "--seeds", 2, "--dry-run")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"dry run: 4 runs, 1 already completed, 3 to train -> {root}"
    assert sorted(line.split()[1] for line in lines if line.startswith("  train:")) == [
        "l2__seed-0",
        "l2__seed-1",
        "none__seed-1",
    ]
    assert "  done:  none__seed-0" in lines
    # 3 runs x 1 epoch at the median of 8.0 and 10.0 s per epoch
    expected = dry_run.duration(3 * 1 * statistics.median([8.0, 10.0]))
    assert f"estimate: about {expected} of training" in result.output and expected == "27s"
    assert "for 3 of 3 runs" in result.output and "2 comparable runs" in result.output
    assert lines[-1] == "nothing was trained or written"
    assert tree(root) == before


def test_without_a_comparable_run_it_says_no_estimate(cli, study, tmp_path):
    folder, root = study
    wider = write_config(tmp_path / "other", "wide", merge(TINY, {"model": {"dense_units": 64}}))
    result = cli("sweep", wider, "--results", root, "--dry-run")
    assert result.exit_code == 0, result.output
    assert f"no estimate: no comparable run (same data and model) under {root}" in result.output


def test_a_dry_run_into_a_new_root_does_not_create_it(cli, study, tmp_path):
    folder, _ = study
    result = cli("sweep", folder, "--results", tmp_path / "new", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "no estimate: no comparable run" in result.output
    assert not (tmp_path / "new").exists()


def test_a_dry_run_validates_configs_like_a_sweep(cli, study, tmp_path):
    folder, root = study
    write_config(folder, "bad", merge(TINY, {"training": {"epochs": 0}}))
    result = cli("sweep", folder, "--results", root, "--dry-run")
    assert result.exit_code == 2 and "the sweep was not started" in result.output


def test_some_runs_without_comparable_ones_are_named(study, tmp_path):
    folder, root = study
    wide = write_config(tmp_path / "other", "wide", merge(TINY, {"model": {"dense_units": 64}}))
    todo = load_runs(folder / "none.yaml", [], 2)[1:] + load_runs(wide, [], None)
    line = dry_run.estimate_line(todo, root)
    assert "for 1 of 2 runs" in line and "no estimate for 1 (no comparable run: wide)" in line
