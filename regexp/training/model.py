"""Model: any Keras model from a builder function, with the configured penalties placed on its layers.

A builder is called as `builder(input_shape, num_classes, **params)` and returns an unregularized
Keras model (functional or Sequential). The default builder is `reference_cnn`, the reference
experiment's network, written the same way:

conv1 Conv2D(32, 3x3, relu) -> pool1 -> drop1 -> conv2 Conv2D(64, 3x3, relu) -> pool2 -> drop2
-> flatten -> dense1 Dense(256, relu) -> dense2 Dense(classes, softmax)

regexp places the penalties on the returned model's layers that carry a kernel (Conv, Dense and
their kinds: see LAYER_CLASSES), by the rule of `config.plan_penalties`. The penalties are Keras's
L1, L2 and L1L2 with their strengths in variables (regexp/training/penalties.py), so that a
compiled model can be trained again at another strength. An activity penalty means the mean over
the batch of the per-sample penalty, as in the reference experiment's Keras.

`fast_path` (config `training.fast_path`) swaps in regexp's faster dropout and activity penalty
from regexp/training/speedups.py where they apply; every other layer and penalty is stock Keras.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

from regexp.config import (
    BUILDER_FORMAT,
    REFERENCE_LAYERS,
    ExperimentConfig,
    PlacementProblem,
    RegularizerConfig,
    plan_penalties,
)
from regexp.config.schema import is_file_reference
from regexp.errors import ModelError
from regexp.tf_runtime import keras
from regexp.training import penalties, speedups

ops = keras.ops

INPUT_SHAPE = (28, 28, 1)
SPARSITY_THRESHOLD = 1e-3
REFERENCE_BUILDER = "regexp.training.model:reference_cnn"  # what metrics.json names when model.builder is not given

_layers = keras.layers
# The kinds of layer that carry a kernel (config.LAYER_KINDS), each with its Keras classes; the
# first kind a layer is an instance of is its kind.
LAYER_CLASSES = (
    ("depthwise", (_layers.DepthwiseConv1D, _layers.DepthwiseConv2D)),
    ("separable", (_layers.SeparableConv1D, _layers.SeparableConv2D)),
    ("conv1d", (_layers.Conv1D,)),
    ("conv3d", (_layers.Conv3D,)),
    ("conv", (_layers.Conv2D,)),
    ("dense", (_layers.Dense,)),
)
# A kernel penalty's variables and regularizer attributes, by kind (default: the layer's `kernel`).
KERNEL_WEIGHTS = {
    "depthwise": (("kernel", "depthwise_regularizer"),),
    "separable": (("depthwise_kernel", "depthwise_regularizer"), ("pointwise_kernel", "pointwise_regularizer")),
}
DEFAULT_KERNEL_WEIGHTS = (("kernel", "kernel_regularizer"),)


def reference_cnn(
    input_shape: tuple[int, ...],
    num_classes: int,
    conv1_filters: int = 32,
    conv2_filters: int = 64,
    dense_units: int = 256,
    dropout: float = 0.25,
) -> keras.Model:
    """The reference experiment's CNN, unregularized, for `num_classes` outputs: the default builder.

    Its output layer computes in float32 whatever the dtype policy, so that the softmax and the
    loss are not rounded to bfloat16.
    """
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = _layers.Conv2D(conv1_filters, 3, activation="relu", name="conv1")(inputs)
    x = _layers.MaxPooling2D(2, name="pool1")(x)
    x = _layers.Dropout(dropout, name="drop1")(x)
    x = _layers.Conv2D(conv2_filters, 3, activation="relu", name="conv2")(x)
    x = _layers.MaxPooling2D(2, name="pool2")(x)
    x = _layers.Dropout(dropout, name="drop2")(x)
    x = _layers.Flatten(name="flatten")(x)
    x = _layers.Dense(dense_units, activation="relu", name="dense1")(x)
    outputs = _layers.Dense(num_classes, activation="softmax", name="dense2", dtype="float32")(x)
    return keras.Model(inputs=inputs, outputs=outputs, name="regexp_cnn")


def layer_penalties(
    config: ExperimentConfig, layers: dict[str, str] = REFERENCE_LAYERS
) -> dict[str, dict[str, RegularizerConfig]]:
    """Which penalty sits on which target of which layer ({name: kind}): {layer: {target: entry}}."""
    entries = config.penalties
    plan = plan_penalties(entries, layers)
    return {layer: {target: entries[i] for target, i in targets.items()} for layer, targets in plan.items()}


def describe_penalty(entry: RegularizerConfig) -> dict:
    """A penalty as plain data: type and strength(s)."""
    if entry.type == "elasticnet":
        return {"type": "elasticnet", "l1": entry.l1, "l2": entry.l2}
    return {"type": entry.type, "lambda": entry.lambda_}


def penalty_summary(config: ExperimentConfig, model: keras.Model | None = None) -> dict[str, list[dict]]:
    """{layer: [{target, type, lambda | l1, l2}, ...]} for metrics.json and model.txt: on `model`'s
    layers as placed (a bias target skips a layer without a bias), default the reference CNN's."""
    layers = kernel_layers(model) if model is not None else None
    plan = layer_penalties(config, layer_inventory(model) if model is not None else REFERENCE_LAYERS)
    return {
        name: [
            {"target": target, **describe_penalty(entry)}
            for target, entry in targets.items()
            if layers is None or target != "bias" or layers[name].bias is not None
        ]
        for name, targets in plan.items()
    }


