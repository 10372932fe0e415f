"""A cache of decoded datasets, so that only the first load pays for downloading and decoding.

Folder: `$REGEXP_CACHE` if set, else `~/.cache/regexp`. It holds

- `arrays/<label>-<digest>.npz`: one compressed archive per dataset, split and source, with
  `x_train`, `y_train`, `x_test`, `y_test` (and `x_val`, `y_val` where the data brings them),
  images as uint8, and the `key` they were made from;
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
VALIDATION_NAMES = ("x_val", "y_val")

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
    """The cached (x_train, y_train, x_test, y_test[, x_val, y_val]) for `key` (labels as int64), or None."""
    path = entry_path(label, key)
    try:
        with np.load(path) as entry:
            if str(entry["key"]) != _key_text(key):
                return None
            names = ARRAY_NAMES + (VALIDATION_NAMES if "x_val" in entry.files else ())
            arrays = [entry[name] for name in names]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        # An unreadable entry is only a cache miss: it is decoded again and overwritten.
        log.warning("ignoring unreadable cache entry %s: %s", path, exc)
        return None
    problem = _arrays_problem(arrays)
    if problem:
        log.warning("ignoring cache entry %s: %s", path, problem)  # a miss: decoded again and overwritten
        return None
    return tuple(array.astype(np.int64) if i % 2 else array for i, array in enumerate(arrays))


def _fits_a_byte(labels: np.ndarray) -> bool:
    return not len(labels) or (int(labels.min()) >= 0 and int(labels.max()) <= 255)


def _arrays_problem(arrays: list[np.ndarray]) -> str | None:
    """What is wrong with a cache entry's arrays as save_arrays writes them (uint8 images, uint8 or
    int64 labels, one label per image, every split's images of one shape), or None."""
    names = ARRAY_NAMES + VALIDATION_NAMES
    for i in range(0, len(arrays), 2):
        images, labels = arrays[i], arrays[i + 1]
        if images.dtype != np.uint8:
            return f"{names[i]} is {images.dtype}, not uint8"
        if labels.dtype not in (np.uint8, np.int64):
            return f"{names[i + 1]} is {labels.dtype}, not uint8 or int64"
        if images.ndim < 2 or labels.ndim != 1 or len(images) != len(labels):
            return f"{names[i]} {images.shape} and {names[i + 1]} {labels.shape} do not pair up"
        if images.shape[1:] != arrays[0].shape[1:]:
            return f"{names[i]} {images.shape[1:]} and {names[0]} {arrays[0].shape[1:]} differ in shape"
    return None


def save_arrays(label: str, key: dict, arrays: tuple[np.ndarray, ...]) -> Path | None:
    """Store (x_train, y_train, x_test, y_test[, x_val, y_val]) under `key`, atomically; None if it
    cannot be written.

    Images are stored as uint8, labels as uint8 where they fit (else int64). A cache that cannot
    be written costs only speed, so that is a warning, not an error.
    """
    path = entry_path(label, key)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    stored = {
        name: np.asarray(array, dtype=np.uint8 if i % 2 == 0 or _fits_a_byte(array) else np.int64)
        for i, (name, array) in enumerate(zip(ARRAY_NAMES + VALIDATION_NAMES, arrays))
    }
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
