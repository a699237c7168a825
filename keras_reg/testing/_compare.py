"""`compare_backends`: one subprocess per backend, then the comparison."""

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile

import keras
import numpy as np

from keras_reg import config
from keras_reg.testing import _report

BACKENDS = ("tensorflow", "torch", "jax")
# The package each backend needs.
_PACKAGES = {"tensorflow": "tensorflow", "torch": "torch", "jax": "jax"}
# Seconds one backend's subprocess may run (load, every mode) before it is
# stopped and reported as an error.
_TIMEOUT_VARIABLE = "KERAS_REG_CHECK_TIMEOUT"
_DEFAULT_TIMEOUT = 600.0


def installed_backends():
    """The backends whose package is installed, in the order of `BACKENDS`."""
    return [b for b in BACKENDS if importlib.util.find_spec(_PACKAGES[b]) is not None]


def _progress(message):
    print(f"keras_reg.testing: {message}", file=sys.stderr, flush=True)


def _check_names(argument, values, allowed):
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


def _check_tolerance(name, value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"Invalid type for argument `{name}`. Expected a float or None. "
            f"Received: {name}={value!r}"
        )
    if not np.isfinite(value) or value < 0:
        raise ValueError(
            f"Invalid value received for argument `{name}`. Expected a "
            f"finite float >= 0. Received: {name}={value!r}"
        )
    return float(value)


def _model_inputs(path):
    """`[(name, shape, dtype)]` of a saved functional or sequential model's
    inputs, read from the file's config; None for a subclassed model."""
    try:
        with zipfile.ZipFile(path) as archive:
            saved = json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, KeyError, ValueError) as error:
        raise ValueError(
            f"Invalid value received for argument `model`: {path!r} is not "
            f"a `.keras` file ({error})."
        ) from None
    cfg = saved.get("config") or {}
    layers = {
        layer.get("name", layer.get("config", {}).get("name")): layer
        for layer in cfg.get("layers") or []
        if isinstance(layer, dict)
    }
    if saved.get("class_name") == "Sequential":
        first = (cfg.get("layers") or [{}])[0]
        if first.get("class_name") != "InputLayer":
            return None
        names = [first["config"].get("name", "input")]
        layers = {names[0]: first}
    elif "input_layers" in cfg:
        spec = cfg["input_layers"]
        if spec and isinstance(spec[0], str):
            spec = [spec]
        names = [item[0] for item in spec if isinstance(item, list)]
    else:
        return None
    found = []
    for name in names:
        layer_cfg = (layers.get(name) or {}).get("config", {})
        shape = layer_cfg.get("batch_shape")
        dtype = layer_cfg.get("dtype")
        if isinstance(dtype, dict):
            dtype = (dtype.get("config") or {}).get("name")
        found.append((name, None if shape is None else tuple(shape), dtype))
    return found


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


def _read_inputs(inputs, model_inputs):
    """`(kind, names, arrays)` from what the caller passed."""
    if isinstance(inputs, (str, os.PathLike)):
        path = os.fspath(inputs)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"No such inputs file: {path!r}")
        with np.load(path, allow_pickle=False) as data:
            files = list(data.files)
            stored = {k: data[k] for k in files}
        positional = [f"arr_{i}" for i in range(len(files))]
        names = [n for n, _, _ in model_inputs] if model_inputs else None
        if sorted(files) == sorted(positional):
            return "list", positional, [stored[k] for k in positional]
        if names is not None and sorted(files) == sorted(names):
            return "dict", names, [stored[n] for n in names]
        expected = f"the model's input names {names} or " if names else ""
        raise ValueError(
            f"Unexpected keys in the inputs file {path!r}: {sorted(files)}. "
            f"Expected {expected}`arr_0`, `arr_1`, ... in order."
        )
    if isinstance(inputs, dict):
        names = [str(k) for k in inputs]
        if model_inputs:
            expected = [n for n, _, _ in model_inputs]
            if sorted(names) != sorted(expected):
                raise ValueError(
                    f"Invalid value received for argument `inputs`: the keys "
                    f"{sorted(names)} are not the model's input names "
                    f"{expected}."
                )
            names = expected
        return "dict", names, [_as_array(inputs[n], f"inputs[{n!r}]") for n in names]
    if isinstance(inputs, (list, tuple)):
        arrays = [_as_array(v, f"inputs[{i}]") for i, v in enumerate(inputs)]
        return "list", [f"arr_{i}" for i in range(len(arrays))], arrays
    return "single", ["arr_0"], [_as_array(inputs, "inputs")]


