"""The checker's judge and report, at the NumPy level (no subprocess).

STYLE 11a: the judge exists to catch a difference between backends. Each
test here plants one, at real scales (1e-4, 1, 1e4), for every kind of
compared value (an output, a layer's output, the loss, a weight's
gradient), in every mode, in float32 and in bfloat16 values, and watches
the judge fail it; and plants only rounding and watches it pass.

"Rounding" is what two backends computing the same thing give: in float32,
differences up to `ROUNDING_F32` of each tensor's largest value (the
demo's character model, a 64-step 384-unit LayerNormLSTM, measured at most
3.0e-4 in every mode on three backends, see the guide); in bfloat16, the same float32
values, perturbed by 2**-10 of themselves, each rounded to bfloat16 (so
that about half the elements differ by one unit in the last place).

These tests are the ones the mutation tester runs over `_judge.py` and
`_report.py` (CONTRIBUTING has the command).
"""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_reg.testing import _inputs, _judge
from keras_reg.testing._report import BackendReport

SCALES = (1e-4, 1.0, 1e4)
# Float32 rounding planted: the character model's largest max_rel.
ROUNDING_F32 = 3e-4
# (mode, kind, name, shape) of the values a real run records.
VALUES = (
    ("inference", "output", "probabilities", (8, 10)),
    ("inference", "layer", "lstm", (8, 64, 64)),
    ("training", "output", "probabilities", (8, 10)),
    ("training", "layer", "lstm", (8, 64, 64)),
    ("gradients", "loss", "loss", ()),
    ("gradients", "gradient", "lstm/kernel", (64, 256)),
    ("gradients", "gradient", "lstm/bias", (256,)),
)


def bfloat16(x):
    """`x` rounded to bfloat16 (to nearest, ties to even), as float32."""
    bits = np.asarray(x, "float32").view("uint32").astype("uint64")
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16 << 16
    return bits.astype("uint32").view("float32")


def _values(kind, shape, scale, rng):
    """Reference-like values of `kind`, largest magnitude about `scale`."""
    if kind == "output":
        logits = rng.normal(size=shape)
        x = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    elif kind == "gradient":
        x = rng.standard_t(3, size=shape)
    else:
        x = rng.normal(size=shape)
    x = np.asarray(x, "float64")
    return (x * scale / np.abs(x).max()).astype("float32")


def _pair(kind, shape, scale, dtype, planted, seed=0):
    """`(a, b)`: the reference `b` and a backend's `a` with `planted`
    (`"fault"`: 1% more; `"rounding"`) in values computed in `dtype`.

    The loss is a float32 scalar even in a bfloat16 model: the mean of the
    squared bfloat16 outputs, computed in float32."""
    rng = np.random.default_rng(seed)
    if kind == "loss":
        outputs = _values("layer", (8, 10), np.sqrt(scale), rng)
        if dtype == "bfloat16":
            outputs = bfloat16(outputs)
        b = np.mean(np.square(outputs, dtype="float32"), dtype="float32")
        if planted == "fault":
            return np.float32(b * 1.01), b
        if dtype == "bfloat16":
            # Outputs that differ by one unit in the last place here and
            # there.
            jitter = 1 + rng.normal(size=outputs.shape) * 2.0**-8
            other = bfloat16(outputs * jitter.astype("float32"))
        else:
            other = outputs * (1 + rng.uniform(-1, 1, outputs.shape) * ROUNDING_F32 / 2)
        return np.mean(np.square(other, dtype="float32"), dtype="float32"), b
    x = _values(kind, shape, scale, rng)
    if dtype == "bfloat16":
        b = bfloat16(x)
        if planted == "fault":
            return bfloat16(b * np.float32(1.01)), b
        jitter = 1 + rng.normal(size=shape) * 2.0**-10
        return bfloat16(x * jitter.astype("float32")), b
    b = x
    if planted == "fault":
        return (b * np.float32(1.01)).astype("float32"), b
    noise = rng.uniform(-1, 1, shape) * ROUNDING_F32 * np.abs(b).max()
    return (b + noise).astype("float32"), b


def _meta(entries):
    return {"entries": entries}


def _run(planted_values, dtype):
    """`_judge.compare` over worker-like results: `planted_values` is
    `[(mode, kind, name, a, b)]`."""
    ref_entries, entries, ref_arrays, arrays = [], [], {}, {}
    for index, (mode, kind, name, a, b) in enumerate(planted_values):
        key = f"a{index}"
        stored = "float32"
        entry = {"mode": mode, "kind": kind, "name": name, "key": key}
        entry.update(dtype=stored, compute_dtype=dtype)
        ref_entries.append(dict(entry))
        entries.append(dict(entry))
        ref_arrays[key], arrays[key] = b, a
    modes = sorted({v[0] for v in planted_values})
    return _judge.compare(
        modes,
        (_meta(ref_entries), ref_arrays),
        (_meta(entries), arrays),
        "torch",
        None,
        None,
    )


# --- planted differences: every kind, mode, dtype and scale ------------------


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("mode, kind, name, shape", VALUES)
def test_a_planted_one_percent_fails(mode, kind, name, shape, scale, dtype):
    a, b = _pair(kind, shape, scale, dtype, "fault")
    (c,) = _run([(mode, kind, name, a, b)], dtype)
    assert not c["passed"], c
    assert c["excess"] > 1.05, c
    assert c["dtype"] == dtype


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("mode, kind, name, shape", VALUES)
def test_planted_rounding_passes(mode, kind, name, shape, scale, dtype):
    a, b = _pair(kind, shape, scale, dtype, "rounding")
    assert not np.array_equal(a, b)
    (c,) = _run([(mode, kind, name, a, b)], dtype)
    assert c["passed"], c
    assert c["excess"] < 0.9, c


