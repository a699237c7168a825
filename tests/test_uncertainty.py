"""`uncertainty`: the split of predictive entropy, against a reference
computed here row by row with scipy's entropy (or explicit loops)."""

import keras
import numpy as np
import pytest

from keras_reg._acquisition import uncertainty
from keras_reg.inference import mc_predict
from keras_reg.layers import InvertedDropout

scipy_stats = pytest.importorskip("scipy.stats")


def _stack(seed, samples=7, batch=11, classes=5, dtype="float64", sparsity=0.0):
    """Dirichlet probabilities; with `sparsity`, that share of the entries
    set to exactly 0 (rows renormalized) and one row one-hot in every
    sample."""
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(classes, 0.7), size=(samples, batch))
    if sparsity:
        p[rng.random(p.shape) < sparsity] = 0.0
        p[..., 0] += p.sum(-1) == 0  # no all-zero row
        p /= p.sum(-1, keepdims=True)
        p[:, 0] = np.eye(classes)[rng.integers(classes, size=samples)]
    return p.astype(dtype)


def _reference(stack):
    """Row by row, in float64, with scipy.stats.entropy and a vote count."""
    stack = np.asarray(stack, "float64")
    samples, batch, classes = stack.shape
    out = {k: np.zeros(batch) for k in ("pe", "ee", "mi", "vr")}
    for b in range(batch):
        rows = stack[:, b, :]
        mean = rows.sum(0) / samples
        out["pe"][b] = scipy_stats.entropy(mean)
        out["ee"][b] = np.mean([scipy_stats.entropy(r) for r in rows])
        out["mi"][b] = out["pe"][b] - out["ee"][b]
        votes = [0] * classes
        for r in rows:
            votes[int(np.argmax(r))] += 1
        out["vr"][b] = 1.0 - max(votes) / samples
    return out


@pytest.mark.parametrize("sparsity", [0.0, 0.4])
def test_matches_the_reference_in_float64(sparsity):
    stack = _stack(0, sparsity=sparsity)
    got = uncertainty(stack)
    ref = _reference(stack)
    np.testing.assert_allclose(got["predictive_entropy"], ref["pe"], rtol=1e-12)
    np.testing.assert_allclose(got["expected_entropy"], ref["ee"], rtol=1e-12)
    np.testing.assert_allclose(
        got["mutual_information"], ref["mi"], rtol=1e-9, atol=1e-15
    )
    np.testing.assert_array_equal(got["variation_ratio"], ref["vr"])
    np.testing.assert_allclose(got["mean"], stack.mean(0), rtol=1e-12)
    for value in got.values():
        assert value.dtype == np.float64


def test_float32_in_float32_out_and_close_to_the_reference():
    stack = _stack(1, samples=30, batch=200, classes=10, dtype="float32")
    got = uncertainty(stack)
    ref = _reference(stack)
    for key, name in (("pe", "predictive_entropy"), ("ee", "expected_entropy")):
        assert got[name].dtype == np.float32
        np.testing.assert_allclose(got[name], ref[key], rtol=1e-6)
    np.testing.assert_allclose(got["mutual_information"], ref["mi"], atol=1e-6)
    np.testing.assert_array_equal(got["variation_ratio"], ref["vr"].astype("float32"))


def test_probabilities_of_zero_and_one_are_safe():
    # One-hot samples: no aleatoric part; the disagreement is all epistemic.
    votes = np.array([[0, 0], [1, 0], [1, 0], [2, 0]])  # (samples, batch)
    stack = np.eye(3, dtype="float32")[votes]  # (4, 2, 3)
    got = uncertainty(stack)  # filterwarnings=error: no log(0) warning
    mean = np.array([0.25, 0.5, 0.25])
    expected_pe = -(mean * np.log(mean)).sum()
    np.testing.assert_allclose(got["predictive_entropy"], [expected_pe, 0], rtol=1e-6)
    np.testing.assert_array_equal(got["expected_entropy"], [0, 0])
    np.testing.assert_allclose(got["mutual_information"], [expected_pe, 0], rtol=1e-6)
    np.testing.assert_array_equal(got["variation_ratio"], [0.5, 0.0])
    assert all(np.all(np.isfinite(v)) for v in got.values())


