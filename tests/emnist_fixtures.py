"""Tiny EMNIST and MNIST archives in the official layouts, for tests that cannot reach NIST.

Every image is an 'L' in the top-left quadrant (a vertical stroke down column 3, a foot
along row 12), so a transposed image, whose stroke runs along row 3, is told apart at once.
"""

from __future__ import annotations

import gzip
import io
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io

CLASSES = {"balanced": 47, "byclass": 62, "bymerge": 47, "digits": 10, "letters": 26, "mnist": 10}
# NIST numbers the letters 1..26 in its files
FILE_LABEL_OFFSET = {"letters": 1}


@dataclass
class SplitData:
    """One split as a person sees it: upright images and the labels as NIST's files number them."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def l_shapes(count: int) -> np.ndarray:
    """`count` upright uint8 'L's in the top-left quadrant, each with its own brightness."""
    images = np.zeros((count, 28, 28), dtype=np.uint8)
    for i in range(count):
        brightness = 60 + (i * 37) % 196
        images[i, 2:13, 3] = brightness
        images[i, 12, 3:11] = brightness
    return images


def make_split(split: str, train: int = 12, test: int = 5) -> SplitData:
    """Small upright data for `split`, labels cycling through all its classes as numbered in the files."""
    classes, offset = CLASSES[split], FILE_LABEL_OFFSET.get(split, 0)
    images = l_shapes(train + test)
    labels = (np.arange(train + test) * 5) % classes + offset
    return SplitData(images[:train], labels[:train], images[train:], labels[train:])


def matlab_rows(images: np.ndarray) -> np.ndarray:
    """(N, 784) rows as NIST's .mat stores them: each image's pixels in column-major order."""
    return images.transpose(0, 2, 1).reshape(len(images), 784)


def mat_bytes(split: str, data: SplitData) -> bytes:
    """A .mat file with NIST's `dataset` struct (train, test, mapping)."""
    classes, offset = CLASSES[split], FILE_LABEL_OFFSET.get(split, 0)
    mapping = np.stack([np.arange(classes) + offset, 48 + np.arange(classes)], axis=1).astype(np.float64)

    def part(images, labels):
        return {"images": matlab_rows(images), "labels": labels.reshape(-1, 1).astype(np.float64)}

    out = io.BytesIO()
    scipy.io.savemat(
        out,
        {
            "dataset": {
                "train": part(data.x_train, data.y_train),
                "test": part(data.x_test, data.y_test),
                "mapping": mapping,
            }
        },
    )
    return out.getvalue()


def write_matlab_zip(path: Path, splits: dict[str, SplitData]) -> Path:
    """NIST's matlab.zip layout: matlab/emnist-<split>.mat for each split given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for split, data in splits.items():
            archive.writestr(f"matlab/emnist-{split}.mat", mat_bytes(split, data))
    return path


def idx_images(images: np.ndarray) -> bytes:
    """An IDX3 uint8 image file holding `images` as given."""
    return struct.pack(">IIII", 0x0803, *images.shape) + np.ascontiguousarray(images, dtype=np.uint8).tobytes()


def idx_labels(labels: np.ndarray) -> bytes:
    """An IDX1 uint8 label file."""
    return struct.pack(">II", 0x0801, len(labels)) + np.asarray(labels, dtype=np.uint8).tobytes()


def emnist_idx_files(split: str, data: SplitData) -> dict[str, bytes]:
    """EMNIST's four IDX files for `split` (uncompressed), images stored transposed as NIST does."""
    transposed = lambda images: images.transpose(0, 2, 1)  # noqa: E731
    return {
        f"emnist-{split}-train-images-idx3-ubyte": idx_images(transposed(data.x_train)),
        f"emnist-{split}-train-labels-idx1-ubyte": idx_labels(data.y_train),
        f"emnist-{split}-test-images-idx3-ubyte": idx_images(transposed(data.x_test)),
        f"emnist-{split}-test-labels-idx1-ubyte": idx_labels(data.y_test),
    }


def write_gzip_zip(path: Path, split: str, data: SplitData) -> Path:
    """NIST's gzip.zip layout: gzip/emnist-<split>-...-ubyte.gz."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name, content in emnist_idx_files(split, data).items():
            archive.writestr(f"gzip/{name}.gz", gzip.compress(content))
    return path


def write_files(folder: Path, files: dict[str, bytes], compress: bool) -> Path:
    """Write `files` into `folder`, gzipped with a .gz suffix if `compress`."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        if compress:
            (folder / f"{name}.gz").write_bytes(gzip.compress(content))
        else:
            (folder / name).write_bytes(content)
    return folder


def mnist_idx_files(data: SplitData) -> dict[str, bytes]:
    """MNIST's four IDX files, images stored upright."""
    return {
        "train-images-idx3-ubyte": idx_images(data.x_train),
        "train-labels-idx1-ubyte": idx_labels(data.y_train),
        "t10k-images-idx3-ubyte": idx_images(data.x_test),
        "t10k-labels-idx1-ubyte": idx_labels(data.y_test),
    }
