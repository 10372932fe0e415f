"""A compiled model trained again by the next run of the same graph (regexp/training/reuse.py):
the same numbers as the run trained alone, and never reused across graphs."""

from __future__ import annotations

import json

import pytest

from regexp.config import load_runs, validate
from regexp.results.store import read_history
from regexp.run.runner import run_experiment
from regexp.training import model as model_lib
from regexp.training import reuse, train

from conftest import TINY, merge, write_config

ACTIVITY = {"regularizer": {"type": "elasticnet", "targets": ["activity"], "l1": 0.01, "l2": 0.01}}
KERNEL = {"regularizer": {"type": "l2", "targets": ["kernel", "bias"], "lambda": 0.01}}


def _run(config_path, root, overrides):
    spec = load_runs(config_path, overrides)[0]
    outcome = run_experiment(spec, root, verbose=0)
    assert outcome.status == "completed", outcome.message
    folder = root / spec.name
    return json.loads((folder / "metrics.json").read_text()), read_history(folder / "history.csv"), folder


def _same_numbers(a, b):
    (metrics_a, history_a, folder_a), (metrics_b, history_b, folder_b) = a, b
    assert history_a == history_b  # every epoch's loss, accuracy, penalty, validation numbers: exactly
    for key in ("test_loss", "test_accuracy", "best_epoch", "best_epoch_test_accuracy", "sparsity", "activations"):
        assert metrics_a[key] == metrics_b[key], key
    assert (folder_a / "model.txt").read_text() == (folder_b / "model.txt").read_text()


@pytest.mark.parametrize(
    "penalty, fast_path, seed",
    [
        # a study's trials: the config's seed, the fused (XLA) activity penalty and regexp's dropout
        (ACTIVITY, True, 0),
        # confirmation runs and sweeps: another seed, stock Keras layers and weight penalties
        pytest.param(KERNEL, False, 5, marks=pytest.mark.slow),
    ],
)
def test_a_run_trained_on_a_reused_model_gives_the_numbers_of_the_same_run_trained_alone(
    tmp_path, monkeypatch, penalty, fast_path, seed
):
    base = merge(TINY, {**penalty, "model": {"num_classes": 10}})
    base["training"] = {**base["training"], "epochs": 2, "fast_path": fast_path}
    config = write_config(tmp_path, "study", base)
    strength = "regularizer.l2" if penalty is ACTIVITY else "regularizer.lambda"
    other = [f"{strength}=0.03", "training.learning_rate=0.003", f"training.seed={seed}", "name=other"]

    reuse.forget()
    first = _run(config, tmp_path / "shared", ["name=first"])
    reused = _run(config, tmp_path / "shared", other)
    reuse.forget()
    monkeypatch.setattr(train, "_seeded", [])  # as in a fresh process: every generator seeded anew
    alone = _run(config, tmp_path / "alone", other)

    assert first[0]["training_path"]["compiled"] == "for this run"
    assert reused[0]["training_path"]["compiled"].startswith("reused")
    assert alone[0]["training_path"]["compiled"] == "for this run"
    _same_numbers(reused, alone)
    assert reused[1] != first[1]  # another strength and rate (and seed) did train differently


def _key(data: dict) -> str:
    config = validate(data, "x.yaml", "x")
    model = model_lib.build_model(config, 47)
    return reuse.graph_key(config, model, "float32", 4)


def test_the_graph_key_leaves_out_what_a_run_resets_and_keeps_what_the_graph_is_made_of():
    base = {"regularizer": {"type": "l2", "targets": ["kernel"], "lambda": 0.01}}
    key = _key(base)
    resets = [
        {"regularizer": {"type": "l2", "targets": ["kernel"], "lambda": 0.5}},
        {"training": {"learning_rate": 0.01, "seed": 3, "epochs": 7}},
        {"name": "another", "data": {"dataset": "emnist", "limit": 100}},
    ]
    for change in resets:
        assert _key(merge(base, change)) == key, change
    graphs = [
        {"regularizer": {"type": "l1", "targets": ["kernel"], "lambda": 0.01}},
        {"regularizer": {"type": "l2", "targets": ["kernel", "bias"], "lambda": 0.01}},
        {"regularizer": {"type": "l2", "targets": ["activity"], "lambda": 0.01}},
        {"model": {"dropout": 0.5}},
        {"model": {"dense_units": 64}},
        {"training": {"batch_size": 32}},
        {"training": {"fast_path": False}},
    ]
    for change in graphs:
        assert _key(merge(base, change)) != key, change


def test_two_builder_files_of_one_name_are_two_graphs(tmp_path):
    """The same `model.builder` text in two folders names two files: never one compiled model."""
    source = (
        "import keras\n"
        "def net(input_shape, num_classes):\n"
        "    inputs = keras.Input(shape=input_shape, name='image')\n"
        "    x = keras.layers.Flatten(name='flat')(inputs)\n"
        "    x = keras.layers.Dense(8, activation='{activation}', name='hidden')(x)\n"
        "    return keras.Model(inputs, keras.layers.Dense(num_classes, activation='softmax', name='out')(x))\n"
    )
    keys = []
    for activation in ("relu", "tanh"):
        folder = tmp_path / activation
        folder.mkdir()
        (folder / "models.py").write_text(source.format(activation=activation))
        path = write_config(folder, "net", {"model": {"builder": "./models.py:net"}})
        config = load_runs(path, [])[0].config
        keys.append(reuse.graph_key(config, model_lib.build_model(config, 47), "float32", 4))
    assert keys[0] != keys[1]
