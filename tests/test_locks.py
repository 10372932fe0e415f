"""Run locks: one results root, many writers (real processes)."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from regexp.config import load_runs
from regexp.results.locks import RunLock, RunLocked, lock_path
from regexp.run import runner
from regexp.run.runner import SKIPPED, run_experiment

from conftest import TINY, lock_held_elsewhere, merge, write_config

TINY5 = merge(TINY, {"model": {"num_classes": 5}})
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def status_rows(output: str) -> dict[str, str]:
    """The sweep's status table as {run: status}."""
    lines = output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("run ") and "status" in line)
    rows = {}
    for line in lines[header + 1 :]:
        if line.startswith("Summary: "):
            break
        name, rest = line.split(None, 1)
        rows[name] = "running elsewhere" if rest.startswith("running elsewhere") else rest.split()[0]
    return rows


def test_a_lock_held_by_a_killed_process_is_free_at_once(tmp_path):
    with lock_held_elsewhere(tmp_path, "run") as holder:
        with pytest.raises(RunLocked) as refused:
            RunLock(tmp_path, "run").acquire()
        assert f"pid {holder.pid} on {socket.gethostname()}" in str(refused.value)
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        lock = RunLock(tmp_path, "run")
        lock.acquire()  # no waiting, no stale lock to clean up
    assert lock_path(tmp_path, "run").read_text() == f"pid {os.getpid()} on {socket.gethostname()}\n"
    lock.release()
    assert lock_path(tmp_path, "run").read_text() == ""  # a free lock names no holder


def test_run_on_a_run_being_trained_elsewhere_exits_2_in_one_line_naming_pid_and_host(tmp_path):
    config = write_config(tmp_path, "busy", TINY5)
    root = tmp_path / "results"
    with lock_held_elsewhere(root, "busy") as holder:
        done = subprocess.run(
            [sys.executable, "-m", "regexp", "run", str(config), "--results", str(root)],
            capture_output=True,
            text=True,
            env=ENV,
            timeout=300,
            check=False,
        )
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith(
        f"error: {root / 'busy'}: being trained by another process (pid {holder.pid} on {socket.gethostname()})"
    )
    assert not (root / "busy").exists() and not (root / ".inprogress").exists()


@pytest.mark.slow
def test_a_sweep_leaves_a_run_locked_elsewhere_alone_and_lists_it_without_failing(cli, tmp_path):
    folder, root = tmp_path / "configs", tmp_path / "results"
    for name in ("a", "b", "c"):
        write_config(folder, name, TINY5)
    with lock_held_elsewhere(root, "b") as holder:
        result = cli("sweep", folder, "--results", root)
    assert result.exit_code == 0, result.output
    assert status_rows(result.output) == {"a": "completed", "b": "running elsewhere", "c": "completed"}
    row = next(line for line in result.output.splitlines() if line.startswith("b "))
    assert f"by pid {holder.pid} on {socket.gethostname()}" in row
    assert "[sweep 3/3 done |" in result.output  # done, and not counted as failed
    assert not (root / "b").exists()

    again = cli("sweep", folder, "--results", root)  # the lock is free now: b runs
    assert again.exit_code == 0 and "2 already completed, 1 to run" in again.output
    assert json.loads((root / "b" / "metrics.json").read_text())["status"] == "completed"


def test_a_run_another_process_completed_meanwhile_is_skipped_not_trained_again(cli, tmp_path, monkeypatch):
    config = write_config(tmp_path, "x", TINY5)
    elsewhere, root = tmp_path / "elsewhere", tmp_path / "results"
    assert cli("run", config, "--results", elsewhere).exit_code == 0
    real_load = runner.load_run_data

    def load_while_another_process_completes_it(spec):  # between the first check and the lock
        shutil.copytree(elsewhere / "x", root / "x")
        return real_load(spec)

    monkeypatch.setattr(runner, "load_run_data", load_while_another_process_completes_it)
    outcome = run_experiment(load_runs(config, [])[0], root)
    assert outcome.status == SKIPPED
    assert (root / "x" / "metrics.json").read_bytes() == (elsewhere / "x" / "metrics.json").read_bytes()
    assert not (root / ".inprogress").exists()


def start_sweep(folder: Path, root: Path, *options: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "regexp", "sweep", str(folder), "--results", str(root), *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=ENV,
    )


@pytest.mark.slow
def test_two_sweeps_on_one_root_train_every_run_exactly_once_and_both_end_with_a_summary(tmp_path):
    folder, root = tmp_path / "configs", tmp_path / "results"
    names = ["a", "b", "c", "d"]
    for name in names:
        write_config(folder, name, merge(TINY5, {"training": {"epochs": 2, "batch_size": 50}}))
    # One of them runs its runs in worker processes: there the worker holds each run's lock.
    sweeps = [start_sweep(folder, root), start_sweep(folder, root, "--jobs", "2")]
    outputs = [sweep.communicate(timeout=900)[0] for sweep in sweeps]
    for sweep, output in zip(sweeps, outputs):
        assert sweep.returncode == 0, output
        assert f"Summary: {root / 'summary.md'}" in output
    both = "\n".join(outputs)
    for name in names:  # each run starts training once, in one process or the other
        assert sum(line.startswith(f"{name}: synthetic (5 classes);") for line in both.splitlines()) == 1, name
    assert both.count("Test loss: ") == len(names)
    tables = [status_rows(output) for output in outputs]
    for name in names:
        statuses = sorted(table[name] for table in tables)
        assert statuses in (["completed", "running elsewhere"], ["completed", "skipped"]), (name, statuses)
    assert "running elsewhere" in [status for table in tables for status in table.values()]  # they did meet
    for name in names:
        assert json.loads((root / name / "metrics.json").read_text())["status"] == "completed"
        assert f"| {name} | 1/1 |" in (root / "summary.md").read_text()  # the last summary written has them all
