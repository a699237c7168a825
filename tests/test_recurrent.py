"""What every recurrent cell and sequence layer owes, tested once for all of
them: the three cell types (LSTM, GRU, SimpleRNN), each as a variational and
a LayerNorm variant.

Masks are read through probes: layers whose weights make a mask visible in
the output, either exactly (linear activations, identity blocks, biases that
pin the gates) or generically (an input that only a dropped unit leaves
without effect).
"""

import ast
import inspect
import re

import keras
import numpy as np
import pytest

from keras_reg import layers
from tests.helpers import run_layer_test, six_sigma, to_numpy

BACKEND = keras.backend.backend()
SEQUENCE_LAYERS = [
    layers.VariationalLSTM,
    layers.VariationalGRU,
    layers.VariationalSimpleRNN,
    layers.LayerNormLSTM,
    layers.LayerNormGRU,
    layers.LayerNormSimpleRNN,
]
CELLS = [
    layers.VariationalLSTMCell,
    layers.VariationalGRUCell,
    layers.VariationalSimpleRNNCell,
    layers.LayerNormLSTMCell,
    layers.LayerNormGRUCell,
    layers.LayerNormSimpleRNNCell,
]
KERAS_TWIN = {
    layers.VariationalLSTM: keras.layers.LSTM,
    layers.VariationalGRU: keras.layers.GRU,
    layers.VariationalSimpleRNN: keras.layers.SimpleRNN,
    layers.LayerNormLSTM: keras.layers.LSTM,
    layers.LayerNormGRU: keras.layers.GRU,
    layers.LayerNormSimpleRNN: keras.layers.SimpleRNN,
    layers.VariationalLSTMCell: keras.layers.LSTMCell,
    layers.VariationalGRUCell: keras.layers.GRUCell,
    layers.VariationalSimpleRNNCell: keras.layers.SimpleRNNCell,
    layers.LayerNormLSTMCell: keras.layers.LSTMCell,
    layers.LayerNormGRUCell: keras.layers.GRUCell,
    layers.LayerNormSimpleRNNCell: keras.layers.SimpleRNNCell,
}
RATES = ("dropout", "recurrent_dropout", "output_dropout", "weight_dropout", "zoneout")
# Eager JAX compiles a scanned time loop at every call (0.2 to 0.7 s here);
# unrolled, each op compiles once per shape. Tests that make many calls
# unroll on JAX; the other backends run their default loops (TensorFlow's
# while loop, torch's hand-written backpropagation through time).
LOOP = {"unroll": BACKEND == "jax"}
# Where a test sets every weight itself, the layers start from zeros: on JAX
# each random initializer compiles a draw at each new weight shape (0.3 s).
ZEROS = {"kernel_initializer": "zeros", "recurrent_initializer": "zeros"}


def _name(cls):
    return cls.__name__


def _n_states(layer):
    size = layer.cell.state_size
    return len(size) if isinstance(size, (list, tuple)) else 1


def _twin(layer, input_shape):
    """A layer of the same config (so the same seed: the same masks) and the
    same weights."""
    twin = type(layer).from_config(layer.get_config())
    twin.build(input_shape)
    twin.set_weights(layer.get_weights())
    return twin


def _set_random_weights(rng, *layers_, scale=0.5):
    """Sets the same random weights (NumPy's draws) in every layer given:
    LayerNorm scales near 1, everything else normal with `scale`."""
    weights = [
        rng.uniform(0.5, 1.5, size=w.shape).astype("float32")
        if "gamma" in w.path
        else rng.normal(scale=scale, size=w.shape).astype("float32")
        for w in layers_[0].weights
    ]
    for layer in layers_:
        layer.set_weights(weights)
    return weights


def _close(a, b, atol=1e-5):
    a = a if isinstance(a, (list, tuple)) else [a]
    b = b if isinstance(b, (list, tuple)) else [b]
    assert len(a) == len(b)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_allclose(to_numpy(u), to_numpy(v), atol=atol)


# --- the signature and the docstring --------------------------------------------


