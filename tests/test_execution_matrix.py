"""Every public layer, and every cell inside `keras.layers.RNN`, in every
execution mode of the backend in use.

One case: a small model around the layer (regularizers on, so training
draws masks) is compiled in the mode, then one `fit` step and `predict`;
a `.keras` save and load; then `predict`, `evaluate` and one `fit` step
on the reloaded model (in the case's mode, or eagerly where
`RELOADED_COMPILE` says so: on TensorFlow after `tf.function` and XLA,
on torch after `torch.compile`). The loss is finite, the weights move,
the reloaded model predicts what the original does and evaluates to the
loss a NumPy reference computes from that prediction, and training-mode
outputs differ from inference.

The modes, per backend: TensorFlow eager (`run_eagerly=True`),
`tf.function` (`jit_compile=False`) and XLA (`jit_compile=True`); JAX's
jit; torch eager, and `torch.compile` (`jit_compile=True`, with dynamo's
"aot_eager" backend: `TORCH_COMPILE_BACKEND`) on `InvertedDropout` (the
dropout family's base only). On TensorFlow and JAX, where a model per
layer would cost minutes, one model holds a group of layers side by side
(the dropout and noise family, the sequence layers with either
`return_sequences`, the sequence layers and a cell with
`recurrent_dropout_mode="batch"`, the cells); torch eager runs a model
per layer. Sequence layers run with `return_sequences=False` and `True`:
XLA training of every sequence layer with `return_sequences=False` broke
in 0.2.0 (an unwritten TensorArray in TensorFlow's time loop) while
`True` worked.

The compiled modes' own masks: a training-mode call compiled in the mode
and an eager one, from the same random state, agree to rounding in every
layer of the group (one model output per layer), twice in a row, and leave
the same stream state; planted faults (a stream one draw ahead, another
seed, 1% in one layer) fail that judge and rounding passes it.
"""

import contextlib
import os
import re

import keras
import numpy as np
import pytest

from keras_reg import layers
from tests import zoo
from tests.helpers import to_numpy
from tests.numpy_init import numpy_initializers

BACKEND = keras.backend.backend()
BATCH, STEPS, FEATURES, UNITS = 4, 3, 2, 3
REGS = dict(
    dropout=0.3,
    recurrent_dropout=0.3,
    output_dropout=0.3,
    weight_dropout=0.3,
    zoneout=0.2,
)
# Inside `keras.layers.RNN` a cell gets no step index, so no per-step mask
# (zoneout) there; `LayerNormWrapper` refuses a cell with `output_dropout`.
CELL_REGS = {k: v for k, v in REGS.items() if k != "zoneout"}
WRAPPED_REGS = {k: v for k, v in CELL_REGS.items() if k != "output_dropout"}

# name: (compile arguments, what runs in it, whether it is slow). What runs:
# "each": a model per layer; "groups": one model per group of layers (each
# model costs TensorFlow and JAX seconds per function, tracing or
# compiling: a model per layer would cost minutes); a case's name: that
# case alone (torch.compile takes over a minute per model on 2 loaded cores).
MODES = {
    "tensorflow": {
        "eager": (dict(run_eagerly=True), "groups", False),
        "tf_function": (dict(jit_compile=False), "groups", False),
        "xla": (dict(jit_compile=True), "groups", True),
    },
    "jax": {"jit": (dict(jit_compile=True), "groups", False)},
    "torch": {
        "eager": (dict(jit_compile=False), "each", False),
        "torch_compile": (dict(jit_compile=True), "InvertedDropout", True),
    },
}.get(BACKEND, {})


# Each case: (build the layer and its model inputs, is it of the dropout
# family). The builders return `(inputs, outputs)` of the layer alone.
def _simple(make, shape=(STEPS, FEATURES), dtype="float32"):
    def build():
        inputs = keras.Input(shape, dtype=dtype)
        return inputs, make()(inputs)

    return build


def _stochastic_depth():
    inputs = keras.Input((STEPS, FEATURES))
    residual = keras.layers.Dense(FEATURES)(inputs)
    return inputs, layers.StochasticDepth(0.5, seed=9)([inputs, residual])


