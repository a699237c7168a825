"""Monte Carlo samples stacked along the batch axis, and consistent masks.

`keras_reg.inference.mc_predict` may run `k` Monte Carlo samples in one
model call: the batch is tiled `k` times, sample-major (rows
`[g * B, (g + 1) * B)` are sample `g`). A layer that draws one mask per
row needs nothing; a layer whose mask is shared by the whole batch
(`EmbeddingDropout`'s word types, `DropPath(mode="batch")`,
`StochasticDepth`, `InvertedDropout` with the batch axis shared, a
recurrent cell's `recurrent_dropout_mode="batch"` mask) or whose scale is
a batch statistic (DropBlock) asks `groups()` at call (trace) time and
draws, or scales, once per sample group, so a stacked call samples
exactly what `k` separate calls would.

Consistent masks (`mc_predict(..., consistent=True)`, Kirsch et al. 2019):
inside `stacked(count, consistent=True)`, every draw of a layer is shared
by all the rows of a group, and group `g`'s bits come from a position
derived from the layer's random state `[seed, first]` (which `mc_predict`
sets: `seed` from its own seed and the layer, `first` the index of the
call's first sample) and the sample index `first + g`, and from how many
draws the layer made before in this call; never from the advancing
counter, which these draws leave alone. So sample `t` of a layer is the
same mask for every row, batch and call with the same seed, whether the
samples are stacked or not. The portable hash draws them in both RNG
modes, and the data-parallel rank is not mixed in (every replica draws
sample `t`'s masks alike).

Both are read when a layer is called or traced: `_Stacked.call` in
`keras_reg.inference` opens the context around its one model call, so the
per-call draw count starts afresh in every call (eager) and every trace.
"""

import contextlib
import threading

from keras import ops

from keras_reg import _random

_local = threading.local()


class _Draws:
    """The draws each random state made in one consistent call, by id."""

    def __init__(self):
        self.made = {}

    def next(self, state):
        index = self.made.get(id(state), 0)
        self.made[id(state)] = index + 1
        return index


def groups():
    """How many samples are stacked in the batch of the current call."""
    return getattr(_local, "groups", 1)


def consistent():
    """Whether the current call draws consistent masks."""
    return getattr(_local, "draws", None) is not None


@contextlib.contextmanager
def stacked(count, consistent=False):
    """Calls made inside see `groups() == count` and, with `consistent`,
    draw consistent masks (this thread only)."""
    previous = groups(), getattr(_local, "draws", None)
    _local.groups = count
    _local.draws = _Draws() if consistent else None
    try:
        yield
    finally:
        _local.groups, _local.draws = previous


def split(x, count):
    """`(count * B, ...)` -> `(count, B, ...)`."""
    shape = ops.shape(x)
    return ops.reshape(x, (count, shape[0] // count, *shape[1:]))


def merge(x):
    """`(count, B, ...)` -> `(count * B, ...)`."""
    shape = ops.shape(x)
    return ops.reshape(x, (shape[0] * shape[1], *shape[2:]))


def group_of_rows(rows, count):
    """`(rows,)` int32: the stacked sample (group) of each row."""
    return ops.floor_divide(ops.arange(rows, dtype="int32"), rows // count)


def _sample_keys(state, groups_, draw):
    """The keys of a consistent draw: `groups_` an int32 tensor of group
    indices, `draw` how many draws `state` made before in this call."""
    value = state.state.value
    seed, first = value[0], value[1]
    k1, _ = _random.keys((seed, ops.add(first, groups_)))
    return _random.keys((k1, ops.convert_to_tensor(draw, dtype="int32")))


def _consistent_bits(shape, state, groups_, axis):
    """Bits of `shape` whose entries along `axis` draw as sample groups
    `groups_` (int32, one per entry); the other axes index the elements."""
    draw = _local.draws.next(state)
    k1, k2 = _sample_keys(state, groups_, draw)
    keys_shape = [1] * len(shape)
    keys_shape[axis] = -1
    element_shape = list(shape)
    element_shape[axis] = 1
    index = _random.element_index(tuple(element_shape))
    # The keys as full-shape tensors: Keras' TensorFlow `add` takes a
    # `(count, 1, ..., 1)` operand for a bias of the last axis when `count`
    # equals that axis (it then adds along the wrong axis), so the hash
    # must not broadcast the keys in its `add`. `bitwise_xor` broadcasts
    # correctly on every backend.
    k1 = ops.bitwise_xor(ops.reshape(k1, keys_shape), ops.zeros_like(index))
    k2 = ops.bitwise_xor(ops.reshape(k2, keys_shape), ops.zeros_like(index))
    return _random.hash_index(index, k1, k2)


def row_bits(shape, state, axis=0):
    """`_random.uniform_bits` of a mask `shape` whose axis `axis` runs over
    the rows of the call's batch. Consistent: every row of a group draws
    the same bits, its sample's."""
    if not consistent():
        return _random.uniform_bits(shape, state)
    rows = shape[axis]
    return _consistent_bits(shape, state, group_of_rows(rows, groups()), axis)


def row_keep_mask(shape, state, slot=0, axis=0):
    """`_random.keep_mask` of a per-row `shape` (rows along `axis`)."""
    return ops.greater_equal(row_bits(shape, state, axis), state.threshold(slot))


def keep_mask(shape, state, slot=0):
    """`_random.keep_mask` of a batch-shared `shape` (batch entry 1), one per
    group: `(count, ...)` when stacked, else `shape` itself."""
    count = groups()
    if consistent():
        bits = _consistent_bits(
            (count, *shape[1:]), state, ops.arange(count, dtype="int32"), 0
        )
        return ops.greater_equal(bits, state.threshold(slot))
    if count == 1:
        return _random.keep_mask(shape, state, slot)
    return _random.keep_mask((count, *shape[1:]), state, slot)


def per_row(grouped, rows, axis):
    """A mask of one entry per group, `(count, ...)`, as one per row: group
    `g`'s entry repeated for its rows, the rows inserted at `axis` of the
    rest."""
    count = ops.shape(grouped)[0]
    taken = ops.take(grouped, group_of_rows(rows, count), axis=0)
    return ops.moveaxis(taken, 0, axis)


def dropout(inputs, state, noise_shape):
    """`_random.dropout`, with a batch-shared mask drawn once per group
    (and every mask shared by the rows of a group when consistent)."""
    count = groups()
    if consistent():
        shape = (ops.shape(inputs)[0], *noise_shape[1:])
        keep = row_keep_mask(shape, state)
        scale = _random.keep_scale(state, dtype=inputs.dtype)
        return ops.multiply(inputs, ops.where(keep, scale, 0))
    shared = isinstance(noise_shape[0], int) and noise_shape[0] == 1
    if count == 1 or not shared:
        return _random.dropout(inputs, state, noise_shape=noise_shape)
    grouped = _random.dropout(
        split(inputs, count), state, noise_shape=(count, 1, *noise_shape[1:])
    )
    return merge(grouped)
