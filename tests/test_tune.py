"""regexp tune: the search: section, trials as run folders in an Optuna study, pruning,
confirmation on fresh seeds, resume after a kill, and the tuning report."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from regexp import tune, tune_report
from regexp.config import apply_override, config_hash, load_config, load_runs
from regexp.errors import ConfigError

from conftest import TINY, merge, write_config

TINY5 = merge(TINY, {"model": {"num_classes": 5}})
LR = {"training.learning_rate": {"low": 1.0e-4, "high": 1.0e-2, "log": True}}
LAMBDA = {"regularizer.lambda": {"low": 1.0e-6, "high": 1.0e-1, "log": True}}


def tuned(base: dict, space: dict, trials: int, confirm_seeds: int = 2, **search) -> dict:
    return {**base, "search": {"trials": trials, "confirm_seeds": confirm_seeds, "space": space, **search}}


def load_study(root: Path, name: str):
    import optuna

    return optuna.load_study(study_name=name, storage=f"sqlite:///{root / 'tune.db'}")


def metrics_of(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


# --------------------------------------------------------------------------- config (fast)


def test_a_config_with_search_runs_as_the_same_config_without_it(tmp_path):
    plain = load_config(write_config(tmp_path, "plain", merge(TINY5, {"regularizer": {"type": "l2"}})))
    searched = load_config(
        write_config(tmp_path, "searched", tuned(merge(TINY5, {"regularizer": {"type": "l2"}}), LAMBDA, 3))
    )
    assert searched.search.trials == 3 and searched.search.sampler == "qmc"
    assert searched.search.pruner == "successive_halving"
    assert config_hash(searched) == config_hash(plain)  # `regexp run` and `regexp sweep` ignore the search


def test_confirm_seeds_default_to_five():
    from regexp.config import validate

    config = validate({"search": {"space": LR}}, "x.yaml", "x")
    assert config.search.confirm_seeds == 5


def test_set_reaches_an_entry_of_a_list_of_penalties(tmp_path):
    data = merge(
        TINY5, {"regularizer": [{"type": "l2", "targets": ["kernel"]}, {"type": "l1", "targets": ["activity"]}]}
    )
    path = write_config(tmp_path, "mixed", data)
    [spec] = load_runs(path, ["regularizer.1.lambda=0.5"])
    assert [entry.lambda_ for entry in spec.config.penalties] == [0.01, 0.5]
    with pytest.raises(ConfigError, match=r"regularizer.5: the list has entries 0 to 1"):
        apply_override({"regularizer": [{}, {}]}, "regularizer.5.lambda", 1.0)


def test_a_folder_config_without_search_is_named_and_nothing_is_tuned(cli, tmp_path):
    folder = tmp_path / "configs"
    write_config(folder, "with", tuned(TINY5, LR, 1))
    write_config(folder, "without", TINY5)
    result = cli("tune", folder, "--results", tmp_path / "results")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "without.yaml: search: missing" in result.output
    assert not (tmp_path / "results").exists()


def test_a_damaged_tune_db_is_named_in_one_line_and_nothing_trains(cli, tmp_path):
    config = write_config(tmp_path / "configs", "none", tuned(TINY5, LR, 1))
    root = tmp_path / "results"
    root.mkdir()
    (root / "tune.db").write_bytes(b"this is no SQLite database, it was cut short")
    result = cli("tune", config, "--results", root)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output
    assert lines[0].startswith(
        f"error: {root / 'tune.db'}: not a usable Optuna study database (file is not a database)"
    )
    assert sorted(p.name for p in root.iterdir()) == ["tune.db"]


# --------------------------------------------------------------------------- pure parts (fast)


def test_confirmation_seeds_skip_every_seed_a_trial_used():
    assert tune.fresh_seeds({0}, 3) == [1, 2, 3]
    assert tune.fresh_seeds({1, 3}, 4) == [0, 2, 4, 5]
    assert tune.fresh_seeds(set(), 2) == [0, 1]


def test_a_value_in_the_outer_tenth_of_a_log_range_is_at_its_edge():
    entry = {"low": 1e-6, "high": 1e-1, "log": True}  # five decades: a tenth is half a decade
    assert tune_report.position_in_range(1e-6, entry) == 0
    assert math.isclose(tune_report.position_in_range(10**-3.5, entry), 0.5)
    assert math.isclose(tune_report.position_in_range(1e-2, entry), 0.8)
    trial = {
        "status": "completed",
        "best_val_accuracy": 0.9,
        "tuning": {"role": "trial", "study": "l1", "trial": 0, "params": {"regularizer.lambda": 10**-1.2}},
    }
    study = tune_report.Study("l1", {"regularizer.lambda": entry}, [trial])
    [warning] = tune_report.edge_warnings(study)  # 10^-1.2 sits at 0.96 of the range
    assert warning.startswith("the best regularizer.lambda for l1 (0.0631) is at the high edge of its range")
    assert warning.endswith("widen it")
    trial["tuning"]["params"]["regularizer.lambda"] = 1e-4  # at 0.4: well inside
    assert tune_report.edge_warnings(study) == []


# --------------------------------------------------------------------------- end to end (slow)


@pytest.mark.slow
def test_tune_end_to_end_trials_pruning_study_and_confirmation_on_fresh_seeds(cli, tmp_path, monkeypatch):
    """Two configs; the pruner is made to prune the baseline's trial 1 after its first epoch."""
    import optuna

    folder, root = tmp_path / "configs", tmp_path / "results"
    two_epochs = merge(TINY5, {"training": {"epochs": 2}})
    write_config(folder, "none", tuned(two_epochs, LR, 2))
    write_config(folder, "l2", tuned(merge(two_epochs, {"regularizer": {"type": "l2"}}), {**LAMBDA, **LR}, 1))
    monkeypatch.setattr(
        optuna.trial.Trial, "should_prune", lambda self: self.study.study_name == "none" and self.number == 1
    )

    result = cli("tune", folder, "--results", root)
    assert result.exit_code == 0, result.output

    names = sorted(p.name for p in root.iterdir() if (p / "metrics.json").exists())
    assert names == [
        "l2__confirm__seed-1",
        "l2__confirm__seed-2",
        "l2__trial-0000",
        "none__confirm__seed-1",
        "none__confirm__seed-2",
        "none__trial-0000",
        "none__trial-0001",
    ]
    for name in ("none", "l2"):
        study = load_study(root, name)
        for trial in study.trials:
            run = metrics_of(root / tune.trial_name(name, trial.number))
            assert run["tuning"] == {
                "role": "trial",
                "study": name,
                "trial": trial.number,
                "params": trial.params,
                "space": run["tuning"]["space"],
            }
            assert run["seed"] == 0  # the config's own seed
            assert trial.user_attrs["run"] == run["run"]
            assert set(trial.params) == set(run["tuning"]["space"])
            assert list(trial.intermediate_values) == list(range(1, run["epochs_run"] + 1))
            if trial.state == optuna.trial.TrialState.COMPLETE:
                assert run["status"] == "completed" and trial.value == run["best_val_accuracy"]
                assert max(trial.intermediate_values.values()) == trial.value
    pruned = load_study(root, "none").trials[1]
    assert pruned.state == optuna.trial.TrialState.PRUNED
    run = metrics_of(root / "none__trial-0001")
    assert run["status"] == "pruned" and run["epochs_run"] == 1 and run["epochs_planned"] == 2
    assert run["test_accuracy"] is None  # a trial is never judged on the test set

    best = load_study(root, "none").best_trial
    trial_seeds = {metrics_of(root / n)["seed"] for n in names if "__trial-" in n}
    for seed in (1, 2):
        run = metrics_of(root / f"none__confirm__seed-{seed}")
        assert run["seed"] == seed and run["seed"] not in trial_seeds
        assert run["group"] == "none" and run["status"] == "completed"
        assert run["tuning"]["role"] == "confirmation" and run["tuning"]["trial"] is None
        assert run["tuning"]["chosen_trial"] == best.number and run["tuning"]["params"] == best.params

    stats = (root / "stats.csv").read_text()
    assert "__trial-" not in stats  # the report compares the confirmation runs only
    assert stats.splitlines()[1].startswith("none,2,") and stats.splitlines()[2].startswith("l2,2,")
    md = (root / "tuning.md").read_text()
    assert "| 1 | " in md and "| 1/2 | pruned |" in md
    assert "l2, at its best regularizer.lambda = " in md and "(1 trials), reaches " in md
    assert (root / "tuning.png").stat().st_size > 0 and "<script" not in (root / "tuning.html").read_text()
    summary = (root / "summary.md").read_text()
    assert "(1 pruned)" in summary and "failed" not in summary


