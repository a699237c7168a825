"""The subprocess side of `keras_reg.testing.compare_backends`.

    python -m keras_reg.testing._worker SPEC.json

runs with `KERAS_BACKEND` (and `KERAS_REG_RNG`) set by the caller. It
imports keras_reg and the modules the spec names, loads the `.keras` file
once, and runs every requested mode from the saved state (every variable,
the random streams included, is put back before each mode). For a
functional or sequential model, one multi-output model over every layer's
output (nested models' layers included) makes each mode a single call. It
writes `results.json` (what each array is) and `results.npz` into the
spec's `out` folder; any failure is left as a traceback on stderr and a
non-zero exit status, which the caller turns into an `errors` entry.
"""

import importlib
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_reg.testing import _judge, _portable  # noqa: E402


def _numpy(x):
    """`(array, dtype)`: a float16 or bfloat16 tensor is held as float32
    (exactly: every such value is a float32 value), its dtype recorded."""
    x = keras.ops.convert_to_tensor(x)
    dtype = keras.backend.standardize_dtype(x.dtype)
    if dtype in ("float16", "bfloat16"):
        x = keras.ops.cast(x, "float32")
    return np.asarray(keras.ops.convert_to_numpy(x)), dtype


def _model_compute_dtype(model):
    """The least precise floating dtype any layer of `model` computes in."""
    from keras_reg import _walk

    dtypes = [getattr(layer, "compute_dtype", None) for layer in _walk.walk(model)]
    return _judge.compute_dtype([d for d in dtypes if d])


def _is_graph_model(model):
    """A functional or sequential model: its layers' outputs are symbolic."""
    try:
        return bool(model.inputs) and bool(model.outputs)
    except (AttributeError, ValueError):
        return False


def _flat(value):
    return list(keras.tree.flatten(value))


def _named(name, tensors):
    tensors = _flat(tensors)
    if len(tensors) == 1:
        return [(name, tensors[0])]
    return [(f"{name}[{i}]", t) for i, t in enumerate(tensors)]


def _layer_outputs(model, prefix=""):
    """`(name, symbolic tensor)` of every layer of a graph model, in
    topological order (`model.layers` is; a nested model's layers come
    before the nested model's own output), and the layers left out with the
    reason."""
    from keras_reg import _keras_private

    found, skipped = [], []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        name = prefix + layer.name
        try:
            own = _named(name, layer.output)
        except (AttributeError, ValueError) as error:
            skipped.append(f"{name}: {error}".splitlines()[0])
            continue
        if isinstance(layer, keras.Model) and _is_graph_model(layer):
            inputs = _keras_private.call_inputs(layer)
            inner, inner_skipped = [], []
            if inputs is None:
                skipped.append(f"{name}: its call inputs are unknown")
            else:
                inner, inner_skipped = _layer_outputs(layer, prefix=name + "/")
            skipped.extend(inner_skipped)
            if inner:
                # `layer.inputs`: a nested Sequential's `input` is the outer
                # one.
                probe = keras.Model(list(layer.inputs), [t for _, t in inner])
                called = _flat(probe(list(inputs)))
                found.extend((n, t) for (n, _), t in zip(inner, called, strict=True))
        found.extend(own)
    return found, skipped


def _output_names(model, count):
    names = getattr(model, "output_names", None)
    if names and len(names) == count:
        return [str(n) for n in names]
    return ["output" if count == 1 else f"output_{i}" for i in range(count)]


def _loss(outputs):
    """The mean of the squared outputs, summed over the outputs."""
    total = 0.0
    for output in _flat(outputs):
        output = keras.ops.cast(output, "float32")
        total = total + keras.ops.mean(keras.ops.square(output))
    return total


def _inputs(spec, model_input=None):
    data = np.load(spec["inputs"])
    arrays = [data[f"arr_{i}"] for i in range(len(data.files))]
    kind, names = spec["structure"]["kind"], spec["structure"]["names"]
    if kind == "single":
        return arrays[0]
    if kind == "list" and len(arrays) == 1 and not isinstance(model_input, list):
        return arrays[0]
    if kind == "dict":
        return dict(zip(names, arrays, strict=True))
    return arrays


def run(spec):
    import keras_reg
    from keras_reg._kernels import _checker

    for module in spec["imports"]:
        importlib.import_module(module)
    start = time.perf_counter()
    model = keras.saving.load_model(spec["model"], compile=False)
    notes = []
    graph = _is_graph_model(model)
    x = _inputs(spec, model.input if graph else None)
    if spec["layers"] and graph:
        layer_items, skipped = _layer_outputs(model)
        notes.extend(f"layer left out: {s}" for s in skipped)
    else:
        layer_items = []
        if spec["layers"]:
            notes.append(
                f"{type(model).__name__} is a subclassed model: its outputs "
                "are compared, not its layers"
            )
    if graph:
        outputs = _flat(model.outputs)
        output_names = _output_names(model, len(outputs))
        probe = keras.Model(model.input, outputs + [t for _, t in layer_items])
    else:
        probe = None
    saved = [np.array(keras.ops.convert_to_numpy(v.value)) for v in model.variables]

    def restore():
        for variable, value in zip(model.variables, saved, strict=True):
            variable.assign(value)

    entries, arrays = [], {}
    model_dtype = _model_compute_dtype(model)

    def record(mode, kind, name, value):
        array, dtype = _numpy(value)
        key = f"a{len(entries)}"
        arrays[key] = array
        # A value computed from bfloat16 values is judged as bfloat16, even
        # where a float32 tensor holds it (a mixed policy's gradients, the
        # loss, a float32 head).
        compute = dtype
        if keras.backend.is_float_dtype(dtype):
            compute = _judge.compute_dtype([dtype, model_dtype or dtype])
        entries.append(
            {
                "mode": mode,
                "kind": kind,
                "name": name,
                "dtype": dtype,
                "compute_dtype": compute,
                "key": key,
            }
        )

    for mode in spec["modes"]:
        restore()
        if mode == "gradients":
            loss, grads = _checker.gradients(model, x, _loss)
            record(mode, "loss", "loss", loss)
            for variable, grad in zip(model.trainable_variables, grads, strict=True):
                record(mode, "gradient", variable.path, grad)
            continue
        training = mode == "training"
        if probe is None:
            values = _flat(_checker.call(model, x, training))
            names = _output_names(model, len(values))
            for name, value in zip(names, values, strict=True):
                record(mode, "output", name, value)
            continue
        values = _flat(_checker.call(probe, x, training))
        for name, value in zip(output_names, values, strict=False):
            record(mode, "output", name, value)
        for (name, _), value in zip(layer_items, values[len(outputs) :], strict=True):
            record(mode, "layer", name, value)
    restore()
    return {
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "keras_reg": keras_reg.__version__,
        "rng": keras_reg.config.rng(),
        "entries": entries,
        "non_portable": _portable.non_portable(model),
        "notes": notes,
        "seconds": time.perf_counter() - start,
    }, arrays


def main(argv):
    with open(argv[0]) as f:
        spec = json.load(f)
    sys.path[:0] = [p for p in spec.get("sys_path", []) if p not in sys.path]
    results, arrays = run(spec)
    np.savez(os.path.join(spec["out"], "results.npz"), **arrays)
    with open(os.path.join(spec["out"], "results.json"), "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main(sys.argv[1:])
