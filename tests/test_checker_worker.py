"""The checker's worker, run in this process on the suite's backend (no
subprocess): what it records, in which order, in which dtype, and the
model file's input specs it is given."""

import json

import keras
import numpy as np
import pytest

from keras_reg import layers
from keras_reg.testing import _inputs, _model_file, _worker

# Initial weights drawn in NumPy (`tests.numpy_init`): no test reads them,
# and on JAX each of Keras' random initializers compiles a draw per weight
# shape, here and again at each load of a file.
pytestmark = pytest.mark.usefixtures("numpy_weights")


def _spec(directory, path, inputs, modes=("inference", "training", "gradients")):
    structure, specs = _model_file.input_specs(str(path))
    kind, names, arrays = _inputs.read(inputs, structure, specs)
    _inputs.check(kind, names, arrays, specs)
    np.savez(directory / "inputs.npz", *arrays)
    return {
        "model": str(path),
        "inputs": str(directory / "inputs.npz"),
        "structure": {"kind": kind, "names": names},
        "modes": list(modes),
        "layers": True,
        "imports": [],
    }


def _dict_model():
    tokens = keras.Input((6,), name="tokens")
    extra = keras.Input((3,), name="extra")
    x = keras.layers.Dense(4, name="t_dense")(tokens)
    y = keras.layers.Dense(4, name="e_dense")(extra)
    z = layers.InvertedDropout(0.5, seed=1, name="drop")(keras.layers.Add()([x, y]))
    return keras.Model({"tokens": tokens, "extra": extra}, keras.layers.Dense(2)(z))


def test_a_model_with_dict_inputs_loads_from_its_file_and_runs(tmp_path):
    model = _dict_model()
    model.save(tmp_path / "dict.keras")
    structure, specs = _model_file.input_specs(str(tmp_path / "dict.keras"))
    assert structure == "dict"
    assert specs == [
        ("tokens", (None, 6), "float32"),
        ("extra", (None, 3), "float32"),
    ]
    rng = np.random.default_rng(0)
    x = {"extra": rng.normal(size=(5, 3)), "tokens": rng.normal(size=(5, 6))}
    x = {k: v.astype("float32") for k, v in x.items()}
    np.savez(tmp_path / "x.npz", **x)
    spec = _spec(tmp_path, tmp_path / "dict.keras", str(tmp_path / "x.npz"))
    assert spec["structure"] == {"kind": "dict", "names": ["tokens", "extra"]}
    meta, arrays = _worker.run(spec)
    outputs = [e for e in meta["entries"] if e["kind"] == "output"]
    assert [e["mode"] for e in outputs] == ["inference", "training"]
    expected = keras.ops.convert_to_numpy(model(x, training=False))
    np.testing.assert_allclose(arrays[outputs[0]["key"]], expected, rtol=1e-5)
    # Positional arrays in the order of the specs fit too.
    spec = _spec(tmp_path, tmp_path / "dict.keras", [x["tokens"], x["extra"]])
    assert spec["structure"]["kind"] == "dict"
    with pytest.raises(ValueError, match="input 'extra' has shape \\(5, 6\\)"):
        _spec(tmp_path, tmp_path / "dict.keras", [x["tokens"], x["tokens"]])


def test_a_nested_models_layers_come_before_its_output(tmp_path):
    inner = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(3, name="first"),
            keras.layers.Dense(3, name="second"),
        ],
        name="inner",
    )
    x = keras.Input((4,), name="x")
    y = keras.layers.Dense(4, name="before")(x)
    out = keras.layers.Dense(2, name="after")(inner(y))
    keras.Model(x, out).save(tmp_path / "nested.keras")
    spec = _spec(
        tmp_path, tmp_path / "nested.keras", np.ones((2, 4), "float32"), ["inference"]
    )
    meta, _ = _worker.run(spec)
    names = [e["name"] for e in meta["entries"] if e["kind"] == "layer"]
    assert names == ["before", "inner/first", "inner/second", "inner", "after"]


