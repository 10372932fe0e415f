"""Train and evaluate: the input pipeline, the precision and thread settings, the fit loop.

The training path: regexp's own tf.data pipeline over uint8 arrays with tf.data's autotuning
off and a repeating training stream (no per-epoch iterator teardown stalls) that shuffles
indices, not samples, and gathers each batch in one op; integer labels with a sparse
cross-entropy (the same loss as one-hot categorical cross-entropy); bfloat16 compute where
the hardware has it natively; and up to MAX_STEPS_PER_EXECUTION batches per call into the
graph, so that Python, callbacks and the host sync run once per chunk instead of once per
batch. The model is not XLA-compiled (on CPU that is slower); with `training.fast_path` the
activity penalties are (regexp/training/speedups.py). TensorFlow's thread pools, tf.data's thread pool
and Keras's asynchronous callback dispatch are left at their defaults. The measurements
behind these choices are in benchmarks/README.md.

Resuming is regexp's own (regexp/training/checkpoint.py): after every epoch the model's and the
optimizer's variables, the epoch and the best epoch's weights are saved; `fit` restores them
and continues at the next epoch.
"""

from __future__ import annotations

import math
import os
import random
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from regexp import results
from regexp.data import Dataset, validation_cut
from regexp.tf_runtime import keras, tf
from regexp.training import checkpoint
from regexp.training.model import kernel_layers

# Batches prepared ahead by tf.data's own thread: on a GPU only. On CPU that thread competes
# with the training step's threads for the same cores (benchmarks/README.md).
GPU_PREFETCH_BATCHES = 2
# Batches per call into the graph: the largest divisor of the epoch's batch count up to this
# (361 batches per EMNIST-balanced epoch: 19).
MAX_STEPS_PER_EXECUTION = 32


# --------------------------------------------------------------------------- runtime settings


def configure_threads(intra_op: int | None, inter_op: int | None = None) -> dict:
    """Set TensorFlow's thread pools; only possible before TensorFlow runs its first op."""
    try:
        if intra_op:
            tf.config.threading.set_intra_op_parallelism_threads(intra_op)
        if inter_op:
            tf.config.threading.set_inter_op_parallelism_threads(inter_op)
    except RuntimeError:
        pass  # already initialised in this process (e.g. a second run in one sweep): keep what is set
    return {
        "intra_op": tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count(),
        "inter_op": tf.config.threading.get_inter_op_parallelism_threads() or os.cpu_count(),
    }


def enable_gpu_memory_growth() -> None:
    """Let several runs share a GPU: allocate its memory as needed, not all at start."""
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:
            pass  # the GPU is already initialised in this process


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def native_bfloat16() -> tuple[bool, str]:
    """Whether this machine computes bfloat16 natively, and on what."""
    for gpu in tf.config.list_physical_devices("GPU"):
        capability = tf.config.experimental.get_device_details(gpu).get("compute_capability", (0, 0))
        if capability >= (8, 0):
            return True, f"GPU (compute capability {capability[0]}.{capability[1]})"
        return False, f"GPU (compute capability {capability[0]}.{capability[1]}, no native bfloat16)"
    flags = _cpu_flags()
    for flag in ("amx_bf16", "avx512_bf16"):
        if flag in flags:
            return True, f"CPU ({flag})"
    return False, "CPU (no amx_bf16 or avx512_bf16)"


def choose_precision(requested: str) -> tuple[str, str]:
    """Resolve `training.precision` to a Keras dtype policy name, with the reason."""
    native, device = native_bfloat16()
    if requested == "auto":
        return ("mixed_bfloat16" if native else "float32"), f"auto: {device}"
    return requested, f"set in config; {device}"


_seeded: list[int] = []  # the seed this process last gave TensorFlow


def enable_determinism(seed: int) -> None:
    """Same config, same seed, same machine: same numbers.

    Python's and NumPy's generators are seeded for every run (Keras draws its initializers' and
    dropout layers' seeds from Python's). TensorFlow's global seed is set only when it changes:
    setting it clears TensorFlow's kernel cache, which costs a run on a compiled model it trains
    again (regexp/training/reuse.py) its first epoch's worth of warming up, and regexp's own ops
    all take explicit seeds.
    """
    if _seeded != [seed]:
        keras.utils.set_random_seed(seed)
        _seeded[:] = [seed]
    else:
        random.seed(seed)
        np.random.seed(seed)
    tf.config.experimental.enable_op_determinism()


