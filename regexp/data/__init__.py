"""Data: every dataset arrives as uint8 images, (N, H, W) or (N, H, W, 1 or 3), and int64 labels
in [0, classes): EMNIST, digits, synthetic and IDX files as (N, 28, 28), a .npz or a folder of
images at their own size (or `data.image_size`).

`load_dataset` is the one entry point; each source lives in its own module and is
imported only when chosen, since some of them import TensorFlow.
"""

from __future__ import annotations

import math
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
    x_val: np.ndarray | None = None  # a validation set the data brings (npz's x_val, y_val)
    y_val: np.ndarray | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one image as the model sees it: (height, width, channels)."""
        shape = tuple(int(d) for d in self.x_train.shape[1:])
        return shape if len(shape) == 3 else (*shape, 1)


def validation_cut(train_size: int, validation_split: float) -> int:
    """Where the training data is cut when the data brings no validation set: the samples before
    it train, the rest validate (the last `validation_split`, as Keras's validation_split does)."""
    return int(math.ceil(train_size * (1.0 - validation_split)))


def check_batches(data: Dataset, config_data: DataConfig, batch_size: int, validation_split: float) -> None:
    """Refuse data with fewer training samples than one batch, or no validation or test sample."""
    where = f"{'data.path: ' + config_data.path if config_data.path else 'data.dataset: ' + config_data.dataset}"
    if data.x_val is not None:
        train, validation = len(data.x_train), len(data.x_val)
        held_out = "the file's own validation set"
    else:
        train = validation_cut(len(data.x_train), validation_split)
        validation = len(data.x_train) - train
        held_out = f"training.validation_split {validation_split}"
    if train < batch_size:
        raise DataError(
            f"{where}: {train} training samples (after {held_out}), fewer than one batch of "
            f"training.batch_size {batch_size}; give more data or a smaller batch_size"
        )
    if validation == 0:
        raise DataError(f"{where}: no validation sample after {held_out}; give more data or a larger validation_split")
    if len(data.x_test) == 0:
        raise DataError(f"{where}: no test sample")


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
        return arrays, num_classes or _classes_in(arrays), f"IDX files in {data.path}"
    if data.dataset == "npz":
        from regexp.data import npz

        arrays = npz.load(data.path, data.image_size)
        return arrays, num_classes or _classes_in(arrays), f"arrays in {data.path}"
    if data.dataset == "image_folder":
        from regexp.data import image_folder

        arrays, class_names = image_folder.load(data.path, data.image_size)
        shown = ", ".join(class_names[:5]) + (", ..." if len(class_names) > 5 else "")
        return arrays, len(class_names), f"images in {data.path} ({len(class_names)} classes: {shown})"
    raise DataError(f"unknown dataset {data.dataset!r}")


def _classes_in(arrays: tuple[np.ndarray, ...]) -> int:
    """The class count labels imply: the largest label + 1."""
    return int(max(labels.max() for labels in arrays[1::2] if len(labels))) + 1


def load_dataset(data: DataConfig, num_classes: int | None = None) -> Dataset:
    """Load the configured dataset, apply `limit`/`test_limit`, and check it against `num_classes`.

    An error starts with the field it comes from (data.path, else data.dataset); the sources
    name only the file. The runner adds the config file in front.
    """
    try:
        arrays, classes, description = _read_source(data, num_classes)
    except DataError as exc:
        raise DataError(f"{'data.path' if data.path else 'data.dataset'}: {exc}") from None
    if num_classes is not None and num_classes != classes:
        raise DataError(
            f"model.num_classes: {num_classes} disagrees with the data: {description} has {classes} classes"
        )
    x_train, y_train, x_test, y_test = arrays[:4]
    x_val, y_val = arrays[4:] if len(arrays) == 6 else (None, None)
    x_train, y_train = x_train[: data.limit], y_train[: data.limit].astype(np.int64)
    x_test, y_test = x_test[: data.test_limit], y_test[: data.test_limit].astype(np.int64)
    if y_val is not None:
        y_val = y_val.astype(np.int64)
    check_arrays(x_train, y_train, x_test, y_test, classes, description, x_val=x_val, y_val=y_val)
    return Dataset(x_train, y_train, x_test, y_test, classes, description, x_val, y_val)
