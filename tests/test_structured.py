import hashlib
import itertools
import json

import keras
import numpy as np
import pytest

from keras_reg.layers import (
    DropBlock1D,
    DropBlock2D,
    DropBlock3D,
    DropPath,
    StochasticDepth,
    drop_path_rates,
)
from keras_reg.layers.structured import center_probability
from tests.helpers import run_layer_test, six_sigma, to_numpy
from tests.training_call import training_call

DROPBLOCKS = {1: DropBlock1D, 2: DropBlock2D, 3: DropBlock3D}


def _data(seed, shape):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _channels_last(y, data_format):
    """A channels-first array as channels-last (the layout the checks use)."""
    if data_format == "channels_first":
        return np.moveaxis(y, 1, -1)
    return y


def _shape(batch, spatial, channels, data_format):
    if data_format == "channels_first":
        return (batch, channels, *spatial)
    return (batch, *spatial, channels)


def _coverage_by_enumeration(spatial, block):
    """How many valid block positions cover each unit, counted one by one."""
    cover = np.zeros(spatial)
    valid = [s - b + 1 for s, b in zip(spatial, block, strict=True)]
    for start in itertools.product(*map(range, valid)):
        cover[tuple(slice(i, i + b) for i, b in zip(start, block, strict=True))] += 1
    return cover


def _drop_probability(rate, spatial, block):
    """Each unit's drop probability `1 - (1 - g)**coverage`."""
    g = center_probability(rate, spatial, block)
    return 1.0 - (1.0 - g) ** _coverage_by_enumeration(spatial, block)


# --- DropBlock: the layer contract and arguments ---------------------------------


@pytest.mark.parametrize(
    "cls, kwargs, shape",
    [
        (DropBlock1D, {"block_size": 3}, (4, 9, 2)),
        (DropBlock2D, {"block_size": 3}, (4, 6, 7, 2)),
        (DropBlock2D, {"block_size": (3, 2), "shared_channels": True}, (4, 6, 7, 2)),
        (DropBlock3D, {"block_size": (2, 2, 3)}, (2, 4, 5, 6, 2)),
    ],
)
def test_dropblock_layer_contract(tmp_path, cls, kwargs, shape):
    init = {"rate": 0.2, "data_format": "channels_last", "seed": 4, **kwargs}
    run_layer_test(cls, init, input_shape=shape, tmp_path=tmp_path)


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"rate": 1.0}, "rate"),
        ({"rate": -0.1}, "rate"),
        ({"block_size": 0}, "block_size"),
        ({"block_size": 2.5}, "block_size"),
        ({"block_size": "3"}, "block_size"),
        ({"block_size": (2, 2, 2, 2)}, "block_size"),
        ({"block_size": True}, "block_size"),
        ({"data_format": "NHWC"}, "data_format"),
        ({"shared_channels": "yes"}, "shared_channels"),
        ({"seed": 1.5}, "seed"),
    ],
)
def test_dropblock_bad_arguments(rank, kwargs, match):
    arguments = {"rate": 0.1, "block_size": 3, **kwargs}
    with pytest.raises(ValueError, match=match):
        DROPBLOCKS[rank](**arguments)


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_dropblock_block_tuple_needs_one_positive_side_per_axis(rank):
    cls = DROPBLOCKS[rank]
    with pytest.raises(ValueError, match="block_size"):
        cls(0.1, (2,) * (rank + 1))
    with pytest.raises(ValueError, match="block_size"):
        cls(0.1, (0,) + (2,) * (rank - 1))
    assert cls(0.1, (2,) * rank).block_size == (2,) * rank


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_dropblock_rejects_wrong_rank_and_oversized_blocks(rank):
    cls = DROPBLOCKS[rank]
    with pytest.raises(ValueError, match=f"rank {rank + 2}"):
        cls(0.1, 2)(keras.Input((8,) * (rank + 2)))
    with pytest.raises(ValueError, match=f"rank {rank + 2}"):
        cls(0.1, 2)(keras.Input((8,) * rank))
    # The block is larger than the last spatial axis only.
    block = (2,) * (rank - 1) + (5,)
    spatial = (6,) * (rank - 1) + (4,)
    with pytest.raises(ValueError, match="block_size"):
        cls(0.1, block, data_format="channels_last")(keras.Input((*spatial, 3)))
    with pytest.raises(ValueError, match="block_size"):
        cls(0.1, block, data_format="channels_first")(keras.Input((3, *spatial)))


