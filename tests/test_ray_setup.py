"""The Ray backend's parts that need no Ray: the install hint, option checks, --help, and the
reservation planner. These run whether Ray is installed or not (tests/test_ray.py needs it)."""

import os
import subprocess
import sys

import pytest

from regexp.errors import RegexpError
from regexp.run import ray_backend

from conftest import TINY, merge, write_config

TINY5 = merge(TINY, {"model": {"num_classes": 5}})


def test_without_ray_the_backend_says_how_to_install_it_and_options_must_match_the_backend(cli, tmp_path, monkeypatch):
    folder = tmp_path / "configs"
    write_config(folder, "plain", TINY5)
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if it were not installed
    missing = cli("sweep", folder, "--results", tmp_path / "r", "--backend", "ray")
    assert missing.exit_code == 2
    assert (
        missing.output.strip() == f"error: {ray_backend.RAY_INSTALL_HINT}"
        and 'pip install -e ".[ray]"' in missing.output
    )
    jobs = cli("sweep", folder, "--results", tmp_path / "r", "--backend", "ray", "--jobs", "2")
    assert jobs.exit_code == 2 and "--jobs is for the local backend" in jobs.output
    address = cli("sweep", folder, "--results", tmp_path / "r", "--address", "127.0.0.1:6379")
    assert address.exit_code == 2 and "need --backend ray" in address.output
    assert not (tmp_path / "r").exists()


def test_without_ray_a_ray_tune_gives_the_sweeps_install_hint_and_trains_nothing(cli, tmp_path, monkeypatch):
    folder = tmp_path / "configs"
    space = {"training.learning_rate": {"low": 1.0e-4, "high": 1.0e-2, "log": True}}
    write_config(folder, "none", {**TINY5, "search": {"trials": 1, "space": space}})
    monkeypatch.setitem(sys.modules, "ray", None)
    missing = cli("tune", folder, "--results", tmp_path / "r", "--backend", "ray", "--jobs", "2")
    assert missing.exit_code == 2 and missing.output.strip() == f"error: {ray_backend.RAY_INSTALL_HINT}"
    address = cli("tune", folder, "--results", tmp_path / "r", "--cpus-per-run", "2")
    assert address.exit_code == 2 and "need --backend ray" in address.output
    assert not (tmp_path / "r").exists()


def test_help_imports_neither_ray_nor_tensorflow():
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom regexp.cli import app\n"
        "assert CliRunner().invoke(app, ['sweep', '--help']).exit_code == 0\n"
        "assert CliRunner().invoke(app, ['tune', '--help']).exit_code == 0\n"
        "assert 'ray' not in sys.modules and 'tensorflow' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_a_reservation_no_node_can_hold_is_refused_before_anything_is_submitted():
    nodes = [{"Alive": True, "Resources": {"CPU": 4.0, "GPU": 1.0}}, {"Alive": False, "Resources": {"CPU": 64.0}}]
    assert ray_backend.plan_reservation(nodes, 1, None).gpus == 1  # GPUs in the cluster: one per run by default
    assert ray_backend.plan_reservation(nodes, 2, 0).at_once == 2
    assert ray_backend.plan_reservation(nodes, 1, 0.25).at_once == 4
    with pytest.raises(RegexpError, match="no node of the Ray cluster can hold"):
        ray_backend.plan_reservation(nodes, 8, 0)


def test_a_trial_worker_that_cannot_see_the_drivers_study_or_meets_an_error_sends_it_back_as_one_line(
    tmp_path, monkeypatch
):
    from regexp.errors import ConfigError

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")  # restored after the test: the task hides the GPUs
    visited = []

    def loop(targets, root, threads, worker):
        visited.append((targets, root, threads, worker))
        raise ConfigError("none.yaml: data.path: no such folder")

    work = ray_backend.TrialWork(loop, ["a target"], tmp_path, tmp_path / "tune.db")
    unseen = ray_backend.trial_worker_task(work, 1, 0, 3)
    assert unseen.error.startswith(f"{tmp_path / 'tune.db'}: not found on Ray node ") and not visited
    assert unseen.error.endswith("a tuning on Ray needs --results on a folder every node mounts at the same path")
    assert os.environ["CUDA_VISIBLE_DEVICES"] == ""
    (tmp_path / "tune.db").write_bytes(b"")
    failed = ray_backend.trial_worker_task(work, 2, 0, 3)
    assert failed.error == "none.yaml: data.path: no such folder"
    assert visited == [(["a target"], tmp_path, 2, 3)]
