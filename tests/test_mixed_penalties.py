"""Several penalties per model, chosen per layer: placement and the exact loss they add."""

import numpy as np
import pytest

from regexp.config import load_config, validate
from regexp.errors import ConfigError
from regexp.tf_runtime import keras
from regexp.training import model as model_lib  # noqa: E402
from regexp.training import speedups  # noqa: E402

from conftest import CONFIGS, TINY_SET

LAYERS = ("conv1", "conv2", "dense1", "dense2")


def placement(model) -> dict:
    """{layer: {target: (class, config)}} for every regularizable layer."""
    out = {}
    for name in LAYERS:
        layer, found = model.get_layer(name), {}
        for target in ("kernel", "bias", "activity"):
            reg = getattr(layer, f"{target}_regularizer")
            if reg is not None:
                reg = reg.penalty if isinstance(reg, speedups.ActivityPenalty) else reg
                found[target] = (type(reg).__name__, {k: pytest.approx(v) for k, v in reg.get_config().items()})
        out[name] = found
    return out


def test_mixed_example_puts_l2_on_conv_kernels_and_l1_on_dense1_activity_only():
    model = model_lib.build_model(load_config(CONFIGS / "mixed_l2_conv_kernels_l1_dense_activity.yaml"), 47)
    assert placement(model) == {
        "conv1": {"kernel": ("L2", {"l2": 0.01})},
        "conv2": {"kernel": ("L2", {"l2": 0.01})},
        "dense1": {"activity": ("L1", {"l1": 0.001})},
        "dense2": {},
    }


def test_dense_only_example_leaves_the_convolutions_free():
    model = model_lib.build_model(load_config(CONFIGS / "l2_dense_only.yaml"), 47)
    l2 = ("L2", {"l2": 0.01})
    assert placement(model) == {
        "conv1": {},
        "conv2": {},
        "dense1": {"kernel": l2, "bias": l2},
        "dense2": {"kernel": l2, "bias": l2},
    }


MIXED = {
    "regularizer": [
        {"type": "elasticnet", "targets": ["kernel"], "l1": 0.01, "l2": 0.02},
        {"type": "l2", "targets": ["activity"], "lambda": 0.003, "layers": ["conv1", "dense"]},
        {"type": "l1", "targets": ["bias"], "lambda": 0.05, "layers": ["conv2"]},
    ]
}


def expected_penalty(model, x: np.ndarray) -> float:
    """The penalty computed from the weights and activations with numpy, independently of Keras."""

    def l1(v):
        return float(np.abs(v).sum())

    def l2(v):
        return float(np.square(v).sum())

    total = 0.0
    for name in LAYERS:
        kernel = model.get_layer(name).kernel.numpy()
        total += 0.01 * l1(kernel) + 0.02 * l2(kernel)
    total += 0.05 * l1(model.get_layer("conv2").bias.numpy())
    probe = keras.Model(model.inputs, [model.get_layer(n).output for n in ("conv1", "dense1", "dense2")])
    for activation in probe(x, training=False):
        total += 0.003 * l2(np.asarray(activation)) / len(x)  # mean over the batch, as the reference
    return total


def test_total_regularization_loss_equals_the_sum_computed_from_weights_and_activations():
    config = validate(MIXED, "mixed.yaml", "mixed")
    model = model_lib.build_model(config, 10, "float32")
    x = np.random.default_rng(0).random((8, 28, 28, 1)).astype("float32")
    model(x, training=False)
    keras_total = float(sum(float(loss) for loss in model.losses))
    assert keras_total == pytest.approx(expected_penalty(model, x), rel=1e-5)


