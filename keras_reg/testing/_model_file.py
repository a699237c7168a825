"""The model argument: a `.keras` file to run, and its inputs' specs."""

import os

import keras

from keras_reg import _keras_private


def path_of(model, directory):
    """The `.keras` file of `model` (a `keras.Model` is saved into
    `directory`)."""
    if isinstance(model, keras.Model):
        path = os.path.join(directory, "model.keras")
        model.save(path)
        return path
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(
            "Invalid type for argument `model`. Expected a keras.Model or "
            f"the path of a .keras file. Received: {type(model).__name__}"
        )
    path = os.path.abspath(os.fspath(model))
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such model file: {os.fspath(model)!r}")
    if not path.endswith(".keras"):
        raise ValueError(
            "Invalid value received for argument `model`: expected a "
            f"`.keras` file. Received: model={os.fspath(model)!r}"
        )
    return path


def input_specs(path):
    """`(structure, [(name, shape, dtype)])` of a saved functional or
    sequential model's inputs (`"dict"`, `"list"` or `"single"`); `(None,
    None)` for a subclassed model."""
    try:
        return _keras_private.saved_input_specs(path)
    except ValueError as error:
        raise ValueError(
            f"Invalid value received for argument `model`: {error}."
        ) from None
