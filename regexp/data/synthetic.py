"""A deterministic, learnable synthetic dataset of EMNIST's shape, for tests and benchmarks.

Each class has a fixed random prototype; a sample is its class prototype plus noise.
Samples are generated in fixed-size chunks, each from its own seed, so the first N samples
are the same whatever total is asked for: `data.limit` never changes the data it keeps.
"""

from __future__ import annotations

import numpy as np

DEFAULT_CLASSES = 47
TRAIN_SIZE = 112_800  # EMNIST-balanced's training split
TEST_SIZE = 18_800
_CHUNK = 2_000
_TRAIN_STREAM, _TEST_STREAM = 1, 2


def _prototypes(num_classes: int) -> np.ndarray:
    rng = np.random.default_rng([0, num_classes])
    coarse = rng.random((num_classes, 7, 7)) ** 3  # sparse bright strokes on a dark ground
    return np.kron(coarse, np.ones((4, 4)))  # (classes, 28, 28) in [0, 1]


def _samples(num_classes: int, count: int, stream: int) -> tuple[np.ndarray, np.ndarray]:
    prototypes = _prototypes(num_classes)
    images, labels = [], []
    for chunk in range(-(-count // _CHUNK)):
        n = min(_CHUNK, count - chunk * _CHUNK)
        rng = np.random.default_rng([stream, num_classes, chunk])
        y = rng.integers(0, num_classes, size=n)
        noise = rng.normal(0.0, 0.35, size=(n, 28, 28))
        x = np.clip(prototypes[y] + noise, 0.0, 1.0)
        images.append((x * 255).astype(np.uint8))
        labels.append(y.astype(np.int64))
    if not images:
        return np.zeros((0, 28, 28), np.uint8), np.zeros((0,), np.int64)
    return np.concatenate(images), np.concatenate(labels)


def make(num_classes: int = DEFAULT_CLASSES, train_size: int | None = None, test_size: int | None = None):
    """Return (x_train, y_train, x_test, y_test); sizes default to EMNIST-balanced's."""
    x_train, y_train = _samples(num_classes, train_size or TRAIN_SIZE, _TRAIN_STREAM)
    x_test, y_test = _samples(num_classes, test_size or TEST_SIZE, _TEST_STREAM)
    return x_train, y_train, x_test, y_test
