"""Every fast path of the sequence layers computes what the portable loop does.

The backend kernels (`keras_reg._kernels`: torch's fused `_VF` kernels and
its hand-written BPTT, ...) are checked against the portable `keras.ops`
loop, which `_portable` forces by making every kernel decline. Outputs,
returned states and the weights after one SGD step (so, the gradients)
agree to 1e-5 on the CPU (1e-4 with cuDNN), with input masks,
`go_backwards`, initial and returned states, `stateful`, and under mixed
precision. The masks are the
same on both paths: they are drawn before the dispatch.
"""

import keras
import numpy as np
import pytest

from keras_reg import _kernels
from keras_reg.layers import (
    LayerNormGRU,
    LayerNormLSTM,
    LayerNormSimpleRNN,
    LayerNormWrapper,
    VariationalGRU,
    VariationalLSTM,
    VariationalSimpleRNN,
)
from tests.helpers import to_numpy

BACKEND = keras.backend.backend()
_KERNELS = ("fused_recurrence", "fast_recurrence", "time_loop", "layer_norm")
# torch's kernels and TensorFlow's loop run on the CPU; the cuDNN kernels
# of TensorFlow and JAX need a GPU.
KERNELS_RUN_HERE = BACKEND in ("torch", "tensorflow") or _kernels.gpu_available()
needs_kernels = pytest.mark.skipif(
    not KERNELS_RUN_HERE,
    reason=f"the {BACKEND} backend's recurrent kernels need a GPU (none here)",
)

# On a TensorFlow CPU the fast path is the backend's time loop, the same
# for every cell and option: these cases cover it.
ONLY_TIME_LOOP = BACKEND == "tensorflow" and not _kernels.gpu_available()
TIME_LOOP_CASES = {
    (kind, regs, options)
    for kind in ("gru", "lstm")
    for regs in ("none", "per_gate")
    for options in ("masked_backwards", "states")
} | {("lstm", "recurrent", "masked_zero_output")}
# The cell kinds that Keras' cuDNN kernels take on a GPU, per backend.
FUSED_ON_GPU = {"tensorflow": ("lstm", "gru"), "jax": ("lstm",)}
UNITS, STEPS, FEATURES, BATCH = 5, 6, 3, 4
# cuDNN sums in another order than the portable loop (seen on an H200 with
# TF32 off: up to 8e-5 after 18 steps); the CPU kernels agree to 1e-5.
ATOL = 1e-4 if _kernels.gpu_available() else 1e-5
LAYERS = {"lstm": VariationalLSTM, "gru": VariationalGRU, "rnn": VariationalSimpleRNN}
REGULARIZATION = {
    # Inference and the plain recurrence: the fused kernels.
    "none": {},
    # Masks shared by the sequence, applied outside the recurrence: fused.
    "outside": dict(dropout=0.3, weight_dropout=0.3, output_dropout=0.3),
    # A recurrent mask per sample: torch's hand-written BPTT.
    "recurrent": dict(dropout=0.3, recurrent_dropout=0.4),
    "per_gate": dict(
        dropout=0.3,
        recurrent_dropout=0.4,
        weight_dropout=0.2,
        output_dropout=0.2,
        per_gate_masks=True,
    ),
}
OPTIONS = {
    "plain": {},
    "masked_backwards": dict(go_backwards=True, masked=True),
    "states": dict(initial_state=True, return_state=True),
    "masked_zero_output": dict(masked=True, zero_output_for_mask=True),
}


def _data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(BATCH, STEPS, FEATURES)).astype("float32")
    x[1, 4:] = 0.0  # masked by `Masking` where asked
    x[2, :2] = 0.0
    states = [rng.normal(size=(BATCH, UNITS)).astype("float32") for _ in range(2)]
    target = rng.normal(size=(BATCH, STEPS, UNITS)).astype("float32")
    return x, states, target


# TensorFlow traces a function for each model's `train_on_batch` (about 1.5
# CPU s here); the portable reference trains eagerly there instead (the
# same loop, op by op), against the fast path in the traced function that
# `fit` runs. torch is eager either way; JAX's eager calls would compile
# each op of the loop.
REFERENCE_EAGERLY = BACKEND == "tensorflow"


