"""Where one training step's time goes (reference CNN, batch 250, one process, fixed batch).

Times, interleaved in short blocks so that all parts see the same machine weather: the
forward pass in training mode (with dropout) and in inference mode, forward + backward,
Adam's update, a whole step written out by hand, and Keras's own train step (the model is
regexp's, with its RandomBitsDropout). Then the two Dropout layers' masks: Keras's
`stateless_dropout` (one Philox float per element) against regexp's RandomBitsDropout (one
Philox word per 4 elements; exact for rate 0.25, as 0.25 * 256 is whole).

    python benchmarks/step_breakdown.py                    # both precisions
    python benchmarks/step_breakdown.py --precision mixed_bfloat16 --blocks 12

No goal: a diagnostic. Exits 0.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def timed_blocks(functions: dict, blocks: int, calls: int) -> dict[str, float]:
    for f in functions.values():
        f(), f()  # trace and warm up
    times = {name: [] for name in functions}
    for _ in range(blocks):
        for name, f in functions.items():
            start = time.perf_counter()
            for _ in range(calls):
                out = f()
            for value in out if isinstance(out, (list, tuple)) else [out]:
                if hasattr(value, "numpy"):
                    value.numpy()  # wait for the result
            times[name].append((time.perf_counter() - start) / calls * 1000)
    return {name: statistics.median(values) for name, values in times.items()}


def step_parts(precision: str, blocks: int) -> dict[str, float]:
    import keras
    import tensorflow as tf

    from regexp.config import validate
    from regexp.training import model as model_lib
    from regexp.training import train

    train.enable_determinism(0)
    config = validate({"regularizer": {"type": "none"}}, "step_breakdown", "step_breakdown")
    model = model_lib.build_model(config, 47, precision)
    model_lib.compile_model(model, 1e-3)
    x = tf.random.uniform((250, 28, 28, 1))
    y = tf.random.uniform((250,), 0, 47, tf.int64)
    model.fit(x, y, batch_size=250, epochs=1, verbose=0)  # builds the optimizer's slots
    loss_fn = keras.losses.SparseCategoricalCrossentropy()

    @tf.function
    def forward_train():
        return model(x, training=True)

    @tf.function
    def forward_infer():
        return model(x, training=False)

    @tf.function
    def forward_backward():
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        return tape.gradient(loss, model.trainable_variables)

    gradients = forward_backward()

    @tf.function
    def adam_update():
        model.optimizer.apply(gradients, model.trainable_variables)
        return model.optimizer.iterations

    @tf.function
    def own_step():
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        model.optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
        return loss

    iterator = iter(tf.data.Dataset.from_tensors((x, y)).repeat())
    model.make_train_function()

    def keras_step():
        return list(model.train_function(iterator).values())

    return timed_blocks(
        {
            "forward, training (dropout on)": forward_train,
            "forward, inference": forward_infer,
            "forward + backward": forward_backward,
            "Adam update": adam_update,
            "step by hand (fwd+bwd+Adam)": own_step,
            "Keras train step": keras_step,
        },
        blocks,
        10,
    )


def dropout_parts(precision: str, blocks: int) -> dict[str, float]:
    import tensorflow as tf

    from regexp.training.speedups import RandomBitsDropout

    dtype = tf.bfloat16 if "bfloat16" in precision else tf.float32
    shapes = [(250, 13, 13, 32), (250, 5, 5, 64)]  # the outputs of pool1 and pool2
    inputs = [tf.cast(tf.random.uniform(s), dtype) for s in shapes]
    seed = tf.constant([1, 2], tf.int32)
    layers = [RandomBitsDropout(0.25, seed=i, dtype=dtype.name) for i in range(len(shapes))]

    @tf.function
    def keras_masks():
        return [tf.nn.experimental.stateless_dropout(x, 0.25, seed=seed) for x in inputs]

    @tf.function
    def random_bits_masks():
        return [layer(x, training=True) for layer, x in zip(layers, inputs)]

    kept = float(tf.reduce_mean(tf.cast(random_bits_masks()[0] != 0, tf.float32)))
    result = timed_blocks(
        {
            "dropout x2, Keras (stateless_dropout)": keras_masks,
            "dropout x2, regexp (RandomBitsDropout)": random_bits_masks,
        },
        blocks,
        10,
    )
    result["(RandomBitsDropout keeps)"] = kept
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--precision", choices=["float32", "mixed_bfloat16", "both"], default="both")
    parser.add_argument("--blocks", type=int, default=8, help="interleaved blocks of 10 calls each (default 8)")
    args = parser.parse_args()
    import tensorflow as tf

    tf.random.set_seed(0)
    precisions = ["float32", "mixed_bfloat16"] if args.precision == "both" else [args.precision]
    for precision in precisions:
        print(f"{precision}: median ms per call over {args.blocks} blocks of 10")
        for name, value in {**step_parts(precision, args.blocks), **dropout_parts(precision, args.blocks)}.items():
            print(f"  {name:<40} {value:7.3f}" + ("" if name.startswith("(") else " ms"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
