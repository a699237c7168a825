import keras
import numpy as np
import pytest
from keras import ops

from keras_reg.callbacks import (
    DropoutScheduler,
    early_dropout,
    late_dropout,
    linear_ramp,
)
from keras_reg.layers import (
    ConcreteDropout,
    InvertedDropout,
    StochasticDepth,
    TimeSharedDropout,
    VariationalSimpleRNN,
)
from tests.helpers import six_sigma, to_numpy

BACKEND = keras.backend.backend()
UNITS = 4000


def _zero_fraction(y_true, y_pred):
    return ops.mean(ops.cast(ops.equal(y_pred, 0.0), "float32"))


class _TraceCounter(keras.layers.Layer):
    """The identity; counts how often Python runs its `call` (once per trace
    in a compiled step)."""

    traces = 0

    def call(self, inputs):
        type(self).traces += 1
        return inputs


def _model(first=0.5, second=0.5, jit_compile="auto"):
    """ones -> InvertedDropout -> TimeSharedDropout; the output's zero
    fraction is 1 - (1 - first) * (1 - second). The ones come from one
    input feature (a zero, `_inputs`) through zero weights and unit biases:
    a (4000, 4000) kernel would cost a 4000 x 4000 product per step and
    its gradient, for nothing."""
    inputs = keras.Input((1,))
    ones = keras.layers.Dense(
        UNITS, kernel_initializer="zeros", bias_initializer="ones"
    )(inputs)
    x = InvertedDropout(first, seed=1, name="first")(ones)
    x = keras.layers.Reshape((1, UNITS))(x)
    x = TimeSharedDropout(second, seed=2, name="second")(x)
    x = _TraceCounter()(keras.layers.Flatten()(x))
    model = keras.Model(inputs, x)
    model.compile(
        optimizer=keras.optimizers.SGD(0.0),
        loss="mse",
        metrics=[_zero_fraction],
        jit_compile=jit_compile,
    )
    return model


def _inputs(batch):
    """The model's inputs (one zero feature) and its all-zero targets."""
    return np.zeros((batch, 1), "float32"), np.zeros((batch, UNITS), "float32")


def _fit(model, scheduler, epochs):
    x, y = _inputs(32)
    return model.fit(
        x, y, batch_size=8, epochs=epochs, verbose=0, callbacks=[scheduler]
    ).history


@pytest.fixture(scope="module")
def shared_model():
    """One `_model()` for the tests that check rates and drop fractions, not
    stream positions or traces: its train step is traced once (about 0.8
    CPU s a trace on TensorFlow and JAX) and serves them all. Each test
    starts it at its own rates (`_at`)."""
    return _model()


def _at(model, first=0.5, second=0.5):
    """`model` with its two layers' rates set."""
    model.get_layer("first").rate = first
    model.get_layer("second").rate = second
    return model


def test_observed_drop_fraction_follows_the_schedule_in_one_fit(shared_model):
    rates = [0.5, 0.1, 0.0, 0.3]
    model = _at(shared_model)
    history = _fit(model, DropoutScheduler(lambda epoch: rates[epoch]), 4)
    assert history["dropout_rate"] == rates
    for rate, observed in zip(rates, history["_zero_fraction"], strict=True):
        expected = 1 - (1 - rate) ** 2  # both layers scheduled
        assert abs(observed - expected) < six_sigma(max(expected, 1e-3), 32 * UNITS)


def test_only_the_given_layers_are_scheduled(shared_model):
    model = _at(shared_model, first=0.5, second=0.2)
    scheduler = DropoutScheduler(lambda epoch: 0.0, layers=[model.get_layer("first")])
    history = _fit(model, scheduler, 1)
    assert model.get_layer("second").rate == 0.2
    assert abs(history["_zero_fraction"][0] - 0.2) < six_sigma(0.2, 32 * UNITS)