def _model(kind, regs, options, reference=False):
    """The layer in a small model; every output feeds the loss. The
    `reference` (the portable loop) runs eagerly where that is cheaper."""
    options = dict(options)
    masked = options.pop("masked", False)
    initial = options.pop("initial_state", False)
    layer = LAYERS[kind](UNITS, return_sequences=True, seed=7, **regs, **options)
    inputs = [keras.Input((STEPS, FEATURES))]
    x = inputs[0]
    if masked:
        x = keras.layers.Masking()(x)
    n_states = 2 if kind == "lstm" else 1
    kwargs = {}
    if initial:
        inputs += [keras.Input((UNITS,)) for _ in range(n_states)]
        kwargs["initial_state"] = inputs[1:]
    outputs = layer(x, **kwargs)
    if not isinstance(outputs, (list, tuple)):
        outputs = [outputs]
    total = outputs[0]
    for state in outputs[1:]:
        total = total + 0.5 * keras.ops.expand_dims(state, 1)
    model = keras.Model(inputs, total)
    rng = np.random.default_rng(1)
    model.set_weights([0.5 * rng.normal(size=w.shape) for w in model.get_weights()])
    model.compile(
        optimizer=keras.optimizers.SGD(1.0),
        loss="mse",
        run_eagerly=reference and REFERENCE_EAGERLY,
    )
    return model, n_states


def _run(kind, regs, options, reference=False):
    model, n_states = _model(kind, regs, options, reference)
    x, states, target = _data()
    inputs = [x, *states[:n_states]] if options.get("initial_state") else x
    outputs = [to_numpy(model(inputs, training=training)) for training in (False, True)]
    model.train_on_batch(inputs, target)
    return outputs, model.get_weights()


def _compare(fast, slow, atol):
    for a, b in zip(fast[0], slow[0], strict=True):
        np.testing.assert_allclose(a, b, atol=atol, rtol=atol)
    for a, b in zip(fast[1], slow[1], strict=True):
        np.testing.assert_allclose(a, b, atol=atol, rtol=atol)


@needs_kernels
@pytest.mark.parametrize("options", sorted(OPTIONS))
@pytest.mark.parametrize("regs", sorted(REGULARIZATION))
@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_fast_path_equals_the_portable_loop(kind, regs, options, monkeypatch):
    if ONLY_TIME_LOOP and (kind, regs, options) not in TIME_LOOP_CASES:
        pytest.skip("the time loop is the only fast path here: a subset covers it")
    regs, options = REGULARIZATION[regs], OPTIONS[options]
    if kind == "rnn" and regs.get("per_gate_masks"):
        pytest.skip("a SimpleRNN has one gate block")
    used = _spy(monkeypatch)
    fast = _run(kind, regs, options)
    if BACKEND == "torch":
        # The kernels this test is about did run: the fused kernel for
        # unmasked calls (inference at least), the BPTT for recurrent masks.
        recurrent = "recurrent_dropout" in regs and kind != "rnn"
        assert ("fused_recurrence" in used) == (not options.get("masked")), used
        assert ("fast_recurrence" in used) == recurrent, used
    elif _kernels.gpu_available() and kind in FUSED_ON_GPU.get(BACKEND, ()):
        # Keras' cuDNN kernels, for unmasked calls (inference at least).
        assert ("fused_recurrence" in used) == (not options.get("masked")), used
    _portable(monkeypatch)
    slow = _run(kind, regs, options, reference=True)
    _compare(fast, slow, atol=ATOL)


def _portable(monkeypatch):
    """Every backend kernel declines: the portable loop runs."""
    for name in _KERNELS:
        monkeypatch.setattr(_kernels, name, lambda *args: None)


def _spy(monkeypatch):
    """Records the names of the kernels that took a call."""
    used = set()
    for name in _KERNELS[:2]:
        kernel = getattr(_kernels, name)

        def spy(*args, kernel=kernel, name=name):
            result = kernel(*args)
            if result is not None:
                used.add(name)
            return result

        monkeypatch.setattr(_kernels, name, spy)
    return used


