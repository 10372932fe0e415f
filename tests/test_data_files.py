"""Your own data: a .npz of arrays and a folder of images, loaded, checked and cached."""

import os

import numpy as np
import pytest
import yaml
from PIL import Image
from test_bad_configs import assert_refused

from regexp.config import DataConfig
from regexp.data import load_dataset
from regexp.errors import DataError

from conftest import TINY


def arrays(n_train=60, n_test=20, shape=(12, 10), classes=3, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, size=(n_train, *shape), dtype=np.uint8),
        "y_train": rng.integers(0, classes, size=n_train),
        "x_test": rng.integers(0, 256, size=(n_test, *shape), dtype=np.uint8),
        "y_test": rng.integers(0, classes, size=n_test),
    }


def write_npz(path, **arrays_):
    np.savez(path, **arrays_)
    return path


def npz_config(path, **extra) -> DataConfig:
    return DataConfig.model_validate({"dataset": "npz", "path": str(path), **extra})


def test_an_npz_loads_with_its_shape_and_the_class_count_its_labels_imply(tmp_path):
    given = arrays(shape=(12, 10, 3), classes=3)
    given["y_train"][0] = 4  # five classes, 0..4
    data = load_dataset(npz_config(write_npz(tmp_path / "d.npz", **given)))
    assert data.num_classes == 5 and data.input_shape == (12, 10, 3)
    assert np.array_equal(data.x_train, given["x_train"]) and data.y_train.dtype == np.int64
    assert data.x_val is None


def test_an_npz_brings_its_own_validation_set(tmp_path):
    given = {**arrays(), "x_val": arrays()["x_test"][:7], "y_val": arrays()["y_test"][:7]}
    data = load_dataset(npz_config(write_npz(tmp_path / "d.npz", **given)))
    assert np.array_equal(data.x_val, given["x_val"]) and list(data.y_val) == list(given["y_val"])
    assert data.input_shape == (12, 10, 1)


def test_an_npz_is_resized_to_image_size(tmp_path):
    given = arrays(shape=(12, 10))
    data = load_dataset(npz_config(write_npz(tmp_path / "d.npz", **given), image_size=[6, 5]))
    assert data.x_train.shape == (60, 6, 5) and data.x_train.dtype == np.uint8
    expected = np.asarray(Image.fromarray(given["x_train"][3]).resize((5, 6), Image.Resampling.BILINEAR))
    assert np.array_equal(data.x_train[3], expected)


def test_an_npz_is_read_again_when_the_file_changes(tmp_path):
    path = write_npz(tmp_path / "d.npz", **arrays(seed=0))
    first = load_dataset(npz_config(path))
    assert np.array_equal(load_dataset(npz_config(path)).x_train, first.x_train)  # from the cache
    write_npz(path, **arrays(seed=1))
    os.utime(path, ns=(1, 1))  # a different identity even within one clock tick
    assert np.array_equal(load_dataset(npz_config(path)).x_train, arrays(seed=1)["x_train"])


BAD_NPZ = {
    "wrong_rank": (
        {"x_train": np.zeros((60, 120), np.uint8)},
        "x_train: 2 dimensions (60, 120); expected (N, height, width)",
    ),
    "two_channels": ({"x_train": np.zeros((60, 4, 4, 2), np.uint8)}, "x_train: shape (60, 4, 4, 2): 2 channels"),
    "float_images": ({"x_train": np.zeros((60, 4, 4), np.float32)}, "x_train: float32 images; store them as uint8"),
    "mismatched_lengths": ({"y_train": np.zeros(59, np.int64)}, "x_train holds 60 images but y_train 59 labels"),
    "float_labels": ({"y_test": np.zeros(20, np.float32)}, "y_test: float32 labels; expected integers"),
    "negative_label": ({"y_test": np.full(20, -1)}, "y_test: a label is -1; class numbers start at 0"),
    "one_hot_labels": ({"y_train": np.zeros((60, 3), np.int64)}, "y_train: shape (60, 3); expected one integer"),
    "missing_array": ({"y_test": None}, "no array y_test; expected x_train, y_train, x_test, y_test"),
    "validation_alone": ({"x_val": np.zeros((5, 12, 10), np.uint8)}, "x_val and y_val go together"),
}


