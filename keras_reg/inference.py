"""Monte Carlo dropout: predictions that sample the dropout masks.

`model(x, training=True)` is the usual recipe and a wrong one: it also puts
BatchNormalization (and every other layer with a training mode) in training
mode, so predictions use batch statistics and the moving statistics drift.
Here only the dropout layers sample; everything else runs in inference mode.
"""

import contextlib
import functools
import threading
import weakref

import keras
import numpy as np
from keras import ops

from keras_reg import _keras_private, _random
from keras_reg._checks import check_bool, check_positive_int, check_seed
from keras_reg._walk import walk
from keras_reg.layers import _samples, _stochastic

__all__ = ["acquire", "mc_dropout", "mc_predict", "uncertainty"]

# Keras' own dropout layers, sampled inside `mc_dropout()` too.
_KERAS_DROPOUT_LAYERS = (
    keras.layers.Dropout,
    keras.layers.SpatialDropout1D,
    keras.layers.SpatialDropout2D,
    keras.layers.SpatialDropout3D,
    keras.layers.GaussianDropout,
    keras.layers.AlphaDropout,
)

_lock = threading.Lock()


@contextlib.contextmanager
def mc_dropout(model=None):
    """Context manager: dropout layers sample masks, nothing else trains.

    `mc_dropout(model)` switches only the dropout layers of `model`: every
    `keras_reg` stochastic layer and cell in it (nested models, wrappers,
    `Bidirectional` and recurrent cells included), and Keras' `Dropout`,
    `SpatialDropout1D/2D/3D`, `GaussianDropout` and `AlphaDropout` layers in
    it, behave as in training on plain `model(x)` calls; BatchNormalization
    and every other layer stay in inference mode, and other models are not
    touched. `mc_dropout()` without a model does the same for every model
    of the process (and every Keras dropout layer).

    Contexts nest and may overlap (two models sharing layers): a layer
    samples while any context that covers it is open. The switch is read
    when a layer is called or traced: a function compiled before the
    context opened (e.g. a model's cached `predict_function`) keeps its
    inference graph; `mc_predict` handles that for you. While the context
    is open, every thread's calls of the switched layers sample.

    Args:
        model: optional `keras.Model` (or layer) whose dropout layers
            sample. Defaults to `None`: every model of the process.

    Example:

    >>> with keras_reg.inference.mc_dropout(model):
    ...     samples = [model(x) for _ in range(10)]
    """
    if model is None:
        with _lock:
            if _stochastic.open_process_switch():
                _patch_keras_layers()
        try:
            yield
        finally:
            with _lock:
                if _stochastic.close_process_switch():
                    _unpatch_keras_layers()
        return
    if not isinstance(model, keras.layers.Layer):
        raise ValueError(
            "Invalid value received for argument `model`. Expected a Keras "
            f"model or layer, or None. Received: model={model!r}"
        )
    layers = _sampling_layers(model)
    with _lock:
        for layer in layers:
            _switch_on(layer)
    try:
        yield
    finally:
        with _lock:
            for layer in layers:
                _switch_off(layer)


# The function that undoes the patch of Keras' dropout classes while a
# process-wide `mc_dropout()` is open.
_undo_patch = []


def _patch_keras_layers():
    _undo_patch.append(_keras_private.force_training(_KERAS_DROPOUT_LAYERS))


def _unpatch_keras_layers():
    _undo_patch.pop()()


# The layers that `mc_dropout(model)` contexts have switched, by id:
# [layer, how many contexts cover it, the function that switches it off].
_switched = {}


def _samples_masks(layer):
    return isinstance(layer, (_stochastic.Stochastic, *_KERAS_DROPOUT_LAYERS))


def _switch_on(layer):
    entry = _switched.get(id(layer))
    if entry is not None:
        entry[1] += 1
        return
    if isinstance(layer, _stochastic.Stochastic):
        # keras_reg's layers and cells ask `sampling(training, self)`,
        # which reads this switch (a cell in `keras.layers.RNN` too, whose
        # masks are drawn from the RNN's own `training`).
        _stochastic.switch_layer(layer, True)
        undo = functools.partial(_stochastic.switch_layer, layer, False)
    else:
        # Keras' own dropout layers: an instance `call` for this layer only.
        undo = _keras_private.shadow_call(layer)
    _switched[id(layer)] = [layer, 1, undo]