def test_mutual_information_is_never_negative_in_float32():
    # Identical samples: the mutual information is exactly 0. Computed in
    # float32 as the difference of the two entropies, rounding leaves many
    # rows below 0 (checked here, so the data can catch that fault).
    rng = np.random.default_rng(2)
    row = rng.dirichlet(np.ones(10), size=4000).astype("float32")
    stack = np.broadcast_to(row, (25, *row.shape)).copy()
    stack[:, ::2] += rng.normal(scale=1e-7, size=stack[:, ::2].shape).astype("float32")
    stack = np.clip(stack, 0, 1)
    mean32 = stack.mean(0)
    naive = -(mean32 * np.log(mean32)).sum(-1) + (stack * np.log(stack)).sum(-1).mean(0)
    assert (naive < 0).any()
    mi = uncertainty(stack)["mutual_information"]
    assert mi.dtype == np.float32
    assert mi.min() >= 0.0
    assert mi.max() < 1e-6


def test_decomposition_adds_up():
    got = uncertainty(_stack(3, samples=50, batch=100))
    np.testing.assert_allclose(
        got["predictive_entropy"],
        got["expected_entropy"] + got["mutual_information"],
        rtol=1e-12,
    )


def test_mc_predict_stack_of_a_softmax_model():
    inputs = keras.Input((6,))
    x = keras.layers.Dense(16, activation="relu")(inputs)
    x = InvertedDropout(0.5, seed=0)(x)
    model = keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(x))
    x = np.random.default_rng(0).normal(size=(33, 6)).astype("float32")
    _, _, stack = mc_predict(model, x, samples=9, seed=0, return_samples=True)
    got = uncertainty(stack)
    ref = _reference(stack)
    assert got["mutual_information"].shape == (33,)
    np.testing.assert_allclose(got["predictive_entropy"], ref["pe"], rtol=1e-5)
    np.testing.assert_allclose(got["mutual_information"], ref["mi"], atol=1e-6)
    assert got["mutual_information"].max() > 0


@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 4, 5), (4,)])
def test_wrong_rank_raises(shape):
    p = np.full(shape, 1.0 / shape[-1])
    with pytest.raises(ValueError, match="samples.*shape"):
        uncertainty(p)


def test_empty_stack_raises():
    with pytest.raises(ValueError, match="non-empty"):
        uncertainty(np.zeros((3, 0, 4)))


@pytest.mark.parametrize(
    "dtype, bad, rounding",
    [("float32", 2e-3, 1e-5), ("float64", 1e-6, 1e-12), ("float16", 0.1, 4e-3)],
)
def test_rows_not_summing_to_one_raise_and_rounding_passes(dtype, bad, rounding):
    p = _stack(4, dtype="float64")
    off = p.copy()
    off[3, 5, 1] += bad
    with pytest.raises(ValueError, match="summing to 1"):
        uncertainty(off.astype(dtype))
    ok = p.copy()
    ok[3, 5, 1] += rounding
    ok[2, 7, 0] -= rounding
    uncertainty(ok.astype(dtype))


def test_logits_raise():
    logits = np.abs(np.random.default_rng(5).normal(size=(4, 6, 3))).astype("float32")
    with pytest.raises(ValueError, match="not logits"):
        uncertainty(logits)


def test_negative_entries_and_nan_raise():
    p = _stack(6)
    neg = p.copy()
    neg[0, 0, 1] += neg[0, 0, 0] + 0.05
    neg[0, 0, 0] = -0.05  # the row still sums to 1
    with pytest.raises(ValueError, match=">= 0"):
        uncertainty(neg)
    nan = p.copy()
    nan[1, 2, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        uncertainty(nan)


def test_integer_stack_of_votes():
    votes = np.eye(2, dtype="int64")[np.array([[0], [1]])]
    got = uncertainty(votes)
    assert got["mutual_information"].dtype == np.float64
    np.testing.assert_allclose(got["mutual_information"], [np.log(2)])
