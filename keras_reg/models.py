"""Rewrite a model you did not write: `portable` and `regularize`.

Both functions rebuild a functional or Sequential model with
`keras.models.clone_model(model, clone_function=..., call_function=...)`:
`clone_function` makes each new layer (the same class from its config, or
the keras_reg replacement), `call_function` calls it on the new tensors and
inserts layers before or after it. Nested models are rewritten by the same
functions, recursively; every weight is then copied from the original
layer to its clone, so inference is unchanged.

Residual connections (`drop_path`). While the new graph is built,
`call_function` records, for every tensor it produced, its depth (the
longest chain of calls from the model's inputs) and its ancestors. An
`Add` layer (or a `+` operation node) of two tensors is a residual
connection when one input is computed from the other, or when both are
computed from one tensor `s` (the block input) and one reaches the `Add` by
a strictly shorter chain from `s` than the other. The input computed from
the other one, or by the longer chain, is the residual branch; the other is
the shortcut: the block input itself or its projection (a 1x1 convolution
and batch normalization, a pooling). This holds whatever order the `Add`
lists them in (ResNet `[shortcut, x]`, EfficientNet `[x, inputs]`), and an
operation with one tensor, such as hard-sigmoid's `x + 3`, is never one.
"""

import math
import warnings

import keras
import numpy as np

from keras_reg import _keras_private
from keras_reg._checks import check_rate, check_seed
from keras_reg.layers import (
    AlphaDropout,
    DropBlock1D,
    DropBlock2D,
    DropBlock3D,
    DropPath,
    GaussianDropout,
    GaussianNoise,
    InvertedDropout,
    TimeSharedDropout,
    VariationalGRU,
    VariationalGRUCell,
    VariationalLSTM,
    VariationalLSTMCell,
    VariationalSimpleRNN,
    VariationalSimpleRNNCell,
    drop_path_rates,
)
from keras_reg.layers._stochastic import Stochastic

__all__ = ["portable", "regularize"]

# The regularization arguments that `regularize(recurrent=...)` passes on.
RECURRENT_ARGUMENTS = (
    "dropout",
    "recurrent_dropout",
    "output_dropout",
    "weight_dropout",
    "zoneout",
    "per_gate_masks",
    "share_input_mask",
    "recurrent_dropout_mode",
    "seed",
)

_RECURRENT = {
    "LSTM": VariationalLSTM,
    "GRU": VariationalGRU,
    "SimpleRNN": VariationalSimpleRNN,
    "LSTMCell": VariationalLSTMCell,
    "GRUCell": VariationalGRUCell,
    "SimpleRNNCell": VariationalSimpleRNNCell,
}
_CONVOLUTIONS = (
    "Conv1D",
    "Conv2D",
    "Conv3D",
    "DepthwiseConv1D",
    "DepthwiseConv2D",
    "SeparableConv1D",
    "SeparableConv2D",
)
_DROPBLOCKS = {1: DropBlock1D, 2: DropBlock2D, 3: DropBlock3D}
_AUGMENTATION = ("AugMix", "CutMix", "MixUp", "RandAugment")


def _is_keras(layer, name):
    """Whether `layer` is exactly Keras' class `name` (not a subclass)."""
    klass = getattr(keras.layers, name, None)
    return klass is not None and type(layer) is klass


def _base_config(layer):
    config = layer.get_config()
    return {k: config[k] for k in ("name", "trainable", "dtype") if k in config}


# --- What `portable` replaces ---------------------------------------------------