@settings(max_examples=60, deadline=None)
@given(
    shape=st.lists(st.integers(1, 12), min_size=0, max_size=3).map(tuple),
    exponent=st.floats(-4, 4),
    kind=st.sampled_from(["output", "layer", "gradient"]),
    seed=st.integers(0, 2**16),
)
def test_one_percent_fails_in_float32_and_bfloat16_at_any_scale_and_shape(
    shape, exponent, kind, seed
):
    for dtype in ("float32", "bfloat16"):
        a, b = _pair(kind, shape, 10.0**exponent, dtype, "fault", seed)
        atol, rtol = _judge.tolerance(dtype)
        got = _judge.statistics(a, b, atol, rtol, mean=dtype == "bfloat16")
        assert not got["passed"], (dtype, got)


@settings(max_examples=60, deadline=None)
@given(
    shape=st.lists(st.integers(1, 12), min_size=0, max_size=3).map(tuple),
    exponent=st.floats(-4, 4),
    kind=st.sampled_from(["output", "layer", "gradient"]),
    seed=st.integers(0, 2**16),
)
def test_float32_rounding_passes_at_any_scale_and_shape(shape, exponent, kind, seed):
    a, b = _pair(kind, shape, 10.0**exponent, "float32", "rounding", seed)
    got = _judge.statistics(a, b, *_judge.tolerance("float32"))
    assert got["passed"], got


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(2, 16),
    columns=st.integers(8, 64),
    exponent=st.floats(-4, 4),
    kind=st.sampled_from(["output", "layer", "gradient"]),
    seed=st.integers(0, 2**16),
)
def test_bfloat16_rounding_passes_from_16_values(rows, columns, exponent, kind, seed):
    # One value that differs by one unit in the last place is as far off as
    # a 1% difference can be: below about 8 values, no rule tells them
    # apart (the guide says so).
    a, b = _pair(kind, (rows, columns), 10.0**exponent, "bfloat16", "rounding", seed)
    got = _judge.statistics(a, b, *_judge.tolerance("bfloat16"), mean=True)
    assert got["passed"], got


def test_a_one_percent_gain_in_bfloat16_fails_even_where_no_value_moves_two_ulps():
    # Every value just above a power of two: 1% is 1.28 units in the last
    # place, so each differs by exactly one unit, as rounding could; the
    # mean condition catches what the largest difference cannot.
    b = bfloat16(np.float32(2.0) ** np.arange(-6, 6, dtype="float32") * 1.01)
    a = bfloat16(b * np.float32(1.01))
    assert np.all(np.abs(a - b) <= np.spacing(b, dtype="float32") * 2**16)
    got = _judge.statistics(a, b, *_judge.tolerance("bfloat16"), mean=True)
    assert got["max_abs"] <= 2.0**-7 * np.abs(b).max()
    assert not got["passed"]
    assert got["excess"] > 1.05
    # The largest difference alone passes it.
    assert _judge.statistics(a, b, *_judge.tolerance("bfloat16"))["passed"]


def test_gradients_of_differing_dropout_masks_fail_at_their_own_scale():
    # The MLP: gradients of order 1e-3, one backend keeps other units.
    rng = np.random.default_rng(3)
    grad = rng.normal(size=(16, 32)) * 1e-3
    keep_a, keep_b = rng.random(32) < 0.5, rng.random(32) < 0.5
    got = _judge.statistics(
        grad * keep_a * 2, grad * keep_b * 2, *_judge.tolerance("float32")
    )
    assert not got["passed"]
    assert np.isfinite(got["max_rel"]) and got["max_rel"] < 10


# --- the rule, exactly ---------------------------------------------------------


def test_the_peak_condition_at_its_bound():
    b = np.array([4.0, -2.0, 1.0, 0.5])
    atol, rtol = 1e-3, 0.01
    bound = atol + rtol * 4.0
    # The mean condition is far: one element moves.
    at = b + np.array([0.0, 0.0, bound, 0.0])
    got = _judge.statistics(at, b, atol, rtol)
    assert got["passed"] and got["excess"] == pytest.approx(1.0)
    assert got["max_abs"] == pytest.approx(bound)
    assert got["max_rel"] == pytest.approx(bound / 4.0)
    assert got["mean_abs"] == pytest.approx(bound / 4)
    beyond = b + np.array([0.0, 0.0, bound * 1.001, 0.0])
    got = _judge.statistics(beyond, b, atol, rtol)
    assert not got["passed"] and got["excess"] == pytest.approx(1.001)


def test_the_mean_condition_at_its_bound():
    b = np.array([8.0, -8.0, 8.0, -8.0])
    atol, rtol = 0.0, 2.0**-5
    share = _judge.MEAN_SHARE
    step = share * rtol * 8.0  # 3/16, exact; mean |b| is 8
    at = b + step
    got = _judge.statistics(at, b, atol, rtol, mean=True)
    assert got["passed"] and got["excess"] == pytest.approx(1.0)
    assert got["mean_abs"] == pytest.approx(step)
    over = b + step * 1.01
    got = _judge.statistics(over, b, atol, rtol, mean=True)
    assert not got["passed"] and got["excess"] == pytest.approx(1.01)
    # The peak alone passes it.
    assert got["max_abs"] < rtol * 8.0
    got = _judge.statistics(over, b, atol, rtol)
    assert got["passed"] and got["excess"] == pytest.approx(step * 1.01 / 0.25)
    # The mean condition with an atol.
    got = _judge.statistics(b + 0.25, b, 0.0625, rtol, mean=True)
    assert got["excess"] == pytest.approx(1.0)
    assert 0 < share < 1