# --- DropBlock: where the blocks are -----------------------------------------------


def _dropped_is_a_union_of_whole_blocks(dropped, block):
    """`dropped` (spatial axes only) is exactly the union of the blocks of
    the given shape that lie whole inside the map and are entirely dropped."""
    rank = len(block)
    windows = np.lib.stride_tricks.sliding_window_view(dropped, block)
    starts = windows.all(axis=tuple(range(rank, 2 * rank)))
    union = np.zeros_like(dropped)
    for offset in itertools.product(*map(range, block)):
        index = tuple(
            slice(o, o + n) for o, n in zip(offset, starts.shape, strict=True)
        )
        union[index] |= starts
    return np.array_equal(union, dropped)


# Blocks with a different side on each axis, on maps with a different size on
# each axis: a layer that swaps two axes (as keras-cv's and timm's 2D layers
# did) drops blocks of the wrong shape, and the union check fails.
PROBES = [
    (1, (23,), (4,)),
    (2, (11, 17), (2, 5)),
    (2, (17, 11), (5, 2)),
    (3, (5, 9, 13), (1, 2, 4)),
]


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("rank, spatial, block", PROBES)
def test_dropblock_drops_whole_blocks_oriented_as_given(
    data_format, rank, spatial, block
):
    shape = _shape(6, spatial, 3, data_format)
    layer = DROPBLOCKS[rank](0.25, block, data_format=data_format, seed=3)
    y = _channels_last(
        to_numpy(layer(np.ones(shape, "float32"), training=True)), data_format
    )
    dropped = y == 0
    assert dropped.any()
    for b in range(6):
        for c in range(3):
            assert _dropped_is_a_union_of_whole_blocks(dropped[b, ..., c], block)
    # The swapped orientation does not explain the mask.
    if len(set(block)) > 1:
        swapped = tuple(reversed(block))
        assert not all(
            _dropped_is_a_union_of_whole_blocks(dropped[b, ..., c], swapped)
            for b in range(6)
            for c in range(3)
        )


@pytest.mark.parametrize("rank, spatial, block", PROBES)
def test_dropblock_formats_give_the_same_blocks(rank, spatial, block):
    # The shapes of the orientation test above (6 samples, 3 channels): eager
    # JAX compiles each op once per shape.
    x = _data(0, (6, *spatial, 3))
    cls = DROPBLOCKS[rank]
    last = cls(0.3, block, data_format="channels_last", seed=8)
    first = cls(0.3, block, data_format="channels_first", seed=8)
    y_last = to_numpy(last(x, training=True))
    y_first = to_numpy(first(np.moveaxis(x, -1, 1), training=True))
    np.testing.assert_allclose(np.moveaxis(y_first, 1, -1), y_last, rtol=1e-6)


def test_dropblock2d_square_blocks_keep_the_masks_of_0_1():
    # Masks of DropBlock2D(0.3, 3, seed=15) on ones((4, 9, 11, 3)), two
    # calls, as keras_reg 0.1 drew them (the same on every backend).
    layer = DropBlock2D(0.3, 3, data_format="channels_last", seed=15)
    x = np.ones((4, 9, 11, 3), "float32")
    dropped = np.stack([to_numpy(layer(x, training=True)) == 0 for _ in range(2)])
    digest = hashlib.sha256(np.packbits(dropped).tobytes()).hexdigest()[:16]
    assert digest == "988f259f4cb3169a"


# --- DropBlock: statistics ----------------------------------------------------------


RATE_CASES = [
    (1, (40,), (5,), 0.1),
    (1, (30,), (7,), 0.4),
    (2, (16, 20), (3, 3), 0.1),
    (2, (16, 20), (5, 3), 0.3),
    (2, (12, 14), (7, 7), 0.5),
    (3, (6, 8, 10), (2, 3, 3), 0.2),
]


