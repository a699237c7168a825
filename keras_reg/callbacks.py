"""Callbacks that change regularization during training."""

import inspect

import keras

from keras_reg._checks import check_bool, check_rate
from keras_reg._walk import walk
from keras_reg.layers._stochastic import Stochastic

__all__ = ["DropoutScheduler", "early_dropout", "late_dropout", "linear_ramp"]


def _scheduled_rates(layer):
    """The rates a schedule sets on `layer`: a dropout layer's `rate`; every
    regularizer a cell was built with (its rates that started above 0)."""
    if not isinstance(layer, Stochastic):
        return ()
    if "rate" in type(layer)._rate_names():
        return ("rate",)
    active = layer.__dict__.get("_active", {})
    return tuple(name for name in type(layer)._rate_names() if active.get(name))


def _scheduled(layer):
    return bool(_scheduled_rates(layer))


class DropoutScheduler(keras.callbacks.Callback):
    """Sets the dropout rate of keras_reg layers during training.

    Assigns `schedule(epoch)` (or `schedule(epoch, rate)`, where `rate` is
    the rate in force) to the `rate` of every keras_reg dropout layer of the
    model, and to every regularization rate that a keras_reg recurrent cell
    was built with (those above 0 at construction: `dropout`,
    `recurrent_dropout`, `output_dropout`, `weight_dropout`, `zoneout`), or
    only to `layers`, at the start of each epoch. With `per_step=True` the
    schedule is a function of the training step instead, `schedule(step)`
    or `schedule(step, rate)`, called before every training batch, `step`
    counting batches from 0 across epochs (with `initial_epoch`, from
    `initial_epoch * steps_per_epoch`); this is how Liu et al. (2023)
    schedule early dropout. keras_reg rates live in layer state, so a new
    rate takes effect at the next batch without retracing or recompiling,
    on every backend (on JAX, where Keras' trainer holds the variables
    during an epoch, the callback hands the new state to the trainer
    itself). With `steps_per_execution=k`, Keras calls batch callbacks once
    per `k` batches, so the rate changes every `k` steps. The rate in force
    at the end of each epoch is logged as `dropout_rate` in
    `history.history`.

    `ConcreteDropout` learns its rate and is never scheduled;
    `StochasticDepth` is given a survival probability, not a rate, and is
    not scheduled either.

    Args:
        schedule: a function of the epoch index (from 0), or of the epoch and
            the current rate, that returns the rate to DROP, in [0, 1); with
            `per_step=True`, of the step index (from 0). The schedules
            `keras_reg.callbacks.early_dropout`, `late_dropout` and
            `linear_ramp` build common ones (in epochs or in steps alike).
        layers: optional list of layers to schedule (dropout layers, cells
            or sequence layers). Defaults to `None`: every keras_reg dropout
            layer and cell in the model, nested models included.
        verbose: int; 1 prints the rate when it changes. Defaults to 0.
        per_step: bool; `True` calls the schedule before every training
            batch with the step index, `False` at the start of every epoch
            with the epoch index. Defaults to `False`.

    Example:

    >>> from keras_reg.callbacks import DropoutScheduler, early_dropout
    >>> scheduler = DropoutScheduler(early_dropout(0.1, epochs=5))
    >>> # model.fit(x, y, epochs=20, callbacks=[scheduler])
    >>> # Early dropout for the first 1,000 steps, wherever epochs end:
    >>> per_step = DropoutScheduler(early_dropout(0.1, 1000), per_step=True)

    Reference:
        Liu et al., 2023, "Dropout Reduces Underfitting" (early and late
        dropout).
    """

    def __init__(self, schedule, layers=None, verbose=0, per_step=False):
        super().__init__()
        if not callable(schedule):
            raise ValueError(
                "Invalid value received for argument `schedule`. Expected a "
                f"callable. Received: schedule={schedule!r}"
            )
        self.schedule = schedule
        self._takes_rate = _positional_arity(schedule) >= 2
        if layers is not None:
            layers = [getattr(layer, "cell", layer) for layer in layers]
            for layer in layers:
                if not _scheduled(layer):
                    raise ValueError(
                        "Invalid value received for argument `layers`. "
                        "Expected keras_reg dropout layers or recurrent "
                        f"layers with a rate above 0. Received: {layer!r}"
                    )
        self.layers = layers
        self.verbose = verbose
        self.per_step = check_bool("per_step", per_step)
        self._targets = []
        # Steps before the current epoch, and the step after the last batch.
        self._offset = 0
        self._next_step = 0

    def on_train_begin(self, logs=None):
        if self.layers is not None:
            self._targets = self.layers
        else:
            self._targets = [layer for layer in walk(self.model) if _scheduled(layer)]
        if not self._targets:
            raise ValueError(
                f"DropoutScheduler found no keras_reg dropout layer in model "
                f"'{self.model.name}'. Pass `layers=` or add one."
            )
        self._offset = self._next_step = 0

    def _current(self):
        first = self._targets[0]
        return getattr(first, _scheduled_rates(first)[0])

    def _apply(self, index, unit):
        current = self._current()
        if self._takes_rate:
            rate = self.schedule(index, current)
        else:
            rate = self.schedule(index)
        try:
            rate = check_rate("rate", rate)
        except ValueError:
            raise ValueError(
                f"DropoutScheduler: the schedule returned an invalid rate at "
                f"{unit} {index}: {rate!r}. Expected a float in [0, 1)."
            ) from None
        changes = [
            (layer, name)
            for layer in self._targets
            for name in _scheduled_rates(layer)
            if getattr(layer, name) != rate
        ]
        if not changes:
            return
        if self.per_step:
            self._sync_trainer_state()
        for layer, name in changes:
            setattr(layer, name, rate)
        if self.verbose and rate != current:
            # Epochs print from 1, as Keras' progress bar counts them.
            where = f"Epoch {index + 1}" if unit == "epoch" else f"Step {index}"
            print(f"\n{where}: DropoutScheduler set the rate to {rate}.")

    def _sync_trainer_state(self):
        # Keras' JAX trainer (3.15.1, `JAXTrainer.fit`) holds the model's
        # variables in its own state during an epoch and leaves the
        # variables empty: a rate assigned now would read a stale stream
        # position and never reach the next compiled step. `jax_state_sync`
        # (public) writes the state back to the variables and makes the
        # trainer read them again before the next batch; the per-step tests
        # in tests/test_callbacks.py fail on JAX if that changes. Other
        # backends train on the variables themselves.
        sync = getattr(self.model, "jax_state_sync", None)
        if sync is not None:
            sync()

    def on_epoch_begin(self, epoch, logs=None):
        if not self.per_step:
            self._apply(epoch, "epoch")
            return
        steps = (self.params or {}).get("steps")
        if isinstance(steps, int):
            self._offset = epoch * steps
        else:
            self._offset = self._next_step

    def on_train_batch_begin(self, batch, logs=None):
        if self.per_step:
            self._apply(self._offset + batch, "step")

    def on_train_batch_end(self, batch, logs=None):
        self._next_step = self._offset + batch + 1

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["dropout_rate"] = self._current()


