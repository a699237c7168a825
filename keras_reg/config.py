"""Package-wide settings: where the random bits come from.

`"portable"` (the default): every mask keras_reg samples comes from one
counter-based generator written in `keras.ops` int32 arithmetic, so a seed
gives bit-identical masks on TensorFlow, PyTorch and JAX, eager or compiled.

`"native"`: masks come from `keras.random`, each backend its own stream.

The environment variable `KERAS_REG_RNG` sets the mode at import.
"""

import os

__all__ = ["rng", "set_rng"]

_MODES = ("portable", "native")


def _check_mode(mode, source="mode"):
    if mode not in _MODES:
        raise ValueError(
            f"Invalid value received for argument `{source}`. Expected one of "
            f"{list(_MODES)}. Received: {source}={mode!r}"
        )
    return mode


_mode = _check_mode(os.environ.get("KERAS_REG_RNG", "portable"), "KERAS_REG_RNG")


def set_rng(mode):
    """Sets where keras_reg draws its random masks from.

    Takes effect for masks drawn after the call (a function already traced
    keeps the mode it was traced with).

    Args:
        mode: `"portable"` (bit-identical masks on every backend) or
            `"native"` (`keras.random`). Anything else raises `ValueError`
            and leaves the mode unchanged.

    Example:

    >>> import keras_reg
    >>> keras_reg.config.set_rng("native")
    >>> keras_reg.config.rng()
    'native'
    >>> keras_reg.config.set_rng("portable")
    """
    global _mode
    _mode = _check_mode(mode)


def rng():
    """Returns the random-number mode in force: `"portable"` or `"native"`."""
    return _mode
