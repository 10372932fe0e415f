"""Training: the model, its penalties, the input pipeline, the fit loop and what it records.

`session.train_run(config, data, staging, ...)` is the entry: one run trained, evaluated and its
training files written, in one call. Every module here imports TensorFlow (through
`regexp.tf_runtime`), so this package imports none of them itself: `from regexp.training
import session` is where TensorFlow starts. Modules: `session` (one run's training), `model`
(the reference CNN and its penalties), `speedups` (the fast path's fused penalty and dropout),
`train` (splits, tf.data pipeline, fit, evaluation, activation statistics), `checkpoint`
(regexp's own per-epoch checkpoint, for exact resume), `tensorboard_log` (a run's event files).
"""