def test_atol_is_a_floor_for_values_that_are_zero_on_one_side():
    zeros = np.zeros(5)
    got = _judge.statistics(zeros, zeros, 0.0, 0.0)
    assert got == {
        "max_abs": 0.0,
        "max_rel": 0.0,
        "mean_abs": 0.0,
        "passed": True,
        "excess": 0.0,
    }
    tiny = np.full(5, 1e-39)
    atol, rtol = _judge.tolerance("float32")
    assert _judge.statistics(tiny, zeros, atol, rtol)["passed"]
    got = _judge.statistics(np.full(5, 1e-30), zeros, atol, rtol)
    assert not got["passed"]
    # Relative to nothing: the smallest positive float64, finite.
    assert got["max_rel"] == pytest.approx(1e-30 / _judge.TINY)
    assert np.isfinite(got["max_rel"])
    # A zero bound: any difference is HUGE past it, none is 0.
    got = _judge.statistics(np.ones(2), np.zeros(2), 0.0, 0.5)
    assert got["excess"] == _judge.HUGE and not got["passed"]


def test_nan_never_passes_whatever_the_tolerance():
    for a, b, why in (
        ([1.0, 2.0], [np.nan, 2.0], "NaN in the reference"),
        ([np.nan, 2.0], [np.nan, 2.0], "NaN in the reference"),
        ([np.nan, 2.0], [1.0, 2.0], "NaN in the compared values"),
    ):
        got = _judge.statistics(np.array(a), np.array(b), 1e300, 1e300)
        assert not got["passed"] and got["why"] == why
        assert got["max_rel"] == _judge.HUGE == got["max_abs"] == got["mean_abs"]
        assert got["excess"] == _judge.HUGE


def test_infinities_equal_pass_and_other_non_finite_differences_fail():
    same = _judge.statistics(
        np.array([np.inf, -np.inf, 1.0]), np.array([np.inf, -np.inf, 1.0]), 0.0, 0.0
    )
    assert same["passed"] and same["max_abs"] == 0.0
    # The scale is that of the finite values.
    near = _judge.statistics(
        np.array([np.inf, 1.001]), np.array([np.inf, 1.0]), 0.0, 2e-3
    )
    assert near["passed"] and near["max_rel"] == pytest.approx(1e-3)
    small = _judge.statistics(
        np.array([np.inf, 1.01e-3]), np.array([np.inf, 1e-3]), 0.0, 2e-3
    )
    assert not small["passed"] and small["max_rel"] == pytest.approx(0.01)
    for a, b in (
        ([np.inf], [1.0]),
        ([1.0], [-np.inf]),
        ([np.inf], [-np.inf]),
        ([1e308], [-1e308]),
    ):
        got = _judge.statistics(np.array(a), np.array(b), 1e300, 1e300)
        assert not got["passed"]
        assert got["why"] == "a non-finite difference (an infinity, or past float64)"
    # Nothing finite in the reference: equal infinities still pass.
    inf = np.array([np.inf, -np.inf])
    got = _judge.statistics(inf, inf, 0.0, 0.0, mean=True)
    assert got["passed"] and got["max_rel"] == 0.0


def test_values_near_the_float_limits_are_judged_in_float64():
    # float32 inputs: their difference, 6e38, is past float32's range.
    a, b = np.float32([3e38]), np.float32([-3e38])
    got = _judge.statistics(a, b, 0.0, 1.0)
    assert "why" not in got and got["max_abs"] == pytest.approx(6e38, rel=1e-6)
    assert got["excess"] == pytest.approx(2.0, rel=1e-6)
    # A float32 mean of |b| would overflow and pass the mean condition.
    b = np.full(4, 3e38, "float32")
    a = b.astype("float64") * (1 + 0.9 * 1e-3)
    got = _judge.statistics(a, b, 0.0, 1e-3, mean=True)
    assert not got["passed"] and got["excess"] == pytest.approx(1.2, rel=1e-6)
    # Means past float64's range: HUGE, finite, no warning.
    got = _judge.statistics(np.full(2, 1e308), np.full(2, -1e307), 0.0, 1.0, True)
    assert got["mean_abs"] == _judge.HUGE and np.isfinite(got["max_abs"])
    got = _judge.statistics(np.full(2, 1.7e308), np.full(2, 1.7e308), 0.0, 0.0, True)
    assert got["passed"] and got["mean_abs"] == 0.0


def test_shapes_empty_and_integers():
    got = _judge.statistics(np.ones(3), np.ones(4), 1.0, 1.0)
    assert not got["passed"] and got["why"] == "shape (3,) against (4,)"
    empty = _judge.statistics(np.ones((0, 3)), np.ones((0, 3)), 0.0, 0.0)
    assert empty == {
        "max_abs": 0.0,
        "max_rel": 0.0,
        "mean_abs": 0.0,
        "passed": True,
        "excess": 0.0,
    }
    assert _judge.tolerance("int32") == _judge.EXACT == (0.0, 0.0)
    assert _judge.tolerance("bool") == (0.0, 0.0)
    ints = _judge.statistics(np.array([1, 2]), np.array([1, 3]), 0.0, 0.0)
    assert not ints["passed"] and ints["max_abs"] == 1.0
    assert _judge.statistics(np.array([1, 2]), np.array([1, 2]), 0.0, 0.0)["passed"]


