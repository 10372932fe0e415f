"""The one place regexp imports TensorFlow and Keras: `from regexp.tf_runtime import keras, tf`."""

from __future__ import annotations

import keras
import tensorflow as tf

__all__ = ["keras", "tf"]