def activity_semantics() -> dict:
    """How an activity penalty is scaled, for metrics.json (Keras >= 3.14, the pinned version,
    divides it by the batch size; tests/test_model.py guards that)."""
    return {"semantics": "mean over the batch of the per-sample penalty (as the reference)"}


class PenaltyTrackingModel(keras.Model):
    """A functional model that also reports the penalty part of its loss as `penalty`."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.penalty_tracker = keras.metrics.Mean(name="penalty")

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        total = super().compute_loss(x, y, y_pred, sample_weight, training)
        parts = [self._aggregate_additional_loss(loss) for loss in self.losses]
        self.penalty_tracker.update_state(ops.sum(parts) if parts else 0.0)
        return total

    def _aggregate_additional_loss(self, loss):
        # A stock activity regularizer on a mixed_bfloat16 layer returns a bfloat16 penalty,
        # which Keras cannot add to the float32 loss: cast it (the fast path's is float32).
        return ops.cast(super()._aggregate_additional_loss(loss), "float32")


def kernel_layers(model: keras.Model) -> dict[str, keras.layers.Layer]:
    """The layers of `model` that carry a kernel, by name, in model order (inside nested models too)."""
    found: dict[str, keras.layers.Layer] = {}
    for layer in model.layers:
        inner = kernel_layers(layer) if isinstance(layer, keras.Model) else {}
        if layer_kind(layer) is not None:
            inner = {layer.name: layer}
        for name, found_layer in inner.items():
            if name in found:
                raise ModelError(f"model.builder: two layers are named {name!r}; give each layer its own name")
            found[name] = found_layer
    return found


def layer_kind(layer: keras.layers.Layer) -> str | None:
    """The kind of a layer that carries a kernel (conv, dense, depthwise, ...), or None."""
    return next((kind for kind, classes in LAYER_CLASSES if isinstance(layer, classes)), None)


def layer_inventory(model: keras.Model) -> dict[str, str]:
    """{name: kind} of the model's layers that carry a kernel, in model order."""
    return {name: layer_kind(layer) for name, layer in kernel_layers(model).items()}


def builder_name(config: ExperimentConfig) -> str:
    """The builder as metrics.json names it: the config's model.builder, or the reference CNN's."""
    return config.model.builder or REFERENCE_BUILDER


