"""`regexp sweep --backend ray` against a Ray instance this module starts on 127.0.0.1 only.

Ray binds its servers to the machine's outward address unless told it is not part of a
cluster: the variable below (read when Ray is imported) keeps every server on 127.0.0.1, and
the fixture checks that before and after starting Ray.
"""

import os

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # Ray's switch for a loopback-only node

import json  # noqa: E402
import re  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import ray  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.slow]

from regexp.config import load_runs  # noqa: E402
from regexp.results.locks import RunLock, RunLocked  # noqa: E402
from regexp.results.store import read_history  # noqa: E402
from regexp.run import ray_backend  # noqa: E402
from regexp.run.logs import collected_lines  # noqa: E402
from regexp.run.runner import COMPLETED, FAILED, RUNNING_ELSEWHERE, RunOutcome  # noqa: E402
from regexp.run.sweep import make_executor, run_sweep  # noqa: E402

from conftest import TINY, lock_held_elsewhere, merge, write_config  # noqa: E402

LOOPBACK = "127.0.0.1"
TINY5 = merge(TINY, {"model": {"num_classes": 5}})
# Long enough that the test can kill its worker between epochs: ~24 steps an epoch, 3 epochs.
SLOW5 = merge(TINY5, {"data": {"limit": 1500, "test_limit": 100}, "training": {"epochs": 3, "batch_size": 50}})
# metrics.json fields that measure the machine, not the run.
TIMINGS = {"wall_time_s", "train_samples_per_s", "epoch_seconds", "finished_at"}
SWEEP_TIMEOUT_S = 240


@dataclass
class RayHead:
    address: str  # the GCS address a driver connects to
    work_dir: Path  # where the workers make their private results roots


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    """A 2-CPU Ray instance on 127.0.0.1, shut down at the end whatever happens.

    Its workers inherit the environment set here: their private roots go under a folder the
    test can watch, and they use a test cache.
    """
    from ray._private import services

    if services.get_node_ip_address() != LOOPBACK:
        pytest.fail("Ray would bind to an outward address; refusing to start it")
    work_dir = tmp_path_factory.mktemp("ray-workers")
    worker_env = {
        ray_backend.WORK_DIR_ENV: str(work_dir),
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "REGEXP_CACHE": str(tmp_path_factory.mktemp("ray-cache")),
    }
    saved = {key: os.environ.get(key) for key in worker_env}
    os.environ.update(worker_env)
    try:
        context = ray.init(
            num_cpus=2,
            num_gpus=0,
            include_dashboard=False,
            _node_ip_address=LOOPBACK,
            object_store_memory=200 * 2**20,
            log_to_driver=False,
        )
        _restore_env(saved)
        assert context.address_info["node_ip_address"] == LOOPBACK
        assert context.address_info["gcs_address"].startswith(f"{LOOPBACK}:")
        yield RayHead(context.address_info["gcs_address"], work_dir)
    finally:
        _restore_env(saved)
        ray.shutdown()


def _restore_env(saved: dict) -> None:
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def start_ray_sweep(
    folder: Path, root: Path, head: RayHead, log: Path, *options: str, command: str = "sweep"
) -> subprocess.Popen:
    """`regexp sweep --backend ray --address HEAD` (or another `command`) as a separate driver process."""
    command = [
        sys.executable,
        "-m",
        "regexp",
        command,
        str(folder),
        "--results",
        str(root),
        "--backend",
        "ray",
        "--address",
        head.address,
        "--cpus-per-run",
        "1",
        *options,
    ]
    with open(log, "ab") as out:
        return subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        )


def kill_worker_once_training(head: RayHead, run: str, process: subprocess.Popen, timeout: float = 150) -> int:
    """SIGKILL the worker that trains `run` once its first epoch's checkpoint is saved; its pid.

    The worker's private root is named regexp-ray-<pid>-<random>.
    """
    deadline = time.monotonic() + timeout
    while True:
        for marker in head.work_dir.glob(f"regexp-ray-*/.inprogress/{run}/checkpoint/epoch-*.npz"):
            pid = int(re.fullmatch(r"regexp-ray-(\d+)-\w+", marker.relative_to(head.work_dir).parts[0]).group(1))
            os.kill(pid, signal.SIGKILL)
            return pid
        assert process.poll() is None, "the sweep ended before the test could kill a worker"
        assert time.monotonic() < deadline, f"no worker started training {run}"
        time.sleep(0.05)


def finish(process: subprocess.Popen, timeout: float) -> int:
    """Wait for the sweep; past `timeout`, kill its process group and fail."""
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        pytest.fail(f"the Ray sweep did not finish in {timeout}s")


