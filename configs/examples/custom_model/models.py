"""Your own model for regexp: a function (input_shape, num_classes, **params) -> unregularized Keras model.

regexp calls it with the data's image shape, e.g. (28, 28, 1), the number of classes, and the
config's `model.params` as keyword arguments, then puts the configured penalties on its layers
(every Conv and Dense layer, or those a regularizer's `layers:` names) and trains it.
"""

import keras
from keras import layers


def small_resnet(input_shape, num_classes, width=16, blocks=2, dropout=0.2):
    """A small residual network: a conv stem, `blocks` residual blocks of a depthwise and a
    pointwise conv with batch norm, global pooling, dropout and a softmax classifier."""
    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.Conv2D(width, 3, padding="same", use_bias=False, name="stem")(inputs)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.Activation("relu", name="stem_relu")(x)
    for i in range(1, blocks + 1):
        y = layers.DepthwiseConv2D(3, padding="same", name=f"block{i}_depthwise")(x)
        y = layers.BatchNormalization(name=f"block{i}_bn")(y)
        y = layers.Activation("relu", name=f"block{i}_relu")(y)
        y = layers.Conv2D(width, 1, activation="relu", name=f"block{i}_pointwise")(y)
        x = layers.Add(name=f"block{i}_add")([x, y])
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dropout(dropout, name="drop")(x)
    # float32 output: under mixed precision the softmax and the loss stay in float32
    outputs = layers.Dense(num_classes, activation="softmax", name="classifier", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="small_resnet")
