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

from regexp.config import config_hash, load_config, load_runs
from regexp.config.schema import apply_override
from regexp.errors import ConfigError
from regexp.run import tune
from regexp.study import tune_report

from conftest import TINY, merge, run_record, write_config

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


def test_dry_run_on_a_new_root_prints_the_plan_and_writes_nothing(cli, tmp_path):
    config = write_config(tmp_path / "configs", "none", tuned(TINY5, LR, 3, confirm_seeds=2))
    root = tmp_path / "results"
    result = cli("tune", config, "--results", root, "--dry-run")
    assert result.exit_code == 0, result.output
    assert f"dry run: 1 studies -> {root / 'tune.db'} (no study recorded yet)" in result.output
    assert "  none: 0 of 3 trials ended, 3 new; then 2 of 2 confirmation runs to train" in result.output
    assert "no estimate: no comparable run" in result.output and "nothing was trained or written" in result.output
    assert not root.exists()


def test_dry_run_names_a_damaged_tune_db_in_one_line(cli, tmp_path):
    config = write_config(tmp_path / "configs", "none", tuned(TINY5, LR, 1))
    root = tmp_path / "results"
    root.mkdir()
    (root / "tune.db").write_bytes(b"this is no SQLite database, it was cut short")
    result = cli("tune", config, "--results", root, "--dry-run")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.startswith(f"error: {root / 'tune.db'}: not a usable Optuna study database")


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

    def trial(value):
        tuning = {"role": "trial", "study": "l1", "trial": 0, "params": {"regularizer.lambda": value}}
        return run_record(run="l1__trial-0", best_val_accuracy=0.9, tuning=tuning)

    study = tune_report.Study("l1", {"regularizer.lambda": entry}, [trial(10**-1.2)])
    [warning] = tune_report.edge_warnings(study)  # 10^-1.2 sits at 0.96 of the range
    assert warning.startswith("the best regularizer.lambda for l1 (0.0631) is at the high edge of its range")
    assert warning.endswith("widen it")
    study = tune_report.Study("l1", {"regularizer.lambda": entry}, [trial(1e-4)])  # at 0.4: well inside
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
    write_config(folder, "nan", tuned(two_epochs, {"training.learning_rate": [1.0e12]}, 1))  # its loss turns NaN
    monkeypatch.setattr(
        optuna.trial.Trial, "should_prune", lambda self: self.study.study_name == "none" and self.number == 1
    )

    result = cli("tune", folder, "--results", root)
    assert result.exit_code == 1, result.output  # the study `nan` has no completed trial to confirm
    assert "Traceback" not in result.output
    assert "nan__trial-0000: diverged (non-finite loss) at training.learning_rate 1e+12; left out of the search" in (
        result.output
    )
    assert "nan: no trial completed ({'fail': 1}); it is not confirmed" in result.output
    assert [t.state for t in load_study(root, "nan").trials] == [optuna.trial.TrialState.FAIL]
    assert metrics_of(root / "nan__trial-0000")["status"] == "diverged"

    names = sorted(p.name for p in root.iterdir() if (p / "metrics.json").exists())
    assert names == [
        "l2__confirm__seed-1",
        "l2__confirm__seed-2",
        "l2__trial-0000",
        "nan__trial-0000",
        "none__confirm__seed-1",
        "none__confirm__seed-2",
        "none__trial-0000",
        "none__trial-0001",
    ]
    for name in ("none", "l2", "nan"):
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
            assert run["group"] == run["run"]  # each trial a group of its own
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
    assert "The baseline none, at its best training.learning_rate = " in md
    assert (
        "l2, at its best regularizer.lambda = " in md
        and "; against none at its best (" in md
        and "(1 trial), reaches " in md
    )
    assert (root / "tuning.png").stat().st_size > 0 and "<script" not in (root / "tuning.html").read_text()
    summary = (root / "summary.md").read_text()
    assert "(1 pruned)" in summary and "0 failed, 1 diverged" in summary

    (root / "none__trial-0001" / "metrics.json").write_text('{"run": "none__trial-0001", "status": ')
    report = cli("report", root)
    assert report.exit_code == 1 and "Traceback" not in report.output
    assert f"skipped: {root / 'none__trial-0001' / 'metrics.json'}: not valid JSON" in report.output
    md = (root / "tuning.md").read_text()
    assert "## none: 1 trial" in md and "## Left out (damaged run folders)" in md


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
    database = (root / "tune.db").read_bytes()
    plan = subprocess.run([*command, "--dry-run"], capture_output=True, text=True, env=env)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "  none: 0 of 1 trials ended, 1 cut short (resumed), 0 new; then 2 of 2 confirmation runs to train" in (
        plan.stdout
    )
    assert (root / "tune.db").read_bytes() == database  # the plan read the study, never wrote it

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
    plan = subprocess.run([*command, "--dry-run"], capture_output=True, text=True, env=env)
    assert "  none: 1 of 1 trials ended, 0 new; then 0 of 2 confirmation runs to train" in plan.stdout
    assert "nothing to train" in plan.stdout


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