@needs_kernels
@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_stateful_fast_path_equals_the_portable_loop(kind, monkeypatch):
    def run():
        layer = LAYERS[kind](UNITS, stateful=True, return_sequences=True)
        x = _data()[0]
        layer.build(x.shape)
        rng = np.random.default_rng(2)
        weights = [0.5 * rng.normal(size=w.shape) for w in layer.get_weights()]
        layer.set_weights(weights)
        return [to_numpy(layer(x)) for _ in range(3)]

    fast = run()
    _portable(monkeypatch)
    slow = run()
    for a, b in zip(fast, slow, strict=True):
        np.testing.assert_allclose(a, b, atol=ATOL)


@needs_kernels
@pytest.mark.parametrize("regs", ["none", "per_gate"])
def test_fast_path_equals_the_portable_loop_in_mixed_precision(regs, monkeypatch):
    regs = REGULARIZATION[regs]
    recurrent = "recurrent_dropout" in regs
    # torch's fused kernels take half precision on a GPU only.
    torch_fused = BACKEND == "torch" and _kernels.gpu_available()
    if BACKEND == "torch" and not (torch_fused or recurrent):
        pytest.skip(
            "torch's CPU kernels take float32 and float64 only: no fast path "
            "runs a bfloat16 call without recurrent masks here"
        )
    keras.config.set_dtype_policy("mixed_bfloat16")
    # No input mask: the fused kernels take unmasked calls only.
    options = dict(go_backwards=True)
    used = _spy(monkeypatch)
    loops = _spy_time_loop(monkeypatch)
    fast = _run("lstm", regs, options)
    # The fast paths did run (else this compares the portable loop with
    # itself).
    if BACKEND == "torch":
        assert ("fused_recurrence" in used) == torch_fused, used
        assert ("fast_recurrence" in used) == recurrent, used
    elif ONLY_TIME_LOOP:
        assert loops, "TensorFlow's time loop did not run"
    else:
        assert used or loops, "no fast path ran"
    _portable(monkeypatch)
    slow = _run("lstm", regs, options, reference=True)
    _compare(fast, slow, atol=2e-2)


def _spy_time_loop(monkeypatch):
    """Records each call of the backend's own time loop."""
    calls = []
    loop = _kernels.time_loop()
    if loop is not None:

        def spy(*args, **kwargs):
            calls.append(1)
            return loop(*args, **kwargs)

        monkeypatch.setattr(_kernels, "time_loop", lambda: spy)
    return calls


BATCH_SHARED = dict(
    dropout=0.3,
    recurrent_dropout=0.4,
    recurrent_dropout_mode="batch",
    weight_dropout=0.2,
    output_dropout=0.2,
)


@needs_kernels
@pytest.mark.parametrize("per_gate_masks", [False, True])
@pytest.mark.parametrize("options", ["plain", "masked_backwards"])
@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_batch_shared_recurrent_mask_runs_fused_and_equals_the_portable_loop(
    kind, options, per_gate_masks, monkeypatch
):
    if kind == "rnn" and per_gate_masks:
        pytest.skip("a SimpleRNN has one gate block")
    regs = dict(BATCH_SHARED, per_gate_masks=per_gate_masks)
    options = OPTIONS[options]
    used = _spy(monkeypatch)
    fast = _run(kind, regs, options)
    if BACKEND == "torch":
        # The recurrent mask folds into the kernel: the fused kernel runs
        # the training call, the hand-written BPTT never does.
        assert ("fused_recurrence" in used) == (not options.get("masked")), used
        assert "fast_recurrence" not in used, used
    _portable(monkeypatch)
    slow = _run(kind, regs, options, reference=True)
    _compare(fast, slow, atol=ATOL)


@needs_kernels
@pytest.mark.parametrize("options", ["plain", "masked_backwards"])
@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_fresh_input_masks_per_step_equal_the_portable_loop(kind, options, monkeypatch):
    # share_input_mask=False: step t's input mask goes with input step t,
    # also when the steps run backwards.
    regs = dict(dropout=0.3, recurrent_dropout=0.4, share_input_mask=False)
    options = OPTIONS[options]
    used = _spy(monkeypatch)
    fast = _run(kind, regs, options)
    if BACKEND == "torch":
        assert "fast_recurrence" in used, used
    _portable(monkeypatch)
    _compare(fast, _run(kind, regs, options, reference=True), atol=ATOL)