def _portable_layer(layer, recurrent=None, new_seed=None):
    """The keras_reg layer that replaces `layer`, or None to keep it.

    `recurrent`: regularization arguments that turn every Keras recurrent
    layer or cell into the Variational one (`regularize`); without it, only
    those that draw random masks (a rate above 0) are replaced.
    `new_seed`: a function giving a seed to each recurrent layer replaced
    with `recurrent` that has no seed of its own.
    """
    base = _base_config(layer)
    config = layer.get_config()
    if _is_keras(layer, "Dropout"):
        return InvertedDropout(
            config["rate"], noise_shape=config.get("noise_shape"),
            seed=config.get("seed"), **base,
        )  # fmt: skip
    if _is_keras(layer, "SpatialDropout1D"):
        return TimeSharedDropout(config["rate"], seed=config.get("seed"), **base)
    for name, spatial in (("SpatialDropout2D", 2), ("SpatialDropout3D", 3)):
        if _is_keras(layer, name):
            first = layer.data_format == "channels_first"
            start = 2 if first else 1
            axes = list(range(start, start + spatial))
            return InvertedDropout(
                config["rate"], shared_axes=axes, seed=config.get("seed"), **base
            )
    if _is_keras(layer, "GaussianNoise"):
        return GaussianNoise(config["stddev"], seed=config.get("seed"), **base)
    if _is_keras(layer, "GaussianDropout"):
        return GaussianDropout(config["rate"], seed=config.get("seed"), **base)
    if _is_keras(layer, "AlphaDropout"):
        return AlphaDropout(
            config["rate"], noise_shape=config.get("noise_shape"),
            seed=config.get("seed"), **base,
        )  # fmt: skip
    if _keras_private.is_applications_stochastic_depth(layer):
        return DropPath(config["drop_path_rate"], **base)
    for name, klass in _RECURRENT.items():
        if _is_keras(layer, name):
            rates = (config.get("dropout", 0), config.get("recurrent_dropout", 0))
            if recurrent is None and not any(rates):
                return None
            config = {**config, **(recurrent or {})}
            if recurrent is not None and new_seed and config.get("seed") is None:
                config["seed"] = new_seed()
            return klass.from_config(config)
    # Wrappers and `keras.layers.RNN`: rebuild around replaced children.
    changed = False
    for key in ("layer", "backward_layer", "cell"):
        child = config.get(key)
        if not isinstance(child, dict) or "class_name" not in child:
            continue
        new_child = _portable_layer(
            keras.saving.deserialize_keras_object(child), recurrent, new_seed
        )
        if new_child is not None:
            config[key] = keras.saving.serialize_keras_object(new_child)
            changed = True
    if changed:
        return type(layer).from_config(config)
    return None


def _unreplaceable(layer):
    """A reason `layer` draws backend-native random numbers that keras_reg
    cannot replace, or None."""
    name = type(layer).__name__
    if isinstance(layer, Stochastic):
        return None
    if name.startswith("Random") or name in _AUGMENTATION:
        if _is_keras(layer, name):
            return "a random preprocessing layer"
    if name.startswith("ConvLSTM") and _is_keras(layer, name):
        config = layer.get_config()
        if config.get("dropout") or config.get("recurrent_dropout"):
            return "a ConvLSTM with dropout"
        return None
    if not type(layer).__module__.startswith("keras.") and any(
        isinstance(value, keras.random.SeedGenerator) for value in vars(layer).values()
    ):
        return "a custom layer with a keras.random.SeedGenerator"
    return None


# --- Checks -----------------------------------------------------------------------


def _check_model(model, function):
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"`{function}` expects a keras.Model. Received: model={model!r}"
        )
    if isinstance(model, keras.Sequential):
        if not model.built:
            raise ValueError(
                f"`{function}` needs a built Sequential model (give it an "
                "`Input` or call it once): its weights are copied. Received "
                f"an unbuilt model '{model.name}'."
            )
        return
    if not _is_graph(model):
        raise ValueError(
            f"`{function}` cannot rebuild the subclassed model '{model.name}' "
            f"(class {type(model).__name__}): its layers are connected by "
            "Python code in `call`, which keras.models.clone_model cannot "
            "see. Build it as a functional or Sequential model, or add the "
            "keras_reg layers in its `call`."
        )


def _check_block_size(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value >= 1:
        return value
    if (
        isinstance(value, (tuple, list))
        and value
        and all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value
        )
    ):
        return tuple(value)
    return None


def _check_dropblock(value):
    if value is None:
        return None
    expected = "a (rate, block_size) pair: a float in [0, 1) and a positive int"
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(
            f"Invalid value received for argument `dropblock`. Expected "
            f"{expected}. Received: dropblock={value!r}"
        )
    try:
        rate = check_rate("dropblock", value[0])
    except ValueError:
        raise ValueError(
            f"Invalid value received for argument `dropblock`. Expected "
            f"{expected}. Received: dropblock={value!r}"
        ) from None
    block_size = _check_block_size(value[1])
    if block_size is None:
        raise ValueError(
            f"Invalid value received for argument `dropblock`. Expected "
            f"{expected} (or a tuple of them). Received: dropblock={value!r}"
        )
    return rate, block_size