@pytest.mark.parametrize("ours", list(KERAS_TWIN), ids=_name)
def test_signature_has_every_keras_argument_with_its_default(ours):
    theirs = KERAS_TWIN[ours]
    mine = inspect.signature(ours.__init__).parameters
    named = (
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.KEYWORD_ONLY,
    )
    for name, param in inspect.signature(theirs.__init__).parameters.items():
        if name == "self" or param.kind not in named:
            continue
        assert name in mine, name
        assert mine[name].kind in named, name
        assert repr(mine[name].default) == repr(param.default), name
    assert list(mine)[1] == "units"
    # Keras' own regularization arguments keep Keras' defaults.
    for name, default in {
        "dropout": 0.0,
        "recurrent_dropout": 0.0,
        "seed": None,
    }.items():
        assert repr(mine[name].default) == repr(default), name
    # Ours, all off by default.
    extra = {
        "output_dropout": 0.0,
        "weight_dropout": 0.0,
        "zoneout": 0.0,
        "per_gate_masks": False,
        "share_input_mask": True,
    }
    if issubclass(ours, keras.layers.RNN):
        extra["use_cudnn"] = "auto"
    for name, default in extra.items():
        assert name in mine, name
        assert mine[name].kind in named, name
        assert repr(mine[name].default) == repr(default), name
    last = list(mine.values())[-1]
    assert last.kind is inspect.Parameter.VAR_KEYWORD


def _args_block(doc):
    """The `Args:` section of a docstring: up to the next unindented line."""
    body = doc.split("\nArgs:\n", 1)[1]
    return re.split(r"\n(?=\S)", body, maxsplit=1)[0]


def _documented_names(name):
    """Parses the module that defines `keras_reg.layers.<name>` and returns
    its literal docstring and the parameters its source names: those of the
    function, or of the `__init__` written in the class body (None if the
    class inherits its constructor)."""
    obj = getattr(layers, name)
    tree = ast.parse(inspect.getsource(inspect.getmodule(obj)))
    node = next(
        n
        for n in tree.body
        if isinstance(n, (ast.ClassDef, ast.FunctionDef)) and n.name == name
    )
    function = node
    if isinstance(node, ast.ClassDef):
        function = next(
            (
                n
                for n in node.body
                if isinstance(n, ast.FunctionDef) and n.name == "__init__"
            ),
            None,
        )
    params = None
    if function is not None:
        args = function.args
        params = [
            a.arg
            for a in args.posonlyargs + args.args + args.kwonlyargs
            if a.arg != "self"
        ]
    return node, ast.get_docstring(node), params


@pytest.mark.parametrize("name", layers.__all__)
def test_docstring_is_literal_and_documents_every_argument(name):
    node, doc, params = _documented_names(name)
    assert doc, f"{name} has no literal docstring"
    assert "\nArgs:\n" in doc, name
    assert "Example" in doc, name
    if isinstance(node, ast.ClassDef):
        assert "\nCall arguments:\n" in doc, name
        assert params is not None, f"{name} has no __init__ in its class body"
    documented = set(re.findall(r"^ {4}(\w+):", _args_block(doc), re.MULTILINE))
    missing = [p for p in params if p not in documented]
    assert not missing, f"{name}: not in Args: {missing}"


# --- bad arguments and bad input -----------------------------------------------------

BAD_VALUES = {
    **{rate: [1.0, 1.5, -0.1, float("nan"), "0.1", None, True] for rate in RATES},
    "per_gate_masks": ["yes", None, 1],
    "share_input_mask": [1, "no", None],
    "seed": [1.5, "1", True],
}


@pytest.mark.parametrize("cls", SEQUENCE_LAYERS + CELLS, ids=_name)
def test_bad_regularization_arguments_raise_value_error_naming_them(cls):
    wrong = []
    for name, values in BAD_VALUES.items():
        for value in values:
            try:
                cls(3, **{name: value})
            except ValueError as error:
                # Keras' wording: "... argument `dropout` ... dropout=1.5".
                message = str(error)
                if f"`{name}`" not in message or f"{name}={value!r}" not in message:
                    wrong.append((name, value, message))
            else:
                wrong.append((name, value, "no error"))
    assert not wrong, wrong