def test_statistics_match_a_numpy_reference():
    rng = np.random.default_rng(2)
    b = rng.normal(size=(50,))
    a = b + rng.normal(size=(50,)) * 1e-3
    b[3] = 0.0
    atol, rtol = 1e-6, 1e-2
    got = _judge.statistics(a, b, atol, rtol)
    diff = np.abs(a - b)
    scale, mean_scale = np.abs(b).max(), np.abs(b).mean()
    peak = diff.max() / (atol + rtol * scale)
    mean = diff.mean() / (atol + 0.75 * rtol * mean_scale)
    assert got["max_abs"] == pytest.approx(diff.max())
    assert got["mean_abs"] == pytest.approx(diff.mean())
    assert got["max_rel"] == pytest.approx(diff.max() / scale)
    assert got["excess"] == pytest.approx(peak)
    assert got["passed"] == (peak <= 1)
    assert set(got) == {"max_abs", "max_rel", "mean_abs", "passed", "excess"}
    both = _judge.statistics(a, b, atol, rtol, mean=True)
    assert both["excess"] == pytest.approx(max(peak, mean))
    assert both["passed"] == (max(peak, mean) <= 1)


def test_defaults_by_dtype_and_overrides():
    f32 = float(np.finfo("float32").tiny)
    assert _judge.tolerance("float32") == (f32, 2e-3)
    assert _judge.tolerance("bfloat16") == (f32, 2.0**-7)
    assert _judge.tolerance("float16") == (float(np.finfo("float16").tiny), 2.0**-8)
    assert _judge.tolerance("float64") == (float(np.finfo("float64").tiny), 1e-7)
    assert _judge.tolerance("float32", atol=0.5) == (0.5, 2e-3)
    assert _judge.tolerance("float32", rtol=0.25) == (f32, 0.25)
    assert _judge.tolerance("bfloat16", 0, 0) == (0.0, 0.0)
    assert _judge.MEAN_SHARE == 0.75
    assert _judge.MEAN_DTYPES == ("bfloat16",)


def test_the_compute_dtype_is_the_least_precise():
    assert _judge.compute_dtype(["float32", "bfloat16"]) == "bfloat16"
    assert _judge.compute_dtype(["float64", "float16", "float32"]) == "float16"
    assert _judge.compute_dtype(["bfloat16", "float16"]) == "bfloat16"
    assert _judge.compute_dtype(["float64", "float32"]) == "float32"
    assert _judge.compute_dtype(["float64"]) == "float64"
    assert _judge.compute_dtype(["int32", "bool"]) is None
    assert _judge.compute_dtype([]) is None


# --- the floor: a tensor at the rounding level of its kind ----------------------


def _gradients(largest, small_b, small_a, dtype="float32"):
    """The gradients of one call: a kernel whose largest value is `largest`
    (the same on both sides) and a small tensor judged beside it."""
    kernel = np.linspace(-largest, largest, 12).astype("float32")
    values = [("gradients", "gradient", "conv/kernel", kernel, kernel)]
    values.append(("gradients", "gradient", "bn/beta", small_a, small_b))
    return {c["name"]: c for c in _run(values, dtype)}


def test_a_cancelling_sum_is_judged_at_the_rounding_level_of_its_kind():
    # Measured on a random MobileNetV3Small: a BatchNormalization beta's
    # gradient is exactly 0 on TensorFlow and up to 1.3e-7 on torch and
    # JAX, beside gradients up to 104.
    zeros = np.zeros(16, "float32")
    noise = np.float32(1.3e-7) * np.sign(np.sin(np.arange(16))).astype("float32")
    got = _gradients(104.0, zeros, noise)["bn/beta"]
    assert got["passed"] and 0 < got["excess"] < 1 / 10
    # max_rel is relative to the scale used: the floor, 1e-5 * 104.
    assert got["max_rel"] == pytest.approx(1.3e-7 / (1e-5 * 104.0), rel=1e-6)
    # Alone, with nothing larger of its kind, it is judged at its own
    # scale (0) and fails.
    (alone,) = _run([("gradients", "gradient", "bn/beta", noise, zeros)], "float32")
    assert not alone["passed"]


@pytest.mark.parametrize(
    "dtype, share", [("float32", 1e-5), ("float32", 1e-3), ("bfloat16", 1e-2)]
)
def test_one_percent_still_fails_in_a_tensor_as_small_as_the_floor(dtype, share):
    largest = 104.0
    small = np.linspace(-1, 1, 16).astype("float32") * np.float32(share * largest)
    got = _gradients(largest, small, small * np.float32(1.01), dtype)["bn/beta"]
    # float32: 1% is 5 times its bound; bfloat16's bound is 2**-7 (0.78%).
    assert not got["passed"] and got["excess"] > (4 if dtype == "float32" else 1.2)
    rounded = small * np.float32(1 + 1e-6)
    assert _gradients(largest, small, rounded, dtype)["bn/beta"]["passed"]


