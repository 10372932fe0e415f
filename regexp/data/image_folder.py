"""A folder of images: `train/` and `test/`, each with one subfolder per class, as Keras's
`image_dataset_from_directory` reads it (PNG, JPEG, BMP or GIF; other files are ignored).

Classes are the subfolder names of `train/` in sorted order, numbered from 0; `test/` must have
the same ones. Images are read with Pillow: all grey (1 channel) unless one is in colour (then
all RGB), at their own size, which must then be the same for all, or resized to
`data.image_size`. Decoded once, through the cache, keyed by every image file's identity.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from regexp.data import cache
from regexp.errors import DataError

SPLITS = ("train", "test")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def image_files(folder: Path) -> dict[str, dict[str, list[Path]]]:
    """{split: {class: [image files, sorted]}} of a dataset folder; DataError for a missing split,
    a split without class folders, an empty class folder, or classes that differ between splits."""
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder")
    found: dict[str, dict[str, list[Path]]] = {}
    for split in SPLITS:
        root = folder / split
        if not root.is_dir():
            raise DataError(f"{folder}: no {split}/ folder; expected train/ and test/, each with one folder per class")
        classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not classes:
            raise DataError(f"{root}: no class folders; put each class's images in a folder named after it")
        found[split] = {}
        for name in classes:
            files = sorted(p for p in (root / name).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise DataError(f"{root / name}: an empty class folder (no {', '.join(IMAGE_SUFFIXES)} file)")
            found[split][name] = files
    train, test = list(found["train"]), list(found["test"])
    if train != test:
        raise DataError(f"{folder}: test/ has the classes {', '.join(test)}; train/ has {', '.join(train)}")
    return found


def load(path: str, image_size: list[int] | None = None) -> tuple[tuple[np.ndarray, ...], list[str]]:
    """((x_train, y_train, x_test, y_test), class names) of a dataset folder, through the cache."""
    folder = Path(path).expanduser()
    files = image_files(folder)
    classes = list(files["train"])
    listing = [cache.file_identity(file) for split in SPLITS for group in files[split].values() for file in group]
    key = {"dataset": "image_folder", "classes": classes, "files": listing, "image_size": image_size}
    cached = cache.load_arrays("image_folder", key)
    if cached is not None:
        return cached, classes
    arrays = decode(files, image_size)
    cache.save_arrays("image_folder", key, arrays)
    return arrays, classes


def decode(files: dict[str, dict[str, list[Path]]], image_size: list[int] | None) -> tuple[np.ndarray, ...]:
    """Decode every image: (x_train, y_train, x_test, y_test), images uint8 (N, H, W) or (N, H, W, 3)."""
    from PIL import Image

    every = [file for split in SPLITS for group in files[split].values() for file in group]
    colour = any(_mode(file, Image) not in GREY_MODES for file in every)
    first: tuple[Path, tuple[int, int]] | None = None
    arrays = []
    for split in SPLITS:
        images, labels = [], []
        for label, group in enumerate(files[split].values()):
            for file in group:
                image = _open(file, Image).convert("RGB" if colour else "L")
                if image_size is not None:
                    image = image.resize((image_size[1], image_size[0]), Image.Resampling.BILINEAR)
                elif first is None:
                    first = (file, image.size)
                elif image.size != first[1]:
                    raise DataError(
                        f"{file}: {image.size[1]}x{image.size[0]} pixels, but {first[0]} is "
                        f"{first[1][1]}x{first[1][0]}; set data.image_size: [height, width] to resize them all"
                    )
                images.append(np.asarray(image, dtype=np.uint8))
                labels.append(label)
        arrays += [np.stack(images), np.asarray(labels, dtype=np.int64)]
    return tuple(arrays)


def _open(file: Path, Image):
    """The decoded image in `file`, or a DataError naming it."""
    try:
        image = Image.open(file)
        image.load()
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"{file}: not a readable image ({exc})") from None
    return image


def _mode(file: Path, Image) -> str:
    """The colour mode an image file declares (its header only), or a DataError naming it."""
    try:
        with Image.open(file) as image:
            return image.mode
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"{file}: not a readable image ({exc})") from None


def resize_all(images: np.ndarray, size: list[int]) -> np.ndarray:
    """uint8 images (N, H, W[, C]) resized to `size` [height, width], bilinear (Pillow's)."""
    from PIL import Image

    if tuple(images.shape[1:3]) == tuple(size):
        return images
    squeeze = images.ndim == 4 and images.shape[-1] == 1
    source = images[..., 0] if squeeze else images
    out = (
        np.stack(
            [
                np.asarray(Image.fromarray(image).resize((size[1], size[0]), Image.Resampling.BILINEAR))
                for image in source
            ]
        )
        if len(source)
        else np.zeros((0, *size, *source.shape[3:]), np.uint8)
    )
    return out[..., None] if squeeze else out