@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("rank, spatial, block, rate", RATE_CASES)
def test_dropblock_hits_the_target_rate(rank, spatial, block, rate, shared):
    batch, channels = 64, 16
    layer = DROPBLOCKS[rank](
        rate, block, shared_channels=shared, data_format="channels_last", seed=5
    )
    y = training_call(layer, np.ones((batch, *spatial, channels), "float32"))
    dropped = np.mean(y == 0)
    # Units within a block are dependent: bound with the number of blocks
    # that fit, not of units (a conservative effective sample size).
    patterns = batch * (1 if shared else channels)
    n_eff = patterns * np.prod(spatial) / np.prod(block)
    assert abs(dropped - rate) < six_sigma(rate, n_eff), dropped


@pytest.mark.parametrize(
    "rank, spatial, block",
    [(1, (10,), (3,)), (2, (5, 7), (2, 4)), (3, (3, 4, 5), (2, 2, 3))],
)
def test_dropblock_each_unit_is_dropped_with_its_exact_probability(
    rank, spatial, block
):
    # Per position, against `1 - (1 - g)**coverage` with the coverage counted
    # by enumeration: edges (covered by fewer block positions) are dropped
    # less often than the centre, and the mean over the map is the rate.
    rate, batch, channels = 0.3, 512, 16
    layer = DROPBLOCKS[rank](rate, block, data_format="channels_last", seed=2)
    y = training_call(layer, np.ones((batch, *spatial, channels), "float32"))
    observed = np.mean(y == 0, axis=(0, -1))
    expected = _drop_probability(rate, spatial, block)
    assert abs(expected.mean() - rate) < 1e-12
    n = batch * channels
    bound = 6.0 * np.sqrt(expected * (1 - expected) / n)
    assert np.all(np.abs(observed - expected) < bound), (observed, expected)


@pytest.mark.parametrize(
    "rank, spatial, block", [(1, (12,), (3,)), (2, (6, 8), (3, 2))]
)
def test_dropblock_samples_and_channels_draw_independently(rank, spatial, block):
    # Two independent patterns agree on "dropped" at a unit with probability
    # q**2 (q its drop probability); shared patterns would agree with q.
    rate, batch, channels = 0.3, 512, 8
    layer = DROPBLOCKS[rank](rate, block, data_format="channels_last", seed=6)
    d = training_call(layer, np.ones((batch, *spatial, channels), "float32")) == 0
    q = _drop_probability(rate, spatial, block)
    both = float(np.mean(q**2))
    # Block-level dependence: count blocks, not units.
    n_eff = batch * np.prod(spatial) / np.prod(block)
    across_channels = np.mean(d[..., 0] & d[..., 1])
    across_samples = np.mean(d[0::2, ..., 0] & d[1::2, ..., 0])
    assert abs(across_channels - both) < six_sigma(both, n_eff)
    assert abs(across_samples - both) < six_sigma(both, n_eff / 2)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_dropblock_shared_channels_drop_the_same_units_in_every_channel(
    rank, data_format
):
    spatial = (9, 10, 11)[:rank]
    shape = _shape(8, spatial, 5, data_format)
    layer = DROPBLOCKS[rank](
        0.3, 2, shared_channels=True, data_format=data_format, seed=1
    )
    y = _channels_last(training_call(layer, np.ones(shape, "float32")), data_format)
    assert np.all(y == y[..., :1])
    assert 0 < np.mean(y == 0) < 1
    # Samples still differ.
    assert not np.array_equal(y[0], y[1])


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_dropblock_rescales_by_the_kept_fraction(rank):
    x = _data(0, (8, *(9, 10, 7)[:rank], 4))
    y = training_call(DROPBLOCKS[rank](0.3, 2, seed=1), x)
    keep = y != 0
    np.testing.assert_allclose(y[keep], x[keep] * keep.size / keep.sum(), rtol=1e-5)


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_dropblock_block_size_one_is_dropout(rank):
    shape = (16, *(64, 32, 16)[:rank], 8)
    y = training_call(DROPBLOCKS[rank](0.4, 1, seed=2), np.ones(shape, "float32"))
    assert abs(np.mean(y == 0) - 0.4) < six_sigma(0.4, y.size)