def _check_recurrent(value):
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError(
            "Invalid value received for argument `recurrent`. Expected a dict "
            f"of regularization arguments. Received: recurrent={value!r}"
        )
    unknown = sorted(set(value) - set(RECURRENT_ARGUMENTS))
    if unknown:
        raise ValueError(
            "Invalid value received for argument `recurrent`. Expected keys "
            f"among {', '.join(RECURRENT_ARGUMENTS)}. Received: "
            f"recurrent={value!r} (unknown: {', '.join(map(str, unknown))})"
        )
    return dict(value)


def _check_verbose(value):
    if value not in (0, 1) or isinstance(value, float):
        raise ValueError(
            "Invalid value received for argument `verbose`. Expected 0 or 1. "
            f"Received: verbose={value!r}"
        )
    return value


def _derived_seed(seed, index):
    """The seed of the `index`-th inserted layer, derived from `seed`."""
    state = np.random.SeedSequence([seed, index]).generate_state(1)[0]
    return int(state % ((1 << 31) - 1)) + 1


# --- The rewrite -----------------------------------------------------------------


class _Rewrite:
    """One rewrite of a model: the clone and call functions and their record."""

    def __init__(
        self,
        model,
        replace=True,
        dropout=None,
        drop_path=None,
        dropblock=None,
        recurrent=None,
        seed=None,
    ):
        self.replace = replace
        self.dropout = dropout
        self.drop_path = drop_path
        self.dropblock = dropblock
        self.recurrent = recurrent
        self.seed = seed
        self.pairs = []  # (original, clone) of every non-model layer
        self.origin = {}  # id(clone) -> original
        self.lines = []  # what was replaced or inserted, in order
        self.drop_paths = []  # (DropPath, its line's index) in depth order
        self.inserted = 0
        self.names = {layer.name for layer in _all_layers(model)}
        self.provenance = {}  # id(tensor) -> (tensor, depth, ancestors)
        self.heads = _head_layers(model) if dropout is not None else set()
        self.blocks = _dropblock_sites(model, dropblock) if dropblock else {}

    # Names and seeds of inserted layers.
    def _name(self, base):
        name, count = base, 1
        while name in self.names:
            count += 1
            name = f"{base}_{count}"
        self.names.add(name)
        return name

    def _seed(self):
        self.inserted += 1
        if self.seed is None:
            return None
        return _derived_seed(self.seed, self.inserted)

    # The clone function.
    def clone_layer(self, layer):
        if isinstance(layer, keras.Model) and _is_graph(layer):
            return self.clone_model(layer)
        if not isinstance(layer, keras.layers.Layer):
            # An operation node (`x + 3`): no weights, no state.
            return type(layer).from_config(layer.get_config())
        new = None
        if self.replace:
            new_seed = self._seed if self.seed is not None else None
            new = _portable_layer(layer, self.recurrent, new_seed)
        if new is not None:
            self.lines.append(
                f"replaced {layer.name} ({type(layer).__name__}) with "
                f"{type(new).__name__}"
            )
        else:
            new = type(layer).from_config(layer.get_config())
        self.pairs.append((layer, new))
        self.origin[id(new)] = layer
        return new

    def clone_model(self, model):
        if isinstance(model, keras.Sequential):
            return self._clone_sequential(model)
        _check_model(model, "clone")
        return keras.models.clone_model(
            model, clone_function=self.clone_layer, call_function=self.call
        )

    def _clone_sequential(self, model):
        if not (self.heads or self.blocks):
            return keras.models.clone_model(model, clone_function=self.clone_layer)
        # Layers are inserted: a new list, with `clone_layer` for each layer.
        layers = []
        for layer in model.layers:
            new = self.clone_layer(layer)
            layers.extend(self._before(layer))
            layers.append(new)
            layers.extend(self._after(layer))
        spec = model.inputs[0]
        inputs = keras.Input(batch_shape=spec.shape, dtype=spec.dtype)
        clone = keras.Sequential(
            [inputs, *layers], name=model.name, trainable=model.trainable
        )
        if model.compiled:
            clone.compile_from_config(model.get_compile_config())
        return clone

    def _before(self, original):
        if id(original) not in self.heads:
            return []
        name = self._name(f"{original.name}_dropout")
        layer = InvertedDropout(
            self.dropout, seed=self._seed(), name=name, dtype=_policy(original)
        )
        self.lines.append(
            f"inserted {name} (InvertedDropout, rate={self.dropout:g}) before "
            f"{original.name}"
        )
        return [layer]

    def _after(self, original):
        site = self.blocks.get(id(original))
        if site is None:
            return []
        klass, block_size, data_format = site
        name = self._name(f"{original.name}_dropblock")
        rate = self.dropblock[0]
        layer = klass(
            rate,
            block_size,
            data_format=data_format,
            seed=self._seed(),
            name=name,
            dtype=_policy(original),
        )
        self.lines.append(
            f"inserted {name} ({klass.__name__}, rate={rate:g}, "
            f"block_size={block_size}) after {original.name}"
        )
        return [layer]

    # The call function.
    def call(self, layer, *args, **kwargs):
        original = self.origin.get(id(layer), layer)
        if id(original) in self.heads and args:
            (drop,) = self._before(original)
            args = (self._apply(drop, args[0]), *args[1:])
        if self.drop_path is not None:
            args = self._residual(layer, original, args)
        outputs = layer(*args, **kwargs)
        self._record(keras.tree.flatten((args, kwargs)), outputs, original.name)
        for inserted in self._after(original):
            outputs = self._apply(inserted, outputs)
        return outputs

    def _apply(self, layer, tensor):
        out = layer(tensor)
        self._record([tensor], out, layer.name)
        return out

    def _record(self, inputs, outputs, producer):
        inputs = [x for x in inputs if isinstance(x, keras.KerasTensor)]
        depth, ancestors = 0, set()
        for x in inputs:
            entry = self.provenance.get(id(x))
            if entry is None:
                ancestors.add(id(x))
                depth = max(depth, 1)
                continue
            ancestors.add(id(x))
            ancestors |= entry[2]
            depth = max(depth, entry[1] + 1)
        ancestors = frozenset(ancestors)
        for y in keras.tree.flatten(outputs):
            if isinstance(y, keras.KerasTensor):
                self.provenance[id(y)] = (y, depth, ancestors, producer)

    def _depth(self, key):
        entry = self.provenance.get(key)
        return 0 if entry is None else entry[1]

    def _producer(self, x):
        entry = self.provenance.get(id(x))
        return getattr(x, "name", "?") if entry is None else entry[3]

    def _ancestors(self, x):
        entry = self.provenance.get(id(x))
        return frozenset() if entry is None else entry[2]

    def _branch(self, a, b):
        """0 or 1: which of `a`, `b` is the residual branch; None if the sum
        is not a residual connection."""
        anc_a, anc_b = self._ancestors(a), self._ancestors(b)
        if id(a) in anc_b:
            return 1
        if id(b) in anc_a:
            return 0
        common = anc_a & anc_b
        if not common:
            return None
        # The block input: the deepest common ancestor. The branch reaches
        # the sum by the longer chain from it.
        start = max(self._depth(key) for key in common)
        length_a = self._depth(id(a)) - start
        length_b = self._depth(id(b)) - start
        if length_a == length_b:
            return None
        return 0 if length_a > length_b else 1

    def _residual(self, layer, original, args):
        if isinstance(layer, keras.layers.Add):
            if not (args and isinstance(args[0], (list, tuple)) and len(args[0]) == 2):
                return args
            pair = list(args[0])
        elif (
            not isinstance(layer, keras.layers.Layer)
            and type(layer).__name__ == "Add"
            and len(args) == 2
        ):
            pair = list(args)
        else:
            return args
        a, b = pair
        if not (isinstance(a, keras.KerasTensor) and isinstance(b, keras.KerasTensor)):
            return args
        if tuple(a.shape) != tuple(b.shape):
            return args
        branch = self._branch(a, b)
        if branch is None:
            return args
        name = self._name(f"{original.name}_drop_path")
        drop = DropPath(0.0, seed=self._seed(), name=name, dtype=_policy(original))
        self.drop_paths.append((drop, len(self.lines)))
        shortcut = pair[1 - branch]
        self.lines.append(
            (
                name,
                original.name,
                self._producer(pair[branch]),
                self._producer(shortcut),
            )
        )
        pair[branch] = self._apply(drop, pair[branch])
        if isinstance(layer, keras.layers.Add):
            return (pair, *args[1:])
        return tuple(pair)

    def finish(self, clone, verbose):
        """Rates of the DropPaths, weights, and the printed lines."""
        if self.drop_paths:
            rates = drop_path_rates(self.drop_path, len(self.drop_paths))
            for (drop, line), rate in zip(self.drop_paths, rates, strict=True):
                drop.rate = rate
                name, add, branch, shortcut = self.lines[line]
                self.lines[line] = (
                    f"inserted {name} (DropPath, rate={rate:.4g}) on the branch "
                    f"{branch} of {add} (shortcut: {shortcut})"
                )
        for original, new in self.pairs:
            weights = original.get_weights()
            if weights:
                new.set_weights(weights)
        if verbose:
            for line in self.lines:
                print(line)
        return clone


