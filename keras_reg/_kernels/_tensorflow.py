"""TensorFlow fast paths: the portable hash compiled with XLA in eager mode,
and the cuDNN kernels of Keras' own LSTM and GRU.

Eager TensorFlow runs each integer op as its own kernel. In eager mode the
element index is built eagerly and hashed by one XLA-compiled function
(traced once for any shape; XLA compiles per concrete shape). Inside a graph
(`model.fit`, `tf.function`) the hash is one call of a plain function,
traced once for any shape, that TensorFlow inlines when it optimizes the
graph (and XLA compiles with the step when the step is jit-compiled).

`replica_id` reports the replica of a `tf.distribute` strategy that runs
one step per device, so that each replica draws its own masks. Under
`MultiWorkerMirroredStrategy`, `replica_id_in_sync_group` is global across
workers (tested), so every worker's replicas differ too.

`fused_recurrence` runs a sequence layer's call in cuDNN on a GPU, as
Keras' `LSTM` and `GRU` do (`keras_reg._kernels._keras_fused`).
"""

import tensorflow as tf

from keras_reg import _random
from keras_reg._kernels import _keras_fused


def _hash_bits(index, position):
    return _random.hash_index(index, *_random.keys(position))


# Traced once for any shape: the element index and the draw's position.
_SIGNATURE = [tf.TensorSpec(None, tf.int32), tf.TensorSpec([2], tf.int32)]
# Eager: XLA-compiled (per concrete shape). Inside a graph: a plain call.
_hash = tf.function(
    _hash_bits, input_signature=_SIGNATURE, autograph=False, jit_compile=True
)
_hash_in_graph = tf.function(_hash_bits, input_signature=_SIGNATURE, autograph=False)


def position_bits(shape, position):
    index = _random.element_index(shape)
    if tf.executing_eagerly():
        return _hash(index, position)
    # Inside a graph, one call of a function traced once per process, not
    # the hash's ~150 ops per draw written into every graph that draws: a
    # LSTM with five kinds of mask traced 769 ops, 22 without masks.
    # TensorFlow inlines the call where it optimizes the graph, and XLA
    # compiles it with the function that calls it.
    bits = _hash_in_graph(index, position)
    bits.set_shape(index.shape)
    return bits


def replica_id():
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync < 2:
        return None
    return tf.cast(context.replica_id_in_sync_group, tf.int32)


def fused_refusal(layer, sequences, initial_state, mask, masks):
    return _keras_fused.refusal(
        layer, sequences, initial_state, mask, masks, ("lstm", "gru")
    )


def fused_recurrence(layer, sequences, initial_state, mask, masks):
    return _keras_fused.run(layer, sequences, initial_state, mask, masks, flip=False)


def gpu_available():
    return bool(tf.config.list_logical_devices("GPU"))


def fused_blocks_jit(layer):
    # As Keras' own LSTM and GRU: cuDNN ops are not XLA-compatible.
    kind = getattr(layer.cell, "_fused_kind", None)
    return layer.use_cudnn is not False and kind in ("lstm", "gru") and gpu_available()


def time_loop(
    step,
    inputs,
    initial_states,
    mask=None,
    go_backwards=False,
    unroll=False,
    zero_output_for_mask=False,
    return_sequences=True,
):
    """`keras_reg.layers.rnn._loop.run` as one `tf.while_loop`.

    Keras' TensorFlow `scan` keeps its carry in size-1 TensorArrays, read
    and written at every step; here the states are the loop's variables.
    """
    if unroll:
        return None
    flat = tf.nest.flatten(inputs)
    # The static number of steps where known: a traced function keeps the
    # time axis of its outputs.
    steps = flat[0].shape[0]
    if steps is None:
        steps = tf.shape(flat[0])[0]
    if go_backwards:
        flat = [tf.reverse(x, [0]) for x in flat]
        if mask is not None:
            mask = tf.reverse(mask, [1])
    arrays = [
        tf.TensorArray(x.dtype, size=steps, element_shape=x.shape[1:]).unstack(x)
        for x in flat
    ]
    if mask is not None:
        mask = tf.expand_dims(tf.transpose(tf.cast(mask, tf.bool)), -1)
        mask = tf.TensorArray(tf.bool, size=steps).unstack(mask)
    states = tuple(initial_states)
    previous = tf.zeros_like(states[0])
    # The output sequence is accumulated only when it is returned: an
    # accumulator that no one reads and the loop never writes is an
    # uninitialized TensorList to the gradient, which XLA cannot compile
    # ("TensorList input for ZerosLike op is an uninitialized list").
    carried = (tf.constant(0), states, previous)
    if return_sequences:
        carried += (tf.TensorArray(states[0].dtype, size=steps),)

    def body(t, states, previous, *outputs):
        x_t = tf.nest.pack_sequence_as(inputs, [a.read(t) for a in arrays])
        output, new_states = step(x_t, states)
        new_states = tuple(new_states)
        if mask is not None:
            keep = mask.read(t)
            fill = tf.zeros_like(output) if zero_output_for_mask else previous
            output = tf.where(keep, output, fill)
            new_states = tuple(
                tf.where(keep, new, old)
                for new, old in zip(new_states, states, strict=True)
            )
        outputs = tuple(array.write(t, output) for array in outputs)
        return (t + 1, new_states, output, *outputs)

    _, states, last_output, *outputs = tf.while_loop(
        lambda t, *_: t < steps,
        body,
        carried,
        maximum_iterations=steps,
    )
    sequence = None
    if return_sequences:
        sequence = tf.transpose(outputs[0].stack(), (1, 0, 2))
    return last_output, sequence, list(states)
