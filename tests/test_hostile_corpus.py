"""Every command against hostile results roots, as a user would run it: in a subprocess, under a
memory cap (RLIMIT_AS) and a timeout. Whatever a root holds, each command must end with exit
0, 1 or 2, print no traceback, and leave the folder `outside` (the user's own files, which the
planted links point at) exactly as it was: same entries, same bytes, same modification times.

`reading_root` plants, side by side, what the reading commands (plot, report, export, and the
end of a sweep) meet; `root_files_root` puts links and folders where regexp writes its own files
at the root; `WRITE_TRAPS` are roots whose hidden folders (.locks, .inprogress, .damaged) are
turned against `regexp run`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_hostile_root import l2, saved_run, snapshot

from conftest import REPO, TINY_SET, write_config

MEMORY_CAP = 4 * 2**30  # bytes of address space: TensorFlow starts in it; a 1 MB label or a huge kernel did not fit
TIMEOUT_S = 240
NONE_CONFIG = REPO / "configs" / "none.yaml"

# Runs the CLI as `regexp ...` does, with the address space capped first.
_CAPPED_CLI = (
    "import resource, sys\n"
    "resource.setrlimit(resource.RLIMIT_AS, ({cap}, {cap}))\n"
    "from regexp.cli import main\n"
    "sys.argv = ['regexp'] + sys.argv[1:]\n"
    "main()\n"
)


def regexp(*args) -> subprocess.CompletedProcess:
    """`regexp *args` in a capped subprocess; fails the test on a hang, a traceback or another exit code."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    try:
        done = subprocess.run(
            [sys.executable, "-c", _CAPPED_CLI.format(cap=MEMORY_CAP), *map(str, args)],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            env=env,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"regexp {' '.join(map(str, args))}: still running after {TIMEOUT_S} s")
    output = done.stdout + done.stderr
    assert done.returncode in (0, 1, 2), (args, done.returncode, output[-3000:])
    assert "Traceback" not in output, (args, output[-3000:])
    return done


@pytest.fixture
def outside(tmp_path):
    """The user's own files, beside the roots; planted links point here."""
    folder = tmp_path / "outside"
    saved_run(folder, "someone-elses-run")
    (folder / "victim.txt").write_text("the user's own words\n")
    (folder / "secret.yaml").write_text("password: hunter2\n")
    (folder / "evil.png").write_bytes(b"not a figure regexp drew")
    return folder


def _edit(folder: Path, **changes) -> None:
    path = folder / "metrics.json"
    record = json.loads(path.read_text())
    record.update(changes)
    path.write_text(json.dumps(record))


