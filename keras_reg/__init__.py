"""keras_reg: regularization layers for CNNs and RNNs in Keras 3.

Runs unchanged on the TensorFlow, PyTorch and JAX backends.
"""

__version__ = "0.3.0"

from keras_reg import (  # noqa: E402
    callbacks,
    config,
    inference,
    layers,
    metrics,
    models,
)

__all__ = [
    "__version__",
    "callbacks",
    "config",
    "inference",
    "layers",
    "metrics",
    "models",
]
