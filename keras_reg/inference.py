"""Monte Carlo dropout: predictions that sample the dropout masks.

`model(x, training=True)` is the usual recipe and a wrong one: it also puts
BatchNormalization (and every other layer with a training mode) in training
mode, so predictions use batch statistics and the moving statistics drift.
Here only the dropout layers sample; everything else runs in inference mode.
"""

import contextlib
import functools
import threading

import keras
import numpy as np

from keras_reg._checks import check_positive_int, check_seed
from keras_reg.layers import _stochastic

# Keras' own dropout layers, sampled inside `mc_dropout()` too.
KERAS_DROPOUT_LAYERS = (
    keras.layers.Dropout,
    keras.layers.SpatialDropout1D,
    keras.layers.SpatialDropout2D,
    keras.layers.SpatialDropout3D,
    keras.layers.GaussianDropout,
    keras.layers.AlphaDropout,
)

_lock = threading.Lock()


def _classes_defining_call():
    """The classes whose own `call` the Keras dropout layers run."""
    owners = []
    for cls in KERAS_DROPOUT_LAYERS:
        owner = next(c for c in cls.__mro__ if "call" in vars(c))
        if owner not in owners:
            owners.append(owner)
    return owners


def _always_training(call):
    @functools.wraps(call)
    def sampled(self, inputs, training=False):
        return call(self, inputs, training=True)

    return sampled


@contextlib.contextmanager
def mc_dropout():
    """Context manager: dropout layers sample masks, nothing else trains.

    Inside it, every `keras_reg` stochastic layer and cell, and Keras'
    `Dropout`, `SpatialDropout1D/2D/3D`, `GaussianDropout` and
    `AlphaDropout`, behave as in training on plain `model(x)` calls;
    BatchNormalization and every other layer stay in inference mode. The
    switch is read when a layer is called or traced: a function compiled
    before the context opened (e.g. a model's cached `predict_function`)
    keeps its inference graph; `mc_predict` handles that for you. The effect
    is process-wide while the context is open.

    Example:

    >>> with keras_reg.inference.mc_dropout():
    ...     samples = [model(x) for _ in range(10)]
    """
    with _lock:
        if _stochastic._mc_depth == 0:
            _patch_keras_layers()
        _stochastic._mc_depth += 1
    try:
        yield
    finally:
        with _lock:
            _stochastic._mc_depth -= 1
            if _stochastic._mc_depth == 0:
                _unpatch_keras_layers()


_originals = {}


def _patch_keras_layers():
    for owner in _classes_defining_call():
        _originals[owner] = vars(owner)["call"]
        owner.call = _always_training(_originals[owner])


def _unpatch_keras_layers():
    for owner, call in _originals.items():
        owner.call = call
    _originals.clear()


def _sampling_layers(model):
    return [
        layer
        for layer in model._flatten_layers(include_self=True, recursive=True)
        if isinstance(layer, (_stochastic.Stochastic, *KERAS_DROPOUT_LAYERS))
    ]


def _random_states(layers):
    """The seed-generator states of the sampling layers and cells."""
    generators = [getattr(layer, "seed_generator", None) for layer in layers]
    return [g.state for g in generators if g is not None]


def _seeded_state(state, seed, index):
    """The state of the `index`-th generator for a `mc_predict` seed."""
    value = np.array(keras.ops.convert_to_numpy(state))
    derived = np.random.SeedSequence([seed, index]).generate_state(1)[0]
    value[0] = int(derived) % (2**31 - 1)
    value[1] = 0
    return value


