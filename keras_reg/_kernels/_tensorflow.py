"""TensorFlow fast paths: the portable hash compiled with XLA in eager mode,
and the cuDNN kernels of Keras' own LSTM and GRU.

Eager TensorFlow runs each integer op as its own kernel. In eager mode the
element index is built eagerly and hashed by one XLA-compiled function
(traced once for any shape; XLA compiles per concrete shape). Inside a graph
(`model.fit`, `tf.function`) the reference ops are used, and XLA fuses them
there when the step is jit-compiled.

`replica_id` reports the replica of a `tf.distribute` strategy that runs
one step per device, so that each replica draws its own masks.

`fused_recurrence` runs a sequence layer's call in cuDNN on a GPU, as
Keras' `LSTM` and `GRU` do (`keras_reg._kernels._keras_fused`).
"""

import tensorflow as tf

from keras_reg import _random
from keras_reg._kernels import _keras_fused


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


def fused_recurrence(layer, sequences, initial_state, mask, masks):
    return _keras_fused.fused_recurrence(
        layer, sequences, initial_state, mask, masks, ("lstm", "gru"), flip=False
    )


def gpu_available():
    return bool(tf.config.list_logical_devices("GPU"))


def fused_blocks_jit(layer):
    # As Keras' own LSTM and GRU: cuDNN ops are not XLA-compatible.
    kind = getattr(layer.cell, "_fused_kind", None)
    return layer.use_cudnn is not False and kind in ("lstm", "gru") and gpu_available()


def why_not(layer, mask, masks):
    return _keras_fused.why_not(layer, mask, masks, ("lstm", "gru"))
