"""The few things keras_reg needs from Keras that Keras does not export.

Checked against Keras 3.7.0, 3.8.0, 3.12.0 and 3.15.1 (pyproject declares
`keras>=3.7`; `make test-oldest` runs the suite on the oldest).
`tests/test_keras_private.py` fails if a Keras release changes any of them,
so a change shows up as one failing test, not as silently wrong masks.

- `DropoutRNNCell`: `keras.layers.RNN` asks a cell for its dropout masks
  before its loop, and resets them after, only when the cell is an instance
  of this (unexported) class. It is read from the bases of a public cell.
- `call_training()`: the `training` value of the layer call in progress.
  `keras.layers.RNN` asks a cell for its masks before the loop without
  saying whether the call trains; the value is in Keras' call context.
- `untrack(layer, generator)`: a Keras cell's constructor makes a
  `SeedGenerator` that a keras_reg cell replaces; left tracked, it would be
  an unused, unsaved variable of every model, with a new random value after
  each load.
- `tracked_layers(layer)`: the layers a layer holds as attributes (a
  custom layer's `self.drop = DropPath(...)`), which Keras tracks and
  lists with its private `_flatten_layers`.
- `backend_rnn_kernel(kind)`: the backend function Keras' own `LSTM` or
  `GRU` calls for its fused (cuDNN) path, `keras.src.backend.<backend>.rnn.
  lstm` or `.gru`. It raises `NotImplementedError` where it cannot run
  (no GPU, an unsupported argument).
- `call_inputs(layer)`: the symbolic tensors a layer was called on in the
  enclosing functional model (`keras_reg.testing` reads a nested model's
  layers through them). `layer.input` of a nested model is its own `Input`,
  not what the outer model feeds it; Keras keeps the call in its private
  `_inbound_nodes`.
- `stateful_batch_size(layer)`: the batch size a stateful `keras.layers.RNN`
  was built for. Keras 3.12 and 3.15 keep it in
  `layer._expected_batch_size`, which Keras 3.7 and 3.8 do not have; all
  keep the state variables in `layer.states`, whose batch dimension it is.
- `init_seed_generator(generator, name, seed)`: a `keras.random.
  SeedGenerator` subclass whose state is not Keras' `(2,)` seed skips
  `SeedGenerator.__init__`; this sets the other attributes that `__init__`
  sets (`name`, `backend`, `_initial_seed`).
- `force_training(classes)` and `shadow_call(layer)`: `mc_dropout()` runs
  Keras' dropout layers with `training=True` by wrapping the `call` of the
  classes that define it (the whole process) or by an instance `call` that
  shadows the class's (one layer). Both rely on `Layer.__call__` looking
  `self.call` up at every call.
- `predict_with(model, function, x, ...)`: `model.predict` with another
  cached predict function; Keras' `predict` reuses `model.predict_function`
  when it is set and traces one when it is `None`.

- `saved_input_specs(path)`: the inputs of a functional or sequential
  model saved in a `.keras` file, read from the file's `config.json`
  without loading the model (`keras_reg.testing` checks the caller's
  inputs before it starts a subprocess). The layout of that file is Keras'
  own: `config.input_layers` (a leaf `[layer, node, tensor]`, a list of
  leaves, or a dict of them for a model built on a dict of inputs), and
  each `InputLayer`'s `batch_shape` and `dtype`.

- `rematerialized(layer)`: the `keras.RematScope` mode under which Keras
  may recompute `layer`'s call in the backward pass, or None. Keras 3.9+
  records the scope active at construction in `layer._remat_mode` (a
  `RematMode` with `mode` and `layer_names`); "activations" recomputes
  only a layer's `activation`, "list_of_layers" only the layers named.

- `is_applications_stochastic_depth(layer)`: whether a layer is the
  `StochasticDepth` that `keras.applications`' ConvNeXt defines in its own
  module and does not export (`keras.src.applications.convnext` in every
  version checked). `keras_reg.models.portable` replaces it with
  `DropPath`, and `keras_reg.testing` names it as non-portable.

Not a function here, but held the same way: `VariationalRNN.call`
(`layers/rnn/_sequence.py`) repeats the steps of `keras.layers.RNN.call`
except the cell's dropout masks; a test lists every attribute Keras' call
uses and fails when a Keras release adds a step.
"""

