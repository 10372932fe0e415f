"""regexp: experiments on L1, L2 and elastic-net regularization of a CNN on EMNIST.

Importing the package is cheap: TensorFlow is imported only by the modules that train.
"""

# TensorFlow's start-up notices are filtered where it is imported: regexp/tf_runtime.py.

__version__ = "0.1.0"
