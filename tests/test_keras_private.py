"""What keras_reg takes from Keras' private modules still holds.

`keras_reg/_keras_private.py` is the one place that reaches into
`keras.src` (checked against Keras 3.15.1). Each test here fails when a
Keras release changes what that module relies on, rather than letting masks
go silently wrong.
"""

import inspect

import keras
import numpy as np

from keras_reg import _keras_private
from keras_reg.layers import VariationalLSTM, VariationalLSTMCell


def test_dropout_rnn_cell_is_the_class_keras_rnn_asks_for_masks():
    calls = []

    class Probe(_keras_private.DropoutRNNCell, keras.layers.Layer):
        state_size = 2

        def __init__(self):
            super().__init__()
            self.dropout = self.recurrent_dropout = 0.0

        def get_dropout_mask(self, step_input):
            calls.append("get")

        def reset_dropout_mask(self):
            calls.append("reset")

        def call(self, inputs, states):
            return inputs[:, :2], states

    keras.layers.RNN(Probe())(np.ones((1, 3, 4), "float32"))
    # Asked once before the loop, reset once after it: not per step.
    assert calls == ["get", "reset"]


def test_call_training_reads_the_training_flag_of_the_call_in_progress():
    seen = []

    class Probe(keras.layers.Layer):
        def call(self, inputs, training=None):
            if not isinstance(inputs, keras.KerasTensor):  # a real call
                seen.append(_keras_private.call_training())
            return inputs

    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Dense(1)(Probe()(inputs)))
    model.compile(optimizer="sgd", loss="mse", run_eagerly=True)
    x, y = np.ones((4, 2), "float32"), np.ones((4, 1), "float32")

    def flags(run):
        del seen[:]
        run()
        return set(seen)

    model.fit(x, y, batch_size=4, verbose=0)  # builds (a call in inference)
    assert flags(lambda: model.fit(x, y, batch_size=4, verbose=0)) == {True}
    assert flags(lambda: model.predict(x, verbose=0)) == {False}
    assert flags(lambda: model(x, training=True)) == {True}
    assert not any(flags(lambda: model(x)))  # None or False: not training
    assert _keras_private.call_training() is None  # outside any call


def test_untrack_leaves_no_keras_seed_generator_in_a_cell():
    cell = VariationalLSTMCell(3, dropout=0.5)
    layer = VariationalLSTM(3, dropout=0.5)
    layer.build((None, 4, 2))
    cell.build((None, 2))
    for host in (cell, layer):
        paths = [v.path for v in host.variables]
        assert not any("seed_generator" in p for p in paths), paths
        assert sum("keras_reg_random_state" in p for p in paths) == 1, paths


def test_backend_rnn_kernels_take_the_arguments_keras_lstm_passes():
    for kind, extra in (("lstm", {"initial_state_h"}), ("gru", {"reset_after"})):
        kernel = _keras_private.backend_rnn_kernel(kind)
        names = set(inspect.signature(kernel).parameters)
        expected = {
            "inputs",
            "mask",
            "kernel",
            "recurrent_kernel",
            "bias",
            "activation",
            "recurrent_activation",
            "return_sequences",
            "go_backwards",
            "unroll",
        }
        assert expected | extra <= names, (kind, names)


def test_call_inputs_are_what_the_outer_model_feeds_a_nested_model():
    inner_input = keras.Input((4,))
    inner = keras.Model(inner_input, keras.layers.Dense(3)(inner_input))
    outer_input = keras.Input((4,))
    hidden = keras.layers.Dense(4)(outer_input)
    keras.Model(outer_input, inner(hidden))
    # `inner.input` is its own Input; the call's inputs are the outer tensor.
    assert inner.input is inner_input
    (fed,) = _keras_private.call_inputs(inner)
    assert fed is hidden
    assert _keras_private.call_inputs(keras.layers.Dense(2)) is None
