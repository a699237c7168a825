"""Monte Carlo samples stacked along the batch axis.

`keras_reg.inference.mc_predict` may run `k` Monte Carlo samples in one
model call: the batch is tiled `k` times, sample-major (rows
`[g * B, (g + 1) * B)` are sample `g`). A layer that draws one mask per
sample needs nothing; a layer whose mask is shared by the whole batch
(`EmbeddingDropout`'s word types, `DropPath(mode="batch")`,
`StochasticDepth`, `InvertedDropout` with the batch axis shared) or whose
scale is a batch statistic (DropBlock) asks `groups()` at call (trace) time
and draws, or scales, once per sample group, so a stacked call samples
exactly what `k` separate calls would.
"""

import contextlib
import threading

from keras import ops

from keras_reg import _random

_local = threading.local()


def groups():
    """How many samples are stacked in the batch of the current call."""
    return getattr(_local, "groups", 1)


@contextlib.contextmanager
def stacked(count):
    """Calls made inside see `groups() == count` (this thread only)."""
    previous = groups()
    _local.groups = count
    try:
        yield
    finally:
        _local.groups = previous


def split(x, count):
    """`(count * B, ...)` -> `(count, B, ...)`."""
    shape = ops.shape(x)
    return ops.reshape(x, (count, shape[0] // count, *shape[1:]))


def merge(x):
    """`(count, B, ...)` -> `(count * B, ...)`."""
    shape = ops.shape(x)
    return ops.reshape(x, (shape[0] * shape[1], *shape[2:]))


def dropout(inputs, state, noise_shape):
    """`_random.dropout`, with a batch-shared mask drawn once per group."""
    count = groups()
    shared = isinstance(noise_shape[0], int) and noise_shape[0] == 1
    if count == 1 or not shared:
        return _random.dropout(inputs, state, noise_shape=noise_shape)
    grouped = _random.dropout(
        split(inputs, count), state, noise_shape=(count, 1, *noise_shape[1:])
    )
    return merge(grouped)


def keep_mask(shape, state, slot=0):
    """`_random.keep_mask` of a batch-shared `shape` (batch entry 1), one per
    group: `(count, ...)` when stacked, else `shape` itself."""
    count = groups()
    if count == 1:
        return _random.keep_mask(shape, state, slot)
    return _random.keep_mask((count, *shape[1:]), state, slot)
