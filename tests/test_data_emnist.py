"""EMNIST and IDX sources: tiny archives in NIST's layouts, read through the real code paths.

Nothing here can reach the network: every test runs with connections refused except to
127.0.0.1, proxies unset, and the cache, Keras' home and HOME in a temporary folder.
"""

from __future__ import annotations

import http.server
import logging
import os
import re
import socket
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from regexp.data import cache, emnist, idx
from regexp.errors import DataError

import emnist_fixtures as fx

REPO = Path(__file__).resolve().parents[1]
LOOPBACK = {"127.0.0.1", "localhost"}
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Cache, Keras home and HOME under tmp_path; no connection leaves the machine."""
    monkeypatch.setenv("REGEXP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    real_create_connection, real_getaddrinfo = socket.create_connection, socket.getaddrinfo

    def refuse_remote(host):
        if host not in LOOPBACK:
            raise OSError(f"network disabled in tests ({host})")

    def create_connection(address, *args, **kwargs):
        refuse_remote(address[0])
        return real_create_connection(address, *args, **kwargs)

    def getaddrinfo(host, *args, **kwargs):
        refuse_remote(host)
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", create_connection)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return tmp_path


def load_error(split, path) -> str:
    """The DataError message of emnist.load, checked to be one line."""
    with pytest.raises(DataError) as caught:
        emnist.load(split, None if path is None else str(path))
    message = str(caught.value)
    assert "\n" not in message
    return message


def assert_same_as(arrays, data: fx.SplitData, offset: int = 0):
    """`arrays` are `data` with uint8 upright images and int64 labels shifted down by `offset`."""
    x_train, y_train, x_test, y_test = arrays
    for images, expected in ((x_train, data.x_train), (x_test, data.x_test)):
        assert images.dtype == np.uint8 and images.shape == expected.shape
        np.testing.assert_array_equal(images, expected)
    for labels, expected in ((y_train, data.y_train), (y_test, data.y_test)):
        assert labels.dtype == np.int64 and labels.shape == expected.shape
        np.testing.assert_array_equal(labels, expected - offset)


def cache_entries() -> list[Path]:
    return sorted((cache.cache_dir() / "arrays").glob("*.npz"))


# --- sources ---------------------------------------------------------------------------


def test_matlab_zip_by_path_gives_upright_uint8_images_and_int64_labels(tmp_path):
    data = fx.make_split("balanced")
    archive = fx.write_matlab_zip(tmp_path / "matlab.zip", {"balanced": data})

    arrays, origin = emnist.load("balanced", str(archive))

    assert_same_as(arrays, data)
    x_train = arrays[0]
    assert x_train[0, 2:13, 3].all() and x_train[0, 12, 3:11].all()  # the 'L' stands upright
    assert not x_train[0, 3, 4:13].any()  # and is not lying along row 3 (transposed)
    assert origin == str(archive)


def test_letters_labels_are_shifted_from_1_26_to_0_25(tmp_path):
    data = fx.make_split("letters", train=26, test=26)
    assert data.y_train.min() == 1 and data.y_train.max() == 26
    archive = fx.write_matlab_zip(tmp_path / "matlab.zip", {"letters": data})

    arrays, _ = emnist.load("letters", str(archive))

    assert_same_as(arrays, data, offset=1)
    assert arrays[1].min() == 0 and arrays[1].max() == 25


@pytest.mark.parametrize("split", ["letters", "byclass"])
def test_matlab_zip_gzip_zip_and_unzipped_idx_folders_give_identical_arrays(tmp_path, split):
    data = fx.make_split(split)
    from_matlab, _ = emnist.load(split, str(fx.write_matlab_zip(tmp_path / "matlab.zip", {split: data})))
    from_gzip, _ = emnist.load(split, str(fx.write_gzip_zip(tmp_path / "gzip.zip", split, data)))
    files = fx.emnist_idx_files(split, data)
    from_gz_folder, _ = emnist.load(split, str(fx.write_files(tmp_path / "gz", files, compress=True)))
    from_plain_folder, _ = emnist.load(split, str(fx.write_files(tmp_path / "plain", files, compress=False)))

    for other in (from_gzip, from_gz_folder, from_plain_folder):
        for expected, actual in zip(from_matlab, other):
            assert actual.dtype == expected.dtype
            np.testing.assert_array_equal(actual, expected)
    assert_same_as(from_matlab, data, offset=fx.FILE_LABEL_OFFSET.get(split, 0))


def test_default_source_reads_the_archive_in_the_download_folder_without_the_network():
    data = fx.make_split("balanced")
    fx.write_matlab_zip(emnist.download_path(), {"balanced": data})

    arrays, origin = emnist.load("balanced", None)

    assert_same_as(arrays, data)
    assert origin == "NIST matlab.zip"
    assert emnist.download_path().parent == cache.cache_dir() / "downloads"


def test_loader_leaves_the_working_directory_and_logging_as_they_were(tmp_path, monkeypatch, caplog):
    archive = fx.write_matlab_zip(tmp_path / "matlab.zip", {"mnist": fx.make_split("mnist")})
    workdir = tmp_path / "work"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level

    emnist.load("mnist", str(archive))

    assert os.getcwd() == str(workdir)
    assert list(workdir.iterdir()) == []  # no mnist.mat left behind
    assert root.handlers == handlers and root.level == level
    assert logging.root.manager.disable == logging.NOTSET
    assert not [record for record in caplog.records if "cite" in record.getMessage()]


def test_relative_path_is_read_from_the_callers_directory(tmp_path, monkeypatch):
    data = fx.make_split("digits")
    fx.write_matlab_zip(tmp_path / "matlab.zip", {"digits": data})
    monkeypatch.chdir(tmp_path)

    arrays, _ = emnist.load("digits", "matlab.zip")

    assert_same_as(arrays, data)


def test_plain_idx_folder_is_read_upright_as_stored(tmp_path):
    data = fx.make_split("mnist")
    for compress in (False, True):
        folder = fx.write_files(tmp_path / f"mnist-{compress}", fx.mnist_idx_files(data), compress=compress)
        assert_same_as(idx.load_folder(str(folder)), data)


# --- cache -----------------------------------------------------------------------------


def test_second_load_is_served_from_the_cache_without_opening_the_archive(tmp_path, monkeypatch):
    data = fx.make_split("balanced")
    archive = fx.write_matlab_zip(tmp_path / "matlab.zip", {"balanced": data})
    emnist.load("balanced", str(archive))

    def must_not_decode(*args):
        raise AssertionError("the archive was decoded again")

    monkeypatch.setattr(emnist, "read_local", must_not_decode)
    monkeypatch.setattr(emnist, "read_matlab_zip", must_not_decode)
    arrays, origin = emnist.load("balanced", str(archive))

    assert_same_as(arrays, data)
    assert origin == f"{archive}, cached"


def test_downloaded_source_stays_cached_after_its_archive_is_deleted():
    data = fx.make_split("letters")
    fx.write_matlab_zip(emnist.download_path(), {"letters": data})
    emnist.load("letters", None)
    emnist.download_path().unlink()

    arrays, origin = emnist.load("letters", None)

    assert_same_as(arrays, data, offset=1)
    assert origin == "NIST matlab.zip, cached"


def test_cache_lives_in_REGEXP_CACHE_and_nothing_is_written_to_home(isolated):
    archive = fx.write_gzip_zip(isolated / "gzip.zip", "mnist", fx.make_split("mnist"))

    emnist.load("mnist", str(archive))

    assert cache.cache_dir() == isolated / "cache"
    assert [entry.parent for entry in cache_entries()] == [isolated / "cache" / "arrays"]
    assert not (isolated / "home").exists()


def test_cache_default_folder_is_under_home_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("REGEXP_CACHE")
    assert cache.cache_dir() == tmp_path / "home" / ".cache" / "regexp"


def test_cache_never_returns_another_split_source_or_edited_file(tmp_path):
    first, second = fx.make_split("mnist"), fx.make_split("mnist", train=7, test=3)
    second.x_train[:, 20, 20] = 255
    archive = fx.write_gzip_zip(tmp_path / "a" / "gzip.zip", "mnist", first)
    other_archive = fx.write_gzip_zip(tmp_path / "b" / "gzip.zip", "mnist", second)

    assert_same_as(emnist.load("mnist", str(archive))[0], first)
    assert_same_as(emnist.load("mnist", str(other_archive))[0], second)

    digits = fx.make_split("digits", train=4, test=2)
    both = fx.write_matlab_zip(tmp_path / "matlab.zip", {"mnist": first, "digits": digits})
    assert_same_as(emnist.load("mnist", str(both))[0], first)
    assert_same_as(emnist.load("digits", str(both))[0], digits)

    fx.write_gzip_zip(archive, "mnist", second)  # edited in place: new size and mtime
    assert_same_as(emnist.load("mnist", str(archive))[0], second)


def test_damaged_cache_entry_is_decoded_again_and_replaced(tmp_path):
    data = fx.make_split("digits")
    archive = fx.write_gzip_zip(tmp_path / "gzip.zip", "digits", data)
    emnist.load("digits", str(archive))
    (entry,) = cache_entries()
    entry.write_bytes(entry.read_bytes()[:100])

    arrays, origin = emnist.load("digits", str(archive))

    assert_same_as(arrays, data)
    assert origin == str(archive)
    assert emnist.load("digits", str(archive))[1] == f"{archive}, cached"


def test_cache_hit_does_not_import_tensorflow(tmp_path):
    archive = fx.write_matlab_zip(tmp_path / "matlab.zip", {"mnist": fx.make_split("mnist")})
    emnist.load("mnist", str(archive))
    script = (
        "import sys; from regexp.data import emnist; "
        f"arrays, origin = emnist.load('mnist', {str(archive)!r}); "
        "assert origin.endswith(', cached'), origin; "
        "assert 'tensorflow' not in sys.modules and 'extra_keras_datasets' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=REPO, env=os.environ | {"PYTHONPATH": str(REPO)})


# --- download --------------------------------------------------------------------------


class ArchiveServer(http.server.ThreadingHTTPServer):
    """Serves /matlab.zip whole, /truncated.zip cut in half, /corrupt.zip with a flipped byte."""

    def __init__(self, archive: bytes):
        super().__init__(("127.0.0.1", 0), ArchiveHandler)
        middle = len(archive) // 2
        corrupt = archive[:middle] + bytes([archive[middle] ^ 0xFF]) + archive[middle + 1 :]
        self.routes = {"/matlab.zip": (archive, len(archive)), "/truncated.zip": (archive[:middle], len(archive))}
        self.routes["/corrupt.zip"] = (corrupt, len(corrupt))

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{name}"


class ArchiveHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path not in self.server.routes:
            self.send_error(404)
            return
        body, announced = self.server.routes[self.path]
        self.send_response(200)
        self.send_header("Content-Length", str(announced))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    data = fx.make_split("balanced")
    archive = fx.write_matlab_zip(tmp_path / "served" / "matlab.zip", {"balanced": data})
    running = ArchiveServer(archive.read_bytes())
    running.data = data
    thread = threading.Thread(target=running.serve_forever, daemon=True)
    thread.start()
    yield running
    running.shutdown()
    running.server_close()


def test_download_fetches_verifies_and_keeps_the_archive(server, monkeypatch, capsys):
    monkeypatch.setattr(emnist, "MATLAB_URL", server.url("matlab.zip"))

    arrays, origin = emnist.load("balanced", None)

    assert_same_as(arrays, server.data)
    assert origin == "NIST matlab.zip"
    assert zipfile.ZipFile(emnist.download_path()).testzip() is None
    assert [path.name for path in emnist.download_path().parent.iterdir()] == ["emnist-matlab.zip"]
    progress = capsys.readouterr().err
    assert server.url("matlab.zip") in progress and "emnist-matlab.zip" in progress and "MB/s" in progress


@pytest.mark.parametrize(
    ("name", "problem"), [("truncated.zip", "stopped after"), ("corrupt.zip", "unusable"), ("missing.zip", "HTTP 404")]
)
def test_failed_download_gives_one_line_and_keeps_nothing(server, monkeypatch, name, problem):
    monkeypatch.setattr(emnist, "MATLAB_URL", server.url(name))

    message = load_error("balanced", None)

    assert problem in message and server.url(name) in message
    assert "data.path: /path/to/matlab.zip" in message and str(emnist.download_path()) in message
    downloads = emnist.download_path().parent
    assert not downloads.exists() or list(downloads.iterdir()) == []  # no archive, no partial file
    assert cache_entries() == []


def test_no_network_error_names_the_url_and_where_to_put_the_file():
    message = load_error("balanced", None)

    assert message.startswith(f"cannot download {emnist.MATLAB_URL} (network disabled in tests")
    assert message.endswith(
        "download it by hand, then either set `data.path: /path/to/matlab.zip` in the config "
        f"or save it as {emnist.download_path()}"
    )
    assert not emnist.download_path().parent.exists() and cache_entries() == []


def test_damaged_archive_in_the_download_folder_is_refused_with_advice():
    emnist.download_path().parent.mkdir(parents=True)
    emnist.download_path().write_bytes(b"PK\x03\x04 not really a zip")

    message = load_error("balanced", None)

    assert str(emnist.download_path()) in message and "delete it to download it again" in message
    assert cache_entries() == []


# --- errors ----------------------------------------------------------------------------


def test_truncated_zip_by_path_is_refused(tmp_path):
    archive = fx.write_matlab_zip(tmp_path / "matlab.zip", {"balanced": fx.make_split("balanced")})
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])

    message = load_error("balanced", archive)

    assert message.startswith(f"{archive}: not a zip archive")
    assert cache_entries() == []


def test_damaged_member_of_matlab_zip_is_refused_and_leaves_no_mat_file_behind(tmp_path, monkeypatch):
    archive = fx.write_matlab_zip(tmp_path / "matlab.zip", {"balanced": fx.make_split("balanced")})
    content = bytearray(archive.read_bytes())
    content[len(content) // 3] ^= 0xFF
    archive.write_bytes(bytes(content))
    workdir = tmp_path / "work"
    workdir.mkdir()
    monkeypatch.chdir(workdir)

    message = load_error("balanced", archive)

    assert message.startswith(f"{archive}: cannot read matlab/emnist-balanced.mat (")
    # the loader opens ./balanced.mat before reading the member, and leaves it when that fails
    assert os.getcwd() == str(workdir) and list(workdir.iterdir()) == []
    assert cache_entries() == []


def test_missing_path_is_refused(tmp_path):
    message = load_error("balanced", tmp_path / "nowhere.zip")
    assert message.startswith(f"{tmp_path / 'nowhere.zip'} does not exist")


def test_data_error_names_the_config_the_field_and_the_file_once_each(tmp_path):
    """The runner adds the config file, load_dataset the field, the source the file: each once."""
    from regexp.config import load_runs
    from regexp.run import runner

    archive = fx.write_gzip_zip(tmp_path / "gzip.zip", "balanced", fx.make_split("balanced"))
    config = tmp_path / "vanishing.yaml"
    config.write_text(f"data: {{path: '{archive}'}}\n")
    (spec,) = load_runs(config)
    archive.unlink()  # gone after validation, as in a long sweep
    with pytest.raises(DataError) as caught:
        runner.load_run_data(spec)
    assert str(caught.value) == (
        f"{config}: data.path: {archive} does not exist; expected NIST's matlab.zip or gzip.zip, "
        "or a folder of EMNIST IDX files"
    )


def test_damaged_archive_by_path_is_one_line_naming_config_field_and_file_once(cli, tmp_path):
    archive = tmp_path / "damaged.zip"
    archive.write_bytes(b"PK not really a zip")
    config = tmp_path / "damaged.yaml"
    config.write_text(f"data: {{path: '{archive}'}}\n")
    result = cli("run", config, "--results", tmp_path / "results")
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert result.output == (
        f"error: {config}: data.path: {archive}: not a zip archive (truncated or damaged?); expected NIST's "
        "matlab.zip or gzip.zip, or a folder of EMNIST IDX files\n"
    )
    assert not (tmp_path / "results").exists()


def test_archive_without_the_split_names_the_members_expected(tmp_path):
    archive = fx.write_matlab_zip(tmp_path / "matlab.zip", {"balanced": fx.make_split("balanced")})

    message = load_error("letters", archive)

    assert "matlab/emnist-letters.mat" in message and "gzip/emnist-letters-train-images-idx3-ubyte.gz" in message


def test_folder_without_the_idx_files_lists_what_it_expected(tmp_path):
    folder = fx.write_files(tmp_path / "partial", fx.emnist_idx_files("digits", fx.make_split("digits")), compress=True)
    (folder / "emnist-digits-test-labels-idx1-ubyte.gz").unlink()

    message = load_error("digits", folder)

    assert message.startswith(f"{folder}: missing emnist-digits-test-labels-idx1-ubyte;")
    assert "emnist-digits-train-images-idx3-ubyte" in message and "(each may end in .gz)" in message

    with pytest.raises(DataError, match="missing train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images"):
        idx.load_folder(str(tmp_path / "partial"))


def test_truncated_or_foreign_idx_file_is_named_in_the_error(tmp_path):
    files = fx.mnist_idx_files(fx.make_split("mnist"))
    folder = fx.write_files(tmp_path / "mnist", files, compress=False)
    images = folder / "train-images-idx3-ubyte"

    images.write_bytes(files["train-images-idx3-ubyte"][:-100])
    with pytest.raises(DataError, match=f"^{re.escape(str(images))}: truncated: "):
        idx.load_folder(str(folder))

    images.write_bytes(files["train-labels-idx1-ubyte"])
    with pytest.raises(DataError, match=f"^{re.escape(str(images))}: magic number 0x00000801, expected 0x00000803"):
        idx.load_folder(str(folder))

    (folder / "t10k-labels-idx1-ubyte").write_bytes(b"")
    images.write_bytes(files["train-images-idx3-ubyte"])
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte: 0 bytes, too short to be an IDX file"):
        idx.load_folder(str(folder))


@pytest.mark.parametrize(("split", "bad_label", "expected"), [("balanced", 47, "0..47"), ("letters", 0, "0..26")])
def test_labels_outside_the_class_range_are_refused(tmp_path, split, bad_label, expected):
    data = fx.make_split(split)
    data.y_train[1] = bad_label
    archive = fx.write_gzip_zip(tmp_path / "gzip.zip", split, data)

    message = load_error(split, archive)

    classes = fx.CLASSES[split]
    assert f"train labels span {expected}; EMNIST {split} has {classes} classes" in message
    assert cache_entries() == []


def test_unknown_split_is_refused():
    assert "unknown EMNIST split 'greek'" in load_error("greek", None)
