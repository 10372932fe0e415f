"""The training path's input streams and settings (no model: fast)."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
from regexp import train  # noqa: E402
from regexp.data import Dataset  # noqa: E402


def numbered_dataset(n_train: int, n_test: int = 30) -> Dataset:
    """Images whose first pixel is the sample's number (mod 256) and labels equal to the number."""
    x = np.zeros((n_train + n_test, 28, 28), np.uint8)
    x[:, 0, 0] = np.arange(n_train + n_test) % 256
    y = np.arange(n_train + n_test, dtype=np.int64)
    return Dataset(x[:n_train], y[:n_train], x[n_train:], y[n_train:], num_classes=n_train + n_test, description="numbered")


def test_training_stream_visits_every_held_in_sample_once_per_epoch_in_a_fresh_order():
    splits = train.make_splits(numbered_dataset(1000), batch_size=64, validation_split=0.2, seed=3)
    assert (splits.train_size, splits.validation_size, splits.steps_per_epoch) == (800, 200, 13)
    stream = iter(splits.train)
    epochs = [[next(stream) for _ in range(splits.steps_per_epoch)] for _ in range(2)]
    orders = [np.concatenate([labels.numpy() for _, labels in batches]) for batches in epochs]
    for order in orders:
        assert sorted(order) == list(range(800))  # the first 80 %, each once; the last 20 % held out
    assert list(orders[0]) != list(orders[1])
    assert [len(labels) for _, labels in epochs[0]] == [64] * 12 + [32]
    images, labels = epochs[0][0]
    assert images.dtype == tf.float32 and images.shape == (64, 28, 28, 1)
    np.testing.assert_allclose(images.numpy()[:, 0, 0, 0], (labels.numpy() % 256) / 255.0, rtol=1e-6)


def test_training_stream_order_repeats_from_the_same_seed():
    first, second = (train.make_splits(numbered_dataset(300), 50, 0.2, seed=5).train for _ in range(2))
    take = lambda stream: np.concatenate([labels.numpy() for _, labels in stream.take(10)])  # noqa: E731
    assert np.array_equal(take(first), take(second))


def test_validation_and_test_streams_are_in_order_and_whole():
    splits = train.make_splits(numbered_dataset(1000, n_test=70), 64, 0.2, seed=0)
    validation = np.concatenate([labels.numpy() for _, labels in splits.validation])
    test = np.concatenate([labels.numpy() for _, labels in splits.test])
    assert list(validation) == list(range(800, 1000))
    assert list(test) == list(range(1000, 1070))


@pytest.mark.parametrize("gpus, expected", [([], 0), (["GPU:0"], train.GPU_PREFETCH_BATCHES)])
def test_batches_are_prepared_ahead_only_on_a_gpu(monkeypatch, gpus, expected):
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: gpus if kind == "GPU" else [])
    assert train.prefetch_batches() == expected


@pytest.mark.parametrize("batches, limit, expected", [(361, 32, 19), (77, 32, 11), (24, 32, 24), (13, 32, 13), (64, 32, 32)])
def test_steps_per_execution_is_the_largest_divisor_of_the_epoch_up_to_the_limit(batches, limit, expected):
    assert train.steps_per_execution(batches, limit) == expected


@pytest.mark.parametrize("with_previous", [True, False])
def test_a_checkpoint_killed_while_writing_its_epoch_falls_back_to_the_one_before(tmp_path, with_previous):
    (tmp_path / "latest.weights.h5").write_bytes(b"epoch 5 weights")
    (tmp_path / "training_metadata.json").write_text("")  # killed while Keras wrote it in place
    if with_previous:
        (tmp_path / "latest.weights.h5.bkp").write_bytes(b"epoch 4 weights")
        (tmp_path / "training_metadata.json.bkp").write_text('{"epoch": 4, "batch": 0}')
    train.repair_checkpoint(str(tmp_path))
    if with_previous:
        assert (tmp_path / "latest.weights.h5").read_bytes() == b"epoch 4 weights"
        assert (tmp_path / "training_metadata.json").read_text() == '{"epoch": 4, "batch": 0}'
    else:  # nothing to fall back to: start over
        assert not (tmp_path / "latest.weights.h5").exists() and not (tmp_path / "training_metadata.json").exists()


def test_a_whole_checkpoint_is_left_as_it_is(tmp_path):
    (tmp_path / "latest.weights.h5").write_bytes(b"epoch 5 weights")
    (tmp_path / "training_metadata.json").write_text('{"epoch": 5, "batch": 0}')
    (tmp_path / "latest.weights.h5.bkp").write_bytes(b"epoch 4 weights")
    train.repair_checkpoint(str(tmp_path))
    assert (tmp_path / "latest.weights.h5").read_bytes() == b"epoch 5 weights"
