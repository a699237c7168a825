import keras
import numpy as np
import pytest

from keras_reg.layers import DropBlock2D, DropPath
from keras_reg.layers.structured import center_probability
from tests.helpers import run_layer_test, six_sigma, to_numpy


def test_dropblock_layer_contract(tmp_path):
    run_layer_test(
        DropBlock2D,
        {"rate": 0.2, "block_size": 3, "data_format": "channels_last", "seed": 4},
        input_shape=(4, 6, 7, 2),
        tmp_path=tmp_path,
    )


def test_droppath_layer_contract(tmp_path):
    run_layer_test(DropPath, {"rate": 0.3, "seed": 4}, (4, 3, 5), tmp_path=tmp_path)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"rate": 1.0, "block_size": 3}, "rate"),
        ({"rate": 0.1, "block_size": 0}, "block_size"),
        ({"rate": 0.1, "block_size": 2.5}, "block_size"),
        ({"rate": 0.1, "block_size": 3, "data_format": "NHWC"}, "data_format"),
    ],
)
def test_dropblock_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DropBlock2D(**kwargs)


def test_dropblock_rejects_wrong_rank_and_oversized_blocks():
    with pytest.raises(ValueError, match="rank 4"):
        DropBlock2D(0.1, 3)(keras.Input((8, 8)))
    with pytest.raises(ValueError, match="block_size"):
        DropBlock2D(0.1, 5, data_format="channels_last")(keras.Input((4, 9, 3)))


def _expected_union(starts, block):
    h, w = starts.shape[0] + block - 1, starts.shape[1] + block - 1
    out = np.zeros((h, w), bool)
    for i, j in zip(*np.nonzero(starts), strict=True):
        out[i : i + block, j : j + block] = True
    return out


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_dropblock_drops_whole_blocks_on_non_square_maps(data_format):
    # Height 11, width 17, block 4: every dropped unit lies in a 4x4 square
    # of dropped units inside the map, oriented (height, width).
    block = 4
    shape = (6, 11, 17, 3) if data_format == "channels_last" else (6, 3, 11, 17)
    layer = DropBlock2D(0.25, block, data_format=data_format, seed=3)
    y = to_numpy(layer(np.ones(shape, "float32"), training=True))
    if data_format == "channels_first":
        y = np.transpose(y, (0, 2, 3, 1))
    dropped = y == 0
    assert dropped.any()
    for b in range(shape[0]):
        for c in range(3):
            d = dropped[b, :, :, c]
            # Each block start position is a top-left corner of a full square.
            starts = np.zeros((11 - block + 1, 17 - block + 1), bool)
            for i in range(starts.shape[0]):
                for j in range(starts.shape[1]):
                    starts[i, j] = d[i : i + block, j : j + block].all()
            # The union of those squares is exactly the dropped set.
            np.testing.assert_array_equal(_expected_union(starts, block), d)


def test_dropblock_formats_give_the_same_blocks():
    x = np.random.default_rng(0).normal(size=(2, 9, 13, 4)).astype("float32")
    last = DropBlock2D(0.3, 3, data_format="channels_last", seed=8)
    first = DropBlock2D(0.3, 3, data_format="channels_first", seed=8)
    y_last = to_numpy(last(x, training=True))
    y_first = to_numpy(first(np.transpose(x, (0, 3, 1, 2)), training=True))
    np.testing.assert_allclose(np.transpose(y_first, (0, 2, 3, 1)), y_last, rtol=1e-6)


@pytest.mark.parametrize("rate, block", [(0.1, 3), (0.3, 5), (0.5, 7)])
def test_dropblock_hits_the_target_rate(rate, block):
    shape = (64, 16, 20, 32)
    y = to_numpy(
        DropBlock2D(rate, block, seed=5)(np.ones(shape, "float32"), training=True)
    )
    dropped = np.mean(y == 0)
    # Units within a block are dependent: bound with the number of blocks
    # that fit, not of units (a conservative effective sample size).
    n_eff = shape[0] * shape[3] * (16 * 20) / block**2
    assert abs(dropped - rate) < six_sigma(rate, n_eff), dropped


def test_dropblock_rescales_by_the_kept_fraction():
    x = np.random.default_rng(0).normal(size=(8, 12, 12, 4)).astype("float32")
    y = to_numpy(DropBlock2D(0.3, 3, seed=1)(x, training=True))
    keep = y != 0
    np.testing.assert_allclose(y[keep], x[keep] * keep.size / keep.sum(), rtol=1e-5)


def test_dropblock_block_size_one_is_dropout():
    y = to_numpy(DropBlock2D(0.4, 1, seed=2)(np.ones((16, 32, 32, 8)), training=True))
    assert abs(np.mean(y == 0) - 0.4) < six_sigma(0.4, y.size)


def test_dropblock_center_probability_solves_for_the_rate():
    # Independent check by enumeration of the coverage on a small map.
    h, w, block, rate = 7, 9, 3, 0.35
    g = center_probability(rate, h, w, block)
    cover = np.zeros((h, w))
    for i in range(h - block + 1):
        for j in range(w - block + 1):
            cover[i : i + block, j : j + block] += 1
    assert abs(np.mean(1 - (1 - g) ** cover) - rate) < 1e-12


def test_dropblock_dynamic_spatial_size_uses_the_approximation():
    inputs = keras.Input((None, None, 2))
    model = keras.Model(inputs, DropBlock2D(0.2, 3, seed=1)(inputs))
    y = to_numpy(model(np.ones((8, 20, 20, 2), "float32"), training=True))
    # Ghiasi et al.'s gamma undershoots a little because blocks overlap.
    assert 0.12 < np.mean(y == 0) < 0.22


def test_dropblock_rate_change_updates_the_block_probability():
    layer = DropBlock2D(0.1, 3, seed=1)
    x = np.ones((32, 16, 16, 16), "float32")
    layer(x, training=True)
    layer.rate = 0.4
    y = to_numpy(layer(x, training=True))
    assert abs(np.mean(y == 0) - 0.4) < 0.03


def test_dropblock_inference_is_identity():
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    np.testing.assert_array_equal(to_numpy(DropBlock2D(0.5, 3)(x)), x)


def test_droppath_zeros_whole_samples():
    x = np.random.default_rng(0).normal(size=(4000, 3, 5)).astype("float32")
    y = to_numpy(DropPath(0.3, seed=2)(x, training=True))
    dropped = np.all(y == 0, axis=(1, 2))
    np.testing.assert_allclose(y[~dropped], x[~dropped] / 0.7, rtol=1e-6)
    assert abs(dropped.mean() - 0.3) < six_sigma(0.3, x.shape[0])


def test_droppath_inference_is_identity_and_rank_checked():
    x = np.ones((3, 2), "float32")
    np.testing.assert_array_equal(to_numpy(DropPath(0.5)(x)), x)
    with pytest.raises(ValueError, match="rate"):
        DropPath(-0.5)


def test_droppath_needs_a_batch_axis():
    layer = DropPath(0.5)
    with pytest.raises(ValueError, match="batch axis"):
        layer.build(())
