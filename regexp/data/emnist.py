"""EMNIST, from NIST's matlab.zip (downloaded, or given by path), its gzip.zip, or unzipped IDX files.

Sources, chosen by `data.path`:

- none: NIST's `matlab.zip` (about 740 MB), downloaded once from `MATLAB_URL` to
  `<cache>/downloads/emnist-matlab.zip` (see `regexp.data.cache` for `<cache>`), then decoded by
  extra-keras-datasets' loader, the reference experiment's. The loader would fetch a retired
  NIST address into `<keras home>/datasets/emnist_matlab.npz`; instead, for the length of the
  call, its `get_file` is replaced by one that returns our verified archive. That keeps the
  archive in the one cache folder the user controls, does not depend on how Keras resolved its
  home when it was imported, and lets a matlab.zip given by path go through the same loader
  without being copied (700 MB) into Keras' folder.
- a `matlab.zip` (members `matlab/emnist-<split>.mat`): the same loader, on that file.
- a `gzip.zip` (members `gzip/emnist-<split>-train-images-idx3-ubyte.gz` and friends), read
  without unpacking, or a folder of those IDX files (`emnist-<split>-...-ubyte[.gz]`).

Orientation: a row of the .mat file's images and an image of the IDX files hold the same 784
bytes, in column-major order, so an image read row-major appears transposed. The loader
reshapes with order='F', giving the character upright, as a person reads it; the IDX images
are transposed to match, so every source yields identical arrays.

Labels are 0-based: `letters` numbers its classes 1..26 in NIST's files and is shifted to 0..25.
Decoded arrays are cached (`regexp.data.cache`), so later loads skip the archive and TensorFlow.
"""

from __future__ import annotations

import logging
import os
import tempfile
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from regexp.config import EMNIST_CLASSES
from regexp.data import cache, download, idx
from regexp.data.arrays import check_arrays
from regexp.errors import DataError

MATLAB_URL = "https://biometrics.nist.gov/cs_links/EMNIST/matlab.zip"
DOWNLOAD_NAME = "emnist-matlab.zip"
# NIST numbers the letters split 1..26 (0 is unused); every other split starts at 0.
LABEL_OFFSET = {"letters": 1}

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def download_path() -> Path:
    """Where the downloaded matlab.zip is kept, and where a hand-downloaded one may be put."""
    return cache.downloads_dir() / DOWNLOAD_NAME


def matlab_member(split: str) -> str:
    """The member of NIST's matlab.zip holding `split`."""
    return f"matlab/emnist-{split}.mat"


def idx_names(split: str) -> tuple[str, str, str, str]:
    """EMNIST's IDX file names for `split`: train images, train labels, test images, test labels."""
    kinds = ("images-idx3-ubyte", "labels-idx1-ubyte")
    return tuple(f"emnist-{split}-{part}-{kind}" for part in ("train", "test") for kind in kinds)


def gzip_members(split: str) -> list[str]:
    """The members of NIST's gzip.zip holding `split`, in idx_names order."""
    return [f"gzip/{name}.gz" for name in idx_names(split)]


def manual_download_advice() -> str:
    """What to do when the download fails: fetch the file by hand and say where it is."""
    return (
        "download it by hand, then either set `data.path: /path/to/matlab.zip` in the config "
        f"or save it as {download_path()}"
    )


def replace_download_advice() -> str:
    """What to do about an unusable archive in the cache's download folder."""
    return f"delete it to download it again, or replace it with {MATLAB_URL}"


def _reason(exc: BaseException) -> str:
    """An exception as a short phrase on one line."""
    if isinstance(exc, KeyError) and exc.args:
        return f"no {exc.args[0]!r} in it"
    return " ".join(str(exc).split()) or type(exc).__name__


def finish(split: str, arrays: Arrays, source: str) -> Arrays:
    """Shift labels to 0-based and check dtypes, shapes and label range; return contiguous arrays."""
    x_train, y_train, x_test, y_test = arrays
    offset = LABEL_OFFSET.get(split, 0)
    y_train, y_test = (np.asarray(labels).reshape(-1).astype(np.int64) - offset for labels in (y_train, y_test))
    check_arrays(x_train, y_train, x_test, y_test, EMNIST_CLASSES[split], source, offset, f"EMNIST {split}")
    return np.ascontiguousarray(x_train), y_train, np.ascontiguousarray(x_test), y_test