def reading_root(root: Path, outside: Path) -> Path:
    """Good runs beside every kind of hostile run folder a reader meets."""
    saved_run(root, "base", accuracy=0.6, seed=0, group="base", config_hash="b0", group_hash="base")
    saved_run(root, "base__seed-1", accuracy=0.62, seed=1, group="base", config_hash="b1", group_hash="base")
    for index, lam in enumerate((0.01, 0.1)):  # names in metrics.json that point outside
        folder = saved_run(root, f"evil__lambda-{lam}", regularizer=[l2(lam)], config_hash=f"e{index}")
        _edit(folder, run=f"x/../../outside/evil__lambda-{lam}")
    (root / "linked").symlink_to(outside / "someone-elses-run")
    for name, planted in (("fifo-metrics", "metrics.json"), ("fifo-history", "history.csv")):
        folder = saved_run(root, name)
        (folder / planted).unlink()
        os.mkfifo(folder / planted)
    zero = saved_run(root, "zero")
    (zero / "metrics.json").unlink()
    (zero / "metrics.json").symlink_to("/dev/zero")
    _edit(saved_run(root, "huge-group"), group="g" * 1_000_000)
    _edit(saved_run(root, "dollar", group_hash="dollar"), group=r"$\foo$")
    _edit(saved_run(root, "dollar2", seed=1, group_hash="dollar"), group=r"$\foo$")
    _edit(saved_run(root, "dollar-other", group_hash="dollar-other"), group=r"$\foo$")  # same label, its hash[:6] too
    (root / "surrogate").mkdir()
    shutil.copy(root / "base" / "history.csv", root / "surrogate")
    (root / "surrogate" / "metrics.json").write_text('{"run": "surrogate", "status": "failed", "group": "\\ud800"}')
    for seed in (0, 1):
        _edit(saved_run(root, f"overflow-{seed}", seed=seed, group="overflow"), test_accuracy=1e308, test_loss=1e308)
    infinite = saved_run(root, "infinite")
    text = (infinite / "metrics.json").read_text()
    (infinite / "metrics.json").write_text(text.replace('"test_loss": ', '"test_loss": 1e999, "x": ', 1))
    for name, change in {
        "path-text": {"training_path": "x"},
        "versions-list": {"versions": ["2.0"]},
        "layers-list": {"sparsity": {"overall": 0.1, "layers": [0.1]}},
        "threshold-text": {"sparsity": {"overall": 0.1, "threshold": "x"}},
        "best-text": {"best_epoch_test_accuracy": "x"},
        "accuracy-above-one": {"test_accuracy": 1.5},
        "shadow-config": {"config": {"name": "forged"}},
    }.items():
        _edit(saved_run(root, name), **change)
    shutil.copytree(root / "base", root / "copy-of-base")
    cfglink = saved_run(root, "config-link")
    (cfglink / "config.yaml").unlink()
    (cfglink / "config.yaml").symlink_to(outside / "secret.yaml")
    (saved_run(root, "latin") / "config.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    _write_weights_bomb(saved_run(root, "weights-bomb", param_count=1000))
    return root


def _write_weights_bomb(folder: Path) -> None:
    """A model.weights.h5 of a few KB whose conv1 kernel declares 5 x 10^7 values."""
    import h5py

    with h5py.File(folder / "model.weights.h5", "w") as f:
        group = f.create_group("layers/conv2d/vars")
        group.attrs["name"] = "conv1"
        group.create_dataset("0", shape=(50_000_000,), dtype="float32")


def root_files_root(root: Path, outside: Path) -> Path:
    """Two good runs, and links or folders where regexp writes its own files at the root."""
    saved_run(root, "a", accuracy=0.7)
    saved_run(root, "b", accuracy=0.8, seed=1)
    (root / "summary.csv").symlink_to(outside / "victim.txt")
    (root / "report.html").symlink_to(outside / "evil.png")
    (root / "stats.csv").mkdir()
    (root / "validation_accuracy.png").symlink_to(outside / "evil.png")
    return root


@pytest.mark.parametrize("make_root", [reading_root, root_files_root])
def test_reading_commands_on_a_hostile_root_stay_inside_it(tmp_path, outside, make_root):
    root = make_root(tmp_path / "root", outside)
    before = snapshot(outside)
    for command in (("plot",), ("report",), ("export", "--format", "json")):
        regexp(*command, root)
        assert snapshot(outside) == before, command


def test_the_reading_corpus_names_each_hostile_folder_and_counts_good_runs_once(tmp_path, outside):
    root = reading_root(tmp_path / "root", outside)
    done = regexp("export", "--format", "json", root)
    assert done.returncode == 0
    exported = sorted(row["run"] for row in json.loads(done.stdout))
    assert exported == ["base", "base__seed-1", "dollar", "dollar-other", "dollar2", "shadow-config", "weights-bomb"]
    skipped = [line for line in done.stderr.splitlines() if line.startswith("skipped: ")]
    assert len(skipped) == len(os.listdir(root)) - len(exported), done.stderr


def _trap_lock_link(root: Path, outside: Path) -> None:
    (root / ".locks").mkdir(parents=True)
    (root / ".locks" / "none.lock").symlink_to(outside / "victim.txt")


def _trap_locks_link(root: Path, outside: Path) -> None:
    root.mkdir(parents=True)
    (root / ".locks").symlink_to(outside)


def _trap_locks_file(root: Path, outside: Path) -> None:
    root.mkdir(parents=True)
    (root / ".locks").write_text("")


def _trap_staging_link(root: Path, outside: Path) -> None:
    root.mkdir(parents=True)
    (root / ".inprogress").symlink_to(outside)
    (outside / "none").mkdir()
    (outside / "none" / "config.yaml").write_text("stale\n")


def _trap_damaged_link(root: Path, outside: Path) -> None:
    (root / "none").mkdir(parents=True)
    (root / "none" / "metrics.json").write_text("{")  # damaged: it would be moved into .damaged
    (root / ".damaged").symlink_to(outside)


def _trap_run_folder_link(root: Path, outside: Path) -> None:
    root.mkdir(parents=True)
    (root / "none").symlink_to(outside / "someone-elses-run")


WRITE_TRAPS = [_trap_lock_link, _trap_locks_link, _trap_locks_file, _trap_staging_link, _trap_damaged_link]


@pytest.mark.parametrize("trap", [*WRITE_TRAPS, _trap_run_folder_link], ids=lambda trap: trap.__name__[6:])
def test_run_refuses_a_results_root_whose_own_folders_are_turned_against_it(tmp_path, outside, trap):
    root = tmp_path / "root"
    trap(root, outside)
    before = snapshot(outside)
    done = regexp("run", NONE_CONFIG, "--results", root, *TINY_SET)
    assert done.returncode == 2, done.stderr
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert "symbolic link" in line or "where regexp keeps a folder" in line, line
    assert snapshot(outside) == before


@pytest.mark.slow
def test_a_sweep_ending_in_a_hostile_root_stays_inside_it(tmp_path, outside):
    root = reading_root(tmp_path / "root", outside)
    configs = tmp_path / "configs"
    write_config(configs, "tiny", {"data": {"dataset": "synthetic"}})
    before = snapshot(outside)
    done = regexp("sweep", configs, "--results", root, *TINY_SET)
    assert done.returncode == 1, done.stderr  # the damaged folders are named, so not a clean sweep
    assert (root / "tiny" / "metrics.json").is_file() and (root / "report.html").is_file()
    assert snapshot(outside) == before


def _resolved_none_config() -> str:
    """config.yaml as `regexp run configs/none.yaml` with TINY_SET writes it in its staging folder."""
    from regexp.config import load_runs, to_yaml

    settings = [TINY_SET[i + 1] for i, flag in enumerate(TINY_SET) if flag == "--set"] + ["training.epochs=1"]
    (spec,) = load_runs(NONE_CONFIG, settings)
    return to_yaml(spec.config)


@pytest.mark.slow
@pytest.mark.parametrize("staging", ["checkpoint-a-file", "history-missing"])
def test_run_starts_over_from_a_staging_folder_that_disagrees_with_itself(tmp_path, outside, staging):
    root = tmp_path / "root"
    folder = root / ".inprogress" / "none"
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(_resolved_none_config())
    if staging == "checkpoint-a-file":
        (folder / "checkpoint").write_text("")
    else:
        (folder / "checkpoint").mkdir()
        (folder / "checkpoint" / "epoch-0001.npz").write_bytes(b"")
    before = snapshot(outside)
    done = regexp("run", NONE_CONFIG, "--results", root, *TINY_SET)
    assert done.returncode == 0, done.stderr
    (line,) = [line for line in (done.stdout + done.stderr).splitlines() if "the run starts over" in line]
    assert str(root / ".damaged") in line
    assert (root / "none" / "metrics.json").is_file() and len(os.listdir(root / ".damaged")) == 1
    assert snapshot(outside) == before


def _tiny_tuning_config(folder: Path) -> Path:
    """A one-trial tuning study of `none` on tiny synthetic data (two confirmation seeds)."""
    search = {"trials": 1, "confirm_seeds": 2, "pruner": "none"}
    search["space"] = {"training.learning_rate": {"low": 1.0e-4, "high": 1.0e-2, "log": True}}
    return write_config(folder, "none", {"search": search})


@pytest.mark.parametrize("make_root", [reading_root, root_files_root])
def test_tune_dry_run_on_a_hostile_root_stays_inside_it(tmp_path, outside, make_root):
    root = make_root(tmp_path / "root", outside)
    config = _tiny_tuning_config(tmp_path / "configs")
    before, inside = snapshot(outside), sorted(os.listdir(root))
    done = regexp("tune", config, "--results", root, "--dry-run", *TINY_SET)
    assert done.returncode == 0, done.stderr
    assert snapshot(outside) == before and sorted(os.listdir(root)) == inside  # nothing written, not even tune.db


@pytest.mark.slow
@pytest.mark.parametrize(
    "trap", [_trap_locks_link, _trap_staging_link, _trap_damaged_link], ids=lambda t: t.__name__[6:]
)
def test_tune_in_a_results_root_whose_own_folders_are_turned_against_it_stays_inside_it(tmp_path, outside, trap):
    root = tmp_path / "root"
    trap(root, outside)
    config = _tiny_tuning_config(tmp_path / "configs")
    before = snapshot(outside)
    regexp("tune", config, "--results", root, *TINY_SET)  # exit 0, 1 or 2, no traceback, within the caps
    assert snapshot(outside) == before