DROPOUT_FAMILY = {
    "InvertedDropout": _simple(lambda: layers.InvertedDropout(0.3, seed=1)),
    "InvertedDropout-shared_axes": _simple(
        lambda: layers.InvertedDropout(0.3, shared_axes=[1], seed=2)
    ),
    "TimeSharedDropout": _simple(lambda: layers.TimeSharedDropout(0.3, seed=3)),
    "EmbeddingDropout": _simple(
        lambda: layers.EmbeddingDropout(10, FEATURES, 0.3, seed=4),
        shape=(STEPS,),
        dtype="int32",
    ),
    "DropBlock1D": _simple(lambda: layers.DropBlock1D(0.3, 2, seed=5), (6, 2)),
    "DropBlock2D": _simple(lambda: layers.DropBlock2D(0.3, 2, seed=6), (5, 5, 2)),
    "DropBlock3D": _simple(lambda: layers.DropBlock3D(0.3, 2, seed=7), (4, 4, 4, 1)),
    "DropPath": _simple(lambda: layers.DropPath(0.3, seed=8)),
    "DropPath-batch": _simple(lambda: layers.DropPath(0.3, mode="batch", seed=12)),
    "StochasticDepth": _stochastic_depth,
    "ConcreteDropout": _simple(
        lambda: layers.ConcreteDropout(keras.layers.Dense(UNITS), seed=11)
    ),
    "GaussianNoise": _simple(lambda: layers.GaussianNoise(0.3, seed=13)),
    "GaussianDropout": _simple(lambda: layers.GaussianDropout(0.3, seed=14)),
    "AlphaDropout": _simple(lambda: layers.AlphaDropout(0.3, seed=15)),
}

SEQUENCE_LAYERS = {
    "VariationalLSTM": layers.VariationalLSTM,
    "VariationalGRU": layers.VariationalGRU,
    "VariationalSimpleRNN": layers.VariationalSimpleRNN,
    "LayerNormLSTM": layers.LayerNormLSTM,
    "LayerNormGRU": layers.LayerNormGRU,
    "LayerNormSimpleRNN": layers.LayerNormSimpleRNN,
}
CELLS = {
    "VariationalLSTMCell": layers.VariationalLSTMCell,
    "VariationalGRUCell": layers.VariationalGRUCell,
    "VariationalSimpleRNNCell": layers.VariationalSimpleRNNCell,
    "LayerNormLSTMCell": layers.LayerNormLSTMCell,
    "LayerNormGRUCell": layers.LayerNormGRUCell,
    "LayerNormSimpleRNNCell": layers.LayerNormSimpleRNNCell,
}

RECURRENT = {}
for _index, (_name, _cls) in enumerate(SEQUENCE_LAYERS.items()):
    for _sequences in (False, True):
        RECURRENT[f"{_name}-return_sequences={_sequences}"] = _simple(
            lambda cls=_cls, seq=_sequences, seed=20 + _index: cls(
                UNITS, return_sequences=seq, seed=seed, **REGS
            )
        )
for _index, (_name, _cls) in enumerate(CELLS.items()):
    RECURRENT[f"RNN({_name})"] = _simple(
        lambda cls=_cls, seed=40 + _index: keras.layers.RNN(
            cls(UNITS, seed=seed, **CELL_REGS)
        )
    )
# `recurrent_dropout_mode="batch"`: one recurrent mask per call, shared by
# the batch (a different draw, and a folded kernel on the fast paths).
for _index, (_name, _cls) in enumerate(SEQUENCE_LAYERS.items()):
    RECURRENT[f"{_name}-recurrent_dropout_mode=batch"] = _simple(
        lambda cls=_cls, seed=60 + _index: cls(
            UNITS,
            return_sequences=True,
            recurrent_dropout_mode="batch",
            seed=seed,
            **REGS,
        )
    )
