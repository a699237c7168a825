"""The one walk over a model's layers that `inference` and `callbacks` share."""

import keras

from keras_reg import _keras_private, _walk
from keras_reg.layers import (
    ConcreteDropout,
    DropPath,
    InvertedDropout,
    LayerNormWrapper,
    TimeSharedDropout,
    VariationalGRUCell,
    VariationalLSTM,
    VariationalSimpleRNNCell,
)


class _Block(keras.layers.Layer):
    """A custom layer that holds its sublayers as attributes."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(4)
        self.drop = DropPath(0.1, name="held_drop_path")

    def call(self, inputs):
        return inputs + self.drop(self.dense(inputs))


def _names(layer):
    return [layer.name for layer in _walk.walk(layer)]


def test_walk_finds_every_kind_of_nested_layer():
    # Sub-model, TimeDistributed, Bidirectional (template and both copies),
    # a keras RNN over LayerNormWrapper(cell), StackedRNNCells, a
    # ConcreteDropout wrapper and a custom layer's attribute.
    inner_inputs = keras.Input((5, 4))
    inner = keras.Model(
        inner_inputs,
        TimeSharedDropout(0.1, name="in_submodel")(inner_inputs),
        name="submodel",
    )
    inputs = keras.Input((5, 4))
    x = inner(inputs)
    x = keras.layers.TimeDistributed(InvertedDropout(0.1, name="in_time"))(x)
    x = keras.layers.Bidirectional(
        VariationalLSTM(3, dropout=0.1, name="lstm"), name="bidirectional"
    )(x)
    y = keras.layers.RNN(
        LayerNormWrapper(VariationalGRUCell(3, dropout=0.1, name="wrapped_cell")),
        return_sequences=True,
    )(inputs)
    y = keras.layers.RNN(
        keras.layers.StackedRNNCells(
            [
                VariationalSimpleRNNCell(3, dropout=0.1, name="stacked_0"),
                VariationalSimpleRNNCell(3, dropout=0.1, name="stacked_1"),
            ]
        )
    )(y)
    z = ConcreteDropout(keras.layers.Dense(4, name="concrete_inner"), name="cd")(y)
    z = _Block(name="block")(z)
    model = keras.Model(inputs, [x, z])
    names = _names(model)
    for name in (
        "submodel",
        "in_submodel",
        "in_time",
        "bidirectional",
        "forward_lstm",
        "backward_lstm",
        "wrapped_cell",
        "stacked_0",
        "stacked_1",
        "cd",
        "concrete_inner",
        "block",
        "held_drop_path",
    ):
        assert name in names, name
    # Each layer once, the model first.
    found = list(_walk.walk(model))
    assert len({id(layer) for layer in found}) == len(found)
    assert found[0] is model


def test_walk_reaches_attribute_sublayers_through_keras_private_tracking():
    # `keras_reg._keras_private.tracked_layers` relies on Keras' private
    # `Layer._flatten_layers` (Keras 3.15.1) for layers that a custom layer
    # holds as attributes: this fails if Keras changes it.
    block = _Block()
    held = [layer.name for layer in _keras_private.tracked_layers(block)]
    assert "held_drop_path" in held
    assert "held_drop_path" in _names(block)


def test_walk_of_a_plain_layer_is_the_layer():
    layer = keras.layers.Dense(2)
    assert list(_walk.walk(layer)) == [layer]
