"""The training path's input streams and settings (no model: fast)."""

import numpy as np
import pytest

from regexp.data import Dataset  # noqa: E402
from regexp.tf_runtime import tf
from regexp.training import train  # noqa: E402


def numbered_dataset(n_train: int, n_test: int = 30) -> Dataset:
    """Images whose first pixel is the sample's number (mod 256) and labels equal to the number."""
    x = np.zeros((n_train + n_test, 28, 28), np.uint8)
    x[:, 0, 0] = np.arange(n_train + n_test) % 256
    y = np.arange(n_train + n_test, dtype=np.int64)
    return Dataset(
        x[:n_train], y[:n_train], x[n_train:], y[n_train:], num_classes=n_train + n_test, description="numbered"
    )


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


@pytest.mark.parametrize(
    "batches, limit, expected", [(361, 32, 19), (77, 32, 11), (24, 32, 24), (13, 32, 13), (64, 32, 32)]
)
def test_steps_per_execution_is_the_largest_divisor_of_the_epoch_up_to_the_limit(batches, limit, expected):
    assert train.steps_per_execution(batches, limit) == expected


def compiled_model(seed: int, fast_path: bool = True):
    from regexp.config import validate
    from regexp.training import model as model_lib

    train.enable_determinism(seed)
    config = validate({"regularizer": {"type": "l2", "targets": ["kernel", "activity"]}}, "c.yaml", "c")
    model = model_lib.build_model(config, 5, "float32", fast_path=fast_path)
    model_lib.compile_model(model, 1e-3)
    return model


def trained_model(seed: int, fast_path: bool = True):
    """A model after a few steps of training: moved weights, Adam moments, dropout state."""
    model = compiled_model(seed, fast_path)
    x = np.random.default_rng(seed).random((40, 28, 28, 1)).astype("float32")
    model.fit(x, np.arange(40) % 5, batch_size=10, epochs=1, verbose=0)
    return model


def values(variables) -> list[np.ndarray]:
    return [np.array(v.numpy()) for v in variables]


@pytest.mark.parametrize("fast_path", [True, False])
def test_a_checkpoint_restores_every_model_and_optimizer_variable_and_the_training_state(tmp_path, fast_path):
    from regexp.training import checkpoint

    saved = trained_model(1, fast_path)
    assert sum("seed_generator_state" in v.path for v in saved.variables) == 2  # both dropout layers
    best = [np.full(w.shape, 0.5, "float32") for w in saved.get_weights()]
    checkpoint.save(tmp_path, saved, checkpoint.TrainingState(3, 2, 0.75, best))
    fresh = compiled_model(2, fast_path)  # other initial weights and seeds, optimizer not built
    state = checkpoint.restore(tmp_path, fresh)
    assert (state.epoch, state.best_epoch, state.best_val_accuracy) == (3, 2, 0.75)
    assert all(np.array_equal(a, b) for a, b in zip(state.best_weights, best))
    for kind in ("variables", "optimizer"):
        expected = values(saved.variables if kind == "variables" else saved.optimizer.variables)
        found = values(fresh.variables if kind == "variables" else fresh.optimizer.variables)
        assert len(found) == len(expected) and all(np.array_equal(a, b) for a, b in zip(found, expected)), kind
    assert int(fresh.optimizer.iterations.numpy()) == 4


def test_a_new_checkpoint_replaces_the_previous_one_only_once_it_is_written(tmp_path, monkeypatch):
    from regexp import results
    from regexp.training import checkpoint

    model = trained_model(1)
    checkpoint.save(tmp_path, model, checkpoint.TrainingState(1))
    real_write = results.write_bytes_atomic

    def killed_while_writing(path, data):  # what a kill leaves: half the bytes under a temporary name
        (path.parent / f".{path.name}.0badf00d.tmp").write_bytes(data[: len(data) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(results, "write_bytes_atomic", killed_while_writing)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(tmp_path, model, checkpoint.TrainingState(2))
    monkeypatch.setattr(results, "write_bytes_atomic", real_write)
    assert checkpoint.restore(tmp_path, compiled_model(2)).epoch == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-0001.npz"]  # the temporary file removed
    checkpoint.save(tmp_path, model, checkpoint.TrainingState(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-0002.npz"]


def test_a_damaged_checkpoint_is_named_and_the_one_before_is_used(tmp_path):
    from regexp.training import checkpoint

    model = trained_model(1)
    checkpoint.save(tmp_path, model, checkpoint.TrainingState(1))
    (tmp_path / "epoch-0001.npz").rename(tmp_path / "keep")
    checkpoint.save(tmp_path, model, checkpoint.TrainingState(2))
    (tmp_path / "keep").rename(tmp_path / "epoch-0001.npz")
    newest = tmp_path / "epoch-0002.npz"
    newest.write_bytes(newest.read_bytes()[:1000])  # e.g. a disk that lost the end of the file
    from regexp.run.logs import collected_lines

    with collected_lines() as lines:
        assert checkpoint.restore(tmp_path, compiled_model(2)).epoch == 1
    assert len(lines) == 1 and lines[0].startswith(f"{newest}: cannot be read") and lines[0].endswith("left out")


def test_no_checkpoint_means_training_starts_at_epoch_zero(tmp_path):
    from regexp.training import checkpoint

    assert checkpoint.restore(tmp_path / "checkpoint", compiled_model(0)) is None
    (tmp_path / "checkpoint").mkdir()
    assert checkpoint.restore(tmp_path / "checkpoint", compiled_model(0)) is None
