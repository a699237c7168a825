"""What keras_reg takes from Keras' private modules still holds.

`keras_reg/_keras_private.py` is the one place that reaches into
`keras.src` or relies on how Keras works inside (checked against Keras
3.7.0, 3.8.0, 3.12.0 and 3.15.1). Each test here fails when a Keras release changes what
that module relies on, rather than letting masks go silently wrong.
"""

import inspect
import re
import sys

import keras
import numpy as np
import pytest

import keras_reg
from keras_reg import _keras_private, _random, layers
from keras_reg.layers import VariationalLSTM, VariationalLSTMCell
from keras_reg.layers.rnn._sequence import VariationalRNN


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
    seen, inside = [], []

    class Probe(keras.layers.Layer):
        def call(self, inputs, training=None):
            if not isinstance(inputs, keras.KerasTensor):  # a real call
                seen.append(_keras_private.call_training())
                inside.append(_keras_private.call_in_progress())
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
    assert inside and all(inside)
    assert not _keras_private.call_in_progress()


def _stateless_rnns():
    """Keras' RNN over each kind of keras_reg cell, every mask kind on."""
    regs = dict(dropout=0.3, recurrent_dropout=0.3, weight_dropout=0.3, seed=7)
    return {
        "VariationalLSTMCell": VariationalLSTMCell(3, output_dropout=0.3, **regs),
        "VariationalGRUCell": layers.VariationalGRUCell(3, **regs),
        "LayerNormSimpleRNNCell": layers.LayerNormSimpleRNNCell(3, **regs),
        "LayerNormWrapper": layers.LayerNormWrapper(
            layers.VariationalGRUCell(3, **regs)
        ),
    }


@pytest.mark.parametrize("name", sorted(_stateless_rnns()))
def test_a_keras_rnn_run_outside_any_keras_call_trains_with_the_calls_masks(name):
    # `stateless_call` (JAX users' training loops) runs the RNN's `call`
    # with no Keras call in progress, so `call_training()` is None when
    # Keras asks the cell for its masks: only the steps are told
    # `training`. In 0.3 the cell then drew none, and the RNN trained
    # without dropout (Keras' own cells apply theirs).
    rnn = keras.layers.RNN(_stateless_rnns()[name], return_sequences=True)
    x = np.random.default_rng(0).normal(size=(4, 5, 2)).astype("float32")
    rnn.build(x.shape)
    trainable = [v.value for v in rnn.trainable_variables]
    start = [keras.ops.convert_to_numpy(v.value) for v in rnn.non_trainable_variables]
    inference = keras.ops.convert_to_numpy(rnn(x, training=False))
    trained = keras.ops.convert_to_numpy(rnn(x, training=True))
    after = [keras.ops.convert_to_numpy(v.value) for v in rnn.non_trainable_variables]
    assert not np.array_equal(trained, inference)
    for training, want in ((True, trained), (False, inference)):
        got, states = rnn.stateless_call(
            trainable,
            [keras.ops.convert_to_tensor(v) for v in start],
            keras.ops.convert_to_tensor(x),
            training=training,
        )
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(got), want, rtol=1e-6, atol=1e-6
        )
        if training:
            for a, b in zip(states, after, strict=True):
                np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), b)


@pytest.mark.parametrize("name", sorted(_stateless_rnns()))
def test_a_keras_rnn_called_directly_in_inference_inside_a_training_call(name):
    # A layer may run a sublayer's `call` with training=False inside a
    # training call (a frozen part). The call in progress trains, so the
    # cell draws its masks, but Keras passes the steps the RNN's own
    # `training`, and Keras' cells follow it; ours applied the masks.
    rnn = keras.layers.RNN(_stateless_rnns()[name], return_sequences=True)

    class Frozen(keras.layers.Layer):
        def call(self, x, training=None):
            return rnn.call(x, training=False)

    x = np.random.default_rng(0).normal(size=(4, 5, 2)).astype("float32")
    inference = keras.ops.convert_to_numpy(rnn(x, training=False))
    assert not np.array_equal(
        keras.ops.convert_to_numpy(rnn(x, training=True)), inference
    )
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(Frozen()(x, training=True)),
        inference,
        rtol=1e-6,
        atol=1e-6,
    )


