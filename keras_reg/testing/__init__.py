"""Check that a model computes the same on TensorFlow, PyTorch and JAX.

`compare_backends(model, inputs)` runs the model in one subprocess per
backend, in inference mode, training mode (from the saved random state:
keras_reg's portable masks make it comparable) and, on request, the
gradients of one training step; it reports the error statistics of every
output, layer and gradient against a reference backend (or a folder of
outputs recorded on another machine), the first layer that differs, and the
layers whose randomness is backend-native. `assert_same_on_backends` is the
same check for a test suite; `python -m keras_reg.testing` (the console
script `keras-reg-check`) runs it from the command line.
"""

from keras_reg.testing._compare import assert_same_on_backends, compare_backends
from keras_reg.testing._report import BackendReport

__all__ = ["BackendReport", "assert_same_on_backends", "compare_backends"]
