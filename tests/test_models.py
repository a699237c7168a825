"""keras_reg.models: portable and regularize on real keras.applications
models (random weights, small inputs) and hand-built graphs."""

import contextlib
import io
import os
import re
import sys

import keras
import numpy as np
import pytest

import keras_reg
import keras_reg.models
from keras_reg import _walk
from keras_reg.layers import (
    AlphaDropout,
    DropBlock2D,
    DropPath,
    GaussianDropout,
    GaussianNoise,
    InvertedDropout,
    TimeSharedDropout,
    VariationalGRU,
    VariationalLSTM,
    VariationalSimpleRNN,
    drop_path_rates,
)
from keras_reg.testing._portable import non_portable
from tests.helpers import six_sigma, to_numpy
from tests.numpy_init import NumpyInit, numpy_initializers

# name: (constructor, input size, residual Adds, what the branch's last
# layer is called, what DropBlock's two smallest resolutions hold).
APPLICATIONS = {
    "ResNet50": (keras.applications.ResNet50, 64, 16, r"_3_bn$"),
    "ResNet50V2": (keras.applications.ResNet50V2, 32, 16, r"_3_conv$"),
    "MobileNetV2": (keras.applications.MobileNetV2, 32, 10, r"_project_BN$"),
    "EfficientNetB0": (keras.applications.EfficientNetB0, 32, 9, r"_drop$"),
}
LINE = re.compile(
    r"inserted (\S+) \(DropPath, rate=(\S+)\) on the branch (\S+) of (\S+) "
    r"\(shortcut: (\S+)\)"
)


# The hand-built models draw their random initial weights in NumPy
# (conftest's `numpy_weights`): on JAX each of Keras' random initializers
# compiles a draw at every new weight shape (14 uniform, 4 normal and 4 QR
# draws here, about 10 CPU s), and no test reads Keras' draws. (The
# applications are built in the same scope, `_application`.)
pytestmark = pytest.mark.usefixtures("numpy_weights")


