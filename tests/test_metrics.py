"""ExpectedCalibrationError against a NumPy reference written here, as a
standalone metric, streaming, and inside compile/fit/evaluate."""

import keras
import numpy as np
import pytest

from keras_reg.metrics import ExpectedCalibrationError
from tests.helpers import to_numpy

# Random initial weights drawn in NumPy (conftest's `numpy_weights`).
pytestmark = pytest.mark.usefixtures("numpy_weights")


def _reference(labels, probs, num_bins, weights=None):
    """ECE by explicit loops over bins (k/B, (k+1)/B], the first bin
    closed at 0."""
    probs = np.asarray(probs, "float64")
    labels = np.asarray(labels)
    weights = np.ones(len(probs)) if weights is None else np.asarray(weights)
    confidence = probs.max(-1)
    correct = (probs.argmax(-1) == labels).astype("float64")
    total = weights.sum()
    ece = 0.0
    for k in range(num_bins):
        low, high = k / num_bins, (k + 1) / num_bins
        inside = (confidence > low) & (confidence <= high)
        if k == 0:
            inside |= confidence == 0
        w = weights[inside]
        if w.sum() == 0:
            continue
        accuracy = (w * correct[inside]).sum() / w.sum()
        mean_conf = (w * confidence[inside]).sum() / w.sum()
        ece += w.sum() / total * abs(accuracy - mean_conf)
    return ece


def _data(seed, n=300, classes=6, sharpness=3.0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, classes)) * sharpness
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    labels = np.where(
        rng.random(n) < 0.7, probs.argmax(-1), rng.integers(classes, size=n)
    )
    return labels.astype("int32"), probs.astype("float32")


@pytest.mark.parametrize("num_bins", [1, 10, 15])
def test_matches_the_reference(num_bins):
    labels, probs = _data(0)
    metric = ExpectedCalibrationError(num_bins=num_bins)
    metric.update_state(labels, probs)
    expected = _reference(labels, probs, num_bins)
    assert expected > 0.01
    np.testing.assert_allclose(float(metric.result()), expected, rtol=1e-5)


def test_streams_over_batches_and_resets():
    # Two batches of 300 rows (with 15 bins: the shapes the reference test
    # above runs, so that on JAX its eager ops compile nothing new): the
    # sums run over both batches (a metric that kept only the last batch's
    # or averaged the batches' errors is off by far more than rtol).
    labels, probs = _data(1, n=600)
    metric = ExpectedCalibrationError()
    for start in range(0, 600, 300):
        metric.update_state(labels[start : start + 300], probs[start : start + 300])
    np.testing.assert_allclose(
        float(metric.result()), _reference(labels, probs, 15), rtol=1e-5
    )
    metric.reset_state()
    assert float(metric.result()) == 0.0
    for variable in metric.variables:
        np.testing.assert_array_equal(to_numpy(variable), 0)


def test_one_hot_and_column_labels_read_as_integers():
    labels, probs = _data(2)
    expected = _reference(labels, probs, 15)
    for y in (np.eye(6, dtype="float32")[labels], labels[:, None]):
        metric = ExpectedCalibrationError()
        metric.update_state(y, probs)
        np.testing.assert_allclose(float(metric.result()), expected, rtol=1e-5)


def test_sample_weight():
    labels, probs = _data(3)
    weights = np.random.default_rng(3).random(len(labels)).astype("float32")
    metric = ExpectedCalibrationError(num_bins=8)
    metric.update_state(labels, probs, sample_weight=weights)
    np.testing.assert_allclose(
        float(metric.result()), _reference(labels, probs, 8, weights), rtol=1e-5
    )


def test_bin_edges_belong_to_the_lower_bin():
    # Confidences exactly on an edge (0.5 with 10 bins) go to (0.4, 0.5];
    # 1.0 to the last bin. With floor() binning instead, 0.5 would share
    # the bin (0.5, 0.6] with 0.55 and the error would change.
    probs = np.array([[0.5, 0.5], [0.55, 0.45], [1.0, 0.0]], "float32")
    labels = np.array([1, 0, 0])
    metric = ExpectedCalibrationError(num_bins=10)
    metric.update_state(labels, probs)
    # Bins: {0.5: wrong}, {0.55: right}, {1.0: right}.
    expected = (0.5 + 0.45 + 0.0) / 3
    assert _reference(labels, probs, 10) == pytest.approx(expected)
    np.testing.assert_allclose(float(metric.result()), expected, rtol=1e-6)


def test_a_calibrated_predictor_scores_near_zero():
    # Confidence c, correct with probability c: the ECE shrinks like
    # 1/sqrt(n); 20,000 rows, 10 bins: a few thousandths.
    rng = np.random.default_rng(4)
    n = 20_000
    confidence = rng.uniform(0.5, 1.0, n)
    probs = np.stack([confidence, 1 - confidence], -1).astype("float32")
    labels = np.where(rng.random(n) < confidence, 0, 1)
    metric = ExpectedCalibrationError(num_bins=10)
    metric.update_state(labels, probs)
    assert float(metric.result()) < 0.02
    # An overconfident one (correct with probability c - 0.2) does not.
    labels = np.where(rng.random(n) < confidence - 0.2, 0, 1)
    metric.reset_state()
    metric.update_state(labels, probs)
    assert float(metric.result()) > 0.15


def test_config_round_trip_and_serialization():
    metric = ExpectedCalibrationError(num_bins=7, name="calibration")
    config = metric.get_config()
    assert config["num_bins"] == 7 and config["name"] == "calibration"
    again = ExpectedCalibrationError.from_config(config)
    assert again.num_bins == 7 and again.name == "calibration"
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(metric)
    )
    assert isinstance(restored, ExpectedCalibrationError)
    assert restored.num_bins == 7


@pytest.mark.parametrize("num_bins", [0, -1, 2.5, True, "10"])
def test_bad_num_bins(num_bins):
    with pytest.raises(ValueError, match="argument `num_bins`"):
        ExpectedCalibrationError(num_bins=num_bins)


def _model():
    inputs = keras.Input((5,))
    x = keras.layers.Dense(16, activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(x))


@pytest.mark.parametrize("jit_compile", [False, True])
def test_in_compile_fit_and_evaluate(jit_compile):
    if jit_compile and keras.backend.backend() == "torch":
        pytest.skip("jit_compile on torch is torch.compile; tested in eager")
    rng = np.random.default_rng(5)
    x = rng.normal(size=(96, 5)).astype("float32")
    y = rng.integers(4, size=96).astype("int32")
    keras.utils.set_random_seed(0)
    model = _model()
    model.compile(
        optimizer="adam",
        loss="sparse_categorical_crossentropy",
        metrics=[ExpectedCalibrationError(num_bins=10)],
        jit_compile=jit_compile,
    )
    history = model.fit(x, y, batch_size=32, epochs=2, verbose=0)
    assert np.isfinite(history.history["ece"]).all()
    result = model.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)
    probs = np.asarray(model.predict(x, batch_size=32, verbose=0))
    np.testing.assert_allclose(result["ece"], _reference(y, probs, 10), rtol=1e-4)
