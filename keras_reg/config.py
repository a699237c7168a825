"""Package-wide settings: where the random bits come from.

`"portable"` (the default): every mask keras_reg samples comes from one
counter-based generator written in `keras.ops` int32 arithmetic, so a seed
gives bit-identical masks on TensorFlow, PyTorch and JAX, eager or compiled.

`"native"`: masks come from `keras.random`, each backend its own stream.

The environment variable `KERAS_REG_RNG` sets the mode at import.

`set_data_parallel_rank` names this process's data-parallel rank where a
process group also holds model-parallel ranks (None, the default: the
engine's own rank or replica index). On JAX and TensorFlow a compiled
function keeps the rank it was traced with, so once a layer has drawn in
one, a change of the rank is refused with `RuntimeError`.
"""

import gc
import numbers
import os
import weakref

__all__ = ["data_parallel_rank", "rng", "set_data_parallel_rank", "set_rng"]

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


_data_parallel_rank = None
# The rank (None or an int) that each random state read while it was traced
# into a compiled function (JAX, TensorFlow), weakly: a state that is gone
# binds nothing.
_traced = weakref.WeakKeyDictionary()


def _check_rank(rank, source="rank"):
    if rank is None or callable(rank):
        return rank
    if isinstance(rank, bool) or not isinstance(rank, numbers.Integral):
        raise TypeError(
            f"Invalid type for argument `{source}`. Expected None, a "
            f"non-negative int or a callable that returns one. Received: "
            f"{source}={rank!r} of type {type(rank).__name__}"
        )
    if rank < 0:
        raise ValueError(
            f"Invalid value received for argument `{source}`. Expected a "
            f"non-negative int. Received: {source}={rank!r}"
        )
    return int(rank)


def _call(rank):
    """What a callable rank returns, checked."""
    value = rank()
    if value is None:
        raise TypeError(
            "Invalid value returned by the callable set with "
            "`set_data_parallel_rank`. Expected a non-negative int. "
            "Received: rank=None"
        )
    return _check_rank(value)


def _stale(rank):
    """The live traced states that read another rank than `rank`."""
    return [(state, old) for state, old in list(_traced.items()) if old != rank]


def _refuse_change(rank, what):
    """Raises `RuntimeError` if a live state was traced with another rank.

    Collects garbage first when one is found: only states still in use bind
    the rank (a model dropped since its trace does not).
    """
    if not _traced or not _stale(rank):
        return
    gc.collect()
    stale = _stale(rank)
    if not stale:
        return
    old = stale[0][1]
    names = sorted({getattr(state, "name", "?") for state, _ in stale})
    shown = ", ".join(repr(name) for name in names[:3])
    more = f" and {len(names) - 3} more" if len(names) > 3 else ""
    raise RuntimeError(
        f"keras_reg's data-parallel rank cannot change from {old!r} to "
        f"{rank!r} ({what}): {len(stale)} random state(s) ({shown}{more}) "
        f"drew masks inside a compiled function (jax.jit, tf.function, a "
        f"compiled Keras step) traced while the rank was {old!r}, and a "
        f"compiled function keeps the rank it was traced with. Set the rank "
        f"once, before the first compiled call (before `fit`, `predict`, "
        f"`mc_predict`); to change it, build the models again after setting "
        f"it and drop the old ones."
    )


def _record_trace(state, rank):
    """Notes that `state` drew with `rank` while traced (called by
    `keras_reg._random`): from now on, a change of the rank is refused while
    the state is alive."""
    _traced[state] = rank


def set_data_parallel_rank(rank):
    """Names the data-parallel rank that keras_reg mixes into every draw.

    Under data parallelism every replica must drop different units, so
    keras_reg mixes a rank into the seed of every draw, when the draw runs
    or is traced (the saved random streams stay the same on every rank). By
    default (`rank=None`) the rank is the engine's own: the global rank of
    an initialized `torch.distributed` process group, or the replica index
    of a `tf.distribute` strategy (a tensor, read when the step runs); JAX's
    `keras.distribution` runs one program over the global batch and needs
    none. Rank 0 draws exactly the single-device stream.

    Where a process group also holds model-parallel ranks (tensor or
    pipeline parallelism), the global rank is the wrong one: the
    tensor-parallel shards of a replicated activation must drop the *same*
    units, and only data-parallel groups must differ. Name the
    data-parallel rank here, and those shards share their masks. The
    setting replaces the automatic rank on every backend, so set it only
    where one process runs one replica.

    Set it once, before the model's first compiled call. On JAX and
    TensorFlow a compiled function (`jax.jit`, `tf.function`, the steps of
    `fit`, `evaluate` and `predict`) reads the setting when it is traced
    and keeps that value: once a layer has drawn a mask in one, setting
    another rank (None included) raises `RuntimeError` while that layer is
    alive, and the setting is left unchanged. Setting the same rank again
    is allowed. Eager calls (torch; JAX with `jit_compile=False`;
    TensorFlow with `run_eagerly=True`) and `torch.compile` read the
    setting at every call, so there a change takes effect.

    Args:
        rank: None (automatic), a non-negative int, or a callable with no
            arguments that returns a non-negative int (e.g.
            `lambda: torch.distributed.get_rank(dp_group)`). A callable is
            called at every eager draw and once per trace of a compiled
            function, which keeps what it returned; it must keep returning
            that value (`RuntimeError` at its next call, and at this one
            where a layer has drawn in a compiled function, if it returns
            another). A bool or another type raises `TypeError`, a
            negative int `ValueError`, and the setting is left unchanged.
            A callable is only checked when it is called.

    Example:

    >>> import keras_reg
    >>> # 4 processes: 2 data-parallel groups of 2 tensor-parallel shards,
    >>> # global rank = dp_rank * 2 + tp_rank; this is global rank 3.
    >>> keras_reg.config.set_data_parallel_rank(3 // 2)
    >>> keras_reg.config.data_parallel_rank()
    1
    >>> keras_reg.config.set_data_parallel_rank(None)  # automatic again
    """
    global _data_parallel_rank
    rank = _check_rank(rank)
    if _traced:
        _refuse_change(_call(rank) if callable(rank) else rank, "set")
    _data_parallel_rank = rank


def data_parallel_rank():
    """Returns the data-parallel rank set by `set_data_parallel_rank`.

    None when the rank is automatic. A callable that was set is called, and
    what it returns is checked: `TypeError` or `ValueError` naming `rank`,
    and `RuntimeError` if it differs from the rank a live layer was traced
    with in a compiled function.
    """
    rank = _data_parallel_rank
    if callable(rank):
        rank = _call(rank)
        if _traced:
            _refuse_change(rank, "returned by the callable")
    return rank