@pytest.mark.parametrize(
    "penalty",
    [{"type": "l1", "lambda": 0.02}, {"type": "l2", "lambda": 0.03}, {"type": "elasticnet", "l1": 0.01, "l2": 0.04}],
)
def test_fast_and_stock_paths_add_the_same_penalty_on_the_same_weights_and_inputs(penalty):
    config = validate({"regularizer": {**penalty, "targets": ["kernel", "bias", "activity"]}}, "p.yaml", "p")
    stock = model_lib.build_model(config, 10, "float32", fast_path=False)
    fast = model_lib.build_model(config, 10, "float32", fast_path=True)
    rng = np.random.default_rng(1)
    for name in LAYERS:  # non-zero biases, so that the bias penalty counts
        for target in (stock.get_layer(name).kernel, stock.get_layer(name).bias):
            target.assign(rng.normal(0, 0.1, target.shape).astype("float32"))
    fast.set_weights(stock.get_weights())
    x = rng.random((8, 28, 28, 1)).astype("float32")
    totals = []
    for model in (stock, fast):
        model(x, training=False)
        assert len(model.losses) == 12  # kernel, bias and activity of four layers
        totals.append(sum(float(loss) for loss in model.losses))
    assert totals[1] == pytest.approx(totals[0], rel=1e-5)
    assert totals[0] > 0


def test_penalties_per_layer_are_recorded_for_metrics_and_model_txt():
    config = validate(MIXED, "mixed.yaml", "mixed")
    summary = model_lib.penalty_summary(config)
    assert summary["conv2"] == [
        {"target": "kernel", "type": "elasticnet", "l1": 0.01, "l2": 0.02},
        {"target": "bias", "type": "l1", "lambda": 0.05},
    ]
    assert summary["conv1"][1] == {"target": "activity", "type": "l2", "lambda": 0.003}
    text = model_lib.model_summary(model_lib.build_model(config, 10), config)
    assert "conv2: l1 on bias (lambda=0.05)" in text and "dense2: l2 on activity (lambda=0.003)" in text


@pytest.mark.parametrize(
    "regularizer, message",
    [
        (
            [{"type": "l2", "layers": ["conv3"]}],
            "regularizer[0].layers: 'conv3' is not a layer name or kind; valid: conv1, conv2, dense1, dense2, conv, dense",
        ),
        ([], "regularizer: empty list"),
        ([{"type": "l2", "layers": []}], "regularizer[0].layers: empty"),
        ([{"type": "l2"}, {"type": "l2"}], "regularizer[1]: repeats regularizer[0]"),
        (
            [{"type": "l2", "layers": ["conv"]}, {"type": "l1", "layers": ["conv1"]}],
            "regularizer[1]: conv1 kernel already carries regularizer[0]",
        ),
    ],
)
def test_list_form_is_validated_as_strictly_as_the_single_form(regularizer, message):
    with pytest.raises(ConfigError) as error:
        validate({"regularizer": regularizer}, "x.yaml", "x")
    assert message in str(error.value)


def test_the_same_penalty_twice_on_one_target_is_refused_not_added():
    """Decided: two entries on the same target of a layer are refused; merge them into one entry."""
    with pytest.raises(ConfigError, match="one penalty per target of a layer"):
        validate(
            {
                "regularizer": [
                    {"type": "l1", "targets": ["activity"]},
                    {"type": "l2", "targets": ["activity"], "layers": ["dense1"]},
                ]
            },
            "x.yaml",
            "x",
        )


@pytest.mark.slow
def test_mixed_examples_run_end_to_end_through_sweep_and_show_in_the_summary(cli, tmp_path):
    import csv
    import shutil

    folder = tmp_path / "configs"
    folder.mkdir()
    for name in ("mixed_l2_conv_kernels_l1_dense_activity", "l2_dense_only"):
        shutil.copy(CONFIGS / f"{name}.yaml", folder)
    result = cli("sweep", folder, "--results", tmp_path / "results", *TINY_SET)
    assert result.exit_code == 0, result.output
    with open(tmp_path / "results" / "summary.csv") as f:
        rows = {row["config"]: row for row in csv.DictReader(f)}
    assert (
        rows["mixed_l2_conv_kernels_l1_dense_activity"]["regularizer"]
        == "l2 0.01 on kernel of conv; l1 0.001 on activity of dense1"
    )
    assert rows["l2_dense_only"]["regularizer"] == "l2 0.01 on kernel+bias of dense"
    model_txt = (tmp_path / "results" / "l2_dense_only" / "model.txt").read_text()
    assert "conv1: none" in model_txt and "dense2: l2 on bias (lambda=0.01)" in model_txt
