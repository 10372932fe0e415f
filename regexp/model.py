"""Model: the reference CNN, with the configured penalties on its Conv2D and Dense layers.

conv1 Conv2D(32, 3x3, relu) -> pool1 -> drop1 -> conv2 Conv2D(64, 3x3, relu) -> pool2 -> drop2
-> flatten -> dense1 Dense(256, relu) -> dense2 Dense(classes, softmax)

Penalties are built from Keras's regularizer classes with explicit values (Keras 3's string
forms are unreliable: 'l1l2' means a zero penalty). An activity penalty means the mean over
the batch of the per-sample penalty, as in the reference experiment's Keras; the installed
Keras is probed once so that the penalty is never divided twice, nor summed over the batch.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from regexp.config import LAYER_NAMES, ExperimentConfig, RegularizerConfig, penalty_layers
from regexp.tf_runtime import keras, tf

ops = keras.ops

INPUT_SHAPE = (28, 28, 1)
SPARSITY_THRESHOLD = 1e-3


def layer_penalties(config: ExperimentConfig) -> dict[str, dict[str, RegularizerConfig]]:
    """Which penalty sits on which target of which layer: {layer: {target: entry}}."""
    plan: dict[str, dict[str, RegularizerConfig]] = {name: {} for name in LAYER_NAMES}
    for entry in config.penalties:
        if entry.type == "none":
            continue
        for layer in penalty_layers(entry):
            for target in entry.targets:
                plan[layer][target] = entry
    return plan


def describe_penalty(entry: RegularizerConfig) -> dict:
    """A penalty as plain data: type and strength(s)."""
    if entry.type == "elasticnet":
        return {"type": "elasticnet", "l1": entry.l1, "l2": entry.l2}
    return {"type": entry.type, "lambda": entry.lambda_}


def penalty_summary(config: ExperimentConfig) -> dict[str, list[dict]]:
    """{layer: [{target, type, lambda | l1, l2}, ...]} for metrics.json and model.txt."""
    return {
        layer: [{"target": target, **describe_penalty(entry)} for target, entry in targets.items()]
        for layer, targets in layer_penalties(config).items()
    }


def make_regularizer(entry: RegularizerConfig) -> keras.regularizers.Regularizer:
    """The Keras regularizer for one entry, built with its values explicitly."""
    if entry.type == "l1":
        return keras.regularizers.L1(l1=entry.lambda_)
    if entry.type == "l2":
        return keras.regularizers.L2(l2=entry.lambda_)
    if entry.type == "elasticnet":
        return keras.regularizers.L1L2(l1=entry.l1, l2=entry.l2)
    raise ValueError(f"no regularizer for type {entry.type!r}")


def penalty_coefficients(penalty: keras.regularizers.Regularizer) -> tuple[float, float]:
    """(l1, l2) of a Keras L1, L2 or L1L2 regularizer."""
    config = penalty.get_config()
    return float(config.get("l1", 0.0)), float(config.get("l2", 0.0))


@functools.cache
def fused_penalty(l1: float, l2: float) -> Callable:
    """x -> l1 * sum|x| + l2 * sum x^2, accumulated in float32, with its gradient.

    Written as TensorFlow ops, the penalty and its gradient are about a dozen passes over
    the activations (cast, abs, square, two sums; tile, sign, four multiplies, cast, add):
    on conv1's 26x26x32 output alone, 12 ms per bfloat16 step on 2 CPU cores. Here the value
    and the gradient are each one XLA-compiled pass (elastic net on every layer's activity:
    38.7 -> 25.0 ms per step, against 20.5 ms without a penalty). Same arithmetic, summed in
    a different order.
    """

    def weighted(x):
        terms = []
        if l1:
            terms.append(l1 * tf.abs(x))
        if l2:
            terms.append(l2 * tf.square(x))
        return tf.add_n(terms) if terms else tf.zeros_like(x)

    @tf.function(jit_compile=True)
    def value(x):
        return tf.reduce_sum(weighted(tf.reshape(tf.cast(x, tf.float32), [-1])))

    @tf.function(jit_compile=True)
    def slope(x, upstream):
        xf = tf.cast(x, tf.float32)
        return tf.cast(upstream * (l1 * tf.sign(xf) + (2.0 * l2) * xf), x.dtype)

    @tf.custom_gradient
    def penalty(x):
        return value(x), lambda upstream: slope(x, upstream)

    return penalty


class ActivityPenalty(keras.regularizers.Regularizer):
    """A Keras L1, L2 or L1L2 penalty on a layer's output, summed in float32 and averaged
    over the batch, computed by `fused_penalty`.

    float32 because under mixed_bfloat16 the activations are bfloat16, whose 8-bit mantissa
    would round a sum over a whole batch badly. `divide_by_batch` is set only when the
    installed Keras sums activity penalties over the batch (Keras 3.0 to 3.13).
    """

    def __init__(self, penalty: keras.regularizers.Regularizer, divide_by_batch: bool):
        self.penalty = penalty
        self.divide_by_batch = divide_by_batch
        self._fused = fused_penalty(*penalty_coefficients(penalty))

    def __call__(self, x):
        value = self._fused(x)
        if self.divide_by_batch:
            value = value / ops.cast(ops.shape(x)[0], "float32")
        return value

    def get_config(self):
        return {"penalty": keras.regularizers.serialize(self.penalty), "divide_by_batch": self.divide_by_batch}


@functools.cache
def keras_averages_activity_penalty() -> bool:
    """Probe the installed Keras: does it divide an activity penalty by the batch size?

    A unit Dense layer with an L1(1.0) activity penalty sees a batch of four ones: Keras
    that averages reports 1.0, Keras that sums reports 4.0.
    """
    probe = keras.layers.Dense(
        1, use_bias=False, kernel_initializer="ones", activity_regularizer=keras.regularizers.L1(1.0)
    )
    probe(ops.ones((4, 1)))
    (loss,) = probe.losses
    value = float(ops.convert_to_numpy(loss))
    if abs(value - 1.0) < 1e-6:
        return True
    if abs(value - 4.0) < 1e-6:
        return False
    raise RuntimeError(f"unexpected activity penalty {value} from the installed Keras {keras.__version__}")


def activity_semantics() -> dict:
    """How the activity penalty is scaled in this process, for metrics.json."""
    keras_divides = keras_averages_activity_penalty()
    return {
        "semantics": "mean over the batch of the per-sample penalty (as the reference)",
        "keras_divides_by_batch": keras_divides,
        "regexp_divides_by_batch": not keras_divides,
    }


class RandomBitsDropout(keras.layers.Dropout):
    """Keras's Dropout, with its mask cut from random integers instead of random floats.

    Keras draws one Philox float per element and selects twice (forward and backward);
    this draws one 32-bit word per four elements (per two when the rate is not a whole
    number of 256ths) and multiplies by a mask of 0 and 1/(1 - rate): the same layer in
    expectation, about 3x cheaper (a bfloat16 training step on 2 CPU cores: 25.6 -> 20.8 ms). A
    byte compares exactly for rates that are whole 256ths (0.25 is 64/256); other rates
    are rounded to the nearest 65536th. Seeds come from the layer's SeedGenerator, as in
    Keras, so runs are reproducible; unlike Keras, its state is saved with the weights, so a
    run resumed from a checkpoint continues the sequence.
    """

    def __init__(self, rate, **kwargs):
        if kwargs.get("noise_shape") is not None:
            raise ValueError("RandomBitsDropout draws one value per element: noise_shape is not supported")
        super().__init__(rate, **kwargs)

    def call(self, inputs, training=False):
        if not training or self.rate == 0:
            return inputs
        if self.rate == 1:
            return ops.zeros_like(inputs)
        threshold = self.rate * 256
        if threshold == int(threshold):
            draw_dtype, per_word = tf.uint8, 4
        else:
            draw_dtype, per_word, threshold = tf.uint16, 2, round(self.rate * 65536)
        seed = tf.cast(tf.math.floormod(self.seed_generator.next(), tf.int32.max - 1), tf.int32)
        size = tf.size(inputs)
        words = tf.random.stateless_uniform(
            [(size + per_word - 1) // per_word], seed, minval=None, maxval=None, dtype=tf.uint32
        )
        draws = tf.reshape(tf.bitcast(words, draw_dtype), [-1])[:size]
        keep = tf.reshape(draws >= tf.constant(int(threshold), draw_dtype), tf.shape(inputs))
        scale = tf.constant(1.0 / (1.0 - self.rate), inputs.dtype)
        return inputs * tf.where(keep, scale, tf.zeros((), inputs.dtype))

    # Keras saves a layer's own variables only, not its SeedGenerator's state: a run resumed
    # from a checkpoint would draw its first epochs' masks again. Saving it makes a resumed
    # run continue the sequence, as if never interrupted.
    def save_own_variables(self, store):
        super().save_own_variables(store)
        if self.rate > 0:
            store["seed_generator_state"] = self.seed_generator.state

    def load_own_variables(self, store):
        # Dropout has no variables of its own: the state is all there is to load (a checkpoint
        # written by a Keras Dropout has none, and leaves the state as it is).
        if self.rate > 0 and "seed_generator_state" in store:
            self.seed_generator.state.assign(store["seed_generator_state"])


class PenaltyTrackingModel(keras.Model):
    """A functional model that also reports the penalty part of its loss as `penalty`."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.penalty_tracker = keras.metrics.Mean(name="penalty")

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        total = super().compute_loss(x, y, y_pred, sample_weight, training)
        penalties = [self._aggregate_additional_loss(loss) for loss in self.losses]
        self.penalty_tracker.update_state(ops.sum(penalties) if penalties else 0.0)
        return total