@contextmanager
def _working_directory(path: Path):
    previous = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


@contextmanager
def _loader_logging_silenced():
    """Keep the loader's logging.basicConfig(INFO), progress lines and citation off the user's screen."""
    root = logging.getLogger()
    handlers, level, disabled = list(root.handlers), root.level, logging.root.manager.disable
    root.addHandler(logging.NullHandler())  # basicConfig() does nothing once the root logger has a handler
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(disabled)
        root.handlers[:] = handlers
        root.setLevel(level)


@contextmanager
def _loader_reading(loader_module, archive: Path):
    """Make the loader's get_file hand back `archive` instead of fetching NIST's retired address."""
    original = getattr(loader_module, "get_file", None)
    if original is None:
        raise DataError(
            "this extra-keras-datasets no longer fetches EMNIST through get_file; install "
            "extra-keras-datasets==1.2.0, or set data.path to NIST's gzip.zip"
        )

    def get_verified_archive(fname, origin=None, **kwargs):
        return str(archive)

    loader_module.get_file = get_verified_archive
    try:
        yield
    finally:
        loader_module.get_file = original


def read_matlab_zip(split: str, archive: Path) -> Arrays:
    """Decode `split` from a NIST matlab.zip with extra-keras-datasets' loader, as the reference did.

    The loader writes `./<split>.mat` into the working directory, so it runs in a private
    temporary one (TMPDIR decides where); the user's directory is restored afterwards.
    """
    import regexp.tf_runtime  # noqa: F401  (first: the loader imports TensorFlow, whose start-up lines it filters)

    # isort: split
    from extra_keras_datasets import emnist as loader_module
    from scipy.io.matlab import MatReadError

    # How the loader, zipfile and scipy report a malformed archive or .mat file.
    unreadable = (MatReadError, zipfile.BadZipFile, zlib.error, OSError, EOFError, KeyError, ValueError, IndexError)
    try:
        with (
            tempfile.TemporaryDirectory(prefix="regexp-emnist-") as scratch,
            _working_directory(Path(scratch)),
            _loader_logging_silenced(),
            _loader_reading(loader_module, archive.resolve()),
        ):
            (x_train, y_train), (x_test, y_test) = loader_module.load_data(type=split)
    except unreadable as exc:
        raise DataError(f"{archive}: cannot read {matlab_member(split)} ({_reason(exc)})") from None
    return x_train, y_train, x_test, y_test


def read_gzip_zip(split: str, archive: Path) -> Arrays:
    """Decode `split` from a NIST gzip.zip without unpacking it; images as stored (transposed)."""
    train_images, train_labels, test_images, test_labels = gzip_members(split)
    arrays = []
    try:
        with zipfile.ZipFile(archive) as opened:
            for images_member, labels_member in ((train_images, train_labels), (test_images, test_labels)):
                images_source, labels_source = f"{archive}:{images_member}", f"{archive}:{labels_member}"
                images = idx.parse_images(idx.gunzip(opened.read(images_member), images_source), images_source)
                labels = idx.parse_labels(idx.gunzip(opened.read(labels_member), labels_source), labels_source)
                idx.check_counts(images, labels, images_source, labels_source)
                arrays += [images, labels]
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as exc:
        raise DataError(f"{archive}: damaged zip archive ({_reason(exc)})") from None
    return tuple(arrays)


def upright_idx(arrays: Arrays) -> Arrays:
    """Transpose EMNIST's IDX images so they match the matlab images: upright."""
    x_train, y_train, x_test, y_test = arrays
    return x_train.transpose(0, 2, 1), y_train, x_test.transpose(0, 2, 1), y_test


