"""Metrics for probabilistic classifiers."""

import numbers

import keras
from keras import ops

__all__ = ["ExpectedCalibrationError"]


@keras.saving.register_keras_serializable(package="keras_reg")
class ExpectedCalibrationError(keras.metrics.Metric):
    """Expected calibration error of a classifier's confidence.

    The confidence of a prediction is its largest class probability, and
    it is correct when that class is the label. Predictions are put in
    `num_bins` equal-width confidence bins, `((k - 1) / num_bins,
    k / num_bins]` for `k = 1..num_bins` (a confidence of exactly 0 goes
    to the first bin), and

    `ECE = sum_k (n_k / n) |accuracy_k - mean confidence_k|`

    (Naeini et al. 2015; Guo et al. 2017): 0 for a calibrated model, up to
    1. The metric streams: per bin, it keeps the count, the sum of
    confidences and the number correct (weighted by `sample_weight`) in
    three variables, so the result over several batches is that of the
    whole set. Nothing is random. Keras ops only, so it runs in
    `compile(metrics=[...])` on every backend, with `jit_compile` too.

    Args:
        num_bins: int >= 1, the number of confidence bins. Defaults to `15`.
        name: string name of the metric instance. Defaults to `"ece"`.
        dtype: optional dtype of the metric's variables and result.
            Defaults to `None` (float32).

    Call arguments (`update_state`):
        y_true: the labels: integers of shape `(batch,)` or `(batch, 1)`
            (sparse), or one-hot of shape `(batch, classes)`. Probabilities
            as labels (soft labels) count their most probable class.
        y_pred: class probabilities, shape `(batch, classes)` (a softmax
            output). Higher ranks are flattened to rows of `classes`.
        sample_weight: optional weights, one per row. Defaults to `None`.

    Example:

    >>> metric = keras_reg.metrics.ExpectedCalibrationError(num_bins=10)
    >>> metric.update_state([0, 1], [[0.9, 0.1], [0.85, 0.15]])
    >>> round(float(metric.result()), 3)  # bin (0.8, 0.9]: |0.5 - 0.875|
    0.375
    >>> model.compile(
    ...     optimizer="adam",
    ...     loss="sparse_categorical_crossentropy",
    ...     metrics=["accuracy", keras_reg.metrics.ExpectedCalibrationError()],
    ... )

    Reference:
        Guo, Pleiss, Sun & Weinberger, 2017, "On Calibration of Modern
        Neural Networks"; Naeini, Cooper & Hauskrecht, 2015, "Obtaining
        Well Calibrated Probabilities Using Bayesian Binning".
    """

    def __init__(self, num_bins=15, name="ece", dtype=None):
        if (
            isinstance(num_bins, bool)
            or not isinstance(num_bins, numbers.Integral)
            or num_bins < 1
        ):
            raise ValueError(
                "Invalid value received for argument `num_bins`. Expected a "
                f"positive integer. Received: num_bins={num_bins!r}"
            )
        super().__init__(name=name, dtype=dtype)
        self.num_bins = int(num_bins)
        self.counts = self.add_variable(
            shape=(self.num_bins,), initializer="zeros", name="counts"
        )
        self.confidence_sums = self.add_variable(
            shape=(self.num_bins,), initializer="zeros", name="confidence_sums"
        )
        self.correct_sums = self.add_variable(
            shape=(self.num_bins,), initializer="zeros", name="correct_sums"
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = ops.convert_to_tensor(y_pred, dtype=self.dtype)
        classes = y_pred.shape[-1]
        y_pred = ops.reshape(y_pred, (-1, classes))
        y_true = ops.convert_to_tensor(y_true)
        one_hot = (
            len(y_true.shape) >= 2
            and y_true.shape[-1] == classes
            and classes is not None
            and classes > 1
        )
        if one_hot:
            labels = ops.argmax(ops.reshape(y_true, (-1, classes)), axis=-1)
        else:
            labels = ops.reshape(y_true, (-1,))
        labels = ops.cast(labels, "int32")
        confidence = ops.max(y_pred, axis=-1)
        predicted = ops.cast(ops.argmax(y_pred, axis=-1), "int32")
        correct = ops.cast(ops.equal(predicted, labels), self.dtype)
        # Bin k (from 0) holds (k / B, (k + 1) / B]: ceil(c * B) - 1.
        index = ops.ceil(confidence * self.num_bins) - 1
        index = ops.cast(ops.clip(index, 0, self.num_bins - 1), "int32")
        bins = ops.one_hot(index, self.num_bins, dtype=self.dtype)  # (n, B)
        if sample_weight is None:
            weight = ops.ones_like(confidence)
        else:
            weight = ops.reshape(
                ops.convert_to_tensor(sample_weight, dtype=self.dtype), (-1,)
            )
            weight = ops.broadcast_to(weight, ops.shape(confidence))
        self.counts.assign_add(ops.matmul(weight, bins))
        self.confidence_sums.assign_add(ops.matmul(weight * confidence, bins))
        self.correct_sums.assign_add(ops.matmul(weight * correct, bins))

    def result(self):
        total = ops.sum(self.counts)
        gap = ops.sum(ops.abs(self.correct_sums - self.confidence_sums))
        return ops.divide_no_nan(gap, total)

    def reset_state(self):
        for variable in (self.counts, self.confidence_sums, self.correct_sums):
            variable.assign(ops.zeros(variable.shape, dtype=variable.dtype))

    def get_config(self):
        return {"num_bins": self.num_bins, "name": self.name, "dtype": self.dtype}
