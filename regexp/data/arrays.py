"""The one check every dataset's arrays pass, whatever their source."""

from __future__ import annotations

import numpy as np

from regexp.data.idx import IMAGE_SIZE
from regexp.errors import DataError


def check_arrays(
    x_train, y_train, x_test, y_test, num_classes: int, source: str, label_offset: int = 0, classes_of: str = ""
) -> None:
    """Refuse arrays of the wrong shape or dtype, or labels outside [0, num_classes).

    `label_offset` is what was subtracted from the labels as stored, so an error shows them as
    stored; `classes_of` names the dataset whose classes they are (e.g. 'EMNIST letters'), if known.
    """
    for name, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != IMAGE_SIZE:
            raise DataError(f"{source}: {name} images are {x.dtype} {x.shape}; expected uint8 (N, 28, 28)")
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