def _policy(layer):
    """The dtype policy of the layer an inserted layer sits beside (mixed
    precision models keep theirs), or None (an operation node)."""
    return getattr(layer, "dtype_policy", None)


def _is_graph(model):
    """Whether `model` is a Sequential or functional model (not subclassed)."""
    if isinstance(model, keras.Sequential):
        return True
    return bool(getattr(model, "inputs", None) and getattr(model, "outputs", None))


def _all_layers(model):
    from keras_reg import _walk

    return [layer for layer in _walk.walk(model) if isinstance(layer, keras.Layer)]


def _outputs_of(layer):
    try:
        output = layer.output
    except (AttributeError, ValueError):
        return []
    return [x for x in keras.tree.flatten(output) if isinstance(x, keras.KerasTensor)]


def _head_layers(model):
    """The `Dense` layers (ids) whose outputs are `model`'s outputs, in
    nested models too."""
    heads = set()
    outputs = {id(x) for x in keras.tree.flatten(model.outputs)}
    for layer in model.layers:
        if not any(id(y) in outputs for y in _outputs_of(layer)):
            continue
        if isinstance(layer, keras.Model):
            heads |= _head_layers(layer)
        elif isinstance(layer, keras.layers.Dense):
            heads.add(id(layer))
    return heads


def _dropblock_sites(model, dropblock):
    """`{id(layer): (DropBlock class, block size, data format)}`: where a
    DropBlock goes after a layer.

    The convolutions whose outputs have the two smallest spatial sizes of
    the model (maps larger than 1 in some axis: a 1x1 map is a head's or
    the tail of a small input, where DropBlock would be plain dropout);
    the DropBlock goes after the BatchNormalization that normalizes the
    convolution's output, or after the convolution itself.
    """
    layers = _all_layers(model)
    convs = []
    for layer in layers:
        if type(layer).__name__ not in _CONVOLUTIONS:
            continue
        if not isinstance(layer, getattr(keras.layers, type(layer).__name__)):
            continue
        outputs = _outputs_of(layer)
        if len(outputs) != 1:
            continue
        shape = tuple(outputs[0].shape)
        first = getattr(layer, "data_format", "channels_last") == "channels_first"
        spatial = shape[2:] if first else shape[1:-1]
        if any(s is None for s in spatial):
            raise ValueError(
                "Invalid value received for argument `dropblock`: the model "
                f"'{model.name}' has feature maps of unknown size (layer "
                f"'{layer.name}': {shape}). DropBlock goes in the blocks of "
                "the two smallest resolutions: build the model with a fixed "
                "input shape."
            )
        convs.append((layer, outputs[0], spatial, first))
    sizes = sorted(
        {spatial for _, _, spatial, _ in convs if max(spatial) > 1},
        key=lambda s: (math.prod(s), s),
    )
    chosen = set(sizes[:2])
    # Which BatchNormalization normalizes which convolution's output.
    normalizer = {}
    for layer in layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            try:
                inputs = layer.input
            except (AttributeError, ValueError):
                continue
            normalizer[id(inputs)] = layer
    rate, block_size = dropblock
    sites = {}
    for layer, output, spatial, first in convs:
        if spatial not in chosen:
            continue
        sizes = block_size if isinstance(block_size, tuple) else (block_size,)
        if len(sizes) == 1:
            sizes = sizes * len(spatial)
        if len(sizes) != len(spatial):
            raise ValueError(
                "Invalid value received for argument `dropblock`. Expected a "
                f"block_size of {len(spatial)} entries for the "
                f"{len(spatial)}-D feature maps. Received: "
                f"dropblock={dropblock!r}"
            )
        # Clamped to the map, as the reference DropBlock does.
        clamped = tuple(min(b, s) for b, s in zip(sizes, spatial, strict=True))
        if len(clamped) == 1:
            clamped = clamped[0]
        target = normalizer.get(id(output), layer)
        data_format = "channels_first" if first else "channels_last"
        sites[id(target)] = (_DROPBLOCKS[len(spatial)], clamped, data_format)
    return sites


