"""Where a run's numbers came from: regexp's version and source commit, the machine, the data's bytes.

Recorded in metrics.json beside the versions of Python, TensorFlow, Keras and numpy. Nothing
here imports TensorFlow (the GPU's name is read only where TensorFlow is already loaded).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import socket
import subprocess
import sys
from pathlib import Path

import regexp
from regexp.data import cache
from regexp.results import write_text_atomic

GIT_TIMEOUT_S = 5
PACKAGE_DIR = Path(regexp.__file__).resolve().parent
DIGEST_CHUNK = 1 << 20


def regexp_version() -> str:
    return regexp.__version__


def _git(folder: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=GIT_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_state(folder: Path = PACKAGE_DIR) -> dict | None:
    """{"commit", "dirty"} of the git checkout `folder`'s tracked files belong to, or None where
    it is not in one (an installed package), git is missing or does not answer in time.

    `dirty`: tracked files differ from the commit (untracked files, e.g. results/, do not count).
    """
    if not _git(folder, "ls-files", "."):  # also None outside a repository
        return None
    commit = _git(folder, "rev-parse", "HEAD")
    changes = _git(folder, "status", "--porcelain", "--untracked-files=no")
    if commit is None or changes is None:
        return None
    return {"commit": commit, "dirty": bool(changes)}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpu_models() -> list[str] | None:
    tf = sys.modules.get("tensorflow")
    if tf is None:
        return None
    gpus = tf.config.list_physical_devices("GPU")
    return [tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name) for gpu in gpus] or None


def host() -> dict:
    """The machine: host name, CPU model, core count, GPU models (None without one)."""
    return {"name": socket.gethostname(), "cpu": _cpu_model(), "cores": os.cpu_count(), "gpus": _gpu_models()}


def _is_sha256(value) -> bool:
    """Whether `value` is a SHA-256 as hexdigest() writes it (a cache entry holding anything else is a miss)."""
    return isinstance(value, str) and re.fullmatch(r"[0-9a-f]{64}", value) is not None


def _cached_digest(identity, compute) -> str:
    """The SHA-256 that `compute()` gives for what `identity` names (files by path, size and mtime),
    computed once and kept in the cache folder; an entry that does not hold a SHA-256 is a miss."""
    key = json.dumps(identity, sort_keys=True)
    entry = cache.cache_dir() / "digests" / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"
    try:
        stored = json.loads(entry.read_text())
        if stored.get("identity") == identity and _is_sha256(stored.get("sha256")):
            return stored["sha256"]
    except (OSError, ValueError, KeyError, AttributeError, RecursionError):
        pass
    sha = compute()
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(entry, json.dumps({"identity": identity, "sha256": sha}))
    except OSError:
        pass  # a cache that cannot be written costs only time
    return sha


def _read_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(DIGEST_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, computed once per (path, size, mtime) and kept in the cache folder."""
    return _cached_digest(cache.file_identity(path), lambda: _read_sha256(path))


def source_files(data) -> list[Path]:
    """The files a run's data config reads (none for digits and synthetic; an image folder's are
    recorded as one entry, see `data_source`)."""
    from regexp.data import emnist, idx

    if data.dataset == "emnist":
        if data.path is None:
            return [emnist.download_path()]
        path = Path(data.path).expanduser()
        return idx.locate(path, emnist.idx_names(data.split)) if path.is_dir() else [path]
    if data.dataset == "idx":
        return idx.locate(Path(data.path).expanduser(), idx.MNIST_FILE_NAMES)
    if data.dataset == "npz":
        return [Path(data.path).expanduser()]
    return []


def folder_sha256(files: list[Path], root: Path) -> str:
    """One SHA-256 for a set of files: of each file's path relative to `root` and its own SHA-256,
    in order. Computed once per listing of (path, size, mtime) and kept in the cache folder."""

    def compute() -> str:
        digest = hashlib.sha256()
        for path in files:
            digest.update(f"{path.relative_to(root).as_posix()} {_read_sha256(path)}\n".encode())
        return digest.hexdigest()

    return _cached_digest([cache.file_identity(path) for path in files], compute)


def image_folder_source(path: str) -> dict:
    """An image folder as one entry: the folder, its image count, their total size, and one
    SHA-256 over their relative paths and contents (`folder_sha256`)."""
    from regexp.data import image_folder

    root = Path(path).expanduser()
    listing = image_folder.image_files(root)
    files = [file for split in image_folder.SPLITS for group in listing[split].values() for file in group]
    return {
        "path": str(root.resolve()),
        "images": len(files),
        "size": sum(file.stat().st_size for file in files),
        "sha256": folder_sha256(files, root),
    }


def data_source(data) -> dict:
    """What identifies the data: each file read with its size and SHA-256, or for data made
    in memory, what makes it (scikit-learn's version for digits, regexp's for synthetic)."""
    if data.dataset == "digits":
        import sklearn

        return {"files": None, "made_by": f"scikit-learn {sklearn.__version__} load_digits"}
    if data.dataset == "synthetic":
        return {"files": None, "made_by": f"regexp {regexp_version()} regexp.data.synthetic"}
    if data.dataset == "image_folder":
        return {"files": [image_folder_source(data.path)]}
    return {
        "files": [
            {"path": str(path.resolve()), "size": path.stat().st_size, "sha256": file_sha256(path)}
            for path in source_files(data)
        ]
    }


def collect(data) -> dict:
    """The provenance fields of metrics.json (besides `versions.regexp`)."""
    return {"regexp_source": git_state(), "host": host(), "data_source": data_source(data)}