import functools
import json
import zipfile

import keras
from keras import tree


def _dropout_rnn_cell():
    for klass in keras.layers.LSTMCell.__mro__:
        if klass.__name__ == "DropoutRNNCell":
            return klass
    bases = [klass.__name__ for klass in keras.layers.LSTMCell.__mro__]
    raise ImportError(
        "keras_reg needs Keras' `DropoutRNNCell`, the base class through "
        "which `keras.layers.RNN` asks a cell for its dropout masks, and "
        f"Keras {keras.__version__} has none: `keras.layers.LSTMCell` has "
        f"the bases {bases}. Install a Keras version that keras_reg supports "
        "(see its `pyproject.toml`)."
    )


DropoutRNNCell = _dropout_rnn_cell()


def call_training():
    """`training` of the Keras layer call in progress, or None outside one
    (None too inside one that leaves it unresolved: inference)."""
    from keras.src.backend.common import global_state

    context = global_state.get_global_attribute("current_call_ctx")
    if context is None:
        return None
    return getattr(context, "training", None)


def call_in_progress():
    """Whether a Keras layer call (`Layer.__call__`) is in progress: not
    where a layer's `call` runs directly, as `stateless_call` runs it."""
    from keras.src.backend.common import global_state

    return global_state.get_global_attribute("current_call_ctx") is not None


def rematerialized(layer):
    """The `keras.RematScope` mode that may recompute `layer`'s call in the
    backward pass ("full", "larger_than", "list_of_layers"), or None."""
    remat = getattr(layer, "_remat_mode", None)
    mode = getattr(remat, "mode", None)
    if mode in (None, "activations"):
        return None
    if mode == "list_of_layers" and layer.name not in remat.layer_names:
        return None
    return mode


def untrack(layer, generator):
    """Removes `generator` from the seed generators `layer` tracks."""
    generators = getattr(layer, "_seed_generators", None)
    if isinstance(generators, list):
        generators[:] = [g for g in generators if g is not generator]


def backend_rnn_kernel(kind):
    """Keras' fused `lstm` or `gru` function of the backend in use."""
    import importlib

    module = importlib.import_module(f"keras.src.backend.{keras.backend.backend()}.rnn")
    return getattr(module, kind)


def tracked_layers(layer):
    """The layers Keras tracks as direct children of `layer`."""
    flatten = getattr(layer, "_flatten_layers", None)
    if flatten is None:
        return []
    return list(flatten(include_self=False, recursive=False))


def call_inputs(layer):
    """The input tensors of `layer`'s last call on symbolic tensors, or None."""
    nodes = getattr(layer, "_inbound_nodes", None)
    if not nodes:
        return None
    return list(nodes[-1].input_tensors)


def stateful_batch_size(layer):
    """The batch size of a stateful `keras.layers.RNN`, or None unbuilt."""
    states = getattr(layer, "states", None)
    if states is None:
        return None
    return tree.flatten(states)[0].shape[0]


def init_seed_generator(generator, name, seed):
    """What `SeedGenerator.__init__` sets besides `state`, which the
    subclass creates itself."""
    generator.name = name
    generator.backend = keras.backend
    generator._initial_seed = seed


def _call_owners(classes):
    """The classes whose own `call` the instances of `classes` run."""
    owners = []
    for cls in classes:
        owner = next(c for c in cls.__mro__ if "call" in vars(c))
        if owner not in owners:
            owners.append(owner)
    return owners


def _training_call(call):
    @functools.wraps(call)
    def sampled(self, inputs, training=False):
        return call(self, inputs, training=True)

    return sampled