def _rewrite(model, function, verbose, **options):
    _check_model(model, function)
    rewrite = _Rewrite(model, **options)
    clone = rewrite.clone_model(model)
    return rewrite, rewrite.finish(clone, verbose)


# --- Public functions ---------------------------------------------------------------


def portable(model, strict=False, verbose=0):
    """A copy of `model` whose random layers are keras_reg's portable ones.

    Every layer whose randomness comes from the backend's generator and
    that keras_reg can replace becomes the keras_reg layer with the same
    behaviour, configuration (rates, `noise_shape`, seed, every recurrent
    argument) and weights, inside nested models, `Bidirectional` and
    `TimeDistributed` too:

    - `Dropout` -> `InvertedDropout`, with its `noise_shape`: EfficientNet's
      drop connect, `noise_shape=(None, 1, 1, 1)`, keeps dropping whole
      samples;
    - `SpatialDropout1D` -> `TimeSharedDropout`; `SpatialDropout2D/3D` ->
      `InvertedDropout(shared_axes=<the spatial axes>)`;
    - `GaussianNoise`, `GaussianDropout`, `AlphaDropout` -> the keras_reg
      layers of the same names;
    - `LSTM`, `GRU`, `SimpleRNN` (and their cells) with dropout ->
      `VariationalLSTM`, `VariationalGRU`, `VariationalSimpleRNN` (cells);
    - keras.applications' `StochasticDepth` (ConvNeXt) -> `DropPath`.

    The result is a new model (the given one and its weights are left
    untouched), built with `keras.models.clone_model`; every weight is
    copied, so inference is unchanged. Layers it cannot replace (random
    preprocessing layers, `ConvLSTM*D` with dropout, custom layers that
    draw from a `keras.random.SeedGenerator`) stay, and a warning names
    them.

    Args:
        model: a functional or Sequential `keras.Model` (a subclassed model
            raises `ValueError`: its graph is Python code).
        strict: bool; `True` raises `ValueError` naming the layers it cannot
            replace instead of warning. Defaults to `False`.
        verbose: 0 or 1; 1 prints one line per layer replaced. Defaults
            to 0.

    Returns:
        The new model.

    Example:

    >>> inputs = keras.Input((8,))
    >>> x = keras.layers.Dropout(0.5)(keras.layers.Dense(16)(inputs))
    >>> model = keras.Model(inputs, keras.layers.Dense(1)(x))
    >>> new = keras_reg.models.portable(model)  # Dropout -> InvertedDropout
    """
    if not isinstance(strict, bool):
        raise ValueError(
            "Invalid value received for argument `strict`. Expected a bool. "
            f"Received: strict={strict!r}"
        )
    verbose = _check_verbose(verbose)
    _, clone = _rewrite(model, "portable", verbose, replace=True)
    _report_unreplaced(clone, strict)
    return clone