def test_schedule_of_epoch_and_rate_gets_the_rate_in_force(shared_model):
    seen = []

    def halve(epoch, rate):
        seen.append(rate)
        return rate / 2

    _fit(_at(shared_model, first=0.4, second=0.4), DropoutScheduler(halve), 3)
    assert seen == [0.4, 0.2, 0.1]


@pytest.mark.parametrize("bad", [1.0, -0.1, float("nan"), "0.1", None])
def test_invalid_scheduled_rate_raises_naming_epoch_and_value(bad, shared_model):
    model = _at(shared_model)
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


def test_late_dropout_values_and_arguments():
    late = late_dropout(0.2, start=3)
    assert [late(i) for i in range(6)] == [0.0, 0.0, 0.0, 0.2, 0.2, 0.2]
    assert late_dropout(0.1, 0)(0) == 0.1
    for bad, match in [((1.0, 2), "rate"), ((0.1, -1), "start"), ((0.1, 1.5), "start")]:
        with pytest.raises(ValueError, match=match):
            late_dropout(*bad)
    with pytest.raises(ValueError, match="start"):
        late_dropout(0.1, True)


def test_per_step_must_be_a_bool():
    with pytest.raises(ValueError, match="per_step"):
        DropoutScheduler(lambda step: 0.1, per_step=1)


# --- per-step schedules ----------------------------------------------------------


class _BatchZeroFractions(keras.callbacks.Callback):
    """Each batch's own zero fraction, from the running mean that Keras logs
    after every batch (equal batch sizes): b_k = k m_k - (k - 1) m_(k-1)."""

    def __init__(self):
        super().__init__()
        self.values = []

    def on_epoch_begin(self, epoch, logs=None):
        self._previous, self._count = 0.0, 0

    def on_train_batch_end(self, batch, logs=None):
        self._count += 1
        mean = float(logs["_zero_fraction"])
        self.values.append(self._count * mean - (self._count - 1) * self._previous)
        self._previous = mean