def run_folders(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def event_folders(run: Path) -> list[str]:
    """The folders under a run's tensorboard/ that hold event files."""
    return sorted({str(p.parent.relative_to(run)) for p in (run / "tensorboard").rglob("*tfevents*")})


def assert_same_runs(local: Path, remote: Path) -> None:
    """Same run folders, same files, same bytes; metrics.json equal but for its timings."""
    names = run_folders(local)
    assert names == run_folders(remote) and len(names) == 4
    for name in names:
        files = sorted(p.name for p in (local / name).iterdir())
        assert files == sorted(p.name for p in (remote / name).iterdir()), name
        for file in files:
            if file not in ("metrics.json", "tensorboard"):  # event files hold wall times and a host/pid name
                assert (local / name / file).read_bytes() == (remote / name / file).read_bytes(), f"{name}/{file}"
        assert event_folders(local / name) == event_folders(remote / name), name
        a, b = (json.loads((root / name / "metrics.json").read_text()) for root in (local, remote))
        for record in (a, b):  # which process trained which run first is up to the scheduler
            record["training_path"].pop("compiled")
        assert {k: v for k, v in a.items() if k not in TIMINGS} == {k: v for k, v in b.items() if k not in TIMINGS}, (
            name
        )


def test_a_ray_sweep_writes_what_a_local_one_does_even_when_a_worker_is_killed_mid_run(cli, tmp_path, ray_head):
    folder = tmp_path / "configs"
    write_config(folder, "a_slow", SLOW5)
    write_config(
        folder,
        "grid",
        merge(TINY5, {"regularizer": {"type": "l2", "targets": ["activity"]}, "sweep": {"training.seed": [0, 1, 2]}}),
    )
    # One TensorFlow thread per run on both sides (Ray: --cpus-per-run 1; local: as many jobs as
    # cores), so the numbers must agree to the bit.
    local, remote, log = tmp_path / "local", tmp_path / "ray", tmp_path / "ray.log"
    started = time.perf_counter()
    result = cli("sweep", folder, "--results", local, "--jobs", max(2, os.cpu_count() or 1))
    local_seconds = time.perf_counter() - started
    assert result.exit_code == 0, result.output

    started = time.perf_counter()
    process = start_ray_sweep(folder, remote, ray_head, log)
    killed = kill_worker_once_training(ray_head, "a_slow", process)
    returncode = finish(process, SWEEP_TIMEOUT_S)
    ray_seconds = time.perf_counter() - started
    output = log.read_text()
    assert returncode == 0, output
    print(f"four-run sweep: local --jobs 2 {local_seconds:.1f}s, ray (one worker killed) {ray_seconds:.1f}s")

    assert f"running on the Ray cluster at {LOOPBACK}:" in output and "each run reserves 1 CPU" in output
    assert "[sweep 4/4 done" in output
    finished_on = re.search(r"a_slow: completed on \S+ pid (\d+)", output)
    assert finished_on and int(finished_on.group(1)) != killed  # retried in another worker
    assert_same_runs(local, remote)
    for name in run_folders(remote):
        metrics = json.loads((remote / name / "metrics.json").read_text())
        assert metrics["status"] == COMPLETED
        # Thread pools sized before TensorFlow started, so memory growth (set next) came before any model.
        assert metrics["training_path"]["threads"] == {"intra_op": 1, "inter_op": 1}
    assert json.loads((remote / "a_slow" / "metrics.json").read_text())["epochs_run"] == 3
    assert not (remote / ".inprogress").exists() and not list(remote.rglob("*.tmp"))
    assert (remote / "summary.md").exists()

    again = subprocess.run(
        [
            sys.executable,
            "-m",
            "regexp",
            "sweep",
            str(folder),
            "--results",
            str(remote),
            "--backend",
            "ray",
            "--address",
            ray_head.address,
        ],
        capture_output=True,
        text=True,
        timeout=SWEEP_TIMEOUT_S,
    )
    assert again.returncode == 0 and "4 already completed, 0 to run" in again.stdout, again.stdout + again.stderr


def task_pid(name: str, timeout: float = 60) -> int:
    """The pid of the Ray worker running task `name` (Ray titles it ray::<name>) in this module's Ray."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in Path("/proc").iterdir():
            try:
                title = (proc / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
                raylet = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
                started_by_us = (
                    int((Path("/proc") / str(raylet) / "stat").read_text().rsplit(")", 1)[1].split()[1]) == os.getpid()
                )
            except (OSError, ValueError, IndexError):
                continue
            if title.startswith(f"ray::{name}") and started_by_us:
                return int(proc.name)
        time.sleep(0.05)
    pytest.fail(f"no Ray worker runs {name}")


def test_with_shared_results_a_killed_run_resumes_from_its_checkpoint(tmp_path, ray_head):
    folder, root, log = tmp_path / "configs", tmp_path / "shared", tmp_path / "ray.log"
    write_config(folder, "a_slow", SLOW5)
    process = start_ray_sweep(folder, root, ray_head, log, "--shared-results")
    checkpoint = root / ".inprogress" / "a_slow" / "checkpoint"
    deadline = time.monotonic() + 150
    while not list(checkpoint.glob("epoch-*.npz")):  # written straight into the shared root, by the worker
        assert process.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)
    killed = task_pid("regexp:a_slow")
    os.kill(killed, signal.SIGKILL)
    returncode = finish(process, SWEEP_TIMEOUT_S)
    output = log.read_text()
    assert returncode == 0, output
    assert "writing into the shared" in output and "a_slow: synthetic (5 classes)" in output
    finished_on = re.search(r"a_slow: completed on \S+ pid (\d+)", output)
    assert finished_on and int(finished_on.group(1)) != killed
    metrics = json.loads((root / "a_slow" / "metrics.json").read_text())
    assert metrics["status"] == COMPLETED and metrics["epochs_run"] == 3
    assert metrics["resumed_from_epoch"] >= 1  # the retry found the dead worker's checkpoint
    assert [row["epoch"] for row in read_history(root / "a_slow" / "history.csv")] == [1, 2, 3]
    assert not (root / ".inprogress").exists()


def test_an_exception_in_a_task_fails_that_run_once_and_the_others_are_written(tmp_path, ray_head, monkeypatch):
    folder = tmp_path / "configs"
    specs = load_runs(write_config(folder, "grid", merge(TINY5, {"sweep": {"training.seed": [0, 1]}})), [])
    attempts = tmp_path / "attempts"
    fake_metrics = {
        "run": "grid__seed-1",
        "status": COMPLETED,
        "config_hash": "h",
        "test_loss": 1.0,
        "test_accuracy": 0.5,
    }

    def fake_run(spec, cpus, gpus, shared_root, force):  # runs in a Ray worker, pickled by value
        with open(attempts, "a") as f:
            f.write(spec.name + "\n")
        if spec.name.endswith("seed-0"):
            raise RuntimeError("injected fault outside run_experiment")
        outcome = RunOutcome(spec.name, COMPLETED, Path("elsewhere"), fake_metrics)
        files = {
            "config.yaml": b"config\n",
            "sub/notes.txt": b"notes\n",
            "metrics.json": json.dumps(fake_metrics).encode(),
        }
        return ray_backend.WorkerResult(outcome, files, [f"{spec.name}: trained"], 0.1, "worker", [])

    monkeypatch.setattr(ray_backend, "run_task", fake_run)
    root = tmp_path / "results"
    with collected_lines() as lines:
        outcomes = run_sweep(specs, make_executor(root, backend="ray"))

    assert [o.status for o in outcomes] == [FAILED, COMPLETED]
    assert "injected fault outside run_experiment" in outcomes[0].message
    assert sorted(attempts.read_text().split()) == ["grid__seed-0", "grid__seed-1"]  # no retry of the exception
    assert not (root / "grid__seed-0").exists()
    assert outcomes[1].folder == root / "grid__seed-1"
    assert (root / "grid__seed-1" / "sub" / "notes.txt").read_bytes() == b"notes\n"
    assert json.loads((root / "grid__seed-1" / "metrics.json").read_text()) == fake_metrics
    assert "grid__seed-1: trained" in lines and any(line.startswith("[sweep 2/2 done, 1 failed") for line in lines)
    assert ray.is_initialized()  # a cluster the caller connected to is left connected


def test_without_a_shared_root_the_driver_holds_each_runs_lock_and_leaves_a_locked_run_alone(
    tmp_path, ray_head, monkeypatch
):
    folder, root = tmp_path / "configs", tmp_path / "results"
    specs = load_runs(write_config(folder, "grid", merge(TINY5, {"sweep": {"training.seed": [0, 1]}})), [])
    attempts = tmp_path / "attempts"

    def fake_run(spec, cpus, gpus, shared_root, force):  # runs in a Ray worker, pickled by value
        with open(attempts, "a") as f:
            f.write(spec.name + "\n")
        try:  # the run's lock on the driver's root, while its task runs
            RunLock(root, spec.name).acquire()
            holder = "nobody"
        except RunLocked as locked:
            holder = locked.holder
        metrics = {"run": spec.name, "status": COMPLETED, "config_hash": "h", "test_loss": 1.0, "test_accuracy": 0.5}
        outcome = RunOutcome(spec.name, COMPLETED, Path("elsewhere"), metrics)
        files = {"metrics.json": json.dumps(metrics).encode()}
        return ray_backend.WorkerResult(outcome, files, [f"{spec.name}: locked by {holder}"], 0.1, "worker", [])

    monkeypatch.setattr(ray_backend, "run_task", fake_run)
    with lock_held_elsewhere(root, "grid__seed-0") as holder, collected_lines() as lines:
        outcomes = run_sweep(specs, make_executor(root, backend="ray"))

    assert [o.status for o in outcomes] == [RUNNING_ELSEWHERE, COMPLETED]
    assert f"pid {holder.pid}" in outcomes[0].message
    assert attempts.read_text().split() == ["grid__seed-1"]  # the locked run was not submitted
    assert f"grid__seed-1: locked by pid {os.getpid()} on {socket.gethostname()}" in lines  # by this driver
    assert any(line.startswith("[sweep 2/2 done |") for line in lines)  # not counted as failed
    lock = RunLock(root, "grid__seed-1")
    lock.acquire()  # the driver gave it back once the run's folder was in place
    lock.release()


def test_a_ray_tune_with_two_workers_ends_every_trial_once_even_when_a_worker_is_killed(tmp_path, ray_head):
    """Trial workers as Ray tasks share tune.db and the claims; the one killed mid-trial is
    started again by Ray, its trial resumed (by it or the other worker), none lost or repeated."""
    import optuna
    from test_tune import claimer_of

    from regexp.run import tune

    folder, root, log = tmp_path / "configs", tmp_path / "results", tmp_path / "tune.log"
    space = {"training.learning_rate": {"low": 1.0e-4, "high": 1.0e-2, "log": True}}
    write_config(folder, "none", {**SLOW5, "search": {"trials": 2, "confirm_seeds": 2, "space": space}})
    process = start_ray_sweep(folder, root, ray_head, log, "--jobs", "2", command="tune")
    deadline = time.monotonic() + 150
    while True:  # SIGKILL the worker that trains a trial, once its first epoch is saved
        saved = sorted(root.glob(".inprogress/none__trial-*/checkpoint/epoch-*.npz"))
        killed_run = saved[0].parts[-3] if saved else None
        killed = killed_run and claimer_of(root, killed_run)
        if killed:
            title = Path(f"/proc/{killed}/cmdline").read_bytes().split(b"\0")[0]
            assert title.startswith(b"ray::regexp:tune-worker-"), title  # a Ray worker, not the driver
            os.kill(killed, signal.SIGKILL)
            break
        assert process.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)
    returncode = finish(process, SWEEP_TIMEOUT_S)
    output = log.read_text()
    assert returncode == 0 and "Traceback" not in output, output
    assert f"tuning with 2 trial workers on the Ray cluster at {LOOPBACK}:" in output
    assert "tuning worker 0 on" in output and "tuning worker 1 on" in output
    assert "[tune 0/2 trials ended]" in output and "[tune 2/2 trials ended]" in output  # said while they train
    assert f"{killed_run}: cut short earlier (its process ended); resuming it" in output

    trials = optuna.load_study(study_name="none", storage=f"sqlite:///{root / 'tune.db'}").trials
    assert [t.number for t in trials] == [0, 1]  # exactly `trials`: none asked twice
    assert all(t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for t in trials)
    assert [t.user_attrs["run"] for t in trials] == [tune.trial_name("none", n) for n in range(2)]
    for trial in trials:  # each worker reported every epoch it trained to the study: what the pruner judges
        epochs = json.loads((root / trial.user_attrs["run"] / "metrics.json").read_text())["epochs_run"]
        assert list(trial.intermediate_values) == list(range(1, epochs + 1))
    assert json.loads((root / killed_run / "metrics.json").read_text())["resumed_from_epoch"] >= 1
    assert run_folders(root) == [
        "none__confirm__seed-1",
        "none__confirm__seed-2",
        *(t.user_attrs["run"] for t in trials),
    ]
    for seed in (1, 2):
        metrics = json.loads((root / f"none__confirm__seed-{seed}" / "metrics.json").read_text())
        assert metrics["status"] == COMPLETED and metrics["tuning"]["role"] == "confirmation"
    assert "writing into the shared" in output  # the confirmation runs: the sweep's Ray executor, on the shared root


def test_an_error_in_ray_trial_workers_stops_the_tuning_in_one_line(tmp_path, ray_head):
    from regexp.errors import ConfigError, RegexpError

    (tmp_path / "tune.db").write_bytes(b"")

    def loop(targets, root, threads, worker):  # runs in a Ray worker, pickled by value
        raise ConfigError("none.yaml: data.path: no such folder")

    work = ray_backend.TrialWork(loop, [], tmp_path, tmp_path / "tune.db")
    with pytest.raises(RegexpError) as stopped:
        ray_backend.run_trial_workers(ray, work, 2, ray_backend.RayCluster())
    assert str(stopped.value) == (  # both workers met it: said once
        "a tuning worker on Ray stopped: none.yaml: data.path: no such folder; run the same command again to resume"
    )