def _check_inputs(kind, names, arrays, model_inputs):
    if not model_inputs:
        return
    if len(arrays) != len(model_inputs):
        raise ValueError(
            f"Invalid value received for argument `inputs`: the model has "
            f"{len(model_inputs)} input(s) {[n for n, _, _ in model_inputs]}, "
            f"received {len(arrays)} array(s)."
        )
    for (name, shape, _), array in zip(model_inputs, arrays, strict=True):
        if shape is None:
            continue
        fits = len(shape) == array.ndim and all(
            d is None or d == a for d, a in zip(shape, array.shape, strict=True)
        )
        if not fits:
            expected = tuple(shape)
            raise ValueError(
                f"Invalid value received for argument `inputs`: input "
                f"{name!r} has shape {tuple(array.shape)}, the model expects "
                f"{expected}."
            )


def _load_reference(folder):
    folder = os.fspath(folder)
    meta_path = os.path.join(folder, "outputs.json")
    if not os.path.isfile(meta_path):
        raise FileNotFoundError(
            f"Invalid value received for argument `reference`: {folder!r} has "
            "no outputs.json (write one with `report.save_outputs(folder)`)."
        )
    with open(meta_path) as f:
        meta = json.load(f)
    with np.load(os.path.join(folder, "outputs.npz")) as data:
        arrays = {k: data[k] for k in data.files}
    return meta, arrays


def _last_line(text, limit=400):
    """The last line of a subprocess's log (its exception), shortened."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    line = lines[-1].strip() if lines else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


class _Run:
    """One backend's subprocess."""

    def __init__(self, backend, spec, directory):
        self.backend = backend
        self.out = os.path.join(directory, backend)
        os.makedirs(self.out)
        spec = dict(spec, out=self.out)
        self.spec_path = os.path.join(self.out, "spec.json")
        with open(self.spec_path, "w") as f:
            json.dump(spec, f)
        self.process = None
        self.error = None
        self.result = None
        self.seconds = 0.0

    def start(self):
        env = dict(os.environ)
        env["KERAS_BACKEND"] = self.backend
        env["KERAS_REG_RNG"] = config.rng()
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        paths = [p or os.getcwd() for p in sys.path]
        env["PYTHONPATH"] = os.pathsep.join(paths)
        self.stderr = open(os.path.join(self.out, "stderr.txt"), "w+")
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "keras_reg.testing._worker", self.spec_path],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.stderr,
            stderr=self.stderr,
        )
        _progress(f"{self.backend}: started")

    def poll(self, timeout):
        """True once the process has ended (or was stopped)."""
        code = self.process.poll()
        elapsed = time.perf_counter() - self.started
        if code is None and elapsed <= timeout:
            return False
        if code is None:
            self.process.kill()
            self.process.wait()
            self.error = f"timed out after {timeout:.0f} s (stopped)"
        self.seconds = elapsed
        self.stderr.seek(0)
        log = self.stderr.read()
        self.stderr.close()
        if self.error is None and code != 0:
            self.error = f"{_last_line(log) or 'no message'} (exit status {code})"
        if self.error is None:
            try:
                with open(os.path.join(self.out, "results.json")) as f:
                    meta = json.load(f)
                with np.load(os.path.join(self.out, "results.npz")) as data:
                    arrays = {k: data[k] for k in data.files}
                self.result = (meta, arrays)
            except (OSError, ValueError) as error:
                self.error = f"its results could not be read: {error}"
        if self.error:
            _progress(f"{self.backend}: ERROR after {elapsed:.1f} s: {self.error}")
        else:
            count = len(self.result[0]["entries"])
            _progress(f"{self.backend}: done in {elapsed:.1f} s ({count} values)")
        return True


def _run_all(backends, spec, directory):
    timeout = float(os.environ.get(_TIMEOUT_VARIABLE, _DEFAULT_TIMEOUT))
    jobs = int(os.environ.get("KERAS_REG_CHECK_JOBS", "0")) or min(
        len(backends), os.cpu_count() or 1
    )
    runs = [_Run(b, spec, directory) for b in backends]
    waiting, active = [], []
    for run in runs:
        if importlib.util.find_spec(_PACKAGES[run.backend]) is None:
            run.error = f"the {run.backend} package is not installed"
            _progress(f"{run.backend}: ERROR: {run.error}")
        else:
            waiting.append(run)
    while waiting or active:
        while waiting and len(active) < jobs:
            run = waiting.pop(0)
            run.start()
            active.append(run)
        active = [run for run in active if not run.poll(timeout)]
        if active:
            time.sleep(0.05)
    return runs