def mc_predict(
    model,
    x,
    samples=30,
    batch_size=None,
    seed=None,
    return_samples=False,
    verbose=0,
):
    """Monte Carlo dropout prediction: mean and standard deviation.

    Runs `model.predict(x)` `samples` times with the dropout masks sampled
    (see `mc_dropout`), compiled like `predict` is, and reduces the samples
    as they come (memory of one prediction, not `samples` of them, unless
    `return_samples=True`). BatchNormalization uses its moving statistics
    and does not update them.

    Args:
        model: a built `keras.Model`.
        x: inputs, as for `model.predict`.
        samples: int >= 1, the number of stochastic forward passes.
            Defaults to `30`.
        batch_size: as for `model.predict` (default 32).
        seed: optional int. With a seed, every sampling layer draws from a
            stream derived from it (the same result for the same seed; with
            keras_reg's layers in the default portable mode, the same on
            every backend too), and the layers' own streams are left where
            they were. Without one, the
            layers' own streams are used and move on. (On torch, Keras'
            dropout layers built without a seed draw from torch's global
            generator; with `seed`, it is seeded through
            `keras.utils.set_random_seed(seed)`.)
        return_samples: bool, also return the `(samples, ...)` stack.
            Defaults to `False`.
        verbose: `0` silent, `1` a progress bar over the samples.

    Returns:
        `(mean, std)` NumPy arrays shaped like one prediction (the standard
        deviation is the population one over samples), or `(mean, std,
        stack)` with `return_samples=True`. Nested outputs give nested
        results.

    Example:

    >>> mean, std = keras_reg.inference.mc_predict(model, x, samples=50, seed=0)
    """
    samples = check_positive_int("samples", samples)
    seed = check_seed(seed)
    if verbose not in (0, 1):
        raise ValueError(
            "Invalid value received for argument `verbose`. Expected 0 or 1. "
            f"Received: verbose={verbose!r}"
        )
    layers = _sampling_layers(model)
    states = _random_states(layers)
    saved = None
    if seed is not None:
        saved = [keras.ops.convert_to_numpy(s) for s in states]
        for index, state in enumerate(states):
            state.assign(_seeded_state(state, seed, index))
        if keras.backend.backend() == "torch" and any(
            isinstance(layer, KERAS_DROPOUT_LAYERS) and layer.seed is None
            for layer in layers
        ):
            # Keras' unseeded dropout layers draw from torch's global
            # generator on this backend, not from their state.
            keras.utils.set_random_seed(seed)
    progbar = keras.utils.Progbar(samples) if verbose else None
    stats, stack = _Moments(), None
    plain_function = model.predict_function
    model.predict_function = getattr(model, "_keras_reg_mc_predict_function", None)
    try:
        with mc_dropout():
            for i in range(samples):
                pred = model.predict(x, batch_size=batch_size, verbose=0)
                stats.add(pred)
                if return_samples:
                    if stack is None:
                        stack = keras.tree.map_structure(
                            lambda p: np.empty((samples, *np.shape(p)), p.dtype), pred
                        )
                    for rows, p in zip(
                        keras.tree.flatten(stack), keras.tree.flatten(pred), strict=True
                    ):
                        rows[i] = p
                if progbar is not None:
                    progbar.update(i + 1)
    finally:
        # Keep the sampling predict function for the next call and give the
        # model back its own.
        object.__setattr__(
            model, "_keras_reg_mc_predict_function", model.predict_function
        )
        model.predict_function = plain_function
        if saved is not None:
            for state, value in zip(states, saved, strict=True):
                state.assign(value)
    mean, std = stats.result()
    if return_samples:
        return mean, std, stack
    return mean, std


class _Moments:
    """Running mean and standard deviation of nested arrays, in float64.

    Sums are taken around the first sample, so identical samples give a
    standard deviation of exactly 0 and near-constant ones lose no digits.
    """

    def __init__(self):
        self.count = 0

    def add(self, pred):
        pred = keras.tree.map_structure(lambda p: np.asarray(p, "float64"), pred)
        if self.count == 0:
            self.first = pred
            self.total = keras.tree.map_structure(np.zeros_like, pred)
            self.squares = keras.tree.map_structure(np.zeros_like, pred)
        else:
            delta = keras.tree.map_structure(np.subtract, pred, self.first)
            self.total = keras.tree.map_structure(np.add, self.total, delta)
            self.squares = keras.tree.map_structure(
                lambda s, d: s + np.square(d), self.squares, delta
            )
        self.count += 1

    def result(self):
        n = self.count

        def mean(first, total):
            return (first + total / n).astype("float32")

        def std(total, squares):
            var = squares / n - np.square(total / n)
            return np.sqrt(np.maximum(var, 0.0)).astype("float32")

        return (
            keras.tree.map_structure(mean, self.first, self.total),
            keras.tree.map_structure(std, self.total, self.squares),
        )
