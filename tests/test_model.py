"""The model builder: the reference architecture and where each penalty sits."""

import json

import numpy as np
import pytest

from regexp.config import load_config, validate
from regexp.results.store import read_history
from regexp.tf_runtime import keras
from regexp.training import model as model_lib  # noqa: E402
from regexp.training import penalties, speedups  # noqa: E402

from conftest import CONFIGS, REFERENCE_CONFIGS, TINY, merge, write_config

REFERENCE_LAYERS = [
    ("conv1", "Conv2D", (None, 26, 26, 32)),
    ("pool1", "MaxPooling2D", (None, 13, 13, 32)),
    ("drop1", "RandomBitsDropout", (None, 13, 13, 32)),
    ("conv2", "Conv2D", (None, 11, 11, 64)),
    ("pool2", "MaxPooling2D", (None, 5, 5, 64)),
    ("drop2", "RandomBitsDropout", (None, 5, 5, 64)),
    ("flatten", "Flatten", (None, 1600)),
    ("dense1", "Dense", (None, 256)),
    ("dense2", "Dense", (None, 47)),
]
# What each reference config puts on every Conv2D and Dense layer: target -> (class, strengths).
EXPECTED_PENALTIES = {
    "none": {},
    "l1_kernel_bias": {"kernel": ("L1", {"l1": 0.01}), "bias": ("L1", {"l1": 0.01})},
    "l1_activity": {"activity": ("L1", {"l1": 0.01})},
    "l2_kernel_bias": {"kernel": ("L2", {"l2": 0.01}), "bias": ("L2", {"l2": 0.01})},
    "l2_activity": {"activity": ("L2", {"l2": 0.01})},
    "l2_activity_extended": {"activity": ("L2", {"l2": 0.10})},
    "elasticnet_kernel_bias": {
        "kernel": ("L1L2", {"l1": 0.01, "l2": 0.01}),
        "bias": ("L1L2", {"l1": 0.01, "l2": 0.01}),
    },
    "elasticnet_activity": {"activity": ("L1L2", {"l1": 0.01, "l2": 0.01})},
}


def carried_penalties(layer) -> dict:
    found = {}
    for target in ("kernel", "bias", "activity"):
        reg = getattr(layer, f"{target}_regularizer", None)
        if reg is None:
            continue
        if isinstance(reg, speedups.ActivityPenalty):
            reg = reg.penalty
        config = {k: pytest.approx(v) for k, v in reg.get_config().items()}
        found[target] = (type(reg).__name__, config)
    return found


@pytest.mark.parametrize("fast_path", [True, False])
def test_architecture_matches_the_reference(fast_path):
    model = model_lib.build_model(load_config(CONFIGS / "none.yaml"), 47, fast_path=fast_path)
    expected = [
        (name, "Dropout" if kind == "RandomBitsDropout" and not fast_path else kind, shape)
        for name, kind, shape in REFERENCE_LAYERS
    ]
    assert [(layer.name, type(layer).__name__, tuple(layer.output.shape)) for layer in model.layers[1:]] == expected
    assert model.count_params() == 440_751
    assert model.get_layer("drop1").rate == 0.25


def test_without_the_fast_path_every_layer_is_stock_keras_and_every_penalty_keras_formula():
    config = load_config(CONFIGS / "elasticnet_activity.yaml").model_copy(deep=True)
    config.training.fast_path = False
    model = model_lib.build_model(config, 47)
    assert (
        type(model.get_layer("drop1")) is keras.layers.Dropout
        and type(model.get_layer("drop2")) is keras.layers.Dropout
    )
    for name in ("conv1", "conv2", "dense1", "dense2"):
        assert type(model.get_layer(name).activity_regularizer) is penalties.L1L2
    fast = model_lib.build_model(load_config(CONFIGS / "elasticnet_activity.yaml"), 47)
    assert type(fast.get_layer("drop1")) is speedups.RandomBitsDropout
    assert type(fast.get_layer("conv1").activity_regularizer) is speedups.ActivityPenalty


@pytest.mark.parametrize("name", REFERENCE_CONFIGS)
def test_each_reference_config_puts_its_penalty_on_every_conv_and_dense_layer(name):
    model = model_lib.build_model(load_config(CONFIGS / f"{name}.yaml"), 47)
    for layer in model.layers[1:]:
        expected = EXPECTED_PENALTIES[name] if layer.name in ("conv1", "conv2", "dense1", "dense2") else {}
        assert carried_penalties(layer) == expected, layer.name


