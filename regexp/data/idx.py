"""IDX files, the format of MNIST and of the datasets that copy its layout.

An IDX file is a big-endian header (two zero bytes, a type code, the number of dimensions,
then one uint32 per dimension) followed by the values. Images are type 0x08 (uint8) with
3 dimensions (count, rows, columns); labels are type 0x08 with 1 dimension.

`load_folder` reads a folder laid out as MNIST, Fashion-MNIST and KMNIST ship it; those images
are stored upright. The parsing helpers are shared with `regexp.data.emnist`, whose IDX images
are stored transposed.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from regexp.errors import DataError

UBYTE_TYPE = 0x08
IMAGE_SIZE = (28, 28)
# train images, train labels, test images, test labels: the four files every IDX dataset has
MNIST_FILE_NAMES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def gunzip(data: bytes, source: str) -> bytes:
    """Decompress gzip `data` read from `source` (named in the error if it is corrupt)."""
    try:
        return gzip.decompress(data)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise DataError(f"{source}: not a complete gzip file ({exc})") from None


def read_file(path: Path) -> bytes:
    """The IDX bytes in `path`, decompressed if its name ends in .gz."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return gunzip(data, str(path)) if path.name.endswith(".gz") else data


def parse(data: bytes, source: str, ndim: int) -> np.ndarray:
    """Decode IDX `data` holding uint8 values in `ndim` dimensions; any mismatch names `source`."""
    expected_magic = (UBYTE_TYPE << 8) | ndim
    if len(data) < 4:
        raise DataError(f"{source}: {len(data)} bytes, too short to be an IDX file")
    (magic,) = struct.unpack(">I", data[:4])
    if magic != expected_magic:
        raise DataError(
            f"{source}: magic number 0x{magic:08x}, expected 0x{expected_magic:08x} "
            f"(an IDX file of uint8 in {ndim} dimension{'s' if ndim > 1 else ''})"
        )
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise DataError(f"{source}: truncated inside the header ({len(data)} bytes)")
    shape = struct.unpack(f">{ndim}I", data[4:header_size])
    expected, present = math.prod(shape), len(data) - header_size
    if present < expected:
        raise DataError(f"{source}: truncated: {present} bytes of data, the header announces {shape} = {expected}")
    if present > expected:
        raise DataError(f"{source}: {present - expected} bytes beyond the {shape} values the header announces")
    return np.frombuffer(data, dtype=np.uint8, count=expected, offset=header_size).reshape(shape).copy()


def parse_images(data: bytes, source: str) -> np.ndarray:
    """Decode an IDX image file into uint8 (N, 28, 28), as stored (no reorientation)."""
    images = parse(data, source, ndim=3)
    if images.shape[1:] != IMAGE_SIZE:
        raise DataError(f"{source}: images are {images.shape[1]}x{images.shape[2]}, expected 28x28")
    return images


def parse_labels(data: bytes, source: str) -> np.ndarray:
    """Decode an IDX label file into int64 (N,)."""
    return parse(data, source, ndim=1).astype(np.int64)


def check_counts(images: np.ndarray, labels: np.ndarray, images_source: str, labels_source: str) -> None:
    """Refuse an image file and a label file that do not hold the same number of samples."""
    if len(images) != len(labels):
        raise DataError(f"{images_source} holds {len(images)} images but {labels_source} {len(labels)} labels")


def locate(folder: Path, base_names: tuple[str, ...]) -> list[Path]:
    """The files of `folder` named `base_names`, each either as named or with .gz appended."""
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder")
    found, missing = [], []
    for name in base_names:
        candidates = [folder / name, folder / f"{name}.gz"]
        present = [path for path in candidates if path.is_file()]
        (found if present else missing).append(present[0] if present else name)
    if missing:
        raise DataError(
            f"{folder}: missing {', '.join(missing)}; expected the files {', '.join(base_names)} (each may end in .gz)"
        )
    return found


def read_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Decode an image file and its label file, as stored, checking they hold as many samples."""
    images = parse_images(read_file(images_path), str(images_path))
    labels = parse_labels(read_file(labels_path), str(labels_path))
    check_counts(images, labels, str(images_path), str(labels_path))
    return images, labels


def read_folder(paths: list[Path]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Decode the four files (train images, train labels, test images, test labels), as stored."""
    train_images, train_labels, test_images, test_labels = paths
    return (*read_pair(train_images, train_labels), *read_pair(test_images, test_labels))


def load_folder(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read a folder in MNIST's layout: (x_train, y_train, x_test, y_test), images upright as stored."""
    return read_folder(locate(Path(path).expanduser(), MNIST_FILE_NAMES))
