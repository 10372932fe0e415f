"""regexp's faster stand-ins for two Keras parts of a model, used when `training.fast_path` is
true (the default) and only where they compute what the stock part computes; with it false, and
on every other layer, the model is stock Keras.

- `RandomBitsDropout`: Keras's Dropout with its mask cut from random integers instead of
  random floats: the same layer in expectation, cheaper to draw.
- `ActivityPenalty`: a Keras L1, L2 or L1L2 activity penalty whose value and gradient are
  each one XLA-compiled pass over the activations (`fused_penalty`), summed in float32.

Both compute what the stock layers compute (the penalty summed in a different order; the
dropout masks drawn differently); tests/test_model.py and tests/test_mixed_penalties.py pin
that. Measured effects are in benchmarks/README.md.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from regexp.tf_runtime import keras, tf

ops = keras.ops


def penalty_terms(penalty: keras.regularizers.Regularizer) -> tuple[tf.Tensor | float, tf.Tensor | float, bool, bool]:
    """(l1, l2, with_l1, with_l2) of a Keras L1, L2 or L1L2 penalty: its strengths (regexp's
    variables, or Keras's numbers) and which terms it has. A regexp penalty has each term of its
    class whatever its strength, so that its strength can change; Keras's has those not 0."""
    strengths = getattr(penalty, "strengths", None)
    if strengths is not None:
        return strengths.get("l1", 0.0), strengths.get("l2", 0.0), "l1" in strengths, "l2" in strengths
    config = penalty.get_config()
    l1, l2 = float(config.get("l1", 0.0)), float(config.get("l2", 0.0))
    return l1, l2, l1 != 0, l2 != 0


@functools.cache
def fused_penalty(with_l1: bool, with_l2: bool) -> Callable:
    """(x, l1, l2) -> l1 * sum|x| + l2 * sum x^2 (the terms asked for), accumulated in float32,
    with its gradient in x.

    Written as TensorFlow ops, the penalty and its gradient are about a dozen passes over the
    activations (cast, abs, square, two sums; tile, sign, four multiplies, cast, add); here
    the value and the gradient are each one XLA-compiled pass. Same arithmetic, summed in a
    different order. The strengths are arguments, not constants, so one compiled pass serves
    every strength.
    """

    def weighted(x, l1, l2):
        terms = []
        if with_l1:
            terms.append(l1 * tf.abs(x))
        if with_l2:
            terms.append(l2 * tf.square(x))
        return tf.add_n(terms) if terms else tf.zeros_like(x)

    @tf.function(jit_compile=True)
    def value(x, l1, l2):
        return tf.reduce_sum(weighted(tf.reshape(tf.cast(x, tf.float32), [-1]), l1, l2))

    @tf.function(jit_compile=True)
    def slope(x, upstream, l1, l2):
        xf = tf.cast(x, tf.float32)
        derivative = tf.zeros_like(xf)
        if with_l1:
            derivative = l1 * tf.sign(xf)
        if with_l2:
            derivative = derivative + (2.0 * l2) * xf
        return tf.cast(upstream * derivative, x.dtype)

    @tf.custom_gradient
    def penalty(x, l1, l2):
        return value(x, l1, l2), lambda upstream: (slope(x, upstream, l1, l2), None, None)

    def call(x, l1, l2):
        return penalty(x, tf.convert_to_tensor(l1, tf.float32), tf.convert_to_tensor(l2, tf.float32))

    return call


class ActivityPenalty(keras.regularizers.Regularizer):
    """A Keras L1, L2 or L1L2 penalty on a layer's output, summed in float32 by `fused_penalty`.

    float32 because under mixed_bfloat16 the activations are bfloat16, whose 8-bit mantissa
    would round a sum over a whole batch badly. Keras (>= 3.14, the pinned version) divides an
    activity penalty by the batch size, as it does the stock regularizer's.
    """

    def __init__(self, penalty: keras.regularizers.Regularizer):
        self.penalty = penalty
        *self._strengths, with_l1, with_l2 = penalty_terms(penalty)
        self._fused = fused_penalty(with_l1, with_l2)

    def __call__(self, x):
        return self._fused(x, *self._strengths)

    def get_config(self):
        return {"penalty": keras.regularizers.serialize(self.penalty)}


class RandomBitsDropout(keras.layers.Dropout):
    """Keras's Dropout, with its mask cut from random integers instead of random floats.

    Keras draws one Philox float per element and selects twice (forward and backward); this
    draws one 32-bit word per four elements (per two when the rate is not a whole number of
    256ths) and multiplies by a mask of 0 and 1/(1 - rate): the same layer in expectation. A
    byte compares exactly for rates that are whole 256ths (0.25 is 64/256); other rates are
    rounded to the nearest 65536th. Seeds come from the layer's SeedGenerator, as in Keras,
    so runs are reproducible and regexp's checkpoint carries the generator's state.
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


def dropout_layer(fast_path: bool) -> type[keras.layers.Dropout]:
    """The dropout layer class of a path: RandomBitsDropout, or Keras's Dropout."""
    return RandomBitsDropout if fast_path else keras.layers.Dropout


def takes_fast_dropout(layer: keras.layers.Layer) -> bool:
    """Whether RandomBitsDropout can stand in for a layer: Keras's own Dropout (not a subclass,
    whose `call` may differ) drawing one value per element."""
    return type(layer) is keras.layers.Dropout and layer.noise_shape is None


def speed_up_dropout(model: keras.Model, fast_path: bool) -> None:
    """On the fast path, turn the model's Keras Dropout layers that RandomBitsDropout can stand in
    for into RandomBitsDropout, in place (nested models too).

    The layer's class is changed rather than the layer rebuilt: RandomBitsDropout adds no state
    to Dropout, and the layer keeps its seed generator, so the model is the one its builder
    made, with the same initial weights and seeds as a model built with RandomBitsDropout.
    """
    if not fast_path:
        return
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            speed_up_dropout(layer, fast_path)
        elif takes_fast_dropout(layer):
            object.__setattr__(layer, "__class__", RandomBitsDropout)


def layer_paths(layers) -> dict[str, str]:
    """{name: path} for each dropout layer and each layer with an activity penalty among `layers`
    (nested models' too): which took regexp's fast path, which kept Keras's own."""
    paths: dict[str, str] = {}
    for layer in layers:
        if isinstance(layer, keras.Model):
            paths.update(layer_paths(layer.layers))
            continue
        parts = []
        if isinstance(layer, keras.layers.Dropout):
            parts.append("dropout: " + ("RandomBitsDropout" if type(layer) is RandomBitsDropout else "Keras"))
        penalty = getattr(layer, "activity_regularizer", None)
        if penalty is not None:
            parts.append("activity penalty: " + ("fused (XLA)" if isinstance(penalty, ActivityPenalty) else "Keras"))
        if parts:
            paths[layer.name] = "; ".join(parts)
    return paths


FUSED_PENALTIES = (keras.regularizers.L1, keras.regularizers.L2, keras.regularizers.L1L2)


def activity_regularizer(penalty: keras.regularizers.Regularizer, fast_path: bool) -> keras.regularizers.Regularizer:
    """An activity penalty for a path: the fused ActivityPenalty, or the Keras regularizer itself
    (also on the fast path for a penalty that `fused_penalty` cannot express: it knows l1 and l2 only)."""
    return ActivityPenalty(penalty) if fast_path and isinstance(penalty, FUSED_PENALTIES) else penalty


def describe(fast_path: bool, has_activity_penalty: bool) -> dict:
    """What metrics.json's `training_path` says about dropout and XLA on a path."""
    if not fast_path:
        return {"fast_path": False, "dropout": "keras.layers.Dropout", "xla": "not used"}
    return {
        "fast_path": True,
        "dropout": "RandomBitsDropout (masks cut from random bytes)",
        "xla": "activity penalties only (value and gradient)" if has_activity_penalty else "not used",
    }
