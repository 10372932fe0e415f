"""The one check every dataset's arrays pass, whatever their source."""

from __future__ import annotations

import numpy as np

from regexp.errors import DataError

CHANNELS = (1, 3)  # grey or RGB


def image_shape_problem(x: np.ndarray) -> str | None:
    """What is wrong with an array of images as regexp trains on them (uint8, (N, H, W) or
    (N, H, W, 1 or 3)), or None."""
    if x.ndim not in (3, 4):
        return f"{x.ndim} dimension{'s' * (x.ndim != 1)} {x.shape}; expected (N, height, width) or (N, height, width, 1 or 3)"
    if x.ndim == 4 and x.shape[-1] not in CHANNELS:
        return f"shape {x.shape}: {x.shape[-1]} channels; expected 1 (grey) or 3 (RGB)"
    if x.dtype != np.uint8:
        return f"{x.dtype}; expected uint8 values 0..255"
    return None


def check_arrays(
    x_train,
    y_train,
    x_test,
    y_test,
    num_classes: int,
    source: str,
    label_offset: int = 0,
    classes_of: str = "",
    x_val=None,
    y_val=None,
) -> None:
    """Refuse arrays of the wrong shape or dtype, train, validation and test images of different
    shapes, or labels outside [0, num_classes).

    `label_offset` is what was subtracted from the labels as stored, so an error shows them as
    stored; `classes_of` names the dataset whose classes they are (e.g. 'EMNIST letters'), if known.
    """
    splits = [("train", x_train, y_train), ("test", x_test, y_test)]
    if x_val is not None:
        splits.insert(1, ("validation", x_val, y_val))
    for name, x, y in splits:
        problem = image_shape_problem(x)
        if problem:
            raise DataError(f"{source}: {name} images are {problem}")
        if x.shape[1:] != x_train.shape[1:]:
            raise DataError(f"{source}: {name} images are {x.shape[1:]}, train images {x_train.shape[1:]}")
        if y.shape != (len(x),):
            raise DataError(f"{source}: {len(y)} {name} labels for {len(x)} images")
        if len(y) and (y.min() < 0 or y.max() >= num_classes):
            low, high, first = int(y.min()) + label_offset, int(y.max()) + label_offset, label_offset
            expected = (
                f"{classes_of} has {num_classes} classes numbered {first}..{num_classes - 1 + first}"
                if classes_of
                else f"expected 0..{num_classes - 1} for {num_classes} classes (set model.num_classes, or check the files)"
            )
            raise DataError(f"{source}: {name} labels span {low}..{high}; {expected}")