# --- use_cudnn and the dispatch, with the kernels faked away -----------------------


def _x():
    return _data()[0]


def test_use_cudnn_true_raises_where_no_fused_kernel_can_run():
    layer = VariationalLSTM(UNITS, recurrent_dropout=0.3, use_cudnn=True)
    with pytest.raises(ValueError, match="use_cudnn=True.*recurrent_dropout"):
        layer(_x(), training=True)
    norm = LayerNormLSTM(UNITS, use_cudnn=True)
    with pytest.raises(ValueError, match="use_cudnn=True.*normalizes"):
        norm(_x())


@pytest.mark.skipif(
    BACKEND != "torch" and not (_kernels.gpu_available() and BACKEND in FUSED_ON_GPU),
    reason=f"no fused kernel runs on a {BACKEND} CPU: use_cudnn=False has "
    "nothing to turn off here",
)
def test_use_cudnn_false_never_runs_a_fused_kernel(monkeypatch):
    # An LSTM: the kind that every backend's fused kernel takes.
    used = _spy(monkeypatch)
    auto = VariationalLSTM(UNITS, seed=1)
    auto(_x())
    assert "fused_recurrence" in used, "the spy sees the fused kernel run"
    used.clear()
    off = VariationalLSTM(UNITS, use_cudnn=False, seed=1)
    off(_x())
    assert "fused_recurrence" not in used


def test_an_unavailable_fused_kernel_falls_back_to_the_same_result(monkeypatch):
    # Faked unavailable, so that this holds on every machine: Keras' cuDNN
    # functions raise NotImplementedError (as they do without a GPU), and
    # torch's kernel declines every call.
    from keras_reg import _keras_private

    def unavailable(kind):
        def kernel(*args, **kwargs):
            raise NotImplementedError

        return kernel

    monkeypatch.setattr(_keras_private, "backend_rnn_kernel", unavailable)
    if BACKEND == "torch":
        monkeypatch.setattr(_kernels._module(), "fused_recurrence", lambda *a: None)
    x = _x()
    auto = VariationalLSTM(UNITS, return_sequences=True)
    forced = VariationalLSTM(UNITS, use_cudnn=True)
    off = VariationalLSTM(UNITS, use_cudnn=False, return_sequences=True)
    auto.build(x.shape)
    off.build(x.shape)
    off.set_weights(auto.get_weights())
    np.testing.assert_array_equal(to_numpy(auto(x)), to_numpy(off(x)))
    with pytest.raises(ValueError, match="use_cudnn=True"):
        forced(x)


@pytest.mark.skipif(BACKEND == "torch", reason="torch runs its own kernels")
@pytest.mark.parametrize("go_backwards", [False, True])
def test_keras_fused_kernel_gets_the_masked_inputs_and_kernel(
    monkeypatch, go_backwards
):
    # A stand-in for Keras' cuDNN LSTM with its contract (the portable LSTM
    # equations; JAX's returns a go_backwards sequence in input order): the
    # layer hands it the dropped inputs and the dropped recurrent kernel and
    # gets the portable loop's result.
    from keras import ops

    from keras_reg import _keras_private

    def stand_in(kind):
        assert kind == "lstm"

        def lstm(
            x,
            h,
            c,
            mask,
            kernel,
            recurrent_kernel,
            bias,
            return_sequences,
            go_backwards,
            **unused,
        ):
            assert mask is None
            steps = x.shape[1]
            order = range(steps - 1, -1, -1) if go_backwards else range(steps)
            outputs = []
            for t in order:
                z = ops.matmul(x[:, t], kernel) + ops.matmul(h, recurrent_kernel)
                i, f, g, o = ops.split(z + bias, 4, axis=-1)
                c = ops.sigmoid(f) * c + ops.sigmoid(i) * ops.tanh(g)
                h = ops.sigmoid(o) * ops.tanh(c)
                outputs.append(h)
            if go_backwards and BACKEND == "jax":
                outputs = outputs[::-1]
            return h, ops.stack(outputs, axis=1), [h, c]

        return lstm

    regs = dict(dropout=0.3, weight_dropout=0.3, output_dropout=0.3, seed=5)
    x = _x()
    layers = [
        VariationalLSTM(
            UNITS,
            return_sequences=True,
            go_backwards=go_backwards,
            use_cudnn=use,
            **regs,
        )
        for use in (True, False)
    ]
    layers[0].build(x.shape)
    layers[1].build(x.shape)
    layers[1].set_weights(layers[0].get_weights())
    monkeypatch.setattr(_keras_private, "backend_rnn_kernel", stand_in)
    # Keras' kernel is refused without a GPU: the stand-in needs none.
    monkeypatch.setattr(_kernels, "gpu_available", lambda: True)
    for training in (False, True):
        a, b = (to_numpy(layer(x, training=training)) for layer in layers)
        np.testing.assert_allclose(a, b, atol=1e-5)


