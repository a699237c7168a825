"""Every random draw of keras_reg goes through this module.

Layers and cells never call `keras.random` themselves: they own a
`RandomState` and ask this module for masks. That keeps the two modes of
`keras_reg.config.set_rng` in one file:

- `"portable"`: a counter-based generator in `keras.ops` int32 arithmetic.
  Element `i` of a draw is `hash(hash(i ^ k1) + k2)` with `lowbias32` as the
  hash (a 32-bit integer mixer: xor-shift, wrapping multiply, twice), and the
  keys `(k1, k2)` hashed from the layer's seed and its draw counter. Nothing
  depends on the backend's random generator, so a seed gives bit-identical
  masks on TensorFlow, PyTorch and JAX, eager or compiled. The counter is
  layer state: saved with the model, so a reloaded model continues its stream.
- `"native"`: the same `RandomState` is passed to `keras.random` as its
  `SeedGenerator`; each backend draws from its own generator.

Rates are held as integer thresholds in the same state variable: a unit is
kept when its 24 random bits are `>= threshold`, with
`threshold = floor(rate * 2**24)`, and kept units are scaled by
`2**24 / (2**24 - threshold)`, the exact inverse of the keep probability.
Integer comparisons are exact on every backend, and because the thresholds
are a variable, changing a rate never retraces a compiled function.

Under a strategy that runs one step per replica (TensorFlow's
`MirroredStrategy` and `MultiWorkerMirroredStrategy`, `torch.distributed`
with DDP), every replica holds the same state, so the replica's
index (or `keras_reg.config.data_parallel_rank()`) is mixed into the seed
of each draw, when the draw runs or is traced: replicas drop different
units, replica 0 draws exactly what a single device would, and a
checkpoint written by any rank resumes every rank's stream. JAX's
`keras.distribution` runs one program over the global batch, where element
positions are already global.

A `tf.distribute` replica index is a tensor, read when the step runs. A
rank set with `keras_reg.config.set_data_parallel_rank` is a Python value,
so a draw traced into a compiled function (`jax.jit`, `tf.function`)
keeps the value it read: such a draw tells `config` which rank its state
was traced with, and `config` refuses to change the rank while that state
is alive (DESIGN.md: values read in Python while tracing are constants).
"""

import random as python_random

import keras
import numpy as np
from keras import ops

from keras_reg import _keras_private, _kernels, config

BITS = 24
ONE = 1 << BITS

# lowbias32 (C. Wellons, "Hash function prospector"), as int32 bit patterns.
_M1 = 0x7FEB352D
_M2 = 0x846CA68B - (1 << 32)
# Odd constants that decorrelate the seed and the two keys.
_SEED_SALT = 0x3C6EF372
_KEY_SALT = 0x1B873593
_REPLICA_SALT = 0x2545F491

# The dtype each backend's `keras.random` expects for a drawn seed.
_SEED_DTYPES = {"tensorflow": "int64", "jax": "uint32", "torch": "int32"}


def threshold(rate):
    """The integer keep-threshold of a drop rate in [0, 1)."""
    return int(rate * ONE)


def new_seed():
    """A fresh integer seed (honours `keras.utils.set_random_seed`)."""
    return python_random.randint(1, (1 << 31) - 1)


def _as_int32(value):
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def replica_index(state=None, value=None):
    """The data-parallel index mixed into every draw.

    `keras_reg.config.data_parallel_rank()` where one is set; otherwise the
    engine's (`_kernels.replica_id()`: a `tf.distribute` replica, the
    global rank of a `torch.distributed` process group), or None. Read when
    the draw runs eagerly or is traced; where `value` (a tensor of the draw)
    is being traced, `config` records the rank that `state` was traced
    with.
    """
    rank = config.data_parallel_rank()
    if state is not None and _kernels.traced(value):
        config._record_trace(state, rank)
    return rank if rank is not None else _kernels.replica_id()


