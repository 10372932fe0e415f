"""scikit-learn's 8x8 handwritten digits (1,797 images, shipped with the package, no download),
brought to the model's input: scaled to 0..255, enlarged 3x to 24x24 and centred in 28x28,
the way MNIST centres its 20x20 digits. A fixed, stratified 80/20 split gives train and test.
"""

from __future__ import annotations

import numpy as np


def to_28x28(images_8x8: np.ndarray) -> np.ndarray:
    """(N, 8, 8) values 0..16 -> (N, 28, 28) uint8 values 0..255."""
    scaled = np.rint(images_8x8 * (255.0 / 16.0)).astype(np.uint8)
    enlarged = scaled.repeat(3, axis=1).repeat(3, axis=2)
    return np.pad(enlarged, ((0, 0), (2, 2), (2, 2)))


def load():
    """Return (x_train, y_train, x_test, y_test) of the digits dataset."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = to_28x28(bunch.images)
    x_train, x_test, y_train, y_test = train_test_split(
        images, bunch.target.astype(np.int64), test_size=0.2, stratify=bunch.target, random_state=0
    )
    return x_train, y_train, x_test, y_test