def test_mixed_precision_keeps_the_output_layer_in_float32():
    model = model_lib.build_model(load_config(CONFIGS / "l2_activity.yaml"), 47, "mixed_bfloat16")
    assert model.get_layer("conv1").compute_dtype == "bfloat16"
    assert model.get_layer("dense2").compute_dtype == "float32"
    assert model(np.zeros((2, 28, 28, 1), "float32")).dtype == "float32"


@pytest.mark.parametrize("fast_path", [False, True])
def test_installed_keras_averages_activity_penalty_over_the_batch(fast_path):
    """A guard on the keras>=3.14 pin: Keras divides an activity penalty by the batch size
    itself (the reference's semantics), for the stock regularizer and for ActivityPenalty."""
    layer = keras.layers.Dense(
        3,
        kernel_initializer="ones",
        use_bias=False,
        activity_regularizer=speedups.activity_regularizer(keras.regularizers.L2(0.01), fast_path),
    )
    one = np.ones((1, 2), "float32")
    layer(one)
    single = float(layer.losses[0])
    layer(np.repeat(one, 250, axis=0))
    assert float(layer.losses[0]) == pytest.approx(single)  # batch 1 and batch 250: same penalty
    assert single == pytest.approx(0.01 * 3 * 2.0**2)


def test_weight_sparsity_counts_small_weights():
    model = model_lib.build_model(validate({}, "x", "x"), 10)
    for layer in ("conv1", "conv2", "dense1", "dense2"):
        for w in model.get_layer(layer).weights:
            w.assign(np.zeros(w.shape))
    model.get_layer("dense2").kernel.assign(np.ones((256, 10)))
    sparsity = model_lib.weight_sparsity(model)
    assert sparsity["layers"]["dense2"] == pytest.approx(10 / (2560 + 10))
    assert sparsity["layers"]["conv1"] == 1.0


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("rate", [0.25, 0.1])  # a whole number of 256ths (byte draws), and not (16-bit draws)
def test_random_bits_dropout_keeps_one_minus_rate_and_scales_what_it_keeps(dtype, rate):
    layer = speedups.RandomBitsDropout(rate, seed=1, dtype=dtype)
    x = keras.ops.ones((200, 50, 100), dtype)
    y = keras.ops.convert_to_numpy(keras.ops.cast(layer(x, training=True), "float32"))
    kept = y != 0
    assert kept.mean() == pytest.approx(1 - rate, abs=0.003)  # 1e6 draws: 3 standard errors is < 0.0013
    scale = float(keras.ops.convert_to_numpy(keras.ops.cast(keras.ops.cast(1 / (1 - rate), dtype), "float32")))
    assert np.all(y[kept] == scale)
    assert np.array_equal(keras.ops.convert_to_numpy(layer(x, training=False)), keras.ops.convert_to_numpy(x))


def test_random_bits_dropout_draws_a_fresh_mask_each_call_and_repeats_from_the_same_seed():
    x = keras.ops.ones((64, 13, 13, 32))
    first, second = speedups.RandomBitsDropout(0.25, seed=7), speedups.RandomBitsDropout(0.25, seed=7)
    a1, a2 = (keras.ops.convert_to_numpy(first(x, training=True)) for _ in range(2))
    b1 = keras.ops.convert_to_numpy(second(x, training=True))
    assert not np.array_equal(a1, a2)
    assert np.array_equal(a1, b1)


def test_random_bits_dropout_passes_gradients_through_the_kept_elements_only():
    import tensorflow as tf

    layer = speedups.RandomBitsDropout(0.25, seed=3)
    x = tf.random.uniform((32, 5, 5, 64)) + 1.0
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        loss = tf.reduce_sum(y)
    gradient = tape.gradient(loss, x).numpy()
    assert np.allclose(gradient, y.numpy() / x.numpy())  # d(x * mask)/dx = mask: 0 or 1/(1 - rate)