# --- layer normalization ------------------------------------------------------------

LAYER_NORM = {
    "lstm": LayerNormLSTM,
    "gru": LayerNormGRU,
    "rnn": LayerNormSimpleRNN,
}


@pytest.fixture(scope="module")
def layer_norm_runs():
    """The three LayerNorm layers side by side in one model (one compiled
    train step per path, not one per kind: 2 CPU s each on JAX), through
    the backend's kernel and through the portable code: per kind, the
    outputs in inference and training and the weights after one SGD step.
    Each layer's loss term depends on its own weights alone, so its step is
    the one a model of that layer alone takes."""

    def run():
        inputs = keras.Input((STEPS, FEATURES))
        masked = keras.layers.Masking()(inputs)
        kinds = sorted(LAYER_NORM)
        # Weights set from NumPy below: no random initial draws (on JAX,
        # a compile per weight shape).
        stack = [
            LAYER_NORM[kind](
                UNITS,
                return_sequences=True,
                recurrent_dropout=0.3,
                seed=4,
                kernel_initializer="zeros",
                recurrent_initializer="zeros",
            )
            for kind in kinds
        ]
        model = keras.Model(inputs, [layer(masked) for layer in stack])
        for layer in stack:
            rng = np.random.default_rng(3)
            layer.set_weights([rng.normal(size=w.shape) for w in layer.get_weights()])
        model.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse")
        x, _, target = _data()
        outputs = [[to_numpy(y) for y in model(x, training=t)] for t in (False, True)]
        model.train_on_batch(x, [target] * len(kinds))
        return {
            kind: ([outputs[0][i], outputs[1][i]], stack[i].get_weights())
            for i, kind in enumerate(kinds)
        }

    fast = run()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_kernels, "layer_norm", lambda: None)
        return fast, run()


@pytest.mark.skipif(
    _kernels.layer_norm() is None,
    reason=f"the {BACKEND} backend normalizes with the portable keras.ops code",
)
@pytest.mark.parametrize("kind", sorted(LAYER_NORM))
def test_layer_norm_kernel_equals_the_portable_one(kind, layer_norm_runs):
    # The LayerNorm layers (TFA's equations) through the backend's kernel
    # and through the portable code: outputs and one SGD step agree.
    fast, portable = layer_norm_runs
    _compare(fast[kind], portable[kind], atol=ATOL)


def test_layer_norm_wrapper_normalizes_like_the_cells():
    # One layer normalization for the cells and the wrapper: a wrapped
    # SimpleRNN cell equals LN of the plain cell's outputs, computed here
    # in NumPy (gamma 1, beta 0 at initialization).
    cell = keras.layers.SimpleRNNCell(UNITS)
    layer = keras.layers.RNN(LayerNormWrapper(cell, epsilon=1e-3))
    x = _data()[0]
    got = to_numpy(layer(x))
    h = np.zeros((BATCH, UNITS))
    kernel, recurrent, bias = cell.get_weights()
    for t in range(STEPS):
        h = np.tanh(x[:, t] @ kernel + h @ recurrent + bias)
        h = (h - h.mean(-1, keepdims=True)) / np.sqrt(h.var(-1, keepdims=True) + 1e-3)
    np.testing.assert_allclose(got, h, atol=1e-5)


# --- one answer to "may a fast path run this call?" ---------------------------------