def test_below_the_floor_differences_up_to_its_bound_pass():
    # The rule's stated limit: below FLOOR * G, a difference up to
    # rtol * FLOOR * G passes, even one of 100%.
    largest = 104.0
    bound = 2e-3 * 1e-5 * largest
    small = np.full(8, bound * 0.9, "float32")
    assert _gradients(largest, small, small * 2)["bn/beta"]["passed"]
    assert not _gradients(largest, small, small * 3)["bn/beta"]["passed"]


def test_the_floor_is_taken_per_mode_and_kind():
    # A large output sets no floor for the gradients, nor for training.
    big = np.full(4, 1e4, "float32")
    small = np.linspace(-1, 1, 8).astype("float32") * np.float32(1e-7)
    got = _run(
        [
            ("inference", "output", "out", big, big),
            ("training", "output", "out", small * 1.01, small),
            ("gradients", "gradient", "w", small * 1.01, small),
        ],
        "float32",
    )
    assert [c["passed"] for c in got] == [True, False, False]


# --- the family floor: a gradient at the rounding level of its layer ------------

# Measured on a random MobileNetV3Small (2 images of 32x32 pixels in
# [0, 255], after `portable`): the first block's projection BatchNorm feeds a
# 1x1 convolution and another BatchNorm, so its beta's exact gradient is 0
# (a float64 TensorFlow run: 4.9e-15). In float32 every backend returns the
# rounding of that cancelling sum: TensorFlow (the reference) and torch,
# its first six channels; their gamma's gradient reaches 5.12, the largest
# gradient of the call 69.8.
BETA_TF = [
    1.4305115e-06,
    2.1457672e-06,
    -1.9073486e-06,
    8.3446503e-07,
    0.0,
    -9.5367432e-07,
]
BETA_TORCH = [
    -1.1920929e-06,
    -1.6689301e-06,
    7.1525574e-07,
    -5.3644180e-07,
    -7.1525574e-07,
    0.0,
]


def _layer_gradients(gamma_b, beta_b, beta_a, largest=69.8, gamma_a=None):
    """One call's gradients: a kernel of another layer reaching `largest`,
    and one BatchNorm's gamma and beta."""
    kernel = np.linspace(-largest, largest, 12).astype("float32")
    gamma_b = np.asarray(gamma_b, "float32")
    values = [
        ("gradients", "gradient", "conv/kernel", kernel, kernel),
        (
            "gradients",
            "gradient",
            "bn/gamma",
            gamma_b if gamma_a is None else gamma_a,
            gamma_b,
        ),
        (
            "gradients",
            "gradient",
            "bn/beta",
            np.asarray(beta_a, "float32"),
            np.asarray(beta_b, "float32"),
        ),
    ]
    return {c["name"]: c for c in _run(values, "float32")}


def test_a_cancelling_sum_is_judged_at_the_rounding_level_of_its_layer():
    gamma = np.linspace(-5.12, 5.12, 6)
    got = _layer_gradients(gamma, BETA_TF, BETA_TORCH)["bn/beta"]
    # 3.8e-6 against 2e-3 * 1e-3 * 5.12: excess 0.37. At the floor of its
    # kind (1e-5 * 69.8) it was 2.7: the rule before 0.4 failed it.
    assert got["passed"] and 0.3 < got["excess"] < 0.45
    assert got["max_rel"] == pytest.approx(3.8147e-6 / (1e-3 * 5.12), rel=1e-3)
    # Without a sibling (a layer with a bias only) the kind's floor rules.
    alone = _gradients(
        69.8, np.asarray(BETA_TF, "float32"), np.asarray(BETA_TORCH, "float32")
    )
    assert not alone["bn/beta"]["passed"] and alone["bn/beta"]["excess"] > 2.5


@pytest.mark.parametrize("share", [1e-3, 1e-2, 1.0])
def test_one_percent_still_fails_in_a_gradient_as_small_as_the_family_floor(share):
    gamma = np.linspace(-5.12, 5.12, 6)
    beta = np.linspace(-1, 1, 16).astype("float32") * np.float32(share * 5.12)
    got = _layer_gradients(gamma, beta, beta * np.float32(1.01))["bn/beta"]
    assert not got["passed"] and got["excess"] > 4
    rounded = beta * np.float32(1 + 1e-6)
    assert _layer_gradients(gamma, beta, rounded)["bn/beta"]["passed"]
    # And in the sibling that sets the floor, at its own scale.
    faulty = _layer_gradients(gamma, beta, beta, gamma_a=gamma * 1.01)["bn/gamma"]
    assert not faulty["passed"] and faulty["excess"] > 4


def test_the_family_is_one_layer_and_only_its_gradients():
    small = np.linspace(-1, 1, 8).astype("float32") * np.float32(1e-4)
    big = np.linspace(-5, 5, 8).astype("float32")
    got = _run(
        [
            # Another layer's large gradient sets no family floor...
            ("gradients", "gradient", "conv/kernel", big, big),
            ("gradients", "gradient", "bn/beta", small * 1.01, small),
            # ...nor do layer outputs sharing a prefix (a nested model's
            # layers are named `inner/dense`), in any mode.
            ("training", "layer", "inner/big", big, big),
            ("training", "layer", "inner/small", small * 1.01, small),
            ("inference", "output", "out/big", big, big),
            ("inference", "output", "out/small", small * 1.01, small),
        ],
        "float32",
    )
    by_name = {(c["mode"], c["name"]): c["passed"] for c in got}
    assert by_name[("gradients", "bn/beta")] is False
    assert by_name[("training", "inner/small")] is False
    assert by_name[("inference", "out/small")] is False


