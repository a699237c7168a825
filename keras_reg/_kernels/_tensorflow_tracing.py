"""Whether a TensorFlow draw is being traced (for `_kernels.traced`).

Inside a `tf.function` (Keras' compiled steps, with or without XLA, and
`strategy.run` of one) Python runs once per trace and builds a graph:
whatever it reads is a constant of that graph.
"""

import tensorflow as tf


def traced(value):
    del value
    return not tf.executing_eagerly()