# --------------------------------------------------------------------------- input pipeline


@dataclass(frozen=True)
class Splits:
    """The three input streams of a run and the sizes behind them."""

    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset
    train_size: int
    validation_size: int
    test_size: int
    steps_per_epoch: int
    prefetch: int
    first_epoch: tf.Variable  # the training stream's first epoch (0-based), set on resuming


def _to_model_input(images, labels):
    """uint8 images (a batch of (H, W) or (H, W, C)) -> float32 in [0, 1] with a channel axis."""
    images = tf.cast(images, tf.float32) * (1.0 / 255.0)
    return (tf.expand_dims(images, -1) if images.shape.rank == 3 else images), labels


def _options() -> tf.data.Options:
    options = tf.data.Options()
    options.autotune.enabled = False  # its thread's teardown stalls epochs for seconds
    options.deterministic = True
    return options


def _batches(x: np.ndarray, y: np.ndarray, batch_size: int) -> tf.data.Dataset:
    """The arrays in order, one slice per batch (the last one may be short)."""
    images, labels = tf.constant(x), tf.constant(y)
    n = len(x)

    def cut(start):
        end = tf.minimum(start + batch_size, n)
        return _to_model_input(images[start:end], labels[start:end])

    return tf.data.Dataset.range(0, n, batch_size).map(cut)


def _shuffled_batches(
    x: np.ndarray, y: np.ndarray, batch_size: int, seed: int, first_epoch: tf.Variable
) -> tf.data.Dataset:
    """An endless stream of batches, each epoch a fresh permutation drawn from (seed, epoch).

    The permutation is of indices, cut into batches and gathered from the arrays in one op per
    batch: no per-sample work in tf.data, and no stall at each epoch's start to refill a
    sample-level shuffle buffer. Epochs
    are numbered from `first_epoch`, read when the stream reaches each epoch: a run resumed at
    epoch k sets it to k and sees the same batches as a run that was never interrupted.
    """
    images, labels = tf.constant(x), tf.constant(y)
    n = len(x)
    full, rest = divmod(n, batch_size)

    def epoch_batches(epoch):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(n, dtype=tf.int64), seed=tf.stack([tf.constant(seed, tf.int64), epoch])
        )
        batches = tf.data.Dataset.from_tensor_slices(tf.reshape(order[: full * batch_size], (full, batch_size)))
        if rest:
            batches = batches.concatenate(tf.data.Dataset.from_tensors(order[full * batch_size :]))
        return batches

    def gather(indices):
        return _to_model_input(tf.gather(images, indices), tf.gather(labels, indices))

    epochs = tf.data.Dataset.counter().map(lambda count: count + first_epoch.read_value())
    return epochs.flat_map(epoch_batches).map(gather)


def prefetch_batches() -> int:
    """How many batches tf.data prepares ahead here: GPU_PREFETCH_BATCHES with a GPU, else 0."""
    return GPU_PREFETCH_BATCHES if tf.config.list_physical_devices("GPU") else 0


def make_splits(data: Dataset, batch_size: int, validation_split: float, seed: int) -> Splits:
    """Hold out the last `validation_split` of the training data (as Keras's validation_split
    does), unless the data brings its own validation set, and build the shuffled, repeating
    training stream and the two evaluation streams."""
    if data.x_val is not None:
        x_train, y_train, x_val, y_val = data.x_train, data.y_train, data.x_val, data.y_val
        n, split_at = len(x_train) + len(x_val), len(x_train)
    else:
        n = len(data.x_train)
        split_at = validation_cut(n, validation_split)
        if split_at == 0 or split_at == n:
            raise ValueError(f"validation_split {validation_split} leaves no training or no validation data of {n}")
        x_train, y_train = data.x_train[:split_at], data.y_train[:split_at]
        x_val, y_val = data.x_train[split_at:], data.y_train[split_at:]
    ahead = prefetch_batches()
    first_epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="first_epoch")

    def finish(stream: tf.data.Dataset) -> tf.data.Dataset:
        return (stream.prefetch(ahead) if ahead else stream).with_options(_options())

    train = finish(_shuffled_batches(x_train, y_train, batch_size, seed, first_epoch))
    validation = finish(_batches(x_val, y_val, batch_size))
    test = finish(_batches(data.x_test, data.y_test, batch_size))
    return Splits(
        train,
        validation,
        test,
        split_at,
        n - split_at,
        len(data.x_test),
        math.ceil(split_at / batch_size),
        ahead,
        first_epoch,
    )


