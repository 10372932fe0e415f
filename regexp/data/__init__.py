"""Data: every dataset arrives as uint8 images (N, 28, 28) and int64 labels in [0, classes).

`load_dataset` is the one entry point; each source lives in its own module and is
imported only when chosen, since some of them import TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from regexp.config import DIGITS_CLASSES, EMNIST_CLASSES, DataConfig
from regexp.data.arrays import check_arrays
from regexp.errors import DataError


@dataclass(frozen=True)
class Dataset:
    """Train and test arrays of one dataset, with its class count and a human description."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    description: str


def _read_source(data: DataConfig, num_classes: int | None) -> tuple[tuple[np.ndarray, ...], int, str]:
    if data.dataset == "synthetic":
        from regexp.data import synthetic

        classes = num_classes or synthetic.DEFAULT_CLASSES
        arrays = synthetic.make(classes, train_size=data.limit, test_size=data.test_limit)
        return arrays, classes, f"synthetic ({classes} classes)"
    if data.dataset == "digits":
        from regexp.data import digits

        return digits.load(), DIGITS_CLASSES, "scikit-learn digits, 8x8 brought to 28x28"
    if data.dataset == "emnist":
        from regexp.data import emnist

        arrays, origin = emnist.load(data.split, data.path)
        return arrays, EMNIST_CLASSES[data.split], f"EMNIST {data.split} ({origin})"
    if data.dataset == "idx":
        from regexp.data import idx

        arrays = idx.load_folder(data.path)
        classes = num_classes or int(max(arrays[1].max(), arrays[3].max())) + 1
        return arrays, classes, f"IDX files in {data.path}"
    raise DataError(f"unknown dataset {data.dataset!r}")


def load_dataset(data: DataConfig, num_classes: int | None = None) -> Dataset:
    """Load the configured dataset, apply `limit`/`test_limit`, and check it against `num_classes`.

    An error starts with the field it comes from (data.path, else data.dataset); the sources
    name only the file. The runner adds the config file in front.
    """
    try:
        (x_train, y_train, x_test, y_test), classes, description = _read_source(data, num_classes)
    except DataError as exc:
        raise DataError(f"{'data.path' if data.path else 'data.dataset'}: {exc}") from None
    if num_classes is not None and num_classes != classes:
        raise DataError(
            f"model.num_classes: {num_classes} disagrees with the data: {description} has {classes} classes"
        )
    x_train, y_train = x_train[: data.limit], y_train[: data.limit].astype(np.int64)
    x_test, y_test = x_test[: data.test_limit], y_test[: data.test_limit].astype(np.int64)
    check_arrays(x_train, y_train, x_test, y_test, classes, description)
    return Dataset(x_train, y_train, x_test, y_test, classes, description)