@pytest.mark.parametrize("case", sorted(BAD_NPZ))
def test_a_bad_npz_is_one_line_naming_the_file_and_the_array(tmp_path, case):
    change, message = BAD_NPZ[case]
    given = {name: value for name, value in {**arrays(), **change}.items() if value is not None}
    path = write_npz(tmp_path / "d.npz", **given)
    with pytest.raises(DataError) as error:
        load_dataset(npz_config(path))
    assert str(error.value).startswith(f"data.path: {path}: {message}"), str(error.value)


def test_a_file_that_is_no_npz_is_named(tmp_path):
    path = tmp_path / "d.npz"
    path.write_text("not a zip")
    with pytest.raises(DataError, match=f"data.path: {path}: not a readable .npz file"):
        load_dataset(npz_config(path))


def image_folder(root, sizes=None, mode="L", per_class=4, classes=("cat", "dog")):
    """train/ and test/ with one folder of PNG images per class; sizes {(split, class): (w, h)}."""
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for name in classes:
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                w, h = (sizes or {}).get((split, name), (8, 6))
                pixels = rng.integers(0, 256, size=(h, w, 3) if mode == "RGB" else (h, w), dtype=np.uint8)
                Image.fromarray(pixels, mode).save(folder / f"{i}.png")
    return root


def folder_config(path, **extra) -> DataConfig:
    return DataConfig.model_validate({"dataset": "image_folder", "path": str(path), **extra})


def test_an_image_folder_loads_classes_in_sorted_order_with_the_pixels_as_saved(tmp_path):
    root = image_folder(tmp_path / "imgs", classes=("zebra", "ant", "bee"))
    data = load_dataset(folder_config(root))
    assert data.num_classes == 3 and data.input_shape == (6, 8, 1)
    assert list(data.y_train) == [0] * 4 + [1] * 4 + [2] * 4  # ant, bee, zebra
    assert np.array_equal(data.x_train[4], np.asarray(Image.open(root / "train" / "bee" / "0.png")))
    assert "ant, bee, zebra" in data.description


def test_a_colour_image_folder_has_three_channels(tmp_path):
    data = load_dataset(folder_config(image_folder(tmp_path / "imgs", mode="RGB")))
    assert data.input_shape == (6, 8, 3) and data.x_test.shape == (8, 6, 8, 3)


def test_images_of_several_sizes_need_image_size(tmp_path):
    root = image_folder(tmp_path / "imgs", sizes={("test", "dog"): (9, 9)})
    with pytest.raises(DataError, match=r"dog/0.png: 9x9 pixels, but .*cat/0.png is 6x8; set data.image_size"):
        load_dataset(folder_config(root))
    assert load_dataset(folder_config(root, image_size=[5, 7])).input_shape == (5, 7, 1)


def test_an_empty_class_folder_is_named(tmp_path):
    root = image_folder(tmp_path / "imgs")
    (root / "train" / "emu").mkdir()
    (root / "train" / "emu" / "notes.txt").write_text("no image")
    with pytest.raises(DataError) as error:
        load_dataset(folder_config(root))
    assert str(error.value).startswith(f"data.path: {root / 'train' / 'emu'}: an empty class folder"), str(error.value)


def test_an_unreadable_image_is_named(tmp_path):
    root = image_folder(tmp_path / "imgs")
    broken = root / "test" / "cat" / "2.png"
    broken.write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError) as error:
        load_dataset(folder_config(root))
    assert str(error.value).startswith(f"data.path: {broken}: not a readable image"), str(error.value)


def test_test_classes_must_be_the_training_classes(tmp_path):
    root = image_folder(tmp_path / "imgs")
    (root / "test" / "dog").rename(root / "test" / "dogs")
    with pytest.raises(DataError, match="test/ has the classes cat, dogs; train/ has cat, dog"):
        load_dataset(folder_config(root))


def test_an_image_folder_is_decoded_again_when_an_image_changes(tmp_path):
    root = image_folder(tmp_path / "imgs")
    first = load_dataset(folder_config(root))
    image = root / "train" / "cat" / "0.png"
    Image.fromarray(np.full((6, 8), 7, np.uint8), "L").save(image)
    os.utime(image, ns=(1, 1))
    again = load_dataset(folder_config(root))
    assert (again.x_train[0] == 7).all() and not np.array_equal(again.x_train[0], first.x_train[0])