def test_random_bits_dropout_refuses_a_noise_shape():
    with pytest.raises(ValueError, match="noise_shape"):
        speedups.RandomBitsDropout(0.25, noise_shape=(None, 1, 1, 32))


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("l1, l2", [(0.01, 0.0), (0.0, 0.1), (0.01, 0.02)])
def test_fused_penalty_value_and_gradient_match_the_formula(dtype, l1, l2):
    import tensorflow as tf

    x = tf.cast(tf.random.stateless_normal((8, 6, 6, 4), seed=[1, 2]), dtype)
    reference = np.asarray(tf.cast(x, tf.float64))
    with tf.GradientTape() as tape:
        tape.watch(x)
        value = speedups.fused_penalty(l1 != 0, l2 != 0)(x, l1, l2) * 0.5  # an upstream gradient other than 1
    gradient = tape.gradient(value, x)
    assert gradient.dtype == x.dtype
    assert float(value) == pytest.approx(0.5 * (l1 * np.abs(reference).sum() + l2 * (reference**2).sum()), rel=1e-5)
    expected = 0.5 * (l1 * np.sign(reference) + 2 * l2 * reference)
    np.testing.assert_allclose(
        np.asarray(tf.cast(gradient, tf.float64)), expected, rtol=1e-2 if dtype == "bfloat16" else 1e-6, atol=1e-6
    )


@pytest.mark.parametrize("fast_path", [True, False])
def test_both_paths_train_and_record_which_one_they_used(cli, tmp_path, fast_path):
    config = write_config(
        tmp_path,
        "path",
        merge(
            TINY,
            {
                "regularizer": {"type": "l2", "targets": ["activity"]},
                "model": {"num_classes": 10},
                "training": {"epochs": 2, "batch_size": 50, "fast_path": fast_path},
            },
        ),
    )
    result = cli("run", config, "--results", tmp_path / "results")
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "results" / "path" / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["epochs_run"] == 2
    history = read_history(tmp_path / "results" / "path" / "history.csv")
    assert history[-1]["loss"] < history[0]["loss"]
    path = metrics["training_path"]
    assert path["fast_path"] is fast_path
    if fast_path:
        assert path["dropout"].startswith("RandomBitsDropout") and path["xla"].startswith("activity penalties only")
    else:
        assert (path["dropout"], path["xla"]) == ("keras.layers.Dropout", "not used")


def test_a_penalty_the_fused_pass_cannot_express_stays_keras_own_on_the_fast_path():
    class Huber(keras.regularizers.Regularizer):
        def __call__(self, x):
            return keras.ops.sum(keras.ops.sqrt(1.0 + keras.ops.square(x)) - 1.0)

    custom = Huber()
    assert speedups.activity_regularizer(custom, fast_path=True) is custom
    assert isinstance(speedups.activity_regularizer(keras.regularizers.L2(0.01), True), speedups.ActivityPenalty)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize(
    "ours, stock",
    [
        (lambda: penalties.L1(0.01), lambda: keras.regularizers.L1(0.01)),
        (lambda: penalties.L2(0.003), lambda: keras.regularizers.L2(0.003)),
        (lambda: penalties.L1L2(0.01, 0.02), lambda: keras.regularizers.L1L2(0.01, 0.02)),
    ],
)
def test_variable_strength_penalties_compute_exactly_what_keras_does(dtype, ours, stock):
    import tensorflow as tf

    x = tf.cast(tf.random.stateless_normal((64, 10), seed=[3, 4]), dtype)
    penalty, reference = ours(), stock()
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        value, expected = penalty(x), reference(x)

    def plain(tensor):
        return np.asarray(tf.cast(tensor, tf.float32))  # bfloat16 has no numpy dtype

    assert value.dtype == expected.dtype and plain(value) == plain(expected)
    np.testing.assert_array_equal(plain(tape.gradient(value, x)), plain(tape.gradient(expected, x)))
    assert penalty.get_config() == pytest.approx(reference.get_config())


def test_a_penalty_given_another_strength_computes_at_the_new_one_in_the_same_traced_function():
    import tensorflow as tf

    penalty, traced = penalties.L2(0.01), []

    @tf.function
    def value(x):
        traced.append(1)
        return penalty(x)

    x = tf.ones((4,))
    assert float(value(x)) == pytest.approx(0.04)
    penalties.copy_strengths(penalty, penalties.L2(0.5))
    assert float(value(x)) == pytest.approx(2.0) and len(traced) == 1
    with pytest.raises(ValueError, match="do not fit"):
        penalties.copy_strengths(penalty, penalties.L1(0.5))
