"""Run under another KERAS_BACKEND by the cross-backend tests.

python tests/backend_worker.py partner DIR OUT.npz
    everything one backend's suite asks of its partner backend (see
    `tests/conftest.py`), in one process:
    - masks from every dropout-family layer (three successive eager calls
      each), training-mode outputs of the recurrent layers, `mc_predict`
      with a seed, and the weights of a small model after three `fit` steps;
    - loads DIR/here/half.keras, saved mid-training by the suite's backend
      (compile=False, then compiled again), trains one more epoch;
    - loads DIR/here/zoo.keras (safe_mode, no custom_objects) and
      DIR/here/zoo.weights.h5 (into a freshly built `tests.zoo` model) and
      records their inference outputs, config and variables;
    - saves its own half-trained model and zoo model under DIR/partner/ for
      the suite's backend to load;
    - on TensorFlow, the torch suite's partner, last: loads
      DIR/here/half.keras (compiled and saved on torch) as it is and
      records the error of its first train step (a Keras bug's canary, no
      process of its own).
python tests/backend_worker.py policy POLICY OUT.npz
    fits the `tests.zoo` model under a dtype policy (JAX runs float64 here,
    with JAX_ENABLE_X64=1 set before it starts).
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras_reg  # noqa: E402
from keras_reg import layers  # noqa: E402
from tests import zoo  # noqa: E402
from tests.training_call import training_call as _training_call  # noqa: E402


def training_call(layer, x):
    """`layer(x, training=True)` as NumPy. On JAX one `jax.jit` of the
    layer's `stateless_call` per layer (`tests.training_call`, its state
    written back): an eager call compiles each operation, and a recurrent
    layer's scan, at every call (the eight recurrent layers' two calls:
    9.5 CPU s eager, 6.0 jitted; the dropout family's three: 5.3 against
    2.4). The layers here never change between calls. (The suite's own
    runs compare eager and compiled calls.)"""
    return _training_call(layer, x, cache=_JITTED)


_JITTED = {}


def layer_outputs():
    ones3 = np.ones((8, 5, 16), "float32")
    ones4 = np.ones((4, 9, 11, 3), "float32")
    cases = {
        "inverted": (layers.InvertedDropout(0.3, seed=11), ones3),
        "inverted_shared": (
            layers.InvertedDropout(0.5, shared_axes=[1], seed=12),
            ones3,
        ),
        "time_shared": (layers.TimeSharedDropout(0.4, seed=13), ones3),
        "embedding": (
            layers.EmbeddingDropout(40, 2, 0.5, seed=14, embeddings_initializer="ones"),
            np.arange(40, dtype="int32").reshape(2, 20),
        ),
        "dropblock": (layers.DropBlock2D(0.3, 3, seed=15), ones4),
        "droppath": (layers.DropPath(0.5, seed=16), ones3),
        "dropblock1d": (
            layers.DropBlock1D(0.3, 4, seed=17),
            np.ones((4, 23, 3), "float32"),
        ),
        "dropblock2d_shared": (
            layers.DropBlock2D(0.3, (2, 5), shared_channels=True, seed=18),
            np.ones((4, 11, 17, 3), "float32"),
        ),
        "dropblock3d": (
            layers.DropBlock3D(0.3, (1, 2, 3), data_format="channels_first", seed=19),
            np.ones((2, 3, 5, 6, 7), "float32"),
        ),
        "droppath_batch": (layers.DropPath(0.5, mode="batch", seed=20), ones3),
        "stochastic_depth": (
            layers.StochasticDepth(0.5, seed=21),
            [ones3, np.full_like(ones3, 2.0)],
        ),
        # Relaxed masks: logs and sigmoids may round differently per backend.
        "float_concrete": (
            layers.ConcreteDropout(
                keras.layers.Dense(16, use_bias=False, kernel_initializer="identity"),
                init_min=0.3,
                init_max=0.3,
                seed=22,
            ),
            ones3,
        ),
    }
    out = {}
    for name, (layer, x) in cases.items():
        for call in range(3):
            out[f"{name}_{call}"] = training_call(layer, x)
    return out


def recurrent_outputs():
    """Training-mode outputs of the recurrent layers with every mask kind,
    from fixed weights: equal on every backend only if the masks are."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(6, 5, 4)).astype("float32")
    # Zero initializers: the weights are set below, and a random draw at
    # each kernel's shape costs a compile on JAX (3 s for the eight).
    zeros = dict(kernel_initializer="zeros", recurrent_initializer="zeros")
    regs = dict(
        dropout=0.3,
        recurrent_dropout=0.3,
        output_dropout=0.2,
        weight_dropout=0.2,
        zoneout=0.2,
        return_sequences=True,
        seed=21,
        **zeros,
    )
    cases = {
        "lstm": layers.VariationalLSTM(3, **regs),
        "lstm_per_gate": layers.VariationalLSTM(
            3, per_gate_masks=True, share_input_mask=False, **regs
        ),
        "gru": layers.VariationalGRU(3, per_gate_masks=True, **regs),
        "simple_rnn": layers.VariationalSimpleRNN(3, **regs),
        "ln_lstm": layers.LayerNormLSTM(3, **regs),
        "ln_gru": layers.LayerNormGRU(3, per_gate_masks=True, **regs),
        "ln_simple_rnn": layers.LayerNormSimpleRNN(3, **regs),
        "wrapper": keras.layers.RNN(
            layers.LayerNormWrapper(
                layers.VariationalGRUCell(
                    3,
                    dropout=0.3,
                    recurrent_dropout=0.3,
                    weight_dropout=0.2,
                    seed=22,
                    **zeros,
                )
            ),
            return_sequences=True,
        ),
    }
    out = {}
    for name, layer in cases.items():
        layer.build(x.shape)
        layer.set_weights(
            [rng.normal(size=w.shape).astype("float32") * 0.5 for w in layer.weights]
        )
        for call in range(2):
            out[f"rnn_{name}_{call}"] = training_call(layer, x)
    return out


