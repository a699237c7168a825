"""`acquire`: streaming scores over a pool, and BatchBALD's greedy joint
mutual information against a brute-force NumPy reference."""

import functools
import itertools

import keras
import numpy as np
import pytest

from keras_reg import _acquisition, inference
from keras_reg._acquisition import _batchbald_select, acquire, uncertainty
from keras_reg.layers import InvertedDropout

scipy_stats = pytest.importorskip("scipy.stats")


# --- BatchBALD's selection on a synthetic stack ------------------------------


def _probs(seed, samples=6, n=8, classes=3, concentration=0.4):
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.full(classes, concentration), size=(samples, n))


def _joint_entropy(p, points):
    """H(y_points) by enumerating every configuration of their labels."""
    classes = p.shape[-1]
    h = 0.0
    for config in itertools.product(range(classes), repeat=len(points)):
        prob = np.ones(p.shape[0])
        for i, c in zip(points, config, strict=True):
            prob = prob * p[:, i, c]
        q = prob.mean()
        if q > 0:
            h -= q * np.log(q)
    return h


def _reference(p, count):
    """Greedy BatchBALD by brute force: for every candidate, the joint
    entropy of the batch with it minus the batch's expected entropies."""
    n = p.shape[1]
    expected = [
        np.mean([scipy_stats.entropy(row) for row in p[:, i]]) for i in range(n)
    ]
    chosen, steps = [], []
    for _ in range(count):
        scores = np.full(n, -np.inf)
        for i in range(n):
            if i not in chosen:
                batch = [*chosen, i]
                scores[i] = _joint_entropy(p, batch) - sum(expected[j] for j in batch)
        chosen.append(int(np.argmax(scores)))
        steps.append(scores)
    return chosen, steps


def _assert_same_up_to_a_constant(got, ref, atol):
    """Scores agree up to the step's constant (the joint entropy and the
    expected entropies of the points already chosen)."""
    for g, r in zip(got, ref, strict=True):
        live = np.isfinite(r)
        np.testing.assert_array_equal(np.isfinite(g), live)
        offset = g[live] - r[live]
        np.testing.assert_allclose(offset, offset.mean(), atol=atol)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_batchbald_matches_brute_force(seed):
    p = _probs(seed)
    chosen, steps = _batchbald_select(p, 4, return_scores=True)
    ref_chosen, ref_steps = _reference(p, 4)
    assert chosen.tolist() == ref_chosen
    _assert_same_up_to_a_constant(steps, ref_steps, atol=1e-10)


def test_first_pick_is_bald():
    p = _probs(3, samples=10, n=30, classes=4)
    _, steps = _batchbald_select(p, 1, return_scores=True)
    bald = uncertainty(p)["mutual_information"]
    np.testing.assert_allclose(steps[0], bald, atol=1e-12)


def test_sampled_configurations_estimate_the_joint_entropy():
    # Exact enumeration stops after the first point; from the second on,
    # 40,000 configurations drawn from the joint distribution. The
    # estimate's standard error is about 0.003 here.
    p = _probs(4, samples=5, n=6, classes=3, concentration=0.3)
    chosen, steps = _batchbald_select(
        p, 4, configurations=40_000, exact_limit=3, seed=0, return_scores=True
    )
    ref_chosen, ref_steps = _reference(p, 4)
    # Compare each step's scores given the same chosen points.
    for k in range(4):
        assert chosen[:k].tolist() == ref_chosen[:k]
        _assert_same_up_to_a_constant([steps[k]], [ref_steps[k]], atol=0.02)


def test_sampled_batchbald_is_seeded():
    p = _probs(5, samples=8, n=40, classes=10)
    a = _batchbald_select(p, 6, configurations=50, seed=1)
    b = _batchbald_select(p, 6, configurations=50, seed=1)
    np.testing.assert_array_equal(a, b)
    assert len(set(a.tolist())) == 6


def test_batchbald_does_not_pick_a_duplicate_that_bald_picks():
    rng = np.random.default_rng(6)
    samples = 10
    p = rng.dirichlet(np.full(2, 2.0), size=(samples, 8))
    # Point 0: the samples disagree completely (mutual information log 2);
    # points 1 and 2 are copies of it.
    p[:, 0] = np.eye(2)[np.arange(samples) % 2]
    p[:, 1] = p[:, 0]
    p[:, 2] = p[:, 0]
    bald = uncertainty(p)["mutual_information"]
    assert set(np.argsort(-bald, kind="stable")[:3].tolist()) == {0, 1, 2}
    chosen = _batchbald_select(p, 3)
    assert chosen[0] == 0
    assert not {1, 2} & set(chosen.tolist())