def _positional_arity(fn):
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 1
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if any(p.kind == inspect.Parameter.VAR_POSITIONAL for p in parameters):
        return 2
    return sum(1 for p in parameters if p.kind in kinds)


def early_dropout(rate, epochs):
    """A schedule: `rate` for the first `epochs` epochs, then no dropout.

    Early dropout (Liu et al., 2023) helps underfitting models fit better.
    With `DropoutScheduler(..., per_step=True)`, `epochs` counts steps.

    Args:
        rate: the rate to DROP during the first epochs, in [0, 1).
        epochs: how many epochs (or steps) from the start use `rate`.
    """
    rate = check_rate("rate", rate)
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ValueError(
            "Invalid value received for argument `epochs`. Expected a "
            f"non-negative integer. Received: epochs={epochs!r}"
        )

    def schedule(epoch):
        return rate if epoch < epochs else 0.0

    return schedule


def late_dropout(rate, start):
    """A schedule: no dropout before `start`, then `rate`.

    Late dropout (Liu et al., 2023) regularizes an overfitting model in the
    later part of training only. `start` counts epochs, or steps with
    `DropoutScheduler(..., per_step=True)`.

    Args:
        rate: the rate to DROP from `start` on, in [0, 1).
        start: the first epoch (or step) with dropout, a non-negative
            integer.

    Example:

    >>> schedule = keras_reg.callbacks.late_dropout(0.1, start=50)
    >>> [schedule(49), schedule(50)]
    [0.0, 0.1]
    """
    rate = check_rate("rate", rate)
    if isinstance(start, bool) or not isinstance(start, int) or start < 0:
        raise ValueError(
            "Invalid value received for argument `start`. Expected a "
            f"non-negative integer. Received: start={start!r}"
        )

    def schedule(index):
        return rate if index >= start else 0.0

    return schedule


def linear_ramp(start_rate, end_rate, epochs, start_epoch=0):
    """A schedule: `start_rate` until `start_epoch`, then linear to
    `end_rate` over `epochs` epochs, then `end_rate`.

    Ramps up (late dropout, curriculum dropout) or down (a linear early
    dropout) alike.

    Args:
        start_rate: the rate before the ramp, in [0, 1).
        end_rate: the rate after the ramp, in [0, 1).
        epochs: the length of the ramp, a positive integer.
        start_epoch: the epoch the ramp starts at. Defaults to 0.
    """
    start_rate = check_rate("start_rate", start_rate)
    end_rate = check_rate("end_rate", end_rate)
    for name, value, low in (("epochs", epochs, 1), ("start_epoch", start_epoch, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(
                f"Invalid value received for argument `{name}`. Expected an "
                f"integer >= {low}. Received: {name}={value!r}"
            )

    def schedule(epoch):
        progress = min(max(epoch - start_epoch, 0) / epochs, 1.0)
        return start_rate + (end_rate - start_rate) * progress

    return schedule