RECURRENT["RNN(VariationalLSTMCell)-recurrent_dropout_mode=batch"] = _simple(
    lambda: keras.layers.RNN(
        layers.VariationalLSTMCell(
            UNITS, recurrent_dropout_mode="batch", seed=70, **CELL_REGS
        )
    )
)
RECURRENT["RNN(LayerNormWrapper(VariationalGRUCell))"] = _simple(
    lambda: keras.layers.RNN(
        layers.LayerNormWrapper(
            layers.VariationalGRUCell(UNITS, seed=50, **WRAPPED_REGS)
        ),
        return_sequences=True,
    )
)
RECURRENT["RNN(LayerNormWrapper(keras.layers.LSTMCell))"] = _simple(
    lambda: keras.layers.RNN(
        layers.LayerNormWrapper(
            keras.layers.LSTMCell(UNITS, dropout=0.3, recurrent_dropout=0.3, seed=51)
        )
    )
)

CASES = {**DROPOUT_FAMILY, **RECURRENT}


def test_the_matrix_covers_every_public_layer():
    covered = {name.split("-")[0] for name in CASES}
    covered |= {
        name.split("-")[0][len("RNN(") : -1].split("(")[0]
        for name in CASES
        if name[:4] == "RNN("
    }
    covered |= set(CELLS)
    public = {
        name for name in layers.__all__ if isinstance(getattr(layers, name), type)
    }
    assert public <= covered, sorted(public - covered)


GROUPS = {
    "dropout family": list(DROPOUT_FAMILY),
    "sequence layers, return_sequences=False": [
        name for name in RECURRENT if name.endswith("return_sequences=False")
    ],
    "sequence layers, return_sequences=True": [
        name for name in RECURRENT if name.endswith("return_sequences=True")
    ],
    "recurrent_dropout_mode=batch": [
        name for name in RECURRENT if name.endswith("recurrent_dropout_mode=batch")
    ],
    "cells in keras.layers.RNN": [
        name
        for name in RECURRENT
        if name[:4] == "RNN(" and not name.endswith("recurrent_dropout_mode=batch")
    ],
}


def test_the_groups_hold_every_case_once():
    grouped = [name for names in GROUPS.values() for name in names]
    assert sorted(grouped) == sorted(CASES)


def _params():
    params = []
    for mode, (_, runs, slow) in MODES.items():
        if runs == "each":
            cases = {name: [name] for name in CASES}
        elif runs == "groups":
            cases = GROUPS
        else:
            cases = {runs: [runs]}
        marks = [pytest.mark.slow] if slow else []
        if mode == "torch_compile" and keras.__version__.startswith(("3.7.", "3.8.")):
            marks.append(
                pytest.mark.skip(
                    reason="Keras 3.7 and 3.8 cannot torch.compile a plain Keras "
                    "model either (torch 2.13's dynamo fails in Keras' loss "
                    "code; docs/known-issues.md); Keras 3.12 can"
                )
            )
        params += [
            pytest.param(mode, names, marks=marks, id=f"{mode}-{name}")
            for name, names in cases.items()
        ]
    return params


# How the reloaded model runs, where not in the case's own mode. On
# TensorFlow it runs eagerly after `tf.function` and XLA, and on torch after
# `torch.compile`: it is the same classes with the same config, so its
# compiled functions would be the graphs the original's have just traced
# and compiled (with XLA, about 27 CPU seconds per recurrent group for
# predict and fit: a third of the matrix; torch.compile, about 8 s for
# InvertedDropout alone), while what a round trip can break (the weights,
# the random streams' state, a config argument) shows as well in an eager
# predict, evaluate and fit step. JAX has no eager fit, and an eager call
# of a recurrent group costs it a compile per layer: it stays in its jit.
RELOADED_COMPILE = {
    "tensorflow": {
        "tf_function": dict(run_eagerly=True),
        "xla": dict(run_eagerly=True),
    },
    "torch": {"torch_compile": dict(jit_compile=False)},
}.get(BACKEND, {})


def _model(names):
    """The layers side by side, flattened and concatenated, into one Dense.

    Random initial weights drawn in NumPy (`tests.numpy_init`): on JAX each
    of Keras' random initializers compiles a draw at every new weight shape
    (glorot_uniform, orthogonal's normal and QR, uniform), and no check
    here reads Keras' draws; the layers and their configs are their own."""
    inputs, outputs = [], []
    with numpy_initializers():
        for name in names:
            x, y = CASES[name]()
            inputs.append(x)
            outputs.append(keras.layers.Flatten()(y))
        x = outputs[0] if len(outputs) == 1 else keras.layers.Concatenate()(outputs)
        outputs = keras.layers.Dense(1, dtype="float32")(x)
    return keras.Model(inputs[0] if len(inputs) == 1 else inputs, outputs)