def test_batchbald_keeps_no_underflow_over_many_points():
    p = _probs(7, samples=20, n=300, classes=10, concentration=0.1)
    chosen, steps = _batchbald_select(p, 60, seed=0, return_scores=True)
    assert len(set(chosen.tolist())) == 60
    assert all(np.isfinite(s[np.isfinite(s)]).all() for s in steps)
    assert np.isfinite(steps[-1]).sum() == 300 - 59


# --- acquire on models -------------------------------------------------------


@functools.cache
def _dropout_model():
    """Built once for the module (its weights are fixed; every test seeds
    its samples). p(class 0) = sigmoid(3 * dropout(x) - 0.5) on one unit, rate 0.5:
    for x = 0 the samples agree (class 1); for x = 2 half of them say
    class 0 with certainty (mutual information about 0.2, variation ratio
    0.5); for x = 0.05 they nearly agree."""
    inputs = keras.Input((1,))
    h = InvertedDropout(0.5, seed=3)(inputs)
    logits = keras.layers.Dense(2, name="logits")(h)
    model = keras.Model(inputs, keras.layers.Softmax()(logits))
    model.get_layer("logits").set_weights(
        [np.array([[3.0, 0.0]], "float32"), np.array([0.0, 0.5], "float32")]
    )
    return model


