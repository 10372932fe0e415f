"""The one place regexp imports TensorFlow and Keras: `from regexp.tf_runtime import keras, tf`.

TensorFlow writes its start-up notices (oneDNN, missing CUDA drivers, cuInit, CPU features)
straight to file descriptor 2, most of them before its own logging is set up, so
TF_CPP_MIN_LOG_LEVEL does not silence them. Here TensorFlow's log level is set before it is
imported, and the import and the first device query run with descriptor 2 captured: lines
in TensorFlow's C++ log format are dropped, every other line is written on. What matters to
the user (a GPU it cannot use) is said once, in regexp's words. The rules: regexp/console.py. `regexp --verbose` (the
REGEXP_VERBOSE environment variable, which worker processes inherit) leaves all of it alone.
"""

from __future__ import annotations

import os
from pathlib import Path

from regexp.console import NO_CUDA_DRIVERS, say_once, tensorflow_lines_filtered, verbose


def _nvidia_gpu_present() -> bool:
    return Path("/dev/nvidia0").exists() or any(Path("/proc/driver/nvidia/gpus").glob("*"))


def _import():
    if verbose():
        import keras
        import tensorflow as tf

        return keras, tf
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's INFO and WARNING lines, once it logs
    dropped: list[str] = []
    with tensorflow_lines_filtered(dropped):
        import keras
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")  # the first device query prints cuInit's failure
    if not gpus and _nvidia_gpu_present() and any(NO_CUDA_DRIVERS in line for line in dropped):
        say_once(
            "this machine has an NVIDIA GPU, but TensorFlow finds no CUDA drivers or libraries for it: "
            "training on the CPU (regexp --verbose shows TensorFlow's own messages)"
        )
    return keras, tf


keras, tf = _import()

__all__ = ["keras", "tf"]