def build_model(config: ExperimentConfig, num_classes: int, precision: str = "float32") -> keras.Model:
    """Assemble the reference CNN with the configured penalties, for `num_classes` outputs.

    `precision` is a Keras dtype policy name; the output layer always computes in float32
    so that the softmax and the loss are not rounded to bfloat16.
    """
    plan = layer_penalties(config)
    divide_activity = not keras_averages_activity_penalty()
    m = config.model

    def penalties(layer: str) -> dict:
        chosen = plan[layer]
        kwargs = {}
        if "kernel" in chosen:
            kwargs["kernel_regularizer"] = make_regularizer(chosen["kernel"])
        if "bias" in chosen:
            kwargs["bias_regularizer"] = make_regularizer(chosen["bias"])
        if "activity" in chosen:
            kwargs["activity_regularizer"] = ActivityPenalty(make_regularizer(chosen["activity"]), divide_activity)
        return kwargs

    layers = keras.layers
    inputs = keras.Input(shape=INPUT_SHAPE, name="image")
    x = layers.Conv2D(m.conv1_filters, 3, activation="relu", name="conv1", dtype=precision, **penalties("conv1"))(inputs)
    x = layers.MaxPooling2D(2, name="pool1", dtype=precision)(x)
    x = RandomBitsDropout(m.dropout, name="drop1", dtype=precision)(x)
    x = layers.Conv2D(m.conv2_filters, 3, activation="relu", name="conv2", dtype=precision, **penalties("conv2"))(x)
    x = layers.MaxPooling2D(2, name="pool2", dtype=precision)(x)
    x = RandomBitsDropout(m.dropout, name="drop2", dtype=precision)(x)
    x = layers.Flatten(name="flatten", dtype=precision)(x)
    x = layers.Dense(m.dense_units, activation="relu", name="dense1", dtype=precision, **penalties("dense1"))(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="dense2", dtype="float32", **penalties("dense2"))(x)
    return PenaltyTrackingModel(inputs=inputs, outputs=outputs, name=config.name or "regexp_cnn")