# --- compare(): pairing the entries ----------------------------------------------


def _entry(mode, kind, name, key, dtype="float32", compute=None):
    entry = {"mode": mode, "kind": kind, "name": name, "dtype": dtype, "key": key}
    if compute:
        entry["compute_dtype"] = compute
    return entry


def test_compare_pairs_by_mode_kind_and_name_and_judges_in_the_least_precise_dtype():
    ref = _meta(
        [
            _entry("inference", "output", "out", "r0"),
            _entry("inference", "layer", "dense", "r1"),
            _entry("training", "output", "out", "r2"),
            _entry("gradients", "gradient", "dense/kernel", "r3", compute="bfloat16"),
        ]
    )
    ones = np.ones(4, "float32")
    ref_arrays = {"r0": ones, "r1": ones, "r2": ones, "r3": ones}
    cand = _meta(
        [
            _entry("gradients", "gradient", "dense/kernel", "c0"),
            _entry("inference", "layer", "dense", "c1"),
            _entry("inference", "output", "out", "c2"),
        ]
    )
    arrays = {"c0": ones * 1.005, "c1": ones * 1.0005, "c2": ones}
    got = _judge.compare(
        ["inference", "gradients"],
        (ref, ref_arrays),
        (cand, arrays),
        "jax",
        None,
        None,
    )
    assert [(c["mode"], c["kind"], c["name"]) for c in got] == [
        ("inference", "output", "out"),
        ("inference", "layer", "dense"),
        ("gradients", "gradient", "dense/kernel"),
    ]
    assert all(c["backend"] == "jax" for c in got)
    out, layer, grad = got
    assert out["passed"] and out["max_abs"] == 0.0 and out["dtype"] == "float32"
    assert layer["passed"] and layer["max_rel"] == pytest.approx(5e-4, rel=1e-3)
    # A float32 gradient computed from bfloat16 values: bfloat16's rtol.
    assert grad["dtype"] == "bfloat16" and grad["rtol"] == 2.0**-7
    assert grad["passed"] and grad["max_rel"] == pytest.approx(5e-3, rel=1e-3)
    assert out["atol"] == float(np.finfo("float32").tiny) and out["rtol"] == 2e-3
    # Given tolerances take over.
    got = _judge.compare(
        ["inference"], (ref, ref_arrays), (cand, arrays), "jax", 0.0, 1e-4
    )
    assert [c["passed"] for c in got] == [True, False]
    assert got[1]["rtol"] == 1e-4 and got[1]["atol"] == 0.0


@pytest.mark.parametrize(
    "reference, candidate, judged",
    [
        # 0.3's reference folders hold no compute_dtype: their dtype counts.
        ({"dtype": "bfloat16"}, {"dtype": "float32", "compute": "float32"}, "bfloat16"),
        ({"dtype": "float32"}, {"dtype": "float32", "compute": "bfloat16"}, "bfloat16"),
        ({"dtype": "float32"}, {"dtype": "float16"}, "float16"),
        ({"dtype": "float32", "compute": "float16"}, {"dtype": "float32"}, "float16"),
        ({"dtype": "float64"}, {"dtype": "float64"}, "float64"),
    ],
)
def test_compare_judges_in_the_least_precise_dtype_of_either_side(
    reference, candidate, judged
):
    ref = _meta(
        [
            _entry(
                "inference",
                "output",
                "o",
                "r",
                reference["dtype"],
                reference.get("compute"),
            )
        ]
    )
    cand = _meta(
        [
            _entry(
                "inference",
                "output",
                "o",
                "c",
                candidate["dtype"],
                candidate.get("compute"),
            )
        ]
    )
    ones = np.ones(3)
    (got,) = _judge.compare(
        ["inference"], (ref, {"r": ones}), (cand, {"c": ones}), "jax", None, None
    )
    assert got["dtype"] == judged
    assert (got["atol"], got["rtol"]) == _judge.tolerance(judged)


def test_compare_fails_a_missing_value_and_skips_layers_a_run_has_none_of():
    ref = _meta(
        [
            _entry("inference", "output", "out", "r0"),
            _entry("inference", "layer", "dense", "r1"),
            _entry("inference", "output", "second", "r2", dtype="int32"),
        ]
    )
    ones = np.ones(3, "float32")
    ref_arrays = {"r0": ones, "r1": ones, "r2": np.ones(3, "int32")}
    cand = _meta([_entry("inference", "output", "out", "c0")])
    got = _judge.compare(
        ["inference"], (ref, ref_arrays), (cand, {"c0": ones}), "torch", None, None
    )
    assert [c["name"] for c in got] == ["out", "second"]
    assert got[0]["passed"]
    missing = got[1]
    assert not missing["passed"] and missing["why"] == "no such value from torch"
    assert missing["dtype"] == "int32" and (missing["atol"], missing["rtol"]) == (0, 0)
    assert missing["max_abs"] == _judge.HUGE
    # With layers on the candidate's side, a missing layer fails too.
    cand["entries"].append(_entry("inference", "layer", "other", "c1"))
    got = _judge.compare(
        ["inference"],
        (ref, ref_arrays),
        (cand, {"c0": ones, "c1": ones}),
        "torch",
        None,
        None,
    )
    assert [(c["name"], c["passed"]) for c in got] == [
        ("out", True),
        ("dense", False),
        ("second", False),
    ]


# --- the report --------------------------------------------------------------------


