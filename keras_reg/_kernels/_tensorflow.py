"""TensorFlow fast path: the portable hash compiled with XLA in eager mode.

Eager TensorFlow runs each integer op as its own kernel. When the shape is
concrete (eager execution) the hash runs as one XLA-compiled function; inside
a graph (`model.fit`, `tf.function`) the reference ops are used, and XLA
fuses them there when the step is jit-compiled.
"""

import tensorflow as tf

from keras_reg import _random


@tf.function(jit_compile=True, autograph=False)
def _position_bits(shape, position):
    return _random.position_bits(shape, position)


def position_bits(shape, position):
    if not tf.executing_eagerly():
        return None
    return _position_bits(tuple(int(d) for d in shape), position)
