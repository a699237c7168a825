"""One model with every public layer, across backends, precisions, compilers
and devices (`tests/zoo.py` builds it)."""

import json

import keras
import numpy as np
import pytest

from keras_reg import _random, layers
from keras_reg.callbacks import DropoutScheduler, _scheduled_rates
from keras_reg.layers._stochastic import Stochastic
from tests import zoo
from tests.helpers import run_worker, to_numpy

BACKEND = keras.backend.backend()


# --- persistence ---------------------------------------------------------------


@pytest.mark.slow
def test_every_layer_round_trips_between_backends(partner):
    # Saved here, loaded on the partner backend.
    _check_loaded(
        {k[4:]: v for k, v in partner.results.items() if k.startswith("zoo_")},
        np.load(partner.directory / "here" / "expected.npz"),
        f"{BACKEND} -> {partner.backend}",
    )
    # Saved on the partner backend, loaded here.
    _check_loaded(
        zoo.load_saved(partner.directory / "partner"),
        np.load(partner.directory / "partner" / "expected.npz"),
        f"{partner.backend} -> {BACKEND}",
    )


def _check_loaded(got, expected, direction):
    """`load_model` and `load_weights` on one backend against the model
    saved on another: the same config, outputs to 1e-5, and every weight
    and random stream (seed, counter, rates) exact."""
    assert json.loads(str(got["config"])) == json.loads(str(expected["config"]))
    count = sum(name.startswith("var") for name in expected.files)
    assert count >= 50, count
    for how in ("loaded", "fresh"):
        np.testing.assert_allclose(
            got[f"{how}_output"],
            expected["output"],
            rtol=1e-5,
            atol=1e-5,
            err_msg=f"{direction} {how}",
        )
        for index in range(count):
            np.testing.assert_array_equal(
                got[f"{how}_var{index}"],
                expected[f"var{index}"],
                err_msg=f"{direction} {how} {expected[f'path{index}']}",
            )


# --- precision and compilation ---------------------------------------------------


class _TraceCounter(keras.layers.Layer):
    """The identity; counts how often Python runs its `call` (once per trace
    in a compiled step)."""

    traces = 0

    def call(self, inputs):
        type(self).traces += 1
        return inputs


@pytest.mark.slow
def test_every_layer_trains_compiled_in_bfloat16_with_rates_changed_between_epochs():
    # The production path: mixed_bfloat16, a compiled step (XLA on
    # TensorFlow and JAX; eager on torch, whose torch.compile traces Keras'
    # Python time loops for minutes), and a schedule that changes every
    # rate of every layer and cell between epochs.
    keras.config.set_dtype_policy("mixed_bfloat16")
    zoo_model = zoo.build()
    zoo.set_weights(zoo_model)
    outputs = _TraceCounter(dtype="float32")(zoo_model(zoo_model.inputs))
    model = keras.Model(zoo_model.inputs, outputs)
    model.compile(optimizer="adam", loss="mse", jit_compile=BACKEND != "torch")
    rates = [0.3, 0.05, 0.2]
    traces = []

    class Traces(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            traces.append(_TraceCounter.traces)

    x, target = zoo.data(batch=16)
    history = model.fit(
        x,
        target,
        batch_size=8,
        epochs=3,
        verbose=0,
        callbacks=[
            DropoutScheduler(lambda epoch: rates[epoch]),
            Traces(),
        ],
    )
    assert np.all(np.isfinite(history.history["loss"]))
    assert history.history["dropout_rate"] == pytest.approx(rates)
    if BACKEND != "torch":
        assert traces[0] == traces[1] == traces[2], traces
    # Every rate of every layer and cell is the last one, in its stream too.
    scheduled = 0
    for layer in _stochastic_layers(zoo_model):
        state = to_numpy(layer.seed_generator.state.value)
        for name in _scheduled_rates(layer):
            assert getattr(layer, name) == rates[-1], (layer.name, name)
            slot = 2 + layer._slot(name)
            assert state[slot] == _random.threshold(rates[-1]), (layer.name, name)
            scheduled += 1
    assert scheduled >= 40
    # float32 variables, bfloat16 computation.
    assert {keras.backend.standardize_dtype(v.dtype) for v in model.weights} == {
        "float32"
    }
    assert set(_output_dtypes(zoo_model).values()) == {"bfloat16"}
    # Inference (compiled on JAX, where eager calls retrace every scan).
    y = model.predict(x, verbose=0) if BACKEND == "jax" else model(x)
    assert np.all(np.isfinite(to_numpy(y)))


@pytest.mark.slow
def test_every_layer_trains_in_float64(tmp_path):
    if BACKEND == "jax" and not _jax_x64():
        # JAX computes in float64 only with `jax_enable_x64`. Where JAX has
        # `jax.enable_x64`, a context manager, it turns it on for the calls
        # inside (its jit caches key on it): no subprocess (8 CPU s to
        # start one, and 14 CPU s for this fit in it against 23).
        import jax

        if hasattr(jax, "enable_x64"):
            with jax.enable_x64(True):
                _assert_trains_in_float64({})
            return
        # Older JAX: the flag must be set before JAX starts.
        got = run_worker(
            "backend_worker.py",
            "jax",
            "policy",
            "float64",
            tmp_path / "out.npz",
            JAX_ENABLE_X64="1",
        )
        assert np.all(np.isfinite(got["losses"]))
        assert list(got["dtypes"]) == ["float32", "float64"]
        assert got["layer_dtypes"].tolist() == ["float64"]
        return
    # Eager on TensorFlow and torch: the compiled step is covered above.
    _assert_trains_in_float64({} if BACKEND == "jax" else {"run_eagerly": True})


def _assert_trains_in_float64(compile_kwargs):
    model, losses = zoo.fit_under_policy("float64", **compile_kwargs)
    assert np.all(np.isfinite(losses))
    # The head is float32 on purpose (a mixed-precision habit).
    assert {keras.backend.standardize_dtype(w.dtype) for w in model.weights} == {
        "float32",
        "float64",
    }
    assert set(_output_dtypes(model).values()) == {"float64"}


def _stochastic_layers(model):
    """Every keras_reg layer and cell of the model, wrapped ones included."""
    found = []
    for layer in model.layers:
        while layer is not None:
            if isinstance(layer, Stochastic):
                found.append(layer)
            layer = getattr(layer, "cell", None)
    return found


def _output_dtypes(model):
    """The output dtype of every layer but the inputs and the float32 head."""
    return {
        layer.name: keras.backend.standardize_dtype(layer.output.dtype)
        for layer in model.layers
        if layer.name != "head" and not isinstance(layer, keras.layers.InputLayer)
    }


def _jax_x64():
    import jax

    return bool(jax.config.jax_enable_x64)


# --- data parallelism ----------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(
    BACKEND == "torch", reason="Keras has no data-parallel trainer for torch"
)
def test_data_parallel_replicas_draw_different_masks(tmp_path):
    env = {}
    if BACKEND == "jax":
        env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    got = run_worker("distributed_worker.py", BACKEND, tmp_path / "replicas.npz", **env)
    for name, (layer, x) in zoo.probes().items():
        replicas = got[name]
        assert replicas.shape == (2, *layer.compute_output_shape(x.shape))
        assert not np.array_equal(replicas[0], replicas[1]), name
        if BACKEND == "tensorflow":
            # Replica 0 draws what a single device draws.
            expected = to_numpy(layer(x, training=True))
            np.testing.assert_allclose(replicas[0], expected, atol=1e-6)
        else:
            # One program over the global batch: exactly the single-device
            # masks of that batch, split across the devices.
            expected = to_numpy(layer(np.concatenate([x, x]), training=True))
            np.testing.assert_allclose(
                replicas.reshape(expected.shape), expected, atol=1e-6
            )
    assert np.all(np.isfinite(got["losses"])) and got["weights_finite"]