def _compare(modes, reference, candidate, backend, atol, rtol):
    ref_meta, ref_arrays = reference
    meta, arrays = candidate
    index = {(e["mode"], e["kind"], e["name"]): e for e in meta["entries"]}
    # A run without layers (`layers=False`, a subclassed model) is compared
    # by what it has; a missing output, loss or gradient fails.
    has_layers = any(e["kind"] == "layer" for e in meta["entries"])
    comparisons = []
    for entry in ref_meta["entries"]:
        if entry["mode"] not in modes:
            continue
        if entry["kind"] == "layer" and not has_layers:
            continue
        found = index.get((entry["mode"], entry["kind"], entry["name"]))
        atol_, rtol_ = _report.tolerance(entry["dtype"], atol, rtol)
        if found is None:
            stats = {
                "max_abs": _report.HUGE,
                "max_rel": _report.HUGE,
                "mean_abs": _report.HUGE,
                "passed": False,
                "excess": _report.HUGE,
            }
        else:
            stats = _report.statistics(
                arrays[found["key"]], ref_arrays[entry["key"]], atol_, rtol_
            )
        stats.pop("why", None)
        comparisons.append(
            {
                "mode": entry["mode"],
                "backend": backend,
                "kind": entry["kind"],
                "name": entry["name"],
                **stats,
            }
        )
    return comparisons


