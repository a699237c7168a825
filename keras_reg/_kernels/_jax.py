"""JAX fast paths: the portable hash jitted per shape, and the cuDNN LSTM
kernel of Keras' own LSTM.

Eager JAX dispatches each of the hash's ~25 integer ops on its own; under
`jax.jit` XLA fuses them into one loop. Inside an outer trace the call is
inlined, so the compiled train step is unchanged.

`fused_recurrence` runs an LSTM layer's call in cuDNN on a GPU, as Keras'
`LSTM` does (`keras_reg._kernels._keras_fused`). Keras' JAX `gru` is a
`lax.scan` with the input projection hoisted, slower on the CPU than the
portable loop, so GRUs keep the portable loop.
"""

import functools

import jax

from keras_reg import _random
from keras_reg._kernels import _keras_fused


@functools.partial(jax.jit, static_argnums=0)
def _position_bits(shape, position):
    return _random.position_bits(shape, position)


def position_bits(shape, position):
    return _position_bits(tuple(int(d) for d in shape), position)


def fused_recurrence(layer, sequences, initial_state, mask, masks):
    # Keras' JAX kernel returns a go_backwards sequence in input order.
    return _keras_fused.fused_recurrence(
        layer, sequences, initial_state, mask, masks, ("lstm",), flip=True
    )


def gpu_available():
    return jax.default_backend() == "gpu"


def why_not(layer, mask, masks):
    return _keras_fused.why_not(layer, mask, masks, ("lstm",))