@pytest.mark.slow
@pytest.mark.skipif(
    BACKEND == "torch" and keras.__version__.startswith(("3.7.", "3.8.")),
    reason="Keras 3.7 and 3.8 cannot torch.compile a plain Keras model either "
    "(torch 2.13's dynamo fails in Keras' loss code); Keras 3.12 can",
)
def test_compiled_training_equals_eager_training_for_the_dropout_family():
    # Portable masks are a function of (seed, counter, index), so a compiled
    # step (XLA; torch.compile on torch) must draw exactly the eager masks,
    # and advance the streams once per step: equal weights after a fit.
    from tests import backend_worker

    weights = {}
    for jit_compile in (False, True):
        model = _torch_compile_model() if BACKEND == "torch" else None
        model = model or backend_worker.resume_model()
        model.compile(
            optimizer=keras.optimizers.SGD(0.05),
            loss="mse",
            jit_compile=jit_compile,
            run_eagerly=not jit_compile,
        )
        backend_worker.train_epoch(model)  # 3 steps
        weights[jit_compile] = model.get_weights()
        states = zoo.random_states(model)
        assert len(states) == (1 if BACKEND == "torch" else 5)
        for state in states:
            assert to_numpy(state.value)[1] == 3, state.path
    for eager, compiled in zip(weights[False], weights[True], strict=True):
        np.testing.assert_allclose(compiled, eager, rtol=1e-5, atol=1e-6)


def _torch_compile_model():
    """InvertedDropout only, on the same data: every layer draws through
    the same `_random` code, and a cold `torch.compile` of a model costs
    32 s here plus 30 to 50 s per dropout layer (Keras' torch backend
    breaks the graph in several places): 150 to 176 s for the five. The
    other four were compiled and trained by hand (README, "Backends and
    precision"). The one test of inductor's code generation in a torch
    run: the execution matrix's torch.compile runs "aot_eager"."""
    inputs = keras.Input((6,), dtype="int32")
    x = keras.layers.Embedding(50, 8)(inputs)
    x = keras.layers.Flatten()(x)
    x = layers.InvertedDropout(0.4, seed=5)(x)
    model = keras.Model(inputs, keras.layers.Dense(1)(x))
    rng = np.random.default_rng(2)
    model.set_weights(
        [rng.normal(size=w.shape).astype("float32") * 0.2 for w in model.weights]
    )
    return model