def mc_outputs():
    """`mc_predict` with a seed, from fixed weights: the same mean and std on
    every backend only if its masks are. (Zero initializers: the weights are
    set at once; a random draw per kernel shape is a compile on JAX.)"""
    zeros = "zeros"
    inputs = keras.Input((5, 4))
    x = layers.LayerNormLSTM(
        6,
        dropout=0.3,
        recurrent_dropout=0.3,
        seed=31,
        kernel_initializer=zeros,
        recurrent_initializer=zeros,
    )(inputs)
    x = layers.InvertedDropout(0.4, seed=32)(x)
    model = keras.Model(inputs, keras.layers.Dense(2, kernel_initializer=zeros)(x))
    rng = np.random.default_rng(6)
    model.set_weights(
        [rng.normal(size=w.shape).astype("float32") * 0.5 for w in model.weights]
    )
    x = rng.normal(size=(7, 5, 4)).astype("float32")
    mean, std = keras_reg.inference.mc_predict(model, x, samples=5, seed=9)
    results = {"rnn_mc_mean": mean, "rnn_mc_std": std}
    # Stacked samples through the 0.2 layers, batch-shared masks included.
    tokens = keras.Input((6,), dtype="int32")
    h = layers.EmbeddingDropout(20, 4, 0.3, seed=33, embeddings_initializer=zeros)(
        tokens
    )
    h = layers.DropBlock1D(0.3, 2, seed=34)(h)
    h = layers.StochasticDepth(0.7, seed=35)(
        [
            h,
            layers.DropPath(0.3, mode="batch", seed=36)(
                keras.layers.Dense(4, kernel_initializer=zeros)(h)
            ),
        ]
    )
    h = layers.ConcreteDropout(
        keras.layers.Dense(3, kernel_initializer=zeros), seed=37
    )(keras.layers.Flatten()(h))
    model = keras.Model(tokens, h)
    model.set_weights(
        [rng.normal(size=w.shape).astype("float32") * 0.5 for w in model.weights]
    )
    ids = rng.integers(0, 20, size=(9, 6)).astype("int32")
    mean, std = keras_reg.inference.mc_predict(model, ids, samples=6, seed=10)
    results.update({"float_mc_mean": mean, "float_mc_std": std})
    return results


def trained_weights(jit_compile):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 6)).astype("float32")
    y = rng.normal(size=(32, 1)).astype("float32")
    # Zeros: the weights are set below (a random draw per kernel shape is a
    # compile on JAX).
    zeros = "zeros"
    inputs = keras.Input((6,))
    h = keras.layers.Dense(
        16, activation="tanh", name="hidden", kernel_initializer=zeros
    )(inputs)
    h = layers.InvertedDropout(0.5, seed=3)(h)
    outputs = keras.layers.Dense(1, name="out", kernel_initializer=zeros)(h)
    model = keras.Model(inputs, outputs)
    weights = [rng.normal(size=w.shape).astype("float32") * 0.3 for w in model.weights]
    model.set_weights(weights)
    model.compile(
        optimizer=keras.optimizers.SGD(0.1), loss="mse", jit_compile=jit_compile
    )
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0, steps_per_epoch=3)
    return {f"fit_w{i}": w for i, w in enumerate(model.get_weights())}