def _data(model):
    rng = np.random.default_rng(0)
    x = []
    for spec in model.inputs:
        shape = (BATCH, *spec.shape[1:])
        if spec.dtype == "int32":
            x.append(rng.integers(1, 10, size=shape).astype("int32"))
        else:
            x.append(rng.normal(size=shape).astype("float32"))
    x = x[0] if len(x) == 1 else x
    return x, rng.normal(size=(BATCH, 1)).astype("float32")


def _fit_moves_the_weights(model, x, y):
    before = [to_numpy(w) for w in model.trainable_weights]
    history = model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    loss = history.history["loss"][0]
    assert np.isfinite(loss), loss
    after = [to_numpy(w) for w in model.trainable_weights]
    unmoved = [
        w.path
        for w, a, b in zip(model.trainable_weights, before, after, strict=True)
        if np.array_equal(a, b)
    ]
    assert not unmoved, f"fit left these weights unchanged: {unmoved}"


def _expected_loss(model, predicted, y):
    """What `evaluate` must return: the mean squared error of `predicted`
    (NumPy) plus the losses the layers add in inference (ConcreteDropout's
    regularizer), from the eager inference call just made."""
    added = sum(float(to_numpy(loss)) for loss in model.losses)
    return float(np.mean((predicted - y) ** 2)) + added


# torch.compile's backend in the torch_compile mode: "aot_eager" runs
# dynamo's capture and AOT autograd (the forward and backward graphs that
# Keras' steps and the layers' draws become, the guards that decide when
# to capture again) and then the captured graphs as they are. Inductor's
# code generation after them is tested once per torch run, where its
# output is compared with eager training: `tests/test_portability.py`'s
# compiled training of the same layer, InvertedDropout. Here it cost 59
# of the torch run's CPU seconds, on a cold inductor cache, for this
# file's two compiled tests.
TORCH_COMPILE_BACKEND = "aot_eager"


@contextlib.contextmanager
def _torch_compile_backend(mode):
    """In the torch_compile mode, every `torch.compile` (Keras' steps
    included) uses `TORCH_COMPILE_BACKEND`; checks that dynamo captured
    a graph."""
    if mode != "torch_compile":
        yield
        return
    import torch

    compile_with_inductor = torch.compile
    captured = torch._dynamo.utils.counters["stats"]
    start = captured["unique_graphs"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            torch,
            "compile",
            lambda *args, **kwargs: compile_with_inductor(
                *args, **{**kwargs, "backend": TORCH_COMPILE_BACKEND}
            ),
        )
        yield
    assert captured["unique_graphs"] > start, "torch.compile fell back to eager"


@pytest.mark.parametrize(("mode", "names"), _params())
def test_fit_predict_evaluate_and_a_keras_round_trip(mode, names, tmp_path):
    compile_kwargs = MODES[mode][0]
    model = _model(names)
    x, y = _data(model)
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse", **compile_kwargs)
    with _torch_compile_backend(mode):
        _fit_moves_the_weights(model, x, y)
        predicted = model.predict(x, batch_size=BATCH, verbose=0)
    assert np.all(np.isfinite(predicted))
    # Inference is deterministic; training draws masks (a rate is set).
    # (An eager call and a compiled one may round differently.)
    np.testing.assert_allclose(
        to_numpy(model(x, training=False)), predicted, rtol=1e-5, atol=1e-6
    )
    loss = _expected_loss(model, predicted, y)
    assert np.isfinite(loss)
    if mode not in COMPILED_MODES:
        # (Compiled modes: the per-layer test below checks that the
        # compiled training call draws, layer by layer; an eager call of a
        # recurrent group costs JAX a compile of each layer's scan.)
        assert not np.array_equal(to_numpy(model(x, training=True)), predicted)

    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    loaded_kwargs = RELOADED_COMPILE.get(mode, compile_kwargs)
    loaded.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse", **loaded_kwargs)
    reloaded = loaded.predict(x, batch_size=BATCH, verbose=0)
    if loaded_kwargs == compile_kwargs:
        np.testing.assert_array_equal(reloaded, predicted)
    else:
        # Eager against compiled: equal to rounding.
        np.testing.assert_allclose(reloaded, predicted, rtol=1e-5, atol=1e-6)
    # `evaluate` once per case, on the reloaded model, against the NumPy
    # loss of the original's prediction. Not also on the original in its
    # compiled mode: that function would be `predict`'s inference
    # (`training=False`: keras_reg's layers never see which Keras entry
    # point calls them) plus Keras' loss and the layers' added losses, all
    # traced in `fit`'s step already, and it cost a trace and compile per
    # case (about 4 CPU s per recurrent group with XLA).
    np.testing.assert_allclose(
        loaded.evaluate(x, y, batch_size=BATCH, verbose=0), loss, rtol=1e-5
    )
    _fit_moves_the_weights(loaded, x, y)


