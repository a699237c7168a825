"""The inputs argument (arrays or an `.npz` file), checked against the
model's input specs, and a reference folder written by `save_outputs`."""

import json
import os

import keras
import numpy as np


def _as_array(value, where):
    if isinstance(value, np.ndarray):
        return value
    try:
        return np.asarray(keras.ops.convert_to_numpy(value))
    except Exception:  # noqa: BLE001 - any conversion failure is bad input
        raise TypeError(
            f"Invalid type for argument `inputs`: {where} is not an array. "
            f"Received: {type(value).__name__}"
        ) from None


def read(inputs, structure, specs):
    """`(kind, names, arrays)` from what the caller passed: kind `"dict"`
    (names are the model's input names), `"list"` or `"single"`."""
    names = [n for n, _, _ in specs] if specs else None
    if isinstance(inputs, (str, os.PathLike)):
        path = os.fspath(inputs)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"No such inputs file: {path!r}")
        try:
            with np.load(path, allow_pickle=False) as data:
                stored = {k: data[k] for k in data.files}
        except (OSError, ValueError) as error:
            raise ValueError(
                f"Invalid value received for argument `inputs`: {path!r} is "
                f"not an `.npz` file ({error})."
            ) from None
        positional = [f"arr_{i}" for i in range(len(stored))]
        if sorted(stored) == sorted(positional):
            arrays = [stored[k] for k in positional]
            if structure == "dict" and len(arrays) == len(names):
                return "dict", names, arrays
            return "list", positional, arrays
        if names is not None and sorted(stored) == sorted(names):
            return "dict", names, [stored[n] for n in names]
        expected = f"the model's input names {names} or " if names else ""
        raise ValueError(
            f"Unexpected keys in the inputs file {path!r}: {sorted(stored)}. "
            f"Expected {expected}`arr_0`, `arr_1`, ... in order."
        )
    if isinstance(inputs, dict):
        keys = [str(k) for k in inputs]
        if names is not None:
            if sorted(keys) != sorted(names):
                raise ValueError(
                    f"Invalid value received for argument `inputs`: the keys "
                    f"{sorted(keys)} are not the model's input names {names}."
                )
            keys = names
        values = {str(k): v for k, v in inputs.items()}
        return "dict", keys, [_as_array(values[k], f"inputs[{k!r}]") for k in keys]
    if isinstance(inputs, (list, tuple)):
        arrays = [_as_array(v, f"inputs[{i}]") for i, v in enumerate(inputs)]
        if structure == "dict" and len(arrays) == len(names):
            return "dict", names, arrays
        return "list", [f"arr_{i}" for i in range(len(arrays))], arrays
    array = _as_array(inputs, "inputs")
    if structure == "dict" and len(names) == 1:
        return "dict", names, [array]
    return "single", ["arr_0"], [array]


def check(kind, names, arrays, specs):
    """Raises `ValueError` where the arrays do not fit the model's inputs."""
    if not specs:
        return
    if len(arrays) != len(specs):
        raise ValueError(
            f"Invalid value received for argument `inputs`: the model has "
            f"{len(specs)} input(s) {[n for n, _, _ in specs]}, "
            f"received {len(arrays)} array(s)."
        )
    by_name = dict(zip(names, arrays, strict=True)) if kind == "dict" else None
    for index, (name, shape, _) in enumerate(specs):
        array = by_name[name] if by_name is not None else arrays[index]
        if shape is None:
            continue
        fits = len(shape) == array.ndim and all(
            d is None or d == a for d, a in zip(shape, array.shape, strict=True)
        )
        if not fits:
            raise ValueError(
                f"Invalid value received for argument `inputs`: input "
                f"{name!r} has shape {tuple(array.shape)}, the model expects "
                f"{tuple(shape)}."
            )


def load_reference(folder, modes):
    """`(meta, arrays)` of a folder written by `report.save_outputs`, which
    must hold every mode of `modes`."""
    folder = os.fspath(folder)
    meta_path = os.path.join(folder, "outputs.json")
    if not os.path.isfile(meta_path):
        raise FileNotFoundError(
            f"Invalid value received for argument `reference`: {folder!r} has "
            "no outputs.json (write one with `report.save_outputs(folder)`)."
        )
    try:
        with open(meta_path) as f:
            meta = json.load(f)
        with np.load(os.path.join(folder, "outputs.npz")) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as error:
        raise ValueError(
            f"Invalid value received for argument `reference`: {folder!r} "
            f"could not be read ({error})."
        ) from None
    recorded = {e["mode"] for e in meta.get("entries", [])}
    missing = [m for m in modes if m not in recorded]
    if missing:
        raise ValueError(
            f"Invalid value received for argument `reference`: {folder!r} "
            f"holds no {missing} outputs; it was recorded with modes "
            f"{meta.get('modes')}."
        )
    return meta, arrays