def test_too_few_samples_for_one_batch_is_one_line_before_anything_is_written(cli, tmp_path):
    data = write_npz(tmp_path / "small.npz", **arrays(n_train=40, shape=(28, 28)))
    config = tmp_path / "small.yaml"
    config.write_text(yaml.safe_dump({"data": {"dataset": "npz", "path": str(data)}, "training": TINY["training"]}))
    results = tmp_path / "results"
    assert_refused(
        cli("run", config, "--results", results),
        config,
        results,
        f"data.path: {data}: 32 training samples (after training.validation_split 0.2), fewer than one batch of "
        "training.batch_size 50",
    )


@pytest.mark.parametrize(
    "data, message",
    [
        ({"dataset": "npz"}, "data.path: required for dataset npz"),
        ({"dataset": "image_folder"}, "data.path: required for dataset image_folder"),
        ({"dataset": "digits", "image_size": [8, 8]}, "data.image_size: dataset digits has 28x28 images"),
        ({"dataset": "npz", "path": ".", "image_size": [8]}, "data.image_size: expected [height, width], got 1 number"),
        ({"dataset": "npz", "path": "."}, "data.path: . is a folder; dataset npz reads one .npz file"),
    ],
)
def test_npz_and_image_folder_fields_are_checked_with_the_config(tmp_path, data, message):
    from regexp.config import validate
    from regexp.errors import ConfigError

    with pytest.raises(ConfigError) as error:
        validate({"data": data}, "c.yaml", "c")
    assert str(error.value).startswith(f"c.yaml: {message}"), str(error.value)


def test_provenance_records_an_npz_with_its_sha256(tmp_path):
    import hashlib

    from regexp.run import provenance

    path = write_npz(tmp_path / "d.npz", **arrays())
    (entry,) = provenance.data_source(npz_config(path))["files"]
    assert entry == {
        "path": str(path.resolve()),
        "size": path.stat().st_size,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
    }


def test_provenance_records_an_image_folder_as_one_digest_of_its_images(tmp_path):
    import hashlib

    from regexp.run import provenance

    root = image_folder(tmp_path / "imgs", per_class=1)
    (entry,) = provenance.data_source(folder_config(root))["files"]
    files = [root / split / name / "0.png" for split in ("train", "test") for name in ("cat", "dog")]
    manifest = "".join(
        f"{f.relative_to(root).as_posix()} {hashlib.sha256(f.read_bytes()).hexdigest()}\n" for f in files
    )
    assert entry == {
        "path": str(root.resolve()),
        "images": 4,
        "size": sum(f.stat().st_size for f in files),
        "sha256": hashlib.sha256(manifest.encode()).hexdigest(),
    }
    Image.fromarray(np.zeros((6, 8), np.uint8), "L").save(files[0])
    os.utime(files[0], ns=(1, 1))
    assert provenance.data_source(folder_config(root))["files"][0]["sha256"] != entry["sha256"]


@pytest.mark.slow
def test_your_model_on_your_image_folder_trains_end_to_end(cli, tmp_path, monkeypatch):
    import json
    import shutil

    from conftest import CONFIGS

    shutil.copy(CONFIGS / "examples" / "custom_model" / "models.py", tmp_path / "models.py")
    image_folder(tmp_path / "imgs", mode="RGB", per_class=30, classes=("a", "b", "c"))
    config = tmp_path / "mine.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model": {"builder": "./models.py:small_resnet", "params": {"width": 4, "blocks": 1}},
                "data": {"dataset": "image_folder", "path": "imgs", "image_size": [16, 16]},
                "regularizer": {"type": "l2", "targets": ["kernel"], "layers": ["depthwise", "classifier"]},
                "training": {"epochs": 1, "batch_size": 16},
            }
        )
    )
    results = tmp_path / "results"
    monkeypatch.chdir(tmp_path)  # data.path is relative to where regexp runs
    result = cli("run", config, "--results", results)
    assert result.exit_code == 0, result.output
    metrics = json.loads((results / "mine" / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["data"]["input_shape"] == [16, 16, 3]
    assert metrics["data"]["num_classes"] == 3 and metrics["data"]["train"] == 72  # 90 images, 20 % held out
    assert metrics["data_source"]["files"][0]["images"] == 180
    assert [e["target"] for e in metrics["penalties"]["block1_depthwise"]] == ["kernel"]
    assert metrics["penalties"]["stem"] == []