# --- the compiled mode's own masks, layer by layer --------------------------------
#
# Portable masks are a function of (seed, counter, element index), so a
# training-mode call compiled in the mode (the function `fit` traces:
# `tf.function`, XLA, `jax.jit`, `torch.compile`) and an eager one from the
# same random state draw the same masks: every layer's output agrees to
# rounding, and the streams end at the same counters. The model has one
# output per layer, so each layer is judged on its own; one compiled function
# per group. torch.compile costs tens of seconds per compile here: one layer
# per family.

COMPILED_MODES = {
    "tensorflow": {"tf_function": GROUPS, "xla": GROUPS},
    "jax": {"jit": GROUPS},
    # A cold torch.compile with inductor of InvertedDropout alone took
    # 107 s here (2 cores, loaded), of a 3-step VariationalLSTM 733 s: the
    # other layers run eager on torch (docs/known-issues.md), and this
    # file's torch.compile runs "aot_eager" (`TORCH_COMPILE_BACKEND`).
    "torch": {"torch_compile": {"dropout family": ["InvertedDropout"]}},
}.get(BACKEND, {})
CALLS = 2  # calls per check: the counter must move between them
NATIVE_MASKS = {"RNN(LayerNormWrapper(keras.layers.LSTMCell))"}


def _compiled_params():
    params = []
    for mode, groups in COMPILED_MODES.items():
        marks = [pytest.mark.slow] if mode in ("xla", "torch_compile") else []
        params += [
            pytest.param(mode, names, marks=marks, id=f"{mode}-{group}")
            for group, names in groups.items()
        ]
    return params


def _per_layer_model(names):
    """The layers side by side, one model output per layer (initial
    weights from NumPy, as in `_model`)."""
    inputs, outputs = [], []
    with numpy_initializers():
        for name in names:
            x, y = CASES[name]()
            inputs.append(x)
            outputs.append(y)
    return keras.Model(inputs[0] if len(inputs) == 1 else inputs, outputs)


def _training_call(model, mode):
    """`model(x, training=True)` compiled in `mode`; returns NumPy outputs
    and leaves the variables (the random streams) where the call left them."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        step = tf.function(lambda x: model(x, training=True), jit_compile=mode == "xla")
        return lambda x: [to_numpy(y) for y in step(x)]
    if BACKEND == "jax":
        import jax

        step = jax.jit(
            lambda trainable, non_trainable, x: model.stateless_call(
                trainable, non_trainable, x, training=True
            )
        )

        def call(x):
            outputs, non_trainable = step(
                [v.value for v in model.trainable_variables],
                [v.value for v in model.non_trainable_variables],
                x,
            )
            for variable, value in zip(
                model.non_trainable_variables, non_trainable, strict=True
            ):
                variable.assign(value)
            return [to_numpy(y) for y in outputs]

        return call
    import torch

    torch._dynamo.reset()
    step = torch.compile(
        lambda x: model(x, training=True), backend=TORCH_COMPILE_BACKEND
    )

    def call(x):
        outputs = [to_numpy(y) for y in step(x)]
        graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
        assert graphs > 0, "torch.compile fell back to eager"
        return outputs

    return call


def _streams(model):
    """Every random stream: keras_reg's states, and the seed generators of
    Keras cells inside `LayerNormWrapper` (all the non-trainable state)."""
    return [v for v in zoo.variables(model) if not v.trainable]


def _states(model):
    return [to_numpy(v.value).copy() for v in _streams(model)]


def _set_states(model, states):
    for variable, value in zip(_streams(model), states, strict=True):
        variable.assign(value)


def _calls(model, x, call, start, calls):
    """`calls` training-mode calls from the random state `start`: each
    call's per-layer outputs and the state it leaves."""
    _set_states(model, start)
    outputs, states = [], []
    for _ in range(calls):
        outputs.append([to_numpy(y) for y in call(x)])
        states.append(_states(model))
    return outputs, states


