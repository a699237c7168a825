"""keras_reg's test suite.

Importing it (the pytest processes do, and so does every worker script
that imports from `tests`) applies `_tensorflow_when_imported` below.
"""

import os
import sys


def _tensorflow_when_imported():
    """On JAX and torch, Keras asks whether TensorFlow is installed before
    it serializes any layer (`isinstance(obj, tf.TensorShape)` in
    `serialize_keras_object`) and in `keras.utils.set_random_seed` (to
    seed it), and that question imports TensorFlow: about 2 CPU seconds in
    every process that saves a model or sets the global seed (some twenty
    processes in a `make test` run, by the test layout; not counted).
    Here Keras counts TensorFlow as available once something has imported
    it. No TensorFlow object (a `TensorShape`, a `tf.data.Dataset`) can
    exist before that, so every `isinstance` answer is the same, and a
    test that uses TensorFlow imports it first; `set_random_seed` then
    leaves an unimported TensorFlow unseeded, as on a machine without it
    (`make test-oldest`). TensorFlow's own run is untouched.
    """
    if os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow":
        return
    try:
        from keras.src.utils import module_utils
    except ImportError:  # a Keras without the module: nothing to change
        return
    lazy = getattr(module_utils, "tensorflow", None)
    if type(lazy) is not getattr(module_utils, "LazyModule", None):
        return

    class TensorFlowWhenImported(module_utils.LazyModule):
        @property
        def available(self):
            return "tensorflow" in sys.modules and super().available

    lazy.__class__ = TensorFlowWhenImported


_tensorflow_when_imported()