@pytest.mark.parametrize(
    "spatial, block, rate",
    [
        ((11,), (4,), 0.2),
        ((7, 9), (3, 3), 0.35),
        ((6, 9), (2, 5), 0.5),
        ((4, 5, 6), (2, 3, 2), 0.25),
    ],
)
def test_dropblock_center_probability_solves_for_the_rate(spatial, block, rate):
    # Independent check by enumeration of the coverage.
    assert abs(_drop_probability(rate, spatial, block).mean() - rate) < 1e-12
    assert center_probability(0.0, spatial, block) == 0.0


@pytest.mark.parametrize("rank", [1, 2])
def test_dropblock_dynamic_spatial_size_uses_the_approximation(rank):
    inputs = keras.Input((*(None,) * rank, 2))
    model = keras.Model(inputs, DROPBLOCKS[rank](0.2, 3, seed=1)(inputs))
    y = to_numpy(model(np.ones((8, *(40, 20)[:rank], 2), "float32"), training=True))
    # Ghiasi et al.'s gamma undershoots a little because blocks overlap.
    assert 0.12 < np.mean(y == 0) < 0.22


def test_dropblock_rate_change_updates_the_block_probability():
    layer = DropBlock2D(0.1, (3, 2), seed=1)
    x = np.ones((32, 16, 16, 16), "float32")
    layer(x, training=True)
    layer.rate = 0.4
    y = to_numpy(layer(x, training=True))
    assert abs(np.mean(y == 0) - 0.4) < 0.03


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_dropblock_inference_is_identity(rank):
    x = _data(0, (2, *(8, 8, 8)[:rank], 3))
    np.testing.assert_array_equal(to_numpy(DROPBLOCKS[rank](0.5, 3)(x)), x)


# --- DropPath ------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["sample", "batch"])
def test_droppath_layer_contract(tmp_path, mode):
    run_layer_test(
        DropPath, {"rate": 0.3, "mode": mode, "seed": 4}, (4, 3, 5), tmp_path=tmp_path
    )


def test_droppath_zeros_whole_samples():
    x = _data(0, (4000, 3, 5))
    y = to_numpy(DropPath(0.3, seed=2)(x, training=True))
    dropped = np.all(y == 0, axis=(1, 2))
    np.testing.assert_allclose(y[~dropped], x[~dropped] / 0.7, rtol=1e-6)
    assert abs(dropped.mean() - 0.3) < six_sigma(0.3, x.shape[0])


def test_droppath_batch_mode_drops_the_whole_batch_or_nothing():
    rate, calls = 0.3, 1200
    layer = DropPath(rate, mode="batch", seed=5)
    x = _data(1, (6, 4))
    dropped = 0
    for _ in range(calls):
        y = to_numpy(layer(x, training=True))
        if np.all(y == 0):
            dropped += 1
        else:
            np.testing.assert_allclose(y, x / (1 - rate), rtol=1e-6)
    assert abs(dropped / calls - rate) < six_sigma(rate, calls)


def test_droppath_bad_mode():
    with pytest.raises(ValueError, match=r"`mode`.*Received: mode='row'"):
        DropPath(0.1, mode="row")


def test_droppath_config_without_mode_loads_as_sample_mode():
    config = DropPath(0.2, seed=1).get_config()
    del config["mode"]
    assert DropPath.from_config(config).mode == "sample"


@pytest.mark.parametrize("mode", ["sample", "batch"])
def test_droppath_inference_is_identity_and_rank_checked(mode):
    for shape in [(3,), (3, 2), (3, 2, 4), (3, 2, 4, 5)]:
        x = _data(0, shape)
        np.testing.assert_array_equal(to_numpy(DropPath(0.5, mode=mode)(x)), x)
    # A scalar has no batch axis.
    with pytest.raises(ValueError, match="batch axis"):
        DropPath(0.5, mode=mode)(np.float32(1.0), training=True)
    with pytest.raises(ValueError, match="batch axis"):
        DropPath(0.5, mode=mode).build(())