def resume_data():
    rng = np.random.default_rng(1)
    ids = rng.integers(1, 50, size=(24, 6)).astype("int32")
    target = rng.normal(size=(24, 1)).astype("float32")
    return ids, target


def resume_model():
    """A functional model with every dropout-family layer, fixed weights.
    (Zeros initializers: the weights are set below; on JAX a random draw
    per weight shape is a compile, here and at every load of its file.)"""
    zeros = "zeros"
    inputs = keras.Input((6,), dtype="int32")
    x = layers.EmbeddingDropout(50, 8, 0.2, seed=1, embeddings_initializer=zeros)(
        inputs
    )
    x = layers.TimeSharedDropout(0.3, seed=2)(x)
    branch = keras.layers.Dense(8, activation="tanh", kernel_initializer=zeros)(x)
    x = x + layers.DropPath(0.25, seed=3)(branch)
    x = keras.layers.Reshape((6, 8, 1))(x)
    x = layers.DropBlock2D(0.2, 2, seed=4)(x)
    x = keras.layers.Flatten()(x)
    x = layers.InvertedDropout(0.4, seed=5)(x)
    model = keras.Model(inputs, keras.layers.Dense(1, kernel_initializer=zeros)(x))
    rng = np.random.default_rng(2)
    model.set_weights(
        [rng.normal(size=w.shape).astype("float32") * 0.2 for w in model.weights]
    )
    return model


def compile_for_resume(model):
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")


def train_epoch(model):
    ids, target = resume_data()
    model.fit(ids, target, batch_size=8, epochs=1, shuffle=False, verbose=0)


def resume_from(path):
    """Loads a half-trained model (compile=False), compiles it again and
    trains one more epoch; returns its weights."""
    model = keras.saving.load_model(path, compile=False)
    compile_for_resume(model)
    train_epoch(model)
    return model.get_weights()


def resume_as_saved(path):
    """Loads a model saved compiled (on another backend) as it is and trains
    one epoch; returns the error of the fit ("" if none)."""
    model = keras.saving.load_model(path)
    try:
        train_epoch(model)
    except Exception as error:  # the outcome is the result
        return f"{type(error).__name__}: {error}"[:500]
    return ""


def save_half_trained(path):
    model = resume_model()
    compile_for_resume(model)
    train_epoch(model)
    model.save(path)


def partner(directory):
    here = os.path.join(directory, "here")
    mine = os.path.join(directory, "partner")
    os.makedirs(mine, exist_ok=True)
    results = layer_outputs()
    results.update(recurrent_outputs())
    results.update(mc_outputs())
    results.update(trained_weights(jit_compile="auto"))
    for i, w in enumerate(resume_from(os.path.join(here, "half.keras"))):
        results[f"resumed_w{i}"] = w
    for name, value in zoo.load_saved(here).items():
        results[f"zoo_{name}"] = value
    save_half_trained(os.path.join(mine, "half.keras"))
    zoo.save_for_another_backend(mine)
    if keras.backend.backend() == "tensorflow":
        # The torch suite's partner (conftest's PARTNERS): Keras 3.15 saves
        # torch's own optimizer class, and the first train step here fails
        # (tests/test_random.py keeps the canary). Last, so that nothing
        # above runs after a failed step.
        results["resumed_as_saved_error"] = np.array(
            resume_as_saved(os.path.join(here, "half.keras"))
        )
    return results


def main(argv):
    assert keras_reg.config.rng() == "portable"
    mode, *paths = argv
    if mode == "partner":
        results = partner(paths[0])
    elif mode == "policy":
        model, losses = zoo.fit_under_policy(paths[0])
        results = {
            "losses": losses,
            "dtypes": np.array(sorted({str(w.dtype) for w in model.weights})),
            "layer_dtypes": np.array(
                sorted(
                    {
                        keras.backend.standardize_dtype(layer.output.dtype)
                        for layer in model.layers
                        if layer.name != "head"
                        and not isinstance(layer, keras.layers.InputLayer)
                    }
                )
            ),
        }
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    np.savez(paths[-1], backend=keras.backend.backend(), **results)


if __name__ == "__main__":
    main(sys.argv[1:])
