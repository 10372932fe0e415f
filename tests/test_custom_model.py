"""Any Keras model through model.builder: placement on exactly the chosen layers, the loss Keras
reports, the checks before training, and the builder's file in the config's identity."""

import json
import shutil

import numpy as np
import pytest
import yaml
from test_bad_configs import assert_refused

from regexp.config import config_hash, load_config
from regexp.errors import ConfigError, ModelError
from regexp.tf_runtime import keras
from regexp.training import model as model_lib
from regexp.training import penalties, speedups

from conftest import CONFIGS, TINY

EXAMPLE = CONFIGS / "examples" / "custom_model"
RESNET_LAYERS = {
    "stem": "conv",
    "block1_depthwise": "depthwise",
    "block1_pointwise": "conv",
    "block2_depthwise": "depthwise",
    "block2_pointwise": "conv",
    "classifier": "dense",
}
# Mixed penalties on the residual net: by kind, by name, on a bias, on an activity.
MIXED = [
    {"type": "l2", "targets": ["kernel"], "lambda": 0.01, "layers": ["depthwise"]},
    {"type": "l2", "targets": ["bias"], "lambda": 0.05, "layers": ["block1_pointwise"]},
    {"type": "l1", "targets": ["activity"], "lambda": 0.001, "layers": ["block2_pointwise"]},
]


