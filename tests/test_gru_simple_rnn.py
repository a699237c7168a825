"""A SimpleRNN worked by hand: one unit, `W_x = 0.5`, `W_h = 0.8`, no bias,
inputs `x = [1, 2]`. What every cell type shares (the GRU's and SimpleRNN's
masks, equality with Keras) is in test_recurrent.py."""

import itertools

import numpy as np
import pytest

from keras_reg.layers import VariationalSimpleRNN
from tests.helpers import to_numpy

X = np.array([[[1.0], [2.0]]], "float32")  # one sample, two steps


def _worked_example_layer(**kwargs):
    layer = VariationalSimpleRNN(1, use_bias=False, return_sequences=True, **kwargs)
    layer.build((None, 2, 1))
    layer.set_weights([np.array([[0.5]], "float32"), np.array([[0.8]], "float32")])
    return layer


def test_worked_example_without_dropout():
    # h_1 = tanh(0.5 * 1) = 0.462; h_2 = tanh(0.5 * 2 + 0.8 * h_1) = 0.878.
    h = to_numpy(_worked_example_layer()(X))[0, :, 0]
    np.testing.assert_allclose(h, [0.462, 0.878], atol=1e-3)


def _allowed_pairs(shared_input):
    """Every (h_1, h_2) the masks can give, enumerated in NumPy (rate 0.5:
    a kept unit is scaled by 2, a dropped one is 0)."""
    pairs = set()
    for m1, m2, r in itertools.product((0.0, 2.0), repeat=3):
        if shared_input and m1 != m2:
            continue
        h1 = np.tanh(0.5 * 1.0 * m1)
        h2 = np.tanh(0.5 * 2.0 * m2 + 0.8 * h1 * r)
        pairs.add((round(float(h1), 3), round(float(h2), 3)))
    return pairs


@pytest.mark.parametrize("shared_input", [True, False])
def test_worked_example_with_dropout_gives_exactly_the_outcomes_of_its_masks(
    shared_input,
):
    # Each of the 400 copies of the sample draws its own masks.
    layer = _worked_example_layer(
        dropout=0.5, recurrent_dropout=0.5, share_input_mask=shared_input, seed=0
    )
    h = to_numpy(layer(np.repeat(X, 400, axis=0), training=True))[:, :, 0]
    seen = {(round(float(a), 3), round(float(b), 3)) for a, b in h}
    assert seen == _allowed_pairs(shared_input)
    # Input kept at step 1 and dropped at step 2, h_1 kept: h_1 = tanh(1) =
    # 0.762, h_2 = tanh(0.8 * 0.762 * 2) = 0.839. Only a fresh input mask
    # per step can drop the same input unit at one step and not the other.
    assert ((0.762, 0.839) in seen) is (not shared_input)