def load_builder(config: ExperimentConfig) -> Callable:
    """The builder function a config names (the reference CNN without model.builder).

    Raises ModelError, naming model.builder and what was found, for a module that cannot be
    imported, a missing name, or one that is not callable.
    """
    reference = config.model.builder
    if reference is None:
        return reference_cnn
    match = BUILDER_FORMAT.fullmatch(reference)
    source, function = match["source"], match["function"]
    try:
        module = _import_builder_module(source, config.model.builder_file, config.model.builder_sha256)
    except Exception as exc:  # whatever the user's module raises while it is imported
        raise ModelError(f"model.builder: importing {source} raised {type(exc).__name__}: {exc}") from None
    if not hasattr(module, function):
        defined = sorted(name for name, value in vars(module).items() if callable(value) and not name.startswith("_"))
        raise ModelError(
            f"model.builder: {source} has no {function!r}; it defines: {', '.join(defined) or 'no functions'}"
        )
    builder = getattr(module, function)
    if not callable(builder):
        raise ModelError(f"model.builder: {source}:{function} is a {type(builder).__name__}, not a function")
    return builder


def _import_builder_module(source: str, file: Path | None, sha256: str | None):
    """The module of a builder: imported by name, or executed from its file once per content."""
    if not is_file_reference(source):
        return importlib.import_module(source)
    name = f"regexp_builder_{sha256[:16]}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # before running it: dataclasses and pickling look their module up there
    sys.path.insert(0, str(file.parent))  # so the file can import its neighbours
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    finally:
        sys.path.remove(str(file.parent))
    return module


def _shape_text(shape) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def call_builder(config: ExperimentConfig, input_shape: tuple[int, ...], num_classes: int, precision: str):
    """The unregularized model the config's builder returns under the dtype policy `precision`,
    checked against the data: one input of `input_shape`, one output of `num_classes` units.

    Raises ModelError naming model.builder and what was found.
    """
    builder = load_builder(config)
    called = f"{builder_name(config)}({_shape_text(input_shape)}, {num_classes}, **params)"
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        model = builder(tuple(input_shape), num_classes, **config.model.builder_params())
    except Exception as exc:  # whatever the user's function raises
        raise ModelError(f"model.builder: {called} raised {type(exc).__name__}: {exc}") from None
    finally:
        keras.config.set_dtype_policy(previous)
    if not isinstance(model, keras.Model):
        raise ModelError(f"model.builder: {called} returned a {type(model).__name__}, not a Keras model")
    try:
        inputs, outputs = list(model.inputs), list(model.outputs)
    except (AttributeError, ValueError):
        raise ModelError(
            f"model.builder: {called} returned a model without a defined input (a subclassed model?); "
            "build it from keras.Input, as a functional or Sequential model"
        ) from None
    if len(inputs) != 1 or not _fits(tuple(inputs[0].shape[1:]), tuple(input_shape)):
        found = ", ".join(_shape_text(i.shape) for i in inputs)
        raise ModelError(
            f"model.builder: {called} returned a model whose input is {found}; the data's images are "
            f"{_shape_text((None, *input_shape))}"
        )
    if len(outputs) != 1 or len(outputs[0].shape) != 2 or outputs[0].shape[-1] != num_classes:
        found = ", ".join(_shape_text(o.shape) for o in outputs)
        raise ModelError(
            f"model.builder: {called} returned a model whose output is {found}; expected one output of "
            f"(None, {num_classes}), a probability per class"
        )
    return model


def _fits(model_shape: tuple, data_shape: tuple) -> bool:
    return len(model_shape) == len(data_shape) and all(m is None or m == d for m, d in zip(model_shape, data_shape))


def place_penalties(model: keras.Model, config: ExperimentConfig, fast: bool) -> None:
    """Put the config's penalties on the model's layers, in place (the layers keep their weights).

    Raises ModelError for a `layers:` entry the model has no layer for, naming the entry and the
    layers the model has.
    """
    layers = kernel_layers(model)
    try:
        plan = layer_penalties(config, layer_inventory(model))
    except PlacementProblem as problem:
        path = config.penalty_location(problem.at)
        where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path[1:])
        raise ModelError(f"{path[0]}{where}: {problem.message}") from None
    for name, targets in plan.items():
        layer = layers[name]
        if "kernel" in targets:
            for weight, attribute in KERNEL_WEIGHTS.get(layer_kind(layer), DEFAULT_KERNEL_WEIGHTS):
                _regularize(layer, weight, attribute, penalties.make_penalty(targets["kernel"]))
        if "bias" in targets and layer.bias is not None:
            _regularize(layer, "bias", "bias_regularizer", penalties.make_penalty(targets["bias"]))
        if "activity" in targets:
            layer.activity_regularizer = speedups.activity_regularizer(
                penalties.make_penalty(targets["activity"]), fast
            )