# --------------------------------------------------------------------------- callbacks


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stop when the loss turns NaN or infinite, remembering the epoch (1-based).

    Keras calls it once per call into the graph (see MAX_STEPS_PER_EXECUTION), with the
    epoch's running mean loss, which is non-finite from the first non-finite batch on: the
    epoch it names is the same as with a check after every batch.
    """

    def __init__(self):
        super().__init__()
        self.diverged_epoch: int | None = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.diverged_epoch = self._epoch + 1
            self.model.stop_training = True


class EpochTimer(keras.callbacks.Callback):
    """Seconds spent training (validation excluded) in each epoch, and in each epoch as a whole."""

    def __init__(self):
        super().__init__()
        self.train_seconds: list[float] = []
        self.epoch_seconds: list[float] = []
        self._start = self._epoch_start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = self._epoch_start = time.perf_counter()

    def on_test_begin(self, logs=None):
        if self._start:
            self.train_seconds.append(time.perf_counter() - self._start)
            self._start = 0.0

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_seconds.append(time.perf_counter() - self._epoch_start)


class EpochRecorder(keras.callbacks.Callback):
    """Hands each finished epoch's logs (with its 1-based number) to `record`."""

    def __init__(self, record: Callable[[int, dict], None]):
        super().__init__()
        self.record = record

    def on_epoch_end(self, epoch, logs=None):
        self.record(epoch + 1, {k: float(v) for k, v in (logs or {}).items()})


# --------------------------------------------------------------------------- fit and evaluate


def steps_per_execution(steps_per_epoch: int, limit: int) -> int:
    """The most batches per graph call, up to `limit`, that divide an epoch evenly.

    Keras runs whole calls of that many batches, so a size that does not divide the epoch's
    batch count would make every epoch of a repeating stream longer than one pass. Validation
    and test streams are finite, and Keras ends their last call early when they run out.
    """
    return max(d for d in range(1, max(1, min(limit, steps_per_epoch)) + 1) if steps_per_epoch % d == 0)


class SaveCheckpoint(keras.callbacks.Callback):
    """After each epoch: note whether it is the best so far, then write the checkpoint."""

    def __init__(self, folder: Path, state: checkpoint.TrainingState):
        super().__init__()
        self.folder, self.state = folder, state

    def on_epoch_end(self, epoch, logs=None):
        self.state.consider(epoch + 1, (logs or {}).get("val_accuracy"), self.model)
        self.state.epoch = epoch + 1
        checkpoint.save(self.folder, self.model, self.state)


@dataclass
class FitResult:
    """What training produced besides the final weights."""

    initial_epoch: int
    epochs_run: int
    diverged_epoch: int | None
    train_seconds: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)  # training and validation
    best_epoch: int | None = None  # by validation accuracy, 1-based
    best_weights: list[np.ndarray] | None = None  # model.get_weights() of best_epoch