def _pool(seed=0, per_value=10):
    values = np.repeat([0.0, 0.05, 2.0], per_value)
    order = np.random.default_rng(seed).permutation(len(values))
    return np.concatenate([values[order], [0.0, 0.05]])[:, None].astype("float32")


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 8 rows (batches of 4), and a record of the rows of each
    `mc_predict` call."""
    calls = []
    original = inference.mc_predict

    @functools.wraps(original)
    def recording(model, x, *args, **kwargs):
        calls.append(np.shape(x)[0])
        return original(model, x, *args, **kwargs)

    monkeypatch.setattr(_acquisition, "_CHUNK_ELEMENTS", 2 * 8 * 50)
    monkeypatch.setattr(inference, "mc_predict", recording)
    return calls


# (The predictive entropy ranks x = 0.05 first here: it counts the noise
# of the label, not the disagreement; its streaming is tested below.)
@pytest.mark.parametrize("method", ["bald", "variation_ratio"])
def test_scores_stream_over_chunks(method, small_chunks):
    pool = _pool()  # 32 rows: 4 chunks, the last one padded
    picked = acquire(
        _dropout_model(), pool, 10, method=method, samples=50, seed=0, batch_size=4
    )
    assert picked.dtype == np.int64
    assert sorted(picked.tolist()) == np.flatnonzero(pool[:, 0] == 2.0).tolist()
    assert small_chunks == [8, 8, 8, 8]


def test_ties_keep_the_pool_order():
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(inputs))
    pool = np.zeros((20, 3), "float32")  # every row the same score
    picked = acquire(model, pool, 5, method="variation_ratio", samples=3, seed=0)
    assert picked.tolist() == [0, 1, 2, 3, 4]


def test_entropy_of_a_deterministic_model_against_the_reference(small_chunks):
    rng = np.random.default_rng(8)
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(5, activation="softmax")(inputs))
    pool = rng.normal(size=(27, 4)).astype("float32")
    probs = np.asarray(model.predict(pool, verbose=0), "float64")
    reference = np.array([scipy_stats.entropy(row) for row in probs])
    picked = acquire(model, pool, 9, method="entropy", samples=2, seed=0, batch_size=4)
    assert picked.tolist() == np.argsort(-reference)[:9].tolist()


def test_random_is_seeded_distinct_and_uniform():
    pool = np.zeros((10, 1), "float32")
    model = _dropout_model()
    a = acquire(model, pool, 10, method="random", seed=5)
    np.testing.assert_array_equal(a, acquire(model, pool, 10, method="random", seed=5))
    assert sorted(a.tolist()) == list(range(10))
    firsts = np.array(
        [acquire(model, pool, 1, method="random", seed=s)[0] for s in range(3000)]
    )
    counts = np.bincount(firsts, minlength=10)
    # 300 expected per index, standard deviation 16.4: 6 sigma.
    assert np.all(np.abs(counts - 300) < 6 * np.sqrt(3000 * 0.1 * 0.9))


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"method": "margin"}, "method"),
        ({"count": 0}, "count"),
        ({"count": 33}, "count"),
        ({"count": True}, "count"),
        ({"count": 2.0}, "count"),
        ({"samples": 0}, "samples"),
        ({"seed": 1.5}, "seed"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, argument):
    arguments = {"count": 3, **kwargs}
    with pytest.raises(ValueError, match=f"argument `{argument}`"):
        acquire(_dropout_model(), _pool(), **arguments)


def test_empty_pool_and_logits_raise():
    with pytest.raises(ValueError, match="argument `pool`"):
        acquire(_dropout_model(), np.zeros((0, 1), "float32"), 1)
    inputs = keras.Input((1,))
    logits = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    with pytest.raises(ValueError, match="argument `model`.*softmax"):
        acquire(logits, _pool() + 1.0, 2, samples=2, seed=0)


def _two_unit_model():
    """Two inputs, each through its own dropout unit (rate 0.5):
    p(class 0) = sigmoid(10 * (dropout(x)_0 + dropout(x)_1) - 5). The row
    [1, 0] is class 0 exactly when unit 0 is kept (mutual information
    about log 2, no aleatoric part); [0, 0.3] depends on unit 1 only
    (mutual information about 0.35); [0, 0] is always class 1."""
    inputs = keras.Input((2,))
    h = InvertedDropout(0.5, seed=4)(inputs)
    logits = keras.layers.Dense(2, name="logits")(h)
    model = keras.Model(inputs, keras.layers.Softmax()(logits))
    model.get_layer("logits").set_weights(
        [np.array([[10.0, 0.0], [10.0, 0.0]], "float32"), np.array([-5.0, 0.0])]
    )
    return model


@pytest.mark.skipif(
    not _acquisition._supports_consistent(),
    reason="mc_predict(..., consistent=True) is not in this version",
)
def test_batchbald_on_a_model_skips_duplicates(small_chunks):
    # Rows 0-2 hold the same input: with the same masks for every row, the
    # copies agree sample by sample, so once one is chosen the others add
    # nothing, and BatchBALD takes row 3 (its own dropout unit) next.
    pool = np.array([[1, 0], [1, 0], [1, 0], [0, 0.3], [0, 0]], "float32")
    model = _two_unit_model()
    bald = acquire(model, pool, 2, method="bald", samples=64, seed=0, batch_size=4)
    assert set(bald.tolist()) <= {0, 1, 2}
    picked = acquire(
        model, pool, 2, method="batchbald", samples=64, seed=0, batch_size=4
    )
    assert picked[0] in (0, 1, 2)
    assert picked[1] == 3


@pytest.mark.parametrize(
    "dtype, clipped",
    [(d, c) for d in ("float16", "float32", "float64") for c in (False, True)]
    + [("int64", False)],
)
def test_acquire_scores_are_those_of_uncertainty(dtype, clipped):
    # `acquire` computes only the score its method needs, partly in the
    # stack's own dtype: bit for bit what `uncertainty` gives, with one-hot
    # rows, exact zeros, rows of agreeing samples and (`clipped`) an entry
    # just below 0 (rounding, clipped in float64); except the mutual
    # information of an unclipped float16 or float32 stack, whose logarithms
    # are float32: within 1e-7 before the cast to the dtype, so within one
    # unit in its last place (float16) or 3e-7 (float32, whose unit is
    # 2.4e-7 at the largest entropy, log 10).
    rng = np.random.default_rng(9)
    stack = rng.dirichlet(np.full(10, 0.3), size=(20, 2048))
    stack[:, :5] = np.eye(10)[:5]
    # Rows whose samples agree: a mutual information of 0 that rounding
    # may leave below 0 (clipped).
    stack[:, 5:1000] = stack[0, 5:1000]
    if dtype == "int64":
        stack = np.eye(10, dtype="int64")[rng.integers(10, size=(20, 2048))]
    else:
        stack = stack.astype(dtype)
        if clipped:
            stack[0, 0, 1] = -1e-9 if dtype == "float64" else -1e-5
    reference = uncertainty(stack)
    for method, key in _acquisition._SCORE.items():
        got = _acquisition._score(stack, key)
        expected = reference[key].astype("float64")
        assert got.dtype == np.float64
        if key == "mutual_information" and dtype == "float32":
            np.testing.assert_allclose(got, expected, rtol=0, atol=3e-7)
        elif key == "mutual_information" and dtype == "float16":
            ulp = np.spacing(np.abs(reference[key])).astype("float64")
            assert np.all(np.abs(got - expected) <= ulp + 1e-7), method
        else:
            np.testing.assert_array_equal(got, expected, method)
