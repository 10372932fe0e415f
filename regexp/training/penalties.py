"""The penalties regexp places on a model: Keras's L1, L2 and L1L2, with their strengths held in
variables instead of Python numbers.

Each computes what the Keras class of its name computes, in the same order of operations
(tests/test_model.py checks them bit for bit against Keras's). A Python number is traced into
the training step as a constant; a variable is read by it, so that one compiled model can be
trained again at another strength (regexp/training/reuse.py) without tracing it again.
The variables are the penalty's own: no layer tracks them, so they are not in the model's
weights, its checkpoint or model.weights.h5.
"""

from __future__ import annotations

from regexp.config import RegularizerConfig
from regexp.tf_runtime import keras, tf

ops = keras.ops


def _strength(value: float) -> tf.Variable:
    return tf.Variable(float(value), dtype=tf.float32, trainable=False)


class L1(keras.regularizers.L1):
    """`l1 * sum(|x|)`."""

    def __init__(self, l1: float):
        self.strengths = {"l1": _strength(l1)}

    def __call__(self, x):
        return ops.cast(self.strengths["l1"], dtype=x.dtype) * ops.sum(ops.absolute(x))

    def get_config(self):
        return {"l1": float(self.strengths["l1"].numpy())}


class L2(keras.regularizers.L2):
    """`l2 * sum(x^2)`."""

    def __init__(self, l2: float):
        self.strengths = {"l2": _strength(l2)}

    def __call__(self, x):
        return ops.cast(self.strengths["l2"], dtype=x.dtype) * ops.sum(ops.square(x))

    def get_config(self):
        return {"l2": float(self.strengths["l2"].numpy())}


class L1L2(keras.regularizers.L1L2):
    """`0 + l1 * sum(|x|) + l2 * sum(x^2)`: both terms always, so that either strength can change
    (Keras leaves out a term whose strength is 0, which adds the same 0)."""

    def __init__(self, l1: float, l2: float):
        self.strengths = {"l1": _strength(l1), "l2": _strength(l2)}

    def __call__(self, x):
        regularization = ops.convert_to_tensor(0.0, dtype=x.dtype)
        regularization += ops.cast(self.strengths["l1"], dtype=x.dtype) * ops.sum(ops.absolute(x))
        regularization += ops.cast(self.strengths["l2"], dtype=x.dtype) * ops.sum(ops.square(x))
        return regularization

    def get_config(self):
        return {name: float(variable.numpy()) for name, variable in self.strengths.items()}


VARIABLE_PENALTIES = (L1, L2, L1L2)


def make_penalty(entry: RegularizerConfig) -> L1 | L2 | L1L2:
    """The penalty of one config entry, at the entry's strength."""
    if entry.type == "l1":
        return L1(entry.lambda_)
    if entry.type == "l2":
        return L2(entry.lambda_)
    if entry.type == "elasticnet":
        return L1L2(entry.l1, entry.l2)
    raise ValueError(f"no penalty for type {entry.type!r}")


def copy_strengths(target: L1 | L2 | L1L2, source: L1 | L2 | L1L2) -> None:
    """Give `target` the strengths of `source`, a penalty of the same class."""
    if type(target) is not type(source):
        raise ValueError(f"a {type(source).__name__} penalty's strengths do not fit a {type(target).__name__}")
    for name, variable in target.strengths.items():
        variable.assign(source.strengths[name])