HOLD_CLAIM = (
    "import sys, time\nfrom pathlib import Path\nfrom regexp.results.locks import RunLock\n"
    "RunLock(Path(sys.argv[1]), sys.argv[2], 'claim').acquire()\nprint('held', flush=True)\ntime.sleep(600)\n"
)


def new_study(tmp_path: Path, trials: int):
    """(results root, target, study) of a fresh one-config study "none" of `trials` trials, nothing trained."""
    root = tmp_path / "results"
    root.mkdir()
    [spec] = load_runs(write_config(tmp_path, "none", tuned(TINY5, LR, trials)))
    target = tune.Target(spec)
    return root, target, tune.open_study(target, root)


def test_a_trial_claimed_by_a_live_process_is_left_to_it_and_resumed_once_that_process_is_gone(tmp_path):
    """The choice of the next trial (no training): two processes never take one trial, and a
    RUNNING trial whose claimer died is taken up again instead of asking a new one."""
    root, target, study = new_study(tmp_path, trials=2)
    first = study.ask()  # trial 0: RUNNING, as a process left it that asked it
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_CLAIM, str(root), "none__trial-0000"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline() == "held\n"
        chosen = tune.next_trial(study, target, root)
        assert isinstance(chosen, tune.Claimed) and chosen.trial.number == 1 and not chosen.resumed
        study.tell(chosen.trial, 0.5)
        chosen.claim.release()
        waiting = tune.next_trial(study, target, root)  # two trials asked: none left to ask, trial 0 is busy
        assert isinstance(waiting, tune.WaitFor) and waiting.name == "none__trial-0000"
    finally:
        holder.kill()
        holder.wait()
    resumed = tune.next_trial(study, target, root)  # its claimer is gone: trial 0 was cut short
    assert isinstance(resumed, tune.Claimed) and resumed.resumed and resumed.trial.number == first.number
    study.tell(resumed.trial, 0.4)
    resumed.claim.release()
    assert tune.next_trial(study, target, root) is None
    assert len(study.trials) == 2


def test_a_trial_finished_between_listing_and_claiming_is_not_taken_up_again(tmp_path, monkeypatch):
    """Another worker tells its trial's end and lets go of its claim just after this one listed it RUNNING."""
    import optuna

    from regexp.results import locks

    root, target, study = new_study(tmp_path, trials=2)
    other = load_study(root, "none")  # the other worker's view of the study
    asked = other.ask()
    real_acquire = locks.RunLock.acquire

    def acquire_once_the_other_has_finished(self):
        if other.trials[0].state == optuna.trial.TrialState.RUNNING:
            other.tell(asked.number, 0.5)
        real_acquire(self)

    monkeypatch.setattr(locks.RunLock, "acquire", acquire_once_the_other_has_finished)
    chosen = tune.next_trial(study, target, root)
    assert isinstance(chosen, tune.Claimed) and chosen.trial.number == 1 and not chosen.resumed


def child_pids(pid: int) -> set[int]:
    """The pids of the processes `pid` started (Linux: /proc/<pid>/task/*/children)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found.update(int(child) for child in (task / "children").read_text().split())
        except OSError:  # the thread ended meanwhile
            continue
    return found


def claimer_of(root: Path, run: str) -> int | None:
    """The pid that holds the claim of trial `run` ("pid 123 on host"), if one is written."""
    try:
        text = (root / ".locks" / f"{run}.claim").read_text()
    except OSError:
        return None
    return int(text.split()[1]) if text.startswith("pid ") else None


def kill_a_worker_mid_trial(root: Path, driver: subprocess.Popen, timeout: float = 180) -> tuple[str, int]:
    """SIGKILL the worker process (a child of `driver`) that trains a RUNNING trial, once that
    trial has saved its first epoch's checkpoint: (the trial's run name, the worker's pid)."""
    import time

    import optuna

    deadline = time.monotonic() + timeout
    while True:
        assert driver.poll() is None, "the tuning ended before the test could kill a worker"
        assert time.monotonic() < deadline, "no worker trained a trial long enough to be killed"
        for checkpoint in sorted(root.glob(".inprogress/none__trial-*/checkpoint/epoch-*.npz")):
            run = checkpoint.parts[-3]
            [trial] = [t for t in load_study(root, "none").trials if t.user_attrs.get("run") == run]
            worker = claimer_of(root, run)
            if trial.state == optuna.trial.TrialState.RUNNING and worker in child_pids(driver.pid):
                os.kill(worker, signal.SIGKILL)
                return run, worker
        time.sleep(0.2)


