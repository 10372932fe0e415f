"""A NumPy .npz file of arrays: `x_train`, `y_train`, `x_test`, `y_test`, optionally `x_val`, `y_val`.

Images are uint8 (N, height, width) or (N, height, width, 1 or 3), or any integer type holding
0..255; labels integers (N,) (or (N, 1)). Read through the cache, keyed by the file's identity
and `data.image_size`, so a changed file is read again.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from regexp.data import cache
from regexp.data.arrays import image_shape_problem
from regexp.data.image_folder import resize_all
from regexp.errors import DataError

REQUIRED = ("x_train", "y_train", "x_test", "y_test")
VALIDATION = ("x_val", "y_val")


def load(path: str, image_size: list[int] | None = None) -> tuple[np.ndarray, ...]:
    """(x_train, y_train, x_test, y_test[, x_val, y_val]) of a .npz, resized to `image_size` if given."""
    file = Path(path).expanduser()
    key = {"dataset": "npz", "file": cache.file_identity(file), "image_size": image_size}
    cached = cache.load_arrays("npz", key)
    if cached is not None:
        return cached
    arrays = read(file, image_size)
    cache.save_arrays("npz", key, arrays)
    return arrays


def read(file: Path, image_size: list[int] | None = None) -> tuple[np.ndarray, ...]:
    """Read and check the arrays of `file`; every problem is a DataError naming the file and the array."""
    try:
        with np.load(file, allow_pickle=False) as archive:
            present = list(archive.files)
            missing = [name for name in REQUIRED if name not in present]
            if missing:
                raise DataError(
                    f"{file}: no array {', '.join(missing)}; expected x_train, y_train, x_test, y_test "
                    f"(and optionally x_val, y_val); it holds: {', '.join(present) or 'nothing'}"
                )
            names = REQUIRED + (VALIDATION if "x_val" in present or "y_val" in present else ())
            if names != REQUIRED and not all(name in present for name in VALIDATION):
                raise DataError(f"{file}: x_val and y_val go together; it holds only one of them")
            loaded = {name: archive[name] for name in names}
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{file}: not a readable .npz file ({exc})") from None
    arrays = []
    for images_name, labels_name in zip(names[::2], names[1::2]):
        images = _images(loaded[images_name], f"{file}: {images_name}")
        labels = _labels(loaded[labels_name], f"{file}: {labels_name}")
        if len(images) != len(labels):
            raise DataError(f"{file}: {images_name} holds {len(images)} images but {labels_name} {len(labels)} labels")
        if image_size is not None:
            images = resize_all(images, image_size)
        arrays += [images, labels]
    return tuple(arrays)


def _images(x: np.ndarray, where: str) -> np.ndarray:
    """The images as uint8, or a DataError: an integer array outside 0..255, a float array, the wrong shape."""
    if np.issubdtype(x.dtype, np.integer) and x.dtype != np.uint8 and x.size:
        if int(x.min()) < 0 or int(x.max()) > 255:
            raise DataError(f"{where}: {x.dtype} values span {int(x.min())}..{int(x.max())}; expected 0..255")
        x = x.astype(np.uint8)
    elif np.issubdtype(x.dtype, np.floating):
        raise DataError(
            f"{where}: {x.dtype} images; store them as uint8 0..255 (e.g. (x * 255).round().astype('uint8'))"
        )
    problem = image_shape_problem(x)
    if problem:
        raise DataError(f"{where}: {problem}")
    return x


def _labels(y: np.ndarray, where: str) -> np.ndarray:
    """The labels as int64 (N,), or a DataError: not integers, negative, or not one per image."""
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"{where}: shape {y.shape}; expected one integer class number per image, (N,)")
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{where}: {y.dtype} labels; expected integers, the class numbers 0, 1, ...")
    if y.size and int(y.min()) < 0:
        raise DataError(f"{where}: a label is {int(y.min())}; class numbers start at 0")
    return y.astype(np.int64)