@pytest.mark.parametrize("policy", ["bfloat16", "mixed_bfloat16"])
def test_bfloat16_values_and_gradients_are_recorded_in_their_compute_dtype(
    tmp_path, policy
):
    keras.config.set_dtype_policy(policy)
    x = keras.Input((4,), name="x")
    y = layers.InvertedDropout(0.3, seed=2, name="drop")(
        keras.layers.Dense(8, name="hidden")(x)
    )
    model = keras.Model(x, keras.layers.Dense(2, name="out")(y))
    model.save(tmp_path / "bf16.keras")
    keras.config.set_dtype_policy("float32")
    data = np.random.default_rng(1).normal(size=(3, 4)).astype("float32")
    meta, arrays = _worker.run(_spec(tmp_path, tmp_path / "bf16.keras", data))
    entries = meta["entries"]
    grads = [e for e in entries if e["kind"] == "gradient"]
    assert len(grads) == 4
    (loss,) = [e for e in entries if e["kind"] == "loss"]
    # Whatever holds them (float32 variables under the mixed policy), the
    # gradients and the loss come from bfloat16 computation.
    assert {e["compute_dtype"] for e in entries} == {"bfloat16"}
    assert loss["dtype"] == "float32"
    expected = "bfloat16" if policy == "bfloat16" else "float32"
    assert {e["dtype"] for e in grads} == {expected}
    for e in entries:
        assert arrays[e["key"]].dtype == np.float32
    if policy == "bfloat16":
        # Held exactly as float32: the low 16 bits are zero.
        kernel = arrays[grads[0]["key"]]
        assert np.all(kernel.view("uint32") & 0xFFFF == 0)
    json.dumps(meta)


class _NoTrainingArgument(keras.Model):
    """A subclassed model whose `call` takes no `training`: its dropout
    learns the mode from Keras' call context."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(8, kernel_initializer="ones")
        self.drop = layers.InvertedDropout(0.5, seed=3)

    def call(self, inputs):
        return self.drop(self.dense(inputs))


def test_a_subclassed_model_without_training_runs_in_the_mode_asked():
    from keras_reg._kernels import _checker

    model = _NoTrainingArgument()
    x = np.ones((16, 4), "float32")
    model(x)  # built
    state = [keras.ops.convert_to_numpy(v) for v in model.non_trainable_variables]
    inference = keras.ops.convert_to_numpy(_checker.call(model, x, training=False))
    np.testing.assert_array_equal(inference, np.full((16, 8), 4.0, "float32"))
    # Training: the eager call's masks, from the same state, on every
    # backend (JAX's jitted call included).
    training = keras.ops.convert_to_numpy(_checker.call(model, x, training=True))
    for variable, value in zip(model.non_trainable_variables, state, strict=True):
        variable.assign(value)
    expected = keras.ops.convert_to_numpy(model(x, training=True))
    for variable, value in zip(model.non_trainable_variables, state, strict=True):
        variable.assign(value)
    np.testing.assert_array_equal(training, expected)
    if tuple(int(part) for part in keras.__version__.split(".")[:2]) > (3, 7):
        # Keras 3.7's own eager call leaves the layers of a `call` without
        # `training` in inference (4.0 everywhere); the checker follows
        # Keras in either case (the equality above).
        assert set(np.unique(training)) == {0.0, 8.0}
    loss, grads = _checker.gradients(model, x, lambda y: keras.ops.sum(y))
    # y[r, j] = factor[r, j] * 4 (inputs and kernel of ones): the gradient
    # of sum(y) for kernel[i, j] is the sum over the rows of factor[:, j]
    # (0 or 2 where a training call drops, 1 in inference).
    factor = expected / 4.0
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(grads[0]), np.tile(factor.sum(axis=0), (4, 1))
    )
    np.testing.assert_allclose(float(loss), expected.sum(), rtol=1e-6)