@pytest.mark.slow
def test_a_killed_worker_leaves_its_trial_to_be_resumed_and_the_same_command_finishes_the_study(tmp_path):
    import optuna

    folder, root = tmp_path / "configs", tmp_path / "results"
    slow = merge(TINY5, {"data": {"limit": 1500}, "training": {"epochs": 3}})
    write_config(folder, "none", tuned(slow, LR, 2, pruner="none"))
    command = [sys.executable, "-m", "regexp", "tune", str(folder), "--results", str(root), "--jobs", "2"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    log = tmp_path / "log.txt"
    with open(log, "ab") as out:
        driver = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        killed_run, killed = kill_a_worker_mid_trial(root, driver)
        first_exit = driver.wait(timeout=600)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
    output = log.read_text()
    assert first_exit == 0 and "Traceback" not in output, output  # the other worker took the trial up: carry on
    assert f"tuning worker pid {killed} was killed (SIGKILL); the other workers ended every trial" in output
    assert f"{killed_run}: cut short earlier (its process ended); resuming it" in output

    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "confirmation: 2 runs, 2 already completed, 0 to run" in again.stdout  # nothing trains twice
    trials = load_study(root, "none").trials
    assert [t.number for t in trials] == [0, 1]  # exactly `trials`: the killed one resumed, none asked again
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials), [t.state for t in trials]
    assert sorted(t.user_attrs["run"] for t in trials) == [tune.trial_name("none", n) for n in range(2)]
    killed_metrics = metrics_of(root / killed_run)
    assert killed_metrics["status"] == "completed" and killed_metrics["epochs_run"] == 3
    assert killed_metrics["resumed_from_epoch"] >= 1  # from the killed worker's checkpoint
    assert list(trials[int(killed_run[-4:])].intermediate_values) == [1, 2, 3]
    assert tune.run_names([tune.Target(s) for s in load_runs(folder / "none.yaml")], root) == [
        "none__confirm__seed-1",
        "none__confirm__seed-2",
        *(tune.trial_name("none", n) for n in range(2)),
    ]
    for seed in (1, 2):
        assert metrics_of(root / f"none__confirm__seed-{seed}")["status"] == "completed"
    assert not (root / ".inprogress").exists() or not any((root / ".inprogress").iterdir())


def test_a_killed_worker_whose_trials_others_ended_is_said_and_any_other_stop_is_one_line_error(caplog):
    from regexp.errors import RegexpError

    with caplog.at_level("WARNING", logger="regexp"):
        tune.check_stopped_workers({123: -signal.SIGKILL}, 2, studies_done=True)
    assert caplog.messages == ["tuning worker pid 123 was killed (SIGKILL); the other workers ended every trial"]
    with pytest.raises(RegexpError) as cut_short:
        tune.check_stopped_workers({123: -signal.SIGKILL}, 2, studies_done=False)
    assert str(cut_short.value) == (
        "1 of 2 tuning workers stopped (pid 123 killed (SIGKILL)); run the same command again to resume "
        "(a trial cut short is resumed)"
    )
    with pytest.raises(
        RegexpError, match=r"2 of 3 tuning workers stopped \(pid 1 exit code 2, pid 2 killed \(signal 40\)\)"
    ):
        tune.check_stopped_workers({1: 2, 2: -40}, 3, studies_done=True)  # an error stops the tuning even so


def test_a_resumed_trial_whose_run_had_ended_is_told_from_its_run_folder_without_training(tmp_path, monkeypatch):
    import optuna

    from regexp.results import history_csv, write_record

    root, target, study = new_study(tmp_path, trials=1)
    claimed = tune.next_trial(study, target, root)
    run = tune.trial_spec(target, claimed.trial.number, tune.suggest(claimed.trial, target))
    folder = root / run.name  # the run ended; its process died before it told the study
    folder.mkdir()
    row = {"epoch": 1, "loss": 1.0, "accuracy": 0.6, "val_loss": 1.1, "val_accuracy": 0.77}
    (folder / "history.csv").write_text(history_csv([row]))
    record = {"run": run.name, "status": "completed", "config_hash": config_hash(run.config)}
    write_record(folder / "metrics.json", {**record, "test_accuracy": 0.7, "test_loss": 1.0, "best_val_accuracy": 0.77})
    monkeypatch.setattr(tune, "run_experiment", lambda *a, **k: pytest.fail("the ended run was trained again"))

    outcome = tune.train_trial(tune.Claimed(claimed.trial, claimed.claim, resumed=True), study, target, root, 0, None)
    claimed.claim.release()
    assert (outcome.status, outcome.folder, outcome.record.best_val_accuracy) == ("completed", folder, 0.77)
    [trial] = load_study(root, "none").trials
    assert trial.state == optuna.trial.TrialState.COMPLETE and trial.value == 0.77