# --- StochasticDepth ------------------------------------------------------------------


def _residual_model(layer):
    inputs = keras.Input((5, 3))
    residual = keras.layers.Dense(3)(inputs)
    x = layer([inputs, residual])
    outputs = keras.layers.Dense(1, dtype="float32")(keras.layers.Flatten()(x))
    return keras.Model(inputs, outputs)


def test_stochastic_depth_layer_contract(tmp_path):
    layer = StochasticDepth(survival_probability=0.7, seed=3)
    config = layer.get_config()
    assert config["survival_probability"] == 0.7 and config["seed"] == 3
    json.dumps(config)
    assert StochasticDepth.from_config(config).get_config() == config
    serialized = keras.saving.serialize_keras_object(layer)
    assert serialized["registered_name"] == "keras_reg>StochasticDepth"
    # Symbolic call and output shape.
    a, b = keras.Input((4, 2)), keras.Input((4, 2))
    assert tuple(StochasticDepth()([a, b]).shape) == (None, 4, 2)
    # Fit and a .keras round trip that keeps the stream.
    model = _residual_model(StochasticDepth(0.7, seed=3))
    model.compile(optimizer="sgd", loss="mse")
    x, y = _data(0, (8, 5, 3)), _data(1, (8, 1))
    assert np.isfinite(model.fit(x, y, batch_size=2, verbose=0).history["loss"][0])
    path = tmp_path / "sd.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(
        to_numpy(model(x, training=True)), to_numpy(loaded(x, training=True))
    )
    # Mixed precision: computes in float16 / bfloat16, no float16 variables.
    try:
        for policy in ("mixed_bfloat16", "mixed_float16"):
            keras.config.set_dtype_policy(policy)
            out = StochasticDepth(0.5, seed=1)([x, x], training=True)
            assert keras.backend.standardize_dtype(out.dtype) == policy[6:]
            model = _residual_model(StochasticDepth(0.7, seed=3))
            model.compile(optimizer="sgd", loss="mse")
            history = model.fit(x, y, batch_size=2, verbose=0).history
            assert np.isfinite(history["loss"][0])
    finally:
        keras.config.set_dtype_policy("float32")


@pytest.mark.parametrize("p", [0.0, 0.3, 0.8, 1.0])
def test_stochastic_depth_inference_is_shortcut_plus_p_times_residual(p):
    shortcut, residual = _data(0, (4, 6)), _data(1, (4, 6))
    y = to_numpy(StochasticDepth(p)([shortcut, residual]))
    np.testing.assert_array_equal(y, shortcut + np.float32(p) * residual)
    y = to_numpy(StochasticDepth(p)([shortcut, residual], training=False))
    np.testing.assert_array_equal(y, shortcut + np.float32(p) * residual)


def test_stochastic_depth_training_keeps_the_branch_with_its_probability():
    # One draw per call for the whole batch; no inverse scaling.
    p, calls = 0.8, 1200
    layer = StochasticDepth(p, seed=4)
    shortcut, residual = _data(0, (5, 3)), _data(1, (5, 3))
    kept = 0
    for _ in range(calls):
        y = to_numpy(layer([shortcut, residual], training=True))
        if np.array_equal(y, shortcut + residual):
            kept += 1
        else:
            np.testing.assert_array_equal(y, shortcut)
    assert abs(kept / calls - p) < six_sigma(p, calls)


def test_stochastic_depth_survival_one_and_zero_are_certain():
    shortcut, residual = _data(0, (5, 3)), _data(1, (5, 3))
    always, never = StochasticDepth(1.0, seed=1), StochasticDepth(0.0, seed=1)
    for _ in range(20):
        np.testing.assert_array_equal(
            to_numpy(always([shortcut, residual], training=True)), shortcut + residual
        )
        np.testing.assert_array_equal(
            to_numpy(never([shortcut, residual], training=True)), shortcut
        )


