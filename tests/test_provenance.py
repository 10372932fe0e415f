"""Provenance in metrics.json: regexp's version and commit, the machine, the data's SHA-256."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

from regexp.config import DataConfig
from regexp.data import cache
from regexp.data.idx import MNIST_FILE_NAMES
from regexp.run import provenance

from conftest import TINY, merge, write_config


def git(folder: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    return subprocess.run(
        ["git", "-C", str(folder), *args], capture_output=True, text=True, env=env, check=True
    ).stdout.strip()


def test_a_git_checkout_records_its_commit_clean_then_dirty(tmp_path):
    package = tmp_path / "repo" / "pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("x = 1\n")
    git(tmp_path / "repo", "init", "-q")
    git(tmp_path / "repo", "add", ".")
    git(tmp_path / "repo", "commit", "-q", "-m", "first")
    commit = git(tmp_path / "repo", "rev-parse", "HEAD")
    (tmp_path / "repo" / "results").mkdir()
    (tmp_path / "repo" / "results" / "metrics.json").write_text("{}")  # untracked output is not a change
    assert provenance.git_state(package) == {"commit": commit, "dirty": False}
    (package / "__init__.py").write_text("x = 2\n")
    assert provenance.git_state(package) == {"commit": commit, "dirty": True}


def test_outside_a_git_checkout_there_is_no_commit_and_no_error(tmp_path):
    (tmp_path / "pkg").mkdir()
    assert provenance.git_state(tmp_path / "pkg") is None


def test_a_files_sha256_is_computed_once_and_again_when_the_file_changes(tmp_path, monkeypatch):
    data = tmp_path / "archive.zip"
    data.write_bytes(b"some bytes" * 1000)
    assert provenance.file_sha256(data) == hashlib.sha256(data.read_bytes()).hexdigest()
    [entry] = (cache.cache_dir() / "digests").iterdir()

    def no_reading(*args, **kwargs):
        raise AssertionError("read the file again")

    with monkeypatch.context() as patch:
        patch.setattr(provenance, "open", no_reading, raising=False)
        assert provenance.file_sha256(data) == hashlib.sha256(data.read_bytes()).hexdigest()
    data.write_bytes(b"other bytes")
    assert provenance.file_sha256(data) == hashlib.sha256(b"other bytes").hexdigest()
    entry.write_text("{damaged")  # an unreadable cache entry is only a miss
    assert provenance.file_sha256(data) == hashlib.sha256(b"other bytes").hexdigest()


def test_file_data_records_every_file_read_and_in_memory_data_what_makes_it(tmp_path):
    for name in MNIST_FILE_NAMES:
        (tmp_path / name).write_bytes(name.encode())
    source = provenance.data_source(DataConfig(dataset="idx", path=str(tmp_path)))
    assert [(Path(f["path"]).name, f["sha256"]) for f in source["files"]] == [
        (name, hashlib.sha256(name.encode()).hexdigest()) for name in MNIST_FILE_NAMES
    ]
    assert provenance.data_source(DataConfig(dataset="digits"))["made_by"].startswith("scikit-learn ")
    assert provenance.data_source(DataConfig(dataset="synthetic"))["files"] is None


def test_a_runs_metrics_record_its_provenance(cli, tmp_path):
    import regexp

    config = write_config(tmp_path, "p", merge(TINY, {"model": {"num_classes": 5}}))
    assert cli("run", config, "--results", tmp_path / "r").exit_code == 0
    metrics = json.loads((tmp_path / "r" / "p" / "metrics.json").read_text())
    assert metrics["versions"]["regexp"] == regexp.__version__ and "tensorflow" in metrics["versions"]
    assert set(metrics["host"]) == {"name", "cpu", "cores", "gpus"} and metrics["host"]["cores"] >= 1
    assert metrics["host"]["cpu"]
    assert metrics["data_source"]["made_by"].startswith("regexp ")
    assert metrics["regexp_source"] == source_as_git_tells(Path(regexp.__file__).parent)


def source_as_git_tells(package: Path) -> dict | None:
    """What git itself says of the checkout the package's files are in (None outside one)."""

    def ask(*args: str) -> str:
        return subprocess.run(["git", "-C", str(package), *args], capture_output=True, text=True).stdout.strip()

    if ask("ls-files", ".") == "":
        return None
    return {"commit": ask("rev-parse", "HEAD"), "dirty": ask("status", "--porcelain", "--untracked-files=no") != ""}
