"""One walk over a model's layers, shared by `inference` and `callbacks`.

It finds the layers that Keras nests in other layers: sub-models
(`layers`), wrappers (`layer`: `TimeDistributed`, `Bidirectional`'s
template, `ConcreteDropout`), `Bidirectional`'s `forward_layer` and
`backward_layer`, recurrent cells (`cell`, `LayerNormWrapper(...).cell`,
`StackedRNNCells.cells`), and layers that a custom layer holds as
attributes.
"""

import keras

from keras_reg import _keras_private

# Public attributes through which Keras and keras_reg nest layers.
_CHILD_ATTRIBUTES = ("layer", "cell", "forward_layer", "backward_layer")
_CHILD_LISTS = ("layers", "cells")


def _children(layer):
    children = []
    for name in _CHILD_LISTS:
        value = getattr(layer, name, None)
        if isinstance(value, (list, tuple)):
            children.extend(c for c in value if isinstance(c, keras.layers.Layer))
    for name in _CHILD_ATTRIBUTES:
        child = getattr(layer, name, None)
        if isinstance(child, keras.layers.Layer):
            children.append(child)
    # Layers a custom layer holds as attributes (`self.drop = DropPath(...)`)
    # have no public route: `keras_reg._keras_private` lists them.
    children.extend(_keras_private.tracked_layers(layer))
    return children


def walk(layer):
    """`layer` and every layer nested in it, each once, depth first."""
    seen = set()
    stack = [layer]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        # Reversed so that children come out in their own order.
        stack.extend(reversed(_children(current)))