def _switch_off(layer):
    entry = _switched[id(layer)]
    entry[1] -= 1
    if entry[1]:
        return
    del _switched[id(layer)]
    entry[2]()


def _sampling_layers(model):
    return [layer for layer in walk(model) if _samples_masks(layer)]


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


# Without `samples_per_call`, stacked samples fill calls of up to this
# many rows (the batch size times the samples per call).
_STACKED_ROWS = 4096


def _rows(x):
    """The number of rows of array-like `x`, or None (a dataset, ...)."""
    leaves = keras.tree.flatten(x)
    if not leaves or not all(hasattr(leaf, "shape") for leaf in leaves):
        return None
    return min(int(np.shape(leaf)[0]) if np.ndim(leaf) else 0 for leaf in leaves)


def _stackable(model):
    """Whether stacking samples along the batch gives what separate calls
    give: every layer treats rows independently, or (keras_reg's
    batch-shared masks, the batch-mode recurrent mask included) draws per
    stacked sample (`keras_reg.layers._samples`)."""
    for layer in walk(model):
        if getattr(layer, "stateful", False):
            return False
        noise_shape = getattr(layer, "noise_shape", None)
        if isinstance(layer, _KERAS_DROPOUT_LAYERS) and noise_shape is not None:
            if noise_shape and noise_shape[0] == 1:
                return False
        # A cell's weight drop is one mask for the whole batch.
        if isinstance(layer, _stochastic.Stochastic):
            if (getattr(layer, "weight_dropout", 0) or 0) > 0:
                return False
    return True


class _Stacked(keras.Model):
    """`count` Monte Carlo samples of `inner` in one call: the batch is
    tiled `count` times (sample-major) and the outputs come back as
    `(batch, count, ...)`, so that `predict` concatenates them by row.
    With `consistent`, the layers draw consistent masks (`_samples`)."""

    def __init__(self, inner, count, consistent=False):
        super().__init__(name=f"{inner.name}_mc_samples")
        self.inner = inner
        self.count = count
        self.consistent = consistent
        # No weights of its own: built, so that JAX's `predict` and
        # `predict_on_batch` do not first call it eagerly to build it (an
        # eager call compiles every op at the stacked shape: about 1 s for
        # a small recurrent model, more than the compiled predict). An
        # unbuilt `inner` builds itself in the first call.
        self.built = True

    def call(self, inputs):
        count = self.count

        def tile(t):
            return ops.tile(t, [count] + [1] * (len(t.shape) - 1))

        if count > 1:
            inputs = keras.tree.map_structure(tile, inputs)
        # Opened in each call (each trace): the per-call count of every
        # layer's consistent draws starts afresh.
        with _samples.stacked(count, consistent=self.consistent):
            outputs = self.inner(inputs)

        def unstack(o):
            return ops.swapaxes(_samples.split(o, count), 0, 1)

        return keras.tree.map_structure(unstack, outputs)


# Per model, kept as long as the model lives: its stacked wrappers (by
# samples per call) and its sampling predict function.
_stacked = weakref.WeakKeyDictionary()
_predict_functions = weakref.WeakKeyDictionary()


def _stacked_model(model, count, consistent=False):
    cache = _stacked.setdefault(model, {})
    if (count, consistent) not in cache:
        cache[count, consistent] = _Stacked(model, count, consistent)
    return cache[count, consistent]


