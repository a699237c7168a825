"""TensorFlow fast path: the portable hash compiled with XLA in eager mode.

Eager TensorFlow runs each integer op as its own kernel. When the shape is
concrete (eager execution) the hash runs as one XLA-compiled function, one
per mask shape (cached, so a model's few shapes compile once each); inside
a graph (`model.fit`, `tf.function`) the reference ops are used, and XLA
fuses them there when the step is jit-compiled.
"""

import functools

import tensorflow as tf

from keras_reg import _random


@functools.lru_cache(maxsize=128)
def _compiled(shape):
    @tf.function(jit_compile=True, autograph=False)
    def position_bits(position):
        return _random.position_bits(shape, position)

    return position_bits


def position_bits(shape, position):
    if not tf.executing_eagerly():
        return None
    return _compiled(tuple(int(d) for d in shape))(position)
