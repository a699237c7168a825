import keras
import numpy as np
import pytest
from keras import ops

from keras_reg.callbacks import DropoutScheduler, early_dropout, linear_ramp
from keras_reg.layers import InvertedDropout, TimeSharedDropout, VariationalSimpleRNN
from tests.helpers import six_sigma

UNITS = 4000


def _zero_fraction(y_true, y_pred):
    return ops.mean(ops.cast(ops.equal(y_pred, 0.0), "float32"))


def _model(first=0.5, second=0.5):
    """ones -> InvertedDropout -> TimeSharedDropout; the output's zero
    fraction is 1 - (1 - first) * (1 - second)."""
    inputs = keras.Input((UNITS,))
    ones = keras.layers.Dense(
        UNITS, kernel_initializer="zeros", bias_initializer="ones"
    )(inputs)
    x = InvertedDropout(first, seed=1, name="first")(ones)
    x = keras.layers.Reshape((1, UNITS))(x)
    x = TimeSharedDropout(second, seed=2, name="second")(x)
    model = keras.Model(inputs, keras.layers.Flatten()(x))
    model.compile(
        optimizer=keras.optimizers.SGD(0.0), loss="mse", metrics=[_zero_fraction]
    )
    return model


def _fit(model, scheduler, epochs):
    x = np.zeros((32, UNITS), "float32")
    return model.fit(
        x, x, batch_size=8, epochs=epochs, verbose=0, callbacks=[scheduler]
    ).history


def test_observed_drop_fraction_follows_the_schedule_in_one_fit():
    rates = [0.5, 0.1, 0.0, 0.3]
    history = _fit(_model(), DropoutScheduler(lambda epoch: rates[epoch]), 4)
    assert history["dropout_rate"] == rates
    for rate, observed in zip(rates, history["_zero_fraction"], strict=True):
        expected = 1 - (1 - rate) ** 2  # both layers scheduled
        assert abs(observed - expected) < six_sigma(max(expected, 1e-3), 32 * UNITS)


def test_only_the_given_layers_are_scheduled():
    model = _model(first=0.5, second=0.2)
    scheduler = DropoutScheduler(lambda epoch: 0.0, layers=[model.get_layer("first")])
    history = _fit(model, scheduler, 1)
    assert model.get_layer("second").rate == 0.2
    assert abs(history["_zero_fraction"][0] - 0.2) < six_sigma(0.2, 32 * UNITS)


def test_schedule_of_epoch_and_rate_gets_the_rate_in_force():
    seen = []

    def halve(epoch, rate):
        seen.append(rate)
        return rate / 2

    _fit(_model(first=0.4, second=0.4), DropoutScheduler(halve), 3)
    assert seen == [0.4, 0.2, 0.1]


@pytest.mark.parametrize("bad", [1.0, -0.1, float("nan"), "0.1", None])
def test_invalid_scheduled_rate_raises_naming_epoch_and_value(bad):
    model = _model()
    with pytest.raises(ValueError, match=r"at epoch 1: "):
        _fit(model, DropoutScheduler(lambda epoch: 0.2 if epoch == 0 else bad), 2)
    assert model.get_layer("first").rate == 0.2  # the old rate stays


def test_model_without_keras_reg_dropout_is_an_error():
    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="no keras_reg dropout layer"):
        model.fit(
            np.ones((4, 2)),
            np.ones((4, 1)),
            verbose=0,
            callbacks=[DropoutScheduler(lambda e: 0.1)],
        )


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="schedule"):
        DropoutScheduler(0.5)
    with pytest.raises(ValueError, match="layers"):
        DropoutScheduler(lambda e: 0.1, layers=[keras.layers.Dropout(0.1)])


def test_early_dropout_and_linear_ramp_values():
    early = early_dropout(0.1, epochs=3)
    assert [early(e) for e in range(5)] == [0.1, 0.1, 0.1, 0.0, 0.0]
    ramp = linear_ramp(0.0, 0.4, epochs=4, start_epoch=2)
    np.testing.assert_allclose(
        [ramp(e) for e in range(8)], [0, 0, 0, 0.1, 0.2, 0.3, 0.4, 0.4]
    )
    down = linear_ramp(0.5, 0.0, epochs=5)
    np.testing.assert_allclose([down(e) for e in (0, 5, 9)], [0.5, 0.0, 0.0])
    with pytest.raises(ValueError, match="rate"):
        early_dropout(1.2, 3)
    with pytest.raises(ValueError, match="epochs"):
        linear_ramp(0.1, 0.2, epochs=0)


def test_cells_are_scheduled_inside_one_fit():
    # h_t = 1 at every step (zero kernels, unit bias, linear); the emitted
    # output is h * mask, so its zero fraction is output_dropout.
    inputs = keras.Input((2, 3))
    x = VariationalSimpleRNN(
        UNITS,
        output_dropout=0.5,
        activation=None,
        kernel_initializer="zeros",
        recurrent_initializer="zeros",
        bias_initializer="ones",
        seed=4,
    )(inputs)
    model = keras.Model(inputs, x)
    model.compile(
        optimizer=keras.optimizers.SGD(0.0), loss="mse", metrics=[_zero_fraction]
    )
    rates = [0.5, 0.0, 0.2]
    x = np.zeros((32, 2, 3), "float32")
    history = model.fit(
        x,
        np.zeros((32, UNITS), "float32"),
        batch_size=8,
        epochs=3,
        verbose=0,
        callbacks=[DropoutScheduler(lambda epoch: rates[epoch])],
    ).history
    assert history["dropout_rate"] == rates
    for rate, observed in zip(rates, history["_zero_fraction"], strict=True):
        assert abs(observed - rate) < six_sigma(max(rate, 1e-3), 32 * UNITS)
    # A regularizer the cell was built without is not part of the schedule.
    assert model.layers[1].recurrent_dropout == 0.0