@pytest.mark.parametrize(
    "cell",
    [
        lambda: VariationalLSTMCell(3, zoneout=0.3, seed=7),
        lambda: layers.VariationalGRUCell(
            3, dropout=0.3, share_input_mask=False, seed=7
        ),
        lambda: layers.LayerNormWrapper(
            VariationalLSTMCell(3, zoneout=0.3, dropout=0.3, seed=7)
        ),
    ],
    ids=["zoneout", "share_input_mask=False", "LayerNormWrapper"],
)
def test_per_step_masks_outside_any_keras_call_are_refused_only_in_training(cell):
    # As inside a Keras call: inference runs (zoneout is its expectation,
    # the input unmasked) and training refuses the masks the RNN cannot give.
    rnn = keras.layers.RNN(cell(), return_sequences=True)
    x = np.random.default_rng(0).normal(size=(4, 5, 2)).astype("float32")
    rnn.build(x.shape)
    trainable = [v.value for v in rnn.trainable_variables]
    start = [keras.ops.convert_to_numpy(v.value) for v in rnn.non_trainable_variables]
    inference = keras.ops.convert_to_numpy(rnn(x, training=False))

    def stateless(training):
        return rnn.stateless_call(
            trainable,
            [keras.ops.convert_to_tensor(v) for v in start],
            keras.ops.convert_to_tensor(x),
            training=training,
        )

    got, states = stateless(False)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(got), inference, rtol=1e-6, atol=1e-6
    )
    for a, b in zip(states, start, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), b)
    with pytest.raises(ValueError, match="draws a fresh mask at every step"):
        stateless(True)


_RANDOM_LAYERS = {
    "InvertedDropout": lambda name: layers.InvertedDropout(0.5, name=name),
    "DropBlock2D": lambda name: layers.DropBlock2D(0.2, 3, name=name),
    "VariationalGRUCell": lambda name: layers.VariationalGRUCell(
        3, dropout=0.2, name=name
    ),
}


@pytest.mark.skipif(
    not hasattr(keras, "RematScope"), reason="keras.RematScope is Keras 3.9+"
)
@pytest.mark.parametrize("kind", sorted(_RANDOM_LAYERS))
def test_a_random_layer_refuses_a_remat_scope_that_would_recompute_it(kind):
    # On torch and TensorFlow the recomputation in the backward pass drew
    # new masks from the stream the forward pass had moved: gradients not
    # those of the forward pass, silently (Keras' own Dropout too).
    refused = [
        dict(mode="full"),
        dict(mode="larger_than", output_size_threshold=1),
        dict(mode="list_of_layers", layer_names=["drop"]),
    ]
    allowed = [
        dict(mode="activations"),
        dict(mode="list_of_layers", layer_names=["other"]),
        dict(mode=None),
    ]
    for settings in refused:
        with keras.RematScope(**settings):
            with pytest.raises(ValueError, match=repr(settings["mode"])):
                _RANDOM_LAYERS[kind]("drop")
    for settings in allowed:
        with keras.RematScope(**settings):
            layer = _RANDOM_LAYERS[kind]("drop")
        assert _keras_private.rematerialized(layer) is None, settings
    assert _keras_private.rematerialized(_RANDOM_LAYERS[kind]("drop")) is None


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
        if names == {"args", "kwargs"}:
            # A stub that cannot run, which the caller takes as a refusal:
            # torch's `lstm` and `gru` in Keras 3.7 and 3.8, its `gru` in 3.12.
            with pytest.raises(NotImplementedError):
                kernel(np.ones((1, 2, 3), "float32"))
            continue
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


def _keras_version():
    return tuple(int(p) for p in re.findall(r"\d+", keras.__version__)[:2])


def test_stateful_batch_size_is_the_batch_a_keras_rnn_was_built_for():
    layer = keras.layers.RNN(keras.layers.SimpleRNNCell(2), stateful=True)
    assert _keras_private.stateful_batch_size(layer) is None  # not built
    layer(np.ones((4, 3, 5), "float32"))
    assert _keras_private.stateful_batch_size(layer) == 4
    if hasattr(layer, "_expected_batch_size"):
        # Keras 3.12 and 3.15 keep it (Keras 3.7 and 3.8 do not have it).
        assert int(layer._expected_batch_size) == 4


