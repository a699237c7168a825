"""Callbacks that change regularization during training."""

import inspect

import keras

from keras_reg._checks import check_rate
from keras_reg.layers._stochastic import Stochastic

__all__ = ["DropoutScheduler", "early_dropout", "linear_ramp"]


def _walk(layer):
    """`layer` and every layer nested in it (sub-models, wrapped layers)."""
    yield layer
    children = list(getattr(layer, "layers", None) or [])
    for name in ("layer", "cell", "forward_layer", "backward_layer"):
        child = getattr(layer, name, None)
        if isinstance(child, keras.layers.Layer):
            children.append(child)
    for child in children:
        yield from _walk(child)


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
    """Sets the dropout rate of keras_reg layers at the start of each epoch.

    Assigns `schedule(epoch)` (or `schedule(epoch, rate)`, where `rate` is
    the rate in force) to the `rate` of every keras_reg dropout layer of the
    model, and to every regularization rate that a keras_reg recurrent cell
    was built with (those above 0 at construction: `dropout`,
    `recurrent_dropout`, `output_dropout`, `weight_dropout`, `zoneout`), or
    only to `layers`. keras_reg rates live in layer state, so the new rate
    takes effect at the next batch without recompiling, on every backend.
    The rate is logged as `dropout_rate` in `history.history`.

    Args:
        schedule: a function of the epoch index (from 0), or of the epoch and
            the current rate, that returns the rate to DROP, in [0, 1).
            `keras_reg.callbacks.early_dropout` and `linear_ramp` build common
            ones.
        layers: optional list of layers to schedule (dropout layers, cells
            or sequence layers). Defaults to `None`: every keras_reg dropout
            layer and cell in the model, nested models included.
        verbose: int; 1 prints the rate when it changes. Defaults to 0.

    Example:

    >>> from keras_reg.callbacks import DropoutScheduler, early_dropout
    >>> scheduler = DropoutScheduler(early_dropout(0.1, epochs=5))
    >>> # model.fit(x, y, epochs=20, callbacks=[scheduler])

    Reference:
        Liu et al., 2023, "Dropout Reduces Underfitting" (early dropout).
    """

    def __init__(self, schedule, layers=None, verbose=0):
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
        self._targets = []

    def on_train_begin(self, logs=None):
        if self.layers is not None:
            self._targets = self.layers
        else:
            seen, self._targets = set(), []
            for layer in _walk(self.model):
                if _scheduled(layer) and id(layer) not in seen:
                    seen.add(id(layer))
                    self._targets.append(layer)
        if not self._targets:
            raise ValueError(
                f"DropoutScheduler found no keras_reg dropout layer in model "
                f"'{self.model.name}'. Pass `layers=` or add one."
            )

    def _current(self):
        first = self._targets[0]
        return getattr(first, _scheduled_rates(first)[0])

    def on_epoch_begin(self, epoch, logs=None):
        current = self._current()
        if self._takes_rate:
            rate = self.schedule(epoch, current)
        else:
            rate = self.schedule(epoch)
        try:
            rate = check_rate("rate", rate)
        except ValueError:
            raise ValueError(
                f"DropoutScheduler: the schedule returned an invalid rate at "
                f"epoch {epoch}: {rate!r}. Expected a float in [0, 1)."
            ) from None
        for layer in self._targets:
            for name in _scheduled_rates(layer):
                setattr(layer, name, rate)
        if self.verbose and rate != current:
            print(f"\nEpoch {epoch + 1}: DropoutScheduler set the rate to {rate}.")

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

    Args:
        rate: the rate to DROP during the first epochs, in [0, 1).
        epochs: how many epochs (from the start) use `rate`.
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