def _check_consistent(layers):
    """Raises unless every sampling layer can draw consistent masks."""
    keras_layers = [
        layer for layer in layers if isinstance(layer, _KERAS_DROPOUT_LAYERS)
    ]
    if keras_layers:
        names = ", ".join(
            f"'{layer.name}' ({type(layer).__name__})" for layer in keras_layers
        )
        raise ValueError(
            "Invalid value received for argument `consistent`: True. Keras' "
            "own dropout layers draw from the backend's generator, one mask "
            "per row, and cannot give consistent masks. The model holds: "
            f"{names}. Make them keras_reg layers with "
            "`keras_reg.models.portable(model)`, or pass consistent=False."
        )
    others = [
        layer
        for layer in layers
        if isinstance(layer, _stochastic.Stochastic) and not layer._consistent_masks
    ]
    if others:
        names = ", ".join(
            f"'{layer.name}' ({type(layer).__name__})" for layer in others
        )
        raise ValueError(
            "Invalid value received for argument `consistent`: True. These "
            f"layers cannot draw consistent masks yet: {names}. Pass "
            "consistent=False."
        )


def _consistent_states(states, seed, first):
    """Each state's `[seed, first, thresholds...]` for the consistent draws
    of a call whose first sample is `first` (`_samples`)."""
    values = []
    for index, state in enumerate(states):
        value = _seeded_state(state, seed, index)
        value[1] = first
        values.append(value)
    return values


