"""JAX fast path: the portable hash, jitted per shape.

Eager JAX dispatches each of the hash's ~25 integer ops on its own; under
`jax.jit` XLA fuses them into one loop. Inside an outer trace the call is
inlined, so the compiled train step is unchanged.
"""

import functools

import jax

from keras_reg import _random


@functools.partial(jax.jit, static_argnums=0)
def _position_bits(shape, position):
    return _random.position_bits(shape, position)


def position_bits(shape, position):
    return _position_bits(tuple(int(d) for d in shape), position)