def _call_args(layer, training=True):
    """The `(layer, sequences, initial_state, mask, masks)` of one call, with
    the masks the layer draws."""
    from keras_reg.layers._stochastic import sampling
    from keras_reg.layers.rnn import _masks

    x = keras.ops.convert_to_tensor(_x())
    layer.build(x.shape)
    masks = _masks.NONE
    if sampling(training, layer.cell):
        masks = _masks.draw(layer.cell, BATCH, FEATURES, x.dtype, STEPS)
    state = layer.get_initial_state(BATCH)
    return layer, x, state, None, masks


@pytest.mark.parametrize(
    "make, training",
    [
        (lambda: VariationalLSTM(UNITS), False),
        (lambda: VariationalLSTM(UNITS, recurrent_dropout=0.3), True),
        (lambda: VariationalGRU(UNITS, reset_after=False), False),
        (lambda: VariationalLSTM(UNITS, zoneout=0.3), True),
        (lambda: VariationalSimpleRNN(UNITS, activation="sigmoid"), False),
        (lambda: LayerNormLSTM(UNITS), False),
        (lambda: VariationalLSTM(UNITS, use_cudnn=False), False),
    ],
)
def test_a_fused_kernel_runs_exactly_when_its_refusal_is_none(make, training):
    # The decision (the kernel ran) and its explanation (`why_not`, the
    # use_cudnn=True error) come from the same refusal.
    args = _call_args(make(), training)
    refusal = _kernels.fused_refusal(*args)
    ran = _kernels.fused_recurrence(*args) is not None
    if refusal is None:
        assert ran
    else:
        assert not ran
        assert isinstance(refusal, str) and refusal.endswith(".")
        assert _kernels.why_not(*args) == refusal


def test_use_cudnn_true_error_prints_the_refusal():
    layer = VariationalGRU(UNITS, reset_after=False, use_cudnn=True)
    args = _call_args(layer, training=False)
    reason = _kernels.fused_refusal(*args)
    assert reason is not None
    with pytest.raises(ValueError) as error:
        layer(_x())
    assert reason in str(error.value)


@pytest.mark.skipif(BACKEND != "torch", reason="torch's own BPTT")
def test_the_hand_written_bptt_runs_exactly_when_its_refusal_is_none():
    cases = {
        "runs": VariationalLSTM(UNITS, recurrent_dropout=0.3),
        "no recurrent mask": VariationalLSTM(UNITS, dropout=0.3),
        "simple rnn": VariationalSimpleRNN(UNITS, recurrent_dropout=0.3),
        "zoneout": VariationalLSTM(UNITS, recurrent_dropout=0.3, zoneout=0.2),
    }
    for name, layer in cases.items():
        args = _call_args(layer)
        refusal = _kernels.fast_refusal(*args)
        assert (refusal is None) == (name == "runs"), (name, refusal)
        assert (_kernels.fast_recurrence(*args) is not None) == (refusal is None)


@pytest.mark.skipif(BACKEND != "torch", reason="a torch-private namespace")
@pytest.mark.parametrize("mode", ["lstm", "gru", "rnn_tanh", "rnn_relu"])
def test_torch_vf_kernels_compute_what_torch_nn_does(mode):
    # Canary of `torch._VF` (private; checked with torch 2.13.0): the
    # accessor finds each kernel, and it computes what torch.nn's module of
    # the same kind computes with the same weights.
    import torch

    from keras_reg._kernels import _torch

    torch.manual_seed(0)
    module = {
        "lstm": torch.nn.LSTM(3, 4, batch_first=True),
        "gru": torch.nn.GRU(3, 4, batch_first=True),
        "rnn_tanh": torch.nn.RNN(3, 4, batch_first=True, nonlinearity="tanh"),
        "rnn_relu": torch.nn.RNN(3, 4, batch_first=True, nonlinearity="relu"),
    }[mode]
    x = torch.randn(2, 5, 3)
    h = torch.zeros(1, 2, 4)
    hx = (h, h) if mode == "lstm" else h
    params = list(module.parameters())
    outputs, *_ = _torch.vf(mode)(x, hx, params, True, 1, 0.0, False, False, True)
    expected, _ = module(x, hx)
    np.testing.assert_allclose(
        outputs.detach().numpy(), expected.detach().numpy(), atol=1e-6
    )