@pytest.mark.parametrize("p", [-0.1, 1.5, float("nan"), "0.5", None, True])
def test_stochastic_depth_bad_survival_probability(p):
    with pytest.raises(ValueError, match=r"`survival_probability`.*Received"):
        StochasticDepth(p)


def test_stochastic_depth_needs_shortcut_and_residual_of_one_shape():
    with pytest.raises(ValueError, match=r"\[shortcut, residual\]"):
        StochasticDepth()(keras.Input((3,)))
    with pytest.raises(ValueError, match=r"\[shortcut, residual\]"):
        StochasticDepth()([keras.Input((3,))] * 3)
    with pytest.raises(ValueError, match="same shape"):
        StochasticDepth()([keras.Input((3,)), keras.Input((4,))])


def test_stochastic_depth_ports_from_tensorflow_addons_by_name():
    # TFA: `StochasticDepth(survival_probability=0.5, **kwargs)`.
    layer = StochasticDepth(survival_probability=0.9, name="sd")
    assert layer.survival_probability == 0.9 and layer.name == "sd"
    assert StochasticDepth().survival_probability == 0.5


# --- drop_path_rates -----------------------------------------------------------------


@pytest.mark.parametrize("rate, depth", [(0.0, 1), (0.1, 1), (0.2, 5), (0.5, 12)])
def test_drop_path_rates_rise_linearly_to_the_rate(rate, depth):
    rates = drop_path_rates(rate, depth)
    assert rates == [float(r) for r in np.linspace(0.0, rate, depth)]
    assert all(isinstance(r, float) for r in rates)
    if depth > 1:
        assert rates[0] == 0.0 and rates[-1] == rate


def test_drop_path_rates_per_stage_cut_the_rule_over_the_total_depth():
    # Swin-T: depths (2, 2, 6, 2), drop_path_rate 0.2.
    stages = drop_path_rates(0.2, [2, 2, 6, 2])
    assert [len(s) for s in stages] == [2, 2, 6, 2]
    flat = [r for stage in stages for r in stage]
    assert flat == drop_path_rates(0.2, 12)
    assert drop_path_rates(0.3, (1, 2)) == [[0.0], [0.15, 0.3]]


@pytest.mark.parametrize(
    "rate, depths, match",
    [
        (1.0, 3, "rate"),
        (-0.1, 3, "rate"),
        (0.1, 0, "depths"),
        (0.1, 2.0, "depths"),
        (0.1, [], "depths"),
        (0.1, [2, 0], "depths"),
        (0.1, "3", "depths"),
        (0.1, True, "depths"),
    ],
)
def test_drop_path_rates_bad_arguments(rate, depths, match):
    with pytest.raises(ValueError, match=match):
        drop_path_rates(rate, depths)


# --- input masks ----------------------------------------------------------------------


def test_dropblock1d_and_stochastic_depth_pass_input_masks_to_an_rnn():
    # An LSTM that gets the mask ignores the padded steps: the padded
    # sequence gives what the unpadded one gives (inference: no draws).
    # Random weights from NumPy: zeros first spare JAX the initializers'
    # compiled draws.
    zeros = {"kernel_initializer": "zeros", "recurrent_initializer": "zeros"}
    inputs = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(6, 4, mask_zero=True, embeddings_initializer="zeros")(
        inputs
    )
    x = DropBlock1D(0.3, 2, seed=1)(x)
    dense = keras.layers.Dense(4, kernel_initializer="zeros")
    x = StochasticDepth(0.8, seed=2)([x, dense(x)])
    model = keras.Model(inputs, keras.layers.LSTM(3, **zeros)(x))
    rng = np.random.default_rng(3)
    model.set_weights(
        [rng.normal(size=w.shape).astype("float32") for w in model.weights]
    )
    padded = np.array([[1, 2, 3, 4, 0, 0]] * 3, "int32")
    np.testing.assert_allclose(
        to_numpy(model(padded)), to_numpy(model(padded[:, :4])), rtol=1e-5, atol=1e-6
    )