def _comparison(mode, backend, kind, name, passed, excess=None, **extra):
    return {
        "mode": mode,
        "backend": backend,
        "kind": kind,
        "name": name,
        "dtype": "float32",
        "atol": 1e-38,
        "rtol": 1e-3,
        "max_abs": 0.5 if not passed else 1e-7,
        "max_rel": 0.25 if not passed else 1e-6,
        "mean_abs": 0.1 if not passed else 1e-8,
        "passed": passed,
        "excess": (2.0 if not passed else 0.5) if excess is None else excess,
        **extra,
    }


def _report(comparisons, **kwargs):
    options = dict(
        backends=["tensorflow", "torch", "jax"],
        reference="tensorflow",
        modes=["inference", "training", "gradients"],
        comparisons=comparisons,
        non_portable=[],
        errors=[],
    )
    options.update(kwargs)
    return BackendReport(**options)


def test_the_first_divergence_is_the_first_failing_layer_in_recorded_order():
    comparisons = [
        _comparison("inference", "torch", "output", "out", True),
        _comparison("training", "torch", "output", "out", False),
        _comparison("training", "torch", "layer", "nested/inner", True),
        _comparison("training", "torch", "layer", "nested/dense", False),
        _comparison("training", "torch", "layer", "nested", False),
        _comparison("training", "jax", "layer", "first", False),
        _comparison("gradients", "torch", "gradient", "dense/kernel", False),
    ]
    report = _report(comparisons)
    assert report.first_divergence == {
        "mode": "training",
        "backend": "torch",
        "layer": "nested/dense",
    }
    assert not report.passed and report.compared == 7
    assert report.timings == {} and report.seconds == 0.0
    assert report.tolerances == {"atol": None, "rtol": None}
    timed = _report(comparisons, timings={"torch": 2.5}, seconds=3)
    assert timed.timings == {"torch": 2.5} and timed.seconds == 3.0
    # Without layers: the first failing output, then the loss, then a
    # gradient's layer.
    only = [c for c in comparisons if c["kind"] != "layer"]
    assert _report(only).first_divergence["layer"] == "out"
    grads = [
        _comparison("gradients", "jax", "loss", "loss", True),
        _comparison("gradients", "jax", "gradient", "outer/dense/kernel", False),
    ]
    assert _report(grads).first_divergence == {
        "mode": "gradients",
        "backend": "jax",
        "layer": "outer/dense",
    }
    assert _report(grads[:1]).first_divergence is None
    loss = [
        _comparison("gradients", "jax", "gradient", "d/kernel", False),
        _comparison("gradients", "jax", "loss", "loss", False),
    ]
    assert _report(loss).first_divergence["layer"] == "loss"


def test_a_report_passes_only_without_errors_and_failures():
    ok = [_comparison("inference", "torch", "output", "out", True)]
    assert _report(ok).passed
    assert _report(ok).verdict() == "PASSED"
    error = [{"backend": "jax", "message": "boom"}]
    assert not _report(ok, errors=error).passed
    assert _report(ok, errors=error).verdict() == "FAILED"
    nothing = _report([], backends=["torch"], reference="torch")
    assert nothing.passed and nothing.compared == 0
    assert nothing.verdict() == "NOTHING COMPARED"
    assert str(nothing).splitlines()[-2:] == [
        "nothing compared: one backend and no reference; the outputs were "
        "recorded (save them with save_outputs)",
        "NOTHING COMPARED in 0.0 s",
    ]
    failed = _report([], errors=error)
    assert failed.verdict() == "FAILED" and "nothing compared" not in str(failed)


def test_to_dict_is_plain_json_with_tolerances_and_notes():
    comparisons = [
        _comparison("inference", "torch", "output", "out", True),
        _comparison("gradients", "torch", "gradient", "d/kernel", False, why="x y"),
    ]
    comparisons[1].update(dtype="bfloat16", rtol=2.0**-7, atol=1e-38)
    report = _report(
        comparisons,
        notes=["layer left out: a"],
        tolerances={"atol": 1e-9, "rtol": 0.5},
        non_portable=[{"layer": "d", "class": "Dropout", "suggestion": "x"}],
        errors=[{"backend": "jax", "message": "boom"}],
    )
    data = report.to_dict()
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert list(data) == [
        "passed",
        "backends",
        "reference",
        "comparisons",
        "first_divergence",
        "non_portable",
        "errors",
        "compared",
        "tolerances",
        "notes",
    ]
    assert data["compared"] == 2 and data["notes"] == ["layer left out: a"]
    assert data["tolerances"] == {
        "atol": 1e-9,
        "rtol": 0.5,
        "mean_share": 0.75,
        "mean_dtypes": ["bfloat16"],
        "by_dtype": {
            "float32": {"atol": 1e-38, "rtol": 1e-3},
            "bfloat16": {"atol": 1e-38, "rtol": 2.0**-7},
        },
    }
    assert data["comparisons"][0] == {
        "mode": "inference",
        "backend": "torch",
        "kind": "output",
        "name": "out",
        "max_abs": 1e-7,
        "max_rel": 1e-6,
        "mean_abs": 1e-8,
        "passed": True,
    }
    assert data["first_divergence"] == {
        "mode": "gradients",
        "backend": "torch",
        "layer": "d",
    }
    assert data["errors"] == [{"backend": "jax", "message": "boom"}]
    assert data["non_portable"][0]["class"] == "Dropout"
    assert data["backends"] == ["tensorflow", "torch", "jax"]
    assert data["reference"] == "tensorflow" and data["passed"] is False
    assert _report([]).to_dict()["tolerances"] == {
        "atol": None,
        "rtol": None,
        "mean_share": 0.75,
        "mean_dtypes": ["bfloat16"],
        "by_dtype": {},
    }