@pytest.mark.parametrize("shape", [(5,), (5, 3, 2)], ids=["rank2", "rank4"])
@pytest.mark.parametrize("layer_cls", SEQUENCE_LAYERS, ids=_name)
def test_wrong_input_rank_is_a_value_error_naming_the_rank(layer_cls, shape):
    with pytest.raises(
        ValueError, match=f"expected ndim=3, found ndim={len(shape) + 1}"
    ):
        layer_cls(4)(keras.Input(shape))


# --- the same function as Keras -------------------------------------------------------

OURS = {
    "lstm": layers.VariationalLSTM,
    "gru": layers.VariationalGRU,
    "simple_rnn": layers.VariationalSimpleRNN,
}
KERAS = {
    "lstm": keras.layers.LSTM,
    "gru": keras.layers.GRU,
    "simple_rnn": keras.layers.SimpleRNN,
}


ALL_OUTPUTS = {"return_sequences": True, "return_state": True}


@pytest.mark.parametrize(
    "kind, kwargs",
    [
        ("lstm", {}),
        ("lstm", {"go_backwards": True}),
        ("lstm", {"unroll": True, "use_bias": False, "activation": "relu"}),
        ("gru", {}),
        ("gru", {"reset_after": False}),
        ("gru", {"go_backwards": True}),
        ("gru", {"unroll": True, "use_bias": False, "activation": "relu"}),
        ("simple_rnn", {}),
        ("simple_rnn", {"go_backwards": True}),
        ("simple_rnn", {"unroll": True, "use_bias": False, "activation": "relu"}),
    ],
    ids=lambda v: v if isinstance(v, str) else "-".join(v) or "default",
)
def test_matches_the_keras_layer_at_rate_zero(kind, kwargs):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 7, 5)).astype("float32")
    # Ours runs its default loop (a scan on JAX and TensorFlow); the Keras
    # reference runs unrolled on JAX, where each of its eager calls would
    # compile a scan of its own.
    ref = KERAS[kind](6, **ALL_OUTPUTS, **ZEROS, **{**LOOP, **kwargs})
    ours = OURS[kind](6, **ALL_OUTPUTS, **ZEROS, **kwargs)
    ref.build(x.shape)
    ours.build(x.shape)
    assert [w.shape for w in ours.weights] == [w.shape for w in ref.weights]
    _set_random_weights(rng, ref, ours)
    _close(ref(x), ours(x))
    # With input masking and initial states, in training (nothing to drop).
    # Padding comes after the real steps in the order they run: before them,
    # Keras' JAX backend outputs the initial state where its TensorFlow and
    # torch backends (and keras_reg, see below) output zeros.
    mask = np.ones((4, 7), bool)
    mask[1, 4:] = False
    mask[3, 2:] = False
    if kwargs.get("go_backwards"):
        mask = mask[:, ::-1].copy()
    states = [rng.normal(size=(4, 6)).astype("float32") for _ in range(_n_states(ours))]
    _close(
        ref(x, mask=mask, initial_state=states, training=True),
        ours(x, mask=mask, initial_state=states, training=True),
    )


@pytest.mark.parametrize("layer_cls", SEQUENCE_LAYERS[:3], ids=_name)
def test_masked_steps_before_the_first_real_step_output_zeros(layer_cls):
    # As Keras on TensorFlow and torch; on JAX, Keras 3.15 outputs the
    # initial state there. The state itself is carried through unchanged.
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, 5, 2)).astype("float32")
    mask = np.ones((3, 5), bool)
    mask[1, 3:] = False  # with go_backwards: the first two steps run masked
    layer = layer_cls(
        4, go_backwards=True, return_sequences=True, return_state=True, **ZEROS
    )
    layer.build(x.shape)
    _set_random_weights(rng, layer)
    states = [
        rng.normal(size=(3, 4)).astype("float32") for _ in range(_n_states(layer))
    ]
    masked = layer(x, mask=mask, initial_state=states)
    plain = layer(x[:, :3], initial_state=states)
    outputs = to_numpy(masked[0])
    np.testing.assert_array_equal(outputs[1, :2], 0.0)
    np.testing.assert_allclose(outputs[1, 2:], to_numpy(plain[0])[1], atol=1e-6)
    for s, p in zip(masked[1:], plain[1:], strict=True):
        np.testing.assert_allclose(to_numpy(s)[1], to_numpy(p)[1], atol=1e-6)