def study(folder, regularizer=None, builder="./models.py:small_resnet", params=None, name="resnet", **extra):
    """A config file beside a copy of the example's models.py; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "models.py").exists():
        shutil.copy(EXAMPLE / "models.py", folder / "models.py")
    data = {
        "model": {
            "builder": builder,
            "params": {"width": 4, "blocks": 2} if params is None else params,
            "num_classes": 10,
        },
        **({"regularizer": regularizer} if regularizer is not None else {}),
        **TINY,
        **extra,
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def weight_penalties(model) -> dict:
    """{(layer, variable path): penalty class name} of every variable that carries one."""
    return {
        (layer.name, variable.path): type(variable.regularizer).__name__
        for layer in model.layers
        for variable in layer.trainable_weights
        if variable.regularizer is not None
    }


def test_the_example_residual_net_is_built_with_its_layers_by_name_and_kind(tmp_path):
    model = model_lib.build_model(load_config(study(tmp_path)), 10)
    assert model_lib.layer_inventory(model) == RESNET_LAYERS
    assert isinstance(model.get_layer("stem_bn"), keras.layers.BatchNormalization)
    assert type(model.get_layer("drop")) is speedups.RandomBitsDropout


@pytest.mark.parametrize("fast_path", [True, False])
def test_penalties_land_on_exactly_the_chosen_layers_and_equal_the_loss_keras_reports(tmp_path, fast_path):
    config = load_config(study(tmp_path, MIXED))
    model = model_lib.build_model(config, 10, fast_path=fast_path)
    paths = {(layer, path.split("/")[-1]) for layer, path in weight_penalties(model)}
    assert paths == {("block1_depthwise", "kernel"), ("block2_depthwise", "kernel"), ("block1_pointwise", "bias")}
    with_activity = [layer.name for layer in model.layers if getattr(layer, "activity_regularizer", None)]
    assert with_activity == ["block2_pointwise"]
    kind = speedups.ActivityPenalty if fast_path else penalties.L1
    assert type(model.get_layer("block2_pointwise").activity_regularizer) is kind

    rng = np.random.default_rng(0)
    x = rng.random((16, 28, 28, 1)).astype("float32")
    y = rng.integers(0, 10, size=16)
    model_lib.compile_model(model, 0.001)
    reported = model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)["loss"]

    weights = {v.path: keras.ops.convert_to_numpy(v) for v in model.weights}
    probe = keras.Model(model.inputs, [model.get_layer("block2_pointwise").output, model.output])
    activity, probabilities = (np.asarray(a, np.float64) for a in probe(x, training=False))
    expected_penalty = (
        0.01 * sum((weights[f"block{i}_depthwise/kernel"].astype(np.float64) ** 2).sum() for i in (1, 2))
        + 0.05 * (weights["block1_pointwise/bias"].astype(np.float64) ** 2).sum()
        + 0.001 * np.abs(activity).sum() / len(x)  # an activity penalty: the mean over the batch
    )
    cross_entropy = -np.mean(np.log(probabilities[np.arange(len(y)), y]))
    assert reported == pytest.approx(cross_entropy + expected_penalty, rel=1e-4)
    assert expected_penalty > 0.01 * cross_entropy  # the penalty is a visible part of the total


def test_metrics_name_the_placed_penalties_and_which_layers_took_the_fast_path(tmp_path):
    config = load_config(study(tmp_path, MIXED))
    model = model_lib.build_model(config, 10)
    summary = model_lib.penalty_summary(config, model)
    assert summary["block1_pointwise"] == [{"target": "bias", "type": "l2", "lambda": 0.05}]
    assert summary["stem"] == [] and set(summary) == set(RESNET_LAYERS)
    assert model_lib.layer_paths(model) == {
        "block2_pointwise": "activity penalty: fused (XLA)",
        "drop": "dropout: RandomBitsDropout",
    }
    identity = model_lib.model_identity(config, model)
    assert identity["builder"] == "./models.py:small_resnet"
    assert identity["source"] == str(tmp_path / "models.py")
    import hashlib

    assert identity["sha256"] == hashlib.sha256((tmp_path / "models.py").read_bytes()).hexdigest()


def test_a_bias_penalty_skips_a_layer_without_a_bias(tmp_path):
    """The stem has use_bias=False: kernel + bias on every layer puts no bias penalty there."""
    config = load_config(study(tmp_path, {"type": "l2"}))
    model = model_lib.build_model(config, 10)
    assert ("stem", "stem/kernel") in weight_penalties(model)
    assert [e["target"] for e in model_lib.penalty_summary(config, model)["stem"]] == ["kernel"]
    assert len(weight_penalties(model)) == 2 * len(RESNET_LAYERS) - 1


def test_the_reference_cnn_is_the_default_builder_and_keeps_its_config_hash():
    config = load_config(CONFIGS / "none.yaml")
    assert model_lib.load_builder(config) is model_lib.reference_cnn
    assert "builder" not in config.model_dump() and "params" not in config.model_dump()


BAD_BUILDERS = {
    "wrong_output": (
        "def build(input_shape, num_classes):\n"
        "    inputs = keras.Input(input_shape)\n"
        "    return keras.Model(inputs, keras.layers.Dense(num_classes + 1)(keras.layers.Flatten()(inputs)))\n",
        "model.builder: ./bad.py:build((28, 28, 1), 10, **params) returned a model whose output is (None, 11); "
        "expected one output of (None, 10)",
    ),
    "wrong_input": (
        "def build(input_shape, num_classes):\n"
        "    inputs = keras.Input((32, 32, 3))\n"
        "    return keras.Model(inputs, keras.layers.Dense(num_classes)(keras.layers.Flatten()(inputs)))\n",
        "model.builder: ./bad.py:build((28, 28, 1), 10, **params) returned a model whose input is (None, 32, 32, 3); "
        "the data's images are (None, 28, 28, 1)",
    ),
    "not_a_model": (
        "def build(input_shape, num_classes):\n    return 'a model'\n",
        "model.builder: ./bad.py:build((28, 28, 1), 10, **params) returned a str, not a Keras model",
    ),
    "raises": (
        "def build(input_shape, num_classes, depth):\n    return None\n",
        "model.builder: ./bad.py:build((28, 28, 1), 10, **params) raised TypeError:",
    ),
    "import_fails": ("import not_a_module_anywhere\n", "model.builder: importing ./bad.py raised ModuleNotFoundError:"),
    "no_such_function": ("def make(input_shape, num_classes):\n    pass\n", "model.builder: ./bad.py has no 'build'"),
    "not_callable": ("build = 3\n", "model.builder: ./bad.py:build is a int, not a function"),
}


@pytest.mark.parametrize("case", sorted(BAD_BUILDERS))
def test_a_builder_that_does_not_build_a_fitting_model_is_one_line_before_anything_is_written(cli, tmp_path, case):
    source, expected = BAD_BUILDERS[case]
    (tmp_path / "bad.py").write_text("import keras\n\n" + source)
    config = study(tmp_path, builder="./bad.py:build", params={}, name="bad")
    results = tmp_path / "results"
    assert_refused(cli("run", config, "--results", results), config, results, expected)


def test_a_typo_in_layers_is_one_line_naming_the_entry_and_the_models_layers(cli, tmp_path):
    config = study(tmp_path, [{"type": "l2", "layers": ["clasifier"]}])
    results = tmp_path / "results"
    result = cli("run", config, "--results", results)
    assert_refused(
        result, config, results, "regularizer[0].layers: 'clasifier' is not a layer name or kind; valid: stem,"
    )
    assert "classifier (dense)" in result.output  # the layers the model has, with their kinds


def test_a_kind_the_model_has_none_of_is_refused_naming_its_layers(tmp_path):
    config = load_config(study(tmp_path, {"type": "l2", "layers": ["separable"]}))
    with pytest.raises(
        ModelError, match=r"^regularizer.layers: the model has no separable layer; its layers: stem \(conv\)"
    ):
        model_lib.build_model(config, 10)


def test_two_entries_on_one_target_of_a_custom_layer_are_refused(tmp_path):
    config = load_config(study(tmp_path, [{"type": "l2", "layers": ["conv"]}, {"type": "l1", "layers": ["stem"]}]))
    with pytest.raises(ModelError, match=r"regularizer\[1\]: stem kernel already carries regularizer\[0\]"):
        model_lib.build_model(config, 10)


@pytest.mark.parametrize(
    "model, message",
    [
        ({"builder": "./missing.py:build"}, "model.builder: no such file: ./missing.py (looked for "),
        ({"builder": "no_such_module_here:build"}, "model.builder: no module named no_such_module_here"),
        ({"builder": "models.py"}, "model.builder: 'models.py' is not 'module.path:function'"),
        ({"builder": "./models.py:small_resnet", "dense_units": 8}, "model.dense_units: belongs to the reference CNN"),
        ({"params": {"width": 8}}, "model.params: the reference CNN takes conv1_filters"),
    ],
)
def test_a_builder_reference_is_checked_when_the_config_is_read(tmp_path, model, message):
    shutil.copy(EXAMPLE / "models.py", tmp_path / "models.py")
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"model": model}))
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert f"{path}: {message}" in str(error.value)


def test_a_builder_module_on_the_import_path_is_found_and_digested(tmp_path, monkeypatch):
    package = tmp_path / "mymodels"
    package.mkdir()
    (package / "__init__.py").write_text("")
    shutil.copy(EXAMPLE / "models.py", package / "nets.py")
    monkeypatch.syspath_prepend(str(tmp_path))
    config = load_config(study(tmp_path / "c", builder="mymodels.nets:small_resnet"))
    assert config.model.builder_file == package / "nets.py"
    assert model_lib.layer_inventory(model_lib.build_model(config, 10)) == RESNET_LAYERS


def test_a_changed_builder_file_is_a_different_config(tmp_path):
    path = study(tmp_path, {"type": "l2"})
    before = config_hash(load_config(path))
    assert config_hash(load_config(path)) == before  # read again, unchanged: the same config
    models = tmp_path / "models.py"
    models.write_text(models.read_text().replace("width=16", "width=17"))
    assert config_hash(load_config(path)) != before


def test_the_example_study_validates_and_names_its_model_file():
    for name in ("none", "l2_kernel"):
        config = load_config(EXAMPLE / f"{name}.yaml")
        assert config.model.builder_file == EXAMPLE / "models.py"
        assert config.data.dataset == "digits"


@pytest.mark.slow
def test_a_custom_model_trains_end_to_end_and_a_changed_model_file_is_not_taken_for_the_completed_run(cli, tmp_path):
    config = study(tmp_path, MIXED)
    results = tmp_path / "results"
    first = cli("run", config, "--results", results)
    assert first.exit_code == 0, first.output
    metrics = json.loads((results / "resnet" / "metrics.json").read_text())
    assert metrics["status"] == "completed"
    assert metrics["model"]["layers"] == RESNET_LAYERS and metrics["model"]["params"] == {"width": 4, "blocks": 2}
    assert set(metrics["sparsity"]["layers"]) == set(RESNET_LAYERS) == set(metrics["activations"])
    assert metrics["penalties"]["block1_depthwise"] == [{"target": "kernel", "type": "l2", "lambda": 0.01}]
    again = cli("run", config, "--results", results)
    assert again.exit_code == 0 and "already completed" in again.output
    models = tmp_path / "models.py"
    models.write_text(models.read_text() + "\n# changed\n")
    changed = cli("run", config, "--results", results)
    assert changed.exit_code == 2 and "holds a completed run of a different config" in changed.output
    forced = cli("run", config, "--results", results, "--force")
    assert forced.exit_code == 0, forced.output
    rerun = json.loads((results / "resnet" / "metrics.json").read_text())
    assert rerun["model"]["sha256"] != metrics["model"]["sha256"] and rerun["config_hash"] != metrics["config_hash"]
    report = cli("report", results)
    assert report.exit_code == 0, report.output
    assert "block1_depthwise" in (results / "report.md").read_text()


def test_a_run_folders_config_yaml_carries_the_builder_digest_so_a_changed_model_is_not_resumed(tmp_path):
    """runner._prepare_staging resumes only a staging folder whose config.yaml is this text."""
    from regexp.config import to_yaml

    path = study(tmp_path)
    before = to_yaml(load_config(path))
    models = tmp_path / "models.py"
    models.write_text(models.read_text() + "\n# changed\n")
    after = to_yaml(load_config(path))
    assert yaml.safe_load(before) == yaml.safe_load(after)  # the same fields: only the digest comment differs
    assert before != after and load_config(path).model.builder_sha256 in after