def test_a_stateful_sequence_layer_rejects_another_batch_size():
    layer = VariationalLSTM(2, stateful=True)
    layer(np.ones((4, 3, 5), "float32"))
    try:
        layer(np.ones((3, 3, 5), "float32"))
    except ValueError as error:
        assert "Expected batch size: 4. Received batch size: 3" in str(error)
    else:
        raise AssertionError("no error for a batch of 3 in a batch-4 layer")


def test_init_seed_generator_sets_what_seed_generator_init_sets():
    keras_made = keras.random.SeedGenerator(7, name="probe")
    # Keras 3.7 to 3.15 set these four; `RandomState` makes `state` itself.
    assert set(vars(keras_made)) == {"name", "backend", "_initial_seed", "state"}
    ours = _random.RandomState(7, [0], name="probe_state")
    assert set(vars(keras_made)) <= set(vars(ours))
    assert (ours.name, ours._initial_seed) == ("probe_state", 7)
    assert ours.get_config() == {"seed": 7, "name": "probe_state"}


def test_force_training_samples_every_keras_dropout_layer_until_undone():
    ones = np.ones((2, 1000), "float32")
    dropout, spatial = keras.layers.Dropout(0.5), keras.layers.GaussianDropout(0.5)
    for layer in (dropout, spatial):
        assert "training" in inspect.signature(type(layer).call).parameters
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(ones)), ones)
    undo = _keras_private.force_training(
        [keras.layers.Dropout, keras.layers.GaussianDropout]
    )
    try:
        fresh = keras.layers.Dropout(0.5)  # instances made later too
        for layer in (dropout, spatial, fresh):
            assert np.std(keras.ops.convert_to_numpy(layer(ones))) > 0.1
    finally:
        undo()
    for layer in (dropout, spatial, fresh):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(ones)), ones)


def test_shadow_call_samples_one_layer_until_undone():
    ones = np.ones((2, 1000), "float32")
    layer, other = keras.layers.Dropout(0.5), keras.layers.Dropout(0.5)
    undo = _keras_private.shadow_call(layer)
    try:
        assert np.std(keras.ops.convert_to_numpy(layer(ones))) > 0.1
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(other(ones)), ones)
    finally:
        undo()
    assert "call" not in vars(layer)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(ones)), ones)


def test_predict_with_runs_the_given_function_and_leaves_the_models_own():
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    x = np.ones((4, 3), "float32")
    own = model.predict_function  # None until a first predict
    first, traced = _keras_private.predict_with(model, None, x, verbose=0)
    assert traced is not None and model.predict_function is own
    calls = []

    def spy(*args, **kwargs):
        calls.append(1)
        return traced(*args, **kwargs)

    again, used = _keras_private.predict_with(model, spy, x, verbose=0)
    assert calls and used is spy and model.predict_function is own
    np.testing.assert_allclose(again, first)


# What `VariationalRNN.call` repeats of `keras.layers.RNN.call` (its
# checks, the initial and stateful states, the casts, the outputs), and the
# two steps it leaves out on purpose: it draws its own masks, as values,
# instead of asking the cell (`_maybe_config_dropout_masks`,
# `_maybe_reset_dropout_masks`). Keras 3.7 and 3.8 have no
# `_expected_batch_size`.
_RNN_CALL_ATTRIBUTES = {
    "unroll",
    "stateful",
    "states",
    "get_initial_state",
    "_expected_batch_size",
    "cell",
    "_maybe_config_dropout_masks",
    "inner_loop",
    "compute_dtype",
    "_maybe_reset_dropout_masks",
    "return_sequences",
    "return_state",
}


def test_keras_rnn_call_does_only_what_variational_rnn_call_repeats():
    source = inspect.getsource(keras.layers.RNN.call)
    used = set(re.findall(r"self\.(\w+)", source))
    # A new step in Keras' call shows up here, by name.
    assert used <= _RNN_CALL_ATTRIBUTES, sorted(used - _RNN_CALL_ATTRIBUTES)
    assert _RNN_CALL_ATTRIBUTES - {"_expected_batch_size"} <= used
    # The order of the steps that `VariationalRNN.call` keeps.
    steps = [
        "self.get_initial_state(",
        "tree.is_nested(initial_state)",
        "self.inner_loop(",
        "ops.cast(last_output, self.compute_dtype)",
        ".assign(state)",
        "if self.return_sequences",
        "if self.return_state",
    ]
    positions = [source.find(step) for step in steps]
    assert -1 not in positions and positions == sorted(positions), positions
    ours = inspect.getsource(VariationalRNN.call)
    assert "_maybe_config_dropout_masks" not in ours
    assert all(step in ours for step in steps), steps
    assert keras_reg.layers.VariationalLSTM.call is VariationalRNN.call


