"""The few things keras_reg needs from Keras that Keras does not export.

Checked against Keras 3.15.1. `tests/test_keras_private.py` fails if a
Keras release changes any of them, so a change shows up as one failing test,
not as silently wrong masks.

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
"""

import keras

DropoutRNNCell = next(
    klass
    for klass in keras.layers.LSTMCell.__mro__
    if klass.__name__ == "DropoutRNNCell"
)


def call_training():
    """`training` of the Keras layer call in progress, or None outside one."""
    from keras.src.backend.common import global_state

    context = global_state.get_global_attribute("current_call_ctx")
    if context is None:
        return None
    return getattr(context, "training", None)


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
