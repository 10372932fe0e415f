"""A quiet console: no TensorFlow/absl C++ log lines unless --verbose."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from regexp.console import keep_line, tensorflow_lines_filtered

from conftest import CONFIGS, REPO, TINY, merge, write_config

TENSORFLOW_PREFIXES = ("I0000", "W0000", "E0000")


def regexp_command(*args, tmp_path) -> subprocess.CompletedProcess:
    """`regexp ARGS` in a fresh process with the real stderr and TensorFlow's default log level."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-m", "regexp", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )


def tensorflow_lines(text: str) -> list[str]:
    return [
        line
        for line in text.splitlines()
        if line.startswith(TENSORFLOW_PREFIXES) or "cudart_stub" in line or "absl::InitializeLog" in line
    ]


@pytest.mark.slow
def test_the_demo_prints_no_tensorflow_log_lines_and_verbose_brings_them_back(tmp_path):
    quiet = regexp_command(
        "run", CONFIGS / "demo_digits.yaml", "--epochs", "1", "--results", tmp_path / "a", tmp_path=tmp_path
    )
    assert quiet.returncode == 0, quiet.stderr
    assert tensorflow_lines(quiet.stdout + quiet.stderr) == []
    assert "Test accuracy" in quiet.stdout
    loud = regexp_command(
        "--verbose",
        "run",
        CONFIGS / "demo_digits.yaml",
        "--epochs",
        "1",
        "--results",
        tmp_path / "b",
        tmp_path=tmp_path,
    )
    assert loud.returncode == 0, loud.stderr
    assert tensorflow_lines(loud.stderr) != []


@pytest.mark.slow
def test_parallel_sweep_workers_are_quiet_too(tmp_path):
    folder = tmp_path / "configs"
    for name in ("a", "b"):
        write_config(folder, name, merge(TINY, {"model": {"num_classes": 5}}))
    done = regexp_command("sweep", folder, "--jobs", "2", "--results", tmp_path / "r", tmp_path=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert tensorflow_lines(done.stdout + done.stderr) == []


def test_only_tensorflow_log_lines_are_dropped():
    assert not keep_line("I0000 00:00:1795642693.794633   25163 port.cc:153] oneDNN custom operations are on.\n")
    assert not keep_line("E0000 00:00:1795642710.280596   25291 cuda_platform.cc:52] failed call to cuInit\n")
    assert not keep_line("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n")
    assert keep_line("error: configs/x.yaml: regularizer.type: 'l3' is not one of none, l1, l2, elasticnet\n")
    assert keep_line("I0000 is not a log line without its time, thread and source\n")


def test_the_filter_writes_every_other_line_on(capfd):
    dropped: list[str] = []
    with tensorflow_lines_filtered(dropped):
        os.write(2, b"I0000 00:00:1795642693.794633   25163 port.cc:153] noise\nsomething the user must see\n")
        os.write(2, b"W0000 00:00:1795642693.794633   25163 x.cc:1] more noise\nand this too\n")
    assert capfd.readouterr().err == "something the user must see\nand this too\n"
    assert [line.split("]")[0][-4:] for line in dropped] == [":153", "cc:1"]
