"""TensorFlow fast path: the portable hash compiled with XLA in eager mode.

Eager TensorFlow runs each integer op as its own kernel. In eager mode the
element index is built eagerly and hashed by one XLA-compiled function
(traced once for any shape; XLA compiles per concrete shape). Inside a graph
(`model.fit`, `tf.function`) the reference ops are used, and XLA fuses them
there when the step is jit-compiled.

`replica_id` reports the replica of a `tf.distribute` strategy that runs
one step per device, so that each replica draws its own masks.
"""

import tensorflow as tf

from keras_reg import _random


@tf.function(
    jit_compile=True,
    autograph=False,
    input_signature=[
        tf.TensorSpec(None, tf.int32),
        tf.TensorSpec([2], tf.int32),
    ],
)
def _hash(index, position):
    return _random.hash_index(index, *_random.keys(position))


def position_bits(shape, position):
    if not tf.executing_eagerly():
        return None
    return _hash(_random.element_index(shape), position)


def replica_id():
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync < 2:
        return None
    return tf.cast(context.replica_id_in_sync_group, tf.int32)