def compare_backends(
    model,
    inputs,
    backends=None,
    modes=("inference", "training"),
    layers=True,
    atol=None,
    rtol=None,
    imports=(),
    reference=None,
):
    """Runs a model on several Keras backends and compares what they compute.

    Each backend runs in its own subprocess (`KERAS_BACKEND` set, the
    caller's environment and `sys.path` inherited), which imports
    `keras_reg` and the modules in `imports`, loads the `.keras` file once
    and runs every mode in it. The first backend is the reference unless
    `reference` is given. A value passes when
    `|a - b| <= atol + rtol * |b|` elementwise, `b` the reference.

    A backend that cannot run the model (not installed, a custom layer not
    importable, a load error, a timeout: the environment variable
    `KERAS_REG_CHECK_TIMEOUT`, 600 s by default) gives an entry in
    `errors` and a failed report; it never hangs or crashes the caller.

    Args:
        model: a `keras.Model` (saved to a temporary `.keras` file first),
            or the path of a `.keras` file.
        inputs: a NumPy array, a list, tuple or dict of arrays, or the path
            of an `.npz` file (keys are the model's input names, or
            `arr_0`, `arr_1`, ... in order).
        backends: names among `"tensorflow"`, `"torch"` and `"jax"`, or a
            comma-separated string. Defaults to every installed one.
        modes: among `"inference"` (`training=False`), `"training"` (one
            `training=True` call from the saved random state) and
            `"gradients"` (for one training-mode call from the same state,
            the mean of the squared outputs summed over the outputs, and
            its gradient for every trainable weight). Defaults to
            `("inference", "training")`.
        layers: for functional and sequential models (nested ones
            included), also compare every layer's output, so the report
            names the first layer that differs. Defaults to `True`.
        atol: the absolute tolerance. Defaults to `None`: by the compute
            dtype of each value (float32: 5e-3, bfloat16: 0.3).
        rtol: the relative tolerance. Defaults to `None`: by the compute
            dtype (float32: 1e-3, bfloat16: 5e-2).
        imports: modules each subprocess imports before loading the model
            (where custom layers are registered). Defaults to `()`.
        reference: a folder written by `report.save_outputs` (on another
            machine or device, for instance); every backend is compared
            with it. Defaults to `None`.

    Returns:
        A `BackendReport`: `passed`, `first_divergence`, `non_portable`,
        `to_dict()`, `save_outputs(folder)`, and the table as `str(report)`.

    Raises:
        ValueError: an unknown backend or mode, inputs that do not match the
            model's inputs, an `.npz` file with unexpected keys.
        FileNotFoundError: a missing model, inputs or reference file.
        TypeError: a model or inputs of the wrong type.

    Example:

    >>> import keras, numpy as np
    >>> from keras_reg import layers
    >>> from keras_reg.testing import compare_backends
    >>> inputs = keras.Input((8,))
    >>> x = layers.InvertedDropout(0.3, seed=1)(keras.layers.Dense(8)(inputs))
    >>> model = keras.Model(inputs, keras.layers.Dense(2)(x))
    >>> x = np.random.default_rng(0).normal(size=(4, 8)).astype("float32")
    >>> report = compare_backends(model, x)  # doctest: +SKIP
    >>> report.passed  # doctest: +SKIP
    True
    """
    start = time.perf_counter()
    modes = _check_names("modes", modes, _report.MODES)
    if backends is None:
        backends = installed_backends()
        if not backends:
            raise ValueError("No Keras backend is installed (tensorflow, torch, jax).")
    backends = _check_names("backends", backends, BACKENDS)
    atol = _check_tolerance("atol", atol)
    rtol = _check_tolerance("rtol", rtol)
    if isinstance(imports, str):
        imports = [imports]
    imports = [str(m) for m in imports]
    reference_data = None
    if reference is not None:
        reference_data = _load_reference(reference)
        missing = [
            m
            for m in modes
            if m not in {e["mode"] for e in reference_data[0]["entries"]}
        ]
        if missing:
            raise ValueError(
                f"Invalid value received for argument `reference`: "
                f"{os.fspath(reference)!r} holds no {missing} outputs; it was "
                f"recorded with modes {reference_data[0].get('modes')}."
            )
    with tempfile.TemporaryDirectory(prefix="keras_reg_check_") as directory:
        if isinstance(model, keras.Model):
            path = os.path.join(directory, "model.keras")
            model.save(path)
        elif isinstance(model, (str, os.PathLike)):
            path = os.path.abspath(os.fspath(model))
            if not os.path.isfile(path):
                raise FileNotFoundError(f"No such model file: {os.fspath(model)!r}")
            if not path.endswith(".keras"):
                raise ValueError(
                    "Invalid value received for argument `model`: expected a "
                    f"`.keras` file. Received: model={os.fspath(model)!r}"
                )
        else:
            raise TypeError(
                "Invalid type for argument `model`. Expected a keras.Model or "
                f"the path of a .keras file. Received: {type(model).__name__}"
            )
        model_inputs = _model_inputs(path)
        kind, names, arrays = _read_inputs(inputs, model_inputs)
        _check_inputs(kind, names, arrays, model_inputs)
        inputs_path = os.path.join(directory, "inputs.npz")
        np.savez(inputs_path, *arrays)
        spec = {
            "model": path,
            "inputs": inputs_path,
            "structure": {"kind": kind, "names": names},
            "modes": modes,
            "layers": bool(layers),
            "imports": imports,
        }
        runs = _run_all(backends, spec, directory)
    errors = [{"backend": r.backend, "message": r.error} for r in runs if r.error]
    results = {r.backend: r.result for r in runs if r.result is not None}
    for result in results.values():
        result[0]["modes"] = modes
    if reference_data is not None:
        reference_name = os.fspath(reference)
        results_ref = reference_data
    else:
        reference_name = backends[0]
        results_ref = results.get(backends[0])
    comparisons = []
    if results_ref is not None:
        for backend in backends:
            if backend in results and (
                reference_data is not None or backend != reference_name
            ):
                comparisons.extend(
                    _compare(modes, results_ref, results[backend], backend, atol, rtol)
                )
    first = results.get(backends[0]) or next(iter(results.values()), None)
    non_portable = first[0]["non_portable"] if first else []
    notes = []
    for result in results.values():
        notes.extend(n for n in result[0]["notes"] if n not in notes)
    seconds = time.perf_counter() - start
    report = _report.BackendReport(
        backends=backends,
        reference=reference_name,
        modes=modes,
        comparisons=comparisons,
        non_portable=non_portable,
        errors=errors,
        notes=notes,
        timings={r.backend: r.seconds for r in runs},
        seconds=seconds,
        results=results,
    )
    _progress(f"{'passed' if report.passed else 'FAILED'} in {seconds:.1f} s")
    return report


def assert_same_on_backends(model, inputs, **kwargs):
    """Asserts that a model computes the same on every backend, in a test.

    Takes the arguments of `compare_backends`.

    Args:
        model: a `keras.Model` or the path of a `.keras` file.
        inputs: the inputs (see `compare_backends`).
        **kwargs: `backends`, `modes`, `layers`, `atol`, `rtol`, `imports`,
            `reference`, as in `compare_backends`.

    Returns:
        The report, when it passed.

    Raises:
        AssertionError: with the report's table as its message, when a
            value differs beyond tolerance or a backend could not run.

    Example:

    >>> from keras_reg.testing import assert_same_on_backends
    >>> def test_my_model_is_portable(tmp_path):  # doctest: +SKIP
    ...     assert_same_on_backends(build_model(), x, modes=("inference",))
    """
    report = compare_backends(model, inputs, **kwargs)
    if not report.passed:
        raise AssertionError(str(report))
    return report