@pytest.mark.parametrize(
    "layer_cls, kwargs",
    [
        (layers.VariationalLSTM, {}),
        (layers.VariationalLSTM, {"per_gate_masks": True}),
        (layers.VariationalGRU, {}),
        (layers.VariationalGRU, {"per_gate_masks": True}),
        (layers.VariationalGRU, {"per_gate_masks": True, "reset_after": False}),
        (layers.VariationalSimpleRNN, {}),
        (layers.LayerNormLSTM, {"per_gate_masks": True}),
        (layers.LayerNormGRU, {"per_gate_masks": True}),
        (layers.LayerNormSimpleRNN, {}),
    ],
    ids=lambda v: _name(v) if isinstance(v, type) else "-".join(v) or "shared",
)
def test_sequence_layer_equals_keras_rnn_of_its_cell(layer_cls, kwargs):
    x = np.random.default_rng(1).normal(size=(6, 5, 4)).astype("float32")
    regs = dict(
        dropout=0.3,
        recurrent_dropout=0.3,
        output_dropout=0.2,
        weight_dropout=0.2,
        seed=3,
        **kwargs,
    )
    layer = layer_cls(3, return_sequences=True, **LOOP, **ZEROS, **regs)
    rnn = keras.layers.RNN(
        type(layer.cell)(3, **ZEROS, **regs), return_sequences=True, **LOOP
    )
    layer.build(x.shape)
    rnn.build(x.shape)
    _set_random_weights(np.random.default_rng(2), layer, rnn)
    # Inference draws nothing, so the training calls after it still see the
    # same draws in the same order from the same seed: the same masks.
    _close(layer(x), rnn(x))
    for _ in range(2):
        _close(layer(x, training=True), rnn(x, training=True))


@pytest.mark.parametrize("layer_cls", SEQUENCE_LAYERS, ids=_name)
def test_integer_features_are_cast_to_float_and_masks_scale_exactly(layer_cls):
    # Rate 0.2 scales kept units by 1.25: a mask applied in integers would
    # round it to 1.
    x = np.random.default_rng(2).integers(-3, 4, size=(4, 3, 5))
    regs = dict(dropout=0.2, recurrent_dropout=0.2, output_dropout=0.2)
    layer = layer_cls(
        4, return_sequences=True, weight_dropout=0.2, seed=5, **LOOP, **ZEROS, **regs
    )
    layer.build(x.shape)
    _set_random_weights(np.random.default_rng(3), layer)
    twin = _twin(layer, x.shape)
    y = layer(x.astype("int32"), training=True)
    assert keras.backend.standardize_dtype(y.dtype) == "float32"
    np.testing.assert_array_equal(
        to_numpy(y), to_numpy(twin(x.astype("float32"), training=True))
    )


# --- linear probes: masks shown exactly -------------------------------------------

# Keras' gate blocks, in kernel order ("c" is the LSTM candidate).
GATES = {"lstm": "ifco", "gru": "zrh", "simple_rnn": "h"}
CANDIDATE = {"lstm": "c", "gru": "h", "simple_rnn": "h"}
# Biases that hold gates at 1 (linear gates): the LSTM's i and o (its f stays
# 0, so c_t = g_t and h_t = c_t), the GRU's r (its z stays 0, so h_t is the
# candidate).
PINNED = {"lstm": {"i": 1.0, "o": 1.0}, "gru": {"r": 1.0}, "simple_rnn": {}}


