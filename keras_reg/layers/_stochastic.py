"""The plumbing every stochastic layer and cell shares: rates, seed, state.

A class lists its drop rates as `Rate()` class attributes. Each rate is a
validated Python float for `get_config` and an integer threshold in the
layer's `RandomState` variable, which compiled functions read: assigning
`layer.rate = 0.3` takes effect at the next call without retracing.
"""

import keras
import numpy as np

from keras_reg import _keras_private, _random
from keras_reg._checks import check_rate, check_seed

# The key of the random state in a layer's saved variables.
_STATE_KEY = "keras_reg_random_state"

# The Monte Carlo switch. This module owns it; `keras_reg.inference` turns
# it on and off through the functions below (under its own lock).
# How many `mc_dropout()` contexts (every model of the process) are open.
_mc_depth = 0
# The ids of the layers and cells that `mc_dropout(model)` contexts have
# switched on.
_mc_layers = set()


def open_process_switch():
    """Opens one process-wide `mc_dropout()`; True when it is the first."""
    global _mc_depth
    _mc_depth += 1
    return _mc_depth == 1


def close_process_switch():
    """Closes one process-wide `mc_dropout()`; True when none is left."""
    global _mc_depth
    if _mc_depth == 0:
        raise RuntimeError("No process-wide mc_dropout() context is open.")
    _mc_depth -= 1
    return _mc_depth == 0


def switch_layer(layer, on):
    """Switches `layer` (a layer or cell of this package) on or off."""
    if on:
        _mc_layers.add(id(layer))
    else:
        _mc_layers.discard(id(layer))


def sampling(training, layer=None):
    """`training`, or `True` inside `mc_dropout()` (or `mc_dropout(model)`
    for `layer`'s model): whether to draw masks.

    Read when a layer is called (or traced): a function traced before the
    context opened keeps what it saw then.
    """
    if _mc_depth or (layer is not None and id(layer) in _mc_layers):
        return True
    return training


class Rate:
    """A drop-rate attribute: validated on assignment, mirrored in the state.

    An invalid value raises `ValueError` and leaves the old rate in force.
    """

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, layer, owner=None):
        if layer is None:
            return self
        try:
            return layer.__dict__["_rates"][self.name]
        except KeyError:
            raise AttributeError(self.name) from None

    def __set__(self, layer, value):
        value = check_rate(self.name, value)
        state = layer.__dict__.get("seed_generator")
        if isinstance(state, _random.RandomState):
            layer._check_rate_change(self.name, value)
        rates = dict(layer.__dict__.get("_rates", {}))
        rates[self.name] = value
        # Plain attribute: Keras' tracker must not wrap this dict.
        object.__setattr__(layer, "_rates", rates)
        if isinstance(state, _random.RandomState):
            layer._sync_thresholds()


class Stochastic:
    """Mixin for a `keras.layers.Layer` that draws masks.

    Subclasses declare `Rate()` attributes, assign them in `__init__` after
    `super().__init__()`, then call `self._init_random(seed)`.

    A class whose every draw goes through `keras_reg.layers._samples`
    (`row_bits`, `row_keep_mask`, `keep_mask`, `dropout`) draws consistent
    masks inside `mc_predict(..., consistent=True)` and says so with
    `_consistent_masks = True`; `mc_predict` refuses the others there.
    """

    _consistent_masks = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # The class's rates in declaration order (bases first): the slots
        # of its random state. Computed once per class, not per draw.
        names = []
        for klass in reversed(cls.__mro__):
            for name, value in vars(klass).items():
                if isinstance(value, Rate) and name not in names:
                    names.append(name)
        cls._rate_tuple = tuple(names)

    @classmethod
    def _rate_names(cls):
        return cls._rate_tuple

    def _init_random(self, seed):
        # As in Keras: `seed=None` stays None in the config, so a clone
        # (`from_config`, `clone_model`) draws its own stream. The seed drawn
        # here lives in the random state, which is saved with the weights, so
        # a reloaded layer continues this stream exactly.
        self.seed = check_seed(seed)
        remat = _keras_private.rematerialized(self)
        if remat is not None:
            # torch's checkpoint and TensorFlow's recompute_grad run `call`
            # again in the backward pass, from the stream the forward pass
            # moved: new masks, gradients not the forward pass's (measured,
            # as with Keras' own Dropout); JAX fails to trace it.
            raise ValueError(
                f"{type(self).__name__} `{self.name}` was built inside "
                f"`keras.RematScope(mode={remat!r})`: on torch and "
                "TensorFlow the backward pass would run its call again and "
                "draw new masks, so its gradients would not be those of the "
                "forward pass (on JAX, Keras fails to trace it). Build "
                "keras_reg's random layers outside the scope, or give the "
                "scope mode='list_of_layers' without them."
            )
        drawn = _random.new_seed() if self.seed is None else self.seed
        replaced = self.__dict__.get("seed_generator")
        # A unique scope, as Keras' own seed generators have: two cells of
        # one name must not share a variable path (torch keys parameters
        # by path).
        prefix = f"{self.name}_random_state"
        uid = keras.backend.get_uid(prefix)
        self.seed_generator = _random.RandomState(
            drawn,
            self._thresholds(),
            name=prefix if uid == 1 else f"{prefix}_{uid - 1}",
        )
        # A Keras cell's constructor made a `SeedGenerator` of its own; it
        # would stay an unused, unsaved variable of every model.
        if replaced is not None:
            _keras_private.untrack(self, replaced)

    def _check_rate_change(self, name, value):
        """Raises if `name` cannot take `value` after construction."""

    def _slot(self, name):
        return self._rate_names().index(name)

    def _thresholds(self):
        """The integer thresholds of the state's slots, in slot order."""
        return [_random.threshold(getattr(self, n)) for n in self._rate_names()]

    def _sync_thresholds(self):
        self.seed_generator.set_thresholds(self._thresholds())

    def save_own_variables(self, store):
        super().save_own_variables(store)
        store[_STATE_KEY] = self.seed_generator.state

    def load_own_variables(self, store):
        # `store.keys()`, not `in store`: the `.keras` (HDF5) store of
        # Keras 3.7 and 3.8 has no `__contains__`, and `in` falls back to
        # indexing it by int ("Accessing a group is done with bytes or str,
        # not int").
        if _STATE_KEY not in store.keys():
            super().load_own_variables(store)
            return
        own = {k: store[k] for k in store.keys() if k != _STATE_KEY}
        super().load_own_variables(own)
        state = np.asarray(store[_STATE_KEY]).astype("int32")
        expected = tuple(self.seed_generator.state.shape)
        if state.shape != expected:
            raise ValueError(
                f"Layer '{self.name}': the saved random state has shape "
                f"{state.shape}, expected {expected}."
            )
        self.seed_generator.state.assign(state)
        # The saved thresholds hold the rates in force when the model was
        # saved (e.g. set by a schedule); bring the Python rates in line.
        rates = dict(self.__dict__.get("_rates", {}))
        for slot, name in enumerate(self._rate_names()):
            saved = int(state[2 + slot])
            if saved != _random.threshold(rates[name]):
                rates[name] = saved / _random.ONE
        object.__setattr__(self, "_rates", rates)
        self._sync_thresholds()