def test_the_table_and_the_text():
    comparisons = [
        _comparison("inference", "torch", "output", "out", True, excess=0.1),
        _comparison("inference", "torch", "layer", "dense", True, excess=0.2),
        _comparison("training", "torch", "layer", "drop", False, excess=3.0),
        _comparison(
            "training",
            "torch",
            "output",
            "out",
            False,
            excess=2.0,
            why="NaN in the reference",
        ),
    ]
    report = _report(
        comparisons,
        modes=["inference", "training"],
        backends=["tensorflow", "jax", "torch"],
        errors=[{"backend": "jax", "message": "it broke"}],
        non_portable=[{"layer": "drop", "class": "Dropout", "suggestion": "Inv"}],
        notes=["a note"],
        seconds=1.25,
    )
    lines = report.table().splitlines()
    assert lines[0].split() == [
        "backend",
        "mode",
        "values",
        "worst",
        "max_abs",
        "max_rel",
        "result",
    ]
    assert set(lines[1]) == {"-", " "}
    rows = [line.split() for line in lines[2:]]
    assert rows == [
        ["tensorflow", "inference", "-", "-", "-", "-", "reference"],
        ["tensorflow", "training", "-", "-", "-", "-", "reference"],
        ["jax", "-", "-", "-", "-", "-", "ERROR"],
        ["torch", "inference", "2", "layer", "dense", "1e-07", "1e-06", "PASS"],
        ["torch", "training", "2", "layer", "drop", "0.5", "0.25", "FAIL"],
    ]
    assert all(line == line.rstrip() for line in lines)
    assert lines[0].startswith("backend ") and lines[4].startswith("jax ")
    # Columns line up.
    assert len({line.index("mode") for line in lines[:1]}) == 1
    assert lines[2].index("inference") == lines[0].index("mode")
    assert lines[0].index("result") == lines[2].index("reference")
    text = str(report)
    assert text.splitlines()[0] == "reference: tensorflow"
    assert text.startswith("reference: tensorflow\n" + report.table() + "\n\n")
    assert "first divergence: layer 'drop' (training, torch against tensorflow)" in text
    assert (
        "non-portable: 'drop' (Dropout) draws backend-native random numbers; "
        "use instead: Inv" in text
    )
    assert "failed: output 'out' (training, torch): NaN in the reference" in text
    assert "note: a note" in text
    assert "error: jax: it broke" in text
    assert text.splitlines()[-1] == "FAILED in 1.2 s"
    assert repr(report) == (
        "<BackendReport passed=False backends=['tensorflow', 'jax', 'torch'] "
        "reference='tensorflow'>"
    )
    recorded = _report([], backends=["torch"], reference="folder", modes=["training"])
    assert recorded.table().splitlines()[2].split() == [
        "torch",
        "training",
        "-",
        "-",
        "-",
        "-",
        "recorded",
    ]


def test_save_outputs_round_trips_through_load_reference(tmp_path):
    meta = {
        "backend": "torch",
        "entries": [_entry("inference", "output", "out", "a0")],
        "modes": ["inference"],
    }
    arrays = {"a0": np.arange(3.0)}
    report = _report(
        [], backends=["torch"], reference="torch", results={"torch": (meta, arrays)}
    )
    folder = report.save_outputs(tmp_path / "ref")
    assert folder == tmp_path / "ref"
    saved = json.loads((tmp_path / "ref" / "outputs.json").read_text())
    assert saved["backend"] == "torch" and saved["entries"] == meta["entries"]
    assert isinstance(saved["host"], str) and saved["host"]
    loaded_meta, loaded = _inputs.load_reference(tmp_path / "ref", ["inference"])
    assert loaded_meta["entries"] == meta["entries"]
    np.testing.assert_array_equal(loaded["a0"], arrays["a0"])
    with pytest.raises(ValueError, match="holds no \\['training'\\] outputs"):
        _inputs.load_reference(tmp_path / "ref", ["inference", "training"])
    with pytest.raises(FileNotFoundError, match="no outputs.json"):
        _inputs.load_reference(tmp_path, ["inference"])
    # The reference's results first; another backend's when it did not run.
    other = _report(
        [],
        backends=["tensorflow", "torch"],
        reference="tensorflow",
        results={"torch": (dict(meta, host="there"), arrays)},
    )
    other.save_outputs(tmp_path / "other")
    saved = json.loads((tmp_path / "other" / "outputs.json").read_text())
    assert saved["host"] == "there"
    # The reference's, where another backend ran too.
    both = _report(
        [],
        backends=["torch", "jax"],
        reference="jax",
        results={
            "torch": (dict(meta, backend="torch"), arrays),
            "jax": (dict(meta, backend="jax"), arrays),
        },
    )
    # Into an existing folder too.
    both.save_outputs(tmp_path / "other")
    text = (tmp_path / "other" / "outputs.json").read_text()
    assert json.loads(text)["backend"] == "jax"
    assert text.startswith('{\n "backend": "jax",\n')
    with pytest.raises(
        ValueError, match="^Nothing to save: no backend ran \\(errors: \\['m'\\]\\)"
    ):
        _report([], errors=[{"backend": "jax", "message": "m"}]).save_outputs(
            tmp_path / "none"
        )