def _linear(kind, units, kernel=(), recurrent=(), bias=(), **kwargs):
    """A sequence layer of cell type `kind` with linear activations, `value *
    I` in the kernel and recurrent blocks of the gates named in `kernel` and
    `recurrent`, the bias `value` for the gates named in `bias`, and zeros
    everywhere else."""
    gates = GATES[kind]
    if kind != "simple_rnn":
        kwargs["recurrent_activation"] = "linear"
    layer = OURS[kind](
        units, activation="linear", return_sequences=True, **LOOP, **ZEROS, **kwargs
    )
    layer.build((None, None, units))

    def blocks(values):
        matrix = np.zeros((units, len(gates) * units), "float32")
        for gate, value in dict(values).items():
            k = gates.index(gate)
            matrix[:, k * units : (k + 1) * units] = value * np.eye(units)
        return matrix

    b = np.zeros(len(gates) * units, "float32")
    for gate, value in dict(bias).items():
        k = gates.index(gate)
        b[k * units : (k + 1) * units] = value
    if kind == "gru" and layer.reset_after:
        b = np.stack([b, np.zeros_like(b)])  # (input bias, recurrent bias)
    layer.set_weights([blocks(kernel), blocks(recurrent), b])
    return layer


def _input_probe(kind, units, **kwargs):
    """`h_t = x_t * m_t`: the input mask of each step."""
    return _linear(
        kind, units, kernel={CANDIDATE[kind]: 1.0}, bias=PINNED[kind], **kwargs
    )


def _recurrent_probe(kind, units, **kwargs):
    """`h_t = h_{t-1} * m`: the recurrent mask (or the diagonal of the
    weight-dropped recurrent kernel), from `h_0 = 1`."""
    layer = _linear(
        kind, units, recurrent={CANDIDATE[kind]: 1.0}, bias=PINNED[kind], **kwargs
    )
    return layer, [np.ones((1, units), "float32")] * _n_states(layer)


def _ones_states(states, batch):
    return [np.repeat(s, batch, axis=0) for s in states]


# One (samples, units) for the linear probes: eager JAX compiles each op of a
# step once per shape.
LINEAR_N, LINEAR_UNITS = 200, 40


