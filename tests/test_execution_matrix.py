"""Every public layer, and every cell inside `keras.layers.RNN`, in every
execution mode of the backend in use.

One case: a small model around the layer (regularizers on, so training
draws masks) is compiled in the mode, then one `fit` step, `predict` and
`evaluate`; a `.keras` save and load; then `predict` and one `fit` step
again on the reloaded model (and `evaluate`, in the eager modes). The loss
is finite, the weights move, the reloaded model predicts (and evaluates)
what the original does, and training-mode outputs differ from inference.

The modes, per backend: TensorFlow eager (`run_eagerly=True`),
`tf.function` (`jit_compile=False`) and XLA (`jit_compile=True`); JAX's
jit; torch eager, and `torch.compile` (`jit_compile=True`) on
`InvertedDropout` (over a minute per model: the dropout family's base
only). On TensorFlow and JAX, where a model per layer would cost minutes,
one model holds a group of layers side by side (the dropout family, the
sequence layers with either `return_sequences`, the cells); torch eager
runs a model per layer. Sequence layers run with `return_sequences=False`
and `True`: XLA training of every sequence layer with
`return_sequences=False` broke in 0.2.0 (an unwritten TensorArray in
TensorFlow's time loop) while `True` worked.
"""

import os

import keras
import numpy as np
import pytest

from keras_reg import layers
from tests.helpers import to_numpy

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
        name[len("RNN(") : -1].split("(")[0] for name in CASES if name[:4] == "RNN("
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
    "cells in keras.layers.RNN": [name for name in RECURRENT if name[:4] == "RNN("],
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


def _model(names):
    """The layers side by side, flattened and concatenated, into one Dense."""
    inputs, outputs = [], []
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


@pytest.mark.parametrize(("mode", "names"), _params())
def test_fit_predict_evaluate_and_a_keras_round_trip(mode, names, tmp_path):
    compile_kwargs = MODES[mode][0]
    keras.utils.set_random_seed(0)
    model = _model(names)
    x, y = _data(model)
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse", **compile_kwargs)
    _fit_moves_the_weights(model, x, y)

    predicted = model.predict(x, batch_size=BATCH, verbose=0)
    loss = model.evaluate(x, y, batch_size=BATCH, verbose=0)
    assert np.all(np.isfinite(predicted)) and np.isfinite(loss)
    # Inference is deterministic; training draws masks (a rate is set).
    # (An eager call and a compiled one may round differently.)
    np.testing.assert_allclose(
        to_numpy(model(x, training=False)), predicted, rtol=1e-5, atol=1e-6
    )
    assert not np.array_equal(to_numpy(model(x, training=True)), predicted)

    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    loaded.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse", **compile_kwargs)
    np.testing.assert_array_equal(
        loaded.predict(x, batch_size=BATCH, verbose=0), predicted
    )
    if mode == "eager":
        # Compiled, a reloaded model's evaluate would cost one more trace of
        # the inference its predict has just shown equal (seconds per layer
        # on TensorFlow and JAX); eager, it costs nothing to check.
        np.testing.assert_allclose(
            loaded.evaluate(x, y, batch_size=BATCH, verbose=0), loss, rtol=1e-6
        )
    _fit_moves_the_weights(loaded, x, y)