def force_training(classes):
    """Makes every call of every instance of `classes` run with
    `training=True`; returns the function that undoes it."""
    originals = {owner: vars(owner)["call"] for owner in _call_owners(classes)}
    for owner, call in originals.items():
        owner.call = _training_call(call)

    def undo():
        for owner, call in originals.items():
            owner.call = call

    return undo


_NO_CALL = object()


def shadow_call(layer):
    """Makes the calls of `layer` alone run with `training=True`; returns
    the function that undoes it."""
    own = layer.__dict__.get("call", _NO_CALL)
    call = layer.call

    @functools.wraps(call)
    def sampled(*args, **kwargs):
        kwargs["training"] = True
        return call(*args, **kwargs)

    # Past Keras' attribute tracker: a function is not layer state.
    object.__setattr__(layer, "call", sampled)

    def undo():
        if own is _NO_CALL:
            del layer.__dict__["call"]
        else:
            object.__setattr__(layer, "call", own)

    return undo


def predict_with(model, function, x, **kwargs):
    """`model.predict(x, **kwargs)` with `function` as the cached predict
    function (`None`: one traced by this call). Returns the predictions and
    the function used; the model keeps its own."""
    plain = model.predict_function
    model.predict_function = function
    try:
        result = model.predict(x, **kwargs)
        return result, model.predict_function
    finally:
        model.predict_function = plain


def _input_leaves(spec):
    """`[(key, layer name)]` of a saved `input_layers` structure."""
    if isinstance(spec, list) and len(spec) == 3 and isinstance(spec[0], str):
        return [(spec[0], spec[0])]
    if isinstance(spec, dict):
        leaves = []
        for key, value in spec.items():
            leaves.extend((str(key), name) for _, name in _input_leaves(value))
        return leaves
    if isinstance(spec, (list, tuple)):
        leaves = []
        for value in spec:
            leaves.extend(_input_leaves(value))
        return leaves
    return []


def saved_input_specs(path):
    """`(structure, [(name, shape, dtype)])` of the inputs of the model
    saved at `path`: `structure` is `"dict"` (names are the dict's keys),
    `"list"` or `"single"` (names are the input layers' names); `(None,
    None)` for a subclassed model. Raises `ValueError` when `path` is not a
    `.keras` file."""
    try:
        with zipfile.ZipFile(path) as archive:
            saved = json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, KeyError, ValueError) as error:
        raise ValueError(f"{path!r} is not a `.keras` file ({error})") from None
    config = saved.get("config") or {}
    layers = {
        layer.get("name", (layer.get("config") or {}).get("name")): layer
        for layer in config.get("layers") or []
        if isinstance(layer, dict)
    }
    if saved.get("class_name") == "Sequential":
        first = (config.get("layers") or [{}])[0]
        if first.get("class_name") != "InputLayer":
            return None, None
        name = first["config"].get("name", "input")
        structure, leaves, layers = "single", [(name, name)], {name: first}
    elif "input_layers" in config:
        spec = config["input_layers"]
        structure = "dict" if isinstance(spec, dict) else "list"
        if isinstance(spec, list) and len(spec) == 3 and isinstance(spec[0], str):
            structure = "single"
        leaves = _input_leaves(spec)
    else:
        return None, None
    found = []
    for key, name in leaves:
        layer_config = (layers.get(name) or {}).get("config", {})
        shape = layer_config.get("batch_shape")
        dtype = layer_config.get("dtype")
        if isinstance(dtype, dict):
            dtype = (dtype.get("config") or {}).get("name")
        found.append((key, None if shape is None else tuple(shape), dtype))
    return structure, found


def is_applications_stochastic_depth(layer):
    """Whether `layer` is keras.applications' (ConvNeXt's) `StochasticDepth`,
    a class that Keras defines in its applications package and does not
    export."""
    klass = type(layer)
    return klass.__name__ == "StochasticDepth" and klass.__module__.startswith(
        "keras.src.applications"
    )
