"""regexp: experiments on L1, L2 and elastic-net regularization of a CNN on EMNIST.

Importing the package is cheap: TensorFlow is imported only by the modules that train.
"""

import os

# TensorFlow's C++ start-up notices (oneDNN, missing CUDA) are noise on a terminal. Set here,
# before any module can import TensorFlow; a value the user set is kept.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
