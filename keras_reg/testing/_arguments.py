"""Argument checks of `compare_backends` (Keras' wording: the argument
and the value are named)."""

import os

import numpy as np

BACKENDS = ("tensorflow", "torch", "jax")
MODES = ("inference", "training", "gradients")
# Seconds one backend's subprocess may run (load, every mode) before it is
# stopped and reported as an error, and how many run at a time: arguments
# of `compare_backends`, these environment variables where not given.
TIMEOUT_VARIABLE = "KERAS_REG_CHECK_TIMEOUT"
JOBS_VARIABLE = "KERAS_REG_CHECK_JOBS"
DEFAULT_TIMEOUT = 600.0


def names(argument, values, allowed):
    """A list of names among `allowed`, from a list or a comma-separated
    string."""
    if isinstance(values, str):
        values = [v.strip() for v in values.split(",") if v.strip()]
    values = list(values)
    unknown = [v for v in values if v not in allowed]
    if unknown or not values:
        raise ValueError(
            f"Invalid value received for argument `{argument}`. Expected one "
            f"or more of {list(allowed)}. Received: {argument}={values!r}"
        )
    if len(set(values)) != len(values):
        raise ValueError(
            f"Invalid value received for argument `{argument}`: a name is "
            f"repeated. Received: {argument}={values!r}"
        )
    return values


def _number(name, value, expected):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise TypeError(
            f"Invalid type for argument `{name}`. Expected {expected} or "
            f"None. Received: {name}={value!r}"
        )


def tolerance(name, value):
    """None or a finite float >= 0."""
    if value is None:
        return None
    _number(name, value, "a float")
    if not np.isfinite(value) or value < 0:
        raise ValueError(
            f"Invalid value received for argument `{name}`. Expected a "
            f"finite float >= 0. Received: {name}={value!r}"
        )
    return float(value)


def _environment(variable, convert):
    text = os.environ.get(variable)
    if text is None or not text.strip():
        return None
    try:
        return convert(text)
    except ValueError:
        raise ValueError(
            f"Invalid value of the environment variable {variable}: {text!r}"
        ) from None


def timeout(value):
    """Seconds > 0; None: `KERAS_REG_CHECK_TIMEOUT`, else 600."""
    if value is None:
        value = _environment(TIMEOUT_VARIABLE, float)
        if value is None:
            return DEFAULT_TIMEOUT
        name = TIMEOUT_VARIABLE
    else:
        _number("timeout", value, "a number of seconds")
        name = "timeout"
    if not np.isfinite(value) or value <= 0:
        raise ValueError(
            f"Invalid value received for argument `{name}`. Expected a "
            f"number of seconds > 0. Received: {name}={value!r}"
        )
    return float(value)


def jobs(value, count):
    """How many subprocesses run at a time; None: `KERAS_REG_CHECK_JOBS`,
    else one per backend up to the number of CPUs."""
    if value is None:
        value = _environment(JOBS_VARIABLE, int)
        if value is None or value == 0:
            return max(1, min(count, os.cpu_count() or 1))
        name = JOBS_VARIABLE
    else:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(
                "Invalid type for argument `jobs`. Expected an int or None. "
                f"Received: jobs={value!r}"
            )
        name = "jobs"
    if value < 1:
        raise ValueError(
            f"Invalid value received for argument `{name}`. Expected an int "
            f">= 1. Received: {name}={value!r}"
        )
    return int(value)


def imports(value):
    """A list of module names."""
    if isinstance(value, str):
        value = [value]
    return [str(m) for m in value]