def _report_unreplaced(model, strict):
    left = [
        f"{layer.name} ({type(layer).__name__}: {reason})"
        for layer in _all_layers(model)
        if layer is not model and (reason := _unreplaceable(layer)) is not None
    ]
    if not left:
        return
    message = (
        "keras_reg cannot replace these layers, whose random numbers differ "
        "by backend: " + ", ".join(left)
    )
    if strict:
        raise ValueError(message)
    warnings.warn(message, UserWarning, stacklevel=3)


def regularize(
    model,
    dropout=None,
    drop_path=None,
    dropblock=None,
    recurrent=None,
    seed=None,
    verbose=0,
):
    """A copy of `model` with the regularization the literature prescribes.

    For a model you did not write (a `keras.applications` model, a keras-hub
    backbone, a `.keras` file), pretrained or not. The result is a new
    model built with `keras.models.clone_model`: the given model and its
    weights are left untouched, every weight is copied, and inference is
    unchanged (the inserted layers are the identity there). Keras' random
    layers are also made portable, as by `keras_reg.models.portable`.

    - `dropout`: an `InvertedDropout(dropout)` in front of every `Dense`
      layer whose output is a model output (the classifier head).
    - `drop_path`: a `DropPath` on the residual branch of every residual
      connection, never on the shortcut, with rates rising linearly with
      depth from 0 to `drop_path` (`keras_reg.layers.drop_path_rates`). A
      residual connection is an `Add` layer (or `+` operation) of two
      tensors where one input is computed from the other, or both from one
      block input by chains of different lengths: the longer chain is the
      branch, the shorter (the identity, or a 1x1 projection) the shortcut,
      whatever the order of the `Add`'s inputs. A model with none raises
      `ValueError`.
    - `dropblock=(rate, block_size)`: a `DropBlock1D/2D/3D` (by the
      convolution's rank) after every convolution (after its
      `BatchNormalization`, where one normalizes it) whose output has one of
      the two smallest spatial sizes of the model, maps of 1x1 left out
      (Ghiasi et al. 2018: groups 3 and 4 of a ResNet). `block_size` is
      clamped to the map. Needs fixed input sizes.
    - `recurrent`: Keras' `LSTM`, `GRU`, `SimpleRNN` (also in
      `Bidirectional`, `TimeDistributed`, `RNN(cell)`) become
      `VariationalLSTM`, ... with these arguments (`dropout`,
      `recurrent_dropout`, `output_dropout`, `weight_dropout`, `zoneout`,
      `per_gate_masks`, `share_input_mask`, `recurrent_dropout_mode`,
      `seed`), weights kept.

    Args:
        model: a functional or Sequential `keras.Model`.
        dropout: optional float in [0, 1). Defaults to `None` (none added).
        drop_path: optional float in [0, 1), the rate of the deepest block.
            Defaults to `None`.
        dropblock: optional `(rate, block_size)`: `rate` in [0, 1), the
            fraction of units dropped, `block_size` a positive int or a
            tuple per spatial axis. Defaults to `None`.
        recurrent: optional dict of recurrent regularization arguments.
            Defaults to `None`.
        seed: optional int: every inserted layer (and every replaced
            recurrent layer without a seed) gets its own seed derived from
            it. Defaults to `None` (each draws its own).
        verbose: 0 or 1; 1 prints one line per layer inserted or replaced.
            Defaults to 0.

    Returns:
        The new model. It trains, saves and reloads like any model, and
        `keras_reg.inference.mc_predict` samples its inserted layers.

    Example:

    >>> base = keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3))
    >>> model = keras_reg.models.regularize(
    ...     base, dropout=0.2, drop_path=0.1, dropblock=(0.1, 3), seed=1
    ... )

    Reference:
        Huang et al., 2016, "Deep Networks with Stochastic Depth"; Ghiasi
        et al., 2018, "DropBlock: A regularization method for convolutional
        networks"; Gal & Ghahramani, 2016, "A Theoretically Grounded
        Application of Dropout in Recurrent Neural Networks".
    """
    if dropout is not None:
        dropout = check_rate("dropout", dropout)
    if drop_path is not None:
        drop_path = check_rate("drop_path", drop_path)
    dropblock = _check_dropblock(dropblock)
    recurrent = _check_recurrent(recurrent)
    seed = check_seed(seed)
    verbose = _check_verbose(verbose)
    rewrite, clone = _rewrite(
        model,
        "regularize",
        verbose,
        replace=True,
        dropout=dropout,
        drop_path=drop_path,
        dropblock=dropblock,
        recurrent=recurrent,
        seed=seed,
    )
    if drop_path is not None and not rewrite.drop_paths:
        raise ValueError(
            "Invalid value received for argument `drop_path`: the model "
            f"'{model.name}' has no residual connection (an `Add` of a block's "
            "input, or its projection, and a branch computed from it). "
            f"Received: drop_path={drop_path}"
        )
    if dropout is not None and not rewrite.heads:
        raise ValueError(
            "Invalid value received for argument `dropout`: no `Dense` layer "
            f"of the model '{model.name}' produces a model output. Received: "
            f"dropout={dropout}"
        )
    _report_unreplaced(clone, strict=False)
    return clone
