"""A cache of decoded datasets, so that only the first load pays for downloading and decoding.

Folder: `$REGEXP_CACHE` if set, else `~/.cache/regexp`. It holds

- `arrays/<label>-<digest>.npz`: one compressed archive per dataset, split and source, with
  `x_train`, `y_train`, `x_test`, `y_test` as uint8 and the `key` they were made from;
- `downloads/`: archives fetched from the network (see `regexp.data.emnist`).

An entry's key is a small JSON-able dict naming the dataset, the split and the source: for a
local file its resolved path, size and modification time, for a download its official URL.
The digest in the file name is a hash of that key, and the key is stored inside the entry and
compared on every load, so a different source, split or edited file never returns another
entry's arrays. Entries are written under a temporary name and renamed into place, so an
interrupted write leaves no half entry. Nothing is ever evicted: delete the folder to reclaim it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import zipfile
from pathlib import Path

import numpy as np

CACHE_ENV = "REGEXP_CACHE"
ARRAY_NAMES = ("x_train", "y_train", "x_test", "y_test")

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    """The cache folder: `$REGEXP_CACHE`, else `~/.cache/regexp` (not created here)."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "regexp"


def downloads_dir() -> Path:
    """Where archives fetched from the network are kept (not created here)."""
    return cache_dir() / "downloads"


def file_identity(path: Path) -> dict:
    """What identifies a local file's content well enough for a cache key: path, size, mtime."""
    stat = path.stat()
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _key_text(key: dict) -> str:
    return json.dumps(key, sort_keys=True)


def entry_path(label: str, key: dict) -> Path:
    """The entry file for `key`; `label` is only there to make the folder readable to people."""
    digest = hashlib.sha256(_key_text(key).encode()).hexdigest()[:16]
    return cache_dir() / "arrays" / f"{label}-{digest}.npz"


def load_arrays(label: str, key: dict) -> tuple[np.ndarray, ...] | None:
    """The cached (x_train, y_train, x_test, y_test) for `key` (labels as int64), or None."""
    path = entry_path(label, key)
    try:
        with np.load(path) as entry:
            if str(entry["key"]) != _key_text(key):
                return None
            x_train, y_train, x_test, y_test = (entry[name] for name in ARRAY_NAMES)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        # An unreadable entry is only a cache miss: it is decoded again and overwritten.
        log.warning("ignoring unreadable cache entry %s: %s", path, exc)
        return None
    problem = _arrays_problem(x_train, y_train, x_test, y_test)
    if problem:
        log.warning("ignoring cache entry %s: %s", path, problem)  # a miss: decoded again and overwritten
        return None
    return x_train, y_train.astype(np.int64), x_test, y_test.astype(np.int64)


def _arrays_problem(x_train, y_train, x_test, y_test) -> str | None:
    """What is wrong with a cache entry's arrays as save_arrays writes them (uint8 images and labels,
    one label per image), or None."""
    for name, array in zip(ARRAY_NAMES, (x_train, y_train, x_test, y_test)):
        if array.dtype != np.uint8:
            return f"{name} is {array.dtype}, not uint8"
    for images, labels, split in ((x_train, y_train, "train"), (x_test, y_test, "test")):
        if images.ndim < 2 or labels.ndim != 1 or len(images) != len(labels):
            return f"{split} images {images.shape} and labels {labels.shape} do not pair up"
    if x_train.shape[1:] != x_test.shape[1:]:
        return f"train images {x_train.shape[1:]} and test images {x_test.shape[1:]} differ in shape"
    return None


def save_arrays(label: str, key: dict, arrays: tuple[np.ndarray, ...]) -> Path | None:
    """Store (x_train, y_train, x_test, y_test) under `key`, atomically; None if it cannot be written.

    Labels must fit in uint8 (every dataset here has at most 62 classes). A cache that cannot
    be written costs only speed, so that is a warning, not an error.
    """
    path = entry_path(label, key)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    stored = {name: np.asarray(array, dtype=np.uint8) for name, array in zip(ARRAY_NAMES, arrays)}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(partial, "wb") as out:
            np.savez_compressed(out, key=np.array(_key_text(key)), **stored)
        os.replace(partial, path)
    except OSError as exc:
        log.warning("could not write the data cache %s (%s); set %s to a writable folder", path, exc, CACHE_ENV)
        return None
    finally:
        partial.unlink(missing_ok=True)
    return path