def archive_kind(split: str, archive: Path) -> str:
    """'matlab' or 'gzip', from the members of a NIST archive holding `split`."""
    if not zipfile.is_zipfile(archive):
        raise DataError(
            f"{archive}: not a zip archive (truncated or damaged?); expected NIST's matlab.zip or gzip.zip, "
            "or a folder of EMNIST IDX files"
        )
    try:
        with zipfile.ZipFile(archive) as opened:
            names = set(opened.namelist())
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{archive}: damaged zip archive ({_reason(exc)})") from None
    if matlab_member(split) in names:
        return "matlab"
    if all(member in names for member in gzip_members(split)):
        return "gzip"
    raise DataError(
        f"{archive}: holds neither {matlab_member(split)} (NIST's matlab.zip) nor "
        f"{', '.join(gzip_members(split))} (NIST's gzip.zip)"
    )


def read_local(split: str, path: Path) -> Arrays:
    """Decode `split` from a matlab.zip, a gzip.zip or a folder of EMNIST IDX files, upright."""
    if path.is_dir():
        return upright_idx(idx.read_folder(idx.locate(path, idx_names(split))))
    if archive_kind(split, path) == "matlab":
        return read_matlab_zip(split, path)
    return upright_idx(read_gzip_zip(split, path))


def local_source_key(split: str, path: Path) -> dict:
    """The cache key of a local source: the identity (path, size, mtime) of every file read."""
    files = idx.locate(path, idx_names(split)) if path.is_dir() else [path]
    return {"dataset": "emnist", "split": split, "files": [cache.file_identity(file) for file in files]}


def load_local(split: str, path: Path) -> tuple[Arrays, str]:
    """`split` from a file or folder the user named, through the cache."""
    if not path.exists():
        raise DataError(
            f"{path} does not exist; expected NIST's matlab.zip or gzip.zip, or a folder of EMNIST IDX files"
        )
    key = local_source_key(split, path)
    cached = cache.load_arrays(f"emnist-{split}", key)
    if cached is not None:
        return cached, f"{path}, cached"
    arrays = finish(split, read_local(split, path), str(path))
    cache.save_arrays(f"emnist-{split}", key, arrays)
    return arrays, str(path)


def ensure_download(split: str) -> Path:
    """The matlab.zip in the cache, holding `split`; downloaded and verified first if it is not there.

    A file already there (downloaded earlier, or put there by hand) is only checked for the
    member; the loader's read checks that member's CRC.
    """
    archive = download_path()
    if not archive.is_file():
        download.fetch(MATLAB_URL, archive, [matlab_member(split)], manual_download_advice())
    problem = download.zip_problem(archive, [matlab_member(split)], check_crc=False)
    if problem:
        raise DataError(f"{archive}: {problem}; {replace_download_advice()}")
    return archive


def load_download(split: str) -> tuple[Arrays, str]:
    """`split` from NIST's matlab.zip, downloaded once, through the cache."""
    key = {"dataset": "emnist", "split": split, "source": MATLAB_URL}
    cached = cache.load_arrays(f"emnist-{split}-nist", key)
    if cached is not None:
        return cached, "NIST matlab.zip, cached"
    archive = ensure_download(split)
    try:
        decoded = read_matlab_zip(split, archive)
    except DataError as exc:
        raise DataError(f"{exc}; {replace_download_advice()}") from None
    arrays = finish(split, decoded, str(archive))
    cache.save_arrays(f"emnist-{split}-nist", key, arrays)
    return arrays, "NIST matlab.zip"


def load(split: str, path: str | None) -> tuple[Arrays, str]:
    """EMNIST `split` as ((x_train, y_train, x_test, y_test), origin): uint8 (N, 28, 28) upright, int64 labels.

    `path` None means NIST's matlab.zip, downloaded once into the cache; otherwise a
    matlab.zip, a gzip.zip or a folder of EMNIST IDX files. `origin` says where the arrays
    came from, for the run's description.
    """
    if split not in EMNIST_CLASSES:
        raise DataError(f"unknown EMNIST split {split!r}; expected one of {', '.join(EMNIST_CLASSES)}")
    if path is None:
        return load_download(split)
    return load_local(split, Path(path).expanduser().resolve())