def mc_predict(
    model,
    x,
    samples=30,
    batch_size=None,
    seed=None,
    return_samples=False,
    verbose=0,
    samples_per_call=None,
    consistent=False,
):
    """Monte Carlo dropout prediction: mean and standard deviation.

    Runs the model `samples` times over `x` with the dropout masks of its
    dropout layers sampled (see `mc_dropout(model)`), compiled like
    `predict` is, and reduces the samples as they come (memory of
    `samples_per_call` predictions, not `samples` of them, unless
    `return_samples=True`). BatchNormalization uses its moving statistics
    and does not update them.

    Several samples run in one call: the batch is tiled `samples_per_call`
    times, each copy drawing its own masks, which costs far less than one
    `predict` per sample (on the MLP of `make bench`, 30 samples cost less
    than 30 plain `predict` calls on every backend). keras_reg's
    batch-shared masks (`EmbeddingDropout`, `DropPath(mode="batch")`,
    `StochasticDepth`, `InvertedDropout` with the batch axis shared, the
    recurrent mask of `recurrent_dropout_mode="batch"`) are drawn per
    sample and DropBlock scales per sample, so the samples are those of
    separate calls. A batch-mode recurrent mask is folded into the
    recurrent kernel in a plain call; in a stacked call each sample's mask
    is applied to its own rows instead (the same product), which runs the
    per-sample recurrence rather than the fused kernel.
    Models where that cannot hold (a recurrent cell with
    `weight_dropout`, a Keras dropout layer whose `noise_shape` shares the
    batch axis, a stateful layer) and inputs other than arrays (datasets,
    generators) run one `predict` per sample. Stacking assumes that the
    model treats rows independently in inference, as Keras' layers do;
    pass `samples_per_call=1` for a model that does not.

    Args:
        model: a built `keras.Model`.
        x: inputs, as for `model.predict`; not empty.
        samples: int >= 1, the number of stochastic forward passes.
            Defaults to `30`.
        batch_size: as for `model.predict` (default 32): the rows of `x`
            per call, before stacking.
        seed: optional int. With a seed, every sampling layer draws from a
            stream derived from it (the same result for the same seed and
            `samples_per_call`; with keras_reg's layers in the default
            portable mode, the same on every backend too), and the layers'
            own streams are left where they were. Without one, the layers'
            own streams are used and move on. (On torch, Keras' dropout
            layers built without a seed draw from torch's global generator;
            with `seed`, it is seeded through
            `keras.utils.set_random_seed(seed)`.)
        return_samples: bool, also return the `(samples, ...)` stack.
            Defaults to `False`.
        verbose: `0` silent, `1` a progress bar over the samples.
        samples_per_call: optional int >= 1, the samples stacked in one
            call (memory grows with it). Defaults to `None`: as many as
            fill `4096` rows (`4096 // batch_size`), at most `samples`.
        consistent: bool, consistent MC dropout (Kirsch et al. 2019):
            sample `t` uses the same masks for every row of `x`, in every
            batch, and in every call with the same `seed`, so that the
            scores of different rows are comparable draw by draw (as
            BatchBALD needs). Each layer's masks of sample `t` are a
            batch-shared draw from a position derived from `(seed, layer,
            t)`, whatever `samples_per_call`, `batch_size` and the row's
            place in `x` (from the portable generator in both RNG modes,
            and the same on every data-parallel replica). For each row,
            the samples are distributed as without `consistent` for the
            row alone; only their agreement across rows changes. (The
            exception to "alone": DropBlock scales the kept units by the
            kept fraction of the batch, which a plain call of several
            rows pools over their independent masks; consistent rows
            share one mask, so each row is scaled by its own, as alone,
            and never depends on its neighbours.) Every keras_reg layer and
            cell draws them (input, recurrent in both modes, output,
            weight and zoneout masks, and `ConcreteDropout`'s relaxed
            mask). A model holding Keras' own dropout layers (`Dropout`,
            `SpatialDropout*`, `GaussianDropout`, `AlphaDropout`), which
            draw one mask per row from the backend's generator, raises
            `ValueError` naming them (convert them with
            `keras_reg.models.portable`). Without `seed`, one is drawn
            for the call (`keras.utils.set_random_seed` makes it
            repeatable): its samples are consistent, another call's are
            others. Defaults to `False`.

    Returns:
        `(mean, std)` NumPy arrays shaped like one prediction (the standard
        deviation is the population one over samples), or `(mean, std,
        stack)` with `return_samples=True`. Nested outputs give nested
        results.

    Example:

    >>> mean, std = keras_reg.inference.mc_predict(model, x, samples=50, seed=0)
    >>> # BatchBALD-style scores: sample t drops the same units for every row.
    >>> mean, std, stack = keras_reg.inference.mc_predict(
    ...     model, pool, samples=20, seed=0, consistent=True, return_samples=True
    ... )

    Reference:
        Gal & Ghahramani, 2016, "Dropout as a Bayesian Approximation";
        Kirsch, van Amersfoort & Gal, 2019, "BatchBALD: Efficient and
        Diverse Batch Acquisition for Deep Bayesian Active Learning"
        (consistent MC dropout).
    """
    samples = check_positive_int("samples", samples)
    seed = check_seed(seed)
    consistent = check_bool("consistent", consistent)
    if verbose not in (0, 1):
        raise ValueError(
            "Invalid value received for argument `verbose`. Expected 0 or 1. "
            f"Received: verbose={verbose!r}"
        )
    if samples_per_call is not None:
        samples_per_call = check_positive_int("samples_per_call", samples_per_call)
    rows = _rows(x)
    if rows == 0:
        raise ValueError(
            "Invalid value received for argument `x`. Expected at least one "
            "row to predict. Received: an empty input, shapes "
            f"{keras.tree.map_structure(np.shape, x)}"
        )
    count = 1
    if rows is not None and _stackable(model):
        if samples_per_call is None:
            samples_per_call = max(1, _STACKED_ROWS // (batch_size or 32))
        count = min(samples, samples_per_call)
        # As few calls as `count` allows, and as few wasted samples.
        calls = -(-samples // count)
        count = -(-samples // calls)
    layers = _sampling_layers(model)
    if consistent:
        _check_consistent(layers)
        if seed is None:
            # One seed for this call: its samples are consistent across
            # rows and batches; another call draws other masks.
            seed = _random.new_seed()
    states = _random_states(layers)
    saved = None
    if seed is not None:
        saved = [keras.ops.convert_to_numpy(s) for s in states]
        for index, state in enumerate(states):
            state.assign(_seeded_state(state, seed, index))
        if keras.backend.backend() == "torch" and any(
            isinstance(layer, _KERAS_DROPOUT_LAYERS) and layer.seed is None
            for layer in layers
        ):
            # Keras' unseeded dropout layers draw from torch's global
            # generator on this backend, not from their state.
            keras.utils.set_random_seed(seed)
    progbar = keras.utils.Progbar(samples) if verbose else None
    stats, stack = _Moments(), None
    done = 0

    def record(pred):
        nonlocal stack, done
        stats.add(pred)
        if return_samples:
            if stack is None:
                stack = keras.tree.map_structure(
                    lambda p: np.empty((samples, *np.shape(p)), p.dtype), pred
                )
            for rows_, p in zip(
                keras.tree.flatten(stack), keras.tree.flatten(pred), strict=True
            ):
                rows_[done] = p
        done += 1
        if progbar is not None:
            progbar.update(done)

    try:
        with mc_dropout(model):
            if count == 1 and not consistent:
                for _ in range(samples):
                    record(_predict_one(model, x, batch_size, rows))
            else:
                stacked = _stacked_model(model, count, consistent)
                while done < samples:
                    if consistent:
                        # Sample `t`'s masks come from `(seed, layer, t)`:
                        # this call's samples are `done, done + 1, ...`.
                        values = _consistent_states(states, seed, done)
                        for state, value in zip(states, values, strict=True):
                            state.assign(value)
                    pred = _batched_predict(stacked, x, batch_size)
                    if pred is None:
                        pred = stacked.predict(x, batch_size=batch_size, verbose=0)
                    for j in range(min(count, samples - done)):
                        record(keras.tree.map_structure(lambda p, j=j: p[:, j], pred))
    finally:
        if saved is not None:
            for state, value in zip(states, saved, strict=True):
                state.assign(value)
    mean, std = stats.result()
    if return_samples:
        return mean, std, stack
    return mean, std


# The backends where `_batched_predict` replaces `predict`: TensorFlow's
# `predict` builds a `tf.data` pipeline at every call (about 30 ms on a
# quiet CPU, 0.3 s on a loaded one, whatever the batch), which one
# `predict` per sample pays `samples` times. JAX's and torch's iterate over
# the arrays directly.
_BATCHED_BACKENDS = ("tensorflow",)


def _batched_predict(model, x, batch_size):
    """`model.predict(x, batch_size=batch_size, verbose=0)` as one
    `predict_on_batch` per batch, or None where `predict` must run.

    The same batches in the same order through the same compiled predict
    function (`predict_on_batch` makes and keeps it as `predict` does), so
    the same draws. Only for NumPy array inputs, on the backends
    of `_BATCHED_BACKENDS`, and where a step sees the whole batch (one
    replica: no `tf.distribute` strategy or `keras.distribution` splits
    it).
    """
    if keras.backend.backend() not in _BATCHED_BACKENDS:
        return None
    if keras.distribution.distribution() is not None:
        return None
    strategy = getattr(model, "distribute_strategy", None)
    if getattr(strategy, "num_replicas_in_sync", 1) != 1:
        return None
    leaves = keras.tree.flatten(x)
    if not leaves or not all(isinstance(leaf, np.ndarray) for leaf in leaves):
        return None
    rows = _rows(x)
    if not rows:
        return None
    size = batch_size or 32
    outputs = []
    for start in range(0, rows, size):
        batch = keras.tree.map_structure(lambda a, s=start: a[s : s + size], x)
        outputs.append(model.predict_on_batch(batch))
    if len(outputs) == 1:
        return outputs[0]
    return keras.tree.map_structure(lambda *parts: np.concatenate(parts), *outputs)


def _predict_one(model, x, batch_size, rows=None):
    """One `model.predict` with the sampling predict function, traced on
    first use inside `mc_dropout(model)` and kept for the next calls; the
    model keeps its own.

    Arrays on a backend of `_BATCHED_BACKENDS`, for a model that predicts
    with Keras' own `predict_step`: a one-sample `_Stacked` wrapper (which
    draws what the model draws) runs `_batched_predict` instead."""
    if rows is not None and type(model).predict_step is keras.Model.predict_step:
        pred = _batched_predict(_stacked_model(model, 1), x, batch_size)
        if pred is not None:
            return keras.tree.map_structure(lambda p: p[:, 0], pred)
    pred, function = _keras_private.predict_with(
        model, _predict_functions.get(model), x, batch_size=batch_size, verbose=0
    )
    _predict_functions[model] = function
    return pred


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


# The Bayesian tools built on `mc_predict` live in their own module (one job
# each); `_acquisition` imports this module inside its functions only.
from keras_reg._acquisition import acquire, uncertainty  # noqa: E402