def compile_model(model: keras.Model, learning_rate: float) -> None:
    """Adam with Keras defaults but the configured learning rate; integer labels."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )


def weight_sparsity(model: keras.Model, threshold: float = SPARSITY_THRESHOLD) -> dict:
    """Fraction of weights with |w| < threshold, per regularizable layer and overall."""
    per_layer, small, total = {}, 0, 0
    for name in LAYER_NAMES:
        values = [ops.convert_to_numpy(w) for w in model.get_layer(name).weights]
        layer_small = sum(int((abs(v) < threshold).sum()) for v in values)
        layer_total = sum(v.size for v in values)
        per_layer[name] = layer_small / layer_total
        small += layer_small
        total += layer_total
    return {"threshold": threshold, "overall": small / total, "layers": per_layer}


def model_summary(model: keras.Model, config: ExperimentConfig) -> str:
    """Keras's model summary followed by the penalties each layer carries (model.txt)."""
    lines: list[str] = []
    model.summary(print_fn=lambda text, line_break=True: lines.append(text), line_length=90)
    lines.append("")
    lines.append("Penalties per layer:")
    for layer, entries in penalty_summary(config).items():
        if not entries:
            lines.append(f"  {layer}: none")
        for e in entries:
            strength = f"l1={e['l1']}, l2={e['l2']}" if e["type"] == "elasticnet" else f"lambda={e['lambda']}"
            lines.append(f"  {layer}: {e['type']} on {e['target']} ({strength})")
    return "\n".join(lines) + "\n"