class _StoreWithoutContains:
    """A variable store as the `.keras` (HDF5) one of Keras 3.7 and 3.8
    behaves: `keys()` and indexing by name, no `__contains__` (`in` indexes
    it by int)."""

    def __init__(self, values):
        self._values = values

    def keys(self):
        return list(self._values)

    def __getitem__(self, name):
        if not isinstance(name, str):
            raise TypeError("Accessing a group is done with bytes or str, not int")
        return self._values[name]

    def __setitem__(self, name, value):
        self._values[name] = keras.ops.convert_to_numpy(value)


def test_a_layer_saves_and_loads_through_a_store_without_contains():
    layer = VariationalLSTMCell(3, dropout=0.5, seed=4)
    layer.build((None, 2))
    store = _StoreWithoutContains({})
    layer.save_own_variables(store)
    copy = VariationalLSTMCell(3, dropout=0.5, seed=9)
    copy.build((None, 2))
    copy.load_own_variables(store)
    for mine, theirs in zip(layer.variables, copy.variables, strict=True):
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(theirs), keras.ops.convert_to_numpy(mine)
        )


def test_saved_input_specs_reads_keras_config_json(tmp_path):
    """`keras_reg.testing` reads a `.keras` file's inputs from Keras'
    `config.json`: `input_layers` (a leaf, a list, a dict) and each
    `InputLayer`'s `batch_shape` and `dtype`."""
    a = keras.Input((3,), name="a")
    b = keras.Input((2, 4), name="b", dtype="int32")
    out = keras.layers.Dense(1)(keras.layers.Concatenate()([a, a]))
    # Keras 3.7 saves a model of one input as a list of one leaf
    # (`[["a", 0, 0]]`), 3.15 as the leaf itself; the checker reads both
    # the same way (only "dict" changes how inputs are matched).
    one = "list" if keras.version().startswith("3.7.") else "single"
    cases = {
        "single": (keras.Model(a, out), one, [("a", (None, 3), "float32")]),
        "list": (
            keras.Model([a, b], out),
            "list",
            [("a", (None, 3), "float32"), ("b", (None, 2, 4), "int32")],
        ),
        "dict": (
            keras.Model({"first": a, "second": b}, out),
            "dict",
            [("first", (None, 3), "float32"), ("second", (None, 2, 4), "int32")],
        ),
        "sequential": (
            keras.Sequential([keras.Input((5,), name="s"), keras.layers.Dense(2)]),
            "single",
            [("s", (None, 5), "float32")],
        ),
    }
    for name, (model, structure, specs) in cases.items():
        model.save(tmp_path / f"{name}.keras")
        got = _keras_private.saved_input_specs(str(tmp_path / f"{name}.keras"))
        assert got == (structure, specs), name

    unbuilt = keras.Sequential([keras.layers.Dense(2)])
    unbuilt.save(tmp_path / "unbuilt.keras")
    assert _keras_private.saved_input_specs(str(tmp_path / "unbuilt.keras")) == (
        None,
        None,
    )
    (tmp_path / "bad.keras").write_text("not a zip file")
    with pytest.raises(ValueError, match="is not a `.keras` file"):
        _keras_private.saved_input_specs(str(tmp_path / "bad.keras"))


def test_applications_stochastic_depth_is_recognised_and_nothing_else():
    # Canary: keras.applications' ConvNeXt defines StochasticDepth in its
    # own (private) module; a release that moves or exports it fails here.
    home = sys.modules[keras.applications.convnext.ConvNeXtTiny.__module__]
    assert _keras_private.is_applications_stochastic_depth(home.StochasticDepth(0.1))

    class StochasticDepth(keras.layers.Layer):
        pass

    assert not _keras_private.is_applications_stochastic_depth(StochasticDepth())
    assert not _keras_private.is_applications_stochastic_depth(
        keras.layers.Dropout(0.1)
    )
