"""One compiled model per process, trained again by every run of the same graph.

Tracing a model's training and evaluation steps (and XLA-compiling its fused activity
penalties) is most of what a short run costs besides its epochs, and the trials of a tuning
study, or the seeds of a sweep, differ only in what the traced steps read from variables: the
weights, the dropout layers' seeds, the optimizer's state and learning rate, the penalties'
strengths (regexp/training/penalties.py). So the runner builds each run's model as always,
from its own seed, and a process that has already compiled a model of the same graph
(`graph_key`) copies that fresh model's state into the compiled one and trains it instead:
the same numbers as the fresh model compiled and trained alone (tests/test_reuse.py), without
the tracing.

One model is kept at a time (a sweep of one shape keeps it all along); a run that fails or is
interrupted while training drops it (`forget`), so that a half-run step is never reused.

Exact for models whose randomness comes from seeded Keras parts (initializers, dropout and the
other layers' seed generators, all copied from the fresh model), as Keras's own layers and the
reference CNN draw it: a custom layer that draws from TensorFlow's global random state (a
`tf.random.normal` without a seed generator) continues that state from the run before.
"""

from __future__ import annotations

import hashlib
import json

from regexp.config import ExperimentConfig
from regexp.tf_runtime import keras, tf
from regexp.training import model as model_lib
from regexp.training import penalties

_compiled: dict[str, keras.Model] = {}

# What a run sets in the compiled model rather than in its graph: left out of the graph's key.
_RESET_PER_RUN = {"name", "data", "sweep", "search", "regularizer"}
_TRAINING_RESET_PER_RUN = ("seed", "learning_rate", "epochs")
_STRENGTHS = {"lambda_", "l1", "l2"}


def graph_key(config: ExperimentConfig, model: keras.Model, precision: str, steps_per_execution: int) -> str:
    """What decides the traced steps of `config`'s model (built as `model`): the config but for
    what a run resets (its name, seed, learning rate, epochs, data and the penalties' strengths;
    the penalties' kinds, targets and layers kept), the builder's file and its content, the
    model's layer names and its input and output shapes, the dtype policy and the batches per
    call into the graph."""
    plain = config.model_dump(mode="json", exclude=_RESET_PER_RUN)
    for key in _TRAINING_RESET_PER_RUN:
        plain["training"].pop(key)
    plain["penalties"] = [entry.model_dump(mode="json", exclude=_STRENGTHS) for entry in config.penalties]
    plain["graph"] = {
        "builder": [str(config.model.builder_file), config.model.builder_sha256],  # which file, which content
        "layers": _layer_names(model),
        "input": list(model.inputs[0].shape[1:]),
        "output": list(model.outputs[0].shape[1:]),
        "precision": precision,
        "steps_per_execution": steps_per_execution,
    }
    return hashlib.sha256(json.dumps(plain, sort_keys=True, default=str).encode()).hexdigest()


def _layer_names(model: keras.Model) -> list:
    """The names of the model's layers in order, a nested model's as a list of its own."""
    return [
        [layer.name, _layer_names(layer)] if isinstance(layer, keras.Model) else layer.name for layer in model.layers
    ]


def compiled_model(
    fresh: keras.Model, key: str, learning_rate: float, steps_per_execution: int
) -> tuple[keras.Model, bool]:
    """The model to train for a run whose freshly built model is `fresh`: the compiled model of
    graph `key` given `fresh`'s state (True: reused), or `fresh` itself compiled (False)."""
    kept = _compiled.get(key)
    pairs = _paired_penalties(kept, fresh) if kept is not None else None
    if pairs is not None:
        _take_state(kept, fresh, pairs, learning_rate)
        return kept, True
    _compiled.clear()
    model_lib.compile_model(fresh, learning_rate, steps_per_execution)
    _compiled[key] = fresh
    return fresh, False


def forget() -> None:
    """Drop the compiled model: the next run compiles its own."""
    _compiled.clear()


def _paired_penalties(kept: keras.Model, fresh: keras.Model) -> list[tuple] | None:
    """A guard beneath the key: [(kept's penalty, fresh's), ...] in order if the two models have
    the same variables (shapes and dtypes) and the same penalties; None if they differ."""
    if [(tuple(v.shape), v.dtype) for v in kept.variables] != [(tuple(v.shape), v.dtype) for v in fresh.variables]:
        return None
    on_kept, on_fresh = model_lib.placed_penalties(kept), model_lib.placed_penalties(fresh)
    if [(path, type(p)) for path, p in on_kept] != [(path, type(p)) for path, p in on_fresh]:
        return None
    return [(target, source) for (_, target), (_, source) in zip(on_kept, on_fresh)]


def _take_state(kept: keras.Model, fresh: keras.Model, penalty_pairs: list[tuple], learning_rate: float) -> None:
    """Give the compiled model the fresh model's state: its variables (weights and dropout seeds)
    and penalty strengths (`penalty_pairs`: kept's and fresh's), an optimizer as Adam starts
    (every slot and the step count zero) at `learning_rate`, and no training left over from the
    run before."""
    for target, source in zip(kept.variables, fresh.variables):
        target.assign(source)
    for target, source in penalty_pairs:
        penalties.copy_strengths(target, source)
    optimizer = kept.optimizer
    for variable in optimizer.variables:
        variable.assign(tf.zeros(variable.shape, variable.dtype))
    optimizer.learning_rate = learning_rate
    kept.stop_training = False