def _assert_same_draws(names, got, want, skip=()):
    """Each layer's compiled outputs equal its eager ones to rounding (1e-5
    of the layer's scale: a 1% difference in one layer fails), and after
    each call the streams stand at the same counters. `want` may hold more
    calls than `got`: the first ones are compared."""
    (got, got_states), (want, want_states) = got, want
    want, want_states = want[: len(got)], want_states[: len(got)]
    for index, name in enumerate(names):
        if name in skip:
            continue
        for call, (got_call, want_call) in enumerate(zip(got, want, strict=True)):
            expected = want_call[index]
            np.testing.assert_allclose(
                got_call[index],
                expected,
                rtol=1e-5,
                atol=1e-5 * float(np.max(np.abs(expected), initial=1e-30)),
                err_msg=f"{name}: compiled call {call} != eager call {call}",
            )
    for call, got_call in enumerate(got_states):
        for a, b in zip(got_call, want_states[call], strict=True):
            np.testing.assert_array_equal(
                a, b, err_msg=f"the streams after call {call} differ"
            )


@pytest.mark.parametrize(("mode", "names"), _compiled_params())
def test_compiled_training_call_draws_the_eager_masks_in_every_layer(mode, names):
    model = _per_layer_model(names)
    x, _ = _data(model)
    compiled = _training_call(model, mode)
    start = _states(model)
    want = _calls(model, x, lambda x: model(x, training=True), start, CALLS)
    got = _calls(model, x, compiled, start, CALLS)
    # Keras' own cell inside the wrapper draws Keras' masks, not portable
    # ones: TensorFlow's stateless RNG picks another algorithm under XLA.
    skip = NATIVE_MASKS if mode == "xla" else ()
    _assert_same_draws(names, got, want, skip)
    # Every layer draws: some training call differs from inference.
    inference = [to_numpy(y) for y in model(x, training=False)]
    for index, name in enumerate(names):
        assert any(
            not np.array_equal(call[index], inference[index]) for call in got[0]
        ), f"{name}: no compiled training call differs from inference"

    # The judge convicts (STYLE 11a), with the same compiled function from
    # the same state: a compiled call whose stream is one draw ahead, or
    # seeded elsewhere (a different mask in every layer); a 1% difference
    # in the last layer alone; and it passes rounding only.
    def ahead(x):
        for variable in zoo.random_states(model):
            state = to_numpy(variable.value).copy()
            state[1] += 1
            variable.assign(state)
        return compiled(x)

    def reseeded(x):
        seeds = [to_numpy(v.value)[:1] for v in zoo.random_states(model)]
        for variable, seed in zip(zoo.random_states(model), seeds, strict=True):
            variable.assign(np.concatenate([seed + 1, to_numpy(variable.value)[1:]]))
        outputs = compiled(x)
        for variable, seed in zip(zoo.random_states(model), seeds, strict=True):
            variable.assign(np.concatenate([seed, to_numpy(variable.value)[1:]]))
        return outputs

    target = max(i for i, name in enumerate(names) if name not in skip)

    def last_layer_off(x):
        outputs = compiled(x)
        outputs[target] = outputs[target] * 1.01
        return outputs

    def rounding(x):
        return [y * (1 + 1e-7) for y in compiled(x)]

    for planted, match in (
        (ahead, "compiled call 0"),
        (reseeded, "compiled call 0"),
        (last_layer_off, re.escape(f"{names[target]}: compiled call 0")),
    ):
        with pytest.raises(AssertionError, match=match):
            _assert_same_draws(names, _calls(model, x, planted, start, 1), want, skip)
    _assert_same_draws(names, _calls(model, x, rounding, start, 1), want, skip)