def placed_penalties(model: keras.Model) -> list[tuple[str, keras.regularizers.Regularizer]]:
    """[("<layer>.<target>", penalty), ...]: the penalties on the model's layers, in model order
    (an activity penalty as its L1/L2/L1L2, not the fused pass that computes it)."""
    found = []
    for name, layer in kernel_layers(model).items():
        weights = [*KERNEL_WEIGHTS.get(layer_kind(layer), DEFAULT_KERNEL_WEIGHTS), ("bias", "bias_regularizer")]
        for weight, _ in weights:
            penalty = getattr(getattr(layer, weight, None), "regularizer", None)
            if penalty is not None:
                found.append((f"{name}.{weight}", penalty))
        activity = layer.activity_regularizer
        if activity is not None:
            found.append((f"{name}.activity", getattr(activity, "penalty", activity)))
    return found


def _regularize(layer: keras.layers.Layer, weight: str, attribute: str, penalty) -> None:
    """A weight penalty on a built layer: on the variable (where Keras reads it) and the layer's attribute."""
    getattr(layer, weight).regularizer = penalty
    setattr(layer, attribute, penalty)


def build_model(
    config: ExperimentConfig,
    num_classes: int,
    precision: str = "float32",
    fast_path: bool | None = None,
    input_shape: tuple[int, ...] = INPUT_SHAPE,
) -> keras.Model:
    """The config's model with its penalties, for images of `input_shape` and `num_classes` outputs.

    The builder runs under the Keras dtype policy `precision`; `fast_path` defaults to the
    config's `training.fast_path`. Raises ModelError (before anything trains) for a builder
    that does not build a fitting model, or penalties its layers cannot take.
    """
    fast = config.training.fast_path if fast_path is None else fast_path
    built = call_builder(config, input_shape, num_classes, precision)
    place_penalties(built, config, fast)
    speedups.speed_up_dropout(built, fast)
    # one input and one output (call_builder checked): passed as tensors, not lists of one, so that
    # the model takes and returns tensors as the builder's does. Named as its builder named it (not
    # after the run): a model compiled for one run can then train the next (regexp/training/reuse.py).
    return PenaltyTrackingModel(inputs=built.inputs[0], outputs=built.outputs[0], name=built.name)


def model_identity(config: ExperimentConfig, model: keras.Model) -> dict:
    """metrics.json's `model`: the builder, its source file and SHA-256 (None for the reference
    CNN, part of regexp), the arguments it was called with, and the layers that carry a kernel."""
    file = config.model.builder_file
    return {
        "builder": builder_name(config),
        "source": str(file) if file else None,
        "sha256": config.model.builder_sha256,
        "params": config.model.builder_params(),
        "layers": layer_inventory(model),
    }


def layer_paths(model: keras.Model) -> dict[str, str]:
    """Which layers took regexp's fast path and which kept Keras's own (metrics.json's `training_path.layers`):
    every dropout layer and every layer with an activity penalty, by name."""
    return speedups.layer_paths(model.layers)


def compile_model(model: keras.Model, learning_rate: float, steps_per_execution: int = 1) -> None:
    """Adam with Keras defaults but the configured learning rate; integer labels;
    `steps_per_execution` batches per call into the graph."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        steps_per_execution=steps_per_execution,
    )


def weight_sparsity(model: keras.Model, threshold: float = SPARSITY_THRESHOLD) -> dict:
    """Fraction of weights with |w| < threshold, per layer that carries a kernel and overall."""
    per_layer, small, total = {}, 0, 0
    for name, layer in kernel_layers(model).items():
        values = [ops.convert_to_numpy(w) for w in layer.weights]
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
    for layer, entries in penalty_summary(config, model).items():
        if not entries:
            lines.append(f"  {layer}: none")
        for e in entries:
            strength = f"l1={e['l1']}, l2={e['l2']}" if e["type"] == "elasticnet" else f"lambda={e['lambda']}"
            lines.append(f"  {layer}: {e['type']} on {e['target']} ({strength})")
    return "\n".join(lines) + "\n"
