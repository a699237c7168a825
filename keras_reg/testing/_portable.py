"""Which layers draw backend-native random numbers, and what to use instead.

`suggestion(layer)` is the one source of the decision: None when the
layer's training-mode output can agree across backends, otherwise the
keras_reg layer to use instead (or `"none"` where keras_reg has none).
Only exactly Keras' classes are named (a subclass, keras_reg's cells
included, may draw its own way); keras_reg's own stochastic layers are
named too while `keras_reg.config.set_rng("native")` is in force.
"""

import keras

from keras_reg import _keras_private, _walk, config

# Keras' layers whose randomness comes from the backend's generator, and the
# keras_reg layer to use instead (`"none"` where keras_reg has none). A new
# portable layer is one entry here: its Keras class name, its suggestion.
# (`SpatialDropout2D/3D` and the recurrent layers below depend on the
# layer's arguments.)
_REPLACEMENTS = {
    "Dropout": "InvertedDropout",
    "SpatialDropout1D": "TimeSharedDropout",
    "GaussianNoise": "GaussianNoise",
    "GaussianDropout": "GaussianDropout",
    "AlphaDropout": "AlphaDropout",
}
# Keras' recurrent layers draw their (`dropout`, `recurrent_dropout`) masks
# from the backend too.
_RECURRENT = {
    "LSTM": "VariationalLSTM",
    "GRU": "VariationalGRU",
    "SimpleRNN": "VariationalSimpleRNN",
    "LSTMCell": "VariationalLSTMCell",
    "GRUCell": "VariationalGRUCell",
    "SimpleRNNCell": "VariationalSimpleRNNCell",
}
# Keras' random preprocessing (augmentation) layers.
_AUGMENTATION = ("AugMix", "CutMix", "MixUp", "RandAugment")


def _keras_class(layer, name):
    klass = getattr(keras.layers, name, None)
    return klass is not None and type(layer) is klass


def suggestion(layer):
    """None if `layer`'s randomness is the same on every backend, else the
    layer to use instead (`"none"` where keras_reg has no replacement)."""
    name = type(layer).__name__
    for keras_name, replacement in _REPLACEMENTS.items():
        if _keras_class(layer, keras_name):
            return replacement
    for keras_name in ("SpatialDropout2D", "SpatialDropout3D"):
        if _keras_class(layer, keras_name):
            spatial = 2 if keras_name.endswith("2D") else 3
            first = layer.data_format == "channels_first"
            axes = list(range(2 if first else 1, (2 if first else 1) + spatial))
            return f"InvertedDropout(shared_axes={axes})"
    for keras_name, replacement in _RECURRENT.items():
        if _keras_class(layer, keras_name):
            cell = getattr(layer, "cell", layer)
            rates = (getattr(cell, "dropout", 0), getattr(cell, "recurrent_dropout", 0))
            if any(rates):
                return replacement
            return None
    if _keras_private.is_applications_stochastic_depth(layer):
        return "DropPath"
    if name.startswith("Random") or name in _AUGMENTATION:
        if _keras_class(layer, name):
            return "none"
    from keras_reg.layers._stochastic import Stochastic

    if config.rng() == "native" and isinstance(layer, Stochastic):
        return f'{name} with keras_reg.config.set_rng("portable")'
    return None


def non_portable(model):
    """`{"layer", "class", "suggestion"}` for each layer of `model` (nested
    ones and cells included) whose randomness differs by backend."""
    found, named_cells = [], set()
    for layer in _walk.walk(model):
        if layer is model or id(layer) in named_cells:
            continue
        replacement = suggestion(layer)
        if replacement is not None:
            # Keras' LSTM is named, not its LSTMCell as well.
            named_cells.add(id(getattr(layer, "cell", None)))
            found.append(
                {
                    "layer": layer.name,
                    "class": type(layer).__name__,
                    "suggestion": replacement,
                }
            )
    return found