class RandomState(keras.random.SeedGenerator):
    """The random stream and the drop thresholds of one layer or cell.

    A `keras.random.SeedGenerator`, so Keras tracks it as layer state (it is
    in `layer.variables` and `layer.non_trainable_variables`, not in
    `layer.weights`, and trainers thread it through compiled steps) and
    `keras.random` accepts it as a seed in native mode.

    `state` is one int32 variable: `[seed, counter, threshold_0, ...]`.

    Args:
        seed: the integer seed.
        thresholds: the initial integer thresholds, one per slot.
        name: the name of the state variable's scope.
    """

    def __init__(self, seed, thresholds, name=None):
        # SeedGenerator.__init__ would build a (2,)-shaped state in the
        # backend's seed dtype; this class needs int32 with threshold slots,
        # so it makes its own state and sets the rest through the boundary.
        name = name or "random_state"
        _keras_private.init_seed_generator(self, name, seed)
        initial = np.array([_as_int32(seed), 0, *thresholds], dtype="int32")
        self._step = np.zeros_like(initial)
        self._step[1] = 1
        with keras.name_scope(self.name):
            self.state = keras.Variable(
                initial,
                dtype="int32",
                trainable=False,
                aggregation="none",
                name="keras_reg_random_state",
            )

    def advance(self):
        """Returns `[seed, counter]` (int32) and moves the counter on."""
        # A copy: on torch, `assign` writes into the storage a slice views.
        position = ops.copy(self.state.value[:2])
        self.state.assign(ops.add(self.state.value, self._step))
        replica = replica_index(self, position)
        if replica is not None:
            # `_mix(0) == 0`: replica 0 keeps the single-device stream.
            replica = ops.convert_to_tensor(replica, dtype="int32")
            offset = _mix(ops.multiply(replica, _REPLICA_SALT))
            position = ops.stack([ops.bitwise_xor(position[0], offset), position[1]])
        return position

    def next(self, ordered=True):
        # The `keras.random` entry point (native mode).
        del ordered
        return ops.cast(self.advance(), _SEED_DTYPES[keras.backend.backend()])

    def threshold(self, slot):
        return self.state.value[2 + slot]

    def rate(self, slot):
        """The drop rate of `slot`, `threshold / 2**24`, as float32."""
        return ops.divide(ops.cast(self.threshold(slot), "float32"), float(ONE))

    def set_thresholds(self, thresholds):
        position = ops.copy(self.state.value[:2])
        values = ops.convert_to_tensor(np.asarray(thresholds, dtype="int32"))
        self.state.assign(ops.concatenate([position, values]))

    def get_config(self):
        return {"seed": self._initial_seed, "name": self.name}


def _shr(x, k):
    """Logical right shift of int32 (`right_shift` is arithmetic)."""
    return ops.bitwise_and(ops.right_shift(x, k), (1 << (32 - k)) - 1)


def _mix(x):
    x = ops.bitwise_xor(x, _shr(x, 16))
    x = ops.multiply(x, _M1)
    x = ops.bitwise_xor(x, _shr(x, 15))
    x = ops.multiply(x, _M2)
    return ops.bitwise_xor(x, _shr(x, 16))


def keys(position):
    """The two int32 keys of one draw, from `[seed, counter]`."""
    seed, counter = position[0], position[1]
    k1 = _mix(ops.bitwise_xor(_mix(ops.bitwise_xor(seed, _SEED_SALT)), counter))
    k2 = _mix(ops.add(k1, _KEY_SALT))
    return k1, k2


def _size(shape):
    size = 1
    for dim in shape:
        size = size * dim
    return size


def hash_index(index, k1, k2):
    """`BITS` random bits for each element index in `index` (int32)."""
    value = _mix(ops.add(_mix(ops.bitwise_xor(index, k1)), k2))
    return _shr(value, 32 - BITS)


def element_index(shape):
    """The row-major index of each element of `shape`, int32."""
    return ops.reshape(ops.arange(_size(shape), dtype="int32"), shape)


def hash_bits(shape, k1, k2):
    """`BITS` random bits per element of `shape` (int32), from two keys."""
    return hash_index(element_index(shape), k1, k2)


def position_bits(shape, position):
    """The portable generator: the bits of draw `position = [seed, counter]`.

    This is the reference; `keras_reg._kernels` may replace it with a faster
    backend kernel that is tested to give the same bits.
    """
    return hash_bits(shape, *keys(position))


def uniform_bits(shape, state):
    """`BITS` uniform random bits per element of `shape` (int32), one draw."""
    if config.rng() == "native":
        return keras.random.randint(shape, 0, ONE, dtype="int32", seed=state)
    position = state.advance()
    kernel = _kernels.position_bits()
    if kernel is not None:
        bits = kernel(shape, position)
        if bits is not None:
            return bits
    return position_bits(shape, position)


def keep_mask(shape, state, slot=0):
    """A boolean mask of `shape`: True where a unit is kept."""
    return ops.greater_equal(uniform_bits(shape, state), state.threshold(slot))


def keep_scale(state, slot=0, dtype="float32"):
    """`1 / keep probability` of a slot, exactly, as a scalar of `dtype`."""
    kept = ops.subtract(ONE, ops.cast(state.threshold(slot), "float32"))
    return ops.cast(ops.divide(float(ONE), kept), dtype)


def dropout(inputs, state, slot=0, noise_shape=None):
    """Inverted dropout of `inputs` with the rate of `slot`, one draw.

    `noise_shape` (defaults to the input shape) may hold 1s: the mask is
    broadcast, i.e. shared along those axes.
    """
    if noise_shape is None:
        noise_shape = ops.shape(inputs)
    keep = keep_mask(noise_shape, state, slot)
    # Scale the (possibly broadcast) mask, not the input: two full-size ops
    # fewer. A NaN or inf input stays NaN where dropped (0 * NaN).
    scaled_mask = ops.where(keep, keep_scale(state, slot, inputs.dtype), 0)
    return ops.multiply(inputs, scaled_mask)