def _quiet(function, *args, **kwargs):
    """`function(...)` and the lines it printed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = function(*args, **kwargs)
    return result, out.getvalue().splitlines()


def _layers(model, cls):
    return [layer for layer in _walk.walk(model) if isinstance(layer, cls)]


def _images(size, count=2, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(count, size, size, 3)).astype("float32")


def _infer(model, x):
    """One inference call. Eager on TensorFlow and torch (a `predict` traces
    a function per model: seconds on TensorFlow); `predict` on JAX, where an
    eager call compiles every operation for its shape (EfficientNetB0: 53 s
    eager against 14 s for a `predict`, on 2 loaded cores)."""
    if keras.backend.backend() == "jax":
        return model.predict(x, verbose=0)
    return to_numpy(model(x, training=False))


def _assert_same_at_scale(actual, expected, rtol=1e-5):
    """Equal to `rtol` of the largest value: logits of 1e-12 judged as such."""
    scale = np.max(np.abs(expected))
    assert scale > 0
    np.testing.assert_allclose(actual, expected, rtol=0, atol=rtol * scale)


def _snapshot(model):
    return [w.copy() for w in model.get_weights()], [
        (layer.name, type(layer)) for layer in model.layers
    ]


def _application(ctor, size, **kwargs):
    """`ctor`'s model with random weights (NumPy's, `tests.numpy_init`: on
    JAX each of Keras' random initializers compiles a draw per weight
    shape, 229 compiles and 45 CPU s for the four applications, against
    2 s; the architectures, layer configs and everything `regularize`
    reads are Keras' own), for
    `size` x `size` images and 5 classes."""
    with numpy_initializers():
        model = ctor(weights=None, input_shape=(size, size, 3), classes=5, **kwargs)
    kernels = {
        type(layer.kernel_initializer)
        for layer in model.layers
        if hasattr(layer, "kernel_initializer")
    }
    assert kernels == {NumpyInit}, kernels
    return model


@pytest.fixture(scope="module")
def applications():
    """Each application once per module: the original, a snapshot of it,
    its regularized copy and the printed lines."""
    built = {}
    for name, (ctor, size, _, _) in APPLICATIONS.items():
        # Logits: random-weight MobileNetV2 and EfficientNet give logits of
        # 1e-12 and 1e-8, a softmax of exactly 1 / classes.
        model = _application(ctor, size, classifier_activation=None)
        snapshot = _snapshot(model)
        options = {"dropout": 0.2, "drop_path": 0.2, "seed": 1, "verbose": 1}
        if name == "ResNet50":
            options["dropblock"] = (0.1, 3)
        new, lines = _quiet(keras_reg.models.regularize, model, **options)
        built[name] = (model, snapshot, new, lines)
    yield built
    keras.utils.clear_session(free_memory=False)


# --- regularize: placement ----------------------------------------------------------


@pytest.mark.parametrize("name", list(APPLICATIONS))
def test_drop_path_on_every_residual_branch(applications, name):
    model, _, new, lines = applications[name]
    _, _, blocks, branch_pattern = APPLICATIONS[name]
    adds = [layer for layer in model.layers if isinstance(layer, keras.layers.Add)]
    assert len(adds) == blocks
    found = [LINE.match(line) for line in lines]
    found = [m for m in found if m]
    assert len(found) == blocks == len(_layers(new, DropPath))
    assert {m.group(4) for m in found} == {add.name for add in adds}
    for m in found:
        # The branch is the block's last layer; the shortcut is the block's
        # input (made by an earlier block) or its projection (`_0_...`).
        block = re.sub(r"_(add|out)$", "", m.group(4))
        branch = re.sub(r"_dropblock$", "", m.group(3))
        shortcut = re.sub(r"_dropblock$", "", m.group(5))
        assert branch.startswith(block + "_"), m.group(0)
        assert re.search(branch_pattern, branch), m.group(0)
        assert not shortcut.startswith(block + "_") or re.search(
            r"_0_[a-z_]+$", shortcut
        ), m.group(0)


@pytest.mark.parametrize("name", list(APPLICATIONS))
def test_drop_path_rates_rise_linearly_with_depth(applications, name):
    _, _, new, _ = applications[name]
    rates = [layer.rate for layer in _layers(new, DropPath)]
    np.testing.assert_allclose(rates, drop_path_rates(0.2, len(rates)), atol=1e-7)


def test_resnet101_has_33_residual_blocks():
    model = _application(keras.applications.ResNet101, 32)
    new = keras_reg.models.regularize(model, drop_path=0.1)
    adds = [layer for layer in model.layers if isinstance(layer, keras.layers.Add)]
    assert len(adds) == 33 == len(_layers(new, DropPath))


@pytest.mark.parametrize("name", list(APPLICATIONS))
def test_dropout_before_the_classifier(applications, name):
    _, _, new, lines = applications[name]
    assert "inserted predictions_dropout (InvertedDropout, rate=0.2) before " in (
        "\n".join(lines) + "\n"
    ).replace("predictions\n", "\n")
    index = [layer.name for layer in new.layers].index("predictions")
    before = new.layers[index - 1]
    assert isinstance(before, InvertedDropout) and before.rate == 0.2


def test_dropblock_in_the_two_smallest_resolutions(applications):
    # ResNet50 on 64x64: conv4_x runs on 4x4 maps, conv5_x on 2x2.
    _, _, new, _ = applications["ResNet50"]
    blocks = _layers(new, DropBlock2D)
    stages = {block.name.split("_")[0] for block in blocks}
    assert stages == {"conv4", "conv5"}
    # conv4: 6 blocks of 3 convolutions and a projection; conv5: 3 and one.
    assert len(blocks) == 19 + 10
    # After the batch normalization of each convolution.
    assert all(block.name.endswith("_bn_dropblock") for block in blocks)
    sizes = {block.name.split("_")[0]: block.block_size for block in blocks}
    # block_size 3 clamped to the 2x2 maps of conv5.
    assert sizes == {"conv4": (3, 3), "conv5": (2, 2)}


# --- regularize: behaviour -----------------------------------------------------------


@pytest.mark.parametrize("name", list(APPLICATIONS))
def test_inference_unchanged(applications, name):
    model, _, new, _ = applications[name]
    x = _images(APPLICATIONS[name][1])
    _assert_same_at_scale(_infer(new, x), _infer(model, x))


@pytest.mark.parametrize("name", list(APPLICATIONS))
def test_original_untouched(applications, name):
    model, (weights, layers), new, _ = applications[name]
    assert [(layer.name, type(layer)) for layer in model.layers] == layers
    for a, b in zip(model.get_weights(), weights, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not any(isinstance(layer, DropPath) for layer in _walk.walk(model))
    assert not set(map(id, model.weights)) & set(map(id, new.weights))
    assert len(new.weights) == len(model.weights)


def _calls(model, x, count=1):
    """`count` calls of `model(x)` (the mode they run in is the caller's).
    On JAX, through one `predict` function traced now: each eager call
    compiles every operation, and each recurrent layer's scan, again
    (ResNet50: 8 s eager, 4 s traced); the traced function reads the
    `mc_dropout` switch as the eager calls do, and each `predict` call moves
    the random streams on."""
    if keras.backend.backend() != "jax":
        return [to_numpy(model(x)) for _ in range(count)]
    model.make_predict_function(force=True)
    return [model.predict(x, verbose=0) for _ in range(count)]


def test_mc_dropout_samples_the_inserted_layers(applications):
    _, _, new, _ = applications["ResNet50"]
    x = _images(64)
    plain = _infer(new, x)
    assert not np.allclose(plain[0], plain[1])  # not a constant model
    with keras_reg.inference.mc_dropout(new):
        first, second = _calls(new, x, 2)
    assert not np.allclose(first, second)
    (after,) = _calls(new, x)
    np.testing.assert_allclose(after, plain, rtol=1e-6)


def test_saves_loads_and_fits(applications, tmp_path):
    _, _, new, _ = applications["MobileNetV2"]
    path = os.path.join(tmp_path, "regularized.keras")
    new.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    # The input shape of test_inference_unchanged: its compiled operations.
    x = _images(32)
    _assert_same_at_scale(_infer(loaded, x), _infer(new, x))
    # Eager on TensorFlow (1.5 s against 7.4 s for tracing the step) and
    # torch; compiled on JAX, where an eager step compiles every operation
    # (47 s against 14 s). The compiled step of every layer on TensorFlow:
    # tests/test_portability.py.
    loaded.compile(
        optimizer="sgd",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        run_eagerly=keras.backend.backend() != "jax",
    )
    history = loaded.fit(x, np.arange(2), batch_size=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_same_seed_same_layers_and_each_its_own_seed():
    model = _residual_model(swap=False)
    first = keras_reg.models.regularize(model, dropout=0.1, drop_path=0.1, seed=7)
    again = keras_reg.models.regularize(model, dropout=0.1, drop_path=0.1, seed=7)
    seeds = [layer.seed for layer in first.layers if hasattr(layer, "seed_generator")]
    assert len(seeds) == 2 and len(set(seeds)) == 2 and None not in seeds
    assert seeds == [
        layer.seed for layer in again.layers if hasattr(layer, "seed_generator")
    ]


def test_verbose_prints_one_line_per_change():
    model = _residual_model(swap=False)
    _, lines = _quiet(keras_reg.models.regularize, model, dropout=0.1, verbose=1)
    assert lines == ["inserted head_dropout (InvertedDropout, rate=0.1) before head"]
    _, lines = _quiet(keras_reg.models.regularize, model, dropout=0.1)
    assert lines == []


# --- The branch-or-shortcut rule on hand-built graphs ---------------------------------


def _residual_model(swap, projection=False, op=False):
    inputs = keras.Input((8, 8, 4))
    x = keras.layers.Conv2D(4, 3, padding="same", name="stem")(inputs)
    branch = keras.layers.Conv2D(4, 3, padding="same", name="branch_a")(x)
    branch = keras.layers.Conv2D(4, 3, padding="same", name="branch_b")(branch)
    shortcut = x
    if projection:
        shortcut = keras.layers.Conv2D(4, 1, name="projection")(x)
    if op:
        x = shortcut + branch if swap else branch + shortcut
    else:
        pair = [branch, shortcut] if swap else [shortcut, branch]
        x = keras.layers.Add(name="residual")(pair)
    # An activation's `x + 3` is no residual connection.
    x = keras.layers.GlobalAveragePooling2D()(x + 3.0)
    return keras.Model(inputs, keras.layers.Dense(2, name="head")(x))


@pytest.mark.parametrize("swap", [False, True])
@pytest.mark.parametrize("projection", [False, True])
@pytest.mark.parametrize("op", [False, True])
def test_branch_told_from_shortcut_in_any_order(swap, projection, op):
    model = _residual_model(swap, projection, op)
    new, lines = _quiet(keras_reg.models.regularize, model, drop_path=0.3, verbose=1)
    assert len(lines) == 1
    m = LINE.match(lines[0])
    assert m.group(3) == "branch_b"
    assert m.group(5) == ("projection" if projection else "stem")
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 4)).astype("float32")
    np.testing.assert_allclose(_infer(new, x), _infer(model, x), rtol=1e-5, atol=1e-6)


def test_sum_of_two_equal_branches_is_no_residual_connection():
    inputs = keras.Input((8,))
    a = keras.layers.Dense(8)(keras.layers.Dense(8)(inputs))
    b = keras.layers.Dense(8)(keras.layers.Dense(8)(inputs))
    model = keras.Model(inputs, keras.layers.Add()([a, b]))
    with pytest.raises(ValueError, match="drop_path.*no residual connection"):
        keras_reg.models.regularize(model, drop_path=0.1)


# --- recurrent, nested models, Sequential --------------------------------------------


def _recurrent_model():
    inputs = keras.Input((5, 3))
    x = keras.layers.Bidirectional(
        keras.layers.LSTM(4, return_sequences=True), name="bi"
    )(inputs)
    x = keras.layers.TimeDistributed(keras.layers.Dense(4), name="td")(x)
    x = keras.layers.SimpleRNN(4, return_sequences=True, name="srnn")(x)
    x = keras.layers.GRU(3, name="gru")(x)
    return keras.Model(inputs, keras.layers.Dense(2, name="head")(x))


def test_recurrent_layers_become_variational_with_weights_and_config():
    model = _recurrent_model()
    arguments = {"dropout": 0.1, "recurrent_dropout": 0.2, "output_dropout": 0.05}
    new = keras_reg.models.regularize(model, recurrent=arguments, seed=3)
    bi = new.get_layer("bi")
    assert type(bi.forward_layer) is VariationalLSTM
    assert type(bi.backward_layer) is VariationalLSTM
    assert type(new.get_layer("srnn")) is VariationalSimpleRNN
    assert type(new.get_layer("gru")) is VariationalGRU
    for layer in (bi.forward_layer, bi.backward_layer, new.get_layer("gru")):
        config = layer.get_config()
        for key, value in arguments.items():
            assert config[key] == value
    assert bi.backward_layer.go_backwards
    # Each replaced layer its own derived seed.
    seeds = [bi.forward_layer.seed, bi.backward_layer.seed, new.get_layer("gru").seed]
    assert None not in seeds and len(set(seeds)) == 3
    # The Keras configuration is carried.
    original = model.get_layer("bi").forward_layer.get_config()
    carried = bi.forward_layer.get_config()
    for key in ("units", "return_sequences", "activation", "unit_forget_bias"):
        assert carried[key] == original[key]
    for a, b in zip(new.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    x = np.random.default_rng(0).normal(size=(2, 5, 3)).astype("float32")
    np.testing.assert_allclose(
        new.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )
    with keras_reg.inference.mc_dropout(new):
        first, second = _calls(new, x, 2)
    assert not np.allclose(first, second)


def test_nested_sequential_head_and_functional_body():
    inputs = keras.Input((6,))
    body = keras.Model(inputs, keras.layers.Dropout(0.3)(keras.layers.Dense(6)(inputs)))
    head = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3, name="out")])
    outer_in = keras.Input((6,))
    model = keras.Model(outer_in, head(body(outer_in)))
    new = keras_reg.models.regularize(model, dropout=0.25)
    inner = [layer for layer in new.layers if isinstance(layer, keras.Sequential)][0]
    assert [type(layer) for layer in inner.layers] == [
        InvertedDropout,
        keras.layers.Dense,
    ]
    assert not non_portable(new)
    x = np.random.default_rng(0).normal(size=(4, 6)).astype("float32")
    np.testing.assert_allclose(_infer(new, x), _infer(model, x), rtol=1e-6)


# --- portable ------------------------------------------------------------------


def _random_layers_model():
    inputs = keras.Input((4, 4, 3))
    x = keras.layers.Dropout(0.2, noise_shape=(None, 1, 1, 1), seed=5)(inputs)
    x = keras.layers.SpatialDropout2D(0.1)(x)
    x = keras.layers.GaussianNoise(0.1, seed=2)(x)
    x = keras.layers.GaussianDropout(0.2)(x)
    x = keras.layers.Reshape((16, 3))(x)
    x = keras.layers.SpatialDropout1D(0.1)(x)
    x = keras.layers.TimeDistributed(keras.layers.Dropout(0.3))(x)
    x = keras.layers.AlphaDropout(0.1)(x)
    x = keras.layers.LSTM(3, dropout=0.1, recurrent_dropout=0.1)(x)
    return keras.Model(inputs, keras.layers.Dense(2)(x))


def test_portable_replaces_every_keras_random_layer():
    model = _random_layers_model()
    assert len(non_portable(model)) == 8
    new, lines = _quiet(keras_reg.models.portable, model, verbose=1)
    assert len(lines) == 8
    assert non_portable(new) == []
    types = [type(layer) for layer in new.layers]
    for cls in (GaussianNoise, GaussianDropout, AlphaDropout, TimeSharedDropout):
        assert cls in types
    assert type(new.layers[-2]) is VariationalLSTM
    first = new.layers[1]
    assert type(first) is InvertedDropout
    assert (first.rate, first.noise_shape, first.seed) == (0.2, (None, 1, 1, 1), 5)
    spatial = new.layers[2]
    assert spatial.shared_axes == (1, 2)
    assert type(new.get_layer(model.layers[7].name).layer) is InvertedDropout
    for a, b in zip(new.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    x = np.random.default_rng(0).normal(size=(2, 4, 4, 3)).astype("float32")
    np.testing.assert_allclose(
        new.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )


def test_drop_connect_keeps_dropping_whole_samples(applications):
    model, _, _, _ = applications["EfficientNetB0"]
    new = keras_reg.models.portable(model)
    drop = new.get_layer("block2b_drop")
    assert type(drop) is InvertedDropout and drop.noise_shape == (None, 1, 1, 1)
    assert drop.rate == model.get_layer("block2b_drop").rate
    drop.rate = 0.5  # B0's own rate (0.0125) rarely drops one of 256
    y = to_numpy(drop(np.ones((256, 2, 2, 3), "float32"), training=True))
    per_sample = y.reshape(256, -1)
    assert np.all(per_sample == per_sample[:, :1])
    dropped = np.mean(per_sample[:, 0] == 0)
    assert abs(dropped - 0.5) < six_sigma(0.5, 256)


def test_applications_stochastic_depth_becomes_drop_path():
    # ConvNeXt's StochasticDepth: keras.applications builds it only through
    # its private `ConvNeXt(drop_path_rate=...)`; reach the class through
    # the public module's home.
    home = sys.modules[keras.applications.convnext.ConvNeXtTiny.__module__]
    inputs = keras.Input((4,))
    branch = keras.layers.Dense(4)(inputs)
    outputs = inputs + home.StochasticDepth(0.3, name="sd")(branch)
    model = keras.Model(inputs, outputs)
    new = keras_reg.models.portable(model)
    assert type(new.get_layer("sd")) is DropPath and new.get_layer("sd").rate == 0.3


def test_sequential_model_stays_sequential():
    model = keras.Sequential(
        [keras.Input((5,)), keras.layers.Dense(4), keras.layers.Dropout(0.5)]
    )
    new = keras_reg.models.portable(model)
    assert isinstance(new, keras.Sequential)
    assert type(new.layers[1]) is InvertedDropout


def test_unreplaceable_layers_warned_or_refused():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.RandomFlip(name="flip")(inputs)
    model = keras.Model(inputs, keras.layers.Dropout(0.1)(x))
    with pytest.warns(UserWarning, match="flip"):
        keras_reg.models.portable(model)
    with pytest.raises(ValueError, match="flip"):
        keras_reg.models.portable(model, strict=True)


# --- Bad input -----------------------------------------------------------------


class _Subclassed(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(2)

    def call(self, x):
        return self.dense(x)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"dropout": 1.5}, "`dropout`.*dropout=1.5"),
        ({"drop_path": -0.1}, "`drop_path`.*drop_path=-0.1"),
        ({"dropblock": 0.1}, "`dropblock`.*dropblock=0.1"),
        ({"dropblock": (0.1,)}, "`dropblock`"),
        ({"dropblock": (0.1, 0)}, "`dropblock`"),
        ({"dropblock": (1.0, 3)}, "`dropblock`"),
        ({"recurrent": {"dropuot": 0.1}}, "`recurrent`.*dropuot"),
        ({"recurrent": 0.1}, "`recurrent`"),
        ({"verbose": 2}, "`verbose`"),
        ({"drop_path": 0.1}, "`drop_path`.*no residual connection"),
    ],
)
def test_bad_arguments_raise_naming_them(kwargs, message):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    with pytest.raises(ValueError, match=message):
        keras_reg.models.regularize(model, **kwargs)


def test_subclassed_model_refused_saying_why():
    model = _Subclassed()
    model(np.ones((1, 3), "float32"))
    for function in (keras_reg.models.portable, keras_reg.models.regularize):
        with pytest.raises(ValueError, match="subclassed model.*`call`"):
            function(model)


def test_mixed_precision_model_keeps_its_policy():
    keras.config.set_dtype_policy("mixed_float16")
    model = _residual_model(swap=True, projection=True)
    keras.config.set_dtype_policy("float32")
    new = keras_reg.models.regularize(model, dropout=0.1, drop_path=0.1)
    inserted = _layers(new, DropPath) + _layers(new, InvertedDropout)
    assert len(inserted) == 2
    assert {layer.dtype_policy.name for layer in inserted} == {"mixed_float16"}
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 4)).astype("float32")
    _assert_same_at_scale(_infer(new, x), _infer(model, x))
    new.compile(optimizer="sgd", loss="mse")
    new.fit(x, np.zeros((2, 2), "float32"), verbose=0)


def test_nested_subclassed_model_is_copied_as_one_layer():
    outer_in = keras.Input((3,))
    inner = _Subclassed()
    x = keras.layers.Dropout(0.2)(outer_in)
    model = keras.Model(outer_in, keras.layers.Dense(2, name="head")(inner(x)))
    new = keras_reg.models.regularize(model, dropout=0.1)
    x = np.random.default_rng(0).normal(size=(4, 3)).astype("float32")
    _assert_same_at_scale(_infer(new, x), _infer(model, x))
    assert type(new.layers[1]) is InvertedDropout
