"""What the study report reads from a completed run: model.weights.h5, and metrics.json's
activation statistics and best-epoch test metrics, each checked against an independent
computation (h5py and numpy, a forward pass, a second run stopped at the best epoch)."""

import json

import h5py
import numpy as np
import pytest

from regexp.config import LAYER_NAMES, load_config
from regexp.tf_runtime import keras

from conftest import TINY, merge, write_config

# Learning rate 0.01: validation accuracy peaks before the last epoch, so that the best
# epoch's weights differ from the final ones.
CONFIG = merge(
    TINY,
    {
        "data": {"limit": 600, "test_limit": 100},
        "model": {"num_classes": 5},
        "regularizer": {"type": "l2", "targets": ["activity"]},
        "training": {"epochs": 3, "batch_size": 50, "learning_rate": 0.01, "precision": "float32"},
    },
)
# Where Keras's save_weights puts each layer: its class name, numbered in model order.
H5_GROUPS = {"conv1": "layers/conv2d", "conv2": "layers/conv2d_1", "dense1": "layers/dense", "dense2": "layers/dense_1"}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    from typer.testing import CliRunner

    from regexp.cli import app

    folder = tmp_path_factory.mktemp("report_inputs")
    config = write_config(folder, "run", CONFIG)
    with pytest.MonkeyPatch.context() as patch:  # the data cache isolated, as conftest does per test
        patch.setenv("REGEXP_CACHE", str(folder / "cache"))
        result = CliRunner().invoke(app, ["run", str(config), "--results", str(folder / "results")])
    assert result.exit_code == 0, result.output
    run = folder / "results" / "run"
    return config, run, json.loads((run / "metrics.json").read_text())


def test_saved_weights_are_the_final_ones_and_their_sparsity_is_the_recorded_one(finished):
    from regexp.config import RunSpec
    from regexp.run.runner import load_run_data
    from regexp.training import model as model_lib
    from regexp.training import train
    from regexp.training.session import prepare_training

    config_path, run, metrics = finished
    with h5py.File(run / "model.weights.h5", "r") as f:
        weights = {layer: [f[f"{group}/vars/0"][()], f[f"{group}/vars/1"][()]] for layer, group in H5_GROUPS.items()}
    assert weights["conv1"][0].shape == (3, 3, 1, 32) and weights["dense2"][1].shape == (5,)
    for layer in LAYER_NAMES:
        small = sum(int((np.abs(w) < 1e-3).sum()) for w in weights[layer])
        assert metrics["sparsity"]["layers"][layer] == small / sum(w.size for w in weights[layer]), layer

    config = load_config(config_path)
    model, splits, *_ = prepare_training(config, load_run_data(RunSpec("run", "run", config, str(config_path))))
    model.load_weights(run / "model.weights.h5")
    for layer in LAYER_NAMES:
        assert all(np.array_equal(a, b) for a, b in zip(model.get_layer(layer).get_weights(), weights[layer]))
    assert train.evaluate(model, splits) == (metrics["test_loss"], metrics["test_accuracy"])
    assert model_lib.weight_sparsity(model) == metrics["sparsity"]


def test_activation_statistics_match_a_forward_pass_over_the_test_set(finished):
    from regexp.config import RunSpec
    from regexp.run.runner import load_run_data
    from regexp.training.session import prepare_training

    config_path, run, metrics = finished
    config = load_config(config_path)
    data = load_run_data(RunSpec("run", "run", config, str(config_path)))
    model, *_ = prepare_training(config, data)
    model.load_weights(run / "model.weights.h5")
    probe = keras.Model(model.inputs, [model.get_layer(name).output for name in LAYER_NAMES])
    images = (data.x_test.astype("float32") / 255.0)[..., None]
    outputs = [np.asarray(out, np.float64) for out in probe(images, training=False)]
    assert set(metrics["activations"]) == set(LAYER_NAMES)
    for name, out in zip(LAYER_NAMES, outputs):
        assert metrics["activations"][name]["mean_abs"] == pytest.approx(np.abs(out).mean(), rel=1e-5), name
        assert metrics["activations"][name]["zero_fraction"] == (out == 0).mean(), name
    assert metrics["activations"]["conv1"]["zero_fraction"] > 0  # relu: some outputs are exactly 0


def test_best_epoch_test_metrics_are_those_of_a_run_stopped_at_the_best_epoch(finished, cli, tmp_path):
    _, _, metrics = finished
    assert metrics["best_epoch"] < metrics["epochs_run"]  # else this test would compare the last epoch
    stopped = write_config(
        tmp_path, "run", merge(CONFIG, {"training": {**CONFIG["training"], "epochs": metrics["best_epoch"]}})
    )
    assert cli("run", stopped, "--results", tmp_path / "results").exit_code == 0
    at_best = json.loads((tmp_path / "results" / "run" / "metrics.json").read_text())
    assert (metrics["best_epoch_test_loss"], metrics["best_epoch_test_accuracy"]) == (
        at_best["test_loss"],
        at_best["test_accuracy"],
    )
    assert metrics["best_epoch_test_loss"] != metrics["test_loss"]