def fit(
    model: keras.Model,
    splits: Splits,
    epochs: int,
    *,
    checkpoint_dir: str,
    record_epoch: Callable[[int, dict], None],
    verbose: int | str = "auto",
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> FitResult:
    """Train to `epochs`, resuming from the checkpoint in `checkpoint_dir` if one is there.

    The checkpoint (regexp/training/checkpoint.py) is written after every epoch; the caller removes
    the folder when the run ends. A resumed run restores the model's and the optimizer's
    variables, starts the training stream at the restored epoch and calls `model.fit` with
    that `initial_epoch`: it sees the same batches and draws the same dropout masks as a run
    never interrupted. `callbacks` run after regexp's own (the benchmarks time epochs with one).
    """
    folder = Path(checkpoint_dir)
    state = checkpoint.restore(folder, model) or checkpoint.TrainingState()
    initial_epoch = state.epoch
    splits.first_epoch.assign(initial_epoch)
    guard, timer = StopOnNonFiniteLoss(), EpochTimer()
    history = model.fit(
        splits.train,
        epochs=epochs,
        initial_epoch=initial_epoch,
        steps_per_epoch=splits.steps_per_epoch,
        validation_data=splits.validation,
        shuffle=False,  # the training stream shuffles itself, reproducibly from the seed
        # The history row is written before the checkpoint: a kill between the two makes the
        # resumed run redo that epoch and overwrite its row, never leave a gap.
        callbacks=[guard, timer, EpochRecorder(record_epoch), SaveCheckpoint(folder, state), *callbacks],
        verbose=verbose,
    )
    return FitResult(
        initial_epoch,
        initial_epoch + len(history.epoch),
        guard.diverged_epoch,
        timer.train_seconds,
        timer.epoch_seconds,
        state.best_epoch,
        state.best_weights,
    )


def evaluate(model: keras.Model, splits: Splits) -> tuple[float, float]:
    """Test loss (penalties included, as Keras reports it) and test accuracy."""
    results = model.evaluate(splits.test, verbose=0, return_dict=True)
    return float(results["loss"]), float(results["accuracy"])


def activation_statistics(model: keras.Model, stream: tf.data.Dataset) -> dict[str, dict[str, float]]:
    """{layer: {"mean_abs", "zero_fraction"}} of the outputs (after their activation) of the model's
    layers that carry a kernel (those of the model itself; a nested model's inner layers have no
    output in the model's graph) over `stream`, in inference mode, one batch at a time: the mean
    |output| and the fraction of outputs exactly 0. Outputs are read in float32 (bfloat16 ones
    cast up) and summed in float64."""
    names, batch_sums = _activation_probe(model)
    totals = np.zeros((len(names), 3))
    for images, _ in stream:
        totals += batch_sums(images).numpy()
    return {
        name: {"mean_abs": float(total_abs / count), "zero_fraction": float(zeros / count)}
        for name, (total_abs, zeros, count) in zip(names, totals)
    }


def _activation_probe(model: keras.Model):
    """(layer names, batch -> [[sum |output|, zeros, count] per layer]) for `model`, traced once
    per model (kept on it: a model trained again by later runs reuses it)."""
    probe = getattr(model, "_regexp_activation_probe", None)
    if probe is not None:
        return probe
    top = {layer.name for layer in model.layers}
    names = [name for name in kernel_layers(model) if name in top]
    outputs = keras.Model(model.inputs, [model.get_layer(name).output for name in names])

    @tf.function(reduce_retracing=True)  # an epoch's last, shorter batch: one trace for both sizes
    def batch_sums(images):
        sums = []
        for output in outputs(images, training=False):
            values = tf.cast(tf.cast(output, tf.float32), tf.float64)
            sums.append(
                tf.stack(
                    [
                        tf.reduce_sum(tf.abs(values)),
                        tf.reduce_sum(tf.cast(values == 0, tf.float64)),
                        tf.cast(tf.size(values), tf.float64),
                    ]
                )
            )
        return tf.stack(sums)

    object.__setattr__(model, "_regexp_activation_probe", (names, batch_sums))  # not tracked as Keras state
    return names, batch_sums


def write_weights(model: keras.Model, path: Path) -> None:
    """The model's weights in Keras's own format (`save_weights`, HDF5), written to `path`
    through `results.write_bytes_atomic`."""
    with tempfile.TemporaryDirectory(prefix="regexp-weights-") as folder:
        saved = Path(folder) / "model.weights.h5"
        model.save_weights(saved)
        results.write_bytes_atomic(path, saved.read_bytes())


def versions() -> dict:
    import platform

    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
    }
