"""Argument validation shared by every public layer.

Messages follow Keras' wording: they name the argument and repeat the value
that was received, so the user can find the call that is wrong.
"""

import math
import numbers


def _invalid(name, expected, value):
    return ValueError(
        f"Invalid value received for argument `{name}`. Expected {expected}. "
        f"Received: {name}={value!r}"
    )


def check_rate(name, value):
    """Returns `value` as a float if it is a drop rate in [0, 1), else raises."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _invalid(name, "a float in [0, 1)", value)
    value = float(value)
    if math.isnan(value) or not 0.0 <= value < 1.0:
        raise _invalid(name, "a float in [0, 1)", value)
    return value


def check_choice(name, value, choices):
    """Returns `value` if it is one of `choices` (strings), else raises."""
    if not isinstance(value, str) or value not in choices:
        expected = "one of " + ", ".join(repr(c) for c in choices)
        raise _invalid(name, expected, value)
    return value


def check_seed(value):
    """Returns `value` if it is None or an integer, else raises."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise _invalid("seed", "None or an integer", value)
    return int(value)


def check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise _invalid(name, "a positive integer", value)
    if value < 1:
        raise _invalid(name, "a positive integer", value)
    return int(value)


def check_axes(name, value):
    """Returns a tuple of distinct ints (or None), else raises."""
    if value is None:
        return None
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value,)
    try:
        axes = tuple(value)
    except TypeError:
        raise _invalid(name, "None, an integer or a list of integers", value) from None
    if isinstance(value, str) or not all(
        isinstance(a, numbers.Integral) and not isinstance(a, bool) for a in axes
    ):
        raise _invalid(name, "None, an integer or a list of integers", value)
    axes = tuple(int(a) for a in axes)
    if len(set(axes)) != len(axes):
        raise _invalid(name, "distinct axes", value)
    return axes


def check_noise_shape(value):
    """Returns a tuple of positive ints or None entries (or None), else raises."""
    if value is None:
        return None
    if isinstance(value, str):
        raise _invalid("noise_shape", "a tuple of positive integers or None", value)
    try:
        shape = tuple(value)
    except TypeError:
        raise _invalid(
            "noise_shape", "a tuple of positive integers or None", value
        ) from None
    for dim in shape:
        if dim is None:
            continue
        if isinstance(dim, bool) or not isinstance(dim, numbers.Integral) or dim < 1:
            raise _invalid("noise_shape", "a tuple of positive integers or None", value)
    return tuple(None if d is None else int(d) for d in shape)


def check_data_format(value):
    import keras

    if value is None:
        return keras.config.image_data_format()
    if value not in ("channels_last", "channels_first"):
        raise _invalid(
            "data_format", "'channels_last', 'channels_first' or None", value
        )
    return value


def check_floating(layer, dtype):
    """Raises TypeError unless `dtype` is a floating-point dtype."""
    import keras

    dtype = keras.backend.standardize_dtype(dtype)
    if "float" not in dtype:
        raise TypeError(
            f"Layer '{layer.name}' ({type(layer).__name__}) expects "
            f"floating-point inputs. Received inputs with dtype={dtype}."
        )


def check_rank(layer, shape, expected, what):
    if len(shape) not in expected:
        ranks = " or ".join(str(r) for r in sorted(expected))
        raise ValueError(
            f"Layer '{layer.name}' ({type(layer).__name__}) expects inputs of "
            f"rank {ranks} ({what}). Received: input_shape={tuple(shape)}"
        )


def check_positive_float(name, value):
    """Returns `value` as a float if it is finite and > 0, else raises."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _invalid(name, "a positive float", value)
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise _invalid(name, "a positive float", value)
    return value


def check_bool(name, value):
    if not isinstance(value, bool):
        raise _invalid(name, "a bool", value)
    return value


def get_initializer(name, value):
    """`keras.initializers.get(value)`, with an error naming the argument."""
    import keras

    try:
        return keras.initializers.get(value)
    except ValueError:
        raise _invalid(name, "an initializer instance or name", value) from None