@pytest.mark.parametrize("kind", sorted(GATES))
def test_input_mask_is_shared_across_time_and_drawn_per_sample_and_call(kind):
    layer = _input_probe(kind, LINEAR_UNITS, dropout=0.5, seed=1)
    x = np.ones((LINEAR_N, 5, LINEAR_UNITS), "float32")
    h = to_numpy(layer(x, training=True))  # 0 or 1 / (1 - 0.5)
    assert set(np.unique(h)) == {0.0, 2.0}
    assert np.all(h == h[:, :1])
    bound = six_sigma(0.5, LINEAR_N // 2 * LINEAR_UNITS)
    assert abs(np.mean(h[0::2, 0] != h[1::2, 0]) - 0.5) < bound
    again = to_numpy(layer(x, training=True))
    assert abs(np.mean(again[:, 0] != h[:, 0]) - 0.5) < six_sigma(
        0.5, LINEAR_N * LINEAR_UNITS
    )


@pytest.mark.parametrize("kind", sorted(GATES))
def test_share_input_mask_false_draws_a_fresh_input_mask_each_step(kind):
    layer = _input_probe(
        kind, LINEAR_UNITS, dropout=0.5, share_input_mask=False, seed=1
    )
    h = to_numpy(layer(np.ones((LINEAR_N, 3, LINEAR_UNITS), "float32"), training=True))
    assert set(np.unique(h)) == {0.0, 2.0}
    bound = six_sigma(0.5, LINEAR_N * LINEAR_UNITS)
    assert abs(np.mean(h[:, 0] != h[:, 1]) - 0.5) < bound
    assert abs(np.mean(h[:, 1] != h[:, 2]) - 0.5) < bound


@pytest.mark.parametrize("kind", sorted(GATES))
def test_recurrent_mask_is_shared_across_time_and_drawn_per_sample(kind):
    layer, states = _recurrent_probe(kind, LINEAR_UNITS, recurrent_dropout=0.5, seed=4)
    x = np.zeros((LINEAR_N, 3, LINEAR_UNITS), "float32")
    states = _ones_states(states, LINEAR_N)
    h = to_numpy(layer(x, initial_state=states, training=True))
    assert set(np.unique(h[:, 0])) == {0.0, 2.0}  # h_1 = m
    np.testing.assert_array_equal(h[:, 1], 2.0 * h[:, 0])  # h_2 = m * m = 2 m
    np.testing.assert_array_equal(h[:, 2], 2.0 * h[:, 1])
    assert abs(np.mean(h[0::2, 0] != h[1::2, 0]) - 0.5) < six_sigma(
        0.5, LINEAR_N // 2 * LINEAR_UNITS
    )


@pytest.mark.parametrize("kind", sorted(GATES))
def test_weight_dropout_zeroes_the_same_recurrent_entries_for_the_whole_call(kind):
    layer, states = _recurrent_probe(kind, LINEAR_UNITS, weight_dropout=0.5, seed=5)
    x = np.zeros((LINEAR_N, 3, LINEAR_UNITS), "float32")
    states = _ones_states(states, LINEAR_N)
    h = to_numpy(layer(x, initial_state=states, training=True))
    assert set(np.unique(h[:, 0])) == {0.0, 2.0}  # the kernel's diagonal
    assert np.all(h[:, 0] == h[:1, 0])  # one mask for the whole batch
    np.testing.assert_array_equal(h[:, 1], 2.0 * h[:, 0])  # and every step
    again = to_numpy(layer(x, initial_state=states, training=True))
    assert np.any(again[0, 0] != h[0, 0])  # a fresh mask per call


# Two gates' masks, shown by one linear output per unit (m in {0, 2}):
# LSTM: c = f * c_0 + i * g with i = 1, c_0 = 1, f = m_f, g = 2 m_g, and
#   h = o * c = c: (f kept, g kept) -> 0, 2, 4, 6.
# GRU: z = m_z / 4, r = 1, candidate = m_h, h = z * h_0 + (1 - z) * candidate
#   with h_0 = 1: (z kept, h kept) -> 0, 2, 0.5, 1.5.
TWO_GATES = {
    "lstm": (
        {"f": 1.0, "c": 2.0},
        {
            (False, False): 0.0,
            (True, False): 2.0,
            (False, True): 4.0,
            (True, True): 6.0,
        },
    ),
    "gru": (
        {"z": 0.25, "h": 1.0},
        {
            (False, False): 0.0,
            (False, True): 2.0,
            (True, False): 0.5,
            (True, True): 1.5,
        },
    ),
}


@pytest.mark.parametrize("per_gate_masks", [False, True])
@pytest.mark.parametrize("source", ["dropout", "recurrent_dropout"])
@pytest.mark.parametrize(
    "kind, kwargs",
    [("lstm", {}), ("gru", {"reset_after": True}), ("gru", {"reset_after": False})],
    ids=["lstm", "gru_reset_after", "gru_reset_before"],
)
def test_per_gate_masks_are_independent_and_one_mask_is_shared(
    kind, kwargs, source, per_gate_masks
):
    units, batch = LINEAR_UNITS, LINEAR_N
    visible, table = TWO_GATES[kind]
    where = {"kernel" if source == "dropout" else "recurrent": visible}
    layer = _linear(
        kind,
        units,
        bias=PINNED[kind],
        per_gate_masks=per_gate_masks,
        seed=6,
        **{source: 0.5},
        **where,
        **kwargs,
    )
    x = np.full((batch, 1, units), 1.0 if source == "dropout" else 0.0, "float32")
    states = [np.ones((batch, units), "float32")] * _n_states(layer)
    h = to_numpy(layer(x, initial_state=states, training=True))[:, 0]
    values = np.array(list(table.values()))
    nearest = np.abs(h[..., None] - values).argmin(-1)
    np.testing.assert_allclose(h, values[nearest], atol=1e-5)
    kept = np.array(list(table))[nearest]  # (batch, units, 2): each gate kept?
    agreement = np.mean(kept[..., 0] == kept[..., 1])
    if per_gate_masks:
        assert abs(agreement - 0.5) < six_sigma(0.5, h.size)
        for gate in (0, 1):
            assert abs(kept[..., gate].mean() - 0.5) < six_sigma(0.5, h.size)
    else:
        assert agreement == 1.0


# --- generic probes: the fraction dropped, for every layer ---------------------------

RATE = 0.3
# One shape for the input, recurrent, output and zoneout probes (samples,
# units, features): eager JAX compiles each op once per shape.
PROBE_N, PROBE_UNITS, PROBE_FEATURES = 1200, 6, 3


def _random_probe(layer_cls, units, features, rng, **kwargs):
    """A one-step layer with random weights (LayerNorm scales near 1)."""
    layer = layer_cls(units, seed=7, **LOOP, **ZEROS, **kwargs)
    layer.build((None, 1, features))
    _set_random_weights(rng, layer)
    return layer


def _dropped_inputs(layer_cls, rng):
    """Sample `b > 0` holds a single feature; it is dropped iff the output
    equals that of sample 0, whose input is zero."""
    n, features = PROBE_N, PROBE_FEATURES
    layer = _random_probe(layer_cls, PROBE_UNITS, features, rng, dropout=RATE)
    x = np.zeros((n + 1, 1, features), "float32")
    x[np.arange(1, n + 1), 0, np.arange(n) % features] = 1.0
    y = to_numpy(layer(x, training=True))
    return np.all(y[1:] == y[:1], axis=-1)


def _dropped_recurrent(layer_cls, rng):
    """Sample `b > 0` starts from a single state unit `j`; it is dropped iff
    the other output units equal those of sample 0, which starts from zero
    (a GRU carries `z * h_prev` past the mask, so unit `j` differs)."""
    n, units = PROBE_N, PROBE_UNITS
    layer = _random_probe(layer_cls, units, PROBE_FEATURES, rng, recurrent_dropout=RATE)
    j = np.arange(n) % units
    h0 = np.zeros((n + 1, units), "float32")
    h0[np.arange(1, n + 1), j] = 1.0
    states = [h0] + [np.zeros_like(h0)] * (_n_states(layer) - 1)
    x = np.zeros((n + 1, 1, PROBE_FEATURES), "float32")
    y = to_numpy(layer(x, initial_state=states, training=True))
    same = (y[1:] == y[:1]) | (np.arange(units) == j[:, None])
    return np.all(same, axis=-1)


def _dropped_outputs(layer_cls, rng):
    """A dropped output unit is 0 where the carried state is not; a kept one
    is the state scaled by `1 / (1 - rate)`."""
    layer = _random_probe(
        layer_cls,
        PROBE_UNITS,
        PROBE_FEATURES,
        rng,
        output_dropout=RATE,
        return_state=True,
    )
    x = rng.normal(size=(PROBE_N + 1, 1, PROBE_FEATURES)).astype("float32")
    y, h, *_ = (to_numpy(v) for v in layer(x, training=True))
    assert np.all(h != 0)
    dropped = y == 0
    np.testing.assert_allclose(y[~dropped], h[~dropped] / (1 - RATE), rtol=1e-6)
    return dropped


def _dropped_weights(layer_cls, rng):
    """Sample `j` starts from state unit `j` alone, so it reads row `j` of
    the recurrent kernel. A twin (same seed, same masks) holds a different
    value at one entry of each row: sample `j`'s outputs differ iff that
    entry is kept."""
    units = 256
    layer = _random_probe(layer_cls, units, 2, rng, weight_dropout=RATE)
    twin = _twin(layer, (None, 1, 2))
    weights = twin.get_weights()  # kernel, recurrent_kernel, ...
    recurrent = weights[1]
    recurrent[np.arange(units), rng.integers(0, recurrent.shape[1], units)] += 1.0
    twin.set_weights(weights)
    # An LSTM's c_0 is random so that the forget gate's entries matter too.
    states = [np.eye(units, dtype="float32")]
    states += [rng.normal(size=(units, units)).astype("float32")] * (
        _n_states(layer) - 1
    )
    x = np.zeros((units, 1, 2), "float32")
    dropped = []
    for _ in range(2):  # a fresh kernel mask per call, the same in both
        a = to_numpy(layer(x, initial_state=states, training=True))
        b = to_numpy(twin(x, initial_state=states, training=True))
        dropped.append(np.all(a == b, axis=-1))
    return np.concatenate(dropped)


def _zoned_out(layer_cls, rng):
    """A state unit that zones out keeps its previous value exactly."""
    layer = _random_probe(
        layer_cls, PROBE_UNITS, PROBE_FEATURES, rng, zoneout=RATE, return_state=True
    )
    x = rng.normal(size=(PROBE_N + 1, 1, PROBE_FEATURES)).astype("float32")
    old = [
        rng.normal(size=(PROBE_N + 1, PROBE_UNITS)).astype("float32")
        for _ in range(_n_states(layer))
    ]
    _, *new = layer(x, initial_state=old, training=True)
    return np.stack([to_numpy(n) == o for n, o in zip(new, old, strict=True)])


PROBES = {
    "dropout": _dropped_inputs,
    "recurrent_dropout": _dropped_recurrent,
    "output_dropout": _dropped_outputs,
    "weight_dropout": _dropped_weights,
    "zoneout": _zoned_out,
}


@pytest.mark.parametrize("rate_name", RATES)
@pytest.mark.parametrize("layer_cls", SEQUENCE_LAYERS, ids=_name)
def test_fraction_dropped_equals_the_rate(layer_cls, rate_name):
    dropped = PROBES[rate_name](layer_cls, np.random.default_rng(8))
    assert abs(np.mean(dropped) - RATE) < six_sigma(RATE, dropped.size)


# --- the layer contract and the model around it ------------------------------------


@pytest.mark.parametrize("layer_cls", SEQUENCE_LAYERS, ids=_name)
def test_layer_contract(layer_cls, tmp_path):
    run_layer_test(
        layer_cls,
        {
            "units": 3,
            "dropout": 0.2,
            "recurrent_dropout": 0.2,
            "output_dropout": 0.1,
            "weight_dropout": 0.1,
            "zoneout": 0.1,
            "per_gate_masks": True,
            "seed": 1,
        },
        input_shape=(4, 5, 2),
        expected_output_shape=(4, 3),
        tmp_path=tmp_path,
    )


def test_cells_of_one_name_get_distinct_random_state_paths():
    # torch keys a layer's parameters by variable path: two variables of one
    # path would leave one of them out of `torch_params` (and the optimizer).
    inputs = keras.Input((5, 3))
    bidirectional = keras.layers.Bidirectional(
        layers.VariationalLSTM(4, dropout=0.2, return_sequences=True, **ZEROS)
    )
    x = bidirectional(inputs)
    x = keras.layers.RNN(
        layers.VariationalGRUCell(4, dropout=0.2, name="cell", **ZEROS),
        return_sequences=True,
    )(x)
    x = keras.layers.RNN(
        layers.LayerNormSimpleRNNCell(4, dropout=0.2, name="cell", **ZEROS)
    )(x)
    model = keras.Model(inputs, x)
    variables = {id(v): v for v in model.variables}.values()
    assert len({v.path for v in variables}) == len(variables)
    states = {v.path for v in variables if v.path.endswith("random_state")}
    assert len(states) == 4, states
    if BACKEND == "torch":
        assert len(bidirectional.torch_params) == len(bidirectional.variables)
        assert len(model.torch_params) == len(variables)


def test_time_distributed_head_sees_every_step_in_a_compiled_predict():
    inputs = keras.Input((6, 3))
    head = keras.layers.TimeDistributed(
        keras.layers.Dense(2, kernel_initializer="zeros")
    )
    outputs = [
        head(cls(4, return_sequences=True, **ZEROS)(inputs)) for cls in SEQUENCE_LAYERS
    ]
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(9)
    _set_random_weights(rng, model)
    x = rng.normal(size=(8, 6, 3)).astype("float32")
    eager = model(x)
    for predicted, expected in zip(model.predict(x, verbose=0), eager, strict=True):
        assert predicted.shape == (8, 6, 2)
        np.testing.assert_allclose(predicted, to_numpy(expected), atol=1e-5)
