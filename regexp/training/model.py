"""Model: the reference CNN, with the configured penalties on its Conv2D and Dense layers.

conv1 Conv2D(32, 3x3, relu) -> pool1 -> drop1 -> conv2 Conv2D(64, 3x3, relu) -> pool2 -> drop2
-> flatten -> dense1 Dense(256, relu) -> dense2 Dense(classes, softmax)

Penalties are built from Keras's regularizer classes with explicit values (Keras 3's string
forms are unreliable: 'l1l2' means a zero penalty). An activity penalty means the mean over
the batch of the per-sample penalty, as in the reference experiment's Keras.

`fast_path` (config `training.fast_path`) swaps in regexp's faster dropout and activity
penalty from regexp/training/speedups.py; without it every layer and penalty is stock Keras.
"""

from __future__ import annotations

from regexp.config import LAYER_NAMES, ExperimentConfig, RegularizerConfig, penalty_layers
from regexp.tf_runtime import keras
from regexp.training import speedups

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
        penalties = [self._aggregate_additional_loss(loss) for loss in self.losses]
        self.penalty_tracker.update_state(ops.sum(penalties) if penalties else 0.0)
        return total

    def _aggregate_additional_loss(self, loss):
        # A stock activity regularizer on a mixed_bfloat16 layer returns a bfloat16 penalty,
        # which Keras cannot add to the float32 loss: cast it (the fast path's is float32).
        return ops.cast(super()._aggregate_additional_loss(loss), "float32")


def build_model(
    config: ExperimentConfig, num_classes: int, precision: str = "float32", fast_path: bool | None = None
) -> keras.Model:
    """Assemble the reference CNN with the configured penalties, for `num_classes` outputs.

    `precision` is a Keras dtype policy name; the output layer always computes in float32
    so that the softmax and the loss are not rounded to bfloat16. `fast_path` defaults to
    the config's `training.fast_path`.
    """
    plan = layer_penalties(config)
    fast = config.training.fast_path if fast_path is None else fast_path
    Dropout = speedups.dropout_layer(fast)
    m = config.model

    def penalties(layer: str) -> dict:
        chosen = plan[layer]
        kwargs = {}
        if "kernel" in chosen:
            kwargs["kernel_regularizer"] = make_regularizer(chosen["kernel"])
        if "bias" in chosen:
            kwargs["bias_regularizer"] = make_regularizer(chosen["bias"])
        if "activity" in chosen:
            kwargs["activity_regularizer"] = speedups.activity_regularizer(make_regularizer(chosen["activity"]), fast)
        return kwargs

    layers = keras.layers
    inputs = keras.Input(shape=INPUT_SHAPE, name="image")
    x = layers.Conv2D(m.conv1_filters, 3, activation="relu", name="conv1", dtype=precision, **penalties("conv1"))(
        inputs
    )
    x = layers.MaxPooling2D(2, name="pool1", dtype=precision)(x)
    x = Dropout(m.dropout, name="drop1", dtype=precision)(x)
    x = layers.Conv2D(m.conv2_filters, 3, activation="relu", name="conv2", dtype=precision, **penalties("conv2"))(x)
    x = layers.MaxPooling2D(2, name="pool2", dtype=precision)(x)
    x = Dropout(m.dropout, name="drop2", dtype=precision)(x)
    x = layers.Flatten(name="flatten", dtype=precision)(x)
    x = layers.Dense(m.dense_units, activation="relu", name="dense1", dtype=precision, **penalties("dense1"))(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="dense2", dtype="float32", **penalties("dense2"))(x)
    return PenaltyTrackingModel(inputs=inputs, outputs=outputs, name=config.name or "regexp_cnn")


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