@pytest.mark.parametrize("jit_compile", [False, True])
def test_per_step_schedule_acts_at_the_next_batch_inside_one_fit(jit_compile):
    # The rate changes at every batch of one `fit` (2 epochs of 4 batches),
    # and each batch's observed drop fraction is the rate set just before
    # it, on every backend: Keras' JAX trainer holds the variables in its
    # own state during an epoch, so a rate that only reached the layer's
    # variable would show up an epoch late, if at all.
    if jit_compile and BACKEND == "torch":
        pytest.skip("torch.compile: test_portability.py, compiled vs eager")
    rates = [0.5, 0.0, 0.3, 0.6, 0.1, 0.0, 0.4, 0.2]
    steps = []

    def schedule(step):
        steps.append(step)
        return rates[step]

    model = _model(jit_compile=jit_compile)
    observed = _BatchZeroFractions()
    traces = []

    class Traces(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            traces.append(_TraceCounter.traces)

    x, y = _inputs(32)
    history = model.fit(
        x,
        y,
        batch_size=8,
        epochs=2,
        verbose=0,
        shuffle=False,
        callbacks=[DropoutScheduler(schedule, per_step=True), observed, Traces()],
    ).history
    assert steps == list(range(8))
    for step, (rate, value) in enumerate(zip(rates, observed.values, strict=True)):
        expected = 1 - (1 - rate) ** 2  # both layers scheduled
        bound = six_sigma(max(expected, 1e-3), 8 * UNITS) + 1e-4
        assert abs(value - expected) < bound, (step, observed.values)
    # The epoch's last rate is logged.
    assert history["dropout_rate"] == [rates[3], rates[7]]
    # No retracing: the compiled step traced before the first batch only.
    if BACKEND == "tensorflow" or jit_compile:
        assert len(set(traces[1:])) == 1, traces
    # Each stream moved on once per training batch: handing the state to
    # JAX's trainer lost no draw and replayed none.
    for name in ("first", "second"):
        state = to_numpy(model.get_layer(name).seed_generator.state.value)
        assert state[1] == 8, (name, state)


def test_per_step_counts_steps_across_epochs_from_the_initial_epoch(shared_model):
    seen = []

    def schedule(step, rate):
        seen.append((step, rate))
        return 0.1 if step % 2 else 0.3

    model = _at(shared_model)
    x, y = _inputs(24)
    history = model.fit(
        x,
        y,
        batch_size=8,
        epochs=3,
        initial_epoch=1,
        verbose=0,
        callbacks=[DropoutScheduler(schedule, per_step=True)],
    ).history
    # 3 batches per epoch: epoch 1 starts at step 3.
    assert [step for step, _ in seen] == [3, 4, 5, 6, 7, 8]
    # The rate in force is passed on.
    assert [rate for _, rate in seen] == [0.5, 0.1, 0.3, 0.1, 0.3, 0.1]
    assert history["dropout_rate"] == [0.1, 0.3]


def test_per_step_counts_on_when_the_epoch_length_is_unknown(shared_model):
    # A dataset of unknown length (Keras passes `steps=None`): the steps of
    # the epochs seen so far are counted. The callback protocol, by hand.
    seen = []
    model = _at(shared_model)
    scheduler = DropoutScheduler(lambda s: seen.append(s) or 0.1, per_step=True)
    scheduler.set_model(model)
    scheduler.set_params({"epochs": 2, "steps": None, "verbose": 0})
    scheduler.on_train_begin()
    for epoch, batches in enumerate((3, 2)):
        scheduler.on_epoch_begin(epoch)
        for batch in range(batches):
            scheduler.on_train_batch_begin(batch)
            scheduler.on_train_batch_end(batch)
        scheduler.on_epoch_end(epoch, {})
    assert seen == [0, 1, 2, 3, 4]


def test_scheduler_leaves_learned_and_survival_probabilities_alone():
    inputs = keras.Input((4,))
    x = ConcreteDropout(keras.layers.Dense(4), seed=1)(inputs)
    x = StochasticDepth(0.7, seed=2)([inputs, x])
    x = InvertedDropout(0.5, seed=3)(x)
    model = keras.Model(inputs, x)
    model.compile(optimizer="sgd", loss="mse")
    model.fit(
        np.ones((8, 4)),
        np.ones((8, 4)),
        verbose=0,
        callbacks=[DropoutScheduler(lambda e: 0.2, per_step=True)],
    )
    assert model.layers[-1].rate == 0.2
    assert model.layers[-2].survival_probability == 0.7
    with pytest.raises(ValueError, match="layers"):
        DropoutScheduler(lambda e: 0.1, layers=[model.layers[1]])


def test_scheduler_finds_layers_nested_in_models_and_wrappers():
    inner_inputs = keras.Input((3, 4))
    inner = keras.Model(
        inner_inputs, TimeSharedDropout(0.5, seed=1, name="nested")(inner_inputs)
    )
    inputs = keras.Input((3, 4))
    x = inner(inputs)
    x = keras.layers.TimeDistributed(InvertedDropout(0.5, seed=2, name="wrapped"))(x)
    x = keras.layers.Bidirectional(
        VariationalSimpleRNN(2, dropout=0.5, seed=3, name="rnn")
    )(x)
    model = keras.Model(inputs, x)
    # Where the layers are is all this checks: on TensorFlow the eager step
    # is cheaper than a traced one (0.6 CPU s against 1.4); on JAX the
    # compiled step is (3.9 against 5.5).
    model.compile(optimizer="sgd", loss="mse", run_eagerly=BACKEND == "tensorflow")
    model.fit(
        np.ones((4, 3, 4)),
        np.ones((4, 4)),
        verbose=0,
        callbacks=[DropoutScheduler(lambda e: 0.25)],
    )
    bidirectional = model.layers[-1]
    assert inner.get_layer("nested").rate == 0.25
    assert model.layers[2].layer.rate == 0.25
    assert bidirectional.forward_layer.cell.dropout == 0.25
    assert bidirectional.backward_layer.cell.dropout == 0.25