@pytest.mark.slow
def test_a_killed_tune_resumes_the_same_study_and_no_trial_is_lost_or_repeated(tmp_path):
    folder, root = tmp_path / "configs", tmp_path / "results"
    slow = merge(TINY5, {"data": {"limit": 1500}, "training": {"epochs": 3}})
    write_config(folder, "none", tuned(slow, LR, 1, pruner="none"))
    command = [sys.executable, "-m", "regexp", "tune", str(folder), "--results", str(root)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    with open(tmp_path / "log.txt", "ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    from test_crash_safety import wait_for

    wait_for(root / ".inprogress" / "none__trial-0000" / "checkpoint", "epoch-*.npz", process)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    import optuna

    assert [t.state for t in load_study(root, "none").trials] == [optuna.trial.TrialState.RUNNING]

    resumed = subprocess.run(command, capture_output=True, text=True, env=env)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "none__trial-0000: cut short earlier (its process ended); resuming it" in resumed.stdout + resumed.stderr
    trials = load_study(root, "none").trials
    assert [(t.number, t.state) for t in trials] == [(0, optuna.trial.TrialState.COMPLETE)]  # resumed, not replaced
    first = metrics_of(root / "none__trial-0000")
    assert first["resumed_from_epoch"] >= 1 and first["epochs_run"] == 3
    assert list(trials[0].intermediate_values) == [1, 2, 3]

    again = subprocess.run(command, capture_output=True, text=True, env=env)  # all done: nothing trains again
    assert again.returncode == 0, again.stdout + again.stderr
    assert "confirmation: 2 runs, 2 already completed, 0 to run" in again.stdout
    assert len(load_study(root, "none").trials) == 1


def test_the_tuning_study_holds_each_reference_penalty_with_its_strengths_and_the_learning_rate_searched():
    from conftest import CONFIGS, REFERENCE_CONFIGS

    tuned_names = sorted(p.stem for p in (CONFIGS / "tuning").glob("*.yaml"))
    assert tuned_names == sorted(set(REFERENCE_CONFIGS) - {"l2_activity_extended"})  # tuning searches its lambda
    for name in tuned_names:
        config = load_config(CONFIGS / "tuning" / f"{name}.yaml")
        reference = load_config(CONFIGS / f"{name}.yaml")
        assert [(e.type, e.targets) for e in config.penalties] == [(e.type, e.targets) for e in reference.penalties]
        strengths = {"none": [], "l1": ["regularizer.lambda"], "l2": ["regularizer.lambda"]}
        expected = strengths.get(config.penalties[0].type, ["regularizer.l1", "regularizer.l2"])
        assert list(config.search.space) == [*expected, "training.learning_rate"]
        assert all(entry.log and entry.high / entry.low >= 100 for entry in config.search.space.values())
