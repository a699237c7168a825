"""TensorFlow fast path: the portable hash compiled with XLA in eager mode.

Eager TensorFlow runs each integer op as its own kernel. When the shape is
concrete (eager execution) the hash runs as one XLA-compiled function; inside
a graph (`model.fit`, `tf.function`) the reference ops are used, and XLA
fuses them there when the step is jit-compiled.
"""

import tensorflow as tf

from keras_reg import _random


@tf.function(jit_compile=True, autograph=False)
def _hash_bits(index_shape, k1, k2):
    return _random.hash_bits(index_shape, k1, k2)


def hash_bits(shape, k1, k2):
    if not tf.executing_eagerly():
        return None
    return _hash_bits(tuple(int(d) for d in shape), k1, k2)
